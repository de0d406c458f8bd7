/* job_checkpoint.c -- a job's checkpoints: the progress text last.pt keeps (epoch, step, the sums
 * so far, metrics.csv's rows), saving best and last, resuming from last.pt (or re-predicting when
 * only inference settings changed), loading a checkpoint's weights, and the stop message. See
 * job_internal.h; the training loop that calls these is in job.c. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/stop.h"
#include "base/tempfile.h"
#include "trainer/job_internal.h"
#include "trainer/settings.h"
#include "trainer/torch/bridge.h"

/* The progress and metrics.csv so far as the text a checkpoint keeps
 * (malloc'd). Doubles in %a: they come back bit for bit. */
static char *job_progress_text(const job_state *js)
{
    const job_progress *p = &js->prog;
    size_t n = 1024 + js->metrics_len;
    char *t = malloc(n);
    if (!t)
        return NULL;
    int k = snprintf(t, n,
                     "foldline-job 1\nepoch %d\nstep %lld\nloss_sum %a\ncorrect %a\nseconds %a\nbest_loss %a\n"
                     "best_acc %a\nbest_loss_epoch %d\nbest_acc_epoch %d\n",
                     p->epoch, (long long)p->step, p->loss_sum, p->correct, p->seconds, p->best_loss, p->best_acc,
                     p->best_loss_epoch, p->best_acc_epoch);
    double scale;
    int64_t good;
    if (fl_model_loss_scale(js->model, &scale, &good)) /* fp16: the loss scaler's state */
        k += snprintf(t + k, n - (size_t)k, "loss_scale %a %lld\n", scale, (long long)good);
    k += snprintf(t + k, n - (size_t)k, "metrics\n");
    memcpy(t + k, js->metrics ? js->metrics : "", js->metrics_len + 1);
    return t;
}

/* The inverse of job_progress_text; path names the checkpoint in errors. */
static fl_code job_progress_parse(job_state *js, const char *text, const char *path, fl_error *err)
{
    job_progress p;
    long long step;
    int used = 0;
    if (sscanf(text,
               "foldline-job 1\nepoch %d\nstep %lld\nloss_sum %la\ncorrect %la\nseconds %la\nbest_loss %la\n"
               "best_acc %la\nbest_loss_epoch %d\nbest_acc_epoch %d\n%n",
               &p.epoch, &step, &p.loss_sum, &p.correct, &p.seconds, &p.best_loss, &p.best_acc, &p.best_loss_epoch,
               &p.best_acc_epoch, &used) != 9 ||
        used == 0 || p.epoch < 0 || p.epoch > js->mc->epochs || step < 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: no job progress in this checkpoint HINT: foldline train CONFIG --restart starts the run "
                       "afresh",
                       path);
    /* fp16: the loss scaler's state, then the metrics; a model that scales its
     * loss needs the state, one that does not refuses it (the precision is a
     * setting: a change is refused before this). */
    double scale;
    long long good;
    int more = 0;
    if (sscanf(text + used, "loss_scale %la %lld\n%n", &scale, &good, &more) == 2 && more > 0) {
        fl_code rc = fl_model_set_loss_scale(js->model, scale, (int64_t)good, err);
        if (rc)
            return fl_error_prefix(err, "%s", path);
        used += more;
    } else if (fl_model_loss_scale(js->model, NULL, NULL)) {
        return fl_fail(err, FL_EINPUT,
                       "%s: no loss scale in this checkpoint of an fp16 model HINT: foldline train CONFIG --restart "
                       "starts the run afresh",
                       path);
    }
    if (strncmp(text + used, "metrics\n", 8) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: no job progress in this checkpoint HINT: foldline train CONFIG --restart starts the run "
                       "afresh",
                       path);
    used += 8;
    p.step = step;
    js->prog = p;
    free(js->metrics);
    js->metrics_len = strlen(text + used);
    if (!(js->metrics = malloc(js->metrics_len + 1)))
        return fl_fail(err, FL_ENOMEM, "out of memory");
    memcpy(js->metrics, text + used, js->metrics_len + 1);
    return FL_OK;
}

/* Saves a checkpoint (on the group's leader only: the weights are the same on
 * every rank): the model, its optimizer and the job's progress. */
fl_code job_save(job_state *js, const char *name, fl_error *err)
{
    js->last_checkpoint = job_now_s();
    if (!js->leader)
        return FL_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.pt", js->dir, name);
    char *text = job_progress_text(js);
    if (!text)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_tempfile t;
    fl_code rc = fl_tempfile_begin(&t, path, 1, err);
    if (!rc && (rc = fl_model_save(js->model, t.tmp_path, text, err))) {
        fl_tempfile_abort(&t);
        fl_error_prefix(err, "%s", path);
    } else if (!rc) {
        rc = fl_tempfile_commit(&t, err);
    }
    free(text);
    return rc;
}

/* Resumes from last.pt when the job has one: the leader reads it (and, in a
 * group, sends its bytes to every rank, which all load them: the optimizer's
 * state too). Leaves js->prog at the start when there is none. */
