/* job_monitor.c -- what a job's leader tells the people watching it: a
 * progress line every run.progress_s seconds while an epoch trains (one line
 * rewritten in place on a terminal, plain lines in a log), status.txt's
 * heartbeat for `foldline status` (trainer/jobstatus.h), and the TensorBoard
 * scalars beside metrics.csv (trainer/tfevents.h). Nothing here is
 * collective: every decision is the leader's own, by its own clock, so that
 * no rank ever waits for another's timer. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "trainer/job_internal.h"

/* status.txt is rewritten at most this often, whatever run.progress_s says,
 * and this often when the progress lines are off. */
#define MONITOR_MIN_BEAT_S 1.0
#define MONITOR_OFF_BEAT_S 30.0

static void monitor_beat(job_state *js, const char *state, const char *phase)
{
    job_monitor *m = &js->mon;
    snprintf(m->st.state, sizeof m->st.state, "%s", state);
    snprintf(m->st.phase, sizeof m->st.phase, "%s", phase);
    m->st.heartbeat = fl_progress_wall();
    m->next_beat = fl_progress_now() + m->beat_s;
    fl_error ignored; /* the heartbeat is advisory: a write that fails (a full disk) is met again at last.pt */
    fl_jobstatus_write(js->dir, &m->st, &ignored);
}

void job_monitor_start(job_state *js, int lines)
{
    job_monitor *m = &js->mon;
    const fl_job_env *env = js->env;
    double p = env->cfg->progress_s;
    memset(m, 0, sizeof *m);
    fl_ticker_init(&m->ticker, lines && js->leader ? js->log : NULL, p);
    m->beat_s = p > 0 ? (p > MONITOR_MIN_BEAT_S ? p : MONITOR_MIN_BEAT_S) : MONITOR_OFF_BEAT_S;
    m->train_s = m->val_s = -1;
    m->epoch = -1;
    if (!js->leader)
        return;
    fl_jobstatus *st = &m->st;
    fl_jobstatus_clear(st);
    gethostname(st->host, sizeof st->host - 1);
    st->pid = (long)getpid();
    st->rank = env->world_rank;
    st->ranks = js->g_size;
    st->groups = env->groups > 0 ? env->groups : 1;
    snprintf(st->launch, sizeof st->launch, "%s", env->launch);
    st->heartbeat_s = m->beat_s;
    st->epochs = js->mc->epochs;
    st->epoch = 0;
    monitor_beat(js, "running", "train");
}

void job_monitor_free(job_state *js)
{
    fl_tfevents_close(js->mon.tf);
    js->mon.tf = NULL;
}

fl_code job_monitor_epoch_start(job_state *js, int epoch, int64_t steps, int64_t step, int64_t rows, fl_error *err)
{
    job_monitor *m = &js->mon;
    m->epoch = epoch;
    m->steps = steps;
    m->t0 = fl_progress_now();
    m->step0 = step;
    m->rows0 = rows;
    m->loss = m->correct = 0;
    m->n = 0;
    m->ips = 0;
    m->st.epoch = epoch;
    m->st.step = step;
    m->st.steps = steps;
    if (!js->leader || m->tf)
        return FL_OK;
    return fl_tfevents_open(js->dir, epoch, (int64_t)epoch * steps + step, &m->tf, err);
}

/* Seconds left in the epoch's training, and in the whole job (the epoch's
 * validation, the epochs after it, the prediction of the OOF and test rows),
 * from this process's measured speed; < 0 when nothing was measured yet. */
static void monitor_eta(const job_state *js, int64_t step, double now, double *epoch_s, double *job_s)
{
    const job_monitor *m = &js->mon;
    *epoch_s = *job_s = -1;
    if (step <= m->step0 || now <= m->t0)
        return;
    double per_step = (now - m->t0) / (double)(step - m->step0);
    *epoch_s = per_step * (double)(m->steps - step);
    double train_s = m->train_s >= 0 ? m->train_s : per_step * (double)m->steps;
    /* Validation runs forward only: about a third of a training step per row, until measured. */
    double per_val_row = m->val_s >= 0 && js->n_val ? m->val_s / (double)js->n_val
                                                    : train_s / (double)(js->n_train ? js->n_train : 1) / 3.0;
    double val_s = per_val_row * (double)js->n_val;
    double predict_s = per_val_row * (double)(js->n_val + js->data->info.n_test) * (1 + js->mc->n_tta);
    int after = js->mc->epochs - m->epoch - 1;
    *job_s = *epoch_s + val_s + (after > 0 ? after : 0) * (train_s + val_s) + predict_s;
}

void job_monitor_line(const job_state *js, const char *who, char *buf, size_t cap)
{
    const job_monitor *m = &js->mon;
    char e[32], j[32];
    fl_progress_duration(m->st.eta_epoch_s, e, sizeof e);
    fl_progress_duration(m->st.eta_job_s, j, sizeof j);
    snprintf(buf, cap, "[%s] epoch %d/%d step %lld/%lld | %.0f img/s | loss %.4f acc %.4f | ETA epoch %s, job %s", who,
             m->epoch + 1, js->mc->epochs, (long long)m->st.step, (long long)m->steps, m->ips,
             m->n ? m->loss / (double)m->n : 0.0, m->n ? m->correct / (double)m->n : 0.0, e, j);
}

