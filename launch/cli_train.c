/* cli_train.c -- `foldline train CONFIG [--set key.path=value]...`: every job
 * (models x folds.use) of the run, then the gather step (vote). */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/datafile.h"
#include "dataset/loader.h"
#include "dist/manifest.h"
#include "dist/tempfile.h"
#include "dist/world.h"
#include "dist/vote.h"
#include "launch/cli.h"
#include "launch/config.h"
#include "trainer/job.h"
#include "trainer/torch/bridge.h"

static const char *train_usage =
    "usage: foldline train CONFIG [--set key.path=value]...\n"
    "\n"
    "Trains every job (models x folds.use) of the run CONFIG describes (libconfig syntax; see\n"
    "configs/), writing out_dir/name/<model>/fold<k>/{preds.h5, metrics.csv, *.pt}, then votes\n"
    "(vote.method) and prints the report. Jobs whose preds.h5 exists are complete and skipped.\n"
    "\n"
    "  --set key.path=value   override a config value, e.g. --set models.0.epochs=2,\n"
    "                         --set models.cnn_a.optimizer.lr=3e-4, --set run.threads=4\n";

/* Reads what every job needs from the data file and checks the config against it. */
static fl_code train_open_data(const fl_train_config *cfg, fl_data_info *info, int32_t **labels, int32_t **fold, char fp[17],
                               fl_error *err)
{
    fl_datafile *df;
    fl_code rc = fl_datafile_open(cfg->data_file, &df, err);
    if (rc)
        return fl_error_prefix(err, "%s: data.file", cfg->path);
    *info = *fl_datafile_info(df);
    info->classes = NULL; /* owned by df */
    int64_t n = info->n_train;
    *labels = malloc(sizeof **labels * (size_t)(n ? n : 1));
    *fold = malloc(sizeof **fold * (size_t)(n ? n : 1));
    if (!*labels || !*fold)
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
    if (!rc)
        rc = fl_config_check_data(cfg, info->channels, info->folds, err);
    if (!rc)
        rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, *labels, err);
    if (!rc)
        rc = fl_datafile_read_folds(df, *fold, err);
    if (!rc)
        rc = fl_datafile_fingerprint(df, fp, err);
    fl_datafile_close(df);
    return rc;
}

static fl_code train_write_manifest(const fl_train_config *cfg, const int *folds, int n_folds, const char *run_dir, fl_error *err)
{
    fl_manifest m;
    memset(&m, 0, sizeof m);
    char abs[PATH_MAX];
    if (!realpath(cfg->data_file, abs))
        return fl_fail(err, FL_EINPUT, "%s: data.file '%s': %s", cfg->path, cfg->data_file, strerror(errno));
    snprintf(m.data_file, sizeof m.data_file, "%s", abs);
    m.n_folds = n_folds;
    memcpy(m.folds, folds, sizeof *folds * (size_t)n_folds);
    m.n_models = cfg->n_models;
    for (int i = 0; i < cfg->n_models; i++) {
        snprintf(m.models[i].name, sizeof m.models[i].name, "%s", cfg->models[i].name);
        m.models[i].weight = cfg->models[i].vote_weight;
    }
    snprintf(m.vote_method, sizeof m.vote_method, "%s", cfg->vote_method);
    char path[4200];
    snprintf(path, sizeof path, "%s/run.cfg", run_dir);
    return fl_manifest_write(path, &m, err);
}

