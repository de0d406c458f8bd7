/* jobq.c -- see jobq.h.
 *
 * The queue is one counter, the number of jobs handed out, in world rank 0's
 * memory (an MPI-3 RMA window); a group leader takes a job with one atomic
 * MPI_Fetch_and_op(+1) under a shared passive-target lock. Why not rank 0 as
 * a dispatcher answering requests: rank 0 trains jobs too, and would answer
 * only between its own steps, with more code for the same thing. With the
 * window, the MPI library serves the atomic itself: in shared memory on one
 * host (Open MPI's osc/sm), with the network's atomics across hosts where
 * there is RDMA. Where one-sided traffic needs the target's help (osc/pt2pt
 * over TCP), fl_jobq_progress, called by rank 0 at every training step,
 * enters the library so that the request is served within a step.
 */
#include "dist/jobq.h"

#include <stdlib.h>

#include <mpi.h>

struct fl_jobq {
    MPI_Comm comm; /* a duplicate of the world, used by the window alone */
    MPI_Win win;
    long long *counter; /* on rank 0: jobs handed out so far */
    int n_jobs;
    int holder; /* 1 on world rank 0 */
};

fl_code fl_jobq_open(const fl_world *w, int n_jobs, fl_jobq **out, fl_error *err)
{
    *out = NULL;
    fl_jobq *q = calloc(1, sizeof *q);
    if (!q)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    q->n_jobs = n_jobs;
    q->holder = w->rank == 0;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &q->comm);
    if (rc != MPI_SUCCESS) {
        free(q);
        return fl_mpi_fail(err, rc, "MPI_Comm_dup (job queue)");
    }
    MPI_Aint bytes = q->holder ? (MPI_Aint)sizeof(long long) : 0;
    rc = MPI_Win_allocate(bytes, (int)sizeof(long long), MPI_INFO_NULL, q->comm, &q->counter, &q->win);
    if (rc != MPI_SUCCESS) {
        MPI_Comm_free(&q->comm);
        free(q);
        return fl_mpi_fail(err, rc, "MPI_Win_allocate (job queue)");
    }
    MPI_Win_set_errhandler(q->win, MPI_ERRORS_RETURN);
    if (q->holder) {
        /* The window's memory is written locally before anyone may read it:
         * under an exclusive lock, then the barrier below orders it. */
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, q->win);
        *q->counter = 0;
        MPI_Win_unlock(0, q->win);
    }
    if ((rc = MPI_Barrier(q->comm)) != MPI_SUCCESS) {
        fl_jobq_close(q, NULL);
        return fl_mpi_fail(err, rc, "MPI_Barrier (job queue)");
    }
    *out = q;
    return FL_OK;
}

fl_code fl_jobq_take(fl_jobq *q, int *job, fl_error *err)
{
    const long long one = 1;
    long long taken = 0;
    int rc = MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, q->win);
    if (rc == MPI_SUCCESS)
        rc = MPI_Fetch_and_op(&one, &taken, MPI_LONG_LONG, 0, 0, MPI_SUM, q->win);
    int rc2 = MPI_Win_unlock(0, q->win);
    if (rc == MPI_SUCCESS)
        rc = rc2;
    if (rc != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Fetch_and_op on the job counter of world rank 0");
    *job = taken < q->n_jobs ? (int)taken : -1;
    return FL_OK;
}

void fl_jobq_progress(fl_jobq *q)
{
    if (!q || !q->holder)
        return;
    int flag = 0;
    /* Nothing is ever sent on q->comm: the probe only runs MPI's progress engine. */
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, q->comm, &flag, MPI_STATUS_IGNORE);
}

fl_code fl_jobq_close(fl_jobq *q, fl_error *err)
{
    if (!q)
        return FL_OK;
    int rc = MPI_Win_free(&q->win);
    MPI_Comm_free(&q->comm);
    free(q);
    return rc == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, rc, "MPI_Win_free (job queue)");
}
