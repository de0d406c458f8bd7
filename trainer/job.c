/* job.c -- see job.h. */
#include "trainer/job.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataset/preds.h"
#include "base/clock.h"
#include "base/stop.h"
#include "base/tempfile.h"
#include "trainer/augment.h"
#include "trainer/job_internal.h"
#include "trainer/order.h"
#include "trainer/rng.h"
#include "trainer/schedule.h"
#include "trainer/settings.h"
#include "trainer/torch/bridge.h"

double job_now_s(void)
{
    return fl_clock_mono();
}

uint64_t fl_job_seed(const fl_train_config *cfg, const fl_job *job)
{
    return fl_mix64((uint64_t)cfg->seed ^
                    fl_mix64(fl_hash_str(cfg->models[job->model].name) ^ fl_mix64((uint64_t)job->fold)));
}

void fl_job_dir(const fl_job_env *env, const fl_job *job, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s/fold%d", env->run_dir, env->cfg->models[job->model].name, job->fold);
}

int fl_job_is_done(const fl_job_env *env, const fl_job *job)
{
    char dir[4096], path[4200];
    struct stat st;
    fl_job_dir(env, job, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/preds.h5", dir);
    return stat(path, &st) == 0;
}

/* Group rank 0's tensors (FL_STATE_PARAMS, FL_STATE_BUFFERS) to every rank of
 * the group: the initial weights, a loaded checkpoint, and the batch-norm
 * running statistics before a prediction (each rank keeps its own while it
 * trains on its shards), so that every row is predicted by the same model
 * whichever rank holds it. */
fl_code job_sync(job_state *js, int what, fl_error *err)
{
    if (js->g_size == 1)
        return FL_OK;
    return fl_model_state_broadcast(js->model, what, fl_group_host_buffers(js->group), fl_group_bcast_flat, js->group,
                                    err);
}

/* Sums n values over the group, in place. */
fl_code job_sum(job_state *js, double *v, int n, fl_error *err)
{
    return js->g_size == 1 ? FL_OK : fl_group_sum(js->group, v, n, err);
}

void fl_job_model_spec(const fl_model_cfg *mc, const fl_data_info *in, fl_model_spec *out)
{
    fl_model_spec spec = {0};
    spec.backbone = mc->backbone;
    spec.in_channels = in->channels;
    spec.height = in->height;
    spec.width = in->width;
    spec.num_classes = in->num_classes;
    spec.head_type = fl_head_name(mc->head_type);
    spec.head_hidden = mc->head_hidden;
    spec.head_act = fl_act_name(mc->head_act);
    spec.freeze_backbone = mc->freeze_backbone;
    spec.backbone_lr_scale = mc->backbone_lr_scale;
    spec.optimizer = fl_optim_name(mc->optimizer);
    spec.lr = mc->lr;
    spec.weight_decay = mc->weight_decay;
    spec.momentum = mc->momentum;
    spec.nesterov = mc->nesterov;
    spec.clip_grad_norm = mc->clip_grad_norm;
    spec.label_smoothing = mc->label_smoothing;
    spec.precision = fl_precision_name(mc->precision);
    for (int c = 0; c < 3; c++) {
        spec.mean[c] = (float)(mc->n_mean == 0 ? 0.5 : mc->mean[mc->n_mean == 1 ? 0 : c]);
        spec.std[c] = (float)(mc->n_std == 0 ? 0.5 : mc->std[mc->n_std == 1 ? 0 : c]);
    }
    *out = spec;
}

fl_code job_model_new(job_state *js, const fl_model *backbone_of, fl_error *err)
{
    const fl_job_env *env = js->env;
    fl_model_spec spec;
    fl_job_model_spec(js->mc, &js->data->info, &spec);
    spec.seed = js->seed;
    if (js->frozen) { /* the folds share the backbone: drawn from the model's seed, or the very module */
        spec.backbone_seed = js->model_seed;
        spec.backbone_of = backbone_of;
    }
    spec.device = env->device;
    fl_code rc = fl_model_new(&spec, &js->model, err);
    if (rc || js->g_size == 1)
        return rc;
    /* Every rank drew the same weights from the same seed; the broadcast
     * makes sure of it whatever the device or the library underneath. */
    fl_group_set_stream(js->group, fl_model_cuda_stream(js->model));
    return job_sync(js, FL_STATE_PARAMS | FL_STATE_BUFFERS, err);
}

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

/* One pass of training over the epoch's batches, from batch js->prog.step on
 * (a resumed epoch): on each rank its shard of every global batch, gradients
 * summed over the group, then the step. After each step the group agrees on
 * a non-finite loss (run.on_nan), a stop signal and a timed checkpoint
 * (run.checkpoint_minutes). An empty batch (a frozen model's, once this
 * fold's others ran out) is no step. */
static fl_code job_train_epoch(job_state *js, int epoch, double *loss, double *acc, double *seconds, fl_error *err)
{
    const fl_job_env *env = js->env;
    const fl_train_config *cfg = env->cfg;
    fl_code rc = job_epoch_order(js, epoch, err);
    if (rc)
        return rc;
    const fl_order *o = &js->order;
    const fl_aug_stage *stage = fl_augment_stage_at(js->mc, epoch);
    /* A resumed epoch: the leader's sums so far stand for the whole group. */
    int64_t step = js->prog.step < o->n_batches ? js->prog.step : o->n_batches, start = 0, hi;
    if (step > 0)
        fl_order_batch(o, step - 1, &hi, &start);
    double t0 = job_now_s() - js->prog.seconds, loss_sum = js->leader ? js->prog.loss_sum : 0;
    double correct = js->leader ? js->prog.correct : 0;
    if ((rc = job_loader_start(js->data->train_loader, o, step, js->g_rank, js->g_size, err)) ||
        (rc = job_monitor_epoch_start(js, epoch, o->n_batches, step, start, err)))
        return rc;
    const uint8_t *x;
    int B, got;
    int64_t first;
    int skip_nonfinite = cfg->on_nan == FL_ON_NAN_SKIP_STEP, per_step = fl_schedule_per_step(js->mc);
    double checkpoint_s = cfg->checkpoint_minutes * 60.0;
    /* dist.overlap: the gradient buckets start during backward (fl_model_grads_overlap_begin). */
    int overlap = js->g_size > 1 && cfg->overlap, host = js->g_size > 1 ? fl_group_host_buffers(js->group) : 1;
    fl_flat_async_ops ops = {fl_group_sum_start, fl_group_sum_test, fl_group_sum_wait,
                             js->g_size > 1 ? fl_group_sum_any_thread(js->group) : 0};
    int64_t bucket_bytes = cfg->bucket_mb * 1e6 < 1 ? 1 : (int64_t)(cfg->bucket_mb * 1e6);
    while ((got = fl_loader_next(js->data->train_loader, &x, &B, &first, err)) == 1) {
        int64_t lo;
        fl_order_batch(o, step, &lo, &hi);
        int64_t batch_rows = hi - lo;
        if (batch_rows == 0) { /* every rank knows: no step */
            step++;
            continue;
        }
        const int64_t *rows = o->rows + start + first;
        double l = 0;
        int c = 0, mine = 0, flags;
        if (overlap && (rc = fl_model_grads_overlap_begin(js->model, host, &ops, js->group, bucket_bytes, err)))
            return rc;
        if (B > 0) { /* a shard is empty only when a batch has fewer rows than the group has ranks */
            for (int i = 0; i < B; i++)
                js->labels_buf[i] = env->train_labels[rows[i]];
            int any = fl_augment_draw(stage, js->frozen ? js->model_seed : js->seed, epoch, rows, B, js->aug);
            /* The mean loss over this shard times its share of the batch: the
             * group's summed gradients are those of the whole batch's mean loss. */
            double scale = (double)B / (double)batch_rows;
            if ((rc = fl_model_forward_backward(js->model, x, js->labels_buf, B, any ? js->aug : NULL, scale, &l, &c,
                                                err)))
                return rc;
            if (!isfinite(l) || (epoch == js->fault_epoch && step == js->fault_step))
                mine |= STEP_NONFINITE;
        }
        if (overlap) { /* every bucket, also on a rank without backward: the ranks start the same buckets */
            double c0 = job_now_s();
            fl_overlap_stats st = {0};
            rc = fl_model_grads_overlap_end(js->model, &st, err);
            double waited = job_now_s() - c0;
            js->comm_exposed += waited;
            js->comm_seconds += waited + st.busy_s;
            js->comm_buckets = st.buckets;
            if (rc)
                return rc;
        }
        if (fl_stop_requested())
            mine |= STEP_STOP;
        if (js->leader && checkpoint_s > 0 && job_now_s() - js->last_checkpoint >= checkpoint_s)
            mine |= STEP_CHECKPOINT;
        if ((rc = job_step_flags(js, mine, &flags, err)))
            return rc;
        if (flags & STEP_NONFINITE) {
            if (!skip_nonfinite)
                return fl_fail_job(err, FL_EINPUT,
                                   "job %s fold %d: the training loss is not finite at epoch %d step %lld HINT: lower "
                                   "the learning rate, set clip_grad_norm, or run.on_nan = \"skip_step\"",
                                   js->mc->name, js->job.fold, epoch + 1, (long long)step);
            if (js->log)
                fl_job_log(js->log, js->mc->name, js->job.fold,
                           "epoch %d step %lld: loss not finite, step skipped (run.on_nan)\n", epoch + 1,
                           (long long)step);
            rc = fl_model_zero_grad(js->model, err);
        } else {
            if (js->g_size > 1 && !overlap) {
                double c0 = job_now_s();
                rc = fl_model_grads_reduce(js->model, fl_group_host_buffers(js->group), fl_group_sum_flat, js->group,
                                           err);
                js->comm_seconds += job_now_s() - c0;
                js->comm_exposed += job_now_s() - c0;
                js->comm_buckets = 0;
            }
            if (!rc && per_step)
                rc = fl_model_set_lr(js->model, fl_schedule_lr_at(js->mc, epoch, step, o->n_batches), err);
            if (!rc)
                rc = fl_model_step(js->model, err);
            loss_sum += l;
            correct += c;
        }
        if (rc)
            return rc;
        step++;
        fl_group_progress(env->group);
        if ((rc = (flags & STEP_NONFINITE) ? job_monitor_step(js, step, hi, 0, 0, 0, err)
                                           : job_monitor_step(js, step, hi, l, c, B, err)))
            return rc;
        /* The prefetch thread reads on meanwhile: a checkpoint does not touch
         * the data file. At a stop, the next start or close drops its reads. */
        if ((flags & (STEP_STOP | STEP_CHECKPOINT)) &&
            (rc = job_save_mid_epoch(js, step, loss_sum, correct, job_now_s() - t0, err)))
            return rc;
        if (flags & STEP_STOP)
            return job_stopped(js, epoch, step, err);
    }
    if (got < 0)
        return err->code;
    double sums[2] = {loss_sum, correct};
    if ((rc = job_sum(js, sums, 2, err)))
        return rc;
    *seconds = job_now_s() - t0;
    *loss = sums[0] / (double)js->n_train;
    *acc = sums[1] / (double)js->n_train;
    return FL_OK;
}

/* Predicts rows (n) of a loader's split, sharded over the group: each rank
 * its fl_group_share of the rows, in batches of its share of `batch`. With
 * probs_out, the probabilities (n, C) are gathered into probs (the leader's;
 * the others pass NULL). labels (by split row) may be NULL; *loss and *acc
 * cover all n rows, on every rank. TTA views only when use_tta is set. */
static fl_code job_predict(job_state *js, fl_loader *ld, const int64_t *rows, int64_t n, int use_tta,
                           const int32_t *labels, int probs_out, float *probs, double *loss, double *acc, fl_error *err)
{
    int C = js->data->info.num_classes, batch = (js->mc->batch + js->g_size - 1) / js->g_size;
    int64_t lo, hi;
    fl_group_share(n, js->g_rank, js->g_size, &lo, &hi);
    /* mine: (hi - lo, C), this rank's rows (on the leader, the first rows of
     * probs); own: its buffer elsewhere, or (batch, C) dropped after each batch. */
    float *mine = probs_out && js->leader ? probs : NULL;
    float *own = mine ? NULL : malloc(sizeof *own * (size_t)(probs_out ? (hi - lo) : batch) * C + 1);
    if (!mine && !own)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    if (probs_out && !mine)
        mine = own;
    int tta[FL_MAX_TTA];
    int n_tta = use_tta ? js->mc->n_tta : 0;
    for (int i = 0; i < n_tta; i++)
        tta[i] = (int)js->mc->tta[i];
    double sums[2] = {0, 0}; /* loss, correct */
    fl_code rc = job_sync(js, FL_STATE_BUFFERS, err);
    if (!rc)
        rc = fl_loader_start(ld, rows + lo, hi - lo, batch, err);
    const uint8_t *x;
    int B, got = 0;
    int64_t first;
    while (!rc && (got = fl_loader_next(ld, &x, &B, &first, err)) == 1) {
        const int32_t *y = NULL;
        if (labels) {
            for (int i = 0; i < B; i++)
                js->labels_buf[i] = labels[rows[lo + first + i]];
            y = js->labels_buf;
        }
        double l = 0;
        int c = 0;
        rc = fl_model_predict(js->model, x, B, tta, n_tta, y, mine ? mine + (size_t)first * C : own, &l, &c, err);
        sums[0] += l;
        sums[1] += c;
        fl_group_progress(js->env->group);
        job_monitor_phase(js, probs_out ? "predict" : "validate");
    }
    if (!rc && got < 0)
        rc = err->code;
    if (!rc)
        rc = job_sum(js, sums, 2, err);
    if (!rc && probs_out && js->g_size > 1)
        rc = fl_group_gather_rows(js->group, mine, probs, n, C, err);
    free(own);
    if (rc)
        return rc;
    if (loss)
        *loss = n ? sums[0] / (double)n : 0;
    if (acc)
        *acc = n ? sums[1] / (double)n : 0;
    return FL_OK;
}

/* One row of metrics.csv, kept in memory (and in every checkpoint) until
 * job_metrics_write. */
static fl_code job_metrics_append(job_state *js, int epoch, double lr, double tl, double ta, double vl, double va,
                                  double secs, double ips, fl_error *err)
{
    char row[512];
    int n = snprintf(row, sizeof row, "%s%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f\n",
                     js->metrics_len ? "" : "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s\n",
                     epoch, lr, tl, ta, vl, va, secs, ips);
    char *m = realloc(js->metrics, js->metrics_len + (size_t)n + 1);
    if (!m)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    memcpy(m + js->metrics_len, row, (size_t)n + 1);
    js->metrics = m;
    js->metrics_len += (size_t)n;
    return FL_OK;
}

static fl_code job_metrics_write(job_state *js, fl_error *err)
{
    if (!js->leader)
        return FL_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", js->dir);
    return fl_write_file_atomic(path, js->metrics, js->metrics_len, err);
}

/* The rows of fold k (ascending) and of the other folds. */
static fl_code job_split_rows(job_state *js, fl_error *err)
{
    const fl_job_env *env = js->env;
    int64_t n = js->data->info.n_train;
    js->train_rows = malloc(sizeof *js->train_rows * (size_t)(n ? n : 1));
    js->val_rows = malloc(sizeof *js->val_rows * (size_t)(n ? n : 1));
    if (!js->train_rows || !js->val_rows)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (env->train_fold[i] == js->job.fold)
            js->val_rows[js->n_val++] = i;
        else
            js->train_rows[js->n_train++] = i;
    }
    if (!js->n_val || !js->n_train)
        return fl_fail_job(
            err, FL_EINPUT,
            "job %s fold %d: fold %d has %lld rows and the others %lld HINT: check folds.use against the data file",
            js->mc->name, js->job.fold, js->job.fold, (long long)js->n_val, (long long)js->n_train);
    return FL_OK;
}

