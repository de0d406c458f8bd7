/* group.c -- see group.h.
 *
 * The hang watch: every MPI collective of a group is started nonblocking and
 * waited for with MPI_Test until dist.timeout_s. Each rank counts the
 * collectives it has entered in an RMA window the others can read without
 * its help (a passive-target epoch held open for the group's life), and
 * while it waits in one it bumps a heartbeat there. A rank that waited too
 * long reads both from every rank, twice, two seconds apart: a rank behind
 * it has not arrived (and its count says where it is); a rank in the same
 * collective whose heartbeat stands still has stopped answering (a stopped
 * or wedged process). That is Horovod's stall inspector, without a
 * coordinator.
 */
#define _POSIX_C_SOURCE 200809L
#include "dist/group.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "dist/nccl.h"

struct fl_group {
    MPI_Comm comm;    /* the group's ranks, in world order */
    int index, count; /* which group, of how many */
    int rank, size;   /* in the group */
    fl_backend backend;
    fl_nccl *nccl; /* FL_BACKEND_NCCL with size > 1 */
    void *stream;  /* cudaStream_t of the NCCL calls */
    double timeout_s;      /* a collective that waits longer is a hang */
    int64_t seq;           /* collectives this rank has entered */
    int64_t *entered;      /* window memory: [0] this rank's seq, [1] its heartbeat while it waits */
    MPI_Win win;           /* MPI_WIN_NULL for a group of one */
    char (*hosts)[64];     /* host of every group rank */
};

static double group_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* MPI counts are ints: longer buffers go in pieces of this many values. */
#define MPI_PIECE (1 << 30)

