/* config_model.c -- one element of the models list: backbone, head, optimiser,
 * schedule, prediction, TTA and the augmentation stages. Keys that only one
 * variant uses (momentum for sgd, degrees for rotate, backbone_lr_scale for a
 * trained backbone, ...) are errors on the others: a setting foldline would
 * ignore is never accepted silently. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config_priv.h"

static const char *const model_keys[] = {"name",
                                         "backbone",
                                         "freeze_backbone",
                                         "backbone_lr_scale",
                                         "fuse_folds",
                                         "head",
                                         "epochs",
                                         "batch",
                                         "optimizer",
                                         "clip_grad_norm",
                                         "schedule",
                                         "label_smoothing",
                                         "predict_with",
                                         "tta",
                                         "augment",
                                         "data",
                                         "precision",
                                         NULL};
/* A model's own data (the rest of data, e.g. cache, is the run's). */
static const char *const model_data_keys[] = {"file", "mean", "std", NULL};
static const char *const head_keys[] = {"type", "hidden", "act", NULL};
static const char *const optim_keys[] = {"type", "lr", "weight_decay", "momentum", "nesterov", NULL};
static const char *const sched_keys[] = {"type", "step", "gamma", "warmup_epochs", "warmup", "min_lr", NULL};
static const char *const tta_views[] = {"hflip", "vflip", NULL}; /* order of fl_tta_kind */
static const char *const stage_keys[] = {"from_epoch", "ops", NULL};
static const char *const op_keys[] = {"op",
                                      "p",
                                      "degrees",
                                      "alpha",
                                      "sigma",
                                      "num_steps",
                                      "distort_limit",
                                      "brightness_limit",
                                      "contrast_limit",
                                      "num_holes",
                                      "size",
                                      NULL};
static const char *const op_names[] = {"hflip",  "vflip", "rotate", "elastic", "grid_distortion", "brightness_contrast",
                                       "cutout", NULL}; /* order of fl_op_kind */
#define OP_LIST "hflip, vflip, rotate, elastic, grid_distortion, brightness_contrast, cutout"
/* Keys each op takes, by fl_op_kind. */
static const char *const op_takes[][8] = {
    {"op", "p", NULL},
    {"op", "p", NULL},
    {"op", "p", "degrees", NULL},
    {"op", "p", "alpha", "sigma", NULL},
    {"op", "p", "num_steps", "distort_limit", NULL},
    {"op", "p", "brightness_limit", "contrast_limit", NULL},
    {"op", "p", "num_holes", "size", NULL},
};
static const cfg_range degrees_range = {0, 180, 1, 0};

static void model_defaults(fl_model_cfg *m)
{
    memset(m, 0, sizeof *m);
    /* head_type, head_act, optimizer, schedule, predict_with, precision: 0,
     * each enum's default (base/names.h) */
    m->head_hidden = 1024;
    m->batch = 64;
    m->lr = 1e-3;
    m->momentum = 0.9;
    m->step_size = 10;
    m->gamma = 0.1;
    m->warmup = 0.3;
    m->vote_weight = 1.0;
    m->backbone_lr_scale = 1.0;
}

/* The keys of group g listed in keys are used only when type (an index of
 * names) is wanted. */
static fl_code only_with_type(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *const *keys,
                              const char *const *names, int type_idx, int wanted_idx)
{
    const char *type = fl_name_of(names, type_idx), *wanted = fl_name_of(names, wanted_idx);
    char key[CFG_KEY_MAX];
    for (int i = 0; keys[i]; i++) {
        const config_setting_t *s = cfg_member(g, keys[i]);
        if (!s || type_idx == wanted_idx)
            continue;
        cfg_key(key, gkey, keys[i]);
        return cfg_fail(c, s, key, "only used with type \"%s\", found type \"%s\" HINT: remove it or set type = \"%s\"",
                        wanted, type, wanted);
    }
    return FL_OK;
}

/* Reads the member `name` of g as a group (absent: *out = NULL). */
static fl_code sub_group(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name,
                         const char *const *keys, const config_setting_t **out, char *key)
{
    cfg_key(key, gkey, name);
    *out = cfg_member(g, name);
    if (!*out)
        return FL_OK;
    fl_code rc = cfg_group(c, *out, key);
    return rc ? rc : cfg_members(c, *out, key, keys, name);
}

