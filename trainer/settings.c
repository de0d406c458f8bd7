/* settings.c -- see settings.h. Values are printed in the shortest form that
 * reads back as the same double (num()), so that equal doubles print equal
 * and different ones differ; a file written with %.17g (before) compares
 * equal number by number. A TorchScript backbone is
 * recorded with its file's size and a hash of its bytes, so that a module
 * replaced under the same name is a change. */
#include "trainer/settings.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trainer/rng.h"
#include "trainer/schedule.h"

/* ---- the hash of a module file ------------------------------------------- */

#define MODULE_PIECE (1u << 20) /* bytes read at a time (a module can be 4 GB); a multiple of 32 */

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* 64-bit hash of the bytes of f (read to its end) and their count: four
 * independent lanes of little-endian 8-byte words through fl_mix64, so that
 * their multiplications overlap (a few GB/s), then the lanes and the length. */
static int module_hash_stream(FILE *f, uint64_t *hash, uint64_t *bytes)
{
    unsigned char *buf = malloc(MODULE_PIECE);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    uint64_t lane[4] = {0x746f726368ull, 0x7363726970ull, 0x6d6f64756cull, 0x6279746573ull}, total = 0;
    size_t n;
    /* fread returns a short piece only at the end of the file (or an error):
     * only the last piece has a tail, zero-padded to 32 bytes (the length
     * tells a padded tail from zeros in the file). */
    while ((n = fread(buf, 1, MODULE_PIECE, f)) > 0) {
        total += n;
        if (n % 32) {
            memset(buf + n, 0, 32 - n % 32);
            n += 32 - n % 32;
        }
        for (size_t i = 0; i < n; i += 32)
            for (int l = 0; l < 4; l++)
                lane[l] = fl_mix64(lane[l] ^ load_le64(buf + i + 8 * l));
    }
    free(buf);
    if (ferror(f)) {
        errno = errno ? errno : EIO;
        return -1;
    }
    *hash = fl_mix64(lane[0] ^ fl_mix64(lane[1] ^ fl_mix64(lane[2] ^ fl_mix64(lane[3] ^ total))));
    *bytes = total;
    return 0;
}

/* Each module is hashed once per process (a run), not once per job: the
 * hashes are kept by path and by what stat says of the file, so that a file
 * replaced during the run is hashed again. Called from the job loop only (one
 * thread). */
typedef struct {
    char path[FL_PATH_MAX];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t hash;
} module_hash_entry;

static module_hash_entry module_hashes[FL_MAX_MODELS];
static int n_module_hashes;

static int module_same_file(const module_hash_entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* The size (bytes) and hash of the module file at path, for model. */
static fl_code module_hash(const char *model, const char *path, uint64_t *hash, uint64_t *bytes, fl_error *err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        int e = errno;
        if (f)
            fclose(f);
        return fl_fail(err, FL_EIO,
                       "model %s: cannot read the TorchScript module %s (%s) HINT: the run's modules must stay in "
                       "place while it trains and when it is rerun",
                       model, path, strerror(e));
    }
    int slot = -1;
    for (int i = 0; i < n_module_hashes && slot < 0; i++)
        if (!strcmp(module_hashes[i].path, path))
            slot = i;
    if (slot >= 0 && module_same_file(&module_hashes[slot], &st)) {
        fclose(f);
        *hash = module_hashes[slot].hash;
        *bytes = (uint64_t)st.st_size;
        return FL_OK;
    }
    errno = 0;
    int bad = module_hash_stream(f, hash, bytes);
    int e = errno;
    fclose(f);
    if (bad)
        return fl_fail(err, FL_EIO, "model %s: cannot read the TorchScript module %s (%s)", model, path, strerror(e));
    if (slot < 0 && n_module_hashes < FL_MAX_MODELS)
        slot = n_module_hashes++;
    if (slot >= 0 && strlen(path) < sizeof module_hashes[slot].path && (uint64_t)st.st_size == *bytes) {
        module_hash_entry *c = &module_hashes[slot];
        snprintf(c->path, sizeof c->path, "%s", path);
        c->dev = st.st_dev;
        c->ino = st.st_ino;
        c->size = st.st_size;
        c->mtime = st.st_mtim;
        c->hash = *hash;
    }
    return FL_OK;
}

/* ---- the settings text ---------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len;
    int overflow;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, FL_SETTINGS_MAX - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= FL_SETTINGS_MAX - t->len)
        t->overflow = 1;
    else
        t->len += (size_t)n;
}

/* The shortest "%.{p}g" of v that reads back as v (0.9, not %.17g's
 * 0.90000000000000002): equal doubles print equal, different ones differ.
 * A ring of buffers, so that one put() may hold several. */
