/* cli_train.c -- `foldline train CONFIG [--set key.path=value]...`: every job
 * (models x folds.use; a frozen model's folds in one fused job) of the run on
 * the ranks of the MPI world, then the gather step (vote) on rank 0. Alone,
 * the world is one rank. The data files' steps live in train_data.c, the
 * device, folds and jobs in train_plan.c, the run directory's --restart,
 * settings check and run.cfg in train_rundir.c, and step 4 in train_jobs.c
 * (launch/train_priv.h).
 *
 * The life of a rank:
 *   1. MPI up (FUNNELED); the launch check against SLURM_NTASKS.
 *   2. What every rank sets up on its own, in two parts, after each of which
 *      the ranks agree: if any failed, the failure is printed once (by rank 0
 *      when every rank met it, as with a config error) and every rank exits
 *      non-zero. (a) The config and the data files (a model may have its
 *      own; each distinct file is opened once, and every one must hold the
 *      first model's rows); rank 0 decides which files the full pass of
 *      data.verify = "full" reads (those not listed unchanged in the run's
 *      verified.txt, dataset/verified.h) and tells every rank. (b) Each rank's
 *      share of that pass, its device and threads, a dry run of each
 *      TorchScript backbone; rank 0 also writes run.cfg, and once every
 *      rank's share passed, verified.txt.
 *   3. Collective set-up: the rank groups, their backend, the job queue.
 *   4. The jobs: each group's leader takes the next job from the queue and
 *      tells its group. From here on an error on any rank ends the whole
 *      world (cli_report calls MPI_Abort), so that no rank waits forever.
 *   5. A barrier, MPI down; rank 0 votes and prints the report when every
 *      job of the run is complete (with --fold K, other processes may still
 *      be training the other folds: then it says what is missing).
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataset/datafile.h"
#include "dataset/loader.h"
#include "dataset/verified.h"
#include "dist/group.h"
#include "dist/jobq.h"
#include "vote/manifest.h"
#include "dist/nccl.h"
#include "base/progress.h"
#include "trainer/runstatus.h"
#include "base/stop.h"
#include "base/tempfile.h"
#include "vote/vote.h"
#include "dist/world.h"
#include "launch/cli.h"
#include "config/config.h"
#include "launch/train_priv.h"
#include "trainer/fused.h"
#include "trainer/job.h"
#include "trainer/joblock.h"
#include "trainer/torch/bridge.h"

static const char *train_usage =
    "usage: foldline train CONFIG [--fold K] [--set key.path=value]... [--restart]\n"
    "       mpirun -np R foldline train CONFIG [--fold K] [--set key.path=value]... [--restart]\n"
    "\n"
    "Trains every job (models x folds.use) of the run CONFIG describes (libconfig syntax; see\n"
    "configs/), writing out_dir/name/<model>/fold<k>/{preds.h5, metrics.csv, *.pt}, then votes\n"
    "(vote.method) and prints the report. Jobs whose preds.h5 exists are complete and skipped;\n"
    "interrupted jobs resume from their last.pt. SIGTERM, SIGUSR1 or SIGINT stop every job after\n"
    "its current step with a checkpoint, exit status 75: the same command resumes.\n"
    "A job another live trainer holds (its lock RUN_DIR/<model>/fold<k>/lock) is skipped; a stale\n"
    "lock (its holder gone, or elsewhere with no heartbeat for dist.lock_timeout_s) is taken over.\n"
    "Under MPI the R ranks form groups of dist.ranks_per_job; each group takes the next job\n"
    "and trains it data-parallel (batch is the global batch). Results do not depend on R.\n"
    "\n"
    "  --fold K               train only the jobs of fold K (K one of folds.use), e.g. one fold per\n"
    "                         SLURM array task; run.cfg still lists every fold, and the vote runs\n"
    "                         only once every job of the run has its preds.h5 (else: foldline vote)\n"
    "  --set key.path=value   override a config value, e.g. --set models.0.epochs=2,\n"
    "                         --set models.cnn_a.optimizer.lr=3e-4, --set run.threads=4\n"
    "  --restart              discard the run's results and checkpoints first and start afresh\n"
    "                         (refused while another trainer holds one of its jobs); with --fold K,\n"
    "                         only fold K's results of every model (the other folds and run.cfg stay)\n";

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

/* Warnings, once per host (its local rank 0), about cores: more ranks on
 * this host than it has cores (mpirun --oversubscribe), and run.threads above
 * the host's cores, which is clamped to them (more threads only contend). */
