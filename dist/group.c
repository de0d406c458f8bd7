/* group.c -- see group.h. */
#include "dist/group.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "dist/nccl.h"

struct fl_group {
    MPI_Comm comm;    /* the group's ranks, in world order */
    int index, count; /* which group, of how many */
    int rank, size;   /* in the group */
    fl_backend backend;
    fl_nccl *nccl; /* FL_BACKEND_NCCL with size > 1 */
    void *stream;  /* cudaStream_t of the NCCL calls */
};

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
    *out = g;
    return FL_OK;
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
    int rc = MPI_Bcast(v, 1, MPI_INT, 0, g->comm);
    return rc == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, rc, "MPI_Bcast of the next job in the rank group");
}

fl_code fl_group_bcast_bytes(fl_group *g, void **bytes, size_t *n, fl_error *err)
{
    if (g->size == 1)
        return FL_OK;
    uint64_t len = g->rank == 0 ? (uint64_t)*n : 0;
    int rc = MPI_Bcast(&len, 1, MPI_UINT64_T, 0, g->comm);
    if (rc != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Bcast of a checkpoint's size in the rank group");
    if (g->rank != 0) {
        *n = (size_t)len;
        if (!(*bytes = malloc(len ? len : 1)))
            return fl_fail(err, FL_ENOMEM, "out of memory for a checkpoint of %llu bytes", (unsigned long long)len);
    }
    for (uint64_t off = 0; off < len; off += MPI_PIECE) { /* MPI counts are ints */
        int piece = (int)(len - off < MPI_PIECE ? len - off : MPI_PIECE);
        if ((rc = MPI_Bcast((char *)*bytes + off, piece, MPI_BYTE, 0, g->comm)) != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, "MPI_Bcast of a checkpoint in the rank group");
    }
    return FL_OK;
}

fl_code fl_group_sum(fl_group *g, double *v, int n, fl_error *err)
{
    if (g->size == 1)
        return FL_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, g->comm);
    return rc == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, rc, "MPI_Allreduce of the metrics in the rank group");
}

fl_code fl_group_gather_rows(fl_group *g, const float *mine, float *all, int64_t n_rows, int width, fl_error *err)
{
    if (g->rank == 0 && mine != all) { /* the leader's share is rows [0, hi) */
        int64_t lo, hi;
        fl_group_share(n_rows, 0, g->size, &lo, &hi);
        memmove(all, mine, sizeof *all * (size_t)(hi * width));
    }
    if (g->size == 1)
        return FL_OK;
    if (n_rows * width > INT_MAX)
        return fl_fail(err, FL_EMPI, "gathering %lld predictions of %d values: more than MPI's %d per call",
                       (long long)n_rows, width, INT_MAX);
    int *counts = malloc(sizeof *counts * 2 * (size_t)g->size), rc;
    if (!counts)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    int *displs = counts + g->size;
    for (int r = 0; r < g->size; r++) {
        int64_t lo, hi;
        fl_group_share(n_rows, r, g->size, &lo, &hi);
        counts[r] = (int)((hi - lo) * width);
        displs[r] = (int)(lo * width);
    }
    if (g->rank == 0)
        rc = MPI_Gatherv(MPI_IN_PLACE, 0, MPI_FLOAT, all, counts, displs, MPI_FLOAT, 0, g->comm);
    else
        rc = MPI_Gatherv(mine, counts[g->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, 0, g->comm);
    free(counts);
    return rc == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, rc, "MPI_Gatherv of the predictions to the group's rank 0");
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
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, n, MPI_FLOAT, MPI_SUM, g->comm);
        if (rc != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, "MPI_Allreduce of the gradients");
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
        int rc = MPI_Bcast(buf + off, n, MPI_FLOAT, 0, g->comm);
        if (rc != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, "MPI_Bcast of the weights from the group's rank 0");
    }
    return FL_OK;
}