static const char *num(double v)
{
    static char ring[16][32];
    static int next;
    char *b = ring[next++ % 16];
    for (int p = 1; p <= 17; p++) {
        snprintf(b, 32, "%.*g", p, v);
        if (strtod(b, NULL) == v)
            break;
    }
    return b;
}

static const char *op_name(fl_op_kind k)
{
    switch (k) {
    case FL_OP_HFLIP:
        return "hflip";
    case FL_OP_VFLIP:
        return "vflip";
    case FL_OP_ROTATE:
        return "rotate";
    case FL_OP_ELASTIC:
        return "elastic";
    case FL_OP_GRID_DISTORTION:
        return "grid_distortion";
    case FL_OP_BRIGHTNESS_CONTRAST:
        return "brightness_contrast";
    case FL_OP_CUTOUT:
        return "cutout";
    }
    return "?";
}

static fl_code put_model(text *t, const fl_model_cfg *m, fl_error *err)
{
    const char *k = m->name;
    if (!strncmp(m->backbone, FL_TORCHSCRIPT_PREFIX, strlen(FL_TORCHSCRIPT_PREFIX))) {
        uint64_t hash = 0, bytes = 0;
        fl_code rc = module_hash(k, m->backbone + strlen(FL_TORCHSCRIPT_PREFIX), &hash, &bytes, err);
        if (rc)
            return rc;
        put(t, "models.%s.backbone = %s bytes %llu hash %016llx\n", k, m->backbone, (unsigned long long)bytes,
            (unsigned long long)hash);
    } else {
        put(t, "models.%s.backbone = %s\n", k, m->backbone);
    }
    /* A frozen model's folds share its backbone, batches and draws (trainer/order.h): the marker names
     * that scheme, so that a run begun under another one is refused rather than resumed differently. */
    put(t, "models.%s.freeze_backbone = %d%s\n", k, m->freeze_backbone,
        m->freeze_backbone ? " (folds share backbone, batches, draws: v1)" : "");
    put(t, "models.%s.backbone_lr_scale = %s\n", k, num(m->backbone_lr_scale));
    put(t, "models.%s.head = %s hidden %d act %s\n", k, fl_head_name(m->head_type), m->head_hidden,
        fl_act_name(m->head_act));
    put(t, "models.%s.epochs = %d\n", k, m->epochs);
    put(t, "models.%s.batch = %d\n", k, m->batch);
    put(t, "models.%s.optimizer = %s lr %s weight_decay %s momentum %s nesterov %d\n", k, fl_optim_name(m->optimizer),
        num(m->lr), num(m->weight_decay), num(m->momentum), m->nesterov);
    put(t, "models.%s.clip_grad_norm = %s\n", k, num(m->clip_grad_norm));
    put(t, "models.%s.schedule = %s step_size %d gamma %s warmup_epochs %d min_lr %s\n", k, fl_sched_name(m->schedule),
        m->step_size, num(m->gamma), m->warmup_epochs, num(m->min_lr));
    if (fl_schedule_per_step(m)) /* only then: the settings of earlier runs stay as they were */
        put(t, "models.%s.schedule.warmup = %s\n", k, num(m->warmup));
    put(t, "models.%s.label_smoothing = %s\n", k, num(m->label_smoothing));
    /* Under the key that gave it, and only when not the default: a run begun
     * before the key existed trained in fp32 (fl_settings_check compares the
     * precision lines as one value, fp32 when absent). */
    if (m->precision != FL_PRECISION_FP32) {
        if (m->own_precision)
            put(t, "models.%s.precision = %s\n", k, fl_precision_name(m->precision));
        else
            put(t, "run.precision = %s\n", fl_precision_name(m->precision));
    }
    put(t, "models.%s.predict_with = %s\n", k, fl_predict_with_name(m->predict_with));
    put(t, "models.%s.tta =", k);
    for (int i = 0; i < m->n_tta; i++)
        put(t, " %s", m->tta[i] == FL_TTA_HFLIP ? "hflip" : "vflip");
    put(t, "\n");
    for (int s = 0; s < m->n_stages; s++) {
        const fl_aug_stage *st = &m->stages[s];
        put(t, "models.%s.augment.%d = from_epoch %d:", k, s, st->from_epoch);
        for (int i = 0; i < st->n_ops; i++) {
            const fl_aug_op *o = &st->ops[i];
            /* Every parameter, whatever the op: an op's unused fields keep their defaults. */
            put(t,
                " %s(p %s degrees %s alpha %s sigma %s num_steps %d distort_limit %s brightness_limit %s "
                "contrast_limit %s num_holes %d size %s%s",
                op_name(o->kind), num(o->p), num(o->degrees), num(o->alpha), num(o->sigma), o->num_steps,
                num(o->distort_limit), num(o->brightness_limit), num(o->contrast_limit), o->num_holes, num(o->size),
                o->size_in_pixels ? " px" : "");
            put(t, ")");
        }
        put(t, "\n");
    }
    return FL_OK;
}

