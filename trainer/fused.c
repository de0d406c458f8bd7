/* fused.c -- see fused.h.
 *
 * The heads are the folds' own job_states (trainer/job_internal.h): head 0's
 * model owns the backbone, the others share it (fl_model_spec.backbone_of).
 * A step of the fused job is one batch of the model's shared order: every
 * rank embeds its contiguous shard of the batch once, then each head runs
 * forward and backward on the shard's rows outside its fold, scaled by their
 * share of that head's rows in the whole batch. The group agrees on stop,
 * checkpoint and non-finite flags (one sum), and sums every stepping head's
 * gradients in one all-reduce. Heads resumed at different points (a stop
 * between two heads' last.pt renames) simply sit out the batches they have
 * already trained.
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

static fl_code fused_stopped(fused_state *f, int epoch, int64_t step, fl_error *err)
{
    char folds[256];
    fused_folds_text(f, folds, sizeof folds);
    return fl_fail_job(err, FL_ESTOPPED,
                       "job %s folds %s (fused): stopped by %s at epoch %d step %lld; each fold's last.pt under %s/%s "
                       "holds it HINT: rerun the same command to resume",
                       f->mc->name, folds, job_stop_cause(), epoch + 1, (long long)step, f->env->run_dir, f->mc->name);
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

/* One epoch of every head whose progress is at this epoch (active[i]),
 * each from its own step on. tl, ta, secs: (n) per head. */
