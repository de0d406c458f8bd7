/* bench_fmnist.c -- trains a model on Fashion-MNIST through the bridge alone
 * (no data file, no folds) and prints test accuracy and images/s per epoch:
 * the yardstick for the small CNN of the CPU demo.
 *     bench_fmnist [EPOCHS [BACKBONE [THREADS [DIR [DEVICE]]]]]
 *     (defaults: 3 smallcnn 2 /usr/share/datasets/fashion-mnist cpu)
 * DIR holds the four *-idx?-ubyte.gz files (Debian's dataset-fashion-mnist).
 * Adam lr 1e-3 with a cosine schedule per epoch, batch 128, random hflip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "trainer/torch/bridge.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The payload of an IDX file after its header of `skip` bytes; n bytes. */
static uint8_t *read_idx(const char *dir, const char *name, size_t skip, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "rb");
    uint8_t *buf = malloc(skip + n);
    if (!f || !buf || gzread(f, buf, (unsigned)(skip + n)) != (int)(skip + n)) {
        fprintf(stderr, "bench_fmnist: cannot read %zu bytes of %s\n", skip + n, path);
        exit(1);
    }
    gzclose(f);
    memmove(buf, buf + skip, n);
    return buf;
}

int main(int argc, char **argv)
{
    int epochs = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 3 ? atoi(argv[3]) : 2;
    const char *backbone = argc > 2 ? argv[2] : "smallcnn";
    const char *dir = argc > 4 ? argv[4] : "/usr/share/datasets/fashion-mnist", *device = argc > 5 ? argv[5] : "cpu";
    enum { NTR = 60000, NTE = 10000, S = 28 * 28, B = 128, C = 10 };
    uint8_t *xtr = read_idx(dir, "train-images-idx3-ubyte.gz", 16, (size_t)NTR * S);
    uint8_t *ltr = read_idx(dir, "train-labels-idx1-ubyte.gz", 8, NTR);
    uint8_t *xte = read_idx(dir, "t10k-images-idx3-ubyte.gz", 16, (size_t)NTE * S);
    uint8_t *lte = read_idx(dir, "t10k-labels-idx1-ubyte.gz", 8, NTE);
    fl_model_spec spec = {.backbone = backbone,
                          .in_channels = 1,
                          .height = 28,
                          .width = 28,
                          .num_classes = C,
                          .head_type = "linear",
                          .head_act = "relu",
                          .optimizer = "adam",
                          .lr = 1e-3,
                          .mean = {0.2860f},
                          .std = {0.3530f},
                          .seed = 42,
                          .device = device};
    fl_error err;
    fl_model *m;
    if (fl_torch_keep_freed_memory(&err) || fl_torch_set_threads(threads, &err) || fl_model_new(&spec, &m, &err)) {
        fprintf(stderr, "bench_fmnist: %s\n", err.msg);
        return 1;
    }
    int *order = malloc(sizeof *order * NTR);
    uint8_t *x = malloc((size_t)B * S);
    int32_t y[B];
    float *probs = malloc(sizeof *probs * (size_t)1000 * C);
    static fl_augment aug[B]; /* large: not on the stack */
    srand(42);
    for (int i = 0; i < NTR; i++)
        order[i] = i;
    for (int e = 0; e < epochs; e++) {
        double lr = 1e-3 * 0.5 * (1 + cos(M_PI * e / epochs)), loss_sum = 0, t0 = now_s();
        int hits = 0, seen = 0;
        fl_model_set_lr(m, lr, &err);
        for (int i = NTR - 1; i > 0; i--) {
            int j = rand() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int b = 0; b + B <= NTR; b += B) {
            for (int i = 0; i < B; i++) {
                memcpy(x + (size_t)i * S, xtr + (size_t)order[b + i] * S, S);
                y[i] = ltr[order[b + i]];
                aug[i] = (fl_augment){.n_ops = 1, .ops = {{.kind = (rand() & 1) ? FL_AUG_HFLIP : FL_AUG_NONE}}};
            }
            double loss;
            int correct;
            if (fl_model_forward_backward(m, x, y, B, aug, 1.0, &loss, &correct, &err) || fl_model_step(m, &err)) {
                fprintf(stderr, "bench_fmnist: %s\n", err.msg);
                return 1;
            }
            loss_sum += loss;
            hits += correct;
            seen += B;
        }
        double train_s = now_s() - t0, test_loss = 0;
        int test_hits = 0;
        for (int b = 0; b < NTE; b += 1000) {
            int32_t yt[1000];
            double l;
            int c;
            for (int i = 0; i < 1000; i++)
                yt[i] = lte[b + i];
            if (fl_model_predict(m, xte + (size_t)b * S, 1000, NULL, 0, yt, probs, &l, &c, &err)) {
                fprintf(stderr, "bench_fmnist: %s\n", err.msg);
                return 1;
            }
            test_loss += l;
            test_hits += c;
        }
        printf("epoch %d lr %.2e: train loss %.4f acc %.4f, test loss %.4f acc %.4f, %.0f images/s\n", e, lr,
               loss_sum / seen, (double)hits / seen, test_loss / NTE, (double)test_hits / NTE, seen / train_s);
        fflush(stdout);
    }
    fl_model_free(m);
    free(xtr);
    free(ltr);
    free(xte);
    free(lte);
    free(order);
    free(x);
    free(probs);
    return 0;
}