/* A job whose last.pt holds every epoch only predicts (after a changed
 * predict_with or tta, or a stop between the last epoch and preds.h5). */
static void job_say_repredict(const job_state *js)
{
    const fl_model_cfg *mc = js->mc;
    fl_job_log(js->log, mc->name, js->job.fold, "re-predicting with %s, tta [", fl_predict_with_name(mc->predict_with));
    for (int i = 0; i < mc->n_tta; i++)
        fprintf(js->log, "%s%s", i ? ", " : "", mc->tta[i] == FL_TTA_HFLIP ? "hflip" : "vflip");
    fprintf(js->log, "]; no training (last.pt holds all %d epochs)\n", mc->epochs);
}

fl_code job_resume(job_state *js, fl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/last.pt", js->dir);
    FILE *f = NULL;
    int have = js->leader && (f = fopen(path, "rb")) != NULL;
    fl_code rc = js->g_size > 1 ? fl_group_bcast_int(js->group, &have, err) : FL_OK;
    if (rc || !have) {
        if (f)
            fclose(f);
        return rc;
    }
    char *text = malloc(JOB_TEXT_MAX);
    void *bytes = NULL;
    size_t n = 0;
    if (!text)
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
    if (!rc && js->g_size > 1 && js->leader) { /* the whole file, to send it */
        long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
        if (len < 0 || fseek(f, 0, SEEK_SET) != 0 || !(bytes = malloc((size_t)len + 1)) ||
            fread(bytes, 1, (size_t)len, f) != (size_t)len)
            rc = fl_fail(err, FL_EIO, "cannot read %s", path);
        n = (size_t)len;
    }
    if (f)
        fclose(f);
    if (js->g_size > 1) {
        /* Every rank takes part in the broadcast, even after a local failure
         * (a failed rank sends nothing but still meets the others). */
        if (!rc)
            rc = fl_group_bcast_bytes(js->group, &bytes, &n, err);
        if (!rc)
            rc = fl_model_load_bytes(js->model, bytes, n, path, text, JOB_TEXT_MAX, err);
    } else if (!rc) {
        rc = fl_model_load(js->model, path, text, JOB_TEXT_MAX, err);
    }
    if (!rc)
        rc = job_progress_parse(js, text, path, err);
    free(text);
    free(bytes);
    if (rc)
        return rc;
    for (int e = 0; e < js->prog.epoch && e < js->mc->epochs; e++) /* the row order the epochs left */
        job_shuffle(js, e);
    if (js->log) {
        if (js->prog.epoch < js->mc->epochs)
            fl_job_log(js->log, js->mc->name, js->job.fold, "resumed from last.pt at epoch %d/%d, step %lld\n",
                       js->prog.epoch + 1, js->mc->epochs, (long long)js->prog.step);
        else
            job_say_repredict(js);
        fflush(js->log);
    }
    return FL_OK;
}

/* Loads a checkpoint's weights on the leader, which sends them to the group;
 * for prediction, so the optimizer's state is let go. */
fl_code job_load_weights(job_state *js, const char *name, fl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.pt", js->dir, name);
    fl_code rc = js->leader ? fl_model_load_weights(js->model, path, err) : FL_OK;
    if (rc)
        return fl_error_prefix(err, "%s", path);
    return job_sync(js, FL_STATE_PARAMS | FL_STATE_BUFFERS, err);
}

/* A checkpoint in the middle of an epoch: last.pt with the batches done so
 * far and their sums over the group. */
fl_code job_save_at(job_state *js, int64_t step, double loss_sum, double correct, double seconds, fl_error *err)
{
    job_progress keep = js->prog;
    js->prog.step = step;
    js->prog.loss_sum = loss_sum;
    js->prog.correct = correct;
    js->prog.seconds = seconds;
    fl_code rc = job_save(js, fl_predict_with_name(FL_PREDICT_LAST), err);
    js->prog = keep;
    return rc;
}

fl_code job_save_mid_epoch(job_state *js, int64_t step, double loss_sum, double correct, double seconds, fl_error *err)
{
    double sums[2] = {loss_sum, correct};
    fl_code rc = job_sum(js, sums, 2, err);
    return rc ? rc : job_save_at(js, step, sums[0], sums[1], seconds, err);
}

const char *job_stop_cause(void)
{
    int sig = fl_stop_requested();
    return sig == SIGUSR1  ? "SIGUSR1"
           : sig == SIGINT ? "SIGINT"
           : sig           ? "SIGTERM"
                           : "a signal to another rank of its group";
}

fl_code job_stopped(job_state *js, int epoch, int64_t step, fl_error *err)
{
    return fl_fail_job(err, FL_ESTOPPED,
                       "job %s fold %d: stopped by %s at epoch %d step %lld; %s/last.pt holds it HINT: rerun the same "
                       "command to resume",
                       js->mc->name, js->job.fold, job_stop_cause(), epoch + 1, (long long)step, js->dir);
}