static void train_warn_cores(train_ctx *t)
{
    const fl_world *w = &t->world;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    int speak = w->local_rank == 0;
    if (speak && w->local_size > online)
        fprintf(stderr,
                "foldline: warning: host %s runs %d ranks on %ld core%s (oversubscribed): they take turns on the "
                "cores and each runs slower than alone HINT: start at most %ld rank%s per host, e.g. "
                "launch/mpirun.sh picks them\n",
                w->host, w->local_size, online, online == 1 ? "" : "s", online, online == 1 ? "" : "s");
    if (t->cfg->threads > online) {
        if (speak)
            fprintf(stderr,
                    "foldline: warning: %s: run.threads = %d is more than the %ld core%s of host %s; using %ld "
                    "HINT: set run.threads = 0 (the cores each rank has) or at most %ld\n",
                    t->cfg->path, t->cfg->threads, online, online == 1 ? "" : "s", w->host, online, online);
        t->threads = (int)online;
    }
    fflush(stderr);
}

/* Step 2a: the config against the world and the data files, which stay
 * open; rank 0 decides what the verification pass reads. */
static fl_code train_setup_data(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    snprintf(t->env.run_dir, sizeof t->env.run_dir, "%s/%s", cfg->out_dir, cfg->run_name);
    fl_code rc = fl_config_check_world(cfg, t->world.size, err);
    if (!rc)
        rc = train_open_data(t, err);
    if (!rc && t->world.rank == 0)
        train_decide_verify(t);
    return rc;
}

/* Step 2b: everything else a rank does on its own before the ranks agree. */
static fl_code train_setup_local(train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    fl_code rc = train_verify_data(t, err);
    if (rc)
        return rc;
    if ((t->n_folds = cfg->n_folds_use))
        memcpy(t->folds, cfg->folds_use, sizeof *t->folds * (size_t)t->n_folds);
    else
        for (t->n_folds = 0; t->n_folds < t->data[0].jd.info.folds && t->n_folds < FL_MAX_FOLDS; t->n_folds++)
            t->folds[t->n_folds] = t->n_folds;
    if ((rc = train_pick_folds(t, err)) || (rc = train_check_frozen_batches(t, err)) ||
        (rc = train_check_models(t, err)))
        return rc;
    train_list_jobs(t);
    fl_job_env *env = &t->env;
    env->cfg = cfg;
    for (int m = 0; m < cfg->n_models; m++)
        env->model_data[m] = &t->data[t->data_of_model[m]].jd;
    env->train_labels = t->labels;
    env->train_fold = t->fold;
    env->log = stdout;
    env->device = t->device;
    t->threads = cfg->threads > 0 ? cfg->threads : default_threads(&t->world);
    train_warn_cores(t);
    if ((rc = train_pick_device(t, err)) || (rc = fl_torch_set_threads(t->threads, err)) ||
        (rc = fl_torch_keep_freed_memory(err)) || (rc = train_probe_backbones(t, err)))
        return rc;
    if (t->world.rank == 0) {
        if ((t->restart && (rc = train_restart(t, err))) || (rc = train_check_settings(t, err)))
            return rc;
        if ((rc = fl_mkdir_p(env->run_dir, err)))
            return fl_error_prefix(err, "%s: run.out_dir", cfg->path);
        if ((rc = train_write_manifest(t, err)))
            return rc;
    }
    int cache = cfg->data_cache == FL_DATA_CACHE_MEMORY;
    for (int d = 0; d < t->n_data; d++) { /* each distinct file once (and cached once) */
        fl_job_data *jd = &t->data[d].jd;
        const char *path = cfg->models[t->data[d].first_model].data_file;
        if ((rc = fl_loader_open(path, FL_SPLIT_TRAIN, cache, &jd->train_loader, err)) ||
            (rc = fl_loader_open(path, FL_SPLIT_TEST, cache, &jd->test_loader, err)))
            return rc;
    }
    return FL_OK;
}

/* The header's placement: which ranks on which host form which group. */
static void train_say_placement(const train_ctx *t)
{
    const fl_group *g = t->env.group;
    int groups = fl_group_count(g), spanning = fl_group_spanning(g);
    if (t->world.size == 1)
        return;
    for (int i = 0; i < groups && (i < 16 || spanning); i++) {
        char text[1024];
        fl_group_describe(g, i, text, sizeof text);
        printf("train: group %d: %s\n", i, text);
    }
    if (groups > 16 && !spanning)
        printf("train: ... %d more groups, each on one host\n", groups - 16);
    if (spanning)
        printf("train: %d group%s of %d span%s hosts (a host's ranks are not a multiple of dist.ranks_per_job = %d): "
               "their all-reduce crosses the network every step\n",
               spanning, spanning == 1 ? "" : "s", groups, spanning == 1 ? "s" : "", fl_group_size(t->env.group));
}

