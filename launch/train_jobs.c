/* train_jobs.c -- see train_priv.h: step 4 of `foldline train`, the jobs.
 * Each group's leader takes the next job from the queue, skips it when it is
 * complete or a live trainer holds it (the job locks, trainer/joblock.h),
 * and tells its group; the group trains it (a fold's own job, or a frozen
 * model's folds in one fused job), and the leader prints the run's ETA.
 */
#include <stdio.h>
#include <string.h>

#include "base/progress.h"
#include "base/stop.h"
#include "base/tempfile.h"
#include "dist/group.h"
#include "dist/jobq.h"
#include "launch/train_priv.h"
#include "trainer/fused.h"
#include "trainer/job.h"
#include "trainer/joblock.h"
#include "trainer/runstatus.h"

/* "<prefix>: D of N jobs done ..., ETA ..." from the run directory (trainer/
 * runstatus.h) and this process's groups. */
void train_say_eta(const train_ctx *t, const char *prefix)
{
    fl_run_status rs;
    fl_error err;
    if (fl_run_status_scan(t->env.run_dir, fl_group_count(t->env.group), &rs, &err))
        return;
    char eta[32];
    fl_progress_duration(rs.eta_s, eta, sizeof eta);
    printf("%s %s: %d of %d job%s done, %d running, %d to run%s%s\n", prefix,
           rs.eta_s < 0 ? "unknown until an epoch of each model is measured" : eta, rs.count[FL_RUN_DONE], rs.n_jobs,
           rs.n_jobs == 1 ? "" : "s", rs.count[FL_RUN_RUNNING], rs.count[FL_RUN_STOPPED] + rs.count[FL_RUN_PENDING],
           rs.count[FL_RUN_FAILED] ? ", some failed (foldline status)" : "", "");
    fl_run_status_free(&rs);
}

static void train_say_skipped(const train_ctx *t, const fl_job *j)
{
    fl_job_log(stdout, t->cfg->models[j->model].name, j->fold, "complete (preds.h5 exists), skipped\n");
    fflush(stdout);
}

/* Releases the leader's n job locks; a lock another trainer took over
 * meanwhile is a warning (the job's files are whole files either way). */
static void train_unlock(fl_joblock **locks, int n)
{
    for (int i = 0; i < n; i++) {
        fl_error e;
        if (fl_joblock_release(locks[i], &e)) {
            fflush(stdout);
            fprintf(stderr, "foldline: warning: %s\n", e.msg);
            fflush(stderr);
        }
        locks[i] = NULL;
    }
}

/* The leader's lock on job j's directory (trainer/joblock.h): *take = 1 and
 * *lock when this process trains it; 0 when a live trainer holds it or it
 * completed meanwhile (both said in one line). */
static fl_code train_lock_job(const train_ctx *t, const fl_job *j, fl_joblock **lock, int *take, fl_error *err)
{
    const char *name = t->cfg->models[j->model].name;
    char dir[4096];
    fl_joblock_outcome o;
    *lock = NULL;
    *take = 0;
    fl_job_dir(&t->env, j, dir, sizeof dir);
    fl_code rc = fl_mkdir_p(dir, err);
    if (!rc)
        rc = fl_joblock_open(dir, t->cfg->lock_timeout_s, lock, &o, err);
    if (rc)
        return fl_error_prefix(err, "job %s fold %d", name, j->fold);
    if (o.held) {
        fl_job_log(stdout, name, j->fold, "held by %s, skipped\n", o.who);
        fflush(stdout);
        return FL_OK;
    }
    if (o.took_over) {
        fl_job_log(stdout, name, j->fold, "taking over the lock of %s\n", o.who);
        fflush(stdout);
    }
    if (fl_job_is_done(&t->env, j)) { /* its trainer finished between the look and the lock */
        train_unlock(lock, 1);
        train_say_skipped(t, j);
        return FL_OK;
    }
    *take = 1;
    return FL_OK;
}