/* "torchscript:PATH": a relative PATH starts at the config file's folder
 * (also when --set gives it), so a config and its modules move together.
 * m->backbone gets "torchscript:" and the resolved path, which must be readable. */
static fl_code load_torchscript(cfg_ctx *c, const config_setting_t *s, const char *key, fl_model_cfg *m)
{
    char given[FL_PATH_MAX], dir[FL_PATH_MAX];
    snprintf(given, sizeof given, "%s", m->backbone + strlen(FL_TORCHSCRIPT_PREFIX));
    if (!given[0])
        return cfg_fail(c, s, key,
                        "expected \"torchscript:PATH\" with the path of a TorchScript file, found \"%s\" HINT: "
                        "launch/export_timm.py writes one",
                        m->backbone);
    snprintf(dir, sizeof dir, "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (given[0] == '/' || !slash)
        dir[0] = '\0';
    else
        slash[1] = '\0'; /* keeps the slash: "configs/" */
    int n = snprintf(m->backbone, sizeof m->backbone, "%s%s%s", FL_TORCHSCRIPT_PREFIX, dir, given);
    if (n < 0 || (size_t)n >= sizeof m->backbone)
        return cfg_fail(c, s, key, "the path \"%s%s\" is too long", dir, given);
    const char *path = m->backbone + strlen(FL_TORCHSCRIPT_PREFIX);
    if (access(path, R_OK) != 0 && given[0] == '/')
        return cfg_fail(c, s, key,
                        "cannot read the TorchScript module \"%s\" (%s) HINT: the path is absolute, so it is read "
                        "as it is: check that the module is there; launch/export_timm.py exports timm models",
                        path, strerror(errno));
    if (access(path, R_OK) != 0)
        return cfg_fail(c, s, key,
                        "cannot read the TorchScript module \"%s\" (%s) HINT: a relative path starts at the config "
                        "file's folder (%s), not the working directory; launch/export_timm.py exports timm models",
                        path, strerror(errno), dir[0] ? dir : "./");
    return FL_OK;
}

static fl_code load_backbone(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    char key[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(g, "backbone");
    if (!s) {
        char list[128], hint[160];
        fl_names_join(list, sizeof list, fl_backbone_names, NULL, 0, "", ", ", ", ");
        snprintf(hint, sizeof hint, "one of %s, torchscript:PATH", list);
        return cfg_missing(c, g, gkey, "backbone", hint);
    }
    cfg_key(key, gkey, "backbone");
    m->backbone_line = (int)config_setting_source_line(s);
    fl_code rc = cfg_string(c, s, key, m->backbone, sizeof m->backbone);
    if (rc)
        return rc;
    if (strncmp(m->backbone, FL_TORCHSCRIPT_PREFIX, strlen(FL_TORCHSCRIPT_PREFIX)) == 0)
        return load_torchscript(c, s, key, m);
    if (fl_name_find(fl_backbone_names, m->backbone) >= 0)
        return FL_OK;
    char list[128];
    cfg_join(list, sizeof list, fl_backbone_names);
    return cfg_fail(c, s, key, "unknown value \"%s\" HINT: use one of %s, or torchscript:PATH (a TorchScript file)",
                    m->backbone, list);
}

/* fuse_folds (default: with a frozen backbone), only beside a frozen backbone. */
static fl_code load_fuse_folds(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    char key[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(g, "fuse_folds");
    m->fuse_folds = m->freeze_backbone;
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, "fuse_folds");
    fl_code rc = cfg_bool(c, s, key, &m->fuse_folds);
    if (!rc && m->fuse_folds && !m->freeze_backbone)
        return cfg_fail(c, s, key,
                        "only a frozen backbone's folds can share one backbone pass HINT: set freeze_backbone = "
                        "true, or remove fuse_folds");
    return rc;
}

/* backbone_lr_scale > 0, only beside a trained backbone (a frozen one has no lr). */
static fl_code load_lr_scale(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    char key[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(g, "backbone_lr_scale");
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, "backbone_lr_scale");
    if (m->freeze_backbone)
        return cfg_fail(c, s, key,
                        "only used with a trained backbone, but freeze_backbone = true HINT: remove it, or set "
                        "freeze_backbone = false to fine-tune the backbone at lr * backbone_lr_scale");
    return cfg_float(c, s, key, cfg_positive, &m->backbone_lr_scale);
}

static fl_code load_head(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    static const char *const mlp_keys[] = {"hidden", "act", NULL};
    char key[CFG_KEY_MAX];
    const config_setting_t *h;
    fl_code rc = sub_group(c, g, gkey, "head", head_keys, &h, key);
    if (rc || !h)
        return rc;
    int type = m->head_type, act = m->head_act;
    if ((rc = cfg_opt_enum(c, h, key, "type", fl_head_names, &type)) ||
        (rc = only_with_type(c, h, key, mlp_keys, fl_head_names, type, FL_HEAD_MLP3)) ||
        (rc = cfg_opt_int(c, h, key, "hidden", 1, INT_MAX, &m->head_hidden)) ||
        (rc = cfg_opt_enum(c, h, key, "act", fl_act_names, &act)))
        return rc;
    m->head_type = (fl_head)type;
    m->head_act = (fl_act)act;
    return FL_OK;
}

static fl_code load_optimizer(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    static const char *const sgd_keys[] = {"momentum", "nesterov", NULL};
    char key[CFG_KEY_MAX];
    const config_setting_t *o;
    fl_code rc = sub_group(c, g, gkey, "optimizer", optim_keys, &o, key);
    if (rc || !o)
        return rc;
    int type = m->optimizer;
    if ((rc = cfg_opt_enum(c, o, key, "type", fl_optim_names, &type)) ||
        (rc = only_with_type(c, o, key, sgd_keys, fl_optim_names, type, FL_OPTIM_SGD)) ||
        (rc = cfg_opt_float(c, o, key, "lr", cfg_positive, &m->lr)) ||
        (rc = cfg_opt_float(c, o, key, "weight_decay", cfg_nonnegative, &m->weight_decay)) ||
        (rc = cfg_opt_float(c, o, key, "momentum", cfg_unit_open_hi, &m->momentum)))
        return rc;
    m->optimizer = (fl_optim)type;
    return cfg_opt_bool(c, o, key, "nesterov", &m->nesterov);
}

static fl_code load_schedule(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    static const char *const step_keys[] = {"step", "gamma", NULL};
    static const char *const cosine_keys[] = {"warmup_epochs", NULL};
    static const char *const onecycle_keys[] = {"warmup", NULL};
    char key[CFG_KEY_MAX];
    const config_setting_t *s;
    fl_code rc = sub_group(c, g, gkey, "schedule", sched_keys, &s, key);
    if (rc || !s)
        return rc;
    int type = m->schedule;
    if ((rc = cfg_opt_enum(c, s, key, "type", fl_sched_names, &type)) ||
        (rc = only_with_type(c, s, key, step_keys, fl_sched_names, type, FL_SCHED_STEP)) ||
        (rc = only_with_type(c, s, key, cosine_keys, fl_sched_names, type, FL_SCHED_COSINE)) ||
        (rc = only_with_type(c, s, key, onecycle_keys, fl_sched_names, type, FL_SCHED_ONECYCLE)) ||
        (rc = cfg_opt_int(c, s, key, "step", 1, INT_MAX, &m->step_size)) ||
        (rc = cfg_opt_float(c, s, key, "gamma", cfg_unit_open_lo, &m->gamma)) ||
        (rc = cfg_opt_int(c, s, key, "warmup_epochs", 0, INT_MAX, &m->warmup_epochs)) ||
        (rc = cfg_opt_float(c, s, key, "warmup", cfg_unit_open_hi, &m->warmup)))
        return rc;
    m->schedule = (fl_sched)type;
    const config_setting_t *min_lr = cfg_member(s, "min_lr");
    if (min_lr && m->schedule != FL_SCHED_COSINE && m->schedule != FL_SCHED_ONECYCLE) {
        char mkey[CFG_KEY_MAX];
        cfg_key(mkey, key, "min_lr");
        return cfg_fail(c, min_lr, mkey,
                        "only used with type \"cosine\" or \"onecycle\", found type \"%s\" HINT: remove it or set "
                        "type = \"cosine\" or \"onecycle\"",
                        fl_sched_name(m->schedule));
    }
    return cfg_opt_float(c, s, key, "min_lr", cfg_nonnegative, &m->min_lr);
}

static fl_code load_tta(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    char key[CFG_KEY_MAX], ekey[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(g, "tta");
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, "tta");
    fl_code rc = cfg_values(c, s, key, 0, FL_MAX_TTA, &m->n_tta);
    for (int i = 0; !rc && i < m->n_tta; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int kind;
        cfg_key_index(ekey, key, i);
        if ((rc = cfg_enum(c, e, ekey, tta_views, NULL, 0, &kind)))
            break;
        m->tta[i] = (fl_tta_kind)kind;
        for (int j = 0; j < i; j++)
            if ((int)m->tta[j] == kind)
                return cfg_fail(c, e, ekey, "\"%s\" is listed twice", tta_views[kind]);
    }
    return rc;
}

/* Reports member `name` of op group s when the op does not take it. */
static fl_code op_member_check(cfg_ctx *c, const config_setting_t *s, const char *okey, int kind)
{
    char key[CFG_KEY_MAX], list[128];
    cfg_join(list, sizeof list, op_takes[kind]);
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(e);
        if (cfg_in(name, op_takes[kind]) >= 0)
            continue;
        cfg_key(key, okey, name);
        if (cfg_in(name, op_keys) >= 0)
            return cfg_fail(c, e, key, "not a parameter of op '%s' HINT: %s takes %s", op_names[kind], op_names[kind],
                            list);
        return cfg_fail(c, e, key, "unknown key HINT: %s takes %s", op_names[kind], list);
    }
    return FL_OK;
}

/* Member name of op group s must be there (hint: what it takes). */
static fl_code op_require(cfg_ctx *c, const config_setting_t *s, const char *okey, const char *name, const char *hint)
{
    return cfg_member(s, name) ? FL_OK : cfg_missing(c, s, okey, name, hint);
}

/* cutout's size: an integer is pixels (>= 1), a float a fraction (0, 1] of each side. */
static fl_code load_cutout_size(cfg_ctx *c, const config_setting_t *s, const char *okey, fl_aug_op *op)
{
    char key[CFG_KEY_MAX];
    const config_setting_t *v = cfg_member(s, "size");
    cfg_key(key, okey, "size");
    if (config_setting_type(v) == CONFIG_TYPE_INT || config_setting_type(v) == CONFIG_TYPE_INT64) {
        long long px;
        fl_code rc = cfg_int(c, v, key, 1, INT_MAX, &px);
        op->size = (double)px;
        op->size_in_pixels = 1;
        return rc;
    }
    if (config_setting_type(v) != CONFIG_TYPE_FLOAT)
        return cfg_fail(c, v, key, "expected a number, found %s", cfg_type_name(v));
    op->size = config_setting_get_float(v);
    if (!(op->size > 0 && op->size <= 1))
        return cfg_fail(c, v, key,
                        "a fraction of the side must be in (0, 1], found %g HINT: an integer is a size in pixels, "
                        "e.g. size = 8",
                        op->size);
    return FL_OK;
}

/* The parameters of op (kind set) from group s. */
static fl_code load_op_params(cfg_ctx *c, const config_setting_t *s, const char *okey, fl_aug_op *op)
{
    fl_code rc = FL_OK;
    switch (op->kind) {
    case FL_OP_ROTATE:
        if ((rc = op_require(c, s, okey, "degrees", "rotate takes degrees in (0, 180], e.g. degrees = 15.0")))
            return rc;
        return cfg_opt_float(c, s, okey, "degrees", degrees_range, &op->degrees);
    case FL_OP_ELASTIC: {
        static const char *hint = "elastic takes alpha >= 0 and sigma > 0 (pixels), e.g. alpha = 30.0; sigma = 4.0";
        if ((rc = op_require(c, s, okey, "alpha", hint)) || (rc = op_require(c, s, okey, "sigma", hint)) ||
            (rc = cfg_opt_float(c, s, okey, "alpha", cfg_nonnegative, &op->alpha)))
            return rc;
        return cfg_opt_float(c, s, okey, "sigma", cfg_positive, &op->sigma);
    }
    case FL_OP_GRID_DISTORTION: {
        static const char *hint =
            "grid_distortion takes num_steps in 1..32 and distort_limit in [0, 1), e.g. num_steps = 4; "
            "distort_limit = 0.2";
        if ((rc = op_require(c, s, okey, "num_steps", hint)) || (rc = op_require(c, s, okey, "distort_limit", hint)) ||
            (rc = cfg_opt_int(c, s, okey, "num_steps", 1, FL_MAX_GRID_STEPS, &op->num_steps)))
            return rc;
        return cfg_opt_float(c, s, okey, "distort_limit", cfg_unit_open_hi, &op->distort_limit);
    }
    case FL_OP_BRIGHTNESS_CONTRAST:
        op->brightness_limit = op->contrast_limit = 0.2;
        if ((rc = cfg_opt_float(c, s, okey, "brightness_limit", cfg_unit, &op->brightness_limit)))
            return rc;
        return cfg_opt_float(c, s, okey, "contrast_limit", cfg_unit, &op->contrast_limit);
    case FL_OP_CUTOUT: {
        static const char *hint = "cutout takes num_holes in 1..16 and size (pixels, or a fraction of the side), "
                                  "e.g. num_holes = 1; size = 8";
        if ((rc = op_require(c, s, okey, "num_holes", hint)) || (rc = op_require(c, s, okey, "size", hint)) ||
            (rc = cfg_opt_int(c, s, okey, "num_holes", 1, FL_MAX_HOLES, &op->num_holes)))
            return rc;
        return load_cutout_size(c, s, okey, op);
    }
    default:
        return FL_OK;
    }
}

static fl_code load_op(cfg_ctx *c, const config_setting_t *s, const char *okey, fl_aug_op *op)
{
    char key[CFG_KEY_MAX];
    fl_code rc = cfg_group(c, s, okey);
    if (rc)
        return rc;
    const config_setting_t *name = cfg_member(s, "op");
    if (!name)
        return cfg_missing(c, s, okey, "op", "one of " OP_LIST);
    cfg_key(key, okey, "op");
    if (config_setting_type(name) != CONFIG_TYPE_STRING)
        return cfg_enum(c, name, key, op_names, NULL, 0, NULL); /* reports the type */
    int kind = cfg_in(config_setting_get_string(name), op_names);
    if (kind < 0)
        return cfg_fail(c, name, key, "unknown op \"%s\" HINT: use one of " OP_LIST, config_setting_get_string(name));
    memset(op, 0, sizeof *op);
    op->kind = (fl_op_kind)kind;
    op->p = 0.5;
    if ((rc = op_member_check(c, s, okey, kind)) || (rc = cfg_opt_float(c, s, okey, "p", cfg_unit, &op->p)))
        return rc;
    return load_op_params(c, s, okey, op);
}

/* An empty array [ ] is accepted where a list ( ) is expected. */
static int is_list(const config_setting_t *s)
{
    return config_setting_is_list(s) || (config_setting_is_array(s) && config_setting_length(s) == 0);
}

static fl_code load_stage(cfg_ctx *c, const config_setting_t *s, const char *skey, int prev_from, int epochs,
                          fl_aug_stage *st)
{
    char key[CFG_KEY_MAX], okey[CFG_KEY_MAX];
    long long from;
    fl_code rc = cfg_group(c, s, skey);
    if (!rc)
        rc = cfg_members(c, s, skey, stage_keys, "an augment stage");
    if (rc)
        return rc;
    const config_setting_t *f = cfg_member(s, "from_epoch"), *ops = cfg_member(s, "ops");
    if (!f)
        return cfg_missing(c, s, skey, "from_epoch", "the 0-based epoch this stage starts at");
    cfg_key(key, skey, "from_epoch");
    if ((rc = cfg_int(c, f, key, 0, INT_MAX, &from)))
        return rc;
    if (from <= prev_from)
        return cfg_fail(c, f, key,
                        "must be > %d (the previous stage's from_epoch), found %lld HINT: list the stages "
                        "in the order they start",
                        prev_from, from);
    if (from >= epochs)
        return cfg_fail(c, f, key,
                        "%lld is beyond the model's epochs = %d (epochs count from 0 here: 0..%d), so this stage "
                        "would never run HINT: set from_epoch below %d, or raise epochs",
                        from, epochs, epochs - 1, epochs);
    st->from_epoch = (int)from;
    st->n_ops = 0;
    if (!ops)
        return FL_OK;
    cfg_key(key, skey, "ops");
    if (!is_list(ops))
        return cfg_fail(c, ops, key, "expected a list ( { op = ...; }, ... ), found %s", cfg_type_name(ops));
    if (config_setting_length(ops) > FL_MAX_OPS)
        return cfg_fail(c, ops, key, "expected at most %d ops, found %d", FL_MAX_OPS, config_setting_length(ops));
    for (int i = 0; i < config_setting_length(ops); i++) {
        cfg_key_index(okey, key, i);
        if ((rc = load_op(c, config_setting_get_elem(ops, (unsigned)i), okey, &st->ops[i])))
            return rc;
        st->n_ops = i + 1;
    }
    return FL_OK;
}

static fl_code load_augment(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    char key[CFG_KEY_MAX], skey[CFG_KEY_MAX];
    const config_setting_t *s = cfg_member(g, "augment");
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, "augment");
    if (!is_list(s))
        return cfg_fail(c, s, key, "expected a list ( { from_epoch = ...; ops = ( ... ); }, ... ), found %s",
                        cfg_type_name(s));
    int n = config_setting_length(s);
    if (n > FL_MAX_STAGES)
        return cfg_fail(c, s, key, "expected at most %d stages, found %d", FL_MAX_STAGES, n);
    for (int i = 0; i < n; i++) {
        cfg_key_index(skey, key, i);
        fl_code rc = load_stage(c, config_setting_get_elem(s, (unsigned)i), skey, i ? m->stages[i - 1].from_epoch : -1,
                                m->epochs, &m->stages[i]);
        if (rc)
            return rc;
        m->n_stages = i + 1;
    }
    return FL_OK;
}

