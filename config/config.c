/* config.c -- fl_config_load: parse the file with libconfig, apply the --set
 * overrides to its tree, then walk the tree section by section against the
 * schema (the keys of the config contract, docs/config.md; meanings, defaults and
 * ranges in trainer/spec.h). The first problem found is the one reported. */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_priv.h"
#include "trainer/joblock.h"

static const char *const top_keys[] = {"run", "data", "folds", "dist", "models", "vote", NULL};
static const char *const run_keys[] = {"name",   "out_dir",     "seed",       "threads",   "checkpoint_minutes",
                                       "on_nan", "scratch_dir", "progress_s", "precision", NULL};
static const char *const data_keys[] = {"file", "mean", "std", "cache", "verify", "feature_cache", "feature_cache_mb",
                                        NULL};
static const char *const folds_keys[] = {"use", NULL};
static const char *const dist_keys[] = {"ranks_per_job", "backend",   "timeout_s", "lock_timeout_s",
                                        "overlap",       "bucket_mb", NULL};
static const char *const vote_keys[] = {"method", "weights", NULL};
static const cfg_range any_number = {-INFINITY, INFINITY, 1, 1};

static void config_defaults(fl_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->run_name, "run");
    strcpy(cfg->out_dir, "runs");
    cfg->seed = 42;
    /* data_cache, data_verify, feature_cache, backend, vote_method, on_nan and
     * precision: 0, each enum's default (base/names.h) */
    cfg->feature_cache_mb = 4096;
    cfg->ranks_per_job = 1;
    cfg->timeout_s = 600;
    cfg->lock_timeout_s = 60;
    cfg->progress_s = 30;
    cfg->overlap = 1;
    cfg->bucket_mb = 25;
}

/* The top-level group `name` (NULL when absent), its members checked. */
static fl_code section(cfg_ctx *c, const config_setting_t *root, const char *name, const char *const *keys,
                       const config_setting_t **out)
{
    *out = cfg_member(root, name);
    if (!*out)
        return FL_OK;
    fl_code rc = cfg_group(c, *out, name);
    return rc ? rc : cfg_members(c, *out, name, keys, name);
}

static fl_code load_run(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    const config_setting_t *g, *s;
    fl_code rc = section(c, root, "run", run_keys, &g);
    if (rc || !g)
        return rc;
    if ((s = cfg_member(g, "name")) && (rc = cfg_name(c, s, "run.name", cfg->run_name, sizeof cfg->run_name)))
        return rc;
    if ((rc = cfg_opt_string(c, g, "run", "out_dir", cfg->out_dir, sizeof cfg->out_dir)))
        return rc;
    if ((s = cfg_member(g, "seed"))) {
        long long seed;
        if ((rc = cfg_int(c, s, "run.seed", 0, 4294967295LL, &seed)))
            return rc;
        cfg->seed = (uint32_t)seed;
    }
    if ((rc = cfg_opt_int(c, g, "run", "threads", 0, INT_MAX, &cfg->threads)))
        return rc;
    if ((rc = cfg_opt_string(c, g, "run", "scratch_dir", cfg->scratch_dir, sizeof cfg->scratch_dir)))
        return rc;
    if ((rc = cfg_opt_float(c, g, "run", "checkpoint_minutes", cfg_nonnegative, &cfg->checkpoint_minutes)) ||
        (rc = cfg_opt_float(c, g, "run", "progress_s", cfg_nonnegative, &cfg->progress_s)))
        return rc;
    if ((rc = cfg_opt_precision(c, g, "run", &cfg->precision, &cfg->precision_line)))
        return rc;
    int v = cfg->on_nan;
    rc = cfg_opt_enum(c, g, "run", "on_nan", fl_on_nan_names, &v);
    cfg->on_nan = (fl_on_nan)v;
    return rc;
}

/* gkey.mean or gkey.std (gkey "data" or "models.[i].data"): 1 to 3 numbers
 * (1 or one per channel; the channel count is checked against the data file
 * by fl_config_check_data). */
