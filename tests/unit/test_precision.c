/* test_precision.c -- mixed precision in the libtorch bridge (bridge.h,
 * spec.precision): a frozen ResNet-18's features under bf16 autocast against
 * float32 within the documented tolerance, the features leave the backbone in
 * bfloat16 (widened exactly), autocast is off again after every call, heads
 * train in float32 from them, fp16 is refused on the CPU, and only fp16 with
 * a trained backbone scales its loss.
 *
 * The tolerance (docs/gpus.md): the relative L2 error of a batch's
 * features, ||bf16 - fp32|| / ||fp32||, is at most 0.03 (measured here:
 * about 0.01; bfloat16 keeps 8 bits of mantissa, 2^-9 = 0.002 per rounding,
 * and a ResNet-18 rounds at every convolution). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "trainer/torch/bridge.h"

#define B         8
#define SIDE      32
#define NCLS      5
#define TOLERANCE 0.03

static uint8_t images[B * 3 * SIDE * SIDE];
static int32_t labels[B];

static fl_model_spec resnet_spec(const char *precision, int frozen)
{
    fl_model_spec s = {.backbone = "resnet18",
                       .in_channels = 3,
                       .height = SIDE,
                       .width = SIDE,
                       .num_classes = NCLS,
                       .freeze_backbone = frozen,
                       .optimizer = "adam",
                       .lr = 1e-3,
                       .mean = {0.5f, 0.5f, 0.5f},
                       .std = {0.25f, 0.25f, 0.25f},
                       .seed = 11,
                       .device = "cpu",
                       .precision = precision};
    return s;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d / s);
}

/* 1 if every value is a bfloat16 (its low 16 bits are zero). */
static int all_bf16(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        if (u & 0xffffu)
            return 0;
    }
    return 1;
}

static void test_bf16_features_match_fp32_within_tolerance(void)
{
    fl_error err;
    fl_model_spec s32 = resnet_spec("fp32", 1), s16 = resnet_spec("bf16", 1);
    fl_model *m32 = NULL, *m16 = NULL;
    CHECK(fl_model_new(&s32, &m32, &err) == FL_OK);
    CHECK(fl_model_new(&s16, &m16, &err) == FL_OK);
    if (!m32 || !m16)
        return;
    int D = fl_model_feature_dim(m32);
    float *f32 = malloc(sizeof(float) * B * D), *f16 = malloc(sizeof(float) * B * D),
          *again = malloc(sizeof(float) * B * D);
    CHECK(fl_model_features(m32, images, B, f32, &err) == FL_OK);
    CHECK(fl_model_embed(m16, images, B, NULL, -1, f16, &err) == FL_OK);
    double e = rel_err(f16, f32, (size_t)B * D);
    printf("     bf16 features vs fp32: relative L2 error %.4f (tolerance %.2f)\n", e, TOLERANCE);
    CHECK(e < TOLERANCE);
    CHECK(e > 0);                        /* autocast ran: not the float32 features */
    CHECK(all_bf16(f16, (size_t)B * D)); /* in bfloat16 out of the backbone, widened exactly */
    CHECK(!all_bf16(f32, (size_t)B * D));
    /* Autocast is off again: the fp32 model gives its own bits after the bf16 one ran. */
    CHECK(fl_model_features(m32, images, B, again, &err) == FL_OK);
    CHECK(memcmp(again, f32, sizeof(float) * B * D) == 0);
    fl_model_free(m16);
    fl_model_free(m32);
    free(f32);
    free(f16);
    free(again);
}

