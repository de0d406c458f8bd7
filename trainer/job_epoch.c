/* job_epoch.c -- one training epoch of a fold's job (trainer/job_internal.h):
 * the epoch's batch order, the loader on this rank's shards, and each step's
 * forward and backward, the group's agreement on its flags, the gradient
 * all-reduce and the optimizer step. A stop or a timed checkpoint writes
 * last.pt in the middle of the epoch; a rerun continues from that step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/stop.h"
#include "trainer/augment.h"
#include "trainer/job_internal.h"
#include "trainer/order.h"
#include "trainer/rng.h"
#include "trainer/schedule.h"
#include "trainer/torch/bridge.h"

/* An epoch of a job in progress (job_train_epoch and its steps). */
typedef struct {
    int epoch;
    const fl_order *o; /* js->order */
    const fl_aug_stage *stage;
    int64_t step;  /* the next global batch */
    int64_t start; /* the order's position of the loader's first row (a resumed epoch) */
    double t0;     /* when the epoch's training began, less the seconds of a resumed part */
    double loss_sum, correct;
    int skip_nonfinite, per_step;
    double checkpoint_s;
    /* dist.overlap: the gradient buckets start during backward (fl_model_grads_overlap_begin). */
    int overlap, host;
    fl_flat_async_ops ops;
    int64_t bucket_bytes;
    /* This step: the rank's shard (B images x, split rows rows) of a batch of
     * batch_rows, its loss and correct count, and the group's flags. */
    const uint8_t *x;
    const int64_t *rows;
    int B;
    int64_t batch_rows;
    double l;
    int c, flags;
} job_epoch;

/* A trained backbone's order of the train rows: a Fisher-Yates permutation
 * drawn from (job seed, epoch), the same on every rank of the group, applied
 * to the previous epoch's order. A job resumed at epoch e replays the
 * shuffles of epochs 0 .. e-1 first (job_resume). */
void job_shuffle(job_state *js, int epoch)
{
    if (js->frozen) /* trainer/order.h: drawn afresh each epoch, nothing to replay */
        return;
    fl_rng r = fl_rng_for(js->seed ^ 0x73687566ull, (uint64_t)epoch, 0);
    for (int64_t i = js->n_train - 1; i > 0; i--) {
        int64_t j = (int64_t)fl_rng_below(&r, (uint64_t)i + 1);
        int64_t t = js->train_rows[i];
        js->train_rows[i] = js->train_rows[j];
        js->train_rows[j] = t;
    }
}

fl_code job_step_flags(job_state *js, int mine, int *flags, fl_error *err)
{
    if (js->g_size == 1) {
        *flags = mine;
        return FL_OK;
    }
    double v[3] = {mine & STEP_NONFINITE, mine & STEP_STOP, mine & STEP_CHECKPOINT};
    fl_code rc = fl_group_sum(js->group, v, 3, err);
    *flags = (v[0] > 0 ? STEP_NONFINITE : 0) | (v[1] > 0 ? STEP_STOP : 0) | (v[2] > 0 ? STEP_CHECKPOINT : 0);
    return rc;
}

fl_code job_loader_start(fl_loader *ld, const fl_order *o, int64_t step, int shard, int n_shards, fl_error *err)
{
    int64_t start = 0, hi;
    if (step > 0)
        fl_order_batch(o, step - 1, &hi, &start);
    int64_t *ends = malloc(sizeof *ends * (size_t)(o->n_batches - step + 1));
    if (!ends)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int64_t s = step; s < o->n_batches; s++)
        ends[s - step] = o->ends[s] - start;
    fl_code rc =
        fl_loader_start_batches(ld, o->rows + start, o->n - start, ends, o->n_batches - step, shard, n_shards, err);
    free(ends);
    return rc;
}

/* The epoch's batches into js->order (trainer/order.h). */
static fl_code job_epoch_order(job_state *js, int epoch, fl_error *err)
{
    fl_order_free(&js->order);
    if (!js->frozen) {
        job_shuffle(js, epoch);
        return fl_order_plain(js->train_rows, js->n_train, js->mc->batch, &js->order, err);
    }
    fl_order all;
    fl_code rc = fl_order_frozen(js->env->train_fold, js->data->info.n_train, js->data->info.folds, js->mc->batch,
                                 js->model_seed, epoch, &all, err);
    if (!rc)
        rc = fl_order_without_fold(&all, js->env->train_fold, js->job.fold, &js->order, err);
    fl_order_free(&all);
    return rc;
}

