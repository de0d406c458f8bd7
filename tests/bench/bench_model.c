/* bench_model.c -- training and prediction throughput of one model through
 * the bridge, on random images and labels:
 *     bench_model [BACKBONE C H W BATCH STEPS THREADS DEVICE PRECISION MEMORY_FORMAT FROZEN]
 *     (defaults: smallcnn 1 28 28 128 20 2 cpu fp32 0 0; MEMORY_FORMAT as
 *     fl_model_spec.memory_format: 0 auto, 1 contiguous, 2 channels_last;
 *     FROZEN 1: a frozen backbone, so that "train" is the frozen recipe's step
 *     and "predict" the backbone's forward, as tests/gpu/seed_scale.sh wants)
 * Prints images/s of forward_backward + step (after 3 warm-up steps; from the
 * median step time and from the fastest, which is what a quiet machine
 * gives) and of predict: what the CPU demo and the GPU check want to know. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "trainer/torch/bridge.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *backbone = argc > 1 ? argv[1] : "smallcnn", *device = argc > 8 ? argv[8] : "cpu";
    int C = argc > 2 ? atoi(argv[2]) : 1, H = argc > 3 ? atoi(argv[3]) : 28, W = argc > 4 ? atoi(argv[4]) : 28;
    int B = argc > 5 ? atoi(argv[5]) : 128, steps = argc > 6 ? atoi(argv[6]) : 20,
        threads = argc > 7 ? atoi(argv[7]) : 2;
    const char *precision = argc > 9 ? argv[9] : "fp32";
    int memory_format = argc > 10 ? atoi(argv[10]) : 0, frozen = argc > 11 ? atoi(argv[11]) : 0;
    fl_error err;
    fl_model *m = NULL;
    fl_model_spec s = {.backbone = backbone,
                       .in_channels = C,
                       .height = H,
                       .width = W,
                       .num_classes = 10,
                       .head_type = "linear",
                       .head_act = "relu",
                       .optimizer = "adam",
                       .lr = 1e-3,
                       .mean = {0.5f, 0.5f, 0.5f},
                       .std = {0.25f, 0.25f, 0.25f},
                       .seed = 1,
                       .device = device,
                       .precision = precision,
                       .memory_format = memory_format,
                       .freeze_backbone = frozen};
    if (fl_torch_keep_freed_memory(&err) || fl_torch_set_threads(threads, &err) || fl_model_new(&s, &m, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    size_t n = (size_t)B * C * H * W;
    uint8_t *x = malloc(n);
    int32_t *y = malloc(sizeof *y * (size_t)B);
    float *probs = malloc(sizeof *probs * (size_t)B * 10);
    fl_augment *aug = calloc((size_t)B, sizeof *aug);
    for (size_t i = 0; i < n; i++)
        x[i] = (uint8_t)(rand() & 255);
    for (int i = 0; i < B; i++) {
        y[i] = rand() % 10;
        aug[i].n_ops = 2;
        aug[i].ops[0].kind = (i & 1) ? FL_AUG_HFLIP : FL_AUG_NONE;
        aug[i].ops[1].kind = FL_AUG_ROTATE;
        aug[i].ops[1].angle_deg = (i % 4 == 0) ? 10.0f : 0.0f;
    }
    /* Per-step times: the median, and the fastest step (what a quiet machine gives). */
    double *dt = malloc(sizeof *dt * (size_t)steps), loss;
    int correct;
    for (int i = -3; i < steps; i++) {
        double t0 = now_s();
        if (fl_model_forward_backward(m, x, y, B, aug, 1.0, &loss, &correct, &err) || fl_model_step(m, &err)) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
        if (i >= 0)
            dt[i] = now_s() - t0;
    }
    qsort(dt, (size_t)steps, sizeof *dt, cmp_double);
    double train_median = B / dt[steps / 2], train_best = B / dt[0];
    double t0 = now_s();
    for (int i = 0; i < steps; i++)
        if (fl_model_predict(m, x, B, NULL, 0, NULL, probs, NULL, NULL, &err)) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
    double pred = steps * B / (now_s() - t0);
    printf("%s %dx%dx%d batch %d, %d thread%s, %s %s%s: train %.0f images/s (median step; fastest %.0f), "
           "predict %.0f images/s, %lld params\n",
           backbone, C, H, W, B, threads, threads == 1 ? "" : "s", device, precision, frozen ? " frozen" : "",
           train_median, train_best, pred, (long long)fl_model_num_params(m, 0));
    free(dt);
    fl_model_free(m);
    free(x);
    free(y);
    free(probs);
    free(aug);
    return 0;
}
