/* nccl_step.c -- one data-parallel training step through NCCL, for
 * tests/gpu/check.sh on a machine with a GPU (it cannot run without one).
 *
 * A one-rank NCCL communicator (the whole MPI world, one process) sums the
 * gradients of a ResNet-18 step on cuda:0 on the model's CUDA stream, the
 * way a rank group does; the sum over one rank is the rank's own gradient, so
 * the step must give the same probabilities as the step without the
 * all-reduce, bit for bit. The weights are also broadcast from rank 0
 * through NCCL, which must change nothing. Prints one PASS or FAIL line.
 *
 *     nccl_step [--heads N BACKBONE SIDE CLASSES]
 * --heads also times the all-reduce of a fold-fused job's heads: N heads
 * (Linear(D, CLASSES)) on one frozen BACKBONE (e.g. "torchscript:eva02.pt")
 * of SIDE px images, one head step each on fixed features, their gradients
 * summed in one call as trainer/fused.c does; prints one "heads:" line with
 * the buffer's size and the mean time of 20 all-reduces. */
#include <mpi.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/nccl.h"
#include "trainer/torch/bridge.h"

#define B    8
#define SIDE 32
#define NCLS 5

typedef struct {
    fl_nccl *nccl;
    void *stream;
} comm_ctx;

static fl_code nccl_sum(float *buf, int64_t count, void *ctx, fl_error *err)
{
    comm_ctx *c = ctx;
    return fl_nccl_allreduce_sum(c->nccl, buf, count, c->stream, err);
}

static fl_code nccl_bcast(float *buf, int64_t count, void *ctx, fl_error *err)
{
    comm_ctx *c = ctx;
    return fl_nccl_broadcast(c->nccl, buf, count, 0, c->stream, err);
}

static fl_model *model_new(fl_error *err)
{
    fl_model_spec s = {.backbone = "resnet18",
                       .in_channels = 3,
                       .height = SIDE,
                       .width = SIDE,
                       .num_classes = NCLS,
                       .head_type = "linear",
                       .head_act = "relu",
                       .optimizer = "sgd",
                       .lr = 0.05,
                       .momentum = 0.9,
                       .mean = {0.5f, 0.5f, 0.5f},
                       .std = {0.25f, 0.25f, 0.25f},
                       .seed = 7,
                       .device = "cuda:0"};
    fl_model *m = NULL;
    return fl_model_new(&s, &m, err) == FL_OK ? m : NULL;
}

/* One step on (x, y), with the gradients summed through c when c is given;
 * then the probabilities of x into probs. */
static fl_code step(fl_model *m, comm_ctx *c, const uint8_t *x, const int32_t *y, float *probs, fl_error *err)
{
    double loss;
    int correct;
    fl_code rc = fl_model_forward_backward(m, x, y, B, NULL, 1.0, &loss, &correct, err);
    if (!rc && c)
        rc = fl_model_grads_reduce(m, 0, nccl_sum, c, err);
    if (!rc)
        rc = fl_model_step(m, err);
    if (!rc && c)
        rc = fl_model_state_broadcast(m, FL_STATE_PARAMS | FL_STATE_BUFFERS, 0, nccl_bcast, c, err);
    if (!rc)
        rc = fl_model_predict(m, x, B, NULL, 0, NULL, probs, NULL, NULL, err);
    return rc;
}

