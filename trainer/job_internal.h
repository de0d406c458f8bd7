/* job_internal.h -- what trainer/job.c (one job: a model on one fold) and
 * trainer/fused.c (a frozen model's folds from one backbone pass) share: the
 * state of one fold's job and the steps around its training loop
 * (checkpoints, resume, the epoch's bookkeeping, predictions). Not a public
 * API: only trainer/job*.c and trainer/fused*.c include it.
 */
#ifndef FOLDLINE_JOB_INTERNAL_H
#define FOLDLINE_JOB_INTERNAL_H

#include "trainer/jobstatus.h"
#include "base/progress.h"
#include "trainer/job.h"
#include "trainer/order.h"
#include "trainer/tfevents.h"
#include "trainer/torch/bridge.h"

/* Where a job stands, saved in every checkpoint beside the model (as text,
 * see job_progress_text), so that a rerun continues exactly there. The
 * shuffles and augmentation draws are functions of (seed, epoch, row), so the
 * epoch and step are the whole random state. */
typedef struct {
    int epoch;                  /* the epoch in progress, 0-based; epochs once training is done */
    int64_t step;               /* global batches of that epoch already trained */
    double loss_sum, correct;   /* of those batches, summed over the group */
    double seconds;             /* training time of those batches */
    double best_loss, best_acc; /* validation, over the finished epochs */
    int best_loss_epoch, best_acc_epoch;
} job_progress;

#define JOB_TEXT_MAX (1 << 20) /* bytes: a job's progress and its metrics.csv so far */

/* What a job's leader tells the people watching it (trainer/job_monitor.c):
 * progress lines, status.txt's heartbeat, the TensorBoard scalars. Rates
 * and ETAs are measured in this process (a resumed epoch from its restart). */
typedef struct {
    fl_ticker ticker;         /* progress lines on the log (off for a fused job's heads: fused.c has its own) */
    double beat_s, next_beat; /* status.txt's heartbeat interval, and when the next is due (monotonic s) */
    fl_tfevents *tf;          /* opened at the first epoch this process trains */
    int epoch;                /* the epoch in progress */
    int64_t steps;            /* its batches */
    double t0;                /* when this process started training it (monotonic s) */
    int64_t step0, rows0;     /* its batch and row position then */
    double loss, correct;     /* this rank's sums over its rows (n) of the epoch in this process */
    int64_t n;
    double ips;            /* images per second of the epoch so far */
    double train_s, val_s; /* the last finished epoch's training and validation seconds; < 0: none yet */
    fl_jobstatus st;       /* the status.txt last written */
} job_monitor;

/* Everything one job keeps while it runs. */
typedef struct {
    const fl_job_env *env;
    const fl_model_cfg *mc;
    const fl_job_data *data; /* the model's data file */
    fl_job job;
    uint64_t seed;       /* the job's: its head's weights (and a trained model's shuffles, draws) */
    uint64_t model_seed; /* the model's (fl_order_model_seed): a frozen model's backbone, batches, draws */
    int frozen;          /* the backbone is frozen: trainer/order.h's shared batches */
    char dir[4096];
    fl_model *model;
    int64_t *train_rows, n_train; /* rows whose fold != k */
    int64_t *val_rows, n_val;     /* rows whose fold == k, ascending */
    fl_order order;               /* this epoch's batches of train rows */
    int32_t *labels_buf;          /* (batch) labels of the current batch */
    fl_augment *aug;              /* (batch) */
    char *metrics;                /* metrics.csv text so far */
    size_t metrics_len;
    fl_group *group;    /* NULL: alone */
    int g_rank, g_size; /* this rank in the job's group */
    int leader;         /* group rank 0: writes the files and the log */
    FILE *log;          /* env->log on the leader, else NULL */
    job_progress prog;
    double comm_seconds;    /* this epoch's time in the gradient all-reduce (data-parallel): in all */
    double comm_exposed;    /* of it, waited after backward (all of it without dist.overlap) */
    int comm_buckets;       /* dist.overlap: the model's buckets; 0: one all-reduce after backward */
    double last_checkpoint; /* job_now_s() of the last checkpoint (run.checkpoint_minutes) */
    int fault_epoch;        /* fault injection for the tests: FOLDLINE_FAULT_NONFINITE="EPOCH:STEP" */
    int64_t fault_step;     /* (1-based epoch, step as logged) counts as a non-finite loss; else -1 */
    job_monitor mon;
} job_state;

/* What every rank of a group must agree on after a step's backward pass. */
enum { STEP_NONFINITE = 1, STEP_STOP = 2, STEP_CHECKPOINT = 4 };

double job_now_s(void);

/* The job's directory, settings.txt, rows and buffers (batch rows); the model
 * comes after, from job_model_new. job_free releases everything. */
fl_code job_init(job_state *js, const fl_job_env *env, const fl_job *job, fl_error *err);
void job_free(job_state *js);
/* The model, its initial weights the same on every rank; a frozen backbone
 * is backbone_of's when that is not NULL. */