/* The epoch's order; the step, sums and clock to continue from (a resumed
 * epoch); the loader and the monitor from that step; the settings every
 * step reads. */
static fl_code job_epoch_begin(job_state *js, job_epoch *ep, int epoch, fl_error *err)
{
    const fl_train_config *cfg = js->env->cfg;
    memset(ep, 0, sizeof *ep);
    fl_code rc = job_epoch_order(js, epoch, err);
    if (rc)
        return rc;
    const fl_order *o = &js->order;
    ep->epoch = epoch;
    ep->o = o;
    ep->stage = fl_augment_stage_at(js->mc, epoch);
    /* A resumed epoch: the leader's sums so far stand for the whole group. */
    int64_t hi;
    ep->step = js->prog.step < o->n_batches ? js->prog.step : o->n_batches;
    if (ep->step > 0)
        fl_order_batch(o, ep->step - 1, &hi, &ep->start);
    ep->t0 = job_now_s() - js->prog.seconds;
    ep->loss_sum = js->leader ? js->prog.loss_sum : 0;
    ep->correct = js->leader ? js->prog.correct : 0;
    if ((rc = job_loader_start(js->data->train_loader, o, ep->step, js->g_rank, js->g_size, err)) ||
        (rc = job_monitor_epoch_start(js, epoch, o->n_batches, ep->step, ep->start, err)))
        return rc;
    ep->skip_nonfinite = cfg->on_nan == FL_ON_NAN_SKIP_STEP;
    ep->per_step = fl_schedule_per_step(js->mc);
    ep->checkpoint_s = cfg->checkpoint_minutes * 60.0;
    ep->overlap = js->g_size > 1 && cfg->overlap;
    ep->host = js->g_size > 1 ? fl_group_host_buffers(js->group) : 1;
    ep->ops = (fl_flat_async_ops){fl_group_sum_start, fl_group_sum_test, fl_group_sum_wait,
                                  js->g_size > 1 ? fl_group_sum_any_thread(js->group) : 0};
    ep->bucket_bytes = cfg->bucket_mb * 1e6 < 1 ? 1 : (int64_t)(cfg->bucket_mb * 1e6);
    return FL_OK;
}

/* dist.overlap: waits for every gradient bucket (also on a rank without
 * backward: the ranks start the same buckets) and counts the time. */
static fl_code job_overlap_end(job_state *js, fl_error *err)
{
    double c0 = job_now_s();
    fl_overlap_stats st = {0};
    fl_code rc = fl_model_grads_overlap_end(js->model, &st, err);
    double waited = job_now_s() - c0;
    js->comm_exposed += waited;
    js->comm_seconds += waited + st.busy_s;
    js->comm_buckets = st.buckets;
    return rc;
}

/* The step's forward and backward on the rank's shard, then the flags the
 * group agrees on: a non-finite loss (run.on_nan), a stop signal and a timed
 * checkpoint (run.checkpoint_minutes). */
static fl_code job_step_backward(job_state *js, job_epoch *ep, fl_error *err)
{
    int mine = 0, B = ep->B;
    fl_code rc;
    ep->l = 0;
    ep->c = 0;
    if (ep->overlap &&
        (rc = fl_model_grads_overlap_begin(js->model, ep->host, &ep->ops, js->group, ep->bucket_bytes, err)))
        return rc;
    if (B > 0) { /* a shard is empty only when a batch has fewer rows than the group has ranks */
        for (int i = 0; i < B; i++)
            js->labels_buf[i] = js->env->train_labels[ep->rows[i]];
        int any = fl_augment_draw(ep->stage, js->frozen ? js->model_seed : js->seed, ep->epoch, ep->rows, B, js->aug);
        /* The mean loss over this shard times its share of the batch: the
         * group's summed gradients are those of the whole batch's mean loss. */
        double scale = (double)B / (double)ep->batch_rows;
        if ((rc = fl_model_forward_backward(js->model, ep->x, js->labels_buf, B, any ? js->aug : NULL, scale, &ep->l,
                                            &ep->c, err)))
            return rc;
        if (!isfinite(ep->l) || (ep->epoch == js->fault_epoch && ep->step == js->fault_step))
            mine |= STEP_NONFINITE;
    }
    if (ep->overlap && (rc = job_overlap_end(js, err)))
        return rc;
    if (fl_stop_requested())
        mine |= STEP_STOP;
    if (js->leader && ep->checkpoint_s > 0 && job_now_s() - js->last_checkpoint >= ep->checkpoint_s)
        mine |= STEP_CHECKPOINT;
    return job_step_flags(js, mine, &ep->flags, err);
}

