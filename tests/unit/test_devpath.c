/* test_devpath.c -- the device-resident path of a fold-fused job
 * (trainer/torch/devpath.h) on the CPU, where "the device" is host memory
 * and every result must equal the host-buffer calls of bridge.h bit for bit:
 * - the two staging slots: batches staged one ahead come back from the slot
 *   they went to, embedded (with an augmentation) as fl_model_embed does;
 * - the cache: filled from embedded batches, read back as those features;
 * - a head step from the cache and from the embedded batch equals
 *   fl_model_head_forward_backward on the same rows for a twin head: the
 *   same loss sums (accumulated on the device, read once), the same weights
 *   after the step;
 * - the fit check: $FOLDLINE_DEVICE_FREE_MB below the cache's size leaves it
 *   out with a note of both sizes;
 * - channels_last: which backbones run in it (fl_model_memory_format). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "trainer/torch/bridge.h"
#include "trainer/torch/devpath.h"

#define N    12
#define SIDE 16
#define NCLS 3
#define CH   1

static uint8_t images[N * CH * SIDE * SIDE];
static int32_t labels[N];

static fl_model *model(const char *backbone, uint64_t seed, const fl_model *of, int memory_format)
{
    fl_model_spec s = {.backbone = backbone,
                       .in_channels = CH,
                       .height = SIDE,
                       .width = SIDE,
                       .num_classes = NCLS,
                       .head_type = "mlp3",
                       .head_hidden = 8,
                       .head_act = "gelu",
                       .freeze_backbone = 1,
                       .optimizer = "adam",
                       .lr = 1e-2,
                       .label_smoothing = 0.1,
                       .mean = {0.5f},
                       .std = {0.25f},
                       .seed = seed,
                       .backbone_seed = 99,
                       .backbone_of = of,
                       .memory_format = memory_format};
    fl_error err;
    fl_model *m = NULL;
    if (fl_model_new(&s, &m, &err)) {
        fprintf(stderr, "model: %s\n", err.msg);
        return NULL;
    }
    return m;
}

static const uint8_t *img(int64_t row)
{
    return images + (size_t)row * CH * SIDE * SIDE;
}

static void test_slots_cache_and_head_steps_equal_the_host_calls(void)
{
    fl_error err;
    fl_model *bb = model("smallcnn", 1, NULL, 0), *h0 = bb ? model("smallcnn", 5, bb, 0) : NULL;
    fl_model *twin = bb ? model("smallcnn", 5, bb, 0) : NULL; /* h0's head, trained through the host calls */
    CHECK(bb && h0 && twin);
    if (!bb || !h0 || !twin)
        return;
    int D = fl_model_feature_dim(bb);
    fl_devpath *d = NULL;
    int cached = 0;
    char note[128];
    fl_model *heads[2] = {bb, h0};
    CHECK(fl_devpath_open(heads, 2, N, labels, 6, 1, &d, &cached, note, sizeof note, &err) == FL_OK);
    CHECK(cached == 1 && !strcmp(fl_devpath_device(d), "cpu") && !strcmp(fl_devpath_cache_dtype(d), "float32"));
    CHECK(fl_devpath_cache_bytes(d) == (int64_t)N * D * 4);
    /* The fill: rows 0-5 and 6-11, the second staged before the first is embedded. */
    int64_t order[N];
    for (int i = 0; i < N; i++)
        order[i] = (i * 5) % N; /* a permutation: the cache is by row, not by position */
    CHECK(fl_devpath_epoch(d, order, N, NULL, NULL, NULL, NULL, &err) == FL_OK);
    int s0, s1;
    uint8_t first[6 * CH * SIDE * SIDE], second[6 * CH * SIDE * SIDE];
    for (int i = 0; i < 6; i++) {
        memcpy(first + (size_t)i * CH * SIDE * SIDE, img(order[i]), CH * SIDE * SIDE);
        memcpy(second + (size_t)i * CH * SIDE * SIDE, img(order[6 + i]), CH * SIDE * SIDE);
    }
    CHECK(fl_devpath_stage(d, first, 6, &s0, &err) == FL_OK);
    CHECK(fl_devpath_stage(d, second, 6, &s1, &err) == FL_OK);
    CHECK(s0 != s1);
    CHECK(fl_devpath_embed(d, s0, NULL, 0, &err) == FL_OK && fl_devpath_cache_put(d, 0, &err) == FL_OK);
    CHECK(fl_devpath_embed(d, s1, NULL, 6, &err) == FL_OK && fl_devpath_cache_put(d, 6, &err) == FL_OK);
    float *want = malloc(sizeof(float) * N * D), *got = malloc(sizeof(float) * N * D);
    /* The cache in the order's rows holds what fl_model_embed gives for the same two batches. */
    CHECK(fl_model_embed(bb, first, 6, NULL, -1, want, &err) == FL_OK);
    CHECK(fl_model_embed(bb, second, 6, NULL, -1, want + (size_t)6 * D, &err) == FL_OK);
    CHECK(fl_devpath_cache_get_host(d, order, N, got, &err) == FL_OK);
    CHECK(memcmp(want, got, sizeof(float) * N * D) == 0);

    /* An augmented batch through a slot (the third stage reuses the first slot). */
    fl_augment aug[6];
    memset(aug, 0, sizeof aug);
    for (int i = 0; i < 6; i++) {
        aug[i].n_ops = 1;
        aug[i].ops[0].kind = i % 2 ? FL_AUG_HFLIP : FL_AUG_ROTATE;
        aug[i].ops[0].angle_deg = 7.5f * (float)i;
    }
    int s2;
    CHECK(fl_devpath_stage(d, first, 6, &s2, &err) == FL_OK && s2 == s0);
    CHECK(fl_devpath_embed(d, s2, aug, 0, &err) == FL_OK);
    CHECK(fl_devpath_batch_to_host(d, got, &err) == FL_OK);
    CHECK(fl_model_embed(bb, first, 6, aug, -1, want, &err) == FL_OK);
    CHECK(memcmp(want, got, sizeof(float) * 6 * D) == 0);

    /* An epoch: head 1 (h0) trains on the positions outside "fold" {0, 3}: positions 1, 2, 4, 5
     * once from the cache, once from the augmented batch embedded above (positions 0-5). */
    int64_t pos0[N], pos1[N], c0 = 0, c1 = 0;
    for (int p = 0; p < N; p++) {
        pos0[c0++] = p;
        if (p != 0 && p != 3)
            pos1[c1++] = p;
    }
    const int64_t *pos[2] = {pos0, pos1};
    int64_t count[2] = {c0, c1};
    double loss0[2] = {0.5, 0.25}, correct0[2] = {1, 2};
    CHECK(fl_devpath_epoch(d, order, N, pos, count, loss0, correct0, &err) == FL_OK);
    /* positions 1, 2, 4, 5 are pos1[0..3] */
    CHECK(fl_devpath_head_step(d, 1, 0, 4, 1, 4.0 / 5.0, &err) == FL_OK);
    float *sel = malloc(sizeof(float) * 4 * D), *aug_feats = malloc(sizeof(float) * 6 * D);
    int32_t y[4];
    double l_host = 0, l2 = 0;
    int c_host = 0, c2 = 0;
    int64_t sel_rows[4] = {order[1], order[2], order[4], order[5]};
    CHECK(fl_devpath_cache_get_host(d, sel_rows, 4, sel, &err) == FL_OK);
    for (int i = 0; i < 4; i++)
        y[i] = labels[sel_rows[i]];
    CHECK(fl_model_head_forward_backward(twin, sel, y, 4, 4.0 / 5.0, &l_host, &c_host, &err) == FL_OK);
    CHECK(fl_model_step(h0, &err) == FL_OK && fl_model_step(twin, &err) == FL_OK);
    /* From the augmented batch (positions 0-5 at batch_lo 0): the same positions. */
    CHECK(fl_model_embed(bb, first, 6, aug, -1, aug_feats, &err) == FL_OK);
    int pick[4] = {1, 2, 4, 5};
    for (int i = 0; i < 4; i++)
        memcpy(sel + (size_t)i * D, aug_feats + (size_t)pick[i] * D, sizeof(float) * D);
    CHECK(fl_devpath_head_step(d, 1, 0, 4, 0, 1.0, &err) == FL_OK);
    CHECK(fl_model_head_forward_backward(twin, sel, y, 4, 1.0, &l2, &c2, &err) == FL_OK);
    CHECK(fl_model_step(h0, &err) == FL_OK && fl_model_step(twin, &err) == FL_OK);
    double st[6], last[4];
    CHECK(fl_devpath_read(d, 0, st, &err) == FL_OK && fl_devpath_read(d, 1, last, &err) == FL_OK);
    CHECK(st[0] == 0.5 && st[1] == 1 && st[2] == 0); /* head 0 did not step */
    CHECK(st[3] == (0.25 + l_host) + l2 && st[4] == (2.0 + c_host) + c2 && st[5] == 0);
    CHECK(last[2] == l2 && last[3] == c2);
    /* The heads' weights: the same predictions on every row. */
    float pa[N * NCLS], pb[N * NCLS];
    const float *views[1] = {want};
    for (int i = 0; i < N; i++)
        CHECK(fl_model_embed(bb, img(i), 1, NULL, -1, want + (size_t)i * D, &err) == FL_OK);
    CHECK(fl_model_head_predict(h0, views, 1, N, NULL, pa, NULL, NULL, &err) == FL_OK);
    CHECK(fl_model_head_predict(twin, views, 1, N, NULL, pb, NULL, NULL, &err) == FL_OK);
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    /* Bad positions are refused, not read out of range. */
    CHECK(fl_devpath_head_step(d, 1, 0, c1 + 1, 1, 1.0, &err) == FL_EINTERNAL);
    fl_devpath_close(d);
    free(want);
    free(got);
    free(sel);
    free(aug_feats);
    fl_model_free(twin);
    fl_model_free(h0);
    fl_model_free(bb);
}

