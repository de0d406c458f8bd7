/* fused_epoch.c -- one training epoch of a fold-fused job (trainer/fused.h).
 *
 * A step of the fused job is one batch of the model's shared order: every
 * rank embeds its contiguous shard of the batch once, then each head runs
 * forward and backward on the shard's rows outside its fold, scaled by their
 * share of that head's rows in the whole batch. The group agrees on stop,
 * checkpoint and non-finite flags (one sum), and sums every stepping head's
 * gradients in one all-reduce. Heads resumed at different points (a stop
 * between two heads' last.pt renames) simply sit out the batches they have
 * already trained. The steps below run in that order: features, forward and
 * backward, flags, the heads' sums, the optimizer steps, a checkpoint.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/stop.h"
#include "dataset/featcache.h"
#include "trainer/augment.h"
#include "trainer/fused_internal.h"
#include "trainer/schedule.h"

/* An epoch of the fused job in progress: the shared order, the heads' sums,
 * and the current step's batch and flags. */
typedef struct {
    int epoch;
    const int *active; /* (n) the heads whose progress is at this epoch */
    fl_order o;
    const fl_aug_stage *stage;
    int from_cache; /* every row from the feature cache: the stage has no ops */
    int skip_nonfinite;
    double checkpoint_s;
    int64_t s0; /* the first step of any active head */
    fused_dev_epoch dv;
    /* Per head (n each, one allocation): the epoch's sums, its start time,
     * this step's loss and correct count (l and c adjacent). */
    double *loss, *correct, *t0, *l, *c;
    int64_t *count;      /* (n) this step: the head's rows in the whole batch */
    fl_model **stepping; /* (n) this step: the heads that step */
    int n_step;
    double *flagv; /* (n + 2) this step: stop, checkpoint, each head's non-finite loss */
    /* This step s: the positions [lo, hi) of the order, the rank's shard
     * [mlo, mhi) of them, whose rows (B) are rows. */
    int64_t s, lo, hi, mlo, mhi;
    const int64_t *rows;
    int B;
} fused_epoch;

/* Selects the rows among rows (B) outside fold k: their features (from
 * feats) into f->sel, labels into f->labels; returns how many. */
static int fused_select_train(fused_state *f, const int64_t *rows, int B, int k)
{
    int m = 0;
    for (int i = 0; i < B; i++) {
        if (f->env->train_fold[rows[i]] == k)
            continue;
        memcpy(f->sel + (size_t)m * f->D, f->feats + (size_t)i * f->D, sizeof *f->sel * (size_t)f->D);
        f->labels[m++] = f->env->train_labels[rows[i]];
    }
    return m;
}

/* How many of rows (B) lie outside fold k. */
static int64_t fused_rows_outside(const fused_state *f, const int64_t *rows, int B, int k)
{
    int64_t m = 0;
    for (int i = 0; i < B; i++)
        m += f->env->train_fold[rows[i]] != k;
    return m;
}

/* The fused job's progress line when due: the first active head's epoch,
 * batch, rates and ETAs (its monitor's last tick, due at the same interval),
 * the mean of the heads' losses and accuracies so far. */
static void fused_progress_line(fused_state *f, const int *active)
{
    double now = fl_progress_now();
    if (!fl_ticker_due(&f->ticker, now))
        return;
    int first = -1, heads = 0;
    double loss = 0, acc = 0;
    for (int i = 0; i < f->n; i++) {
        const job_monitor *m = &f->js[i].mon;
        if (!active[i] || !m->n)
            continue;
        first = first < 0 ? i : first;
        loss += m->loss / (double)m->n;
        acc += m->correct / (double)m->n;
        heads++;
    }
    if (first < 0)
        return;
    job_state *js = &f->js[first];
    job_monitor keep = js->mon; /* the line shows every head's mean */
    js->mon.loss = loss / heads;
    js->mon.correct = acc / heads;
    js->mon.n = 1;
    char who[300], folds[256], text[700];
    fused_folds_text(f, folds, sizeof folds);
    snprintf(who, sizeof who, "%s folds %s", f->mc->name, folds);
    job_monitor_line(js, who, text, sizeof text);
    js->mon = keep;
    fl_ticker_print(&f->ticker, now, text);
}