fl_code job_model_new(job_state *js, const fl_model *backbone_of, fl_error *err);

fl_code job_sync(job_state *js, int what, fl_error *err);
fl_code job_sum(job_state *js, double *v, int n, fl_error *err);

/* ---- trainer/job_checkpoint.c: checkpoints, resuming, the stop message -------- */

fl_code job_save(job_state *js, const char *name, fl_error *err);
/* last.pt at batch `step` of the epoch in progress, with the epoch's sums so
 * far: this rank's (job_save_mid_epoch sums them over the group first) or
 * already the group's (job_save_at). */
fl_code job_save_mid_epoch(job_state *js, int64_t step, double loss_sum, double correct, double seconds, fl_error *err);
fl_code job_save_at(job_state *js, int64_t step, double loss_sum, double correct, double seconds, fl_error *err);
fl_code job_resume(job_state *js, fl_error *err);
fl_code job_stopped(job_state *js, int epoch, int64_t step, fl_error *err);
/* What stopped this rank, for the message: "SIGTERM", ..., or another rank's signal. */
const char *job_stop_cause(void);
/* Loads a checkpoint's weights on the leader, which sends them to the group
 * (for prediction: the optimizer's state is let go). */
fl_code job_load_weights(job_state *js, const char *name, fl_error *err);

/* ---- trainer/job_epoch.c: one training epoch ------------------------------------ */

/* The train rows' order of `epoch` from the previous one; job_resume
 * replays them. */
void job_shuffle(job_state *js, int epoch);
/* The group's flags (STEP_*) after a step: the sum of every rank's mine. */
fl_code job_step_flags(job_state *js, int mine, int *flags, fl_error *err);
/* Starts ld on o's batches from batch `step` on, this rank's shard of each. */
fl_code job_loader_start(fl_loader *ld, const fl_order *o, int64_t step, int shard, int n_shards, fl_error *err);
/* Trains the epoch from batch js->prog.step on: the mean training loss and
 * accuracy over the job's train rows, and the epoch's training seconds. */
fl_code job_train_epoch(job_state *js, int epoch, double *loss, double *acc, double *seconds, fl_error *err);

/* ---- trainer/job.c: the epoch's end and the predictions ----------------------- */

/* The end of an epoch whose training and validation are done: metrics.csv's
 * row, the best checkpoints, then last.pt, and the log line. */
fl_code job_end_epoch(job_state *js, int epoch, double lr, double tl, double ta, double vl, double va, double secs,
                      double vsecs, fl_error *err);
/* After job_end_epoch of epoch (not the last): the group agrees on a stop. */
fl_code job_stop_between_epochs(job_state *js, int epoch, fl_error *err);

/* Loads the checkpoint predict_with names (for prediction; the optimizer's
 * state goes), *epoch the epoch it holds. */
fl_code job_load_predict_weights(job_state *js, int *epoch, fl_error *err);
/* Writes preds.h5 (on the leader): oof (n_val, C) and test (n_test, C). */
fl_code job_write_preds(job_state *js, int epoch, const float *oof, const float *test, double oof_acc, fl_error *err);

/* ---- trainer/job_monitor.c: progress lines, status.txt, TensorBoard ------------ */

/* In job_init: the ticker (lines = 0: none, a fused job's head) and the
 * heartbeat; status.txt says "running". job_monitor_free closes. */
void job_monitor_start(job_state *js, int lines);
void job_monitor_free(job_state *js);
/* An epoch's training starts (or resumes) at batch step of steps, row
 * position rows. The first call opens the TensorBoard file, cutting what
 * earlier runs wrote past this point. */
fl_code job_monitor_epoch_start(job_state *js, int epoch, int64_t steps, int64_t step, int64_t rows, fl_error *err);
/* After batch `step` (1-based count of batches done) whose end is row
 * position rows: this rank's summed loss and correct count over its n rows
 * of it. Prints a line, writes a tick and the heartbeat when due. */
fl_code job_monitor_step(job_state *js, int64_t step, int64_t rows, double loss, double correct, int64_t n,
                         fl_error *err);
/* The progress line's text of the epoch so far (for fused.c, which prints
 * one line for all its heads). */
void job_monitor_line(const job_state *js, const char *who, char *buf, size_t cap);
/* Validation or prediction: the heartbeat only, phase "validate"/"predict". */
void job_monitor_phase(job_state *js, const char *phase);
/* The end of an epoch (before last.pt): its scalars, fsynced, and the heartbeat. */
fl_code job_monitor_epoch_end(job_state *js, int epoch, double lr, double tl, double ta, double vl, double va,
                              double ips, double secs, double vsecs, fl_error *err);
/* The job's last state: "done", "stopped" or "failed" (with err's line). */
void job_monitor_end(job_state *js, const char *state, const fl_error *err);

#endif