static void test_a_cache_that_does_not_fit_is_left_out_with_both_sizes(void)
{
    fl_error err;
    fl_model *bb = model("smallcnn", 1, NULL, 0);
    CHECK(bb != NULL);
    if (!bb)
        return;
    setenv("FOLDLINE_DEVICE_FREE_MB", "0", 1);
    fl_devpath *d = NULL;
    int cached = 1;
    char note[128];
    CHECK(fl_devpath_open(&bb, 1, N, labels, 4, 1, &d, &cached, note, sizeof note, &err) == FL_OK);
    CHECK(cached == 0 && fl_devpath_cache_bytes(d) == 0);
    CHECK(strstr(note, "needs 0 MB, 0 MB free") != NULL); /* 12 rows: well under a MB */
    fl_devpath_close(d);
    unsetenv("FOLDLINE_DEVICE_FREE_MB");
    CHECK(fl_devpath_open(&bb, 1, N, labels, 4, 1, &d, &cached, note, sizeof note, &err) == FL_OK);
    CHECK(cached == 1 && note[0] == '\0');
    fl_devpath_close(d);
    int32_t bad[N];
    memcpy(bad, labels, sizeof bad);
    bad[3] = NCLS;
    CHECK(fl_devpath_open(&bb, 1, N, bad, 4, 1, &d, &cached, note, sizeof note, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "train row 3") != NULL);
    fl_model_free(bb);
}

