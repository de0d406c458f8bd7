/* group.h -- the rank groups of a run: the world split into groups of
 * dist.ranks_per_job ranks, placed by host (dist/place.h: a group stays on
 * one host whenever that host has the ranks for it); each group trains one
 * job at a time, data-parallel across its ranks.
 *
 * What a job needs from its group lives here, with no MPI type in sight:
 * sums of metrics, the job index from the group's rank 0, gathering shards
 * of predictions to rank 0, and the two flat collectives of the bridge
 * (fl_flat_collective_fn in trainer/torch/bridge.h): the all-reduce of the
 * gradients and the broadcast of the weights. Those run on one of two
 * backends: MPI on host buffers, or NCCL on the GPU buffers themselves.
 *
 * Every function is collective over the group (its ranks call it in the same
 * order), except the accessors and fl_group_set_stream. A group of one rank
 * does no communication at all.
 */
#ifndef FOLDLINE_GROUP_H
#define FOLDLINE_GROUP_H

#include <stdint.h>

#include "base/error.h"
#include "dist/world.h"

typedef struct fl_group fl_group;

typedef enum {
    FL_BACKEND_MPI, /* MPI_Allreduce on host memory */
    FL_BACKEND_NCCL /* ncclAllReduce on device memory */
} fl_backend;

/* Collective over the world: the ranks are placed in groups by host
 * (fl_place_groups); world rank 0 leads a group. The world size must be a
 * multiple of ranks_per_group (launch/ checks it first, as a config error). */
fl_code fl_group_open(const fl_world *w, int ranks_per_group, fl_group **out, fl_error *err);

/* How many groups of the world span more than one host. */
int fl_group_spanning(const fl_group *g);

/* Group `group`'s ranks and hosts in words, e.g. "ranks 0, 1 on n1" or
 * "ranks 2 on n1; 3 on n2 (spans 2 hosts: ...)". Any rank may ask. */
void fl_group_describe(const fl_group *g, int group, char *buf, size_t n);

/* A function every wait of a collective calls, and fl_group_progress: the
 * job queue's fl_jobq_progress, so that world rank 0 answers the other
 * groups while it waits for its own. */
void fl_group_set_progress(fl_group *g, void (*fn)(void *), void *ctx);

/* Once per training step (not collective): answers the hang watch's
 * questions of the group's other ranks and runs the progress function. A
 * no-op when g is NULL. */
void fl_group_progress(fl_group *g);

/* dist.timeout_s (default 600): a collective that waits longer is a hang.
 * The rank reports which group ranks have not arrived (and at which
 * collective they are) in an FL_EMPI error, and launch/ ends every rank.
 * With NCCL the communicator is aborted (ncclCommAbort) first. */
void fl_group_set_timeout(fl_group *g, double seconds);

/* Picks the backend of the flat collectives. NCCL (only for a group of more
 * than one rank) creates the group's communicator on CUDA device `device`. */
fl_code fl_group_set_backend(fl_group *g, fl_backend backend, int device, fl_error *err);

/* The CUDA stream (cudaStream_t) the NCCL collectives run on: the stream the
 * tensors are written on (fl_model_cuda_stream). Ignored by MPI. */
void fl_group_set_stream(fl_group *g, void *stream);

/* Frees the group's communicators (collective over the group). */
void fl_group_close(fl_group *g);

int fl_group_index(const fl_group *g); /* 0 .. fl_group_count - 1 */
int fl_group_count(const fl_group *g);
int fl_group_rank(const fl_group *g); /* in the group; 0 is the leader */
int fl_group_size(const fl_group *g);
/* 1 when the flat collectives want host buffers (MPI), 0 for device buffers (NCCL). */
int fl_group_host_buffers(const fl_group *g);

/* Rank `rank` of `size`'s contiguous share [*lo, *hi) of n rows: rows
 * n * rank / size up to n * (rank + 1) / size. */
void fl_group_share(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);

/* The leader's *v to every rank of the group. */
fl_code fl_group_bcast_int(fl_group *g, int *v, fl_error *err);

/* The leader's *n bytes at *bytes to every rank: the others get a malloc'd
 * copy in *bytes (free it) and its size in *n. */
fl_code fl_group_bcast_bytes(fl_group *g, void **bytes, size_t *n, fl_error *err);

/* The leader's n bytes at buf to the same buffer on every rank, through MPI
 * whatever the backend (host memory). */
fl_code fl_group_bcast_host(fl_group *g, void *buf, size_t n, fl_error *err);

/* Sums v (n doubles) over the group, in place on every rank. */
fl_code fl_group_sum(fl_group *g, double *v, int n, fl_error *err);

/* Gathers rows of `width` floats to the leader: every rank holds its
 * fl_group_share of n_rows rows in mine; the leader gets all n_rows in all.
 * The leader's share (the first rows) may already lie there (mine == all),
 * which saves a copy. all is ignored on the other ranks. */
fl_code fl_group_gather_rows(fl_group *g, const float *mine, float *all, int64_t n_rows, int width, fl_error *err);
/* The same with each rank's count of rows given: rank r holds rows[r] rows
 * (the same array on every rank), stacked in rank order in all. */
fl_code fl_group_gather_rows_of(fl_group *g, const float *mine, float *all, const int64_t *rows, int width,
                                fl_error *err);

/* The flat collectives for the bridge (ctx is the fl_group): the sum over the
 * group, in place; and the leader's values to every rank. */
fl_code fl_group_sum_flat(float *buf, int64_t count, void *ctx, fl_error *err);
fl_code fl_group_bcast_flat(float *buf, int64_t count, void *ctx, fl_error *err);

/* The sum over the group in pieces that overlap with backward (the
 * fl_flat_async_ops of the bridge's fl_model_grads_overlap_*; ctx is the
 * fl_group): start begins the sum of one bucket in place and sets *handle
 * (NULL in a group of one), test lets the started sums progress and says
 * whether handle's has finished, wait completes it under the hang watch and
 * releases the handle. MPI: MPI_Iallreduce, each counted by the hang watch
 * like every collective; call start and test on the thread that initialised
 * MPI only. NCCL: ncclAllReduce on a side stream that first waits for what
 * the compute stream (fl_group_set_stream) has queued (the bucket's copy);
 * wait makes the compute stream wait for the side stream, so the step that
 * follows reads the sums. fl_group_sum_any_thread is 1 when start and test
 * may run on another thread (NCCL: autograd's device thread), 0 for MPI. */
fl_code fl_group_sum_start(float *buf, int64_t count, void *ctx, void **handle, fl_error *err);
int fl_group_sum_test(void *handle, void *ctx);
fl_code fl_group_sum_wait(void *handle, void *ctx, fl_error *err);
int fl_group_sum_any_thread(const fl_group *g);

#endif