fl_code fused_stopped(fused_state *f, int epoch, int64_t step, fl_error *err)
{
    char folds[256];
    fused_folds_text(f, folds, sizeof folds);
    return fl_fail_job(err, FL_ESTOPPED,
                       "job %s folds %s (fused): stopped by %s at epoch %d step %lld; each fold's last.pt under %s/%s "
                       "holds it HINT: rerun the same command to resume",
                       f->mc->name, folds, job_stop_cause(), epoch + 1, (long long)step, f->env->run_dir, f->mc->name);
}

/* The epoch's order and buffers; each active head's sums and clock from
 * its progress (a resumed epoch); the loader (or the device's staging) and
 * the heads' monitors from the first step any head still has to train. */
static fl_code fused_epoch_begin(fused_state *f, fused_epoch *ep, int epoch, const int *active, fl_error *err)
{
    const fl_train_config *cfg = f->env->cfg;
    int n = f->n;
    memset(ep, 0, sizeof *ep);
    ep->epoch = epoch;
    ep->active = active;
    fl_code rc = fl_order_frozen(f->env->train_fold, f->N, f->K, f->mc->batch, f->js[0].model_seed, epoch, &ep->o, err);
    if (rc)
        return rc;
    ep->stage = fl_augment_stage_at(f->mc, epoch);
    ep->from_cache =
        (f->cache || f->dev_cache) && (!ep->stage || ep->stage->n_ops == 0) && fused_all_cached(f, ep->o.rows, ep->o.n);
    ep->skip_nonfinite = cfg->on_nan == FL_ON_NAN_SKIP_STEP;
    ep->checkpoint_s = cfg->checkpoint_minutes * 60.0;
    ep->loss = calloc((size_t)n * 5, sizeof *ep->loss);
    ep->count = calloc((size_t)n, sizeof *ep->count);
    ep->stepping = malloc(sizeof *ep->stepping * (size_t)n);
    ep->flagv = malloc(sizeof *ep->flagv * (size_t)(n + 2));
    if (!ep->loss || !ep->count || !ep->stepping || !ep->flagv)
        return fused_oom(err);
    ep->correct = ep->loss + n;
    ep->t0 = ep->loss + 2 * n;
    ep->l = ep->loss + 3 * n;
    ep->c = ep->loss + 4 * n;
    int64_t s0 = ep->o.n_batches;
    for (int i = 0; i < n; i++) {
        if (!active[i])
            continue;
        job_state *js = &f->js[i];
        s0 = js->prog.step < s0 ? js->prog.step : s0;
        /* A resumed epoch: the leader's sums so far stand for the whole group. */
        ep->loss[i] = js->leader ? js->prog.loss_sum : 0;
        ep->correct[i] = js->leader ? js->prog.correct : 0;
        ep->t0[i] = job_now_s() - js->prog.seconds;
        js->comm_seconds = js->comm_exposed = 0;
        js->comm_buckets = 0; /* the heads' gradients are small: one all-reduce after backward */
    }
    ep->s0 = s0;
    if (!ep->from_cache && (rc = job_loader_start(f->data->train_loader, &ep->o, s0, f->g_rank, f->g_size, err)))
        return rc;
    if (f->dev && (rc = fused_dev_epoch_start(f, &ep->o, ep->loss, ep->correct, &ep->dv, err)))
        return rc;
    if (f->dev && !ep->from_cache && s0 < ep->o.n_batches && (rc = fused_dev_fetch(f, &ep->o, s0, &ep->dv.slot, err)))
        return rc;
    for (int i = 0; i < n && !rc; i++)
        if (active[i])
            rc = job_monitor_epoch_start(&f->js[i], epoch, ep->o.n_batches, s0, s0 ? ep->o.ends[s0 - 1] : 0, err);
    return rc;
}

static void fused_epoch_free(fused_epoch *ep)
{
    fused_dev_epoch_free(&ep->dv);
    fl_order_free(&ep->o);
    free(ep->loss);
    free(ep->count);
    free(ep->stepping);
    free(ep->flagv);
}

/* The step's features of the rank's shard: staged and embedded on the
 * device (the next batch's copy started), already there (the device cache),
 * from the feature cache, or the loader's images through the backbone with
 * the stage's augmentation; the last two into f->feats. */