fl_code job_end_epoch(job_state *js, int epoch, double lr, double tl, double ta, double vl, double va, double secs,
                      double vsecs, fl_error *err)
{
    const fl_model_cfg *mc = js->mc;
    job_progress *p = &js->prog;
    double ips = secs > 0 ? js->n_train / secs : 0;
    fl_code rc = job_monitor_epoch_end(js, epoch, lr, tl, ta, vl, va, ips, secs, vsecs, err);
    if (rc)
        return rc;
    if (js->leader && (rc = job_metrics_append(js, epoch, lr, tl, ta, vl, va, secs + vsecs, ips, err)))
        return rc;
    *p = (job_progress){epoch + 1, 0, 0, 0, 0, p->best_loss, p->best_acc, p->best_loss_epoch, p->best_acc_epoch};
    if (vl < p->best_loss) {
        p->best_loss = vl;
        p->best_loss_epoch = epoch;
        if ((rc = job_save(js, fl_predict_with_name(FL_PREDICT_BEST_LOSS), err)))
            return rc;
    }
    if (va > p->best_acc) {
        p->best_acc = va;
        p->best_acc_epoch = epoch;
        if ((rc = job_save(js, fl_predict_with_name(FL_PREDICT_BEST_ACC), err)))
            return rc;
    }
    if ((rc = job_save(js, fl_predict_with_name(FL_PREDICT_LAST), err)) || (rc = job_metrics_write(js, err)))
        return rc;
    if (js->log) {
        fl_job_log(js->log, mc->name, js->job.fold,
                   "epoch %d/%d lr %.3g | train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1f s, %.0f img/s",
                   epoch + 1, mc->epochs, lr, tl, ta, vl, va, secs + vsecs, ips);
        if (js->g_size > 1) { /* the leader's training time in the gradient all-reduce: waited for after
                                  backward (exposed), and in all (with the buckets' starts and tests in backward) */
            double share = secs > 0 ? 100.0 / secs : 0.0;
            fprintf(js->log, ", all-reduce exposed %.1f s (%.0f%% of training), in all %.1f s (%.0f%%), ",
                    js->comm_exposed, js->comm_exposed * share, js->comm_seconds, js->comm_seconds * share);
            if (js->comm_buckets > 0)
                fprintf(js->log, "%d bucket%s during backward", js->comm_buckets, js->comm_buckets == 1 ? "" : "s");
            else
                fputs("after backward", js->log);
        }
        fputc('\n', js->log);
        fflush(js->log);
    }
    return FL_OK;
}