static void test_bf16_heads_train_in_fp32_and_predict(void)
{
    fl_error err;
    fl_model_spec s = resnet_spec("bf16", 1);
    s.lr = 1e-2;
    fl_model *m = NULL;
    CHECK(fl_model_new(&s, &m, &err) == FL_OK);
    if (!m)
        return;
    int D = fl_model_feature_dim(m);
    float *f = malloc(sizeof(float) * B * D), probs[B * NCLS];
    CHECK(fl_model_embed(m, images, B, NULL, -1, f, &err) == FL_OK);
    double l0 = 0, l = 0, ls;
    int c;
    for (int i = 0; i < 20; i++) {
        CHECK(fl_model_head_forward_backward(m, f, labels, B, 1.0, &l, &c, &err) == FL_OK);
        CHECK(fl_model_step(m, &err) == FL_OK);
        if (i == 0)
            l0 = l;
    }
    printf("     head loss %.4f -> %.4f\n", l0, l);
    CHECK(l < l0 * 0.5); /* the float32 head learns the batch */
    CHECK(fl_model_predict(m, images, B, NULL, 0, labels, probs, &ls, &c, &err) == FL_OK);
    for (int i = 0; i < B; i++) {
        double sum = 0;
        for (int k = 0; k < NCLS; k++)
            sum += probs[i * NCLS + k];
        CHECK(fabs(sum - 1) < 1e-5);
    }
    CHECK(fl_model_loss_scale(m, NULL, NULL) == 0); /* bf16 needs no loss scaling */
    fl_model_free(m);
    free(f);
}

static void test_bf16_trained_backbone_steps_finite_and_differs_from_fp32(void)
{
    fl_error err;
    fl_model_spec s32 = resnet_spec("fp32", 0), s16 = resnet_spec("bf16", 0);
    fl_model *m32 = NULL, *m16 = NULL;
    CHECK(fl_model_new(&s32, &m32, &err) == FL_OK);
    CHECK(fl_model_new(&s16, &m16, &err) == FL_OK);
    if (!m32 || !m16)
        return;
    double l32, l16;
    int c;
    CHECK(fl_model_forward_backward(m32, images, labels, B, NULL, 1.0, &l32, &c, &err) == FL_OK);
    CHECK(fl_model_forward_backward(m16, images, labels, B, NULL, 1.0, &l16, &c, &err) == FL_OK);
    CHECK(isfinite(l16) && l16 != l32 && fabs(l16 - l32) < 0.05 * fabs(l32));
    CHECK(fl_model_step(m16, &err) == FL_OK);
    fl_model_free(m16);
    fl_model_free(m32);
}

static void test_fp16_is_refused_on_the_cpu_and_bad_names_too(void)
{
    fl_error err;
    fl_model *m = NULL;
    fl_model_spec s = resnet_spec("fp16", 0);
    CHECK(fl_model_new(&s, &m, &err) == FL_EINPUT);
    CHECK(m == NULL);
    CHECK(strstr(err.msg, "\"fp16\" needs a CUDA device") != NULL);
    CHECK(strstr(err.msg, "HINT: use \"bf16\"") != NULL);
    s = resnet_spec("fp8", 0);
    CHECK(fl_model_new(&s, &m, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "precision \"fp8\"") != NULL);
    s = resnet_spec("bf16", 0);
    CHECK(fl_model_new(&s, &m, &err) == FL_OK);
    CHECK(fl_model_loss_scale(m, NULL, NULL) == 0);
    CHECK(fl_model_set_loss_scale(m, 1024, 0, &err) == FL_EINPUT);
    fl_model_free(m);
}

int main(void)
{
    fl_error err;
    if (fl_torch_set_threads(1, &err) != FL_OK)
        return 1;
    uint32_t r = 2024;
    for (size_t i = 0; i < sizeof images; i++) {
        r = r * 1664525u + 1013904223u;
        images[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < B; i++)
        labels[i] = i % NCLS;
    RUN(test_bf16_features_match_fp32_within_tolerance);
    RUN(test_bf16_heads_train_in_fp32_and_predict);
    RUN(test_bf16_trained_backbone_steps_finite_and_differs_from_fp32);
    RUN(test_fp16_is_refused_on_the_cpu_and_bad_names_too);
    return check_summary();
}
