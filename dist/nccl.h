/* nccl.h -- the NCCL backend of a rank group's collectives (GPU tensors).
 *
 * One communicator per rank group; its unique id comes from the group's
 * rank 0 by MPI_Bcast over the group's MPI communicator. The collectives run
 * on the CUDA stream the caller names (the one the tensors were written on,
 * fl_model_cuda_stream), and the call returns when the stream has finished
 * them, checking ncclCommGetAsyncError while it waits, so that a peer's
 * failure ends in an error rather than a hang.
 *
 * Built when foldline was compiled with NCCL (FL_HAVE_NCCL); without it every
 * function fails with a message saying so. Include as "dist/nccl.h" (NCCL's
 * own header is <nccl.h>).
 */
#ifndef FOLDLINE_DIST_NCCL_H
#define FOLDLINE_DIST_NCCL_H

#include <stdint.h>

#include <mpi.h>

#include "base/error.h"

typedef struct fl_nccl fl_nccl;

/* 1 when this binary has the NCCL backend. */
int fl_nccl_built(void);

/* Collective over comm: a communicator of comm's ranks on CUDA device
 * `device` (cudaSetDevice). */
fl_code fl_nccl_open(MPI_Comm comm, int device, fl_nccl **out, fl_error *err);
void fl_nccl_close(fl_nccl *c);
/* Seconds a collective may wait before the communicator is aborted (0: no
 * limit, the default); c may be NULL. */
void fl_nccl_set_timeout(fl_nccl *c, double seconds);

/* In place on device memory buf (count float32), on stream (a cudaStream_t;
 * NULL: the legacy default stream). */
fl_code fl_nccl_allreduce_sum(fl_nccl *c, float *buf, int64_t count, void *stream, fl_error *err);
fl_code fl_nccl_broadcast(fl_nccl *c, float *buf, int64_t count, int root, void *stream, fl_error *err);

/* A sum that overlaps with the caller's work: starts ncclAllReduce on buf in
 * place on the communicator's side stream, after everything queued so far on
 * stream (an event recorded there), and returns at once with *op. test: 1
 * when the side stream has finished it. wait: waits for it with the checks of
 * the blocking calls (async errors, the timeout, then ncclCommAbort), makes
 * stream wait for it (cudaStreamWaitEvent) and frees op, even on failure. */
typedef struct fl_nccl_op fl_nccl_op;
fl_code fl_nccl_allreduce_start(fl_nccl *c, float *buf, int64_t count, void *stream, fl_nccl_op **op, fl_error *err);
int fl_nccl_op_test(fl_nccl_op *op);
fl_code fl_nccl_op_wait(fl_nccl *c, fl_nccl_op *op, void *stream, fl_error *err);

#endif