fl_code cfg_per_channel(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, cfg_range r,
                        double *v, int *n, int *line)
{
    char key[CFG_KEY_MAX], ekey[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(g, name);
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, name);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return cfg_fail(c, s, key, "expected an array [ ... ], found %s", cfg_type_name(s));
    *n = config_setting_length(s);
    if (*n < 1 || *n > 3)
        return cfg_fail(c, s, key, "expected 1 or 3 values (one for every channel, or one per channel), found %d", *n);
    *line = (int)config_setting_source_line(s);
    for (int i = 0; i < *n; i++) {
        cfg_key_index(ekey, key, i);
        fl_code rc = cfg_float(c, config_setting_get_elem(s, (unsigned)i), ekey, r, &v[i]);
        if (rc)
            return rc;
    }
    return FL_OK;
}

/* gkey.file of group g into out (cap bytes), which must be readable. */
fl_code cfg_data_file(cfg_ctx *c, const config_setting_t *s, const char *key, char *out, size_t cap)
{
    fl_code rc = cfg_string(c, s, key, out, cap);
    if (rc)
        return rc;
    if (access(out, R_OK) != 0)
        return cfg_fail(c, s, key,
                        "cannot read \"%s\" (%s) HINT: relative paths start at the working "
                        "directory; foldline prep writes the data file",
                        out, strerror(errno));
    return FL_OK;
}

/* data.file may be absent when every model gives its own (checked after the
 * models, by resolve_model_data). */
static fl_code load_data(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    const config_setting_t *g, *s;
    fl_code rc = section(c, root, "data", data_keys, &g);
    if (rc)
        return rc;
    if ((s = cfg_member(g, "file"))) {
        cfg->data_file_line = (int)config_setting_source_line(s);
        if ((rc = cfg_data_file(c, s, "data.file", cfg->data_file, sizeof cfg->data_file)))
            return rc;
    }
    if ((rc = cfg_per_channel(c, g, "data", "mean", any_number, cfg->mean, &cfg->n_mean, &cfg->mean_line)) ||
        (rc = cfg_per_channel(c, g, "data", "std", cfg_positive, cfg->std, &cfg->n_std, &cfg->std_line)))
        return rc;
    int cache = cfg->data_cache, fcache = cfg->feature_cache, verify = cfg->data_verify;
    if ((rc = cfg_opt_enum(c, g, "data", "cache", fl_data_cache_names, &cache)) ||
        (rc = cfg_opt_enum(c, g, "data", "feature_cache", fl_feature_cache_names, &fcache)) ||
        (rc = cfg_opt_float(c, g, "data", "feature_cache_mb", cfg_nonnegative, &cfg->feature_cache_mb)) ||
        (rc = cfg_opt_enum(c, g, "data", "verify", fl_data_verify_names, &verify)))
        return rc;
    cfg->data_cache = (fl_data_cache)cache;
    cfg->feature_cache = (fl_feature_cache)fcache;
    cfg->data_verify = (fl_data_verify)verify;
    return FL_OK;
}

/* Each model's data keys it does not give itself come from the top-level
 * data; a model without a data file of either kind is an error. */
static fl_code resolve_model_data(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    for (int i = 0; i < cfg->n_models; i++) {
        fl_model_cfg *m = &cfg->models[i];
        if (!m->own_data_file) {
            if (!cfg->data_file[0]) {
                int own = -1;
                for (int j = 0; j < cfg->n_models && own < 0; j++)
                    own = cfg->models[j].own_data_file ? j : -1;
                if (own < 0)
                    return cfg_missing(c, cfg_member(root, "data"), "data", "file",
                                       "the data file foldline prep wrote, e.g. file = \"data/x.h5\"");
                char gkey[CFG_KEY_MAX], hint[256];
                cfg_key_index(gkey, "models", i);
                snprintf(hint, sizeof hint,
                         "models.[%d] gives its own data.file but this model has none and the top level has no "
                         "data.file to fall back to; give it data = { file = \"...\"; } or set data.file",
                         own);
                return cfg_missing(c, config_setting_get_elem(cfg_member(root, "models"), (unsigned)i), gkey,
                                   "data.file", hint);
            }
            snprintf(m->data_file, sizeof m->data_file, "%s", cfg->data_file);
            m->data_file_line = cfg->data_file_line;
        }
        if (!m->own_mean) {
            m->n_mean = cfg->n_mean;
            memcpy(m->mean, cfg->mean, sizeof m->mean);
            m->mean_line = cfg->mean_line;
        }
        if (!m->own_precision) {
            m->precision = cfg->precision;
            m->precision_line = cfg->precision_line;
        }
        if (!m->own_std) {
            m->n_std = cfg->n_std;
            memcpy(m->std, cfg->std, sizeof m->std);
            m->std_line = cfg->std_line;
        }
    }
    return FL_OK;
}