static fl_code fused_step_features(fused_state *f, fused_epoch *ep, fl_error *err)
{
    const int64_t *rows = ep->rows;
    int B = ep->B;
    if (f->dev && !ep->from_cache) { /* batch s is staged; batch s+1's copy overlaps its compute */
        int any = B ? fl_augment_draw(ep->stage, f->js[0].model_seed, ep->epoch, rows, B, f->aug) : 0;
        f->embedded += B;
        fl_code rc = B ? fl_devpath_embed(f->dev, ep->dv.slot, any ? f->aug : NULL, ep->mlo, err) : FL_OK;
        if (!rc && ep->s + 1 < ep->o.n_batches)
            rc = fused_dev_fetch(f, &ep->o, ep->s + 1, &ep->dv.slot, err);
        return rc;
    }
    if (f->dev) /* cached: each head gathers its rows on the device */
        return FL_OK;
    if (ep->from_cache)
        return fl_featcache_get(f->cache, rows, B, f->feats, err);
    const uint8_t *x;
    int got_B, got;
    int64_t first;
    if ((got = fl_loader_next(f->data->train_loader, &x, &got_B, &first, err)) != 1 || got_B != B)
        return got < 0
                   ? err->code
                   : fl_fail(err, FL_EINTERNAL, "fused: the loader's batch %lld is not the order's", (long long)ep->s);
    int any = B ? fl_augment_draw(ep->stage, f->js[0].model_seed, ep->epoch, rows, B, f->aug) : 0;
    return fused_embed(f, x, B, any ? f->aug : NULL, -1, f->feats, err);
}

/* Each active head's rows in the whole batch (count), then its forward and
 * backward on the shard's rows outside its fold, on the device or from
 * f->feats; a non-finite loss (or the test fault) raises the head's flag. */
static fl_code fused_heads_backward(fused_state *f, fused_epoch *ep, fl_error *err)
{
    int n = f->n;
    fused_dev_epoch *dv = &ep->dv;
    fl_code rc = FL_OK;
    memset(ep->flagv, 0, sizeof *ep->flagv * (size_t)(n + 2));
    memset(ep->l, 0, sizeof *ep->l * (size_t)n * 2); /* l and c */
    for (int i = 0; i < n && !rc; i++) {
        job_state *js = &f->js[i];
        ep->count[i] = 0;
        if (!ep->active[i] || js->prog.step > ep->s)
            continue;
        for (int64_t r = ep->lo; r < ep->hi; r++)
            ep->count[i] += f->env->train_fold[ep->o.rows[r]] != js->job.fold;
        int fault = ep->epoch == js->fault_epoch && ep->s == js->fault_step;
        if (f->dev) {
            dv->a[i] = fused_lower_bound(dv->pos[i], dv->cnt[i], ep->mlo);
            dv->b[i] = fused_lower_bound(dv->pos[i], dv->cnt[i], ep->mhi);
            if (ep->count[i] && dv->b[i] > dv->a[i]) {
                rc = fl_devpath_head_step(f->dev, i, dv->a[i], dv->b[i], ep->from_cache,
                                          (double)(dv->b[i] - dv->a[i]) / (double)ep->count[i], err);
                if (fault)
                    ep->flagv[2 + i] = 1;
            }
            continue;
        }
        int m = ep->count[i] ? fused_select_train(f, ep->rows, ep->B, js->job.fold) : 0;
        if (m > 0) {
            int ci = 0;
            rc = fl_model_head_forward_backward(js->model, f->sel, f->labels, m, (double)m / (double)ep->count[i],
                                                &ep->l[i], &ci, err);
            ep->c[i] = ci;
            if (!isfinite(ep->l[i]) || fault)
                ep->flagv[2 + i] = 1;
        }
    }
    return rc;
}

/* The device path's losses: with run.on_nan = "skip_step" this step's, read
 * now (they decide the step); else the sums, when a read is due. */
static fl_code fused_dev_step_losses(fused_state *f, fused_epoch *ep, fl_error *err)
{
    if (!f->dev)
        return FL_OK;
    if (f->defer)
        return fused_dev_read_due(f, &ep->dv, ep->active)
                   ? fused_dev_read(f, &ep->dv, ep->epoch, ep->s, NULL, NULL, err)
                   : FL_OK;
    double st[FL_MAX_FOLDS * 2];
    fl_code rc = fl_devpath_read(f->dev, 1, st, err);
    for (int i = 0; i < f->n && !rc; i++) {
        if (!ep->active[i] || !ep->count[i] || ep->dv.b[i] <= ep->dv.a[i])
            continue;
        ep->l[i] = st[2 * i];
        ep->c[i] = st[2 * i + 1];
        if (!isfinite(ep->l[i]))
            ep->flagv[2 + i] = 1;
    }
    return rc;
}