static fl_code train_run(const fl_train_config *cfg, fl_error *err)
{
    fl_data_info info;
    int32_t *labels = NULL, *fold = NULL;
    fl_job_env env;
    memset(&env, 0, sizeof env);
    fl_code rc = train_open_data(cfg, &info, &labels, &fold, env.fingerprint, err);
    int folds[FL_MAX_FOLDS], n_folds = cfg->n_folds_use;
    if (n_folds)
        memcpy(folds, cfg->folds_use, sizeof *folds * (size_t)n_folds);
    else
        for (n_folds = 0; n_folds < info.folds && n_folds < FL_MAX_FOLDS; n_folds++)
            folds[n_folds] = n_folds;
    env.cfg = cfg;
    env.data = &info;
    env.train_labels = labels;
    env.train_fold = fold;
    env.log = stdout;
    snprintf(env.run_dir, sizeof env.run_dir, "%s/%s", cfg->out_dir, cfg->run_name);
    fl_torch_info ti;
    if (!rc)
        rc = fl_torch_get_info(&ti, err);
    env.device = !rc && ti.cuda_devices > 0 ? "cuda:0" : "cpu";
    int threads = cfg->threads > 0 ? cfg->threads : fl_cores_available();
    if (!rc)
        rc = fl_torch_set_threads(threads, err);
    if (!rc)
        rc = fl_torch_keep_freed_memory(err);
    if (!rc && (rc = fl_mkdir_p(env.run_dir, err)))
        fl_error_prefix(err, "%s: run.out_dir", cfg->path);
    if (!rc)
        rc = train_write_manifest(cfg, folds, n_folds, env.run_dir, err);
    int cache = !strcmp(cfg->data_cache, "memory");
    if (!rc)
        rc = fl_loader_open(cfg->data_file, FL_SPLIT_TRAIN, cache, &env.train_loader, err);
    if (!rc)
        rc = fl_loader_open(cfg->data_file, FL_SPLIT_TEST, cache, &env.test_loader, err);
    if (!rc)
        printf("train: %s: %d models x %d folds on %s, %d threads; run directory %s\n", cfg->path, cfg->n_models, n_folds, env.device,
               threads, env.run_dir);
    for (int m = 0; m < cfg->n_models && !rc; m++)
        for (int k = 0; k < n_folds && !rc; k++) {
            fl_job job = {m, folds[k]};
            if (fl_job_is_done(&env, &job)) {
                printf("[%s fold %d] complete (preds.h5 exists), skipped\n", cfg->models[m].name, folds[k]);
                continue;
            }
            rc = fl_job_run(&env, &job, err);
        }
    fl_loader_close(env.train_loader);
    fl_loader_close(env.test_loader);
    free(labels);
    free(fold);
    if (rc)
        return rc;
    fflush(stdout);
    fl_vote_options vo = {0};
    vo.run_dir = env.run_dir;
    vo.echo = stdout;
    return fl_vote_run(&vo, err);
}

int cli_train(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    const char *config = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int n_over = 0;
    fl_train_config *cfg = calloc(1, sizeof *cfg);
    if (!overrides || !cfg) {
        fl_fail(&err, FL_ENOMEM, "out of memory");
        goto report;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(train_usage, stdout);
            free(overrides);
            free(cfg);
            return 0;
        } else if ((r = cli_opt_value(argc, argv, &i, "--set", &v)) != 0) {
            if (r < 0) {
                fl_fail(&err, FL_EUSAGE, "train: --set needs key.path=value");
                goto report;
            }
            overrides[n_over++] = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(&err, FL_EUSAGE, "train: unknown option '%s' HINT: foldline train --help", argv[i]);
            goto report;
        } else if (!config) {
            config = argv[i];
        } else {
            fl_fail(&err, FL_EUSAGE, "train: unexpected argument '%s' HINT: foldline train CONFIG [--set key=value]...", argv[i]);
            goto report;
        }
    }
    if (!config) {
        fl_fail(&err, FL_EUSAGE, "train: needs a CONFIG file HINT: foldline train configs/demo.cfg");
        goto report;
    }
    fl_h5_quiet();
    fl_tempfile_install_signal_cleanup();
    if (!fl_config_load(config, overrides, n_over, cfg, &err))
        train_run(cfg, &err);
report:
    free(overrides);
    free(cfg);
    return err.code ? cli_report(&err) : 0;
}