static fl_code load_folds(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    char ekey[CFG_KEY_MAX];
    const config_setting_t *g, *s;
    fl_code rc = section(c, root, "folds", folds_keys, &g);
    if (rc || !(s = cfg_member(g, "use")))
        return rc;
    if (config_setting_is_aggregate(s) && config_setting_length(s) == 0)
        return cfg_fail(c, s, "folds.use", "lists no fold HINT: leave folds.use out to train every fold");
    if ((rc = cfg_values(c, s, "folds.use", 1, FL_MAX_FOLDS, &cfg->n_folds_use)))
        return rc;
    cfg->folds_use_line = (int)config_setting_source_line(s);
    for (int i = 0; i < cfg->n_folds_use; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        long long fold;
        cfg_key_index(ekey, "folds.use", i);
        if ((rc = cfg_int(c, e, ekey, 0, FL_MAX_FOLDS - 1, &fold)))
            return rc;
        cfg->folds_use[i] = (int)fold;
        for (int j = 0; j < i; j++)
            if (cfg->folds_use[j] == fold)
                return cfg_fail(c, e, ekey, "fold %lld is listed twice", fold);
    }
    return FL_OK;
}

static fl_code load_dist(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    const config_setting_t *g;
    fl_code rc = section(c, root, "dist", dist_keys, &g);
    if (rc || !g)
        return rc;
    const config_setting_t *s;
    if ((s = cfg_member(g, "ranks_per_job")))
        cfg->ranks_per_job_line = (int)config_setting_source_line(s);
    if ((s = cfg_member(g, "backend")))
        cfg->backend_line = (int)config_setting_source_line(s);
    if ((rc = cfg_opt_int(c, g, "dist", "ranks_per_job", 0, INT_MAX, &cfg->ranks_per_job)))
        return rc;
    if ((rc = cfg_opt_float(c, g, "dist", "timeout_s", cfg_positive, &cfg->timeout_s)))
        return rc;
    const cfg_range lock_timeout = {FL_JOBLOCK_TIMEOUT_MIN, INFINITY, 0, 1};
    if ((rc = cfg_opt_float(c, g, "dist", "lock_timeout_s", lock_timeout, &cfg->lock_timeout_s)) ||
        (rc = cfg_opt_bool(c, g, "dist", "overlap", &cfg->overlap)) ||
        (rc = cfg_opt_float(c, g, "dist", "bucket_mb", cfg_positive, &cfg->bucket_mb)))
        return rc;
    int v = cfg->backend;
    rc = cfg_opt_enum(c, g, "dist", "backend", fl_dist_backend_names, &v);
    cfg->backend = (fl_dist_backend)v;
    return rc;
}

static fl_code load_models(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    char key[CFG_KEY_MAX], name_key[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(root, "models");
    if (!s)
        return cfg_missing(c, NULL, "", "models",
                           "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 10; } );");
    int n = config_setting_is_aggregate(s) ? config_setting_length(s) : 0;
    if (!config_setting_is_list(s) && !(config_setting_is_array(s) && n == 0))
        return cfg_fail(c, s, "models", "expected a list ( { ... }, ... ), found %s", cfg_type_name(s));
    if (n == 0)
        return cfg_fail(c, s, "models",
                        "lists no model HINT: models = ( { name = \"a\"; backbone = \"resnet18\"; "
                        "epochs = 10; } );");
    if (n > FL_MAX_MODELS)
        return cfg_fail(c, s, "models", "expected at most %d models, found %d", FL_MAX_MODELS, n);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        cfg_key_index(key, "models", i);
        fl_code rc = cfg_model(c, m, key, &cfg->models[i]);
        if (rc)
            return rc;
        cfg->n_models = i + 1;
        for (int j = 0; j < i; j++) {
            if (strcmp(cfg->models[j].name, cfg->models[i].name) != 0)
                continue;
            cfg_key(name_key, key, "name");
            return cfg_fail(c, cfg_member(m, "name"), name_key,
                            "\"%s\" is already the name of models.[%d] HINT: model "
                            "names must be unique, each names a folder of the run",
                            cfg->models[i].name, j);
        }
    }
    return FL_OK;
}