/* What status.txt says of who runs a job (collective): this rank, the
 * groups, and world rank 0's host:pid, which names this train process. */
static fl_code train_say_who(train_ctx *t, fl_error *err)
{
    int v[1 + 128] = {(int)getpid()};
    for (int i = 0; i < 127 && t->world.host[i]; i++)
        v[1 + i] = (unsigned char)t->world.host[i];
    fl_code rc = fl_world_bcast_ints(&t->world, v, 1 + 128, err);
    char host[129] = "";
    for (int i = 0; i < 128 && v[1 + i]; i++)
        host[i] = (char)v[1 + i];
    t->env.world_rank = t->world.rank;
    t->env.groups = fl_group_count(t->env.group);
    snprintf(t->env.launch, sizeof t->env.launch, "%s:%d", host, v[0]);
    return rc;
}

/* Step 3: the groups, their backend and the job queue (collective). */
static fl_code train_setup_groups(train_ctx *t, fl_error *err)
{
    const fl_world *w = &t->world;
    const fl_train_config *cfg = t->cfg;
    int n_jobs = t->n_jobs, hosts = w->hosts;
    fl_code rc;
    if ((rc = fl_group_open(w, fl_config_group_ranks(cfg, w->size), &t->env.group, err)) ||
        (rc = fl_group_set_backend(t->env.group, t->backend, t->cuda_device, err)) ||
        (rc = fl_jobq_open(w, n_jobs, fl_group_rank(t->env.group) == 0, cfg->timeout_s, &t->env.queue, err)))
        return rc;
    fl_group_set_timeout(t->env.group, cfg->timeout_s);
    fl_group_set_progress(t->env.group, fl_jobq_progress, t->env.queue);
    if ((rc = train_say_who(t, err)) || w->rank != 0)
        return rc;
    int groups = fl_group_count(t->env.group), per = fl_group_size(t->env.group);
    char folds[64];
    if (t->fold_only >= 0)
        snprintf(folds, sizeof folds, "fold %d (--fold; the run has %d)", t->fold_only, t->n_folds);
    else
        snprintf(folds, sizeof folds, "%d fold%s", t->n_folds, t->n_folds == 1 ? "" : "s");
    int fused = 0;
    for (int i = 0; i < cfg->n_models; i++)
        fused += cfg->models[i].fuse_folds;
    char fused_text[64] = "";
    if (fused)
        snprintf(fused_text, sizeof fused_text, " (%d frozen model%s: %s folds in one fused job)", fused,
                 fused == 1 ? "" : "s", fused == 1 ? "its" : "each one's");
    const char *blas = fl_torch_blas_pool();
    printf("train: %s: %d model%s x %s = %d job%s%s on %s, %d thread%s per rank (libtorch, OpenMP%s%s); run "
           "directory %s\n",
           cfg->path, cfg->n_models, cfg->n_models == 1 ? "" : "s", folds, n_jobs, n_jobs == 1 ? "" : "s", fused_text,
           t->device, t->threads, t->threads == 1 ? "" : "s", blas ? ", " : "", blas ? blas : "", t->env.run_dir);
    for (int d = 0; t->n_data > 1 && d < t->n_data; d++) {
        const fl_data_info *in = &t->data[d].jd.info;
        printf("train: data file %s: (%d, %d, %d) images; models", t->data[d].real, in->channels, in->height,
               in->width);
        for (int i = 0; i < cfg->n_models; i++)
            if (t->data_of_model[i] == d)
                printf(" %s", cfg->models[i].name);
        printf("\n");
    }
    for (int i = 0; i < cfg->n_models; i++) {
        const fl_model_cfg *m = &cfg->models[i];
        if (!t->feature_dim[i])
            continue;
        const fl_data_info *in = &t->data[t->data_of_model[i]].jd.info;
        printf("train: model %s: TorchScript backbone %s, (B, %d, %d, %d) -> (B, %d) features, ", m->name,
               m->backbone + strlen(FL_TORCHSCRIPT_PREFIX), in->channels, in->height, in->width, t->feature_dim[i]);
        if (m->freeze_backbone)
            printf("frozen\n");
        else
            printf("trained at lr x %g\n", m->backbone_lr_scale);
    }
    if (w->size > 1)
        printf("train: %d ranks on %d host%s in %d group%s of %d (dist.ranks_per_job); %s; %s backend\n", w->size,
               hosts, hosts == 1 ? "" : "s", groups, groups == 1 ? "" : "s", per,
               per == 1 ? "fold-parallel" : "data-parallel within each group",
               t->backend == FL_BACKEND_NCCL ? "NCCL" : "MPI");
    train_say_placement(t);
    train_say_eta(t, "train: run ETA");
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

static void train_free(train_ctx *t)
{
    for (int d = 0; d < t->n_data; d++) {
        fl_datafile_close(t->data[d].df);
        t->data[d].df = NULL;
        fl_loader_close(t->data[d].jd.train_loader);
        fl_loader_close(t->data[d].jd.test_loader);
        t->data[d].jd.train_loader = t->data[d].jd.test_loader = NULL;
    }
    free(t->labels);
    free(t->fold);
    t->labels = t->fold = NULL;
}

/* After a part of step 2 that every rank ran on its own (rc: this rank's
 * result, err its message): 0 when every rank passed. Else 1, with t freed,
 * MPI down and *status this rank's exit status: every rank ends cleanly and
 * one prints the failure. */
static int train_agree_local(train_ctx **tp, fl_code rc, fl_error *err, int *status)
{
    train_ctx *t = *tp;
    int first = 0, n_failed = 0;
    fl_error agree_err;
    if (fl_world_agree(&t->world, rc != FL_OK, &first, &n_failed, &agree_err)) {
        train_free(t);
        free(t);
        *tp = NULL;
        *status = cli_report(rc ? err : &agree_err);
        return 1;
    }
    if (!n_failed)
        return 0;
    fl_world w = t->world;
    train_free(t);
    free(t);
    *tp = NULL;
    fl_world_end();
    if (n_failed == w.size ? !fl_world_reports(&w) : w.rank != first) {
        *status = rc ? fl_exit_status(rc) : 1;
        return 1;
    }
    if (n_failed < w.size)
        fl_error_prefix(err, "rank %d of %d (%s)", w.rank, w.size, w.host);
    *status = cli_report(err);
    return 1;
}

/* Steps 1 and 2: MPI up, the config, the data files and each rank's own
 * set-up, the ranks agreeing after each part. Returns the rank's state for
 * step 3, or NULL with *status the exit status (every rank ends; one prints
 * the failure). */
static train_ctx *train_start(const char *config, int fold_only, const char **overrides, int n_over, int restart,
                              fl_train_config *cfg, int *status, fl_error *err)
{
    train_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        fl_fail(err, FL_ENOMEM, "out of memory");
        *status = cli_report(err);
        return NULL;
    }
    t->cfg = cfg;
    t->fold_only = fold_only;
    t->restart = restart;
    fl_code rc = fl_world_start(&t->world, err);
    if (rc) {
        int quiet = !fl_world_reports(&t->world); /* srun's N copies: only task 0 prints */
        free(t);
        *status = quiet ? fl_exit_status(rc) : cli_report(err);
        return NULL;
    }
    rc = fl_world_check_launch(&t->world, err);
    if (!rc)
        rc = fl_config_load(config, overrides, n_over, cfg, err);
    if (!rc)
        rc = train_setup_data(t, err);
    if (train_agree_local(&t, rc, err, status))
        return NULL;
    if ((rc = fl_world_bcast_ints(&t->world, t->verify, FL_MAX_MODELS, err))) {
        train_free(t);
        free(t);
        *status = cli_report(err);
        return NULL;
    }
    rc = train_setup_local(t, err);
    if (train_agree_local(&t, rc, err, status))
        return NULL;
    if (t->world.rank == 0)
        train_write_verified(t);
    return t;
}

