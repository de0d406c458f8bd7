/* cli_train.c -- `foldline train CONFIG [--set key.path=value]...`: every job
 * (models x folds.use) of the run on the ranks of the MPI world, then the
 * gather step (vote) on rank 0. Alone, the world is one rank.
 *
 * The life of a rank:
 *   1. MPI up (FUNNELED); the launch check against SLURM_NTASKS.
 *   2. What every rank sets up on its own: the config, the data file, its
 *      device and threads; rank 0 also writes run.cfg. Then the ranks agree:
 *      if any failed, the failure is printed once (by rank 0 when every rank
 *      met it, as with a config error) and every rank exits non-zero.
 *   3. Collective set-up: the rank groups, their backend, the job queue.
 *   4. The jobs: each group's leader takes the next job from the queue and
 *      tells its group. From here on an error on any rank ends the whole
 *      world (cli_report calls MPI_Abort), so that no rank waits forever.
 *   5. A barrier, MPI down; rank 0 votes and prints the report.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataset/datafile.h"
#include "dataset/loader.h"
#include "dist/group.h"
#include "dist/jobq.h"
#include "dist/manifest.h"
#include "dist/nccl.h"
#include "dist/tempfile.h"
#include "dist/vote.h"
#include "dist/world.h"
#include "launch/cli.h"
#include "launch/config.h"
#include "trainer/job.h"
#include "trainer/torch/bridge.h"

static const char *train_usage =
    "usage: foldline train CONFIG [--set key.path=value]...\n"
    "       mpirun -np R foldline train CONFIG [--set key.path=value]...\n"
    "\n"
    "Trains every job (models x folds.use) of the run CONFIG describes (libconfig syntax; see\n"
    "configs/), writing out_dir/name/<model>/fold<k>/{preds.h5, metrics.csv, *.pt}, then votes\n"
    "(vote.method) and prints the report. Jobs whose preds.h5 exists are complete and skipped.\n"
    "Under MPI the R ranks form groups of dist.ranks_per_job; each group takes the next job\n"
    "and trains it data-parallel (batch is the global batch). Results do not depend on R.\n"
    "\n"
    "  --set key.path=value   override a config value, e.g. --set models.0.epochs=2,\n"
    "                         --set models.cnn_a.optimizer.lr=3e-4, --set run.threads=4\n";

/* What a rank holds for the whole run. */
typedef struct {
    fl_world world;
    const fl_train_config *cfg;
    fl_data_info info;
    int32_t *labels, *fold; /* (n_train) */
    int folds[FL_MAX_FOLDS], n_folds;
    char device[32];        /* "cpu" or "cuda:<local rank>" */
    int cuda_device;        /* -1 on the CPU */
    fl_backend backend;
    int threads;
    fl_job_env env;
} train_ctx;

/* Threads per rank when run.threads is 0: the cores this rank is bound to
 * when the launcher bound it (mpirun binds to cores when there are at least
 * as many cores as ranks), else the host's cores shared among its ranks. */
static int default_threads(const fl_world *w)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < online)
        return CPU_COUNT(&set);
    long t = online / (w->local_size > 0 ? w->local_size : 1);
    return t < 1 ? 1 : (int)t;
}

/* data.verify = "full": every image's checksum before any job, each rank
 * reading its share of the rows, so that a corrupt image stops the run now,
 * not in epoch 3. (The seal, checked at every open, covers the rest.) */