/* The step's flags, agreed by the group in one sum: a stop, a timed
 * checkpoint due (on the leader's clock), each head's non-finite loss. */
static fl_code fused_step_flags(fused_state *f, fused_epoch *ep, fl_error *err)
{
    ep->flagv[0] = fl_stop_requested() != 0;
    double last = 0;
    for (int i = 0; i < f->n; i++)
        if (ep->active[i] && f->js[i].last_checkpoint > last)
            last = f->js[i].last_checkpoint;
    ep->flagv[1] = f->leader && ep->checkpoint_s > 0 && job_now_s() - last >= ep->checkpoint_s;
    return f->g_size > 1 ? fl_group_sum(f->group, ep->flagv, f->n + 2, err) : FL_OK;
}

/* Each head with rows in the batch: a non-finite loss fails the job, or
 * skips the head's step (run.on_nan); else the head steps, its loss and
 * correct count go into the epoch's sums and its monitor (on the device
 * path with deferred reads, the sums as last read, its rows counted). */
static fl_code fused_heads_account(fused_state *f, fused_epoch *ep, fl_error *err)
{
    fused_dev_epoch *dv = &ep->dv;
    int64_t s = ep->s;
    fl_code rc = FL_OK;
    ep->n_step = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        job_state *js = &f->js[i];
        if (!ep->count[i])
            continue;
        if (ep->flagv[2 + i] > 0) {
            if (!ep->skip_nonfinite)
                rc = fl_fail_job(err, FL_EINPUT,
                                 "job %s fold %d: the training loss is not finite at epoch %d step %lld HINT: lower "
                                 "the learning rate, set clip_grad_norm, or run.on_nan = \"skip_step\"",
                                 f->mc->name, js->job.fold, ep->epoch + 1, (long long)s);
            else if (!(rc = fl_model_zero_grad(js->model, err)) && f->log)
                fl_job_log(f->log, f->mc->name, js->job.fold,
                           "epoch %d step %lld: loss not finite, step skipped (run.on_nan)\n", ep->epoch + 1,
                           (long long)s);
            continue;
        }
        ep->stepping[ep->n_step++] = js->model;
        if (f->dev && f->defer) { /* the sums stay on the device; the monitor gets them when read */
            dv->pend[i] += fused_rows_outside(f, ep->rows, ep->B, js->job.fold);
            if (!rc && f->leader && dv->fresh) {
                rc = job_monitor_step(js, s + 1, ep->hi, dv->dl[i], dv->dc[i], dv->pend[i], err);
                dv->dl[i] = dv->dc[i] = 0;
                dv->pend[i] = 0;
            } else if (!rc && f->leader) {
                rc = job_monitor_step(js, s + 1, ep->hi, 0, 0, 0, err);
            }
            continue;
        }
        ep->loss[i] += ep->l[i];
        ep->correct[i] += ep->c[i];
        if (!rc && f->leader)
            rc = job_monitor_step(js, s + 1, ep->hi, ep->l[i], ep->c[i],
                                  fused_rows_outside(f, ep->rows, ep->B, js->job.fold), err);
    }
    dv->fresh = 0;
    return rc;
}

/* The stepping heads' gradients summed over the group in one all-reduce,
 * then each head's learning rate (a per-step schedule) and step. */
static fl_code fused_heads_step(fused_state *f, fused_epoch *ep, fl_error *err)
{
    fl_code rc = FL_OK;
    if (f->g_size > 1 && ep->n_step > 0) {
        double c0 = job_now_s();
        rc = fl_models_grads_reduce(ep->stepping, ep->n_step, fl_group_host_buffers(f->group), fl_group_sum_flat,
                                    f->group, err);
        f->js[0].comm_seconds += job_now_s() - c0;
    }
    for (int i = 0; i < ep->n_step && !rc; i++) {
        if (fl_schedule_per_step(f->mc))
            rc = fl_model_set_lr(ep->stepping[i], fl_schedule_lr_at(f->mc, ep->epoch, ep->s, ep->o.n_batches), err);
        if (!rc)
            rc = fl_model_step(ep->stepping[i], err);
    }
    return rc;
}

