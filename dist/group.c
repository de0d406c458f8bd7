/* group.c -- see group.h.
 *
 * The hang watch: every MPI collective of a group is started nonblocking and
 * waited for with MPI_Test until dist.timeout_s. Each rank counts the
 * collectives it has entered. A rank that waited too long asks every other
 * rank of its group, with a point-to-point message on the group's watch
 * communicator, where it is; ranks answer whenever they enter foldline's
 * progress calls (every wait of a collective, every training step). An
 * answer with a lower count means that rank is behind (still computing, at
 * collective N); an answer with the same count means it is in the same
 * collective and running (then the fault is in MPI or the network); no
 * answer within a few seconds means it is stopped, dead or unreachable.
 * That is Horovod's stall inspector, without a coordinator, and without MPI
 * one-sided windows (which Open MPI 4.1 cannot create across hosts on TCP).
 */
#define _POSIX_C_SOURCE 200809L
#include "dist/group.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "base/clock.h"
#include "dist/nccl.h"
#include "dist/place.h"

enum { TAG_QUERY = 11, TAG_ANSWER = 12 };

struct fl_group {
    MPI_Comm comm;    /* the group's ranks, leader first */
    MPI_Comm watch;   /* the hang watch's queries and answers (MPI_COMM_NULL for a group of one) */
    int index, count; /* which group, of how many */
    int rank, size;   /* in the group */
    int spanning;     /* groups of the world that span hosts */
    fl_backend backend;
    fl_nccl *nccl;     /* FL_BACKEND_NCCL with size > 1 */
    void *stream;      /* cudaStream_t of the NCCL calls */
    double timeout_s;  /* a collective that waits longer is a hang */
    int64_t seq;       /* collectives this rank has entered */
    MPI_Request query; /* the posted receive of another rank's query */
    int64_t query_buf;
    void (*progress)(void *); /* called in every wait (fl_group_set_progress) */
    void *progress_ctx;
    char (*hosts)[64]; /* host of every group rank */
    int *world_of;     /* world rank of every group rank */
    /* The world's placement, for fl_group_describe: */
    int world_size;
    int *group_of; /* group of every world rank */
    char (*world_hosts)[64];
};

/* MPI counts are ints: longer buffers go in pieces of this many values. */
#define MPI_PIECE (1 << 30)

/* Every world rank's host name and host id (the lowest world rank on its
 * host), gathered on every rank. */
