/* fused.c -- see fused.h.
 *
 * The heads are the folds' own job_states (trainer/job_internal.h): head 0's
 * model owns the backbone, the others share it (fl_model_spec.backbone_of).
 * This file sets the job up, runs its epochs (each one's steps in
 * trainer/fused_epoch.c), validation and predictions (fused_predict.c), and
 * reports the images it ran through the backbone.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "trainer/fused.h"

#include <limits.h>
#include <stdio.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/featcache.h"
#include "base/stop.h"
#include "trainer/augment.h"
#include "trainer/fused_internal.h"
#include "trainer/rng.h"
#include "trainer/schedule.h"

/* fused_state: trainer/fused_internal.h */

fl_code fused_oom(fl_error *err)
{
    return fl_fail(err, FL_ENOMEM, "out of memory");
}

/* "0,1,2" of the heads' folds, for messages. */
void fused_folds_text(const fused_state *f, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < f->n && len + 12 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", f->js[i].job.fold);
}

/* The rank's contiguous shard [*lo, *hi) of the positions [a, b). */
void fused_shard(const fused_state *f, int64_t a, int64_t b, int64_t *lo, int64_t *hi)
{
    *lo = a + (b - a) * f->g_rank / f->g_size;
    *hi = a + (b - a) * (f->g_rank + 1) / f->g_size;
}

/* Sums the heads' pairs (a[i], b[i]), i < n, over the group in one call. */
fl_code fused_sum_pairs(fused_state *f, double *a, double *b, int n, fl_error *err)
{
    if (f->g_size == 1)
        return FL_OK;
    double *v = malloc(sizeof *v * (size_t)n * 2);
    if (!v)
        return fused_oom(err);
    memcpy(v, a, sizeof *v * (size_t)n);
    memcpy(v + n, b, sizeof *v * (size_t)n);
    fl_code rc = fl_group_sum(f->group, v, 2 * n, err);
    memcpy(a, v, sizeof *v * (size_t)n);
    memcpy(b, v + n, sizeof *v * (size_t)n);
    free(v);
    return rc;
}

/* ---- the job: its heads, epochs and report --------------------------------- */

/* One job_state per fold with its model (head 0 owns the backbone), each
 * resumed from its checkpoint, and the buffers of a rank's shard. */
static fl_code fused_setup(fused_state *f, const fl_job_env *env, int model, const int *folds, int n_folds,
                           fl_error *err)
{
    memset(f, 0, sizeof *f);
    f->env = env;
    f->mc = &env->cfg->models[model];
    f->data = env->model_data[model];
    f->K = f->data->info.folds;
    f->C = f->data->info.num_classes;
    f->N = f->data->info.n_train;
    f->group = env->group;
    f->g_rank = env->group ? fl_group_rank(env->group) : 0;
    f->g_size = env->group ? fl_group_size(env->group) : 1;
    f->leader = f->g_rank == 0;
    f->log = f->leader ? env->log : NULL;
    fl_ticker_init(&f->ticker, f->log, env->cfg->progress_s);
    for (int k = 0; k < FL_MAX_FOLDS; k++)
        f->head_of_fold[k] = -1;
    if (!(f->js = calloc((size_t)n_folds, sizeof *f->js)) || !(f->models = calloc((size_t)n_folds, sizeof *f->models)))
        return fused_oom(err);
    fl_code rc = FL_OK;
    for (int i = 0; i < n_folds && !rc; i++) {
        f->n = i + 1;
        rc = job_init(&f->js[i], env, &(fl_job){model, folds[i]}, err);
        if (!rc) {
            job_monitor_start(&f->js[i], 0);
            rc = job_model_new(&f->js[i], i ? f->js[0].model : NULL, err);
        }
        f->models[i] = f->js[i].model;
        if (!rc && folds[i] >= 0 && folds[i] < FL_MAX_FOLDS)
            f->head_of_fold[folds[i]] = i;
    }
    if (rc)
        return rc;
    for (int i = 0; i < n_folds && !rc; i++) {
        rc = job_resume(&f->js[i], err);
        f->first_epoch[i] = f->js[i].prog.epoch;
    }
    if (rc)
        return rc;
    if ((f->D = fl_model_feature_dim(f->models[0])) < 1)
        return fl_fail(err, FL_EINTERNAL, "model %s: cannot read its backbone's feature width", f->mc->name);
    /* A rank's shard of one batch: batch * K / (K - 1) rows over the group. */
    int64_t chunk = (int64_t)f->mc->batch / (f->K - 1) * f->K;
    f->cap = (chunk + f->g_size - 1) / f->g_size;
    size_t fd = sizeof(float) * (size_t)f->cap * f->D;
    f->feats = malloc(fd);
    f->sel = malloc(fd);
    f->probs = malloc(sizeof *f->probs * (size_t)f->cap * f->C);
    f->labels = malloc(sizeof *f->labels * (size_t)f->cap);
    f->aug = malloc(sizeof *f->aug * (size_t)f->cap);
    if (!f->feats || !f->sel || !f->probs || !f->labels || !f->aug)
        return fused_oom(err);
    for (int t = 0; t < 1 + f->mc->n_tta; t++)
        if (!(f->views[t] = malloc(fd)) || !(f->sel_views[t] = malloc(fd)))
            return fused_oom(err);
    return FL_OK;
}

