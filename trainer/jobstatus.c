/* jobstatus.c -- see jobstatus.h. */
#include "trainer/jobstatus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tempfile.h"

void fl_jobstatus_clear(fl_jobstatus *s)
{
    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->rank = s->ranks = s->groups = -1;
    s->heartbeat = s->heartbeat_s = -1;
    s->epoch = s->epochs = -1;
    s->step = s->steps = -1;
    s->images_per_s = s->loss = s->acc = -1;
    s->eta_epoch_s = s->eta_job_s = -1;
}

/* A value on one line: control characters become spaces. */
static void jobstatus_put(char *buf, size_t cap, size_t *len, const char *key, const char *val)
{
    if (*len + strlen(key) + 3 >= cap)
        return;
    *len += (size_t)snprintf(buf + *len, cap - *len, "%s ", key);
    for (const unsigned char *c = (const unsigned char *)val; *c && *len + 2 < cap; c++)
        buf[(*len)++] = *c < 0x20 || *c == 0x7f ? ' ' : (char)*c;
    buf[(*len)++] = '\n';
    buf[*len] = '\0';
}

fl_code fl_jobstatus_write(const char *dir, const fl_jobstatus *s, fl_error *err)
{
    char buf[8192], v[64], path[4200];
    size_t len = (size_t)snprintf(buf, sizeof buf, "foldline-status 1\n");
    jobstatus_put(buf, sizeof buf, &len, "state", s->state);
    jobstatus_put(buf, sizeof buf, &len, "phase", s->phase);
    jobstatus_put(buf, sizeof buf, &len, "host", s->host);
#define PUT(key, fmt, val)                                                                                             \
    do {                                                                                                               \
        snprintf(v, sizeof v, fmt, val);                                                                               \
        jobstatus_put(buf, sizeof buf, &len, key, v);                                                                  \
    } while (0)
    PUT("pid", "%ld", s->pid);
    PUT("rank", "%d", s->rank);
    PUT("ranks", "%d", s->ranks);
    PUT("groups", "%d", s->groups);
    jobstatus_put(buf, sizeof buf, &len, "launch", s->launch);
    PUT("heartbeat", "%.3f", s->heartbeat);
    PUT("heartbeat_s", "%.3f", s->heartbeat_s);
    PUT("epoch", "%d", s->epoch);
    PUT("epochs", "%d", s->epochs);
    PUT("step", "%lld", (long long)s->step);
    PUT("steps", "%lld", (long long)s->steps);
    PUT("images_per_s", "%.1f", s->images_per_s);
    PUT("loss", "%.6f", s->loss);
    PUT("acc", "%.6f", s->acc);
    PUT("eta_epoch_s", "%.1f", s->eta_epoch_s);
    PUT("eta_job_s", "%.1f", s->eta_job_s);
#undef PUT
    if (s->error[0])
        jobstatus_put(buf, sizeof buf, &len, "error", s->error);
    snprintf(path, sizeof path, "%s/status.txt", dir);
    return fl_write_file_atomic(path, buf, len, err);
}