static fl_code train_verify_images(const train_ctx *t, fl_datafile *df, fl_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t checked;
    fl_code rc = fl_datafile_verify_images(df, t->world.rank, t->world.size, &checked, err);
    if (rc || checked == 0 || t->world.rank != 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("train: %s: %lld image checksums verified in %.1f s%s\n", t->cfg->data_file, (long long)checked,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9,
           t->world.size > 1 ? " (rank 0's share)" : "");
    fflush(stdout);
    return FL_OK;
}

/* Reads what every job needs from the data file and checks the config against it. */
static fl_code train_open_data(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    fl_datafile *df;
    fl_code rc = fl_datafile_open(cfg->data_file, &df, err);
    if (rc)
        return fl_error_prefix(err, "%s: data.file", cfg->path);
    /* With data.cache = "memory" the loaders read (and so verify) every image
     * before the first job anyway. */
    int verify = !strcmp(cfg->data_verify, "full") && strcmp(cfg->data_cache, "memory") != 0;
    if (verify && (rc = train_verify_images(t, df, err))) {
        fl_datafile_close(df);
        return rc;
    }
    t->info = *fl_datafile_info(df);
    t->info.classes = NULL; /* owned by df */
    int64_t n = t->info.n_train;
    t->labels = malloc(sizeof *t->labels * (size_t)(n ? n : 1));
    t->fold = malloc(sizeof *t->fold * (size_t)(n ? n : 1));
    if (!t->labels || !t->fold)
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
    if (!rc)
        rc = fl_config_check_data(cfg, t->info.channels, t->info.folds, err);
    if (!rc)
        rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, t->labels, err);
    if (!rc)
        rc = fl_datafile_read_folds(df, t->fold, err);
    if (!rc)
        rc = fl_datafile_fingerprint(df, t->env.fingerprint, err);
    fl_datafile_close(df);
    return rc;
}

static fl_code train_write_manifest(const train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    fl_manifest m;
    memset(&m, 0, sizeof m);
    char abs[PATH_MAX];
    if (!realpath(cfg->data_file, abs))
        return fl_fail(err, FL_EINPUT, "%s: data.file '%s': %s", cfg->path, cfg->data_file, strerror(errno));
    snprintf(m.data_file, sizeof m.data_file, "%s", abs);
    m.n_folds = t->n_folds;
    memcpy(m.folds, t->folds, sizeof *t->folds * (size_t)t->n_folds);
    m.n_models = cfg->n_models;
    for (int i = 0; i < cfg->n_models; i++) {
        snprintf(m.models[i].name, sizeof m.models[i].name, "%s", cfg->models[i].name);
        m.models[i].weight = cfg->models[i].vote_weight;
    }
    snprintf(m.vote_method, sizeof m.vote_method, "%s", cfg->vote_method);
    char path[4200];
    snprintf(path, sizeof path, "%s/run.cfg", t->env.run_dir);
    return fl_manifest_write(path, &m, err);
}

/* The device of this rank (its local rank picks the GPU) and the backend of
 * its group's collectives: NCCL when the tensors are on CUDA, else MPI. */
static fl_code train_pick_device(train_ctx *t, fl_error *err)
{
    const fl_world *w = &t->world;
    fl_torch_info ti;
    fl_code rc = fl_torch_get_info(&ti, err);
    if (rc)
        return rc;
    t->cuda_device = -1;
    snprintf(t->device, sizeof t->device, "cpu");
    if (ti.cuda_devices > 0) {
        if (w->local_rank >= ti.cuda_devices)
            return fl_fail(err, FL_EINPUT,
                           "host %s: %d ranks run there but it has %d CUDA device%s, so local rank %d has none "
                           "HINT: start at most %d rank%s per host (one per GPU), e.g. mpirun --map-by ppr:%d:node",
                           w->host, w->local_size, ti.cuda_devices, ti.cuda_devices == 1 ? "" : "s", w->local_rank,
                           ti.cuda_devices, ti.cuda_devices == 1 ? "" : "s", ti.cuda_devices);
        t->cuda_device = w->local_rank;
        snprintf(t->device, sizeof t->device, "cuda:%d", w->local_rank);
    }
    int cuda = t->cuda_device >= 0;
    if ((rc = fl_config_check_backend(t->cfg, cuda, fl_nccl_built(), w->host, err)))
        return rc;
    const char *b = t->cfg->backend;
    t->backend = !strcmp(b, "nccl") || (!strcmp(b, "auto") && cuda && fl_nccl_built()) ? FL_BACKEND_NCCL : FL_BACKEND_MPI;
    return FL_OK;
}

