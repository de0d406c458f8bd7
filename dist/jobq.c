/* jobq.c -- see jobq.h.
 *
 * The queue is a counter on world rank 0 and a little protocol on a
 * duplicate of the world communicator: a leader sends TAKE, rank 0 answers
 * JOB with the next index (or -1); at the end every leader but rank 0 sends
 * BYE, and rank 0 answers until it has them all. Rank 0 trains jobs too, so
 * it answers only when it enters foldline's progress calls (once per
 * training step, and in every wait of a group collective): a request waits
 * at most one step.
 *
 * Why not an MPI-3 window with MPI_Fetch_and_op, as before: Open MPI 4.1
 * cannot create a window across hosts on TCP (osc/rdma needs RDMA-capable
 * transports, and the pt2pt fallback is not selected), and foldline must run
 * on any interconnect. Two small messages per job cost nothing next to a job.
 */
#define _POSIX_C_SOURCE 200809L
#include "dist/jobq.h"
#include "base/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mpi.h>

enum { TAG_TAKE = 1, TAG_JOB = 2, TAG_BYE = 3 };

struct fl_jobq {
    MPI_Comm comm; /* a duplicate of the world: the queue's messages alone */
    int n_jobs;
    int rank;   /* in the world */
    int leader; /* 1 when this rank takes jobs */
    double timeout_s;
    /* world rank 0 alone: */
    int next;          /* jobs handed out so far */
    int others;        /* leaders other than rank 0 */
    int byes;          /* of those, how many said BYE */
    MPI_Request recv;  /* the posted receive of the next request */
    int request;       /* its buffer */
    char (*hosts)[64]; /* every world rank's host, for the hang message */
};

fl_code fl_jobq_open(const fl_world *w, int n_jobs, int leader, double timeout_s, fl_jobq **out, fl_error *err)
{
    *out = NULL;
    if (w->rank == 0 && !leader)
        return fl_fail(err, FL_EINTERNAL, "fl_jobq_open: world rank 0 must take jobs");
    fl_jobq *q = calloc(1, sizeof *q);
    if (!q)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    q->n_jobs = n_jobs;
    q->rank = w->rank;
    q->leader = leader;
    q->timeout_s = timeout_s > 0 ? timeout_s : 600;
    q->recv = MPI_REQUEST_NULL;
    q->comm = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &q->comm);
    if (rc != MPI_SUCCESS) {
        free(q);
        return fl_mpi_fail(err, rc, "MPI_Comm_dup (job queue)");
    }
    MPI_Comm_set_errhandler(q->comm, MPI_ERRORS_RETURN);
    int leaders = 0;
    if ((rc = MPI_Allreduce(&leader, &leaders, 1, MPI_INT, MPI_SUM, q->comm)) != MPI_SUCCESS) {
        fl_jobq_close(q, NULL);
        return fl_mpi_fail(err, rc, "MPI_Allreduce (job queue leaders)");
    }
    if (!(q->hosts = calloc((size_t)w->size, sizeof *q->hosts))) {
        fl_jobq_close(q, NULL);
        return fl_fail(err, FL_ENOMEM, "out of memory");
    }
    snprintf(q->hosts[w->rank], sizeof q->hosts[0], "%s", w->host);
    if ((rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, q->hosts, (int)sizeof q->hosts[0], MPI_CHAR,
                            q->comm)) != MPI_SUCCESS) {
        fl_jobq_close(q, NULL);
        return fl_mpi_fail(err, rc, "MPI_Allgather (job queue hosts)");
    }
    if (w->rank == 0) {
        q->others = leaders - 1;
        if (q->others > 0 &&
            (rc = MPI_Irecv(&q->request, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, q->comm, &q->recv)) != MPI_SUCCESS) {
            fl_jobq_close(q, NULL);
            return fl_mpi_fail(err, rc, "MPI_Irecv (job queue)");
        }
    }
    *out = q;
    return FL_OK;
}

/* Rank 0: the next index, or -1 once every job is out. */
static int jobq_next(fl_jobq *q)
{
    return q->next < q->n_jobs ? q->next++ : -1;
}