/* models.[i].data: the keys it gives are the model's own (own_*); the
 * others come from the top-level data after every model is read. */
static fl_code load_model_data(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_model_cfg *m)
{
    static const cfg_range any_number = {-INFINITY, INFINITY, 1, 1};
    char key[CFG_KEY_MAX], fkey[CFG_KEY_MAX];
    const config_setting_t *d, *s;
    cfg_key(key, gkey, "data");
    if (!(d = cfg_member(g, "data")))
        return FL_OK;
    fl_code rc = cfg_group(c, d, key);
    if (rc || (rc = cfg_members(c, d, key, model_data_keys, "a model's data (data.cache is the run's)")))
        return rc;
    if ((s = cfg_member(d, "file"))) {
        cfg_key(fkey, key, "file");
        m->own_data_file = 1;
        m->data_file_line = (int)config_setting_source_line(s);
        if ((rc = cfg_data_file(c, s, fkey, m->data_file, sizeof m->data_file)))
            return rc;
    }
    m->own_mean = cfg_member(d, "mean") != NULL;
    m->own_std = cfg_member(d, "std") != NULL;
    if ((rc = cfg_per_channel(c, d, key, "mean", any_number, m->mean, &m->n_mean, &m->mean_line)))
        return rc;
    return cfg_per_channel(c, d, key, "std", cfg_positive, m->std, &m->n_std, &m->std_line);
}

