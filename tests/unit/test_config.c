/* test_config.c -- the config loader: docs/config.md's keys, defaults, every
 * kind of error with its line and key path, --set overrides, and the checks
 * against the data file. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "config/config.h"
#include "trainer/schedule.h"

static char cfg_path[600], data_path[600];
static fl_train_config cfg; /* large: not on the stack */
static fl_error err;

/* Writes text to a fresh config file, with every "@DATA@" replaced by the
 * path of an existing (empty) data file. */
static const char *write_cfg(const char *text)
{
    snprintf(cfg_path, sizeof cfg_path, "%s/fl_cfg_XXXXXX", test_tmpdir());
    int fd = mkstemp(cfg_path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        abort();
    for (const char *p = text; *p;) {
        if (strncmp(p, "@DATA@", 6) == 0) {
            fputs(data_path, f);
            p += 6;
        } else {
            fputc(*p++, f);
        }
    }
    fclose(f);
    return cfg_path;
}

static fl_code load_set(const char *text, const char *const *sets, int n_sets)
{
    fl_error_clear(&err);
    fl_code rc = fl_config_load(write_cfg(text), sets, n_sets, &cfg, &err);
    unlink(cfg_path);
    return rc;
}

static fl_code load(const char *text)
{
    return load_set(text, NULL, 0);
}

/* The message is exactly "<config path><rest>". */
#define CHECK_MSG(rest)                                                                                                \
    do {                                                                                                               \
        char want_[2048];                                                                                              \
        snprintf(want_, sizeof want_, "%s%s", cfg_path, rest);                                                         \
        CHECK_STR(err.msg, want_);                                                                                     \
    } while (0)

/* The smallest valid config: line 1 data, line 2 models. */
#define MINIMAL "data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n"

/* Loads MINIMAL with one more model key on line 3 (inside the model group). */
static fl_code load_model_key(const char *line3)
{
    char text[1024];
    snprintf(text, sizeof text,
             "data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3;\n"
             "%s\n} );\n",
             line3);
    return load(text);
}

static const char *design_example =
    "run    = { name = \"sketch\"; out_dir = \"runs\"; seed = 42; threads = 0; };  # 0: node's cores / its ranks\n"
    "data   = { file = \"@DATA@\"; mean = [0.485, 0.456, 0.406]; std = [0.229, 0.224, 0.225]; };\n"
    "folds  = { use = [0, 1, 2, 3, 4]; };\n"
    "dist   = { ranks_per_job = 1; backend = \"auto\"; };          # auto: nccl on CUDA, else mpi\n"
    "models = ( {\n"
    "    name = \"eva02_l_mlp3\";\n"
    "    backbone = \"resnet18\";      # or a built-in: \"resnet18\", \"resnet50\", ...\n"
    "    freeze_backbone = true;\n"
    "    head = { type = \"mlp3\"; hidden = 1024; act = \"relu\"; };  # or { type = \"linear\"; }\n"
    "    epochs = 30; batch = 64;\n"
    "    optimizer = { type = \"adam\"; lr = 1e-3; weight_decay = 0.0; };\n"
    "    schedule  = { type = \"step\"; step = 10; gamma = 0.1; };  # or cosine with warmup_epochs\n"
    "    predict_with = \"best_acc\";                               # or \"best_loss\", \"last\"\n"
    "    tta = [ \"hflip\" ];                                       # extra views averaged at prediction\n"
    "    augment = ( { from_epoch = 0;  ops = ( ); },             # a stage's ops replace the previous stage's\n"
    "                { from_epoch = 5;  ops = ( { op = \"hflip\"; p = 0.5; }, { op = \"vflip\"; p = 0.5; },\n"
    "                                           { op = \"rotate\"; degrees = 10.0; p = 0.5; } ); },\n"
    "                { from_epoch = 10; ops = ( { op = \"hflip\"; p = 0.5; }, { op = \"vflip\"; p = 0.5; },\n"
    "                                           { op = \"rotate\"; degrees = 15.0; p = 0.5; } ); } );\n"
    "} );\n"
    "vote   = { method = \"soft-soft\"; };\n";

static void test_design_example_loads_with_its_values(void)
{
    CHECK(load(design_example) == FL_OK);
    CHECK_STR(err.msg, "");
    CHECK_STR(cfg.path, cfg_path);
    CHECK_STR(cfg.run_name, "sketch");
    CHECK_STR(cfg.out_dir, "runs");
    CHECK(cfg.seed == 42 && cfg.threads == 0);
    CHECK_STR(cfg.data_file, data_path);
    CHECK(cfg.n_mean == 3 && cfg.mean[0] == 0.485 && cfg.mean[2] == 0.406 && cfg.mean_line == 2);
    CHECK(cfg.n_std == 3 && cfg.std[1] == 0.224 && cfg.std_line == 2);
    CHECK_STR(fl_data_cache_name(cfg.data_cache), "none");
    CHECK(cfg.n_folds_use == 5 && cfg.folds_use[4] == 4 && cfg.folds_use_line == 3);
    CHECK(cfg.ranks_per_job == 1);
    CHECK_STR(fl_dist_backend_name(cfg.backend), "auto");
    CHECK(cfg.n_models == 1);
    const fl_model_cfg *m = &cfg.models[0];
    CHECK_STR(m->name, "eva02_l_mlp3");
    CHECK_STR(m->backbone, "resnet18");
    CHECK(m->freeze_backbone == 1 && m->line == 5);
    CHECK_STR(fl_head_name(m->head_type), "mlp3");
    CHECK(m->head_hidden == 1024);
    CHECK_STR(fl_act_name(m->head_act), "relu");
    CHECK(m->epochs == 30 && m->batch == 64);
    CHECK_STR(fl_optim_name(m->optimizer), "adam");
    CHECK(m->lr == 1e-3 && m->weight_decay == 0.0);
    CHECK_STR(fl_sched_name(m->schedule), "step");
    CHECK(m->step_size == 10 && m->gamma == 0.1);
    CHECK_STR(fl_predict_with_name(m->predict_with), "best_acc");
    CHECK(m->n_tta == 1 && m->tta[0] == FL_TTA_HFLIP);
    CHECK(m->n_stages == 3);
    CHECK(m->stages[0].from_epoch == 0 && m->stages[0].n_ops == 0);
    CHECK(m->stages[1].from_epoch == 5 && m->stages[1].n_ops == 3);
    CHECK(m->stages[1].ops[0].kind == FL_OP_HFLIP && m->stages[1].ops[1].kind == FL_OP_VFLIP);
    CHECK(m->stages[1].ops[2].kind == FL_OP_ROTATE && m->stages[1].ops[2].degrees == 10.0);
    CHECK(m->stages[2].from_epoch == 10 && m->stages[2].ops[2].degrees == 15.0 && m->stages[2].ops[2].p == 0.5);
    CHECK(m->vote_weight == 1.0);
    CHECK_STR(fl_vote_method_name(cfg.vote_method), "soft-soft");
}

static void test_absent_keys_take_the_defaults(void)
{
    CHECK(load(MINIMAL) == FL_OK);
    CHECK_STR(cfg.run_name, "run");
    CHECK_STR(cfg.out_dir, "runs");
    CHECK(cfg.seed == 42 && cfg.threads == 0);
    CHECK(cfg.n_mean == 0 && cfg.n_std == 0 && cfg.n_folds_use == 0);
    CHECK_STR(fl_data_cache_name(cfg.data_cache), "none");
    CHECK_STR(fl_data_verify_name(cfg.data_verify), "full");
    CHECK(cfg.ranks_per_job == 1);
    CHECK_STR(fl_dist_backend_name(cfg.backend), "auto");
    CHECK_STR(fl_vote_method_name(cfg.vote_method), "soft-soft");
    const fl_model_cfg *m = &cfg.models[0];
    CHECK(m->freeze_backbone == 0 && m->line == 2);
    CHECK_STR(fl_head_name(m->head_type), "linear");
    CHECK(m->head_hidden == 1024);
    CHECK_STR(fl_act_name(m->head_act), "relu");
    CHECK(m->epochs == 3 && m->batch == 64);
    CHECK_STR(fl_optim_name(m->optimizer), "adam");
    CHECK(m->lr == 1e-3 && m->weight_decay == 0 && m->momentum == 0.9 && m->nesterov == 0);
    CHECK(m->clip_grad_norm == 0);
    CHECK_STR(fl_sched_name(m->schedule), "none");
    CHECK(m->step_size == 10 && m->gamma == 0.1 && m->warmup_epochs == 0 && m->min_lr == 0);
    CHECK(m->label_smoothing == 0);
    CHECK_STR(fl_predict_with_name(m->predict_with), "best_acc");
    CHECK(m->n_tta == 0 && m->n_stages == 0 && m->vote_weight == 1.0);
}

static void test_sgd_cosine_and_every_model_key_are_read(void)
{
    CHECK(load_model_key("freeze_backbone = false; head = { type = \"linear\"; }; batch = 8; clip_grad_norm = 1;"
                         " optimizer = { type = \"sgd\"; lr = 0.1; momentum = 0.8; nesterov = true; weight_decay = "
                         "5e-4; }; schedule = { type = \"cosine\"; warmup_epochs = 2; min_lr = 1e-6; };"
                         " label_smoothing = 0.1; predict_with = \"last\"; tta = [\"vflip\", \"hflip\"];") == FL_OK);
    const fl_model_cfg *m = &cfg.models[0];
    CHECK(m->batch == 8 && m->clip_grad_norm == 1.0);
    CHECK_STR(fl_optim_name(m->optimizer), "sgd");
    CHECK(m->lr == 0.1 && m->momentum == 0.8 && m->nesterov == 1 && m->weight_decay == 5e-4);
    CHECK_STR(fl_sched_name(m->schedule), "cosine");
    CHECK(m->warmup_epochs == 2 && m->min_lr == 1e-6 && m->label_smoothing == 0.1);
    CHECK_STR(fl_predict_with_name(m->predict_with), "last");
    CHECK(m->n_tta == 2 && m->tta[0] == FL_TTA_VFLIP && m->tta[1] == FL_TTA_HFLIP);
}

/* Loads a model whose line 3 is `backbone = "<backbone>";` plus extra. */
static fl_code load_backbone(const char *backbone, const char *extra)
{
    char text[1024];
    snprintf(text, sizeof text,
             "data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; epochs = 3;\n  backbone = \"%s\"; %s } );\n",
             backbone, extra);
    return load(text);
}

static void test_torchscript_path_starts_at_the_config_folder(void)
{
    char module[600], want[700], set[700];
    test_tmp_path(module, sizeof module, "fl_cfg_module.pt");
    FILE *f = fopen(module, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    const char *base = module + strlen(test_tmpdir()) + 1;
    snprintf(want, sizeof want, "torchscript:%s", module);
    /* The config is in test_tmpdir(): a bare name is looked for there. */
    snprintf(set, sizeof set, "torchscript:%s", base);
    CHECK(load_backbone(set, "") == FL_OK);
    CHECK_STR(cfg.models[0].backbone, want);
    CHECK(cfg.models[0].backbone_line == 3 && cfg.models[0].line == 2);
    CHECK(load_backbone(want, "") == FL_OK); /* an absolute path stays as it is */
    CHECK_STR(cfg.models[0].backbone, want);
    snprintf(set, sizeof set, "models.0.backbone=torchscript:%s", base); /* --set: the same rule */
    const char *sets[] = {set};
    CHECK(load_set(MINIMAL, sets, 1) == FL_OK);
    CHECK_STR(cfg.models[0].backbone, want);
    CHECK(cfg.models[0].backbone_line == 0);
    unlink(module);
    CHECK(load_backbone(set + strlen("models.0.backbone="), "") == FL_ECONFIG);
    char msg[1600];
    snprintf(msg, sizeof msg,
             ":3: models.[0].backbone: cannot read the TorchScript module \"%s\" (No such file or directory) HINT: "
             "a relative path starts at the config file's folder (%s/), not the working directory; "
             "launch/export_timm.py exports timm models",
             module, test_tmpdir());
    CHECK_MSG(msg);
}

static void test_torchscript_needs_a_path_and_unknown_backbones_say_so(void)
{
    CHECK(load_backbone("torchscript:", "") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].backbone: expected \"torchscript:PATH\" with the path of a TorchScript file, found "
              "\"torchscript:\" HINT: launch/export_timm.py writes one");
    CHECK(load_backbone("vit", "") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].backbone: unknown value \"vit\" HINT: use one of resnet18, resnet34, resnet50, "
              "smallcnn, smallresnet, mlp, or torchscript:PATH (a TorchScript file)");
}