fl_code job_stop_between_epochs(job_state *js, int epoch, fl_error *err)
{
    if (epoch + 1 >= js->mc->epochs) /* the last epoch: prediction follows */
        return FL_OK;
    int flags; /* a stop here: last.pt is this epoch's end; the group agrees */
    fl_code rc = job_step_flags(js, fl_stop_requested() ? STEP_STOP : 0, &flags, err);
    if (!rc && (flags & STEP_STOP))
        return job_stopped(js, epoch + 1, 0, err);
    return rc;
}

/* Trains the epochs from js->prog on, keeping last, best_loss and best_acc.
 * At an epoch's end the best checkpoints are written before last.pt, which
 * is the commit point: a stop between them redoes the epoch, to the same
 * result, and never leaves last.pt claiming a best file that is not there. */
static fl_code job_train(job_state *js, fl_error *err)
{
    const fl_model_cfg *mc = js->mc;
    fl_code rc = FL_OK;
    while (js->prog.epoch < mc->epochs) {
        int epoch = js->prog.epoch;
        double lr = fl_schedule_lr(mc, epoch), tl = 0, ta = 0, secs = 0, vl = 0, va = 0;
        fl_stop_note_epoch(epoch + 1);
        js->comm_seconds = js->comm_exposed = 0;
        if ((rc = fl_model_set_lr(js->model, lr, err)) || (rc = job_train_epoch(js, epoch, &tl, &ta, &secs, err)))
            return rc;
        double t0 = job_now_s();
        if ((rc = job_predict(js, js->data->train_loader, js->val_rows, js->n_val, 0, js->env->train_labels, 0, NULL,
                              &vl, &va, err)))
            return rc;
        if ((rc = job_end_epoch(js, epoch, lr, tl, ta, vl, va, secs, job_now_s() - t0, err)) ||
            (rc = job_stop_between_epochs(js, epoch, err)))
            return rc;
    }
    return rc;
}

