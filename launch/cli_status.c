/* cli_status.c -- `foldline status RUN_DIR [--watch N]`: where every model x
 * fold job of a run stands (trainer/runstatus.h), from any host that sees the
 * run directory, while the run goes on. It only reads files: no MPI, no
 * libtorch, no lock taken, nothing written. Exit status 0 when every job is
 * done, 3 when some are not, 2 on error, so that a script can wait on it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/progress.h"
#include "trainer/runstatus.h"
#include "launch/cli.h"

static const char *status_usage =
    "usage: foldline status RUN_DIR [--watch N]\n"
    "\n"
    "Shows every model x fold job of the run in RUN_DIR (out_dir/name of its config): done (best\n"
    "validation accuracy and loss, and their epochs), running (host, pid, rank, epoch and step,\n"
    "images/s, seconds since its last heartbeat, ETA), stopped and resumable (from its last.pt: epoch\n"
    "and step), failed (the error line) or pending; then the run's totals and ETA. It reads the run\n"
    "directory only (status.txt, last.pt, metrics.csv, preds.h5), so it works from any host while the\n"
    "run goes on, and writes nothing.\n"
    "\n"
    "  --watch N   redraw every N seconds (on a terminal: in place) until every job is done\n"
    "\n"
    "Exit status: 0 when every job is done, 3 when some are not, 2 on error.\n";

static volatile sig_atomic_t status_interrupted;

static void status_on_signal(int sig)
{
    (void)sig;
    status_interrupted = 1;
}

static void status_job_line(const fl_run_job *j, char *buf, size_t cap)
{
    char a[32], b[32];
    const fl_jobstatus *st = &j->st;
    size_t n = 0;
    switch (j->state) {
    case FL_RUN_DONE:
        if (j->best_acc >= 0)
            snprintf(buf, cap, "best val acc %.4f (epoch %d), best val loss %.4f (epoch %d)", j->best_acc,
                     j->best_acc_epoch + 1, j->best_loss, j->best_loss_epoch + 1);
        else
            snprintf(buf, cap, "preds.h5 written");
        return;
    case FL_RUN_RUNNING:
        fl_progress_duration(j->left_s, a, sizeof a);
        fl_progress_duration(st->eta_epoch_s - (j->age_s > 0 ? j->age_s : 0), b, sizeof b);
        n = (size_t)snprintf(buf, cap, "host %s pid %ld rank %d", st->host, st->pid, st->rank);
        if (st->ranks > 1)
            n += (size_t)snprintf(buf + n, cap - n, " (+%d)", st->ranks - 1);
        if (!strcmp(st->phase, "train") || !st->phase[0])
            n += (size_t)snprintf(buf + n, cap - n, " | epoch %d/%d step %lld/%lld | %.0f img/s", st->epoch + 1,
                                  st->epochs, (long long)st->step, (long long)st->steps, st->images_per_s);
        else
            n += (size_t)snprintf(buf + n, cap - n, " | %s%s, epoch %d/%d", st->phase,
                                  !strcmp(st->phase, "predict") ? "ing" : "",
                                  st->epoch < st->epochs ? st->epoch + 1 : st->epochs, st->epochs);
        n += (size_t)snprintf(buf + n, cap - n, " | heartbeat %.0f s ago | ETA %s", j->age_s, a);
        if (!strcmp(st->phase, "train") && n < cap)
            snprintf(buf + n, cap - n, " (epoch %s)", b);
        return;
    case FL_RUN_STOPPED:
        if (j->ckpt_epoch >= j->epochs && j->epochs > 0)
            n = (size_t)snprintf(buf, cap, "resumable from last.pt: training done, predicting next");
        else
            n = (size_t)snprintf(buf, cap, "resumable from last.pt at epoch %d/%d step %lld", j->ckpt_epoch + 1,
                                 j->epochs, (long long)j->ckpt_step);
        break;
    case FL_RUN_FAILED:
        snprintf(buf, cap, "%s", st->error[0] ? st->error : "(no error line)");
        return;
    case FL_RUN_PENDING:
    default:
        buf[0] = '\0';
        break;
    }
    if (j->gone)
        snprintf(buf + n, cap - n, "%s(was running on %s pid %ld: no heartbeat for %.0f s, the process is gone)",
                 n ? " " : "", st->host, st->pid, j->age_s);
}

/* Prints the table; returns 0 when every job is done, else 3. */
static int status_print(const char *run_dir, const fl_run_status *rs)
{
    int wm = 5;
    for (int i = 0; i < rs->n_jobs; i++)
        wm = (int)strlen(rs->jobs[i].model) > wm ? (int)strlen(rs->jobs[i].model) : wm;
    printf("%-*s  %4s  %-8s  %s\n", wm, "MODEL", "FOLD", "STATE", "DETAIL");
    for (int i = 0; i < rs->n_jobs; i++) {
        const fl_run_job *j = &rs->jobs[i];
        char detail[2048];
        status_job_line(j, detail, sizeof detail);
        printf("%-*s  %4d  %-8s  %s\n", wm, j->model, j->fold, fl_run_state_name(j->state), detail);
    }
    char eta[32];
    fl_progress_duration(rs->eta_s, eta, sizeof eta);
    printf("%s: %d job%s: %d done, %d running, %d stopped, %d failed, %d pending", run_dir, rs->n_jobs,
           rs->n_jobs == 1 ? "" : "s", rs->count[FL_RUN_DONE], rs->count[FL_RUN_RUNNING], rs->count[FL_RUN_STOPPED],
           rs->count[FL_RUN_FAILED], rs->count[FL_RUN_PENDING]);
    if (rs->count[FL_RUN_DONE] == rs->n_jobs)
        printf("; complete\n");
    else if (rs->count[FL_RUN_RUNNING] + rs->count[FL_RUN_STOPPED] + rs->count[FL_RUN_PENDING] == 0)
        printf("; nothing left to run until the failed jobs are fixed\n");
    else
        printf("; ETA %s%s (%d rank group%s)\n", eta, rs->eta_s < 0 ? " (a model has no epoch measured yet)" : "",
               rs->groups, rs->groups == 1 ? "" : "s");
    fflush(stdout);
    return rs->count[FL_RUN_DONE] == rs->n_jobs ? 0 : 3;
}