fl_code fl_settings_of_job(const fl_train_config *cfg, int model, int fold, const fl_data_info *data,
                           const char *fingerprint, const int32_t *labels, const int32_t *folds, char *buf,
                           fl_error *err)
{
    text t = {buf, 0, 0};
    uint64_t h = 0x6c61626c6573ull; /* the labels and folds of every /train row */
    for (int64_t i = 0; i < data->n_train; i++)
        h = fl_mix64(h ^ ((uint64_t)(uint32_t)labels[i] << 32 | (uint32_t)folds[i]));
    put(&t, "data = %lld train rows, %lld test rows, %d classes, %dx%dx%d, %d folds (seed %lld)\n",
        (long long)data->n_train, (long long)data->n_test, data->num_classes, data->channels, data->height, data->width,
        data->folds, (long long)data->fold_seed);
    put(&t, "data.labels_and_folds = %016llx\n", (unsigned long long)h);
    put(&t, "data.test_fingerprint = %s\n", fingerprint);
    const fl_model_cfg *m = &cfg->models[model]; /* its own data.mean/std or the top-level ones */
    put(&t, "data.mean =");
    for (int c = 0; c < m->n_mean; c++)
        put(&t, " %s", num(m->mean[c]));
    put(&t, "\ndata.std =");
    for (int c = 0; c < m->n_std; c++)
        put(&t, " %s", num(m->std[c]));
    put(&t, "\nrun.seed = %u\n", cfg->seed);
    put(&t, "fold = %d\n", fold);
    fl_code rc = put_model(&t, &cfg->models[model], err);
    if (rc)
        return rc;
    if (t.overflow)
        return fl_fail(err, FL_EINTERNAL, "the settings of model %s are longer than %d bytes", cfg->models[model].name,
                       FL_SETTINGS_MAX);
    return FL_OK;
}

/* 1 for the keys of a job's precision: run.precision, models.NAME.precision. */
static int is_precision_key(const char *key)
{
    size_t n = strlen(key);
    return !strcmp(key, "run.precision") ||
           (!strncmp(key, "models.", 7) && n > 10 && !strcmp(key + n - 10, ".precision"));
}

/* The precision a settings text records (under either key) into val, and the
 * key it was under into key ("run.precision" when none: fp32, the default). */
static void settings_precision(const char *textp, char *key, size_t kn, char *val, size_t vn)
{
    snprintf(key, kn, "run.precision");
    snprintf(val, vn, "fp32");
    for (const char *line = textp; line && *line;) {
        const char *eq = strstr(line, " = "), *end = strchr(line, '\n');
        if (eq && (!end || eq < end)) {
            char k[256];
            size_t kl = (size_t)(eq - line) < sizeof k - 1 ? (size_t)(eq - line) : sizeof k - 1;
            memcpy(k, line, kl);
            k[kl] = '\0';
            if (is_precision_key(k)) {
                size_t vl = (size_t)((end ? end : eq + strlen(eq)) - (eq + 3));
                snprintf(key, kn, "%s", k);
                snprintf(val, vn, "%.*s", (int)vl, eq + 3);
                return;
            }
        }
        line = end ? end + 1 : NULL;
    }
}

