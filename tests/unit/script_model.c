/* script_model.c -- a "torchscript:PATH" model through the bridge, for
 * tests/torch/test_torchscript.py to compare with PyTorch running the same
 * module in Python.
 *
 *   script_model PATH CH SIZE FREEZE SCALE STEPS CKPT
 *
 * builds the model (3 classes, linear head, Adam lr 1e-2, ImageNet mean and
 * std, backbone_lr_scale SCALE), takes STEPS training steps on 2 fixed images
 * (2, CH, SIZE, SIZE), saves the model to CKPT, and prints:
 *   dim D
 *   params TOTAL TRAINABLE
 *   the features (2, D) of the fixed images, one value a line (fl_model_features)
 *   reload same|differ   a fresh model loaded from CKPT gives the same features
 *   (CKPT "-": no checkpoint, "reload skipped")
 * or "error: MESSAGE" with exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/torch/bridge.h"

enum { B = 2, CLASSES = 3 };

/* Image i, channel c, row y, column x of the fixed batch (also in the .py). */
static uint8_t pixel(int i, int c, int y, int x)
{
    return (uint8_t)((i * 71 + c * 29 + y * 7 + x * 13 + (x * y) % 17) % 256);
}

static int fail(fl_error *err)
{
    printf("error: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: script_model PATH CH SIZE FREEZE SCALE STEPS CKPT\n");
        return 2;
    }
    char backbone[4200];
    snprintf(backbone, sizeof backbone, "torchscript:%s", argv[1]);
    int ch = atoi(argv[2]), size = atoi(argv[3]), steps = atoi(argv[6]);
    const char *ckpt = argv[7];
    fl_model_spec s = {.backbone = backbone,
                       .in_channels = ch,
                       .height = size,
                       .width = size,
                       .num_classes = CLASSES,
                       .head_type = "linear",
                       .head_act = "relu",
                       .freeze_backbone = atoi(argv[4]),
                       .backbone_lr_scale = atof(argv[5]),
                       .optimizer = "adam",
                       .lr = 1e-2,
                       .mean = {0.485f, 0.456f, 0.406f},
                       .std = {0.229f, 0.224f, 0.225f},
                       .seed = 3,
                       .device = "cpu"};
    fl_model *m = NULL, *again = NULL;
    fl_error err;
    size_t n = (size_t)B * ch * size * size;
    uint8_t *x = malloc(n);
    int32_t y[B] = {0, 2};
    for (int i = 0; i < B; i++)
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < size; r++)
                for (int q = 0; q < size; q++)
                    x[(((size_t)i * ch + c) * size + r) * size + q] = pixel(i, c, r, q);
    fl_torch_set_threads(1, &err);
    if (fl_model_new(&s, &m, &err))
        return fail(&err);
    int dim = fl_model_feature_dim(m);
    float *feats = malloc(sizeof(float) * B * (size_t)dim), *feats2 = malloc(sizeof(float) * B * (size_t)dim);
    for (int t = 0; t < steps; t++)
        if (fl_model_forward_backward(m, x, y, B, NULL, 1.0, NULL, NULL, &err) || fl_model_step(m, &err))
            return fail(&err);
    int reload = strcmp(ckpt, "-") != 0; /* "-": no checkpoint (the largest backbones) */
    if (fl_model_features(m, x, B, feats, &err) || (reload && fl_model_save(m, ckpt, NULL, &err)))
        return fail(&err);
    printf("dim %d\nparams %lld %lld\n", dim, (long long)fl_model_num_params(m, 0),
           (long long)fl_model_num_params(m, 1));
    for (int i = 0; i < B * dim; i++)
        printf("%.9g\n", feats[i]);
    if (!reload)
        printf("reload skipped\n");
    else if (fl_model_new(&s, &again, &err) || fl_model_load(again, ckpt, NULL, 0, &err) ||
             fl_model_features(again, x, B, feats2, &err))
        return fail(&err);
    else
        printf("reload %s\n", memcmp(feats, feats2, sizeof(float) * B * (size_t)dim) ? "differ" : "same");
    fl_model_free(m);
    fl_model_free(again);
    free(x);
    free(feats);
    free(feats2);
    return 0;
}