int cli_status(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    const char *run_dir = NULL;
    long watch = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(status_usage, stdout);
            return 0;
        } else if ((r = cli_opt_value(argc, argv, &i, "--watch", &v)) != 0) {
            if (r < 0) {
                fl_fail(&err, FL_EUSAGE, "status: --watch needs seconds HINT: --watch 10");
                return cli_report(&err);
            }
            if (cli_parse_int("status: --watch", v, 1, 86400, &watch, &err))
                return cli_report(&err);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(&err, FL_EUSAGE, "status: unknown option '%s' HINT: foldline status --help", argv[i]);
            return cli_report(&err);
        } else if (!run_dir) {
            run_dir = argv[i];
        } else {
            fl_fail(&err, FL_EUSAGE, "status: unexpected argument '%s' HINT: foldline status RUN_DIR [--watch N]",
                    argv[i]);
            return cli_report(&err);
        }
    }
    if (!run_dir) {
        fl_fail(&err, FL_EUSAGE,
                "status: needs a RUN_DIR HINT: foldline status runs/demo (out_dir/name of the config)");
        return cli_report(&err);
    }
    if (access(run_dir, F_OK) != 0) {
        fl_fail(&err, FL_EUSAGE,
                "status: %s does not exist HINT: the run directory is run.out_dir/run.name of the config", run_dir);
        return cli_report(&err);
    }
    int tty = isatty(fileno(stdout));
    if (watch) {
        signal(SIGINT, status_on_signal);
        signal(SIGTERM, status_on_signal);
    }
    for (;;) {
        fl_run_status rs;
        if (fl_run_status_scan(run_dir, 0, &rs, &err)) {
            fl_error_prefix(&err, "status");
            if (err.code != FL_ENOMEM)
                err.code = FL_EUSAGE; /* exit status 2: not a run, or an unreadable run.cfg */
            return cli_report(&err);
        }
        if (watch && tty)
            fputs("\033[H\033[2J", stdout);
        if (watch) {
            time_t t = time(NULL);
            char when[64];
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
            printf("foldline status %s, %s (every %ld s)\n", run_dir, when, watch);
        }
        int status = status_print(run_dir, &rs);
        fl_run_status_free(&rs);
        if (!watch || status == 0 || status_interrupted)
            return status;
        for (long s = 0; s < watch * 10 && !status_interrupted; s++)
            usleep(100000);
        if (status_interrupted)
            return status;
        if (!tty)
            printf("\n");
    }
}