static fl_code group_gather_hosts(const fl_world *w, fl_group *g, int *host_of, fl_error *err)
{
    MPI_Comm node;
    int rc, id = w->rank;
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Comm_split_type (ranks of this host)");
    rc = MPI_Allreduce(&w->rank, &id, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allreduce (host ids)");
    if ((rc = MPI_Allgather(&id, 1, MPI_INT, host_of, 1, MPI_INT, MPI_COMM_WORLD)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allgather (host ids)");
    snprintf(g->world_hosts[w->rank], sizeof g->world_hosts[0], "%s", w->host);
    if ((rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g->world_hosts, (int)sizeof g->world_hosts[0], MPI_CHAR,
                            MPI_COMM_WORLD)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allgather (host names)");
    return FL_OK;
}

/* A group of several ranks: its host names, world ranks and watch. */
static fl_code group_open_watch(const fl_world *w, fl_group *g, fl_error *err)
{
    int rc;
    if (!(g->hosts = calloc((size_t)g->size, sizeof *g->hosts)) ||
        !(g->world_of = calloc((size_t)g->size, sizeof *g->world_of)))
        return fl_fail(err, FL_ENOMEM, "out of memory");
    snprintf(g->hosts[g->rank], sizeof g->hosts[0], "%s", w->host);
    if ((rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g->hosts, (int)sizeof g->hosts[0], MPI_CHAR,
                            g->comm)) != MPI_SUCCESS ||
        (rc = MPI_Allgather(&w->rank, 1, MPI_INT, g->world_of, 1, MPI_INT, g->comm)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allgather of the rank group's hosts");
    if ((rc = MPI_Comm_dup(g->comm, &g->watch)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Comm_dup of the rank group's hang watch");
    MPI_Comm_set_errhandler(g->watch, MPI_ERRORS_RETURN);
    if ((rc = MPI_Irecv(&g->query_buf, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_QUERY, g->watch, &g->query)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Irecv of the rank group's hang watch");
    return FL_OK;
}

fl_code fl_group_open(const fl_world *w, int ranks_per_group, fl_group **out, fl_error *err)
{
    *out = NULL;
    if (ranks_per_group < 1 || w->size % ranks_per_group)
        return fl_fail(err, FL_EINTERNAL, "fl_group_open: %d ranks in groups of %d", w->size, ranks_per_group);
    fl_group *g = calloc(1, sizeof *g);
    if (g) {
        g->comm = g->watch = MPI_COMM_NULL;
        g->query = MPI_REQUEST_NULL;
    }
    int *host_of = calloc((size_t)w->size, 2 * sizeof *host_of);
    if (!g || !host_of || !(g->group_of = calloc((size_t)w->size, sizeof *g->group_of)) ||
        !(g->world_hosts = calloc((size_t)w->size, sizeof *g->world_hosts))) {
        free(host_of);
        fl_group_close(g);
        return fl_fail(err, FL_ENOMEM, "out of memory");
    }
    g->world_size = w->size;
    g->count = w->size / ranks_per_group;
    g->backend = FL_BACKEND_MPI;
    g->timeout_s = 600;
    fl_code frc = group_gather_hosts(w, g, host_of, err);
    int *pos_of = host_of + w->size, rc;
    if (!frc) {
        g->spanning = fl_place_groups(w->size, host_of, ranks_per_group, g->group_of, pos_of);
        g->index = g->group_of[w->rank];
        if ((rc = MPI_Comm_split(MPI_COMM_WORLD, g->index, pos_of[w->rank], &g->comm)) != MPI_SUCCESS)
            frc = fl_mpi_fail(err, rc, "MPI_Comm_split into rank groups");
    }
    free(host_of);
    if (!frc) {
        MPI_Comm_rank(g->comm, &g->rank);
        MPI_Comm_size(g->comm, &g->size);
        if (g->size > 1)
            frc = group_open_watch(w, g, err);
    }
    if (frc) {
        fl_group_close(g);
        return frc;
    }
    *out = g;
    return FL_OK;
}

void fl_group_set_timeout(fl_group *g, double seconds)
{
    g->timeout_s = seconds;
    fl_nccl_set_timeout(g->nccl, seconds);
}

void fl_group_set_progress(fl_group *g, void (*fn)(void *), void *ctx)
{
    g->progress = fn;
    g->progress_ctx = ctx;
}

/* Counts a collective this rank enters. */
static void group_enter(fl_group *g)
{
    g->seq++;
}

/* Answers every query that has arrived: this rank's count, and whether it
 * waits in a collective (1) or computes (0). */
static void group_answer(fl_group *g, int waiting)
{
    while (g->query != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Status st;
        if (MPI_Test(&g->query, &done, &st) != MPI_SUCCESS || !done)
            return;
        int64_t answer[2] = {g->seq, waiting};
        /* Two numbers go eagerly: the send never waits for the asker. */
        MPI_Send(answer, 2, MPI_INT64_T, st.MPI_SOURCE, TAG_ANSWER, g->watch);
        if (MPI_Irecv(&g->query_buf, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_QUERY, g->watch, &g->query) != MPI_SUCCESS)
            g->query = MPI_REQUEST_NULL;
    }
}

void fl_group_progress(fl_group *g)
{
    if (!g)
        return;
    if (g->size > 1)
        group_answer(g, 0);
    if (g->progress)
        g->progress(g->progress_ctx);
}

/* Asks every other rank where it is; seen[2r] its count, seen[2r+1] 1 when
 * it waits in a collective; -1 for a rank that did not answer in `patience`
 * seconds. This rank keeps answering the others meanwhile. */
static void group_ask(fl_group *g, int64_t *seen, double patience)
{
    int n = g->size;
    MPI_Request *req = malloc(sizeof *req * 2 * (size_t)n);
    if (!req)
        return;
    int64_t me = g->seq;
    for (int r = 0; r < n; r++) {
        seen[2 * r] = seen[2 * r + 1] = -1;
        req[r] = req[n + r] = MPI_REQUEST_NULL;
        if (r == g->rank)
            continue;
        MPI_Irecv(&seen[2 * r], 2, MPI_INT64_T, r, TAG_ANSWER, g->watch, &req[r]);
        MPI_Isend(&me, 1, MPI_INT64_T, r, TAG_QUERY, g->watch, &req[n + r]);
    }
    double t0 = fl_clock_mono();
    for (;;) {
        int all = 1;
        for (int r = 0; r < n; r++) {
            int done = 1;
            if (req[r] != MPI_REQUEST_NULL && MPI_Test(&req[r], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
                done = 0;
            all &= done;
        }
        group_answer(g, 1);
        if (all || fl_clock_mono() - t0 > patience)
            break;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    for (int r = 0; r < 2 * n; r++)
        if (req[r] != MPI_REQUEST_NULL) { /* no answer: the request stays with the library */
            MPI_Cancel(&req[r]);
            MPI_Request_free(&req[r]);
            if (r < n)
                seen[2 * r] = seen[2 * r + 1] = -1;
        }
    free(req);
}

/* The ranks that are not in this rank's collective g->seq, or are in it but
 * no longer answer, as text for the error. */
static void group_stragglers(fl_group *g, char *out, size_t n)
{
    int64_t *seen = malloc(sizeof *seen * 2 * (size_t)g->size);
    if (!seen) {
        snprintf(out, n, "(out of memory)");
        return;
    }
    double patience = g->timeout_s / 4 < 2 ? 2 : g->timeout_s / 4 > 10 ? 10 : g->timeout_s / 4;
    group_ask(g, seen, patience);
    size_t len = 0;
    out[0] = '\0';
    for (int r = 0; r < g->size && len < n; r++) {
        if (r == g->rank)
            continue;
        int k = 0;
        const char *sep = len ? ", " : "";
        if (seen[2 * r] < 0)
            k = snprintf(out + len, n - len,
                         "%s%d (world rank %d on host %s: does not answer in %.0f s: stopped, dead or unreachable)",
                         sep, r, g->world_of[r], g->hosts[r], patience);
        else if (seen[2 * r] < g->seq)
            k = snprintf(out + len, n - len, "%s%d (world rank %d on host %s: still computing, at collective %lld)",
                         sep, r, g->world_of[r], g->hosts[r], (long long)seen[2 * r]);
        len += k > 0 ? (size_t)k : 0;
    }
    if (!out[0])
        snprintf(out, n, "none (every rank is in it and running: look for an MPI or network fault)");
    free(seen);
}

/* Waits for req; past dist.timeout_s, names the ranks that have not arrived. */
static fl_code group_wait(fl_group *g, MPI_Request *req, const char *what, fl_error *err)
{
    double t0 = fl_clock_mono();
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, what);
        if (done)
            return FL_OK;
        double waited = fl_clock_mono() - t0;
        if (waited > g->timeout_s) {
            char who[768];
            group_stragglers(g, who, sizeof who);
            return fl_fail(err, FL_EMPI,
                           "%s: group rank %d (%s) waited %.0f s (dist.timeout_s) at collective %lld; group ranks "
                           "not there: %s HINT: a rank is stuck or gone; raise dist.timeout_s if steps are that slow",
                           what, g->rank, g->hosts[g->rank], waited, (long long)g->seq, who);
        }
        if (waited > 0.002) { /* a long wait: serve the others, then let the core go */
            group_answer(g, 1);
            if (g->progress)
                g->progress(g->progress_ctx);
            nanosleep(&(struct timespec){0, waited > 0.1 ? 1000000 : 50000}, NULL);
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
    if (g->query != MPI_REQUEST_NULL) {
        MPI_Cancel(&g->query);
        MPI_Request_free(&g->query);
    }
    if (g->watch != MPI_COMM_NULL)
        MPI_Comm_free(&g->watch);
    free(g->hosts);
    free(g->world_of);
    free(g->group_of);
    free(g->world_hosts);
    fl_nccl_close(g->nccl);
    if (g->comm != MPI_COMM_NULL)
        MPI_Comm_free(&g->comm);
    free(g);
}

int fl_group_spanning(const fl_group *g)
{
    return g->spanning;
}

void fl_group_describe(const fl_group *g, int group, char *buf, size_t n)
{
    size_t len = 0;
    int hosts = 0, last_host = -1, members = 0;
    buf[0] = '\0';
    for (int r = 0; r < g->world_size; r++)
        members += g->group_of[r] == group;
    for (int r = 0; r < g->world_size && len < n; r++) {
        if (g->group_of[r] != group)
            continue;
        /* A host's name is given once, after its ranks: "ranks 0, 1 on a; 4 on b". */
        int same = last_host >= 0 && !strcmp(g->world_hosts[r], g->world_hosts[last_host]);
        int k;
        if (last_host < 0)
            k = snprintf(buf + len, n - len, "rank%s %d", members == 1 ? "" : "s", r);
        else if (same)
            k = snprintf(buf + len, n - len, ", %d", r);
        else
            k = snprintf(buf + len, n - len, " on %s; %d", g->world_hosts[last_host], r);
        hosts += !same;
        last_host = r;
        len += k > 0 ? (size_t)k : 0;
    }
    if (last_host >= 0 && len < n) {
        int k = snprintf(buf + len, n - len, " on %s", g->world_hosts[last_host]);
        len += k > 0 ? (size_t)k : 0;
    }
    if (hosts > 1 && len < n)
        snprintf(buf + len, n - len, " (spans %d hosts: its all-reduce crosses the network)", hosts);
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

/* A started sum under MPI: its pieces' requests. */
typedef struct {
    int n;
    MPI_Request req[];
} group_async;

fl_code fl_group_sum_start(float *buf, int64_t count, void *ctx, void **handle, fl_error *err)
{
    fl_group *g = ctx;
    *handle = NULL;
    if (g->size == 1)
        return FL_OK;
    if (g->nccl) {
        fl_nccl_op *op = NULL;
        fl_code rc = fl_nccl_allreduce_start(g->nccl, buf, count, g->stream, &op, err);
        *handle = op;
        return rc;
    }
    int pieces = (int)((count + MPI_PIECE - 1) / MPI_PIECE);
    group_async *a = malloc(sizeof *a + sizeof a->req[0] * (size_t)(pieces ? pieces : 1));
    if (!a)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    a->n = 0;
    *handle = a; /* what has started is waited for even when a later piece fails */
    for (int64_t off = 0; off < count; off += MPI_PIECE) {
        int n = (int)(count - off < MPI_PIECE ? count - off : MPI_PIECE);
        group_enter(g);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, n, MPI_FLOAT, MPI_SUM, g->comm, &a->req[a->n]);
        if (rc != MPI_SUCCESS)
            return fl_mpi_fail(err, rc, "MPI_Allreduce of a gradient bucket");
        a->n++;
    }
    return FL_OK;
}

int fl_group_sum_test(void *handle, void *ctx)
{
    fl_group *g = ctx;
    if (!handle)
        return 1;
    if (g->nccl)
        return fl_nccl_op_test(handle);
    group_async *a = handle;
    if (g->size > 1)
        group_answer(g, 0); /* backward runs: this rank computes */
    for (int i = 0; i < a->n; i++) {
        int done = 0;
        if (a->req[i] != MPI_REQUEST_NULL && (MPI_Test(&a->req[i], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done))
            return 0; /* an error shows at the wait */
    }
    return 1;
}

fl_code fl_group_sum_wait(void *handle, void *ctx, fl_error *err)
{
    fl_group *g = ctx;
    if (!handle)
        return FL_OK;
    if (g->nccl)
        return fl_nccl_op_wait(g->nccl, handle, g->stream, err);
    group_async *a = handle;
    fl_code rc = FL_OK;
    for (int i = 0; i < a->n && !rc; i++)
        rc = group_wait(g, &a->req[i], "MPI_Allreduce of a gradient bucket", err);
    free(a);
    return rc;
}

int fl_group_sum_any_thread(const fl_group *g)
{
    return g->nccl != NULL;
}