static void test_backbone_lr_scale_is_positive_and_only_for_a_trained_backbone(void)
{
    CHECK(load(MINIMAL) == FL_OK);
    CHECK(cfg.models[0].backbone_lr_scale == 1.0);
    CHECK(load_backbone("resnet18", "backbone_lr_scale = 0.1;") == FL_OK);
    CHECK(cfg.models[0].backbone_lr_scale == 0.1);
    CHECK(load_backbone("resnet18", "backbone_lr_scale = 0.0;") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].backbone_lr_scale: must be > 0, found 0");
    CHECK(load_backbone("resnet18", "backbone_lr_scale = 0.1; freeze_backbone = true;") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].backbone_lr_scale: only used with a trained backbone, but freeze_backbone = true "
              "HINT: remove it, or set freeze_backbone = false to fine-tune the backbone at lr * backbone_lr_scale");
}

static void test_fuse_folds_defaults_to_a_frozen_backbone_and_needs_one(void)
{
    CHECK(load(MINIMAL) == FL_OK);
    CHECK(cfg.models[0].fuse_folds == 0);
    CHECK(load_backbone("resnet18", "freeze_backbone = true;") == FL_OK);
    CHECK(cfg.models[0].fuse_folds == 1);
    CHECK(load_backbone("resnet18", "freeze_backbone = true; fuse_folds = false;") == FL_OK);
    CHECK(cfg.models[0].fuse_folds == 0);
    CHECK(load_backbone("resnet18", "fuse_folds = true;") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].fuse_folds: only a frozen backbone's folds can share one backbone pass HINT: set "
              "freeze_backbone = true, or remove fuse_folds");
    CHECK(load_backbone("resnet18", "freeze_backbone = true; fuse_folds = 1;") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: models.[0].fuse_folds:") != NULL);
}