static void test_channels_last_for_convolutional_backbones_only(void)
{
    struct {
        const char *backbone;
        int memory_format, want;
    } cases[] = {{"resnet18", 2, 2}, {"smallcnn", 2, 2}, {"mlp", 2, 1}, {"resnet18", 0, 1}, {"smallcnn", 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_model *m = model(cases[i].backbone, 1, NULL, cases[i].memory_format);
        CHECK(m != NULL);
        if (!m)
            continue;
        if (fl_model_memory_format(m) != cases[i].want)
            fprintf(stderr, "%s memory_format %d: %d, expected %d\n", cases[i].backbone, cases[i].memory_format,
                    fl_model_memory_format(m), cases[i].want);
        CHECK(fl_model_memory_format(m) == cases[i].want); /* auto (0) on the CPU: contiguous */
        fl_model_free(m);
    }
}

int main(void)
{
    fl_error err;
    if (fl_torch_set_threads(1, &err))
        return 1;
    uint32_t r = 2024;
    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)((r = r * 1664525u + 1013904223u) >> 24);
    for (int i = 0; i < N; i++)
        labels[i] = i % NCLS;
    RUN(test_slots_cache_and_head_steps_equal_the_host_calls);
    RUN(test_a_cache_that_does_not_fit_is_left_out_with_both_sizes);
    RUN(test_channels_last_for_convolutional_backbones_only);
    return check_summary();
}
