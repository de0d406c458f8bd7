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

/* What job_predict predicts and returns: rows (n) of a loader's split,
 * sharded over the group. With probs_out, the probabilities (n, C) are
 * gathered into probs (the leader's; the others pass NULL). labels (by split
 * row) may be NULL; *loss and *acc (each may be NULL) cover all n rows, on
 * every rank. TTA views only when use_tta is set. */
typedef struct {
    fl_loader *loader;
    const int64_t *rows;
    int64_t n;
    int use_tta;
    const int32_t *labels;
    int probs_out;
    float *probs;
    double *loss, *acc;
} job_predict_req;

/* Predicts r's rows: each rank its fl_group_share of them, in batches of its
 * share of `batch`. */
static fl_code job_predict(job_state *js, const job_predict_req *r, fl_error *err)
{
    int C = js->data->info.num_classes, batch = (js->mc->batch + js->g_size - 1) / js->g_size;
    int64_t n = r->n, lo, hi;
    fl_group_share(n, js->g_rank, js->g_size, &lo, &hi);
    /* mine: (hi - lo, C), this rank's rows (on the leader, the first rows of
     * probs); own: its buffer elsewhere, or (batch, C) dropped after each batch. */
    float *mine = r->probs_out && js->leader ? r->probs : NULL;
    float *own = mine ? NULL : malloc(sizeof *own * (size_t)(r->probs_out ? (hi - lo) : batch) * C + 1);
    if (!mine && !own)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    if (r->probs_out && !mine)
        mine = own;
    int tta[FL_MAX_TTA];
    int n_tta = r->use_tta ? js->mc->n_tta : 0;
    for (int i = 0; i < n_tta; i++)
        tta[i] = (int)js->mc->tta[i];
    double sums[2] = {0, 0}; /* loss, correct */
    fl_code rc = job_sync(js, FL_STATE_BUFFERS, err);
    if (!rc)
        rc = fl_loader_start(r->loader, r->rows + lo, hi - lo, batch, err);
    const uint8_t *x;
    int B, got = 0;
    int64_t first;
    while (!rc && (got = fl_loader_next(r->loader, &x, &B, &first, err)) == 1) {
        const int32_t *y = NULL;
        if (r->labels) {
            for (int i = 0; i < B; i++)
                js->labels_buf[i] = r->labels[r->rows[lo + first + i]];
            y = js->labels_buf;
        }
        double l = 0;
        int c = 0;
        rc = fl_model_predict(js->model, x, B, tta, n_tta, y, mine ? mine + (size_t)first * C : own, &l, &c, err);
        sums[0] += l;
        sums[1] += c;
        fl_group_progress(js->env->group);
        job_monitor_phase(js, r->probs_out ? "predict" : "validate");
    }
    if (!rc && got < 0)
        rc = err->code;
    if (!rc)
        rc = job_sum(js, sums, 2, err);
    if (!rc && r->probs_out && js->g_size > 1)
        rc = fl_group_gather_rows(js->group, mine, r->probs, n, C, err);
    free(own);
    if (rc)
        return rc;
    if (r->loss)
        *r->loss = n ? sums[0] / (double)n : 0;
    if (r->acc)
        *r->acc = n ? sums[1] / (double)n : 0;
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
        job_predict_req val = {.loader = js->data->train_loader,
                               .rows = js->val_rows,
                               .n = js->n_val,
                               .labels = js->env->train_labels,
                               .loss = &vl,
                               .acc = &va};
        if ((rc = job_predict(js, &val, err)))
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
    job_predict_req oof_req = {.loader = js->data->train_loader,
                               .rows = js->val_rows,
                               .n = js->n_val,
                               .use_tta = 1,
                               .labels = js->env->train_labels,
                               .probs_out = 1,
                               .probs = oof,
                               .acc = &oof_acc};
    job_predict_req test_req = {
        .loader = js->data->test_loader, .rows = test_rows, .n = n_test, .use_tta = 1, .probs_out = 1, .probs = test};
    if (!(rc = job_predict(js, &oof_req, err)) && !(rc = job_predict(js, &test_req, err)))
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
