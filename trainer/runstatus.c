/* runstatus.c -- see runstatus.h. */
#include "trainer/runstatus.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vote/manifest.h"
#include "base/progress.h"

const char *fl_run_state_name(fl_run_state s)
{
    static const char *const names[] = {"done", "running", "stopped", "failed", "pending"};
    return s < FL_RUN_NSTATES ? names[s] : "?";
}

/* metrics.csv: the epochs done, the best ones, and the seconds they took. */
static void runstatus_metrics(const char *dir, fl_run_job *j, double *seconds)
{
    char path[4200], line[512];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "r");
    *seconds = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        int e;
        double lr, tl, ta, vl, va, s, ips;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &e, &lr, &tl, &ta, &vl, &va, &s, &ips) != 8)
            continue;
        j->epochs_done++;
        *seconds += s;
        if (j->best_acc < 0 || va > j->best_acc) {
            j->best_acc = va;
            j->best_acc_epoch = e;
        }
        if (j->best_loss < 0 || vl < j->best_loss) {
            j->best_loss = vl;
            j->best_loss_epoch = e;
        }
    }
    fclose(f);
}

/* settings.txt's "models.<name>.epochs = N", or -1. */
static int runstatus_settings_epochs(const char *dir)
{
    char path[4200], line[1024];
    snprintf(path, sizeof path, "%s/settings.txt", dir);
    FILE *f = fopen(path, "r");
    int epochs = -1;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, ".epochs = ");
        if (!strncmp(line, "models.", 7) && p)
            epochs = atoi(p + 10);
    }
    if (f)
        fclose(f);
    return epochs;
}

/* A running record: is its writer gone? On its own host the process table
 * says; elsewhere the heartbeat's age does. */
static int runstatus_gone(const fl_run_job *j, const char *host)
{
    const fl_jobstatus *st = &j->st;
    if (!strcmp(st->host, host) && st->pid > 0 && kill((pid_t)st->pid, 0) != 0 && errno == ESRCH)
        return 1;
    double beat = st->heartbeat_s > 0 ? st->heartbeat_s : 30;
    return j->age_s > 3 * beat + 60;
}

static void runstatus_job(const char *run_dir, const char *host, double now, fl_run_job *j, double *seconds)
{
    char dir[4200], path[4300];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/%s/fold%d", run_dir, j->model, j->fold);
    j->best_acc = j->best_loss = -1;
    j->age_s = j->left_s = -1;
    j->epochs = -1;
    fl_error ignored;
    j->have_status = fl_jobstatus_read(dir, &j->st, &ignored) == 1;
    if (j->have_status && j->st.heartbeat > 0)
        j->age_s = now - j->st.heartbeat > 0 ? now - j->st.heartbeat : 0;
    snprintf(path, sizeof path, "%s/last.pt", dir);
    j->have_ckpt = fl_checkpoint_progress(path, &j->ckpt_epoch, &j->ckpt_step, &ignored) == 1;
    runstatus_metrics(dir, j, seconds);
    j->epochs = j->have_status && j->st.epochs > 0 ? j->st.epochs : runstatus_settings_epochs(dir);
    snprintf(path, sizeof path, "%s/preds.h5", dir);
    const char *s = j->have_status ? j->st.state : "";
    if (stat(path, &sb) == 0)
        j->state = FL_RUN_DONE;
    else if (!strcmp(s, "failed"))
        j->state = FL_RUN_FAILED;
    else if (!strcmp(s, "running") && !(j->gone = runstatus_gone(j, host)))
        j->state = FL_RUN_RUNNING;
    else
        j->state = j->have_ckpt ? FL_RUN_STOPPED : FL_RUN_PENDING;
}

/* Seconds left of job j at the model's seconds per epoch (-1 unknown). */
static double runstatus_left(const fl_run_job *j, double epoch_s, int epochs)
{
    if (j->state == FL_RUN_DONE)
        return 0;
    if (j->state == FL_RUN_RUNNING) {
        if (j->st.eta_job_s < 0)
            return -1;
        double left = j->st.eta_job_s - (j->age_s > 0 ? j->age_s : 0);
        return left > 0 ? left : 0;
    }
    if (epoch_s < 0 || epochs < 0)
        return -1;
    int done = j->have_ckpt ? j->ckpt_epoch : 0;
    return (epochs - done > 0 ? epochs - done : 0) * epoch_s;
}