fl_code job_monitor_step(job_state *js, int64_t step, int64_t rows, double loss, double correct, int64_t n,
                         fl_error *err)
{
    job_monitor *m = &js->mon;
    if (!js->leader)
        return FL_OK;
    m->loss += loss;
    m->correct += correct;
    m->n += n;
    double now = fl_progress_now();
    int line = fl_ticker_due(&m->ticker, now), beat = now >= m->next_beat;
    int tick = js->mon.tf && js->env->cfg->progress_s > 0 && now - m->ticker.last >= js->env->cfg->progress_s;
    if (!line && !beat && !tick)
        return FL_OK;
    m->ips = now > m->t0 ? (double)(rows - m->rows0) / (now - m->t0) : 0;
    m->st.step = step;
    m->st.images_per_s = m->ips;
    m->st.loss = m->n ? m->loss / (double)m->n : 0;
    m->st.acc = m->n ? m->correct / (double)m->n : 0;
    monitor_eta(js, step, now, &m->st.eta_epoch_s, &m->st.eta_job_s);
    fl_code rc = FL_OK;
    if (tick) { /* also marks the interval when no line is printed (a fused head) */
        int64_t g = (int64_t)m->epoch * m->steps + step;
        if (!m->ticker.out)
            m->ticker.last = now;
        if ((rc = fl_tfevents_scalar(m->tf, "tick/train_loss", g, m->st.loss, err)) ||
            (rc = fl_tfevents_scalar(m->tf, "tick/train_acc", g, m->st.acc, err)) ||
            (rc = fl_tfevents_scalar(m->tf, "tick/images_per_s", g, m->ips, err)))
            return rc;
    }
    if (line) {
        char who[128], text[512];
        snprintf(who, sizeof who, "%s fold %d", js->mc->name, js->job.fold);
        job_monitor_line(js, who, text, sizeof text);
        fl_ticker_print(&m->ticker, now, text);
    }
    if (beat)
        monitor_beat(js, "running", "train");
    return rc;
}

void job_monitor_phase(job_state *js, const char *phase)
{
    if (js->leader && fl_progress_now() >= js->mon.next_beat)
        monitor_beat(js, "running", phase);
}

fl_code job_monitor_epoch_end(job_state *js, int epoch, double lr, double tl, double ta, double vl, double va,
                              double ips, double secs, double vsecs, fl_error *err)
{
    job_monitor *m = &js->mon;
    m->train_s = secs;
    m->val_s = vsecs;
    if (!js->leader)
        return FL_OK;
    fl_ticker_clear(&m->ticker);
    fl_code rc = FL_OK;
    if (!m->tf && (rc = fl_tfevents_open(js->dir, epoch, (int64_t)epoch * m->steps + m->steps, &m->tf, err)))
        return rc;
    const char *tags[] = {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "images_per_s"};
    double v[] = {tl, ta, vl, va, lr, ips};
    for (int i = 0; i < 6 && !rc; i++)
        rc = fl_tfevents_scalar(m->tf, tags[i], epoch, v[i], err);
    if (!rc)
        rc = fl_tfevents_sync(m->tf, err);
    m->st.epoch = epoch + 1;
    m->st.step = 0;
    m->st.images_per_s = ips;
    m->st.loss = tl;
    m->st.acc = ta;
    double per_val_row = js->n_val ? vsecs / (double)js->n_val : 0;
    int after = js->mc->epochs - epoch - 1;
    m->st.eta_epoch_s = after > 0 ? secs : 0;
    m->st.eta_job_s =
        after * (secs + vsecs) + per_val_row * (double)(js->n_val + js->data->info.n_test) * (1 + js->mc->n_tta);
    monitor_beat(js, "running", after > 0 ? "train" : "predict");
    return rc;
}

void job_monitor_end(job_state *js, const char *state, const fl_error *err)
{
    job_monitor *m = &js->mon;
    fl_ticker_clear(&m->ticker);
    if (!js->env) /* job_init never ran */
        return;
    if (!js->leader && strcmp(state, "failed") != 0)
        return;
    if (!js->leader || m->beat_s == 0) { /* another rank's failure (its own line, under its name), or one before
                                             job_monitor_start */
        fl_jobstatus_clear(&m->st);
        gethostname(m->st.host, sizeof m->st.host - 1);
        m->st.pid = (long)getpid();
        m->st.rank = js->env->world_rank;
        m->st.ranks = js->g_size;
        m->st.epochs = js->mc->epochs;
        m->st.epoch = js->prog.epoch;
    }
    if (err)
        snprintf(m->st.error, sizeof m->st.error, "%s", err->msg);
    if (!strcmp(state, "done")) {
        m->st.epoch = js->mc->epochs;
        m->st.eta_epoch_s = m->st.eta_job_s = 0;
    }
    char phase[sizeof m->st.phase];
    snprintf(phase, sizeof phase, "%s", m->st.phase[0] ? m->st.phase : "train");
    monitor_beat(js, state, phase);
}
