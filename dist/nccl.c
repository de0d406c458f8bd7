/* nccl.c -- see nccl.h. */
#include "dist/nccl.h"

#include <stdlib.h>

#include "base/clock.h"
#include "dist/world.h"

#ifdef FL_HAVE_NCCL

#include <sched.h>
#include <time.h>

#include <cuda_runtime.h>
#include <nccl.h>

struct fl_nccl {
    ncclComm_t comm;
    cudaStream_t side; /* the overlapped sums' stream, created at the first */
    int device;
    int rank, size;
    double timeout_s; /* dist.timeout_s: a collective without progress that long is aborted */
};

void fl_nccl_set_timeout(fl_nccl *c, double seconds)
{
    if (c)
        c->timeout_s = seconds;
}

int fl_nccl_built(void)
{
    return 1;
}

static fl_code nccl_fail(fl_error *err, ncclResult_t r, const char *what)
{
    return fl_fail(err, FL_EMPI, "NCCL %s: %s HINT: NCCL_DEBUG=WARN shows why", what, ncclGetErrorString(r));
}

fl_code fl_nccl_open(MPI_Comm comm, int device, fl_nccl **out, fl_error *err)
{
    *out = NULL;
    fl_nccl *c = calloc(1, sizeof *c);
    if (!c)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    c->device = device;
    MPI_Comm_rank(comm, &c->rank);
    MPI_Comm_size(comm, &c->size);
    ncclUniqueId id;
    ncclResult_t r = ncclSuccess;
    /* Rank 0 of the group draws the id; every rank takes part in the
     * broadcast even when drawing failed (it sends a flag with it), so that
     * a failure is an error on every rank and never a hang. */
    int ok = 1;
    if (c->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess)
        ok = 0;
    int mrc = MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (mrc == MPI_SUCCESS && ok)
        mrc = MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm);
    fl_code rc = FL_OK;
    cudaError_t ce;
    if (mrc != MPI_SUCCESS)
        rc = fl_mpi_fail(err, mrc, "MPI_Bcast of the NCCL unique id");
    else if (!ok)
        rc = c->rank == 0 ? nccl_fail(err, r, "ncclGetUniqueId")
                          : fl_fail(err, FL_EMPI, "NCCL: rank 0 of this group could not create a communicator id");
    else if ((ce = cudaSetDevice(device)) != cudaSuccess)
        rc = fl_fail(err, FL_EMPI, "cudaSetDevice(%d): %s", device, cudaGetErrorString(ce));
    else if ((r = ncclCommInitRank(&c->comm, c->size, id, c->rank)) != ncclSuccess)
        rc = nccl_fail(err, r, "ncclCommInitRank");
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return FL_OK;
}

void fl_nccl_close(fl_nccl *c)
{
    if (!c)
        return;
    if (c->comm)
        ncclCommDestroy(c->comm);
    if (c->side)
        cudaStreamDestroy(c->side);
    free(c);
}

/* Waits until stream has run what was queued on it, checking the
 * communicator: a peer that died leaves the kernel waiting forever, which
 * ncclCommGetAsyncError reports, or which outlasts dist.timeout_s (a peer
 * that hangs); the communicator is then aborted (ncclCommAbort), so that the
 * kernel ends and the error can be reported. */
static fl_code nccl_wait_for(fl_nccl *c, cudaStream_t stream, cudaEvent_t event, const char *what, fl_error *err)
{
    double t0 = fl_clock_mono();
    for (;;) {
        cudaError_t ce = event ? cudaEventQuery(event) : cudaStreamQuery(stream);
        if (ce == cudaSuccess)
            return FL_OK;
        if (ce != cudaErrorNotReady)
            return fl_fail(err, FL_EMPI, "NCCL %s: CUDA stream: %s", what, cudaGetErrorString(ce));
        ncclResult_t async = ncclSuccess, r = ncclCommGetAsyncError(c->comm, &async);
        if (r != ncclSuccess)
            return nccl_fail(err, r, "ncclCommGetAsyncError");
        if (async != ncclSuccess && async != ncclInProgress) {
            ncclCommAbort(c->comm);
            c->comm = NULL;
            return nccl_fail(err, async, what);
        }
        double waited = fl_clock_mono() - t0;
        if (c->timeout_s > 0 && waited > c->timeout_s) {
            ncclCommAbort(c->comm);
            c->comm = NULL;
            return fl_fail(err, FL_EMPI,
                           "NCCL %s: rank %d of %d of the group waited %.0f s (dist.timeout_s); the communicator was "
                           "aborted HINT: a rank is stuck or gone; raise dist.timeout_s if steps are that slow",
                           what, c->rank, c->size, waited);
        }
        sched_yield();
    }
}

static fl_code nccl_wait(fl_nccl *c, cudaStream_t stream, const char *what, fl_error *err)
{
    return nccl_wait_for(c, stream, NULL, what, err);
}

fl_code fl_nccl_allreduce_sum(fl_nccl *c, float *buf, int64_t count, void *stream, fl_error *err)
{
    if (!c->comm)
        return fl_fail(err, FL_EMPI, "NCCL: the communicator was aborted after an earlier error");
    cudaStream_t s = (cudaStream_t)stream;
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, ncclFloat32, ncclSum, c->comm, s);
    if (r != ncclSuccess)
        return nccl_fail(err, r, "ncclAllReduce");
    return nccl_wait(c, s, "all-reduce of the gradients", err);
}

