/* jobq.h -- the run's queue of jobs (models x folds.use): the rank groups
 * take jobs until none is left, so that a slow job never idles the others.
 *
 * A job is an index 0 .. n_jobs-1 in a fixed order (launch/ maps it to a
 * model and a fold); each index is handed out exactly once. Which group gets
 * which job depends on timing, so nothing a job computes may depend on it
 * (trainer/job.c derives every seed from the job alone).
 */
#ifndef FOLDLINE_JOBQ_H
#define FOLDLINE_JOBQ_H

#include "dist/error.h"
#include "dist/world.h"

typedef struct fl_jobq fl_jobq;

/* Collective over the world. */
fl_code fl_jobq_open(const fl_world *w, int n_jobs, fl_jobq **out, fl_error *err);

/* The next job not yet taken, or -1 when none is left. Called by a group's
 * leader alone (not collective). */
fl_code fl_jobq_take(fl_jobq *q, int *job, fl_error *err);

/* Lets the MPI library serve other groups' fl_jobq_take on the rank that
 * holds the queue (world rank 0) while that rank computes; a no-op elsewhere
 * and when q is NULL. Cheap: call it once per training step. */
void fl_jobq_progress(fl_jobq *q);

/* Collective over the world: frees the queue once every rank is done. */
fl_code fl_jobq_close(fl_jobq *q, fl_error *err);

#endif