/* Step 2: everything a rank does on its own before the ranks agree. */
static fl_code train_setup_local(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    fl_code rc = fl_config_check_world(cfg, t->world.size, err);
    if (!rc)
        rc = train_open_data(t, err);
    if (rc)
        return rc;
    if ((t->n_folds = cfg->n_folds_use))
        memcpy(t->folds, cfg->folds_use, sizeof *t->folds * (size_t)t->n_folds);
    else
        for (t->n_folds = 0; t->n_folds < t->info.folds && t->n_folds < FL_MAX_FOLDS; t->n_folds++)
            t->folds[t->n_folds] = t->n_folds;
    fl_job_env *env = &t->env;
    env->cfg = cfg;
    env->data = &t->info;
    env->train_labels = t->labels;
    env->train_fold = t->fold;
    env->log = stdout;
    env->device = t->device;
    snprintf(env->run_dir, sizeof env->run_dir, "%s/%s", cfg->out_dir, cfg->run_name);
    t->threads = cfg->threads > 0 ? cfg->threads : default_threads(&t->world);
    if ((rc = train_pick_device(t, err)) || (rc = fl_torch_set_threads(t->threads, err)) ||
        (rc = fl_torch_keep_freed_memory(err)))
        return rc;
    if (t->world.rank == 0) {
        if ((rc = fl_mkdir_p(env->run_dir, err)))
            return fl_error_prefix(err, "%s: run.out_dir", cfg->path);
        if ((rc = train_write_manifest(t, err)))
            return rc;
    }
    int cache = !strcmp(cfg->data_cache, "memory");
    if ((rc = fl_loader_open(cfg->data_file, FL_SPLIT_TRAIN, cache, &env->train_loader, err)))
        return rc;
    return fl_loader_open(cfg->data_file, FL_SPLIT_TEST, cache, &env->test_loader, err);
}

/* Step 3: the groups, their backend and the job queue (collective). */
static fl_code train_setup_groups(train_ctx *t, fl_error *err)
{
    const fl_world *w = &t->world;
    const fl_train_config *cfg = t->cfg;
    int n_jobs = cfg->n_models * t->n_folds, hosts = w->hosts;
    fl_code rc;
    if ((rc = fl_group_open(w, cfg->ranks_per_job, &t->env.group, err)) ||
        (rc = fl_group_set_backend(t->env.group, t->backend, t->cuda_device, err)) ||
        (rc = fl_jobq_open(w, n_jobs, &t->env.queue, err)))
        return rc;
    if (w->rank != 0)
        return FL_OK;
    int groups = fl_group_count(t->env.group), per = cfg->ranks_per_job;
    printf("train: %s: %d model%s x %d fold%s = %d job%s on %s, %d thread%s per rank; run directory %s\n", cfg->path,
           cfg->n_models, cfg->n_models == 1 ? "" : "s", t->n_folds, t->n_folds == 1 ? "" : "s", n_jobs,
           n_jobs == 1 ? "" : "s", t->device, t->threads, t->threads == 1 ? "" : "s", t->env.run_dir);
    if (w->size > 1)
        printf("train: %d ranks on %d host%s in %d group%s of %d (dist.ranks_per_job); %s; %s backend\n", w->size,
               hosts, hosts == 1 ? "" : "s", groups, groups == 1 ? "" : "s", per,
               per == 1 ? "fold-parallel" : "data-parallel within each group",
               t->backend == FL_BACKEND_NCCL ? "NCCL" : "MPI");
    fflush(stdout);
    if (groups > n_jobs) {
        fprintf(stderr,
                "foldline: warning: %d groups of %d rank%s but %d job%s: %d group%s will have nothing to do "
                "HINT: start %d ranks, or raise dist.ranks_per_job to use them data-parallel\n",
                groups, per, per == 1 ? "" : "s", n_jobs, n_jobs == 1 ? "" : "s", groups - n_jobs,
                groups - n_jobs == 1 ? "" : "s", n_jobs * per);
        fflush(stderr);
    }
    return FL_OK;
}

/* Step 4: jobs until the queue is empty. Job index i is model i / n_folds,
 * fold folds[i % n_folds] (the order of one process: model-major). */
