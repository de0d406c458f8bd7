/* runstatus.h -- where every job of a run stands, read from the run
 * directory alone: `foldline status` and the run ETA of `foldline train`.
 *
 * For each model x fold of RUN_DIR/run.cfg: preds.h5 (done), status.txt
 * (running, stopped, failed: trainer/jobstatus.h), last.pt (resumable: its
 * epoch and step), metrics.csv (the best epochs, seconds per epoch) and
 * settings.txt (the epochs). A "running" record whose writer is gone (on
 * this host: no such process) or silent for longer than 3 heartbeats + 60 s
 * counts as stopped (with a last.pt) or pending. Only reads files: no lock
 * is taken, nothing is written.
 *
 * The run's ETA: each running job's own ETA, then the other jobs (stopped,
 * pending) in the run's order, each given to the rank group free first, at
 * the model's measured seconds per epoch. Unknown (-1) while a model to come
 * has no epoch measured yet.
 */
#ifndef FOLDLINE_RUNSTATUS_H
#define FOLDLINE_RUNSTATUS_H

#include <stdint.h>

#include "base/error.h"
#include "trainer/jobstatus.h"

typedef enum {
    FL_RUN_DONE,
    FL_RUN_RUNNING,
    FL_RUN_STOPPED,
    FL_RUN_FAILED,
    FL_RUN_PENDING,
    FL_RUN_NSTATES
} fl_run_state;

typedef struct {
    char model[64];
    int fold;
    fl_run_state state;
    int have_status; /* status.txt was read into st */
    fl_jobstatus st;
    double age_s;   /* seconds since its heartbeat; -1 none */
    int gone;       /* a "running" record whose process is known gone, or silent too long */
    int have_ckpt;  /* last.pt's progress: */
    int ckpt_epoch; /* 0-based epoch in progress (epochs: training done) */
    int64_t ckpt_step;
    int epochs;                          /* the model's epochs; -1 unknown */
    int epochs_done;                     /* rows of metrics.csv */
    double best_acc, best_loss;          /* validation; -1 when no epoch yet */
    int best_acc_epoch, best_loss_epoch; /* 0-based */
    double left_s;                       /* estimated seconds to completion; -1 unknown */
} fl_run_job;

typedef struct {
    int n_jobs;
    fl_run_job *jobs; /* model-major, folds in run.cfg's order */
    int count[FL_RUN_NSTATES];
    int groups;   /* the rank groups the ETA assumes */
    double eta_s; /* the run's: -1 unknown, 0 when done */
} fl_run_status;

/* Reads run_dir. groups > 0: the rank groups to assume (train's own);
 * 0: the running train processes' (status.txt), else the last known. */
fl_code fl_run_status_scan(const char *run_dir, int groups, fl_run_status *rs, fl_error *err);
void fl_run_status_free(fl_run_status *rs);
const char *fl_run_state_name(fl_run_state s);

#endif