fl_code job_load_predict_weights(job_state *js, int *epoch, fl_error *err)
{
    const char *which = fl_predict_with_name(js->mc->predict_with);
    *epoch = js->mc->epochs - 1;
    if (js->mc->predict_with == FL_PREDICT_BEST_LOSS)
        *epoch = js->prog.best_loss_epoch;
    else if (js->mc->predict_with == FL_PREDICT_BEST_ACC)
        *epoch = js->prog.best_acc_epoch;
    return *epoch != js->mc->epochs - 1 ? job_load_weights(js, which, err) : FL_OK;
}

fl_code job_write_preds(job_state *js, int epoch, const float *oof, const float *test, double oof_acc, fl_error *err)
{
    if (!js->leader)
        return FL_OK;
    const fl_job_env *env = js->env;
    fl_preds p = {0};
    snprintf(p.model, sizeof p.model, "%s", js->mc->name);
    p.fold = js->job.fold;
    p.epoch = epoch;
    snprintf(p.checkpoint, sizeof p.checkpoint, "%s", fl_predict_with_name(js->mc->predict_with));
    p.num_classes = js->data->info.num_classes;
    memcpy(p.test_fingerprint, env->fingerprint, sizeof p.test_fingerprint);
    p.n_oof = js->n_val;
    p.n_test = js->data->info.n_test;
    p.oof_index = malloc(sizeof *p.oof_index * (size_t)js->n_val);
    if (!p.oof_index)
        return fl_fail(err, FL_ENOMEM, "out of memory for predictions");
    for (int64_t i = 0; i < js->n_val; i++)
        p.oof_index[i] = (int32_t)js->val_rows[i];
    p.oof_probs = (float *)oof;
    p.test_probs = (float *)test;
    char path[4200];
    snprintf(path, sizeof path, "%s/preds.h5", js->dir);
    fl_code rc = fl_preds_write(path, &p, err);
    free(p.oof_index);
    if (!rc && js->log) {
        fl_job_log(js->log, js->mc->name, js->job.fold,
                   "predicted %lld OOF rows (acc %.4f) and %lld test rows with %s (epoch %d)\n", (long long)js->n_val,
                   oof_acc, (long long)p.n_test, fl_predict_with_name(js->mc->predict_with), epoch + 1);
        fflush(js->log);
    }
    return rc;
}