static fl_code train_jobs(train_ctx *t, fl_error *err)
{
    fl_job_env *env = &t->env;
    int leader = fl_group_rank(env->group) == 0;
    for (;;) {
        int idx = -1;
        fl_job job;
        fl_code rc;
        while (leader) { /* the leader takes jobs until one that is not complete */
            if ((rc = fl_jobq_take(env->queue, &idx, err)))
                return rc;
            if (idx < 0)
                break;
            job = (fl_job){idx / t->n_folds, t->folds[idx % t->n_folds]};
            if (!fl_job_is_done(env, &job))
                break;
            printf("[%s fold %d] complete (preds.h5 exists), skipped\n", t->cfg->models[job.model].name, job.fold);
            fflush(stdout);
        }
        if ((rc = fl_group_bcast_int(env->group, &idx, err)))
            return rc;
        if (idx < 0)
            return FL_OK;
        job = (fl_job){idx / t->n_folds, t->folds[idx % t->n_folds]};
        if ((rc = fl_job_run(env, &job, err)))
            return rc;
    }
}

static void train_free(train_ctx *t)
{
    fl_loader_close(t->env.train_loader);
    fl_loader_close(t->env.test_loader);
    t->env.train_loader = t->env.test_loader = NULL;
    free(t->labels);
    free(t->fold);
    t->labels = t->fold = NULL;
}

/* Steps 1 to 5. Returns the exit status; failures go through cli_report. */
static int train_main(const char *config, const char **overrides, int n_over, fl_train_config *cfg)
{
    fl_error err;
    fl_error_clear(&err);
    train_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        fl_fail(&err, FL_ENOMEM, "out of memory");
        return cli_report(&err);
    }
    t->cfg = cfg;
    fl_code rc = fl_world_start(&t->world, &err);
    if (rc) {
        free(t);
        return cli_report(&err);
    }
    rc = fl_world_check_launch(&t->world, &err);
    if (!rc)
        rc = fl_config_load(config, overrides, n_over, cfg, &err);
    if (!rc)
        rc = train_setup_local(t, &err);
    int first = 0, n_failed = 0;
    fl_error agree_err;
    if (fl_world_agree(&t->world, rc != FL_OK, &first, &n_failed, &agree_err)) {
        train_free(t);
        free(t);
        return cli_report(rc ? &err : &agree_err);
    }
    if (n_failed) {
        /* A failure of step 2: every rank ends cleanly, one prints it. */
        fl_world w = t->world;
        train_free(t);
        free(t);
        fl_world_end();
        if (n_failed == w.size ? !fl_world_reports(&w) : w.rank != first)
            return rc ? fl_exit_status(rc) : 1;
        if (n_failed < w.size)
            fl_error_prefix(&err, "rank %d of %d (%s)", w.rank, w.size, w.host);
        return cli_report(&err);
    }
    if (!(rc = train_setup_groups(t, &err)) && !(rc = train_jobs(t, &err))) {
        rc = fl_jobq_close(t->env.queue, &err); /* collective: waits for every group */
        t->env.queue = NULL;
        if (!rc)
            rc = fl_world_barrier(&t->world, &err);
    }
    if (rc) {
        train_free(t);
        if (t->world.size == 1) { /* alone, MPI ends normally: free what it holds first */
            fl_jobq_close(t->env.queue, NULL);
            fl_group_close(t->env.group);
        }
        free(t);
        return cli_report(&err); /* with more ranks: ends every one of them */
    }
    fl_group_close(t->env.group);
    int rank = t->world.rank;
    train_free(t);
    free(t);
    fl_world_end();
    if (rank != 0)
        return 0;
    fflush(stdout);
    /* The gather step: every job of the run is complete. */
    fl_vote_options vo = {0};
    char run_dir[sizeof cfg->out_dir + sizeof cfg->run_name + 2];
    snprintf(run_dir, sizeof run_dir, "%s/%s", cfg->out_dir, cfg->run_name);
    vo.run_dir = run_dir;
    vo.echo = stdout;
    if (fl_vote_run(&vo, &err))
        return cli_report(&err);
    return 0;
}

int cli_train(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    const char *config = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int n_over = 0, status;
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
    status = train_main(config, overrides, n_over, cfg);
    free(overrides);
    free(cfg);
    return status;
report:
    free(overrides);
    free(cfg);
    return cli_report(&err);
}