static fl_code fused_train_epoch(fused_state *f, int epoch, const int *active, double *tl, double *ta, double *secs,
                                 fl_error *err)
{
    const fl_train_config *cfg = f->env->cfg;
    fl_order o;
    fl_code rc = fl_order_frozen(f->env->train_fold, f->N, f->K, f->mc->batch, f->js[0].model_seed, epoch, &o, err);
    if (rc)
        return rc;
    const fl_aug_stage *stage = fl_augment_stage_at(f->mc, epoch);
    int n = f->n,
        from_cache = (f->cache || f->dev_cache) && (!stage || stage->n_ops == 0) && fused_all_cached(f, o.rows, o.n);
    fused_dev_epoch dv;
    memset(&dv, 0, sizeof dv);
    /* Per head: the epoch's sums, its start time, this step's loss and correct count. */
    double *loss = calloc((size_t)n * 5, sizeof *loss), *correct = loss + n, *t0 = loss + 2 * n, *flagv = NULL;
    double *l = loss + 3 * n, *c = loss + 4 * n;
    int64_t *count = calloc((size_t)n, sizeof *count), s0 = o.n_batches;
    fl_model **stepping = malloc(sizeof *stepping * (size_t)n);
    flagv = malloc(sizeof *flagv * (size_t)(n + 2));
    if (!loss || !count || !stepping || !flagv) {
        rc = fused_oom(err);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (!active[i])
            continue;
        job_state *js = &f->js[i];
        s0 = js->prog.step < s0 ? js->prog.step : s0;
        /* A resumed epoch: the leader's sums so far stand for the whole group. */
        loss[i] = js->leader ? js->prog.loss_sum : 0;
        correct[i] = js->leader ? js->prog.correct : 0;
        t0[i] = job_now_s() - js->prog.seconds;
        js->comm_seconds = js->comm_exposed = 0;
        js->comm_buckets = 0; /* the heads' gradients are small: one all-reduce after backward */
    }
    if (!from_cache && (rc = job_loader_start(f->data->train_loader, &o, s0, f->g_rank, f->g_size, err)))
        goto done;
    if (f->dev && (rc = fused_dev_epoch_start(f, &o, loss, correct, &dv, err)))
        goto done;
    if (f->dev && !from_cache && s0 < o.n_batches && (rc = fused_dev_fetch(f, &o, s0, &dv.slot, err)))
        goto done;
    for (int i = 0; i < n && !rc; i++)
        if (active[i])
            rc = job_monitor_epoch_start(&f->js[i], epoch, o.n_batches, s0, s0 ? o.ends[s0 - 1] : 0, err);
    int skip_nonfinite = cfg->on_nan == FL_ON_NAN_SKIP_STEP;
    double checkpoint_s = cfg->checkpoint_minutes * 60.0;
    for (int64_t s = s0; s < o.n_batches && !rc; s++) {
        int64_t lo, hi, mlo, mhi;
        fl_order_batch(&o, s, &lo, &hi);
        fused_shard(f, lo, hi, &mlo, &mhi);
        const int64_t *rows = o.rows + mlo;
        int B = (int)(mhi - mlo);
        if (f->dev && !from_cache) { /* batch s is staged; batch s+1's copy overlaps its compute */
            int any = B ? fl_augment_draw(stage, f->js[0].model_seed, epoch, rows, B, f->aug) : 0;
            f->embedded += B;
            rc = B ? fl_devpath_embed(f->dev, dv.slot, any ? f->aug : NULL, mlo, err) : FL_OK;
            if (!rc && s + 1 < o.n_batches)
                rc = fused_dev_fetch(f, &o, s + 1, &dv.slot, err);
        } else if (f->dev) {
            /* cached: each head gathers its rows on the device */
        } else if (!from_cache) {
            const uint8_t *x;
            int got_B, got;
            int64_t first;
            if ((got = fl_loader_next(f->data->train_loader, &x, &got_B, &first, err)) != 1 || got_B != B) {
                rc = got < 0 ? err->code
                             : fl_fail(err, FL_EINTERNAL, "fused: the loader's batch %lld is not the order's",
                                       (long long)s);
                break;
            }
            int any = B ? fl_augment_draw(stage, f->js[0].model_seed, epoch, rows, B, f->aug) : 0;
            rc = fused_embed(f, x, B, any ? f->aug : NULL, -1, f->feats, err);
        } else {
            rc = fl_featcache_get(f->cache, rows, B, f->feats, err);
        }
        if (rc)
            break;
        /* Each head's rows in the whole batch, then its forward and backward. */
        memset(flagv, 0, sizeof *flagv * (size_t)(n + 2));
        memset(l, 0, sizeof *l * (size_t)n * 2);
        for (int i = 0; i < n && !rc; i++) {
            job_state *js = &f->js[i];
            count[i] = 0;
            if (!active[i] || js->prog.step > s)
                continue;
            for (int64_t r = lo; r < hi; r++)
                count[i] += f->env->train_fold[o.rows[r]] != js->job.fold;
            if (f->dev) {
                dv.a[i] = fused_lower_bound(dv.pos[i], dv.cnt[i], mlo);
                dv.b[i] = fused_lower_bound(dv.pos[i], dv.cnt[i], mhi);
                if (count[i] && dv.b[i] > dv.a[i]) {
                    rc = fl_devpath_head_step(f->dev, i, dv.a[i], dv.b[i], from_cache,
                                              (double)(dv.b[i] - dv.a[i]) / (double)count[i], err);
                    if (epoch == js->fault_epoch && s == js->fault_step)
                        flagv[2 + i] = 1;
                }
                continue;
            }
            int m = count[i] ? fused_select_train(f, rows, B, js->job.fold) : 0;
            if (m > 0) {
                int ci = 0;
                rc = fl_model_head_forward_backward(js->model, f->sel, f->labels, m, (double)m / (double)count[i],
                                                    &l[i], &ci, err);
                c[i] = ci;
                if (!isfinite(l[i]) || (epoch == js->fault_epoch && s == js->fault_step))
                    flagv[2 + i] = 1;
            }
        }
        if (!rc && f->dev && !f->defer) { /* run.on_nan = "skip_step": this step's losses decide */
            double st[FL_MAX_FOLDS * 2];
            rc = fl_devpath_read(f->dev, 1, st, err);
            for (int i = 0; i < n && !rc; i++) {
                if (!active[i] || !count[i] || dv.b[i] <= dv.a[i])
                    continue;
                l[i] = st[2 * i];
                c[i] = st[2 * i + 1];
                if (!isfinite(l[i]))
                    flagv[2 + i] = 1;
            }
        }
        if (!rc && f->dev && f->defer && fused_dev_read_due(f, &dv, active))
            rc = fused_dev_read(f, &dv, epoch, s, NULL, NULL, err);
        if (rc)
            break;
        flagv[0] = fl_stop_requested() != 0;
        double last = 0;
        for (int i = 0; i < n; i++)
            if (active[i] && f->js[i].last_checkpoint > last)
                last = f->js[i].last_checkpoint;
        flagv[1] = f->leader && checkpoint_s > 0 && job_now_s() - last >= checkpoint_s;
        if (f->g_size > 1 && (rc = fl_group_sum(f->group, flagv, n + 2, err)))
            break;
        int n_step = 0;
        for (int i = 0; i < n && !rc; i++) {
            job_state *js = &f->js[i];
            if (!count[i])
                continue;
            if (flagv[2 + i] > 0) {
                if (!skip_nonfinite)
                    rc =
                        fl_fail_job(err, FL_EINPUT,
                                    "job %s fold %d: the training loss is not finite at epoch %d step %lld HINT: lower "
                                    "the learning rate, set clip_grad_norm, or run.on_nan = \"skip_step\"",
                                    f->mc->name, js->job.fold, epoch + 1, (long long)s);
                else if (!(rc = fl_model_zero_grad(js->model, err)) && f->log)
                    fl_job_log(f->log, f->mc->name, js->job.fold,
                               "epoch %d step %lld: loss not finite, step skipped (run.on_nan)\n", epoch + 1,
                               (long long)s);
                continue;
            }
            stepping[n_step++] = js->model;
            if (f->dev && f->defer) { /* the sums stay on the device; the monitor gets them when read */
                dv.pend[i] += fused_rows_outside(f, rows, B, js->job.fold);
                if (!rc && f->leader && dv.fresh) {
                    rc = job_monitor_step(js, s + 1, hi, dv.dl[i], dv.dc[i], dv.pend[i], err);
                    dv.dl[i] = dv.dc[i] = 0;
                    dv.pend[i] = 0;
                } else if (!rc && f->leader) {
                    rc = job_monitor_step(js, s + 1, hi, 0, 0, 0, err);
                }
                continue;
            }
            loss[i] += l[i];
            correct[i] += c[i];
            if (!rc && f->leader)
                rc = job_monitor_step(js, s + 1, hi, l[i], c[i], fused_rows_outside(f, rows, B, js->job.fold), err);
        }
        dv.fresh = 0;
        if (!rc)
            fused_progress_line(f, active);
        if (!rc && f->g_size > 1 && n_step > 0) {
            double c0 = job_now_s();
            rc = fl_models_grads_reduce(stepping, n_step, fl_group_host_buffers(f->group), fl_group_sum_flat, f->group,
                                        err);
            f->js[0].comm_seconds += job_now_s() - c0;
        }
        for (int i = 0; i < n_step && !rc; i++) {
            if (fl_schedule_per_step(f->mc))
                rc = fl_model_set_lr(stepping[i], fl_schedule_lr_at(f->mc, epoch, s, o.n_batches), err);
            if (!rc)
                rc = fl_model_step(stepping[i], err);
        }
        for (int i = 0; i < n; i++)
            if (active[i] && f->js[i].prog.step <= s)
                f->js[i].prog.step = s + 1; /* in memory only: last.pt is written below or at the epoch's end */
        fl_group_progress(f->env->group);
        if (!rc && (flagv[0] > 0 || flagv[1] > 0) && f->dev && f->defer)
            rc = fused_dev_read(f, &dv, epoch, s + 1, loss, correct, err);
        if (!rc && (flagv[0] > 0 || flagv[1] > 0)) {
            /* Every active head's last.pt at this step: one sum of all their sums. */
            double *sums = malloc(sizeof *sums * (size_t)n * 2);
            if (!sums) {
                rc = fused_oom(err);
                break;
            }
            memcpy(sums, loss, sizeof *sums * (size_t)n);
            memcpy(sums + n, correct, sizeof *sums * (size_t)n);
            rc = fused_sum_pairs(f, sums, sums + n, n, err);
            for (int i = 0; i < n && !rc; i++)
                if (active[i])
                    rc = job_save_at(&f->js[i], f->js[i].prog.step, sums[i], sums[n + i], job_now_s() - t0[i], err);
            free(sums);
            if (!rc && flagv[0] > 0)
                rc = fused_stopped(f, epoch, s + 1, err);
        }
    }
    if (!rc && f->dev && f->defer)
        rc = fused_dev_read(f, &dv, epoch, o.n_batches, loss, correct, err);
    if (rc)
        goto done;
    if ((rc = fused_sum_pairs(f, loss, correct, n, err))) /* every head's sums in one call */
        goto done;
    for (int i = 0; i < n && !rc; i++) {
        if (!active[i])
            continue;
        secs[i] = job_now_s() - t0[i];
        tl[i] = loss[i] / (double)f->js[i].n_train;
        ta[i] = correct[i] / (double)f->js[i].n_train;
        f->js[i].comm_seconds = f->js[i].comm_exposed = f->js[0].comm_seconds;
    }
done:
    fused_dev_epoch_free(&dv);
    fl_order_free(&o);
    free(loss);
    free(count);
    free(stepping);
    free(flagv);
    return rc;
}

/* ---- validation and prediction --------------------------------------------- */

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