static fl_code load_vote(cfg_ctx *c, const config_setting_t *root, fl_train_config *cfg)
{
    char ekey[CFG_KEY_MAX];
    const config_setting_t *g, *s;
    fl_code rc = section(c, root, "vote", vote_keys, &g);
    if (rc || !g)
        return rc;
    int method = cfg->vote_method;
    if ((rc = cfg_opt_enum(c, g, "vote", "method", fl_vote_method_names, &method)))
        return rc;
    cfg->vote_method = (fl_vote_method)method;
    if (!(s = cfg_member(g, "weights")))
        return FL_OK;
    int n;
    if ((rc = cfg_values(c, s, "vote.weights", 0, INT_MAX, &n)))
        return rc;
    if (n != cfg->n_models)
        return cfg_fail(c, s, "vote.weights", "expected %d value%s (one per model), found %d", cfg->n_models,
                        cfg->n_models == 1 ? "" : "s", n);
    for (int i = 0; i < n; i++) {
        cfg_key_index(ekey, "vote.weights", i);
        if ((rc = cfg_float(c, config_setting_get_elem(s, (unsigned)i), ekey, cfg_positive,
                            &cfg->models[i].vote_weight)))
            return rc;
    }
    return FL_OK;
}

static fl_code parse_error(cfg_ctx *c, const config_t *conf)
{
    const char *file = config_error_file(conf) ? config_error_file(conf) : c->path;
    const char *text = config_error_text(conf) ? config_error_text(conf) : "unknown error";
    const char *hint = "";
    if (strstr(text, "mismatched element type"))
        hint = " HINT: the values of an array [ ... ] share one type: write 1.0, not 1, among floats";
    else if (strstr(text, "duplicate setting"))
        hint = " HINT: each key may appear once in a group";
    if (config_error_type(conf) == CONFIG_ERR_FILE_IO)
        return fl_fail(c->err, FL_ECONFIG, "%s:%d: cannot read an included file (libconfig: %s)", file,
                       config_error_line(conf), text);
    return fl_fail(c->err, FL_ECONFIG, "%s:%d: syntax error (libconfig: %s)%s", file, config_error_line(conf), text,
                   hint);
}

fl_code fl_config_load(const char *path, const char *const *overrides, int n_overrides, fl_train_config *cfg,
                       fl_error *err)
{
    cfg_ctx c = {.path = path, .err = err};
    config_t conf;
    fl_code rc = FL_OK;
    if (strlen(path) >= sizeof cfg->path)
        return fl_fail(err, FL_ECONFIG, "%.64s...: the config path is too long", path);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return fl_fail(err, FL_EUSAGE,
                       "%s: CONFIG is a directory, not a config file HINT: name the .cfg file, e.g. "
                       "foldline train configs/demo.cfg",
                       path);
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, FL_EUSAGE, "%s: cannot read the config file (%s)%s", path, strerror(errno),
                       errno == ENOENT ? " HINT: check the path; configs/ holds examples" : "");
    fclose(f);
    config_init(&conf);
    if (!config_read_file(&conf, path)) {
        rc = parse_error(&c, &conf);
        goto done;
    }
    for (int i = 0; i < n_overrides && !rc; i++)
        rc = cfg_apply_override(&c, &conf, overrides[i]);
    if (rc)
        goto done;
    config_defaults(cfg);
    strcpy(cfg->path, path);
    const config_setting_t *root = config_root_setting(&conf);
    if ((rc = cfg_members(&c, root, "", top_keys, "the top level")) || (rc = load_run(&c, root, cfg)) ||
        (rc = load_data(&c, root, cfg)) || (rc = load_folds(&c, root, cfg)) || (rc = load_dist(&c, root, cfg)) ||
        (rc = load_models(&c, root, cfg)) || (rc = resolve_model_data(&c, root, cfg)))
        goto done;
    rc = load_vote(&c, root, cfg);
done:
    config_destroy(&conf);
    cfg_ctx_free(&c);
    return rc;
}