int fl_settings_value(const char *textp, const char *key, char *val, size_t n)
{
    size_t klen = strlen(key);
    for (const char *line = textp; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len == klen + 2 && !strncmp(line, key, klen) && !strncmp(line + klen, " =", 2)) {
            val[0] = '\0'; /* an empty list: "models.m.tta =" */
            return 1;
        }
        if (len > klen + 3 && !strncmp(line, key, klen) && !strncmp(line + klen, " = ", 3)) {
            size_t vl = len - klen - 3 < n - 1 ? len - klen - 3 : n - 1;
            memcpy(val, line + klen + 3, vl);
            val[vl] = '\0';
            return 1;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

/* Two values the same: equal text, or, token by token, equal text or equal
 * numbers (a settings.txt written with %.17g against the shortest form). */
static int settings_same(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return 1;
    while (*a && *b) {
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        if (la != lb || strncmp(a, b, la)) {
            char ta[64], tb[64], *ea, *eb;
            if (la >= sizeof ta || lb >= sizeof tb)
                return 0;
            memcpy(ta, a, la);
            ta[la] = '\0';
            memcpy(tb, b, lb);
            tb[lb] = '\0';
            double x = strtod(ta, &ea), y = strtod(tb, &eb);
            if (ea == ta || *ea || eb == tb || *eb || x != y)
                return 0;
        }
        a += la;
        b += lb;
        if (*a != *b)
            return 0;
        a += *a == ' ';
        b += *b == ' ';
    }
    return !*a && !*b;
}

/* Keys that change only how a trained model predicts (predict_with, tta). */
static int settings_inference_key(const char *key)
{
    size_t n = strlen(key);
    return (n > 13 && !strcmp(key + n - 13, ".predict_with")) || (n > 4 && !strcmp(key + n - 4, ".tta"));
}

fl_code fl_settings_check(const char *path, const char *now, int *inference_changed, fl_error *err)
{
    if (inference_changed)
        *inference_changed = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) /* no such job yet (making its folder will say why) */
            return FL_OK;
        return fl_fail(err, FL_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    char *saved = malloc(FL_SETTINGS_MAX);
    if (!saved) {
        fclose(f);
        return fl_fail(err, FL_ENOMEM, "out of memory");
    }
    size_t n = fread(saved, 1, FL_SETTINGS_MAX - 1, f);
    saved[n] = '\0';
    fclose(f);
    fl_code rc = FL_OK;
    /* Every key of either text, in the order of now then saved. */
    const char *texts[2] = {now, saved};
    for (int w = 0; w < 2 && !rc; w++)
        for (const char *line = texts[w]; line && *line;) {
            const char *eq = strstr(line, " = "), *end = strchr(line, '\n');
            if (eq && (!end || eq < end)) {
                char key[256], a[FL_PATH_MAX + 128], b[FL_PATH_MAX + 128]; /* a backbone's path, size, hash */
                size_t kl = (size_t)(eq - line) < sizeof key - 1 ? (size_t)(eq - line) : sizeof key - 1;
                memcpy(key, line, kl);
                key[kl] = '\0';
                int in_saved = fl_settings_value(saved, key, a, sizeof a),
                    in_now = fl_settings_value(now, key, b, sizeof b);
                if (is_precision_key(key)) { /* one value under either key, fp32 when absent */
                    char ks[256], kn[256];
                    settings_precision(saved, ks, sizeof ks, a, sizeof a);
                    settings_precision(now, kn, sizeof kn, b, sizeof b);
                    in_saved = in_now = 1;
                    snprintf(key, sizeof key, "%s", w == 0 ? kn : ks);
                }
                if (in_saved && in_now && !settings_same(a, b) && inference_changed && settings_inference_key(key)) {
                    *inference_changed = 1;
                } else if (!in_saved || !in_now || !settings_same(a, b)) {
                    rc = fl_fail(err, FL_EINPUT,
                                 "%s: the run was trained with %s = %s, the config now gives %s HINT: foldline train "
                                 "CONFIG --restart discards the run's results; or give the changed config another "
                                 "run.name",
                                 path, key, in_saved ? a : "(nothing)", in_now ? b : "(nothing)");
                    break;
                }
            }
            line = end ? end + 1 : NULL;
        }
    free(saved);
    return rc;
}

fl_code fl_settings_module_check(const char *model, const char *value, fl_error *err)
{
    const char *bytes_at = strstr(value, " bytes ");
    for (const char *next; bytes_at && (next = strstr(bytes_at + 1, " bytes "));)
        bytes_at = next; /* the last one: the path may hold the words */
    size_t plen = strlen(FL_TORCHSCRIPT_PREFIX);
    unsigned long long want_bytes = 0, want_hash = 0;
    if (strncmp(value, FL_TORCHSCRIPT_PREFIX, plen) || !bytes_at ||
        sscanf(bytes_at, " bytes %llu hash %llx", &want_bytes, &want_hash) != 2)
        return fl_fail(err, FL_EINPUT,
                       "model %s: backbone '%s' does not name a TorchScript module with its size and hash", model,
                       value);
    char path[FL_PATH_MAX];
    size_t n = (size_t)(bytes_at - value) - plen;
    if (n >= sizeof path)
        return fl_fail(err, FL_EINPUT, "model %s: the TorchScript module's path is too long", model);
    memcpy(path, value + plen, n);
    path[n] = '\0';
    uint64_t hash = 0, got = 0;
    fl_code rc = module_hash(model, path, &hash, &got, err);
    if (rc)
        return rc;
    if (got != want_bytes || hash != want_hash)
        return fl_fail(err, FL_EINPUT,
                       "model %s: the TorchScript module %s changed since the run trained (%llu bytes hash %016llx, "
                       "now %llu bytes hash %016llx) HINT: put back the module the run trained with",
                       model, path, want_bytes, want_hash, (unsigned long long)got, (unsigned long long)hash);
    return FL_OK;
}