/* The --heads timing; 0 when it passed. */
static int heads_allreduce(comm_ctx *c, int n, const char *backbone, int side, int classes)
{
    fl_error err;
    memset(&err, 0, sizeof err);
    fl_model *ms[16] = {0};
    fl_code rc = n >= 1 && n <= 16 ? FL_OK : fl_fail(&err, FL_EINPUT, "--heads N: 1 to 16");
    for (int i = 0; i < n && !rc; i++) {
        fl_model_spec s = {.backbone = backbone,
                           .in_channels = 3,
                           .height = side,
                           .width = side,
                           .num_classes = classes,
                           .freeze_backbone = 1,
                           .optimizer = "adam",
                           .lr = 1e-3,
                           .mean = {0.5f, 0.5f, 0.5f},
                           .std = {0.25f, 0.25f, 0.25f},
                           .seed = 7 + (uint64_t)i,
                           .backbone_of = i ? ms[0] : NULL,
                           .device = "cuda:0",
                           .precision = "bf16"};
        rc = fl_model_new(&s, &ms[i], &err);
    }
    int D = rc ? 0 : fl_model_feature_dim(ms[0]), rows = 64;
    float *f = rc ? NULL : malloc(sizeof *f * (size_t)rows * D);
    int32_t y[64];
    for (int i = 0; f && i < rows * D; i++)
        f[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (int i = 0; i < rows; i++)
        y[i] = i % classes;
    for (int i = 0; i < n && !rc; i++) {
        double loss;
        int correct;
        rc = fl_model_head_forward_backward(ms[i], f, y, rows, 1.0, &loss, &correct, &err);
    }
    double ms_sum = 0;
    const int reps = 20;
    for (int r = -2; r < reps && !rc; r++) { /* it returns once the sum is unpacked into the gradients */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = fl_models_grads_reduce(ms, n, 0, nccl_sum, c, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r >= 0)
            ms_sum += 1e3 * ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
    int64_t params = 0;
    for (int i = 0; i < n && !rc; i++)
        params += fl_model_num_params(ms[i], 1);
    if (rc)
        printf("heads: FAIL: %s\n", err.msg);
    else
        printf("heads: %d heads Linear(%d, %d) on %s, %.1f MB of gradients: 1-rank NCCL all-reduce %.3f ms (mean of "
               "%d)\n",
               n, D, classes, backbone, (double)params * 4 / (1 << 20), ms_sum / reps, reps);
    for (int i = n - 1; i >= 0; i--)
        fl_model_free(ms[i]);
    free(f);
    return rc != FL_OK;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    fl_error err;
    memset(&err, 0, sizeof err);
    static uint8_t x[B * 3 * SIDE * SIDE];
    int32_t y[B];
    float plain[B * NCLS], reduced[B * NCLS];
    uint32_t r = 12345;
    for (size_t i = 0; i < sizeof x; i++)
        x[i] = (uint8_t)((r = r * 1664525u + 1013904223u) >> 24);
    for (int i = 0; i < B; i++)
        y[i] = i % NCLS;
    comm_ctx c = {0};
    fl_model *a = model_new(&err), *b = a ? model_new(&err) : NULL;
    fl_code rc = a && b ? FL_OK : FL_ETORCH;
    if (!rc)
        rc = fl_nccl_open(MPI_COMM_WORLD, 0, &c.nccl, &err);
    if (!rc) {
        c.stream = fl_model_cuda_stream(b);
        fl_nccl_set_timeout(c.nccl, 60);
        rc = step(a, NULL, x, y, plain, &err);
    }
    if (!rc)
        rc = step(b, &c, x, y, reduced, &err);
    int same = !rc && memcmp(plain, reduced, sizeof plain) == 0;
    if (rc)
        printf("nccl_step: FAIL: %s\n", err.msg);
    else
        printf("nccl_step: %s: a ResNet-18 SGD step on cuda:0 with its gradients all-reduced and its weights "
               "broadcast through a 1-rank NCCL communicator %s the step without them (p[0][0] %.6f vs %.6f)\n",
               same ? "PASS" : "FAIL", same ? "equals" : "differs from", plain[0], reduced[0]);
    fl_model_free(a);
    fl_model_free(b);
    if (same && argc == 6 && !strcmp(argv[1], "--heads"))
        same = heads_allreduce(&c, atoi(argv[2]), argv[3], atoi(argv[4]), atoi(argv[5])) == 0;
    fl_nccl_close(c.nccl);
    MPI_Finalize();
    return same ? 0 : 1;
}