fl_code fl_nccl_broadcast(fl_nccl *c, float *buf, int64_t count, int root, void *stream, fl_error *err)
{
    if (!c->comm)
        return fl_fail(err, FL_EMPI, "NCCL: the communicator was aborted after an earlier error");
    cudaStream_t s = (cudaStream_t)stream;
    ncclResult_t r = ncclBroadcast(buf, buf, (size_t)count, ncclFloat32, root, c->comm, s);
    if (r != ncclSuccess)
        return nccl_fail(err, r, "ncclBroadcast");
    return nccl_wait(c, s, "broadcast of the weights", err);
}

struct fl_nccl_op {
    cudaEvent_t done; /* recorded on the side stream after the all-reduce */
};

static fl_code cuda_fail(fl_error *err, cudaError_t ce, const char *what)
{
    return fl_fail(err, FL_EMPI, "NCCL all-reduce of a gradient bucket: %s: %s", what, cudaGetErrorString(ce));
}

fl_code fl_nccl_allreduce_start(fl_nccl *c, float *buf, int64_t count, void *stream, fl_nccl_op **op, fl_error *err)
{
    *op = NULL;
    if (!c->comm)
        return fl_fail(err, FL_EMPI, "NCCL: the communicator was aborted after an earlier error");
    cudaError_t ce;
    if (!c->side && (ce = cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking)) != cudaSuccess)
        return cuda_fail(err, ce, "cudaStreamCreateWithFlags");
    fl_nccl_op *o = calloc(1, sizeof *o);
    if (!o)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    cudaEvent_t ready = NULL;
    /* The side stream waits for the bucket's copy on the compute stream. A
     * destroyed event's resources go once the work that uses it is done. */
    if ((ce = cudaEventCreateWithFlags(&ready, cudaEventDisableTiming)) != cudaSuccess ||
        (ce = cudaEventRecord(ready, (cudaStream_t)stream)) != cudaSuccess ||
        (ce = cudaStreamWaitEvent(c->side, ready, 0)) != cudaSuccess ||
        (ce = cudaEventCreateWithFlags(&o->done, cudaEventDisableTiming)) != cudaSuccess) {
        if (ready)
            cudaEventDestroy(ready);
        if (o->done)
            cudaEventDestroy(o->done);
        free(o);
        return cuda_fail(err, ce, "events");
    }
    cudaEventDestroy(ready);
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, ncclFloat32, ncclSum, c->comm, c->side);
    if (r != ncclSuccess) {
        cudaEventDestroy(o->done);
        free(o);
        return nccl_fail(err, r, "ncclAllReduce");
    }
    if ((ce = cudaEventRecord(o->done, c->side)) != cudaSuccess) {
        /* Without the event the sum cannot be waited for alone: the whole side stream then. */
        cudaEventDestroy(o->done);
        o->done = NULL;
    }
    *op = o;
    return FL_OK;
}

int fl_nccl_op_test(fl_nccl_op *op)
{
    return !op || !op->done || cudaEventQuery(op->done) != cudaErrorNotReady;
}

fl_code fl_nccl_op_wait(fl_nccl *c, fl_nccl_op *op, void *stream, fl_error *err)
{
    if (!op)
        return FL_OK;
    fl_code rc = c->comm ? nccl_wait_for(c, c->side, op->done, "all-reduce of a gradient bucket", err)
                         : fl_fail(err, FL_EMPI, "NCCL: the communicator was aborted after an earlier error");
    cudaError_t ce;
    if (!rc && op->done && (ce = cudaStreamWaitEvent((cudaStream_t)stream, op->done, 0)) != cudaSuccess)
        rc = cuda_fail(err, ce, "cudaStreamWaitEvent");
    if (op->done)
        cudaEventDestroy(op->done);
    free(op);
    return rc;
}

#else /* !FL_HAVE_NCCL */

struct fl_nccl {
    int unused;
};

static fl_code no_nccl(fl_error *err)
{
    return fl_fail(err, FL_EINPUT,
                   "dist.backend \"nccl\": this foldline was built without NCCL HINT: rebuild "
                   "with NCCL_ROOT or CUDA_HOME pointing at NCCL, or set dist.backend = \"mpi\"");
}

int fl_nccl_built(void)
{
    return 0;
}

fl_code fl_nccl_open(MPI_Comm comm, int device, fl_nccl **out, fl_error *err)
{
    (void)comm;
    (void)device;
    *out = NULL;
    return no_nccl(err);
}

void fl_nccl_close(fl_nccl *c)
{
    (void)c;
}

void fl_nccl_set_timeout(fl_nccl *c, double seconds)
{
    (void)c, (void)seconds;
}

fl_code fl_nccl_allreduce_sum(fl_nccl *c, float *buf, int64_t count, void *stream, fl_error *err)
{
    (void)c, (void)buf, (void)count, (void)stream;
    return no_nccl(err);
}

fl_code fl_nccl_broadcast(fl_nccl *c, float *buf, int64_t count, int root, void *stream, fl_error *err)
{
    (void)c, (void)buf, (void)count, (void)root, (void)stream;
    return no_nccl(err);
}

fl_code fl_nccl_allreduce_start(fl_nccl *c, float *buf, int64_t count, void *stream, fl_nccl_op **op, fl_error *err)
{
    (void)c, (void)buf, (void)count, (void)stream;
    *op = NULL;
    return no_nccl(err);
}

int fl_nccl_op_test(fl_nccl_op *op)
{
    (void)op;
    return 1;
}

fl_code fl_nccl_op_wait(fl_nccl *c, fl_nccl_op *op, void *stream, fl_error *err)
{
    (void)c, (void)op, (void)stream, (void)err;
    return FL_OK;
}

#endif