fl_code cfg_model(cfg_ctx *c, const config_setting_t *s, const char *gkey, fl_model_cfg *m)
{
    char key[CFG_KEY_MAX];
    fl_code rc = cfg_group(c, s, gkey);
    if (!rc)
        rc = cfg_members(c, s, gkey, model_keys, "a model");
    if (rc)
        return rc;
    model_defaults(m);
    m->line = (int)config_setting_source_line(s);
    const config_setting_t *name = cfg_member(s, "name");
    if (!name)
        return cfg_missing(c, s, gkey, "name", "it names the model's folder, e.g. name = \"cnn_a\"");
    cfg_key(key, gkey, "name");
    if ((rc = cfg_name(c, name, key, m->name, sizeof m->name)))
        return rc;
    if (strcmp(m->name, "ensemble") == 0)
        return cfg_fail(c, name, key, "\"ensemble\" is reserved HINT: vote writes RUN_DIR/ensemble; pick another name");
    if ((rc = load_backbone(c, s, gkey, m)) ||
        (rc = cfg_opt_bool(c, s, gkey, "freeze_backbone", &m->freeze_backbone)) ||
        (rc = load_lr_scale(c, s, gkey, m)) || (rc = load_fuse_folds(c, s, gkey, m)))
        return rc;
    if ((rc = load_head(c, s, gkey, m)))
        return rc;
    if (!cfg_member(s, "epochs"))
        return cfg_missing(c, s, gkey, "epochs", "the number of training epochs, e.g. epochs = 30");
    const config_setting_t *batch = cfg_member(s, "batch");
    m->batch_line = batch ? (int)config_setting_source_line(batch) : 0;
    int predict_with = m->predict_with;
    if ((rc = cfg_opt_int(c, s, gkey, "epochs", 1, INT_MAX, &m->epochs)) ||
        (rc = cfg_opt_int(c, s, gkey, "batch", 1, INT_MAX, &m->batch)) || (rc = load_optimizer(c, s, gkey, m)) ||
        (rc = cfg_opt_float(c, s, gkey, "clip_grad_norm", cfg_nonnegative, &m->clip_grad_norm)) ||
        (rc = load_schedule(c, s, gkey, m)) ||
        (rc = cfg_opt_float(c, s, gkey, "label_smoothing", cfg_unit_open_hi, &m->label_smoothing)) ||
        (rc = cfg_opt_enum(c, s, gkey, "predict_with", fl_predict_with_names, &predict_with)) ||
        (rc = load_tta(c, s, gkey, m)) || (rc = load_augment(c, s, gkey, m)))
        return rc;
    m->predict_with = (fl_predict_with)predict_with;
    m->own_precision = cfg_member(s, "precision") != NULL;
    if ((rc = cfg_opt_precision(c, s, gkey, &m->precision, &m->precision_line)))
        return rc;
    return load_model_data(c, s, gkey, m);
}

