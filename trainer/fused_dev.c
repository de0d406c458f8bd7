/* fused_dev.c -- the device-resident path of a fold-fused job (see
 * trainer/torch/devpath.h): opening it, the device cache's fill, and what an
 * epoch keeps on the host while the features, labels and heads stay on the
 * device: each head's positions, the staging of the next batch, and the reads
 * of the loss sums at the progress interval, checkpoints and the epoch's end.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "trainer/fused_internal.h"

/* The device-resident path (trainer/torch/devpath.h): with data.feature_cache
 * = "device" on any device (on the CPU the same code runs over host tensors),
 * and with "none" on a CUDA device (batches staged through pinned buffers).
 * "device" puts the cache on the device when it fits on every rank; when not,
 * one line says so and the job runs as with "memory". */
fl_code fused_dev_open(fused_state *f, fl_error *err)
{
    const fl_train_config *cfg = f->env->cfg;
    int want = cfg->feature_cache == FL_FCACHE_DEVICE;
    if (!want && !(cfg->feature_cache == FL_FCACHE_NONE && fl_model_cuda_stream(f->models[0])))
        return FL_OK;
    int cached = 0;
    char note[128];
    fl_code rc = fl_devpath_open(f->models, f->n, f->N, f->env->train_labels, f->cap, want, &f->dev, &cached, note,
                                 sizeof note, err);
    if (rc)
        return rc;
    if (want) {
        double fits = cached;
        if (f->g_size > 1 && (rc = fl_group_sum(f->group, &fits, 1, err)))
            return rc;
        if (fits < f->g_size) {
            if (f->log) {
                fprintf(f->log,
                        "[%s] feature cache: %lld rows x %d features do not fit on the device %s (%s); in memory "
                        "instead HINT: free device memory, or set data.feature_cache = \"memory\"\n",
                        f->mc->name, (long long)f->N, f->D, fl_devpath_device(f->dev),
                        *note ? note : "on another rank");
                fflush(f->log);
            }
            fl_devpath_close(f->dev);
            f->dev = NULL;
            return FL_OK;
        }
        f->dev_cache = 1;
    }
    f->defer = cfg->on_nan != FL_ON_NAN_SKIP_STEP;
    if (f->log) {
        char folds[256];
        fused_folds_text(f, folds, sizeof folds);
        int cuda = fl_model_cuda_stream(f->models[0]) != NULL;
        fprintf(f->log,
                "[%s folds %s] device-resident: features, labels and %d heads on %s; images not cached through 2 %s "
                "buffers; losses read %s\n",
                f->mc->name, folds, f->n, fl_devpath_device(f->dev), cuda ? "pinned" : "host",
                f->defer ? "at the progress interval and the epoch's end" : "after every step (run.on_nan)");
        fflush(f->log);
    }
    return FL_OK;
}

/* ---- the device-resident epoch ------------------------------------------------- */

void fused_dev_epoch_free(fused_dev_epoch *dv)
{
    for (int i = 0; i < FL_MAX_FOLDS; i++)
        free(dv->pos[i]);
}

fl_code fused_dev_epoch_start(fused_state *f, const fl_order *o, const double *loss, const double *correct,
                              fused_dev_epoch *dv, fl_error *err)
{
    for (int i = 0; i < f->n; i++) {
        int k = f->js[i].job.fold;
        if (!(dv->pos[i] = malloc(sizeof *dv->pos[i] * (size_t)(o->n ? o->n : 1))))
            return fused_oom(err);
        dv->cnt[i] = 0;
        for (int64_t p = 0; p < o->n; p++)
            if (f->env->train_fold[o->rows[p]] != k)
                dv->pos[i][dv->cnt[i]++] = p;
        dv->prev[3 * i] = loss[i];
        dv->prev[3 * i + 1] = correct[i];
        dv->prev[3 * i + 2] = 0;
    }
    dv->last_read = fl_progress_now();
    return fl_devpath_epoch(f->dev, o->rows, o->n, (const int64_t *const *)dv->pos, dv->cnt, loss, correct, err);
}