/* Steps 3 and 4, then every rank meets: the groups and the jobs, the
 * queue's close (collective: it waits for every group), a barrier, and the
 * ranks' agreement on a stop. A stop (FL_ESTOPPED: this rank's job
 * checkpointed after a signal) is not a failure: *stopped, its message in
 * *stop_err; *n_stopped ranks stopped. */
static fl_code train_run(train_ctx *t, int *stopped, fl_error *stop_err, int *n_stopped, fl_error *err)
{
    int first = 0;
    fl_code rc = train_setup_groups(t, err);
    if (!rc) {
        rc = train_jobs(t, err);
        if (rc == FL_ESTOPPED || (!rc && fl_stop_requested())) {
            *stopped = 1;
            *stop_err = *err;
            rc = FL_OK;
        }
    }
    if (rc)
        return rc;
    rc = fl_jobq_close(t->env.queue, err);
    t->env.queue = NULL;
    if (!rc)
        rc = fl_world_barrier(&t->world, err);
    if (!rc)
        rc = fl_world_agree(&t->world, *stopped, &first, n_stopped, err);
    return rc;
}

/* Step 5, every rank having met: MPI down (t freed); after a stop, where the
 * checkpoints are and exit status 75; else rank 0 votes when every job of
 * the run is complete, or says how many are not. Returns the exit status. */
