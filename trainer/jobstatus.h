/* jobstatus.h -- RUN_DIR/<model>/fold<k>/status.txt: what a job is doing, for
 * `foldline status` on any host that sees the run directory.
 *
 * The group leader of a running job rewrites it (temporary file, rename) at
 * every heartbeat (run.progress_s, at least 1 s apart; every 30 s when the
 * progress lines are off) and at every epoch's end; a job that stops on a
 * signal, fails or completes writes its last state. One "key value" line
 * each, after the first line "foldline-status 1":
 *
 *   state running            running | stopped | failed | done
 *   phase train              train | validate | predict
 *   host node07              the writer's host name, pid and world rank
 *   pid 41235
 *   rank 4
 *   ranks 2                  ranks in the job's group
 *   groups 8                 rank groups of the train process
 *   launch node01:41231      world rank 0's host:pid: which train process
 *   heartbeat 1718000000.25  seconds since 1970 (the writer's clock)
 *   heartbeat_s 30           seconds between heartbeats
 *   epoch 2                  the epoch in progress, 0-based; epochs when training is done
 *   epochs 10
 *   step 37                  batches of that epoch done, of steps
 *   steps 120
 *   images_per_s 812.4       training images per second of this epoch so far
 *   loss 0.4312              the epoch's training loss and accuracy so far (the writer's shard)
 *   acc 0.8512
 *   eta_epoch_s 101.5        seconds left in this epoch, and in the whole job
 *   eta_job_s 1345.0
 *   error job m fold 3: ...  (failed only) the error line
 *
 * Readers take what they find: a missing key keeps its default (-1 or "").
 * Nothing here takes a lock; a reader never writes.
 */
#ifndef FOLDLINE_JOBSTATUS_H
#define FOLDLINE_JOBSTATUS_H

#include <stdint.h>

#include "base/error.h"

typedef struct {
    char state[16], phase[16];
    char host[256];
    long pid;
    int rank, ranks, groups;
    char launch[300];
    double heartbeat, heartbeat_s;
    int epoch, epochs;
    int64_t step, steps;
    double images_per_s, loss, acc;
    double eta_epoch_s, eta_job_s;
    char error[FL_ERROR_MSG_MAX];
} fl_jobstatus;

/* Every field unknown: numbers -1, strings "". */
void fl_jobstatus_clear(fl_jobstatus *s);

/* Writes dir/status.txt atomically. */
fl_code fl_jobstatus_write(const char *dir, const fl_jobstatus *s, fl_error *err);

/* Reads dir/status.txt: 1 when it was there and is a status file, 0 when
 * there is none (s cleared), -1 when it could not be read or is not one (s
 * cleared, err says why). */
int fl_jobstatus_read(const char *dir, fl_jobstatus *s, fl_error *err);

/* The job progress a checkpoint (last.pt, a libtorch zip archive) holds,
 * read without libtorch: the pickled "job" record's "epoch" and "step"
 * (trainer/job.c). 1 when found, 0 when path does not exist, -1 when it is
 * not a foldline checkpoint (err says why). */
int fl_checkpoint_progress(const char *path, int *epoch, int64_t *step, fl_error *err);

#endif