/* "file:line", or "file (--set)" for a value an override gave (line 0). */
static void data_where(const fl_train_config *cfg, int line, char *out, size_t n)
{
    if (line > 0)
        snprintf(out, n, "%s:%d", cfg->path, line);
    else
        snprintf(out, n, "%s (--set)", cfg->path);
}

/* key is "data.mean" or "models.[i].data.mean", by where the model's value came from. */
static fl_code check_channels(const fl_train_config *cfg, int model, const char *name, int own, int n, int line,
                              int channels, fl_error *err)
{
    char where[FL_PATH_MAX + 32], key[64];
    if (n == 0 || n == 1 || n == channels)
        return FL_OK;
    data_where(cfg, line, where, sizeof where);
    if (own)
        snprintf(key, sizeof key, "models.[%d].data.%s", model, name);
    else
        snprintf(key, sizeof key, "data.%s", name);
    if (channels == 1)
        return fl_fail(err, FL_ECONFIG, "%s: %s: expected 1 value (the data file has 1 channel), found %d", where, key,
                       n);
    return fl_fail(err, FL_ECONFIG, "%s: %s: expected 1 or %d values (the data file has %d channels), found %d", where,
                   key, channels, channels, n);
}

fl_code fl_config_check_data(const fl_train_config *cfg, int model, int channels, int folds, fl_error *err)
{
    char where[FL_PATH_MAX + 32];
    const fl_model_cfg *m = &cfg->models[model];
    fl_code rc;
    if ((rc = check_channels(cfg, model, "mean", m->own_mean, m->n_mean, m->mean_line, channels, err)) ||
        (rc = check_channels(cfg, model, "std", m->own_std, m->n_std, m->std_line, channels, err)))
        return rc;
    data_where(cfg, cfg->folds_use_line, where, sizeof where);
    for (int i = 0; i < cfg->n_folds_use; i++) {
        int fold = cfg->folds_use[i];
        if (fold < 0 || fold >= folds)
            return fl_fail(err, FL_ECONFIG,
                           "%s: folds.use.[%d]: fold %d is not in the data file HINT: it has %d "
                           "folds, 0..%d",
                           where, i, fold, folds, folds - 1);
        for (int j = 0; j < i; j++)
            if (cfg->folds_use[j] == fold)
                return fl_fail(err, FL_ECONFIG, "%s: folds.use.[%d]: fold %d is listed twice", where, i, fold);
    }
    return FL_OK;
}

fl_code fl_config_check_world(const fl_train_config *cfg, int world_size, fl_error *err)
{
    char where[FL_PATH_MAX + 32];
    int g = cfg->ranks_per_job;
    if (g == 0 || world_size % g == 0) /* 0: one group of every rank */
        return FL_OK;
    data_where(cfg, cfg->ranks_per_job_line, where, sizeof where);
    int up = (world_size / g + 1) * g;
    return fl_fail(err, FL_ECONFIG,
                   "%s: dist.ranks_per_job: %d does not divide the %d rank%s of this run (each job runs on a group "
                   "of %d ranks) HINT: start a multiple of %d ranks (mpirun -np %d) or set dist.ranks_per_job to a "
                   "divisor of %d",
                   where, g, world_size, world_size == 1 ? "" : "s", g, g, up, world_size);
}

fl_code fl_config_check_backend(const fl_train_config *cfg, int cuda, int nccl_built, const char *host, fl_error *err)
{
    char where[FL_PATH_MAX + 32];
    if (cfg->backend != FL_DIST_NCCL || (cuda && nccl_built))
        return FL_OK;
    data_where(cfg, cfg->backend_line, where, sizeof where);
    if (!cuda)
        return fl_fail(err, FL_ECONFIG,
                       "%s: dist.backend: \"nccl\" needs CUDA tensors, but %s has no CUDA device for this rank "
                       "HINT: set dist.backend = \"auto\" (NCCL on GPUs, MPI on CPUs) or \"mpi\"",
                       where, host);
    return fl_fail(err, FL_ECONFIG,
                   "%s: dist.backend: \"nccl\", but this foldline was built without NCCL HINT: rebuild with "
                   "NCCL_ROOT or CUDA_HOME pointing at NCCL, or set dist.backend = \"mpi\"",
                   where);
}