/* The first of pos (n, ascending) >= v. */
int64_t fused_lower_bound(const int64_t *pos, int64_t n, int64_t v)
{
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (pos[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Reads the loader's batch s (this rank's shard) and stages it. */
fl_code fused_dev_fetch(fused_state *f, const fl_order *o, int64_t s, int *slot, fl_error *err)
{
    int64_t lo, hi, mlo, mhi, first;
    fl_order_batch(o, s, &lo, &hi);
    fused_shard(f, lo, hi, &mlo, &mhi);
    const uint8_t *x;
    int got_B, got;
    if ((got = fl_loader_next(f->data->train_loader, &x, &got_B, &first, err)) != 1 || got_B != mhi - mlo)
        return got < 0 ? err->code
                       : fl_fail(err, FL_EINTERNAL, "fused: the loader's batch %lld is not the order's", (long long)s);
    return fl_devpath_stage(f->dev, x, got_B, slot, err);
}

/* The leader's monitor wants fresh losses: its line, heartbeat or scalars are
 * due (the device's sums are read then, not after every step). */
int fused_dev_read_due(fused_state *f, const fused_dev_epoch *dv, const int *active)
{
    double now = fl_progress_now(), every = f->env->cfg->progress_s;
    if (!f->leader)
        return 0;
    if (fl_ticker_due(&f->ticker, now) || (every > 0 && now - dv->last_read >= every))
        return 1;
    for (int i = 0; i < f->n; i++)
        if (active[i] && now >= f->js[i].mon.next_beat)
            return 1;
    return 0;
}

/* Reads the device's sums: dl, dc (the change since the last read) and,
 * when loss is not NULL, the sums themselves into loss and correct, after
 * the group agrees that every head's losses were finite. */
fl_code fused_dev_read(fused_state *f, fused_dev_epoch *dv, int epoch, int64_t s, double *loss, double *correct,
                       fl_error *err)
{
    double st[FL_MAX_FOLDS * 3], bad[FL_MAX_FOLDS];
    fl_code rc = fl_devpath_read(f->dev, 0, st, err);
    for (int i = 0; i < f->n && !rc; i++) {
        dv->dl[i] += st[3 * i] - dv->prev[3 * i];
        dv->dc[i] += st[3 * i + 1] - dv->prev[3 * i + 1];
        bad[i] = st[3 * i + 2];
    }
    if (rc || !loss)
        goto keep;
    if (f->g_size > 1 && (rc = fl_group_sum(f->group, bad, f->n, err)))
        return rc;
    for (int i = 0; i < f->n; i++) {
        if (bad[i] > 0)
            return fl_fail_job(err, FL_EINPUT,
                               "job %s fold %d: the training loss is not finite in epoch %d (%.0f steps, found at step "
                               "%lld) HINT: lower the learning rate, set clip_grad_norm, or run.on_nan = \"skip_step\"",
                               f->mc->name, f->js[i].job.fold, epoch + 1, bad[i], (long long)s);
        loss[i] = st[3 * i];
        correct[i] = st[3 * i + 1];
    }
keep:
    if (!rc) {
        memcpy(dv->prev, st, sizeof(double) * 3 * (size_t)f->n);
        dv->last_read = fl_progress_now();
        dv->fresh = 1;
    }
    return rc;
}

fl_code fused_dev_fill_batch(fused_state *f, const uint8_t *x, int B, const int64_t *rows, int64_t pos, int64_t len,
                             float *all, fl_error *err)
{
    int slot;
    int64_t lo, hi;
    fused_shard(f, pos, pos + len, &lo, &hi);
    f->embedded += B;
    fl_code rc = fl_devpath_stage(f->dev, x, B, &slot, err);
    if (!rc && B)
        rc = fl_devpath_embed(f->dev, slot, NULL, lo, err);
    if (!rc && f->g_size == 1) {
        rc = fl_devpath_cache_put(f->dev, pos, err);
    } else if (!rc) { /* a group's ranks trade their shards through the host */
        rc = B ? fl_devpath_batch_to_host(f->dev, f->feats, err) : FL_OK;
        if (!rc)
            rc = fl_group_gather_rows(f->group, f->feats, all, len, f->D, err);
        if (!rc)
            rc = fl_group_bcast_host(f->group, all, sizeof *all * (size_t)len * f->D, err);
        if (!rc)
            rc = fl_devpath_cache_put_host(f->dev, rows + pos, len, all, err);
    }
    for (int64_t k = 0; k < len && !rc; k++)
        f->cached[rows[pos + k]] = 1;
    return rc;
}