int fl_jobstatus_read(const char *dir, fl_jobstatus *s, fl_error *err)
{
    char path[4200], line[FL_ERROR_MSG_MAX + 64];
    fl_jobstatus_clear(s);
    snprintf(path, sizeof path, "%s/status.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        fl_fail(err, FL_EIO, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(line, sizeof line, f) || strcmp(line, "foldline-status 1\n") != 0) {
        fclose(f);
        fl_fail(err, FL_EINPUT, "%s: not a foldline status file (no \"foldline-status 1\" line)", path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *val = strchr(line, ' ');
        if (!val)
            continue;
        *val++ = '\0';
        const char *k = line;
        if (!strcmp(k, "state"))
            snprintf(s->state, sizeof s->state, "%s", val);
        else if (!strcmp(k, "phase"))
            snprintf(s->phase, sizeof s->phase, "%s", val);
        else if (!strcmp(k, "host"))
            snprintf(s->host, sizeof s->host, "%s", val);
        else if (!strcmp(k, "launch"))
            snprintf(s->launch, sizeof s->launch, "%s", val);
        else if (!strcmp(k, "error"))
            snprintf(s->error, sizeof s->error, "%s", val);
        else if (!strcmp(k, "pid"))
            s->pid = strtol(val, NULL, 10);
        else if (!strcmp(k, "rank"))
            s->rank = (int)strtol(val, NULL, 10);
        else if (!strcmp(k, "ranks"))
            s->ranks = (int)strtol(val, NULL, 10);
        else if (!strcmp(k, "groups"))
            s->groups = (int)strtol(val, NULL, 10);
        else if (!strcmp(k, "heartbeat"))
            s->heartbeat = strtod(val, NULL);
        else if (!strcmp(k, "heartbeat_s"))
            s->heartbeat_s = strtod(val, NULL);
        else if (!strcmp(k, "epoch"))
            s->epoch = (int)strtol(val, NULL, 10);
        else if (!strcmp(k, "epochs"))
            s->epochs = (int)strtol(val, NULL, 10);
        else if (!strcmp(k, "step"))
            s->step = strtoll(val, NULL, 10);
        else if (!strcmp(k, "steps"))
            s->steps = strtoll(val, NULL, 10);
        else if (!strcmp(k, "images_per_s"))
            s->images_per_s = strtod(val, NULL);
        else if (!strcmp(k, "loss"))
            s->loss = strtod(val, NULL);
        else if (!strcmp(k, "acc"))
            s->acc = strtod(val, NULL);
        else if (!strcmp(k, "eta_epoch_s"))
            s->eta_epoch_s = strtod(val, NULL);
        else if (!strcmp(k, "eta_job_s"))
            s->eta_job_s = strtod(val, NULL);
    }
    fclose(f);
    return 1;
}

/* ---- the job record of a checkpoint ----------------------------------------
 * A libtorch archive is a zip file whose entries are stored uncompressed
 * (the tensors and the pickled values alike); the pickle "<dir>/data.pkl"
 * holds the job text as a plain string. The central directory at the end of
 * the file says where that entry is, so a checkpoint of any size is read in
 * a few small pieces. */

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int ckpt_read_at(FILE *f, uint64_t off, void *buf, size_t n)
{
    return fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, n, f) == n;
}

/* The central directory's offset and size into *off, *size. */
static int ckpt_central(FILE *f, uint64_t file_size, uint64_t *off, uint64_t *size)
{
    unsigned char tail[65557 + 22];
    size_t n = file_size < sizeof tail ? (size_t)file_size : sizeof tail;
    uint64_t start = file_size - n;
    if (n < 22 || !ckpt_read_at(f, start, tail, n))
        return 0;
    for (size_t i = n - 22 + 1; i-- > 0;) {
        if (memcmp(tail + i, "PK\5\6", 4) != 0)
            continue;
        *size = le(tail + i + 12, 4);
        *off = le(tail + i + 16, 4);
        if (*off != 0xffffffffu && *size != 0xffffffffu)
            return 1;
        /* zip64: the locator just before points to the zip64 end record */
        unsigned char rec[56];
        if (i < 20 || memcmp(tail + i - 20, "PK\6\7", 4) != 0)
            return 0;
        if (!ckpt_read_at(f, le(tail + i - 20 + 8, 8), rec, sizeof rec) || memcmp(rec, "PK\6\6", 4) != 0)
            return 0;
        *size = le(rec + 40, 8);
        *off = le(rec + 48, 8);
        return 1;
    }
    return 0;
}

/* The offset and size of the stored entry "<dir>/data.pkl" in the central
 * directory cd (n bytes). */