static void test_feature_cache_keys_are_read_and_checked(void)
{
    CHECK(load(MINIMAL) == FL_OK);
    CHECK(!strcmp(fl_feature_cache_name(cfg.feature_cache), "auto") && cfg.feature_cache_mb == 4096.0);
    CHECK(load("data = { file = \"@DATA@\"; feature_cache = \"file\"; feature_cache_mb = 100; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_OK);
    CHECK(!strcmp(fl_feature_cache_name(cfg.feature_cache), "file") && cfg.feature_cache_mb == 100.0);
    CHECK(load("data = { file = \"@DATA@\"; feature_cache = \"disk\"; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":1: data.feature_cache: unknown value \"disk\"") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; feature_cache_mb = -1; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":1: data.feature_cache_mb:") != NULL);
}

static void test_resume_and_failure_keys_are_read_and_checked(void)
{
    CHECK(load(MINIMAL "run = { checkpoint_minutes = 15; on_nan = \"skip_step\"; };\ndist = { timeout_s = 30; };\n") ==
          FL_OK);
    CHECK(cfg.checkpoint_minutes == 15.0 && !strcmp(fl_on_nan_name(cfg.on_nan), "skip_step") && cfg.timeout_s == 30.0);
    CHECK(load(MINIMAL) == FL_OK);
    CHECK(cfg.checkpoint_minutes == 0.0 && !strcmp(fl_on_nan_name(cfg.on_nan), "stop") && cfg.timeout_s == 600.0);
    CHECK(load(MINIMAL "run = { checkpoint_minutes = -1; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: run.checkpoint_minutes:") != NULL);
    CHECK(load(MINIMAL "run = { on_nan = \"ignore\"; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: run.on_nan: unknown value \"ignore\"") != NULL);
    CHECK(load(MINIMAL "dist = { timeout_s = 0; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: dist.timeout_s:") != NULL);
    /* run.progress_s: default 30, 0 turns the progress lines off, a negative value is refused */
    CHECK(load(MINIMAL "run = { progress_s = 0.25; };\n") == FL_OK && cfg.progress_s == 0.25);
    CHECK(load(MINIMAL "run = { progress_s = 0; };\n") == FL_OK && cfg.progress_s == 0.0);
    CHECK(load(MINIMAL) == FL_OK && cfg.progress_s == 30.0);
    CHECK(load(MINIMAL "run = { progress_s = -1; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: run.progress_s:") != NULL);
}

static void test_overlap_keys_are_read_and_checked(void)
{
    CHECK(load(MINIMAL) == FL_OK);
    CHECK(cfg.overlap == 1 && cfg.bucket_mb == 25.0);
    CHECK(load(MINIMAL "dist = { overlap = false; bucket_mb = 0.5; };\n") == FL_OK);
    CHECK(cfg.overlap == 0 && cfg.bucket_mb == 0.5);
    CHECK(load(MINIMAL "dist = { bucket_mb = 0; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: dist.bucket_mb:") != NULL);
    CHECK(load(MINIMAL "dist = { overlap = 1; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: dist.overlap:") != NULL);
    CHECK(load(MINIMAL "dist = { bucket = 25; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, "dist takes ranks_per_job, backend, timeout_s, lock_timeout_s, overlap, bucket_mb") != NULL);
}

static void test_unknown_key_names_line_key_and_the_keys_allowed(void)
{
    CHECK(load("# a comment\n\n\n\n\n" MINIMAL "run = {\n  sede = 42; };\n") == FL_ECONFIG);
    CHECK_MSG(":9: run.sede: unknown key HINT: run takes name, out_dir, seed, threads, checkpoint_minutes, on_nan, "
              "scratch_dir, progress_s, precision");
    CHECK(load(MINIMAL "runs = { };\n") == FL_ECONFIG);
    CHECK_MSG(":3: runs: unknown key HINT: the top level takes run, data, folds, dist, models, vote");
    CHECK(load_model_key("optimizer = { type = \"adam\"; learning_rate = 0.1; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].optimizer.learning_rate: unknown key HINT: optimizer takes type, lr, weight_decay, "
              "momentum, nesterov");
    CHECK(load_model_key("lr = 0.1;") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: models.[0].lr: unknown key HINT: a model takes name, backbone,") != NULL);
}

static void test_unknown_key_inside_an_augment_op(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"hflip\"; prob = 0.5; } ); } );") ==
          FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].prob: unknown key HINT: hflip takes op, p");
    CHECK(load_model_key("augment = ( { from_epoch = 0; op = ( ); } );") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].op: unknown key HINT: an augment stage takes from_epoch, ops");
}

static void test_wrong_types_say_what_was_expected_and_found(void)
{
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; },\n"
               "  { name = \"b\"; backbone = \"resnet18\"; epochs = 3;\n  batch = \"64\"; } );\n") == FL_ECONFIG);
    CHECK_MSG(":4: models.[1].batch: expected an integer, found a string");
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\";\n"
               "epochs = 1.5; } );\n") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].epochs: expected an integer, found a float");
    CHECK(load_model_key("optimizer = { lr = \"fast\"; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].optimizer.lr: expected a number, found a string");
    CHECK(load(MINIMAL "run = 3;\n") == FL_ECONFIG);
    CHECK_MSG(":3: run: expected a group { ... }, found an integer");
    CHECK(load(MINIMAL "run = { name = 7; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: run.name: expected a string, found an integer HINT: strings are written in double quotes");
    CHECK(load(MINIMAL "folds = { use = 3; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: folds.use: expected an array [ ... ], found an integer");
    CHECK(load(MINIMAL "folds = { use = [0.0, 1.0]; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: folds.use.[0]: expected an integer, found a float");
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = { name = \"a\"; };\n") == FL_ECONFIG);
    CHECK_MSG(":2: models: expected a list ( { ... }, ... ), found a group");
}

static void test_integers_are_accepted_where_floats_are_expected(void)
{
    CHECK(load_model_key("optimizer = { lr = 1; weight_decay = 0; };") == FL_OK);
    CHECK(cfg.models[0].lr == 1.0 && cfg.models[0].weight_decay == 0.0);
}

static void test_booleans_must_be_true_or_false(void)
{
    CHECK(load_model_key("freeze_backbone = 1;") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].freeze_backbone: expected true or false, found an integer");
    CHECK(load_model_key("optimizer = { type = \"sgd\"; nesterov = \"yes\"; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].optimizer.nesterov: expected true or false, found a string");
}

static void test_lr_must_be_positive(void)
{
    CHECK(load("run = { name = \"x\"; };\n"
               "data = { file = \"@DATA@\"; };\n"
               "models = ( {\n"
               "  name = \"a\";\n"
               "  backbone = \"resnet18\";\n"
               "  epochs = 3;\n"
               "  optimizer = {\n"
               "    type = \"adam\";\n"
               "\n"
               "\n"
               "\n"
               "    lr = -0.001;\n"
               "  };\n"
               "} );\n") == FL_ECONFIG);
    CHECK_MSG(":12: models.[0].optimizer.lr: must be > 0, found -0.001");
}

static void test_out_of_range_values_name_the_bound(void)
{
    static const struct {
        const char *model_line, *msg;
    } cases[] = {
        {"batch = 0;", ":3: models.[0].batch: must be >= 1, found 0"},
        {"optimizer = { weight_decay = -1; };", ":3: models.[0].optimizer.weight_decay: must be >= 0, found -1"},
        {"optimizer = { type = \"sgd\"; momentum = 1.0; };",
         ":3: models.[0].optimizer.momentum: must be in [0, 1), found 1"},
        {"label_smoothing = 1.0;", ":3: models.[0].label_smoothing: must be in [0, 1), found 1"},
        {"label_smoothing = -0.1;", ":3: models.[0].label_smoothing: must be in [0, 1), found -0.1"},
        {"schedule = { type = \"step\"; gamma = 0.0; };", ":3: models.[0].schedule.gamma: must be in (0, 1], found 0"},
        {"schedule = { type = \"step\"; gamma = 1.5; };",
         ":3: models.[0].schedule.gamma: must be in (0, 1], found 1.5"},
        {"schedule = { type = \"step\"; step = 0; };", ":3: models.[0].schedule.step: must be >= 1, found 0"},
        {"schedule = { type = \"cosine\"; warmup_epochs = -1; };",
         ":3: models.[0].schedule.warmup_epochs: must be >= 0, found -1"},
        {"schedule = { type = \"onecycle\"; warmup = 1.0; };",
         ":3: models.[0].schedule.warmup: must be in [0, 1), found 1"},
        {"clip_grad_norm = -1.0;", ":3: models.[0].clip_grad_norm: must be >= 0, found -1"},
        {"head = { type = \"mlp3\"; hidden = 0; };", ":3: models.[0].head.hidden: must be >= 1, found 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(load_model_key(cases[i].model_line) == FL_ECONFIG);
        CHECK_MSG(cases[i].msg);
    }
    CHECK(
        load(
            "data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 0; } );\n") ==
        FL_ECONFIG);
    CHECK_MSG(":2: models.[0].epochs: must be >= 1, found 0");
    CHECK(load(MINIMAL "run = { threads = -1; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: run.threads: must be >= 0, found -1");
    CHECK(load(MINIMAL "run = { threads = 99999999999; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: run.threads: must be <= 2147483647, found 99999999999");
    CHECK(load(MINIMAL "dist = { ranks_per_job = -1; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: dist.ranks_per_job: must be >= 0, found -1");
    /* 0: one group of every rank, whatever the world's size */
    CHECK(load(MINIMAL "dist = { ranks_per_job = 0; };\n") == FL_OK);
    CHECK(cfg.ranks_per_job == 0 && fl_config_group_ranks(&cfg, 3) == 3 && fl_config_group_ranks(&cfg, 1) == 1);
    CHECK(fl_config_check_world(&cfg, 3, &err) == FL_OK);
    CHECK(load(MINIMAL "run = { seed = -1; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: run.seed: must be in 0..4294967295, found -1");
    CHECK(load(MINIMAL "run = { seed = 4294967296L; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: run.seed: must be in 0..4294967295, found 4294967296");
    CHECK(load("data = { file = \"@DATA@\";\n std = [0.5, 0.0, 0.5]; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":2: data.std.[1]: must be > 0, found 0");
}

static void test_seed_takes_the_whole_32_bit_range(void)
{
    CHECK(load(MINIMAL "run = { seed = 4294967295L; };\n") == FL_OK);
    CHECK(cfg.seed == 4294967295u);
    /* libconfig 1.5 would wrap a plain literal beyond 32 bits to -1 */
    CHECK(load(MINIMAL "run = { seed = 4294967295; threads = 2; };\n") == FL_OK);
    CHECK(cfg.seed == 4294967295u && cfg.threads == 2);
    CHECK(load(MINIMAL "run = { seed = 0; };\n") == FL_OK);
    CHECK(cfg.seed == 0);
}

static void test_unknown_enum_values_list_the_allowed_ones(void)
{
    CHECK(load_model_key("optimizer = { type = \"adm\"; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].optimizer.type: unknown value \"adm\" HINT: use one of adam, adamw, sgd");
    CHECK(load_model_key("predict_with = \"best\";") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].predict_with: unknown value \"best\" HINT: use one of best_acc, best_loss, last");
    CHECK(load_model_key("head = { type = \"mlp3\"; act = \"tanh\"; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].head.act: unknown value \"tanh\" HINT: use one of relu, gelu");
    CHECK(load_model_key("schedule = { type = \"linear\"; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].schedule.type: unknown value \"linear\" HINT: use one of none, step, cosine, onecycle");
    CHECK(load(MINIMAL "dist = { backend = \"gloo\"; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: dist.backend: unknown value \"gloo\" HINT: use one of auto, nccl, mpi");
    CHECK(load(MINIMAL "vote = { method = \"mean\"; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: vote.method: unknown value \"mean\" HINT: use one of soft-soft, soft-hard, hard-hard, soft, hard");
    CHECK(load("data = { file = \"@DATA@\";\n cache = \"disk\"; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":2: data.cache: unknown value \"disk\" HINT: use one of none, memory");
    CHECK(load("data = { file = \"@DATA@\";\n verify = \"never\"; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":2: data.verify: unknown value \"never\" HINT: use one of full, open");
    CHECK(load("data = { file = \"@DATA@\"; verify = \"open\"; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_OK);
    CHECK_STR(fl_data_verify_name(cfg.data_verify), "open");
    CHECK(load_model_key("tta = [\"rot90\"];") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].tta.[0]: unknown value \"rot90\" HINT: use one of hflip, vflip");
}

static void test_keys_of_another_variant_are_errors(void)
{
    CHECK(load_model_key("optimizer = { type = \"adam\"; momentum = 0.9; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].optimizer.momentum: only used with type \"sgd\", found type \"adam\" HINT: remove it "
              "or set type = \"sgd\"");
    CHECK(load_model_key("head = { hidden = 512; };") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].head.hidden: only used with type \"mlp3\", found type \"linear\" HINT: remove it or "
              "set type = \"mlp3\"");
    CHECK(load_model_key("schedule = { type = \"cosine\"; step = 5; };") == FL_ECONFIG);
    CHECK(strstr(err.msg, "models.[0].schedule.step: only used with type \"step\", found type \"cosine\"") != NULL);
    CHECK(load_model_key("schedule = { warmup_epochs = 1; };") == FL_ECONFIG);
    CHECK(strstr(err.msg, "models.[0].schedule.warmup_epochs: only used with type \"cosine\", found type \"none\"") !=
          NULL);
    CHECK(load_model_key("schedule = { type = \"cosine\"; warmup = 0.2; };") == FL_ECONFIG);
    CHECK(strstr(err.msg, "models.[0].schedule.warmup: only used with type \"onecycle\", found type \"cosine\"") !=
          NULL);
    CHECK(load_model_key("schedule = { type = \"step\"; min_lr = 0.1; };") == FL_ECONFIG);
    CHECK(strstr(err.msg, "models.[0].schedule.min_lr: only used with type \"cosine\" or \"onecycle\", found type "
                          "\"step\"") != NULL);
}

/* onecycle: lr / 25 at the start, lr at the end of the warm-up, min_lr at the
 * end, half cosines between; the epoch's lr is its first step's. */
static void test_onecycle_schedule(void)
{
    CHECK(load_model_key(
              "optimizer = { lr = 0.01; }; schedule = { type = \"onecycle\"; warmup = 0.25; min_lr = 1e-5; };") ==
          FL_OK);
    const fl_model_cfg *m = &cfg.models[0]; /* 3 epochs */
    CHECK_STR(fl_sched_name(m->schedule), "onecycle");
    CHECK(m->warmup == 0.25 && m->min_lr == 1e-5 && fl_schedule_per_step(m));
    const double lr = 0.01, start = lr / 25;
    CHECK(fabs(fl_schedule_lr_at(m, 0, 0, 100) - start) < 1e-15);
    /* u = 0.125, half the warm-up: the mid-point */
    CHECK(fabs(fl_schedule_lr_at(m, 0, 375, 1000) - (start + lr) / 2) < 1e-12);
    CHECK(fabs(fl_schedule_lr_at(m, 0, 750, 1000) - lr) < 1e-15);
    /* u = 0.625: half the anneal */
    CHECK(fabs(fl_schedule_lr_at(m, 1, 875, 1000) - (lr + 1e-5) / 2) < 1e-12);
    CHECK(fl_schedule_lr_at(m, 2, 999, 1000) < 1e-5 + 1e-8 && fl_schedule_lr_at(m, 2, 999, 1000) >= 1e-5);
    CHECK(fl_schedule_lr(m, 1) == fl_schedule_lr_at(m, 1, 0, 7));
    for (int e = 0; e < 3; e++) /* rises then falls */
        for (int s = 1; s < 100; s++) {
            double a = fl_schedule_lr_at(m, e, s - 1, 100), b = fl_schedule_lr_at(m, e, s, 100);
            CHECK(e * 100 + s <= 75 ? b > a : b < a);
        }
    CHECK(load_model_key("schedule = { type = \"onecycle\"; };") == FL_OK);
    CHECK(cfg.models[0].warmup == 0.3 && cfg.models[0].min_lr == 0);
    CHECK(load_model_key("schedule = { type = \"cosine\"; };") == FL_OK);
    CHECK(!fl_schedule_per_step(&cfg.models[0]));
}

static void test_syntax_error_names_the_line(void)
{
    CHECK(load("data = { file = \"@DATA@\"; };\n\nmodels = ( { name = \"a\"; epochs = ; } );\n") == FL_ECONFIG);
    CHECK_MSG(":3: syntax error (libconfig: syntax error)");
    CHECK(load(MINIMAL "run = { seed = 1; };\n\nvote = { weights = [0.5, 1]; };\n") == FL_ECONFIG);
    CHECK_MSG(":5: syntax error (libconfig: mismatched element type in array) HINT: the values of an array [ ... ] "
              "share one type: write 1.0, not 1, among floats");
}

static void test_missing_config_file_is_named(void)
{
    fl_error_clear(&err);
    CHECK(fl_config_load("/nonexistent/configs/x.cfg", NULL, 0, &cfg, &err) == FL_EUSAGE);
    CHECK_STR(err.msg, "/nonexistent/configs/x.cfg: cannot read the config file (No such file or directory) HINT: "
                       "check the path; configs/ holds examples");
    CHECK(fl_config_load("/tmp", NULL, 0, &cfg, &err) == FL_EUSAGE);
    CHECK(strstr(err.msg, "/tmp: CONFIG is a directory, not a config file HINT:") == err.msg);
}

static void test_missing_data_file_is_named(void)
{
    CHECK(load("data = { file = \"no/such/data.h5\"; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":1: data.file: cannot read \"no/such/data.h5\" (No such file or directory) HINT: relative paths "
              "start at the working directory; foldline prep writes the data file");
}

static void test_a_model_data_overrides_the_top_level_key_by_key(void)
{
    CHECK(load("data = { file = \"@DATA@\"; mean = [0.1]; std = [0.2]; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; },\n"
               " { name = \"b\"; backbone = \"resnet18\"; epochs = 3; data = { mean = [0.7, 0.6, 0.5]; }; } );\n") ==
          FL_OK);
    CHECK_STR(cfg.models[0].data_file, data_path);
    CHECK_STR(cfg.models[1].data_file, data_path);
    CHECK(!cfg.models[1].own_data_file && cfg.models[1].own_mean && !cfg.models[1].own_std);
    CHECK(cfg.models[0].n_mean == 1 && cfg.models[0].mean[0] == 0.1 && cfg.models[0].mean_line == 1);
    CHECK(cfg.models[1].n_mean == 3 && cfg.models[1].mean[2] == 0.5 && cfg.models[1].mean_line == 3);
    CHECK(cfg.models[1].n_std == 1 && cfg.models[1].std[0] == 0.2);
    CHECK(fl_config_check_data(&cfg, 1, 1, 5, &err) == FL_ECONFIG);
    CHECK_MSG(":3: models.[1].data.mean: expected 1 value (the data file has 1 channel), found 3");
}

static void test_top_level_data_file_is_optional_only_when_every_model_has_one(void)
{
    CHECK(
        load("models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; data = { file = \"@DATA@\"; }; } );\n") ==
        FL_OK);
    CHECK_STR(cfg.models[0].data_file, data_path);
    CHECK(cfg.data_file[0] == '\0');
    CHECK(load("models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; data = { file = \"@DATA@\"; }; },\n"
               " { name = \"b\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(
        ":2: missing key models.[1].data.file HINT: models.[0] gives its own data.file but this model has none "
        "and the top level has no data.file to fall back to; give it data = { file = \"...\"; } or set data.file");
    CHECK(
        load(
            "data = { file = \"@DATA@\"; };\n"
            "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; data = { cache = \"memory\"; }; } );\n") ==
        FL_ECONFIG);
    CHECK_MSG(
        ":2: models.[0].data.cache: unknown key HINT: a model's data (data.cache is the run's) takes file, mean, std");
    CHECK(
        load(
            "data = { file = \"@DATA@\"; };\n"
            "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; data = { file = \"no/x.h5\"; }; } );\n") ==
        FL_ECONFIG);
    CHECK_MSG(
        ":2: models.[0].data.file: cannot read \"no/x.h5\" (No such file or directory) HINT: relative paths start "
        "at the working directory; foldline prep writes the data file");
}

static void test_missing_required_keys_are_named(void)
{
    CHECK(load("models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(": missing key data.file HINT: the data file foldline prep wrote, e.g. file = \"data/x.h5\"");
    CHECK(load("run = { };\n data = { cache = \"none\"; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":2: missing key data.file HINT:") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; };\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ": missing key models HINT: models = ( {") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; },\n"
               "  { name = \"b\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":3: missing key models.[1].backbone HINT: one of resnet18, resnet34, resnet50, smallcnn, smallresnet, "
              "mlp, torchscript:PATH");
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { backbone = \"resnet18\"; epochs = 3; } );\n") ==
          FL_ECONFIG);
    CHECK(strstr(err.msg, ":2: missing key models.[0].name HINT:") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; } );\n") ==
          FL_ECONFIG);
    CHECK(strstr(err.msg, ":2: missing key models.[0].epochs HINT:") != NULL);
}

static void test_models_list_must_not_be_empty(void)
{
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( );\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":2: models: lists no model HINT:") != NULL);
}

static void test_model_names_are_valid_and_unique(void)
{
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a b\"; backbone = \"resnet18\"; epochs = 3; } "
               ");\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":2: models.[0].name: \"a b\" is not a valid name HINT:") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"..\"; backbone = \"resnet18\"; epochs = 3; } "
               ");\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, "models.[0].name: \"..\" is not a valid name") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"ensemble\"; backbone = \"resnet18\"; epochs = 3;"
               " } );\n") == FL_ECONFIG);
    CHECK(strstr(err.msg, "models.[0].name: \"ensemble\" is reserved") != NULL);
    CHECK(load("data = { file = \"@DATA@\"; };\nmodels = ( { name = \"cnn.a-1_B\"; backbone = \"resnet18\"; "
               "epochs = 3; },\n { name = \"cnn.a-1_B\"; backbone = \"resnet34\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":3: models.[1].name: \"cnn.a-1_B\" is already the name of models.[0] HINT: model names must be unique, "
              "each names a folder of the run");
}

/* Loads one stage whose only op is the group text op (inside ops = ( ... )). */
static fl_code load_op_text(const char *op)
{
    char line[512];
    snprintf(line, sizeof line, "augment = ( { from_epoch = 0; ops = ( %s ); } );", op);
    return load_model_key(line);
}

static void test_elastic_and_grid_distortion_read_their_parameters(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"elastic\"; alpha = 30.0; sigma = 4.0; },\n"
                         "{ op = \"grid_distortion\"; num_steps = 4; distort_limit = 0.2; p = 0.25; } ); } );") ==
          FL_OK);
    const fl_aug_stage *st = &cfg.models[0].stages[0];
    CHECK(st->n_ops == 2 && st->ops[0].kind == FL_OP_ELASTIC && st->ops[1].kind == FL_OP_GRID_DISTORTION);
    CHECK(st->ops[0].alpha == 30.0 && st->ops[0].sigma == 4.0 && st->ops[0].p == 0.5);
    CHECK(st->ops[1].num_steps == 4 && st->ops[1].distort_limit == 0.2 && st->ops[1].p == 0.25);
    CHECK(load_op_text("{ op = \"elastic\"; alpha = 0; sigma = 1; }") == FL_OK); /* alpha 0: no displacement */
    CHECK(load_op_text("{ op = \"grid_distortion\"; num_steps = 32; distort_limit = 0.0; }") == FL_OK);
}

static void test_elastic_and_grid_distortion_ranges_name_the_key(void)
{
    CHECK(load_op_text("{ op = \"elastic\"; alpha = -1.0; sigma = 4.0; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].alpha: must be >= 0, found -1");
    CHECK(load_op_text("{ op = \"elastic\"; alpha = 30.0; sigma = 0.0; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].sigma: must be > 0, found 0");
    CHECK(load_op_text("{ op = \"elastic\"; alpha = 30.0; }") == FL_ECONFIG);
    CHECK_MSG(":3: missing key models.[0].augment.[0].ops.[0].sigma HINT: elastic takes alpha >= 0 and sigma > 0 "
              "(pixels), e.g. alpha = 30.0; sigma = 4.0");
    CHECK(load_op_text("{ op = \"grid_distortion\"; num_steps = 0; distort_limit = 0.2; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].num_steps: must be in 1..32, found 0");
    CHECK(load_op_text("{ op = \"grid_distortion\"; num_steps = 4; distort_limit = 1.0; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].distort_limit: must be in [0, 1), found 1");
    CHECK(load_op_text("{ op = \"grid_distortion\"; num_steps = 4; distort_limit = -0.1; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].distort_limit: must be in [0, 1), found -0.1");
    CHECK(load_op_text("{ op = \"grid_distortion\"; num_steps = 4.5; distort_limit = 0.2; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].num_steps: expected an integer, found a float");
    CHECK(load_op_text("{ op = \"grid_distortion\"; distort_limit = 0.2; }") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: missing key models.[0].augment.[0].ops.[0].num_steps HINT: grid_distortion takes") !=
          NULL);
    CHECK(load_op_text("{ op = \"elastic\"; alpha = 30.0; sigma = 4.0; p = -0.5; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].p: must be in [0, 1], found -0.5");
    CHECK(load_op_text("{ op = \"elastic\"; alpha = 30.0; sigma = 4.0; degrees = 3.0; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].degrees: not a parameter of op 'elastic' HINT: elastic takes op, "
              "p, alpha, sigma");
}

static void test_brightness_contrast_and_cutout_read_their_parameters(void)
{
    CHECK(load_op_text("{ op = \"brightness_contrast\"; }") == FL_OK);
    const fl_aug_op *op = &cfg.models[0].stages[0].ops[0];
    CHECK(op->kind == FL_OP_BRIGHTNESS_CONTRAST && op->brightness_limit == 0.2 && op->contrast_limit == 0.2);
    CHECK(load_op_text("{ op = \"brightness_contrast\"; brightness_limit = 0.1; contrast_limit = 0.3; }") == FL_OK);
    CHECK(op->brightness_limit == 0.1 && op->contrast_limit == 0.3);
    CHECK(load_op_text("{ op = \"brightness_contrast\"; contrast_limit = 1.5; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].contrast_limit: must be in [0, 1], found 1.5");
    CHECK(load_op_text("{ op = \"cutout\"; num_holes = 2; size = 8; }") == FL_OK);
    CHECK(op->kind == FL_OP_CUTOUT && op->num_holes == 2 && op->size == 8 && op->size_in_pixels);
    CHECK(load_op_text("{ op = \"cutout\"; num_holes = 1; size = 0.25; }") == FL_OK);
    CHECK(op->size == 0.25 && !op->size_in_pixels);
    CHECK(load_op_text("{ op = \"cutout\"; num_holes = 1; size = 8.0; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].size: a fraction of the side must be in (0, 1], found 8 HINT: an "
              "integer is a size in pixels, e.g. size = 8");
    CHECK(load_op_text("{ op = \"cutout\"; num_holes = 1; size = 0; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].size: must be >= 1, found 0");
    CHECK(load_op_text("{ op = \"cutout\"; num_holes = 17; size = 4; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].num_holes: must be in 1..16, found 17");
    CHECK(load_op_text("{ op = \"cutout\"; num_holes = 1; size = \"8\"; }") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].size: expected a number, found a string");
}

static void test_unknown_op_lists_every_op(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"blur\"; } ); } );") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].op: unknown op \"blur\" HINT: use one of hflip, vflip, rotate, "
              "elastic, grid_distortion, brightness_contrast, cutout");
}

static void test_op_parameters_of_other_ops_are_errors(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { degrees = 10.0; op = \"hflip\"; } ); } );") ==
          FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].degrees: not a parameter of op 'hflip' HINT: hflip takes op, p");
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { p = 0.5; } ); } );") == FL_ECONFIG);
    CHECK_MSG(":3: missing key models.[0].augment.[0].ops.[0].op HINT: one of hflip, vflip, rotate, elastic, "
              "grid_distortion, brightness_contrast, cutout");
}

static void test_rotate_needs_degrees_in_0_to_180(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"rotate\"; } ); } );") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: missing key models.[0].augment.[0].ops.[0].degrees HINT:") != NULL);
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"rotate\"; degrees = 0.0; } ); } );") ==
          FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].degrees: must be in (0, 180], found 0");
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"rotate\"; degrees = 181; } ); } );") ==
          FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].degrees: must be in (0, 180], found 181");
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"rotate\"; degrees = 180; } ); } );") == FL_OK);
}

static void test_op_probability_is_in_0_to_1_and_defaults_to_half(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"vflip\"; } ); } );") == FL_OK);
    CHECK(cfg.models[0].stages[0].ops[0].p == 0.5 && cfg.models[0].stages[0].ops[0].kind == FL_OP_VFLIP);
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"vflip\"; p = 1.5; } ); } );") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].ops.[0].p: must be in [0, 1], found 1.5");
    CHECK(load_model_key("augment = ( { from_epoch = 0; ops = ( { op = \"vflip\"; p = 1; } ); } );") == FL_OK);
}

static void test_augment_stages_start_later_and_strictly_increase(void)
{
    CHECK(load_model_key("augment = ( { from_epoch = 1; ops = ( { op = \"hflip\"; } ); }, { from_epoch = 2; } );") ==
          FL_OK);
    CHECK(cfg.models[0].n_stages == 2 && cfg.models[0].stages[0].from_epoch == 1);
    CHECK(cfg.models[0].stages[1].from_epoch == 2 && cfg.models[0].stages[1].n_ops == 0);
    CHECK(load_model_key("augment = ( { from_epoch = 1; }, { from_epoch = 1; } );") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[1].from_epoch: must be > 1 (the previous stage's from_epoch), found 1 HINT: "
              "list the stages in the order they start");
    /* epochs = 3 trains epochs 0, 1, 2: a stage from 3 would never run */
    CHECK(load_model_key("augment = ( { from_epoch = 0; }, { from_epoch = 3; } );") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[1].from_epoch: 3 is beyond the model's epochs = 3 (epochs count from 0 here: "
              "0..2), so this stage would never run HINT: set from_epoch below 3, or raise epochs");
    CHECK(load_model_key("augment = ( { from_epoch = -1; } );") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].augment.[0].from_epoch: must be >= 0, found -1");
    CHECK(load_model_key("augment = ( { ops = ( ); } );") == FL_ECONFIG);
    CHECK(strstr(err.msg, ":3: missing key models.[0].augment.[0].from_epoch HINT:") != NULL);
}

static void test_tta_entries_are_unique(void)
{
    CHECK(load_model_key("tta = [\"hflip\", \"vflip\", \"hflip\"];") == FL_ECONFIG);
    CHECK_MSG(":3: models.[0].tta.[2]: \"hflip\" is listed twice");
}

static void test_vote_weights_one_positive_value_per_model(void)
{
    const char *two = "data = { file = \"@DATA@\"; };\nmodels = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; "
                      "},\n { name = \"b\"; backbone = \"smallcnn\"; epochs = 3; } );\n";
    char text[1024];
    snprintf(text, sizeof text, "%svote = { method = \"hard\"; weights = [2, 1]; };\n", two);
    CHECK(load(text) == FL_OK);
    CHECK(cfg.models[0].vote_weight == 2.0 && cfg.models[1].vote_weight == 1.0);
    CHECK_STR(fl_vote_method_name(cfg.vote_method), "hard");
    snprintf(text, sizeof text, "%svote = { weights = [1.0]; };\n", two);
    CHECK(load(text) == FL_ECONFIG);
    CHECK_MSG(":4: vote.weights: expected 2 values (one per model), found 1");
    snprintf(text, sizeof text, "%svote = { weights = [1.0, 0.0]; };\n", two);
    CHECK(load(text) == FL_ECONFIG);
    CHECK_MSG(":4: vote.weights.[1]: must be > 0, found 0");
}

static void test_mean_and_std_hold_1_to_3_values(void)
{
    CHECK(load("data = { file = \"@DATA@\"; mean = [0.5]; std = [0.25]; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_OK);
    CHECK(cfg.n_mean == 1 && cfg.mean[0] == 0.5 && cfg.n_std == 1 && cfg.std[0] == 0.25);
    CHECK(load("data = { file = \"@DATA@\";\n mean = [0.1, 0.2, 0.3, 0.4]; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_ECONFIG);
    CHECK_MSG(":2: data.mean: expected 1 or 3 values (one for every channel, or one per channel), found 4");
}

static void test_folds_use_is_checked_at_load(void)
{
    CHECK(load(MINIMAL "folds = { use = [0, 2, 0]; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: folds.use.[2]: fold 0 is listed twice");
    CHECK(load(MINIMAL "folds = { use = [-1]; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: folds.use.[0]: must be in 0..63, found -1");
    CHECK(load(MINIMAL "folds = { use = [ ]; };\n") == FL_ECONFIG);
    CHECK_MSG(":3: folds.use: lists no fold HINT: leave folds.use out to train every fold");
}

/* ---- overrides ---- */

static void test_override_sets_int_float_and_string(void)
{
    const char *sets[] = {"models.0.epochs=7",       "models.0.optimizer.lr=0.05",    "models.0.backbone=resnet50",
                          "run.name=\"quoted-run\"", "models.0.freeze_backbone=true", "run.seed=4294967295"};
    CHECK(load_set(MINIMAL, sets, 6) == FL_OK);
    CHECK_STR(err.msg, "");
    CHECK(cfg.models[0].epochs == 7 && cfg.models[0].lr == 0.05 && cfg.models[0].freeze_backbone == 1);
    CHECK_STR(cfg.models[0].backbone, "resnet50");
    CHECK_STR(cfg.run_name, "quoted-run");
    CHECK(cfg.seed == 4294967295u);
}

static void test_override_picks_list_elements_by_index_or_name(void)
{
    const char *text = "data = { file = \"@DATA@\"; };\nmodels = ( { name = \"cnn_a\"; backbone = \"resnet18\"; "
                       "epochs = 3; },\n { name = \"cnn.b\"; backbone = \"resnet18\"; epochs = 3; } );\n";
    const char *sets[] = {"models.[0].epochs=4", "models.1.batch=16", "models.cnn_a.batch=32", "models.cnn.b.epochs=9"};
    CHECK(load_set(text, sets, 4) == FL_OK);
    CHECK(cfg.models[0].epochs == 4 && cfg.models[0].batch == 32);
    CHECK(cfg.models[1].batch == 16 && cfg.models[1].epochs == 9);
}

static void test_override_creates_missing_keys_and_groups(void)
{
    const char *sets[] = {"vote.method=hard-hard", "models.0.schedule.type=cosine", "models.0.tta=[\"hflip\"]",
                          "folds.use=[1, 3]", "models.0.augment=({from_epoch = 2; ops = ({op = \"hflip\";});})"};
    CHECK(load_set(MINIMAL, sets, 5) == FL_OK);
    CHECK_STR(err.msg, "");
    CHECK_STR(fl_vote_method_name(cfg.vote_method), "hard-hard");
    CHECK_STR(fl_sched_name(cfg.models[0].schedule), "cosine");
    CHECK(cfg.models[0].n_tta == 1 && cfg.n_folds_use == 2 && cfg.folds_use[1] == 3);
    CHECK(cfg.folds_use_line == 0); /* came from --set */
    CHECK(cfg.models[0].n_stages == 1 && cfg.models[0].stages[0].from_epoch == 2);
}

static void test_later_override_wins_and_replaces_array_elements(void)
{
    const char *sets[] = {"models.0.epochs=5", "models.0.epochs=6", "folds.use.1=4", "folds.use.2=2"};
    CHECK(load_set(MINIMAL "folds = { use = [0, 1]; };\n", sets, 4) == FL_OK);
    CHECK(cfg.models[0].epochs == 6);
    CHECK(cfg.n_folds_use == 3 && cfg.folds_use[1] == 4 && cfg.folds_use[2] == 2);
}

static void test_override_errors_name_the_override(void)
{
    const char *bad_type[] = {"models.0.epochs=abc"};
    CHECK(load_set(MINIMAL, bad_type, 1) == FL_ECONFIG);
    CHECK_STR(err.msg, "--set models.0.epochs=abc: models.[0].epochs: expected an integer, found a string");
    const char *bad_range[] = {"models.0.optimizer.lr=-1"};
    CHECK(load_set(MINIMAL, bad_range, 1) == FL_ECONFIG);
    CHECK_STR(err.msg, "--set models.0.optimizer.lr=-1: models.[0].optimizer.lr: must be > 0, found -1");
    const char *unknown[] = {"run.sede=1"};
    CHECK(load_set(MINIMAL, unknown, 1) == FL_ECONFIG);
    CHECK_STR(err.msg, "--set run.sede=1: run.sede: unknown key HINT: run takes name, out_dir, seed, threads, "
                       "checkpoint_minutes, on_nan, scratch_dir, progress_s, precision");
    const char *unknown_group[] = {"runn.seed=1"};
    CHECK(load_set(MINIMAL, unknown_group, 1) == FL_ECONFIG);
    CHECK(strstr(err.msg, "--set runn.seed=1: runn: unknown key HINT: the top level takes") == err.msg);
}

static void test_override_bad_paths_are_usage_errors(void)
{
    static const struct {
        const char *set, *msg;
    } cases[] = {
        {"models.0.epochs", "--set models.0.epochs: expected key.path=value HINT: e.g. --set models.0.epochs=1"},
        {"models..epochs=1",
         "--set models..epochs=1: empty path component HINT: e.g. --set models.0.optimizer.lr=0.01"},
        {"models.cnn_x.epochs=1", "--set models.cnn_x.epochs=1: models has no element named \"cnn_x\" HINT: the "
                                  "names are a; or use an index, e.g. models.0"},
        {"models.5.epochs=1", "--set models.5.epochs=1: models.[5] is past the end (models has 1 element)"},
        {"run.0=1", "--set run.0=1: run is a group: name one of its keys, not an index"},
        {"models.0.epochs.x=1", "--set models.0.epochs.x=1: models.[0].epochs is an integer, not a group HINT: it "
                                "has no key x"},
        {"models.0.tta=[\"hflip\"", "--set models.0.tta=[\"hflip\": the value is not valid libconfig (syntax error) "
                                    "HINT: e.g. --set 'models.0.tta=[\"hflip\"]'"},
        {"run.se ed=1", "--set run.se ed=1: \"se ed\" is not a valid key name HINT: a key starts with a letter, then "
                        "letters, digits, '_' or '-'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sets[] = {cases[i].set};
        CHECK(load_set(MINIMAL, sets, 1) == FL_EUSAGE);
        CHECK_STR(err.msg, cases[i].msg);
    }
}

static void test_override_type_mismatch_in_an_array_is_an_error(void)
{
    const char *sets[] = {"folds.use.0=x"};
    CHECK(load_set(MINIMAL "folds = { use = [0, 1]; };\n", sets, 1) == FL_EUSAGE);
    CHECK_STR(err.msg, "--set folds.use.0=x: folds.use.[0] is an integer, cannot put a string in its place HINT: set "
                       "the whole array, e.g. --set 'folds.use=[0, 1]'");
}

/* ---- checks against the data file ---- */

static void test_check_data_mean_length_must_match_channels(void)
{
    CHECK(load("data = { file = \"@DATA@\";\n mean = [0.5, 0.5]; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_OK);
    CHECK(fl_config_check_data(&cfg, 0, 3, 5, &err) == FL_ECONFIG);
    CHECK_MSG(":2: data.mean: expected 1 or 3 values (the data file has 3 channels), found 2");
    CHECK(load("data = { file = \"@DATA@\"; mean = [0.5]; std = [0.2, 0.2, 0.2]; };\n"
               "models = ( { name = \"a\"; backbone = \"resnet18\"; epochs = 3; } );\n") == FL_OK);
    CHECK(fl_config_check_data(&cfg, 0, 3, 5, &err) == FL_OK);
    CHECK(fl_config_check_data(&cfg, 0, 1, 5, &err) == FL_ECONFIG);
    CHECK_MSG(":1: data.std: expected 1 value (the data file has 1 channel), found 3");
}

static void test_check_data_folds_use_must_exist_in_the_file(void)
{
    CHECK(load(MINIMAL "folds = { use = [0, 5]; };\n") == FL_OK);
    CHECK(fl_config_check_data(&cfg, 0, 3, 6, &err) == FL_OK);
    CHECK(fl_config_check_data(&cfg, 0, 3, 5, &err) == FL_ECONFIG);
    CHECK_MSG(":3: folds.use.[1]: fold 5 is not in the data file HINT: it has 5 folds, 0..4");
}

static void test_check_data_rejects_a_duplicate_fold(void)
{
    CHECK(load(MINIMAL "folds = { use = [0, 1, 2]; };\n") == FL_OK);
    cfg.folds_use[2] = 0; /* as a caller might build it by hand */
    CHECK(fl_config_check_data(&cfg, 0, 3, 5, &err) == FL_ECONFIG);
    CHECK_MSG(":3: folds.use.[2]: fold 0 is listed twice");
}

int main(void)
{
    test_tmp_path(data_path, sizeof data_path, "fl_cfg_data.h5");
    FILE *f = fopen(data_path, "w");
    if (!f)
        return 1;
    fclose(f);
    RUN(test_design_example_loads_with_its_values);
    RUN(test_absent_keys_take_the_defaults);
    RUN(test_sgd_cosine_and_every_model_key_are_read);
    RUN(test_torchscript_path_starts_at_the_config_folder);
    RUN(test_torchscript_needs_a_path_and_unknown_backbones_say_so);
    RUN(test_backbone_lr_scale_is_positive_and_only_for_a_trained_backbone);
    RUN(test_fuse_folds_defaults_to_a_frozen_backbone_and_needs_one);
    RUN(test_feature_cache_keys_are_read_and_checked);
    RUN(test_resume_and_failure_keys_are_read_and_checked);
    RUN(test_overlap_keys_are_read_and_checked);
    RUN(test_unknown_key_names_line_key_and_the_keys_allowed);
    RUN(test_unknown_key_inside_an_augment_op);
    RUN(test_wrong_types_say_what_was_expected_and_found);
    RUN(test_integers_are_accepted_where_floats_are_expected);
    RUN(test_booleans_must_be_true_or_false);
    RUN(test_lr_must_be_positive);
    RUN(test_out_of_range_values_name_the_bound);
    RUN(test_seed_takes_the_whole_32_bit_range);
    RUN(test_unknown_enum_values_list_the_allowed_ones);
    RUN(test_keys_of_another_variant_are_errors);
    RUN(test_onecycle_schedule);
    RUN(test_syntax_error_names_the_line);
    RUN(test_missing_config_file_is_named);
    RUN(test_missing_data_file_is_named);
    RUN(test_a_model_data_overrides_the_top_level_key_by_key);
    RUN(test_top_level_data_file_is_optional_only_when_every_model_has_one);
    RUN(test_missing_required_keys_are_named);
    RUN(test_models_list_must_not_be_empty);
    RUN(test_model_names_are_valid_and_unique);
    RUN(test_elastic_and_grid_distortion_read_their_parameters);
    RUN(test_elastic_and_grid_distortion_ranges_name_the_key);
    RUN(test_brightness_contrast_and_cutout_read_their_parameters);
    RUN(test_unknown_op_lists_every_op);
    RUN(test_op_parameters_of_other_ops_are_errors);
    RUN(test_rotate_needs_degrees_in_0_to_180);
    RUN(test_op_probability_is_in_0_to_1_and_defaults_to_half);
    RUN(test_augment_stages_start_later_and_strictly_increase);
    RUN(test_tta_entries_are_unique);
    RUN(test_vote_weights_one_positive_value_per_model);
    RUN(test_mean_and_std_hold_1_to_3_values);
    RUN(test_folds_use_is_checked_at_load);
    RUN(test_override_sets_int_float_and_string);
    RUN(test_override_picks_list_elements_by_index_or_name);
    RUN(test_override_creates_missing_keys_and_groups);
    RUN(test_later_override_wins_and_replaces_array_elements);
    RUN(test_override_errors_name_the_override);
    RUN(test_override_bad_paths_are_usage_errors);
    RUN(test_override_type_mismatch_in_an_array_is_an_error);
    RUN(test_check_data_mean_length_must_match_channels);
    RUN(test_check_data_folds_use_must_exist_in_the_file);
    RUN(test_check_data_rejects_a_duplicate_fold);
    unlink(data_path);
    return check_summary();
}