/* The run's ETA: running jobs hold their groups, the others queue in order. */
static double runstatus_eta(const fl_run_status *rs)
{
    int slots = rs->groups > rs->count[FL_RUN_RUNNING] ? rs->groups : rs->count[FL_RUN_RUNNING];
    if (slots < 1)
        slots = 1;
    double *end = calloc((size_t)slots, sizeof *end), eta = 0;
    if (!end)
        return -1;
    int used = 0;
    for (int i = 0; i < rs->n_jobs && eta >= 0; i++) {
        const fl_run_job *j = &rs->jobs[i];
        if (j->state != FL_RUN_RUNNING)
            continue;
        if (j->left_s < 0)
            eta = -1;
        else
            end[used++] = j->left_s;
    }
    for (int i = 0; i < rs->n_jobs && eta >= 0; i++) {
        const fl_run_job *j = &rs->jobs[i];
        if (j->state != FL_RUN_STOPPED && j->state != FL_RUN_PENDING)
            continue;
        if (j->left_s < 0) {
            eta = -1;
            break;
        }
        int best = 0;
        for (int s = 1; s < slots; s++)
            best = end[s] < end[best] ? s : best;
        end[best] += j->left_s;
    }
    for (int s = 0; s < slots && eta >= 0; s++)
        eta = end[s] > eta ? end[s] : eta;
    free(end);
    return eta;
}

fl_code fl_run_status_scan(const char *run_dir, int groups, fl_run_status *rs, fl_error *err)
{
    memset(rs, 0, sizeof *rs);
    char path[4200];
    snprintf(path, sizeof path, "%s/run.cfg", run_dir);
    fl_manifest *m = calloc(1, sizeof *m);
    if (!m)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = fl_manifest_read(path, m, err);
    if (rc) {
        free(m);
        return rc;
    }
    rs->n_jobs = m->n_models * m->n_folds;
    if (!(rs->jobs = calloc((size_t)rs->n_jobs, sizeof *rs->jobs))) {
        free(m);
        return fl_fail(err, FL_ENOMEM, "out of memory");
    }
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    double now = fl_progress_wall(), latest = -1;
    int latest_groups = 1;
    char launches[64][300];
    int n_launch = 0, running_groups = 0;
    for (int mi = 0; mi < m->n_models; mi++) {
        double seconds = 0;
        int epochs_measured = 0, epochs = -1;
        fl_run_job *first = &rs->jobs[mi * m->n_folds];
        for (int k = 0; k < m->n_folds; k++) {
            fl_run_job *j = &first[k];
            double s;
            snprintf(j->model, sizeof j->model, "%s", m->models[mi].name);
            j->fold = m->folds[k];
            runstatus_job(run_dir, host, now, j, &s);
            seconds += s;
            epochs_measured += j->epochs_done;
            epochs = j->epochs > 0 ? j->epochs : epochs;
            rs->count[j->state]++;
            if (j->have_status && j->st.heartbeat > latest && j->st.groups > 0) {
                latest = j->st.heartbeat;
                latest_groups = j->st.groups;
            }
            int seen = 0; /* each running train process's groups once */
            for (int l = 0; l < n_launch && j->state == FL_RUN_RUNNING; l++)
                seen |= !strcmp(launches[l], j->st.launch);
            if (j->state == FL_RUN_RUNNING && !seen && n_launch < 64) {
                snprintf(launches[n_launch++], sizeof launches[0], "%s", j->st.launch);
                running_groups += j->st.groups > 0 ? j->st.groups : 1;
            }
        }
        double epoch_s = epochs_measured ? seconds / epochs_measured : -1;
        for (int k = 0; k < m->n_folds; k++) {
            first[k].epochs = epochs;
            first[k].left_s = runstatus_left(&first[k], epoch_s, epochs);
        }
    }
    free(m);
    rs->groups = groups > 0 ? groups : running_groups > 0 ? running_groups : latest_groups;
    rs->eta_s = rs->count[FL_RUN_DONE] == rs->n_jobs ? 0 : runstatus_eta(rs);
    return FL_OK;
}

void fl_run_status_free(fl_run_status *rs)
{
    free(rs->jobs);
    rs->jobs = NULL;
}