/* Rank 0: answers every request that has arrived. Returns an MPI code. */
static int jobq_serve(fl_jobq *q)
{
    while (q->recv != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Status st;
        int rc = MPI_Test(&q->recv, &done, &st);
        if (rc != MPI_SUCCESS)
            return rc;
        if (!done)
            return MPI_SUCCESS;
        if (st.MPI_TAG == TAG_TAKE) {
            int job = jobq_next(q);
            /* One int: Open MPI sends it eagerly, so this never waits for
             * the leader (which has its receive posted anyway). */
            if ((rc = MPI_Send(&job, 1, MPI_INT, st.MPI_SOURCE, TAG_JOB, q->comm)) != MPI_SUCCESS)
                return rc;
        } else if (st.MPI_TAG == TAG_BYE) {
            q->byes++;
        }
        if (q->byes == q->others)
            return MPI_SUCCESS; /* q->recv is MPI_REQUEST_NULL: nothing more will come */
        if ((rc = MPI_Irecv(&q->request, 1, MPI_INT, MPI_ANY_SOURCE, MPI_ANY_TAG, q->comm, &q->recv)) != MPI_SUCCESS)
            return rc;
    }
    return MPI_SUCCESS;
}

void fl_jobq_progress(void *ctx)
{
    fl_jobq *q = ctx;
    if (q && q->rank == 0)
        jobq_serve(q); /* a failure shows again, with its message, in fl_jobq_close */
}

/* A leader's wait for rank 0, with a limit: past q->timeout_s, rank 0 (or
 * the way to it) is gone or stuck. */
static fl_code jobq_wait(fl_jobq *q, MPI_Request *req, const char *what, fl_error *err)
{
    double t0 = fl_clock_mono();
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, what);
        if (done)
            return FL_OK;
        double waited = fl_clock_mono() - t0;
        if (waited > q->timeout_s) {
            MPI_Cancel(req);
            return fl_fail(err, FL_EMPI,
                           "%s: world rank 0 (%s), which holds the job queue, did not answer in %.0f s "
                           "(dist.timeout_s) HINT: rank 0 is stuck, stopped or its host unreachable; raise "
                           "dist.timeout_s if a training step takes that long",
                           what, q->hosts[0], waited);
        }
        nanosleep(&(struct timespec){0, waited > 0.01 ? 1000000 : 50000}, NULL);
    }
}

fl_code fl_jobq_take(fl_jobq *q, int *job, fl_error *err)
{
    *job = -1;
    if (q->rank == 0) {
        *job = jobq_next(q);
        return FL_OK;
    }
    int zero = 0, answer = -1, rc;
    MPI_Request req;
    if ((rc = MPI_Irecv(&answer, 1, MPI_INT, 0, TAG_JOB, q->comm, &req)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Irecv of a job from world rank 0");
    if ((rc = MPI_Send(&zero, 1, MPI_INT, 0, TAG_TAKE, q->comm)) != MPI_SUCCESS) {
        MPI_Cancel(&req);
        return fl_mpi_fail(err, rc, "MPI_Send of a job request to world rank 0");
    }
    fl_code frc = jobq_wait(q, &req, "waiting for the next job", err);
    if (!frc)
        *job = answer;
    return frc;
}

fl_code fl_jobq_close(fl_jobq *q, fl_error *err)
{
    if (!q)
        return FL_OK;
    fl_code frc = FL_OK;
    int rc = MPI_SUCCESS;
    if (q->comm != MPI_COMM_NULL && err) { /* err NULL: an error path, no more messages */
        if (q->rank == 0) {
            /* The other leaders are still training: answer them until each
             * one has said BYE. */
            while (q->recv != MPI_REQUEST_NULL && (rc = jobq_serve(q)) == MPI_SUCCESS)
                nanosleep(&(struct timespec){0, 1000000}, NULL);
            if (rc != MPI_SUCCESS)
                frc = fl_mpi_fail(err, rc, "serving the job queue on world rank 0");
        } else if (q->leader) {
            int zero = 0;
            if ((rc = MPI_Send(&zero, 1, MPI_INT, 0, TAG_BYE, q->comm)) != MPI_SUCCESS)
                frc = fl_mpi_fail(err, rc, "MPI_Send of the end of the jobs to world rank 0");
        }
    }
    if (q->recv != MPI_REQUEST_NULL) {
        MPI_Cancel(&q->recv);
        MPI_Request_free(&q->recv);
    }
    if (q->comm != MPI_COMM_NULL)
        MPI_Comm_free(&q->comm);
    free(q->hosts);
    free(q);
    return frc;
}