/* The train folds of fused job j to train now into todo[1..] (todo[0] of
 * them), each locked in locks[] (leader): complete folds and folds another
 * trainer holds are said and left out. */
static fl_code train_fused_todo(const train_ctx *t, const fl_job *j, int *todo, fl_joblock **locks, fl_error *err)
{
    todo[0] = 0;
    for (int i = 0; i < t->n_train_folds; i++) {
        fl_job one = {j->model, t->train_folds[i]};
        if (fl_job_is_done(&t->env, &one)) {
            train_say_skipped(t, &one);
            continue;
        }
        int take;
        fl_code rc = train_lock_job(t, &one, &locks[todo[0]], &take, err);
        if (rc) {
            train_unlock(locks, todo[0]);
            todo[0] = 0;
            return rc;
        }
        if (take)
            todo[1 + todo[0]++] = one.fold;
    }
    return FL_OK;
}

/* Step 4: jobs until the queue is empty. Job index i is t->jobs[i] (the
 * order of one process: model-major). */
fl_code train_jobs(train_ctx *t, fl_error *err)
{
    fl_job_env *env = &t->env;
    int leader = fl_group_rank(env->group) == 0;
    for (;;) {
        int idx = -1, todo[FL_MAX_FOLDS + 1] = {0}; /* a fused job: todo[0] folds, then the folds */
        fl_joblock *locks[FL_MAX_FOLDS] = {NULL};   /* the leader's: one per fold it trains */
        int n_locks = 0;
        fl_job job;
        fl_code rc;
        /* the leader takes jobs until one that is not complete and that it could lock */
        while (leader) {
            if (fl_stop_requested()) { /* asked to stop: take no new job */
                idx = -1;
                break;
            }
            if ((rc = fl_jobq_take(env->queue, &idx, err)))
                return rc;
            if (idx < 0)
                break;
            job = t->jobs[idx];
            if (job.fold < 0) {
                if ((rc = train_fused_todo(t, &job, todo, locks, err)))
                    return rc;
                if ((n_locks = todo[0]) > 0)
                    break;
                continue;
            }
            if (fl_job_is_done(env, &job)) {
                train_say_skipped(t, &job);
                continue;
            }
            int take;
            if ((rc = train_lock_job(t, &job, &locks[0], &take, err)))
                return rc;
            if ((n_locks = take))
                break;
        }
        if ((rc = fl_group_bcast_int(env->group, &idx, err))) {
            train_unlock(locks, n_locks);
            return rc;
        }
        if (idx < 0)
            return FL_OK;
        job = t->jobs[idx];
        double t0 = fl_progress_now();
        char who[128];
        if (job.fold >= 0) {
            rc = fl_job_run(env, &job, err);
            fl_job_tag(who, sizeof who, t->cfg->models[job.model].name, job.fold);
        } else {
            if (!(rc = fl_group_bcast_host(env->group, todo, sizeof todo, err))) /* the leader's list */
                rc = fl_fused_run(env, job.model, todo + 1, todo[0], err);
            fl_job_tag(who, sizeof who, t->cfg->models[job.model].name, -1);
        }
        train_unlock(locks, n_locks); /* done, failed or stopped: the job is free again */
        if (rc)
            return rc;
        if (leader) { /* the run's ETA from every job's files, at each finished job */
            char took[32], prefix[200];
            fl_progress_duration(fl_progress_now() - t0, took, sizeof took);
            snprintf(prefix, sizeof prefix, "%s done in %s; run ETA", who, took);
            train_say_eta(t, prefix);
            fflush(stdout);
        }
    }
}

/* Jobs of the whole run (models x the run's folds) whose preds.h5 is missing:
 * with --fold, other processes may not have finished theirs. */
int train_jobs_missing(const train_ctx *t)
{
    int missing = 0;
    for (int m = 0; m < t->cfg->n_models; m++)
        for (int i = 0; i < t->n_folds; i++)
            missing += !fl_job_is_done(&t->env, &(fl_job){m, t->folds[i]});
    return missing;
}
