/* model_params.c -- foldline's models for tests/torch/test_torchvision.py
 * to compare with torchvision's.
 *   model_params             reads one model a line from stdin:
 *                                BACKBONE IN_CHANNELS CLASSES HEAD HIDDEN ACT FREEZE
 *                            and prints for each: TOTAL TRAINABLE FEATURE_DIM
 *                            (or "error: ...").
 *   model_params forward BACKBONE IN_CHANNELS CLASSES SIZE PATH
 *                            takes one training step (so that batch-norm
 *                            statistics move), saves the model to PATH and
 *                            prints the probabilities of 2 fixed images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/torch/bridge.h"

/* Image i, channel c, row y, column x of the fixed batch (also in the .py). */
static uint8_t pixel(int i, int c, int y, int x)
{
    return (uint8_t)((i * 71 + c * 29 + y * 7 + x * 13 + (x * y) % 17) % 256);
}

static int forward(const char *backbone, int ch, int classes, int size, const char *path)
{
    enum { B = 2 };
    fl_model_spec s = {.backbone = backbone,
                       .in_channels = ch,
                       .height = size,
                       .width = size,
                       .num_classes = classes,
                       .head_type = "linear",
                       .head_act = "relu",
                       .optimizer = "sgd",
                       .lr = 0.0,
                       .mean = {0.485f, 0.456f, 0.406f},
                       .std = {0.229f, 0.224f, 0.225f},
                       .seed = 3,
                       .device = "cpu"};
    fl_model *m;
    fl_error err;
    uint8_t *x = malloc((size_t)B * ch * size * size);
    float *probs = malloc(sizeof(float) * B * (size_t)classes);
    int32_t y[B] = {0, 1 % classes};
    double loss;
    int correct;
    for (int i = 0; i < B; i++)
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < size; r++)
                for (int q = 0; q < size; q++)
                    x[(((size_t)i * ch + c) * size + r) * size + q] = pixel(i, c, r, q);
    if (fl_model_new(&s, &m, &err) || fl_model_forward_backward(m, x, y, B, NULL, 1.0, &loss, &correct, &err) ||
        fl_model_step(m, &err) || fl_model_save(m, path, NULL, &err) ||
        fl_model_predict(m, x, B, NULL, 0, NULL, probs, NULL, NULL, &err)) {
        printf("error: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < B * classes; i++)
        printf("%.9g\n", probs[i]);
    fl_model_free(m);
    free(x);
    free(probs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "forward") == 0)
        return forward(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    char backbone[32], head[16], act[16], line[256];
    int in_channels, classes, hidden, freeze;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "%31s %d %d %15s %d %15s %d", backbone, &in_channels, &classes, head, &hidden, act, &freeze) !=
            7)
            continue;
        fl_model_spec s = {.backbone = backbone,
                           .in_channels = in_channels,
                           .height = 32,
                           .width = 32,
                           .num_classes = classes,
                           .head_type = head,
                           .head_hidden = hidden,
                           .head_act = act,
                           .freeze_backbone = freeze,
                           .optimizer = "adam",
                           .lr = 1e-3,
                           .mean = {0.5f, 0.5f, 0.5f},
                           .std = {0.5f, 0.5f, 0.5f},
                           .seed = 1,
                           .device = "cpu"};
        fl_model *m;
        fl_error err;
        if (fl_model_new(&s, &m, &err)) {
            printf("error: %s\n", err.msg);
            continue;
        }
        printf("%lld %lld %d\n", (long long)fl_model_num_params(m, 0), (long long)fl_model_num_params(m, 1),
               fl_model_feature_dim(m));
        fflush(stdout);
        fl_model_free(m);
    }
    return 0;
}