fl_code cfg_opt_precision(cfg_ctx *c, const config_setting_t *g, const char *gkey, fl_precision *out, int *line)
{
    const config_setting_t *s = cfg_member(g, "precision");
    if (!s)
        return FL_OK;
    *line = (int)config_setting_source_line(s);
    int v = *out;
    fl_code rc = cfg_opt_enum(c, g, gkey, "precision", fl_precision_names, &v);
    *out = (fl_precision)v;
    return rc;
}

fl_code fl_config_check_precision(const fl_train_config *cfg, int cuda, const char *host, fl_error *err)
{
    for (int i = 0; i < cfg->n_models && !cuda; i++) {
        const fl_model_cfg *m = &cfg->models[i];
        if (m->precision != FL_PRECISION_FP16)
            continue;
        char where[FL_PATH_MAX + 32], key[64];
        if (m->precision_line > 0)
            snprintf(where, sizeof where, "%s:%d", cfg->path, m->precision_line);
        else
            snprintf(where, sizeof where, "%s (--set)", cfg->path);
        if (m->own_precision)
            snprintf(key, sizeof key, "models.[%d].precision", i);
        else
            snprintf(key, sizeof key, "run.precision");
        return fl_fail(err, FL_ECONFIG,
                       "%s: %s: \"fp16\" needs a CUDA device, but %s has none for this rank (model %s) HINT: use "
                       "\"bf16\" on the CPU (its autocast is bfloat16), or \"fp32\"",
                       where, key, host, m->name);
    }
    return FL_OK;
}