/* Loads the checkpoint predict_with names and writes preds.h5. */
static fl_code job_predict_all(job_state *js, fl_error *err)
{
    int epoch;
    fl_code rc = job_load_predict_weights(js, &epoch, err);
    if (rc)
        return rc;
    int C = js->data->info.num_classes;
    int64_t n_test = js->data->info.n_test;
    /* Every rank predicts its share of the rows; the leader gathers and writes. */
    int64_t *test_rows = malloc(sizeof *test_rows * (size_t)(n_test ? n_test : 1));
    float *oof = NULL, *test = NULL;
    if (js->leader) {
        oof = malloc(sizeof *oof * (size_t)js->n_val * C);
        test = malloc(sizeof *test * (size_t)(n_test ? n_test : 1) * C);
    }
    if (!test_rows || (js->leader && (!oof || !test))) {
        rc = fl_fail(err, FL_ENOMEM, "out of memory for predictions");
        goto done;
    }
    for (int64_t i = 0; i < n_test; i++)
        test_rows[i] = i;
    double oof_acc = 0;
    if (!(rc = job_predict(js, js->data->train_loader, js->val_rows, js->n_val, 1, js->env->train_labels, 1, oof, NULL,
                           &oof_acc, err)) &&
        !(rc = job_predict(js, js->data->test_loader, test_rows, n_test, 1, NULL, 1, test, NULL, NULL, err)))
        rc = job_write_preds(js, epoch, oof, test, oof_acc, err);
done:
    free(oof);
    free(test);
    free(test_rows);
    return rc;
}