/* A non-finite loss anywhere in the group fails the job, or skips the step
 * (run.on_nan = "skip_step"); else the gradients summed over the group
 * (unless the buckets did it during backward), the learning rate of a
 * per-step schedule, the optimizer's step, and the step's sums. */
static fl_code job_step_apply(job_state *js, job_epoch *ep, fl_error *err)
{
    if (ep->flags & STEP_NONFINITE) {
        if (!ep->skip_nonfinite)
            return fl_fail_job(err, FL_EINPUT,
                               "job %s fold %d: the training loss is not finite at epoch %d step %lld HINT: lower "
                               "the learning rate, set clip_grad_norm, or run.on_nan = \"skip_step\"",
                               js->mc->name, js->job.fold, ep->epoch + 1, (long long)ep->step);
        if (js->log)
            fl_job_log(js->log, js->mc->name, js->job.fold,
                       "epoch %d step %lld: loss not finite, step skipped (run.on_nan)\n", ep->epoch + 1,
                       (long long)ep->step);
        return fl_model_zero_grad(js->model, err);
    }
    fl_code rc = FL_OK;
    if (js->g_size > 1 && !ep->overlap) {
        double c0 = job_now_s();
        rc = fl_model_grads_reduce(js->model, fl_group_host_buffers(js->group), fl_group_sum_flat, js->group, err);
        js->comm_seconds += job_now_s() - c0;
        js->comm_exposed += job_now_s() - c0;
        js->comm_buckets = 0;
    }
    if (!rc && ep->per_step)
        rc = fl_model_set_lr(js->model, fl_schedule_lr_at(js->mc, ep->epoch, ep->step, ep->o->n_batches), err);
    if (!rc)
        rc = fl_model_step(js->model, err);
    ep->loss_sum += ep->l;
    ep->correct += ep->c;
    return rc;
}

/* One pass of training over the epoch's batches, from batch js->prog.step on
 * (a resumed epoch): on each rank its shard of every global batch, gradients
 * summed over the group, then the step. After each step the group agrees on
 * a non-finite loss (run.on_nan), a stop signal and a timed checkpoint
 * (run.checkpoint_minutes). An empty batch (a frozen model's, once this
 * fold's others ran out) is no step. */
fl_code job_train_epoch(job_state *js, int epoch, double *loss, double *acc, double *seconds, fl_error *err)
{
    job_epoch ep;
    fl_code rc = job_epoch_begin(js, &ep, epoch, err);
    if (rc)
        return rc;
    int got;
    int64_t first, lo, hi;
    while ((got = fl_loader_next(js->data->train_loader, &ep.x, &ep.B, &first, err)) == 1) {
        fl_order_batch(ep.o, ep.step, &lo, &hi);
        ep.batch_rows = hi - lo;
        if (ep.batch_rows == 0) { /* every rank knows: no step */
            ep.step++;
            continue;
        }
        ep.rows = ep.o->rows + ep.start + first;
        if ((rc = job_step_backward(js, &ep, err)) || (rc = job_step_apply(js, &ep, err)))
            return rc;
        ep.step++;
        fl_group_progress(js->env->group);
        if ((rc = (ep.flags & STEP_NONFINITE) ? job_monitor_step(js, ep.step, hi, 0, 0, 0, err)
                                              : job_monitor_step(js, ep.step, hi, ep.l, ep.c, ep.B, err)))
            return rc;
        /* The prefetch thread reads on meanwhile: a checkpoint does not touch
         * the data file. At a stop, the next start or close drops its reads. */
        if ((ep.flags & (STEP_STOP | STEP_CHECKPOINT)) &&
            (rc = job_save_mid_epoch(js, ep.step, ep.loss_sum, ep.correct, job_now_s() - ep.t0, err)))
            return rc;
        if (ep.flags & STEP_STOP)
            return job_stopped(js, epoch, ep.step, err);
    }
    if (got < 0)
        return err->code;
    double sums[2] = {ep.loss_sum, ep.correct};
    if ((rc = job_sum(js, sums, 2, err)))
        return rc;
    *seconds = job_now_s() - ep.t0;
    *loss = sums[0] / (double)js->n_train;
    *acc = sums[1] / (double)js->n_train;
    return FL_OK;
}