static int train_finish(train_ctx *t, int stopped, const fl_error *stop_err, int n_stopped, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    fl_group_close(t->env.group);
    int rank = t->world.rank, missing = rank == 0 ? train_jobs_missing(t) : 0;
    int n_jobs = cfg->n_models * t->n_folds;
    train_free(t);
    free(t);
    fl_world_end();
    if (n_stopped) {
        if (stopped && stop_err->msg[0]) /* a job that stopped says where its checkpoint is */
            fprintf(stderr, "foldline: %s\n", stop_err->msg);
        if (rank == 0)
            fprintf(stderr, "foldline: training stopped by a signal; every running job wrote a checkpoint. Rerun "
                            "the same command to resume (exit status 75).\n");
        return fl_exit_status(FL_ESTOPPED);
    }
    if (rank != 0)
        return 0;
    char run_dir[sizeof cfg->out_dir + sizeof cfg->run_name + 2];
    snprintf(run_dir, sizeof run_dir, "%s/%s", cfg->out_dir, cfg->run_name);
    if (missing) {
        printf("vote: %d of %d job%s not finished yet; run foldline vote %s when they are\n", missing, n_jobs,
               n_jobs == 1 ? "" : "s", run_dir);
        return 0;
    }
    fflush(stdout);
    /* The gather step: every job of the run is complete. */
    fl_vote_options vo = {0};
    vo.run_dir = run_dir;
    vo.echo = stdout;
    if (fl_vote_run(&vo, err))
        return cli_report(err);
    return 0;
}

/* Steps 1 to 5. Returns the exit status; failures go through cli_report. */
static int train_main(const char *config, int fold_only, const char **overrides, int n_over, int restart,
                      fl_train_config *cfg)
{
    fl_error err;
    fl_error_clear(&err);
    int status;
    train_ctx *t = train_start(config, fold_only, overrides, n_over, restart, cfg, &status, &err);
    if (!t)
        return status;
    fl_error stop_err;
    fl_error_clear(&stop_err);
    int stopped = 0, n_stopped = 0;
    fl_code rc = train_run(t, &stopped, &stop_err, &n_stopped, &err);
    if (rc) {
        train_free(t);
        if (t->world.size == 1) { /* alone, MPI ends normally: free what it holds first */
            fl_jobq_close(t->env.queue, NULL);
            fl_group_close(t->env.group);
        }
        free(t);
        return cli_report(&err); /* with more ranks: ends every one of them */
    }
    return train_finish(t, stopped, &stop_err, n_stopped, &err);
}

int cli_train(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    const char *config = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    int n_over = 0, status, restart = 0;
    long fold_only = -1;
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
        } else if (!strcmp(argv[i], "--restart")) {
            restart = 1;
        } else if ((r = cli_opt_value(argc, argv, &i, "--fold", &v)) != 0) {
            if (r < 0) {
                fl_fail(&err, FL_EUSAGE, "train: --fold needs a fold number HINT: --fold 0");
                goto report;
            }
            if (cli_parse_int("train: --fold", v, 0, FL_MAX_FOLDS - 1, &fold_only, &err))
                goto report;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(&err, FL_EUSAGE, "train: unknown option '%s' HINT: foldline train --help", argv[i]);
            goto report;
        } else if (!config) {
            config = argv[i];
        } else {
            fl_fail(&err, FL_EUSAGE, "train: unexpected argument '%s' HINT: foldline train CONFIG [--set key=value]...",
                    argv[i]);
            goto report;
        }
    }
    if (!config) {
        fl_fail(&err, FL_EUSAGE, "train: needs a CONFIG file HINT: foldline train configs/demo.cfg");
        goto report;
    }
    fl_h5_quiet();
    fl_stop_install();
    status = train_main(config, (int)fold_only, overrides, n_over, restart, cfg);
    free(overrides);
    free(cfg);
    return status;
report:
    free(overrides);
    free(cfg);
    return cli_report(&err);
}