/* Writes the job's settings.txt when it has none (on the leader). */
static fl_code job_write_settings(job_state *js, fl_error *err)
{
    if (!js->leader)
        return FL_OK;
    const fl_job_env *env = js->env;
    char path[4200];
    snprintf(path, sizeof path, "%s/settings.txt", js->dir);
    if (access(path, F_OK) == 0)
        return FL_OK; /* checked against the config before any job started */
    char *text = malloc(FL_SETTINGS_MAX);
    if (!text)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = fl_settings_of_job(env->cfg, js->job.model, js->job.fold, &js->data->info, env->fingerprint,
                                    env->train_labels, env->train_fold, text, err);
    if (!rc)
        rc = fl_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

fl_code fl_job_check_settings(const fl_job_env *env, const fl_job *job, int *inference_changed, fl_error *err)
{
    *inference_changed = 0;
    char dir[4096], path[4200];
    fl_job_dir(env, job, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/settings.txt", dir);
    if (access(path, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR))
        return FL_OK; /* no such job yet: its settings (a module's hash) need not be computed */
    char *text = malloc(FL_SETTINGS_MAX);
    if (!text)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = fl_settings_of_job(env->cfg, job->model, job->fold, &env->model_data[job->model]->info,
                                    env->fingerprint, env->train_labels, env->train_fold, text, err);
    if (!rc)
        rc = fl_settings_check(path, text, inference_changed, err);
    free(text);
    return rc;
}

fl_code fl_job_repredict(const fl_job_env *env, const fl_job *job, fl_error *err)
{
    char dir[4096], path[4200];
    fl_job_dir(env, job, dir, sizeof dir);
    char *text = malloc(FL_SETTINGS_MAX);
    if (!text)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = fl_settings_of_job(env->cfg, job->model, job->fold, &env->model_data[job->model]->info,
                                    env->fingerprint, env->train_labels, env->train_fold, text, err);
    snprintf(path, sizeof path, "%s/settings.txt", dir);
    if (!rc)
        rc = fl_write_file_atomic(path, text, strlen(text), err);
    free(text);
    snprintf(path, sizeof path, "%s/preds.h5", dir);
    if (!rc && unlink(path) != 0 && errno != ENOENT)
        rc = fl_fail(err, FL_EIO, "%s: cannot remove the predictions of the earlier predict_with/tta (%s)", path,
                     strerror(errno));
    return rc;
}

fl_code job_init(job_state *js, const fl_job_env *env, const fl_job *job, fl_error *err)
{
    memset(js, 0, sizeof *js);
    js->env = env;
    js->job = *job;
    js->mc = &env->cfg->models[job->model];
    js->data = env->model_data[job->model];
    js->seed = fl_job_seed(env->cfg, job);
    js->model_seed = fl_order_model_seed(env->cfg->seed, js->mc->name);
    js->frozen = js->mc->freeze_backbone;
    fl_job_dir(env, job, js->dir, sizeof js->dir);
    js->group = env->group;
    js->g_rank = env->group ? fl_group_rank(env->group) : 0;
    js->g_size = env->group ? fl_group_size(env->group) : 1;
    js->leader = js->g_rank == 0;
    js->log = js->leader ? env->log : NULL;
    js->prog.best_loss = INFINITY;
    js->prog.best_acc = -1;
    js->last_checkpoint = job_now_s();
    js->fault_epoch = js->fault_step = -1;
    const char *fault = getenv("FOLDLINE_FAULT_NONFINITE");
    long long fe, fs;
    if (fault && sscanf(fault, "%lld:%lld", &fe, &fs) == 2) {
        js->fault_epoch = (int)fe - 1;
        js->fault_step = fs;
    }
    fl_code rc = js->leader ? fl_mkdir_p(js->dir, err) : FL_OK;
    if (!rc)
        rc = job_write_settings(js, err);
    if (!rc)
        rc = job_split_rows(js, err);
    if (!rc) {
        js->labels_buf = malloc(sizeof *js->labels_buf * (size_t)js->mc->batch);
        js->aug = malloc(sizeof *js->aug * (size_t)js->mc->batch);
        if (!js->labels_buf || !js->aug)
            rc = fl_fail(err, FL_ENOMEM, "out of memory");
    }
    return rc;
}

void job_free(job_state *js)
{
    job_monitor_free(js);
    fl_model_free(js->model);
    free(js->train_rows);
    free(js->val_rows);
    fl_order_free(&js->order);
    free(js->labels_buf);
    free(js->aug);
    free(js->metrics);
    memset(js, 0, sizeof *js);
}

fl_code fl_job_run(const fl_job_env *env, const fl_job *job, fl_error *err)
{
    job_state js;
    fl_code rc = job_init(&js, env, job, err);
    if (!rc) {
        job_monitor_start(&js, 1);
        rc = job_model_new(&js, NULL, err);
    }
    if (!rc)
        rc = job_resume(&js, err);
    if (!rc)
        rc = job_train(&js, err);
    if (!rc)
        rc = job_predict_all(&js, err);
    if (rc)
        fl_error_job(err, "job %s fold %d", js.mc->name, job->fold);
    job_monitor_end(&js, !rc ? "done" : rc == FL_ESTOPPED ? "stopped" : "failed", rc ? err : NULL);
    job_free(&js);
    return rc;
}
