/* train_rundir.c -- see train_priv.h: what rank 0 does to the run directory
 * before any job starts: --restart (the whole run, or one fold of every
 * model, never under a live trainer), the check of every job's settings
 * against the config (re-predicting the jobs where only predict_with or tta
 * changed), and run.cfg.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch/train_priv.h"
#include "trainer/joblock.h"
#include "vote/manifest.h"
#include "vote/vote.h"

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : errno;
}

/* --restart --fold K: removes fold K's job directory of every model, and
 * nothing else: other processes (SLURM array tasks) may be training or have
 * finished the other folds, and run.cfg and ensemble/ are the run's (the
 * vote that follows the last fold rewrites ensemble/). Refused while a live
 * trainer holds fold K of any model. */
static fl_code train_restart_fold(const train_ctx *t, fl_error *err)
{
    char dir[4096];
    for (int m = 0; m < t->cfg->n_models; m++) {
        fl_joblock_outcome held;
        fl_job_dir(&t->env, &(fl_job){m, t->fold_only}, dir, sizeof dir);
        fl_code rc = fl_joblock_inspect(dir, t->cfg->lock_timeout_s, &held, err);
        if (rc)
            return rc;
        if (held.held)
            return fl_fail(err, FL_EINPUT,
                           "%s: --restart --fold %d: %s is held by %s, a trainer of this fold that is still running; "
                           "it is left as it is HINT: stop that trainer (or let it finish), then rerun with --restart",
                           t->cfg->path, t->fold_only, held.path, held.who);
    }
    for (int m = 0; m < t->cfg->n_models; m++) {
        fl_job_dir(&t->env, &(fl_job){m, t->fold_only}, dir, sizeof dir);
        if (access(dir, F_OK) != 0)
            continue;
        int rc = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (rc != 0)
            return fl_fail(err, FL_EIO, "--restart: cannot remove %s: %s", dir, strerror(rc > 0 ? rc : errno));
        printf("train: --restart --fold %d: removed %s\n", t->fold_only, dir);
    }
    return FL_OK;
}

/* --restart: removes the run directory, which must be a foldline run (hold
 * a run.cfg), so that a mistyped out_dir never empties another folder. */
fl_code train_restart(const train_ctx *t, fl_error *err)
{
    const char *dir = t->env.run_dir;
    char path[4200];
    snprintf(path, sizeof path, "%s/run.cfg", dir);
    if (access(dir, F_OK) != 0)
        return FL_OK;
    if (access(path, F_OK) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: --restart: %s has no run.cfg, so it is not a foldline run; it is left as it is HINT: "
                       "check run.out_dir and run.name",
                       t->cfg->path, dir);
    if (t->fold_only >= 0)
        return train_restart_fold(t, err);
    /* Never pull the floor from under a running trainer: a job lock with a
     * live holder (trainer/joblock.h) keeps the whole run. */
    fl_joblock_outcome held;
    fl_code lrc = fl_joblock_find_held(dir, t->cfg->lock_timeout_s, &held, err);
    if (lrc)
        return lrc;
    if (held.held)
        return fl_fail(err, FL_EINPUT,
                       "%s: --restart: %s is held by %s, a trainer of this run that is still running; %s is left "
                       "as it is HINT: stop that trainer (or let it finish), then rerun with --restart",
                       t->cfg->path, held.path, held.who, dir);
    int rc = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0)
        return fl_fail(err, FL_EIO, "--restart: cannot remove %s: %s", dir, strerror(rc > 0 ? rc : errno));
    printf("train: --restart: removed %s\n", dir);
    return FL_OK;
}

/* Before any job starts: every job of the config that has a directory was
 * trained with the settings the config gives now. Jobs where only
 * predict_with or tta changed re-predict from their checkpoints (their
 * settings.txt rewritten, preds.h5 removed: trainer/job.h) once every job
 * passed the check, so that a refusal leaves every job as it was; one that
 * a live trainer holds is refused. Only the jobs this process trains. */
fl_code train_check_settings(const train_ctx *t, fl_error *err)
{
    fl_job again[FL_MAX_MODELS * FL_MAX_FOLDS];
    int n_again = 0;
    for (int m = 0; m < t->cfg->n_models; m++)
        for (int k = 0; k < t->n_folds; k++) {
            fl_job job = {m, t->folds[k]};
            int changed = 0, mine = 0;
            fl_code rc = fl_job_check_settings(&t->env, &job, &changed, err);
            if (rc)
                return rc;
            for (int i = 0; i < t->n_train_folds; i++)
                mine |= t->train_folds[i] == job.fold;
            if (!changed || !mine)
                continue;
            char dir[4096];
            fl_joblock_outcome held;
            fl_job_dir(&t->env, &job, dir, sizeof dir);
            if ((rc = fl_joblock_inspect(dir, t->cfg->lock_timeout_s, &held, err)))
                return rc;
            if (held.held)
                return fl_fail(err, FL_EINPUT,
                               "%s: predict_with or tta of model %s changed, but %s is held by %s, a trainer that is "
                               "still running HINT: rerun when it has finished, to re-predict fold %d",
                               t->cfg->path, t->cfg->models[m].name, held.path, held.who, job.fold);
            again[n_again++] = job;
        }
    for (int i = 0; i < n_again; i++) {
        fl_code rc = fl_job_repredict(&t->env, &again[i], err);
        if (rc)
            return rc;
    }
    return FL_OK;
}

/* run.cfg (vote/manifest.h): the run's data file, folds, models, weights
 * and vote method, which foldline vote reads. */
fl_code train_write_manifest(const train_ctx *t, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    fl_manifest m;
    memset(&m, 0, sizeof m);
    /* The first model's data file: vote reads labels, folds and test paths,
     * which every data file of the run shares. */
    snprintf(m.data_file, sizeof m.data_file, "%s", t->data[0].real);
    m.n_folds = t->n_folds;
    memcpy(m.folds, t->folds, sizeof *t->folds * (size_t)t->n_folds);
    m.n_models = cfg->n_models;
    for (int i = 0; i < cfg->n_models; i++) {
        snprintf(m.models[i].name, sizeof m.models[i].name, "%s", cfg->models[i].name);
        m.models[i].weight = cfg->models[i].vote_weight;
    }
    snprintf(m.vote_method, sizeof m.vote_method, "%s", fl_vote_method_name(cfg->vote_method));
    char path[4200];
    snprintf(path, sizeof path, "%s/run.cfg", t->env.run_dir);
    return fl_manifest_write(path, &m, err);
}