static int ckpt_find_pickle(const unsigned char *cd, uint64_t n, uint64_t *local, uint64_t *size, int *method)
{
    for (uint64_t p = 0; p + 46 <= n && !memcmp(cd + p, "PK\1\2", 4);) {
        unsigned name_len = (unsigned)le(cd + p + 28, 2), extra_len = (unsigned)le(cd + p + 30, 2);
        unsigned comment_len = (unsigned)le(cd + p + 32, 2);
        if (p + 46 + name_len + extra_len > n)
            return 0;
        const char *name = (const char *)cd + p + 46;
        const char *slash = memchr(name, '/', name_len);
        if (slash && (size_t)(name + name_len - slash) == sizeof "/data.pkl" - 1 &&
            !memcmp(slash, "/data.pkl", sizeof "/data.pkl" - 1)) {
            uint64_t comp = le(cd + p + 20, 4), uncomp = le(cd + p + 24, 4), off = le(cd + p + 42, 4);
            const unsigned char *x = cd + p + 46 + name_len, *xend = x + extra_len;
            while (x + 4 <= xend) { /* the zip64 extra field: the 64-bit values that did not fit */
                unsigned id = (unsigned)le(x, 2), len = (unsigned)le(x + 2, 2);
                const unsigned char *v = x + 4;
                if (id == 1) {
                    if (uncomp == 0xffffffffu && v + 8 <= x + 4 + len)
                        uncomp = le(v, 8), v += 8;
                    if (comp == 0xffffffffu && v + 8 <= x + 4 + len)
                        comp = le(v, 8), v += 8;
                    if (off == 0xffffffffu && v + 8 <= x + 4 + len)
                        off = le(v, 8);
                }
                x += 4 + len;
            }
            *local = off;
            *size = comp;
            *method = (int)le(cd + p + 10, 2);
            return comp == uncomp || *method != 0;
        }
        p += 46 + name_len + extra_len + comment_len;
    }
    return 0;
}

int fl_checkpoint_progress(const char *path, int *epoch, int64_t *step, fl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        fl_fail(err, FL_EIO, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char *cd = NULL, hdr[30];
    char *pkl = NULL;
    uint64_t cd_off = 0, cd_size = 0, local = 0, size = 0;
    int method = 0, found = -1;
    const char *why = "not a zip archive";
    if (fseeko(f, 0, SEEK_END) != 0)
        goto done;
    uint64_t file_size = (uint64_t)ftello(f);
    if (!ckpt_central(f, file_size, &cd_off, &cd_size) || cd_size > (64u << 20) || !(cd = malloc(cd_size + 1)) ||
        !ckpt_read_at(f, cd_off, cd, cd_size))
        goto done;
    why = "no data.pkl record";
    if (!ckpt_find_pickle(cd, cd_size, &local, &size, &method))
        goto done;
    why = "its data.pkl record is compressed or too large";
    if (method != 0 || size > (64u << 20) || !ckpt_read_at(f, local, hdr, sizeof hdr) || memcmp(hdr, "PK\3\4", 4))
        goto done;
    if (!(pkl = malloc(size + 1)) || !ckpt_read_at(f, local + 30 + le(hdr + 26, 2) + le(hdr + 28, 2), pkl, size))
        goto done;
    pkl[size] = '\0';
    why = "no job progress in it";
    static const char tag[] = "foldline-job 1\nepoch ";
    for (uint64_t i = 0; i + sizeof tag < size; i++) {
        long long s;
        if (pkl[i] == 'f' && !memcmp(pkl + i, tag, sizeof tag - 1) &&
            sscanf(pkl + i, "foldline-job 1\nepoch %d\nstep %lld", epoch, &s) == 2) {
            *step = s;
            found = 1;
            break;
        }
    }
done:
    if (found < 0)
        fl_fail(err, FL_EINPUT, "%s: not a foldline checkpoint (%s)", path, why);
    free(cd);
    free(pkl);
    fclose(f);
    return found;
}