static void fused_free(fused_state *f)
{
    fl_featcache_close(f->cache);
    fl_devpath_close(f->dev);
    free(f->cached);
    /* The heads share head 0's backbone module: free them last to first. */
    for (int i = f->n - 1; i >= 0; i--)
        job_free(&f->js[i]);
    free(f->js);
    free(f->models);
    free(f->feats);
    free(f->sel);
    free(f->probs);
    free(f->labels);
    free(f->aug);
    for (int t = 0; t < 1 + FL_MAX_TTA; t++) {
        free(f->views[t]);
        free(f->sel_views[t]);
    }
}

static fl_code fused_train(fused_state *f, fl_error *err)
{
    int n = f->n, first = f->mc->epochs;
    for (int i = 0; i < n; i++)
        first = f->js[i].prog.epoch < first ? f->js[i].prog.epoch : first;
    int *active = calloc((size_t)n, sizeof *active);
    double *v = calloc((size_t)n * 6, sizeof *v), *tl = v, *ta = v + n, *secs = v + 2 * n, *vl = v + 3 * n,
           *va = v + 4 * n;
    fl_code rc = !active || !v ? fused_oom(err) : FL_OK;
    if (!rc)
        rc = fused_dev_open(f, err);
    if (!rc && (f->env->cfg->feature_cache != FL_FCACHE_NONE))
        rc = fused_cache_open(f, first, err);
    for (int epoch = first; epoch < f->mc->epochs && !rc; epoch++) {
        double lr = fl_schedule_lr(f->mc, epoch);
        int any = 0;
        for (int i = 0; i < n && !rc; i++) {
            active[i] = f->js[i].prog.epoch == epoch;
            any |= active[i];
            if (active[i])
                rc = fl_model_set_lr(f->models[i], lr, err);
        }
        if (rc || !any)
            continue;
        if ((rc = fused_train_epoch(f, epoch, active, tl, ta, secs, err)))
            break;
        double t0 = job_now_s();
        if ((rc = fused_validate(f, active, vl, va, err)))
            break;
        double vsecs = job_now_s() - t0;
        fl_ticker_clear(&f->ticker);
        for (int i = 0; i < n && !rc; i++)
            if (active[i])
                rc = job_end_epoch(&f->js[i], epoch, lr, tl[i], ta[i], vl[i], va[i], secs[i], vsecs, err);
        if (!rc && epoch + 1 < f->mc->epochs) { /* a stop here: every head's last.pt is this epoch's end */
            int flags;
            rc = job_step_flags(&f->js[0], fl_stop_requested() ? STEP_STOP : 0, &flags, err);
            if (!rc && (flags & STEP_STOP))
                rc = fused_stopped(f, epoch + 1, 0, err);
        }
    }
    free(active);
    free(v);
    return rc;
}

/* How many images (per view) went through the backbone, summed over the
 * group, against what the folds' own jobs would have run from the same
 * progress: training and validation every epoch, and the OOF and test
 * predictions with their test-time views. */
static fl_code fused_report(fused_state *f, fl_error *err)
{
    double n = (double)f->embedded;
    fl_code rc = f->g_size > 1 ? fl_group_sum(f->group, &n, 1, err) : FL_OK;
    if (rc || !f->log)
        return rc;
    double own = 0;
    int views = 1 + f->mc->n_tta;
    for (int i = 0; i < f->n; i++) {
        const job_state *js = &f->js[i];
        own += (double)(f->mc->epochs - f->first_epoch[i]) * (double)(js->n_train + js->n_val) +
               (double)views * (double)(js->n_val + f->data->info.n_test);
    }
    char list[256];
    fused_folds_text(f, list, sizeof list);
    fprintf(f->log, "[%s folds %s] fused: %.0f images through the backbone; the folds' own jobs: %.0f (%.1fx)\n",
            f->mc->name, list, n, own, n > 0 ? own / n : 0.0);
    fflush(f->log);
    return FL_OK;
}

fl_code fl_fused_run(const fl_job_env *env, int model, const int *folds, int n_folds, fl_error *err)
{
    fused_state f;
    fl_code rc = fused_setup(&f, env, model, folds, n_folds, err);
    if (!rc && f.log) {
        char list[256];
        fused_folds_text(&f, list, sizeof list);
        fprintf(f.log,
                "[%s folds %s] fused: one frozen backbone pass per batch of %lld rows for %d head%s (batch %d each)\n",
                f.mc->name, list, (long long)f.cap * f.g_size, f.n, f.n == 1 ? "" : "s", f.mc->batch);
        fflush(f.log);
    }
    if (!rc)
        rc = fused_train(&f, err);
    if (!rc)
        rc = fused_predict_all(&f, err);
    if (!rc)
        rc = fused_report(&f, err);
    if (rc && !err->names_job) {
        char list[256];
        fused_folds_text(&f, list, sizeof list);
        fl_error_job(err, "job %s folds %s (fused)", f.mc->name, list);
    }
    fl_ticker_clear(&f.ticker);
    for (int i = 0; i < f.n; i++)
        job_monitor_end(&f.js[i], !rc ? "done" : rc == FL_ESTOPPED ? "stopped" : "failed", rc ? err : NULL);
    fused_free(&f);
    return rc;
}
