/* jobq.h -- the run's queue of jobs (models x folds.use): the rank groups
 * take jobs until none is left, so that a slow job never idles the others.
 *
 * A job is an index 0 .. n_jobs-1 in a fixed order (launch/ maps it to a
 * model and a fold); each index is handed out exactly once. Which group gets
 * which job depends on timing, so nothing a job computes may depend on it
 * (trainer/job.c derives every seed from the job alone).
 *
 * World rank 0 holds the queue and answers the other group leaders'
 * requests (point-to-point messages) whenever it enters the library: at
 * every training step and while it waits in a collective (fl_jobq_progress),
 * and to the end in fl_jobq_close. Nothing here needs MPI one-sided windows,
 * so the queue works on every transport Open MPI has, TCP included.
 */
#ifndef FOLDLINE_JOBQ_H
#define FOLDLINE_JOBQ_H

#include "base/error.h"
#include "dist/world.h"

typedef struct fl_jobq fl_jobq;

/* Collective over the world. leader: 1 on the ranks that take jobs (the
 * leader of each rank group; world rank 0 must be one). timeout_s: how long
 * a leader waits for rank 0's answer before it reports a hang
 * (dist.timeout_s). */
fl_code fl_jobq_open(const fl_world *w, int n_jobs, int leader, double timeout_s, fl_jobq **out, fl_error *err);

/* The next job not yet taken, or -1 when none is left. Called by a group's
 * leader alone (not collective). */
fl_code fl_jobq_take(fl_jobq *q, int *job, fl_error *err);

/* On world rank 0, answers the requests that have arrived; a no-op
 * elsewhere and when q is NULL. Cheap: call it once per training step. Its
 * signature fits fl_group_set_progress (ctx is the fl_jobq). */
void fl_jobq_progress(void *q);

/* Collective over the world: a leader says it takes no more jobs; rank 0
 * answers until every other leader has said so; then the queue is freed. */
fl_code fl_jobq_close(fl_jobq *q, fl_error *err);

#endif