fl_code fl_group_open(const fl_world *w, int ranks_per_group, fl_group **out, fl_error *err)
{
    *out = NULL;
    if (ranks_per_group < 1 || w->size % ranks_per_group)
        return fl_fail(err, FL_EINTERNAL, "fl_group_open: %d ranks in groups of %d", w->size, ranks_per_group);
    fl_group *g = calloc(1, sizeof *g);
    if (!g)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    g->index = w->rank / ranks_per_group;
    g->count = w->size / ranks_per_group;
    g->backend = FL_BACKEND_MPI;
    int rc = MPI_Comm_split(MPI_COMM_WORLD, g->index, w->rank, &g->comm);
    if (rc != MPI_SUCCESS) {
        free(g);
        return fl_mpi_fail(err, rc, "MPI_Comm_split into rank groups");
    }
    MPI_Comm_rank(g->comm, &g->rank);
    MPI_Comm_size(g->comm, &g->size);
    g->timeout_s = 600;
    g->win = MPI_WIN_NULL;
    *out = g;
    if (g->size == 1)
        return FL_OK;
    if (!(g->hosts = calloc((size_t)g->size, sizeof *g->hosts)))
        return fl_fail(err, FL_ENOMEM, "out of memory");
    snprintf(g->hosts[g->rank], sizeof g->hosts[0], "%s", w->host);
    if ((rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g->hosts, (int)sizeof g->hosts[0], MPI_CHAR,
                            g->comm)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allgather of the rank group's host names");
    if ((rc = MPI_Win_allocate((MPI_Aint)(2 * sizeof(int64_t)), (int)sizeof(int64_t), MPI_INFO_NULL, g->comm, &g->entered,
                               &g->win)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Win_allocate of the rank group's hang watch");
    g->entered[0] = g->entered[1] = 0;
    if ((rc = MPI_Win_lock_all(MPI_MODE_NOCHECK, g->win)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Win_lock_all of the rank group's hang watch");
    return MPI_Barrier(g->comm) == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, MPI_ERR_OTHER, "MPI_Barrier");
}

void fl_group_set_timeout(fl_group *g, double seconds)
{
    g->timeout_s = seconds;
    fl_nccl_set_timeout(g->nccl, seconds);
}

/* Counts a collective this rank enters, where the others can read it. */
static void group_enter(fl_group *g)
{
    g->seq++;
    MPI_Accumulate(&g->seq, 1, MPI_INT64_T, g->rank, 0, 1, MPI_INT64_T, MPI_REPLACE, g->win);
    MPI_Win_flush(g->rank, g->win);
}

/* Every other rank's (seq, heartbeat) from its window into seen (2 per rank;
 * -1 for a rank whose read did not complete within a few seconds). */
static void group_read_windows(fl_group *g, int64_t *seen)
{
    for (int r = 0; r < g->size; r++) {
        seen[2 * r] = seen[2 * r + 1] = -1;
        if (r == g->rank)
            continue;
        int64_t got[2] = {-1, -1};
        MPI_Request q;
        int done = 0;
        if (MPI_Rget(got, 2, MPI_INT64_T, r, 0, 2, MPI_INT64_T, g->win, &q) == MPI_SUCCESS) {
            double t0 = group_now();
            while (!done && group_now() - t0 < 5.0 && MPI_Test(&q, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS)
                if (!done)
                    nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
        if (done) {
            seen[2 * r] = got[0];
            seen[2 * r + 1] = got[1];
        }
    }
}

/* The bump of this rank's heartbeat, while it waits in a collective. */
static void group_heartbeat(fl_group *g)
{
    int64_t beat = ++g->entered[1];
    MPI_Accumulate(&beat, 1, MPI_INT64_T, g->rank, 1, 1, MPI_INT64_T, MPI_REPLACE, g->win);
    MPI_Win_flush(g->rank, g->win);
}

/* The ranks that are not in this rank's collective g->seq, or are in it but
 * no longer answer, as text for the error. */
static void group_stragglers(fl_group *g, char *out, size_t n)
{
    int64_t *a = malloc(sizeof *a * 4 * (size_t)g->size);
    if (!a) {
        snprintf(out, n, "(out of memory)");
        return;
    }
    int64_t *b = a + 2 * g->size;
    group_read_windows(g, a);
    for (int i = 0; i < 20; i++) { /* two seconds, our own heartbeat going on */
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        group_heartbeat(g);
        int done = 0;
        MPI_Test(&(MPI_Request){MPI_REQUEST_NULL}, &done, MPI_STATUS_IGNORE); /* keeps MPI progressing */
    }
    group_read_windows(g, b);
    size_t len = 0;
    out[0] = '\0';
    for (int r = 0; r < g->size && len < n; r++) {
        if (r == g->rank)
            continue;
        int k = 0;
        const char *sep = len ? ", " : "";
        if (b[2 * r] < 0)
            k = snprintf(out + len, n - len, "%s%d (%s, its window does not answer)", sep, r, g->hosts[r]);
        else if (b[2 * r] < g->seq)
            k = snprintf(out + len, n - len, "%s%d (%s, at collective %lld)", sep, r, g->hosts[r], (long long)b[2 * r]);
        else if (b[2 * r + 1] == a[2 * r + 1])
            k = snprintf(out + len, n - len, "%s%d (%s, in it but no longer running)", sep, r, g->hosts[r]);
        len += k > 0 ? (size_t)k : 0;
    }
    if (!out[0])
        snprintf(out, n, "none (every rank is in it and running: look for an MPI or network fault)");
    free(a);
}

/* Waits for req; past dist.timeout_s, names the ranks that have not arrived. */
static fl_code group_wait(fl_group *g, MPI_Request *req, const char *what, fl_error *err)
{
    double t0 = group_now(), last_beat = 0;
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, what);
        if (done)
            return FL_OK;
        double waited = group_now() - t0;
        if (waited > g->timeout_s) {
            char who[512];
            group_stragglers(g, who, sizeof who);
            return fl_fail(err, FL_EMPI,
                           "%s: group rank %d (%s) waited %.0f s (dist.timeout_s) at collective %lld; group ranks "
                           "not there: %s HINT: a rank is stuck or gone; raise dist.timeout_s if steps are that slow",
                           what, g->rank, g->hosts[g->rank], waited, (long long)g->seq, who);
        }
        if (waited > 0.002) /* a long wait: let the core go */
            nanosleep(&(struct timespec){0, waited > 0.1 ? 1000000 : 50000}, NULL);
        if (waited > 0.5 && waited - last_beat > 0.25) { /* show the others this rank is still here */
            group_heartbeat(g);
            last_beat = waited;
        }
    }
}

fl_code fl_group_set_backend(fl_group *g, fl_backend backend, int device, fl_error *err)
{
    g->backend = backend;
    if (backend != FL_BACKEND_NCCL || g->size == 1 || g->nccl)
        return FL_OK;
    return fl_nccl_open(g->comm, device, &g->nccl, err);
}

void fl_group_set_stream(fl_group *g, void *stream)
{
    g->stream = stream;
}

void fl_group_close(fl_group *g)
{
    if (!g)
        return;
    if (g->win != MPI_WIN_NULL) {
        MPI_Win_unlock_all(g->win);
        MPI_Win_free(&g->win);
    }
    free(g->hosts);
    fl_nccl_close(g->nccl);
    if (g->comm != MPI_COMM_NULL)
        MPI_Comm_free(&g->comm);
    free(g);
}

int fl_group_index(const fl_group *g)
{
    return g->index;
}
int fl_group_count(const fl_group *g)
{
    return g->count;
}
int fl_group_rank(const fl_group *g)
{
    return g->rank;
}
int fl_group_size(const fl_group *g)
{
    return g->size;
}
int fl_group_host_buffers(const fl_group *g)
{
    return g->backend == FL_BACKEND_MPI;
}

void fl_group_share(int64_t n, int rank, int size, int64_t *lo, int64_t *hi)
{
    *lo = n * rank / size;
    *hi = n * (rank + 1) / size;
}

fl_code fl_group_bcast_int(fl_group *g, int *v, fl_error *err)
{
    if (g->size == 1)
        return FL_OK;
    MPI_Request q;
    group_enter(g);
    int rc = MPI_Ibcast(v, 1, MPI_INT, 0, g->comm, &q);
    return rc == MPI_SUCCESS ? group_wait(g, &q, "MPI_Bcast of the next job in the rank group", err)
                             : fl_mpi_fail(err, rc, "MPI_Bcast of the next job in the rank group");
}

/* The leader's n bytes at buf to every rank, through MPI whatever the
 * backend, in pieces that fit MPI's int counts. */
static fl_code group_bcast_host(fl_group *g, void *buf, uint64_t len, const char *what, fl_error *err)
{
    for (uint64_t off = 0; off < len; off += MPI_PIECE) {
        int piece = (int)(len - off < MPI_PIECE ? len - off : MPI_PIECE), rc;
        MPI_Request q;
        group_enter(g);
        if ((rc = MPI_Ibcast((char *)buf + off, piece, MPI_BYTE, 0, g->comm, &q)) != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, what);
        fl_code frc = group_wait(g, &q, what, err);
        if (frc)
            return frc;
    }
    return FL_OK;
}

fl_code fl_group_bcast_bytes(fl_group *g, void **bytes, size_t *n, fl_error *err)
{
    if (g->size == 1)
        return FL_OK;
    uint64_t len = g->rank == 0 ? (uint64_t)*n : 0;
    MPI_Request q;
    group_enter(g);
    int rc = MPI_Ibcast(&len, 1, MPI_UINT64_T, 0, g->comm, &q);
    fl_code frc = rc == MPI_SUCCESS ? group_wait(g, &q, "MPI_Bcast of a checkpoint's size in the rank group", err)
                                    : fl_mpi_fail(err, rc, "MPI_Bcast of a checkpoint's size in the rank group");
    if (frc)
        return frc;
    if (g->rank != 0) {
        *n = (size_t)len;
        if (!(*bytes = malloc(len ? len : 1)))
            return fl_fail(err, FL_ENOMEM, "out of memory for a checkpoint of %llu bytes", (unsigned long long)len);
    }
    return group_bcast_host(g, *bytes, len, "MPI_Bcast of a checkpoint in the rank group", err);
}

fl_code fl_group_bcast_host(fl_group *g, void *buf, size_t n, fl_error *err)
{
    return g->size == 1 ? FL_OK : group_bcast_host(g, buf, n, "MPI_Bcast of features in the rank group", err);
}

fl_code fl_group_sum(fl_group *g, double *v, int n, fl_error *err)
{
    if (g->size == 1)
        return FL_OK;
    MPI_Request q;
    group_enter(g);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, g->comm, &q);
    return rc == MPI_SUCCESS ? group_wait(g, &q, "MPI_Allreduce of the metrics in the rank group", err)
                             : fl_mpi_fail(err, rc, "MPI_Allreduce of the metrics in the rank group");
}

fl_code fl_group_gather_rows(fl_group *g, const float *mine, float *all, int64_t n_rows, int width, fl_error *err)
{
    int64_t *rows = malloc(sizeof *rows * (size_t)g->size);
    if (!rows)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    for (int r = 0; r < g->size; r++) {
        int64_t lo, hi;
        fl_group_share(n_rows, r, g->size, &lo, &hi);
        rows[r] = hi - lo;
    }
    fl_code rc = fl_group_gather_rows_of(g, mine, all, rows, width, err);
    free(rows);
    return rc;
}

fl_code fl_group_gather_rows_of(fl_group *g, const float *mine, float *all, const int64_t *rows, int width,
                                fl_error *err)
{
    int64_t n_rows = 0;
    for (int r = 0; r < g->size; r++)
        n_rows += rows[r];
    if (g->rank == 0 && mine != all) /* the leader's share is rows [0, rows[0]) */
        memmove(all, mine, sizeof *all * (size_t)(rows[0] * width));
    if (g->size == 1)
        return FL_OK;
    if (n_rows * width > INT_MAX)
        return fl_fail(err, FL_EMPI, "gathering %lld predictions of %d values: more than MPI's %d per call",
                       (long long)n_rows, width, INT_MAX);
    int *counts = malloc(sizeof *counts * 2 * (size_t)g->size), rc;
    if (!counts)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    int *displs = counts + g->size;
    int64_t lo = 0;
    for (int r = 0; r < g->size; r++) {
        counts[r] = (int)(rows[r] * width);
        displs[r] = (int)(lo * width);
        lo += rows[r];
    }
    MPI_Request q;
    group_enter(g);
    if (g->rank == 0)
        rc = MPI_Igatherv(MPI_IN_PLACE, 0, MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, g->comm, &q);
    else
        rc = MPI_Igatherv(mine, counts[g->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, 0, g->comm, &q);
    fl_code frc = rc == MPI_SUCCESS ? group_wait(g, &q, "MPI_Gatherv of the predictions to the group's rank 0", err)
                                    : fl_mpi_fail(err, rc, "MPI_Gatherv of the predictions to the group's rank 0");
    free(counts); /* the request is complete (or the run is ending) */
    return frc;
}

fl_code fl_group_sum_flat(float *buf, int64_t count, void *ctx, fl_error *err)
{
    fl_group *g = ctx;
    if (g->size == 1)
        return FL_OK;
    if (g->nccl)
        return fl_nccl_allreduce_sum(g->nccl, buf, count, g->stream, err);
    for (int64_t off = 0; off < count; off += MPI_PIECE) {
        int n = (int)(count - off < MPI_PIECE ? count - off : MPI_PIECE);
        MPI_Request q;
        group_enter(g);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, n, MPI_FLOAT, MPI_SUM, g->comm, &q);
        fl_code frc = rc == MPI_SUCCESS ? group_wait(g, &q, "MPI_Allreduce of the gradients", err)
                                        : fl_mpi_fail(err, rc, "MPI_Allreduce of the gradients");
        if (frc)
            return frc;
    }
    return FL_OK;
}

fl_code fl_group_bcast_flat(float *buf, int64_t count, void *ctx, fl_error *err)
{
    fl_group *g = ctx;
    if (g->size == 1)
        return FL_OK;
    if (g->nccl)
        return fl_nccl_broadcast(g->nccl, buf, count, 0, g->stream, err);
    for (int64_t off = 0; off < count; off += MPI_PIECE) {
        int n = (int)(count - off < MPI_PIECE ? count - off : MPI_PIECE);
        MPI_Request q;
        group_enter(g);
        int rc = MPI_Ibcast(buf + off, n, MPI_FLOAT, 0, g->comm, &q);
        fl_code frc = rc == MPI_SUCCESS ? group_wait(g, &q, "MPI_Bcast of the weights from the group's rank 0", err)
                                        : fl_mpi_fail(err, rc, "MPI_Bcast of the weights from the group's rank 0");
        if (frc)
            return frc;
    }
    return FL_OK;
}