/* At a stop or a timed checkpoint: every active head's last.pt at this
 * step, from one sum of all their sums (the device's read first); a stop
 * then ends the job. */
static fl_code fused_step_checkpoint(fused_state *f, fused_epoch *ep, fl_error *err)
{
    int n = f->n;
    fl_code rc = FL_OK;
    if (f->dev && f->defer && (rc = fused_dev_read(f, &ep->dv, ep->epoch, ep->s + 1, ep->loss, ep->correct, err)))
        return rc;
    double *sums = malloc(sizeof *sums * (size_t)n * 2);
    if (!sums)
        return fused_oom(err);
    memcpy(sums, ep->loss, sizeof *sums * (size_t)n);
    memcpy(sums + n, ep->correct, sizeof *sums * (size_t)n);
    rc = fused_sum_pairs(f, sums, sums + n, n, err);
    for (int i = 0; i < n && !rc; i++)
        if (ep->active[i])
            rc = job_save_at(&f->js[i], f->js[i].prog.step, sums[i], sums[n + i], job_now_s() - ep->t0[i], err);
    free(sums);
    if (!rc && ep->flagv[0] > 0)
        rc = fused_stopped(f, ep->epoch, ep->s + 1, err);
    return rc;
}

/* Step s of the epoch: the batch's features, every head's forward and
 * backward, the group's flags, the heads' sums and steps, each active
 * head's progress, and a checkpoint when the group asks for one. */
static fl_code fused_step(fused_state *f, fused_epoch *ep, int64_t s, fl_error *err)
{
    ep->s = s;
    fl_order_batch(&ep->o, s, &ep->lo, &ep->hi);
    fused_shard(f, ep->lo, ep->hi, &ep->mlo, &ep->mhi);
    ep->rows = ep->o.rows + ep->mlo;
    ep->B = (int)(ep->mhi - ep->mlo);
    fl_code rc = fused_step_features(f, ep, err);
    if (!rc)
        rc = fused_heads_backward(f, ep, err);
    if (!rc)
        rc = fused_dev_step_losses(f, ep, err);
    if (!rc)
        rc = fused_step_flags(f, ep, err);
    if (rc)
        return rc;
    rc = fused_heads_account(f, ep, err);
    if (!rc)
        fused_progress_line(f, ep->active);
    if (!rc)
        rc = fused_heads_step(f, ep, err);
    for (int i = 0; i < f->n; i++)
        if (ep->active[i] && f->js[i].prog.step <= s)
            f->js[i].prog.step = s + 1; /* in memory only: last.pt is written below or at the epoch's end */
    fl_group_progress(f->env->group);
    if (!rc && (ep->flagv[0] > 0 || ep->flagv[1] > 0))
        rc = fused_step_checkpoint(f, ep, err);
    return rc;
}

/* The epoch's end: the device's last sums, every head's sums over the group
 * in one call, and each active head's mean loss, accuracy and seconds. */
static fl_code fused_epoch_end(fused_state *f, fused_epoch *ep, double *tl, double *ta, double *secs, fl_error *err)
{
    fl_code rc = FL_OK;
    if (f->dev && f->defer && (rc = fused_dev_read(f, &ep->dv, ep->epoch, ep->o.n_batches, ep->loss, ep->correct, err)))
        return rc;
    if ((rc = fused_sum_pairs(f, ep->loss, ep->correct, f->n, err))) /* every head's sums in one call */
        return rc;
    for (int i = 0; i < f->n; i++) {
        if (!ep->active[i])
            continue;
        secs[i] = job_now_s() - ep->t0[i];
        tl[i] = ep->loss[i] / (double)f->js[i].n_train;
        ta[i] = ep->correct[i] / (double)f->js[i].n_train;
        f->js[i].comm_seconds = f->js[i].comm_exposed = f->js[0].comm_seconds;
    }
    return FL_OK;
}

fl_code fused_train_epoch(fused_state *f, int epoch, const int *active, double *tl, double *ta, double *secs,
                          fl_error *err)
{
    fused_epoch ep;
    fl_code rc = fused_epoch_begin(f, &ep, epoch, active, err);
    for (int64_t s = ep.s0; s < ep.o.n_batches && !rc; s++)
        rc = fused_step(f, &ep, s, err);
    if (!rc)
        rc = fused_epoch_end(f, &ep, tl, ta, secs, err);
    fused_epoch_free(&ep);
    return rc;
}
