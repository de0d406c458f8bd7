/* test_model.c -- properties of the libtorch bridge's models (bridge.h):
 * sizes, freezing, learning, determinism, checkpoints, augmentation, label
 * smoothing, test-time flips and input errors. Mostly the small CNN on tiny
 * images, so that the whole file runs in seconds on two CPU cores.
 *
 * FOLDLINE_TEST_DEVICE=cuda runs the models on a GPU (tests/gpu/); there
 * "bit for bit" becomes "within 1e-5", since cuDNN promises no more. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "trainer/torch/bridge.h"

#define NCLS 4
#define SIDE 12

/* ---- helpers ---------------------------------------------------------------- */

static uint32_t rng_state = 12345;
static uint32_t rng_next(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static const char *test_device = "cpu";

/* Equal bit for bit on the CPU; within 1e-5 elsewhere. */
static int same_floats(const float *a, const float *b, size_t n)
{
    if (strcmp(test_device, "cpu") == 0)
        return memcmp(a, b, sizeof(float) * n) == 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > 1e-5f)
            return 0;
    return 1;
}

static fl_model_spec small_spec(void)
{
    fl_model_spec s = {.backbone = "smallcnn",
                       .in_channels = 1,
                       .height = SIDE,
                       .width = SIDE,
                       .num_classes = NCLS,
                       .head_type = "linear",
                       .head_hidden = 0,
                       .head_act = "relu",
                       .optimizer = "adam",
                       .lr = 1e-2,
                       .mean = {0.5f, 0.5f, 0.5f},
                       .std = {0.25f, 0.25f, 0.25f},
                       .seed = 7,
                       .device = test_device};
    return s;
}

static fl_model *model_new(const fl_model_spec *s)
{
    fl_model *m = NULL;
    fl_error err;
    if (fl_model_new(s, &m, &err) != FL_OK) {
        fprintf(stderr, "fl_model_new: %s\n", err.msg);
        return NULL;
    }
    return m;
}

/* A separable problem: class k is a bright 4x4 square in quadrant k of a
 * noisy SIDE x SIDE grey image. x: (B, 1, SIDE, SIDE), y: (B). */
static void make_batch(uint8_t *x, int32_t *y, int B)
{
    for (int i = 0; i < B; i++) {
        int k = (int)(rng_next() % NCLS);
        int y0 = (k / 2) * (SIDE / 2) + 1, x0 = (k % 2) * (SIDE / 2) + 1;
        y[i] = k;
        for (int r = 0; r < SIDE; r++)
            for (int c = 0; c < SIDE; c++) {
                int v = (int)(rng_next() % 80);
                if (r >= y0 && r < y0 + 4 && c >= x0 && c < x0 + 4)
                    v += 150;
                x[(size_t)i * SIDE * SIDE + r * SIDE + c] = (uint8_t)v;
            }
    }
}

static void random_bytes(uint8_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (uint8_t)rng_next();
}

/* n steps of forward_backward + step on fresh batches of B; returns the mean
 * loss of the last step, or -1 on an error. */
static double train_steps(fl_model *m, int n, int B)
{
    uint8_t *x = malloc((size_t)B * SIDE * SIDE);
    int32_t *y = malloc(sizeof *y * (size_t)B);
    double loss = -1;
    fl_error err;
    for (int s = 0; s < n; s++) {
        int correct;
        make_batch(x, y, B);
        if (fl_model_forward_backward(m, x, y, B, NULL, 1.0, &loss, &correct, &err) || fl_model_step(m, &err)) {
            fprintf(stderr, "training: %s\n", err.msg);
            loss = -1;
            break;
        }
        loss /= B;
    }
    free(x);
    free(y);
    return loss;
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* ---- sizes --------------------------------------------------------------------- */

static void test_resnet18_with_10_classes_has_11181642_params(void)
{
    fl_model_spec s = small_spec();
    s.backbone = "resnet18";
    s.in_channels = 3;
    s.height = s.width = 32;
    s.num_classes = 10;
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    CHECK(fl_model_num_params(m, 0) == 11181642);
    CHECK(fl_model_num_params(m, 1) == 11181642);
    CHECK(fl_model_feature_dim(m) == 512);
    fl_model_free(m);
}

static void test_resnet34_and_resnet50_have_torchvisions_param_counts(void)
{
    /* torchvision.models.resnet34(num_classes=10), resnet50(num_classes=10) */
    const char *names[2] = {"resnet34", "resnet50"};
    const int64_t params[2] = {21289802, 23528522};
    const int dims[2] = {512, 2048};
    for (int i = 0; i < 2; i++) {
        fl_model_spec s = small_spec();
        s.backbone = names[i];
        s.in_channels = 3;
        s.height = s.width = 32;
        s.num_classes = 10;
        fl_model *m = model_new(&s);
        CHECK(m);
        if (!m)
            continue;
        CHECK(fl_model_num_params(m, 0) == params[i]);
        CHECK(fl_model_feature_dim(m) == dims[i]);
        fl_model_free(m);
    }
}

static void test_frozen_backbone_trains_only_the_head(void)
{
    fl_model_spec s = small_spec();
    s.freeze_backbone = 1;
    s.head_type = "mlp3";
    s.head_hidden = 16;
    s.head_act = "gelu";
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    int64_t d = fl_model_feature_dim(m), head = d * 16 + 16 + 16 * NCLS + NCLS;
    CHECK(fl_model_num_params(m, 1) == head);
    CHECK(fl_model_num_params(m, 0) > head);
    fl_model_free(m);
}

/* ---- training ------------------------------------------------------------------ */

/* Returns 1 when a few steps leave the backbone's features (eval mode, so
 * weights and batch-norm statistics) bit for bit as they were. */
static int features_survive_training(int freeze)
{
    fl_model_spec s = small_spec();
    s.freeze_backbone = freeze;
    fl_model *m = model_new(&s);
    if (!m)
        return -1;
    int B = 8, d = fl_model_feature_dim(m);
    uint8_t x[8 * SIDE * SIDE];
    int32_t y[8];
    float *before = malloc(sizeof(float) * B * d), *after = malloc(sizeof(float) * B * d);
    fl_error err;
    make_batch(x, y, B);
    int same = -1;
    if (fl_model_features(m, x, B, before, &err) == FL_OK && train_steps(m, 3, 16) >= 0 &&
        fl_model_features(m, x, B, after, &err) == FL_OK)
        same = same_floats(before, after, (size_t)B * d);
    free(before);
    free(after);
    fl_model_free(m);
    return same;
}

static void test_frozen_backbone_keeps_its_features_through_training(void)
{
    CHECK(features_survive_training(1) == 1);
    CHECK(features_survive_training(0) == 0); /* the control: a trained backbone moves */
}

static void test_smallcnn_learns_a_separable_problem(void)
{
    fl_model_spec s = small_spec();
    s.lr = 3e-3;
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    double first = train_steps(m, 1, 32), last = train_steps(m, 150, 32);
    CHECK(first > 0 && last >= 0 && last < 0.1 * first);
    enum { B = 256 };
    static uint8_t x[B * SIDE * SIDE];
    static float probs[B * NCLS];
    int32_t y[B];
    int correct = 0;
    double loss = 0;
    fl_error err;
    make_batch(x, y, B);
    CHECK(fl_model_predict(m, x, B, NULL, 0, y, probs, &loss, &correct, &err) == FL_OK);
    CHECK(correct >= B - 2);
    printf("     first loss %.3f, last %.4f, held-out accuracy %d/%d\n", first, last, correct, B);
    fl_model_free(m);
}

/* Probabilities (8, NCLS) of a model of this seed after 5 steps on batches of seed 99. */
static void probs_after_training(uint64_t seed, float *probs)
{
    fl_model_spec s = small_spec();
    s.seed = seed;
    fl_model *m = model_new(&s);
    uint8_t x[8 * SIDE * SIDE];
    int32_t y[8];
    fl_error err;
    rng_state = 99;
    if (!m || train_steps(m, 5, 16) < 0 ||
        (make_batch(x, y, 8), fl_model_predict(m, x, 8, NULL, 0, NULL, probs, NULL, NULL, &err)))
        memset(probs, 0, sizeof(float) * 8 * NCLS);
    fl_model_free(m);
}

static void test_same_seed_gives_the_same_probabilities(void)
{
    float a[8 * NCLS], b[8 * NCLS];
    probs_after_training(5, a);
    probs_after_training(5, b);
    CHECK(a[0] != 0 && same_floats(a, b, 8 * NCLS));
}

static void test_different_seeds_give_different_probabilities(void)
{
    float a[8 * NCLS], b[8 * NCLS];
    probs_after_training(5, a);
    probs_after_training(6, b);
    CHECK(a[0] != 0 && max_abs_diff(a, b, 8 * NCLS) > 1e-4f);
}

static void test_lr_zero_keeps_the_head_still(void)
{
    fl_model_spec s = small_spec();
    s.freeze_backbone = 1; /* eval-mode backbone: nothing but the head could move */
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    uint8_t x[8 * SIDE * SIDE];
    int32_t y[8];
    float p0[8 * NCLS], p1[8 * NCLS], p2[8 * NCLS];
    fl_error err;
    make_batch(x, y, 8);
    CHECK(fl_model_predict(m, x, 8, NULL, 0, NULL, p0, NULL, NULL, &err) == FL_OK);
    CHECK(fl_model_set_lr(m, 0.0, &err) == FL_OK);
    CHECK(train_steps(m, 2, 16) >= 0);
    CHECK(fl_model_predict(m, x, 8, NULL, 0, NULL, p1, NULL, NULL, &err) == FL_OK);
    CHECK(same_floats(p0, p1, 8 * NCLS));
    CHECK(fl_model_set_lr(m, 0.05, &err) == FL_OK);
    CHECK(train_steps(m, 2, 16) >= 0);
    CHECK(fl_model_predict(m, x, 8, NULL, 0, NULL, p2, NULL, NULL, &err) == FL_OK);
    CHECK(max_abs_diff(p0, p2, 8 * NCLS) > 1e-3f);
    CHECK(fl_model_set_lr(m, -1.0, &err) == FL_EINPUT);
    fl_model_free(m);
}

/* Largest change of the probabilities over one SGD step (lr 1) of a head under clip. */
static float change_of_one_step(double clip)
{
    fl_model_spec s = small_spec();
    s.freeze_backbone = 1;
    s.optimizer = "sgd";
    s.lr = 1.0;
    s.clip_grad_norm = clip;
    fl_model *m = model_new(&s);
    uint8_t x[8 * SIDE * SIDE];
    int32_t y[8];
    float p0[8 * NCLS], p1[8 * NCLS];
    fl_error err;
    float d = -1;
    make_batch(x, y, 8);
    if (m && fl_model_predict(m, x, 8, NULL, 0, NULL, p0, NULL, NULL, &err) == FL_OK && train_steps(m, 1, 16) >= 0 &&
        fl_model_predict(m, x, 8, NULL, 0, NULL, p1, NULL, NULL, &err) == FL_OK)
        d = max_abs_diff(p0, p1, 8 * NCLS);
    fl_model_free(m);
    return d;
}

static void test_clip_grad_norm_bounds_the_step(void)
{
    float clipped = change_of_one_step(1e-6), free_step = change_of_one_step(0);
    CHECK(clipped >= 0 && clipped < 1e-4f);
    CHECK(free_step > 1e-2f);
}

/* ---- checkpoints --------------------------------------------------------------- */

/* Trains 3 steps, saves, trains 3 more: the probabilities must equal those
 * of a model of another seed that loads the file and trains the same 3. */
static int resume_is_exact(const char *optimizer)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model-XXXXXX", test_tmpdir());
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    fl_model_spec s = small_spec();
    s.optimizer = optimizer;
    s.momentum = 0.9;
    s.nesterov = 1;
    s.weight_decay = 1e-3;
    s.clip_grad_norm = 5.0;
    fl_model *a = model_new(&s);
    s.seed = 1234;
    s.lr = 0.5; /* the file's lr must win */
    fl_model *b = model_new(&s);
    uint8_t x[8 * SIDE * SIDE];
    int32_t y[8];
    float pa[8 * NCLS], pb[8 * NCLS];
    fl_error err;
    int same = -1;
    uint32_t resume_state;
    if (!a || !b)
        goto done;
    rng_state = 1;
    if (train_steps(a, 3, 16) < 0 || fl_model_set_lr(a, 4e-3, &err) || fl_model_save(a, path, "epoch 3\n", &err))
        goto done;
    resume_state = rng_state;
    if (train_steps(a, 3, 16) < 0)
        goto done;
    rng_state = resume_state;
    char job[64];
    if (fl_model_load(b, path, job, sizeof job, &err) || strcmp(job, "epoch 3\n") || train_steps(b, 3, 16) < 0) {
        fprintf(stderr, "resume: %s\n", err.msg);
        goto done;
    }
    make_batch(x, y, 8);
    if (fl_model_predict(a, x, 8, NULL, 0, NULL, pa, NULL, NULL, &err) ||
        fl_model_predict(b, x, 8, NULL, 0, NULL, pb, NULL, NULL, &err))
        goto done;
    same = same_floats(pa, pb, 8 * NCLS);
done:
    fl_model_free(a);
    fl_model_free(b);
    unlink(path);
    return same;
}

static void test_save_load_then_training_on_is_bit_identical(void)
{
    fl_error err;
    fl_torch_info info;
    CHECK(fl_torch_get_info(&info, &err) == FL_OK);
    CHECK(fl_torch_set_threads(1, &err) == FL_OK); /* one thread: reductions in a fixed order */
    CHECK(resume_is_exact("adam") == 1);
    CHECK(resume_is_exact("adamw") == 1);
    CHECK(resume_is_exact("sgd") == 1);
    CHECK(fl_torch_set_threads(info.intra_threads, &err) == FL_OK);
}

/* Saved, trained on, then loaded for prediction: the probabilities are the
 * saved model's, and training on afterwards still works (a fresh optimizer). */
static void test_load_weights_predicts_with_the_saved_weights(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model-XXXXXX", test_tmpdir());
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    fl_model_spec s = small_spec();
    s.optimizer = "adam";
    fl_model *a = model_new(&s);
    uint8_t x[8 * SIDE * SIDE];
    int32_t y[8];
    float saved[8 * NCLS], later[8 * NCLS], loaded[8 * NCLS];
    fl_error err;
    CHECK(a != NULL);
    if (a) {
        rng_state = 7;
        make_batch(x, y, 8);
        CHECK(train_steps(a, 3, 16) >= 0);
        CHECK(fl_model_save(a, path, NULL, &err) == FL_OK);
        CHECK(fl_model_predict(a, x, 8, NULL, 0, NULL, saved, NULL, NULL, &err) == FL_OK);
        CHECK(train_steps(a, 3, 16) >= 0);
        CHECK(fl_model_predict(a, x, 8, NULL, 0, NULL, later, NULL, NULL, &err) == FL_OK);
        CHECK(!same_floats(saved, later, 8 * NCLS)); /* training moved the weights */
        CHECK(fl_model_load_weights(a, path, &err) == FL_OK);
        CHECK(fl_model_predict(a, x, 8, NULL, 0, NULL, loaded, NULL, NULL, &err) == FL_OK);
        CHECK(same_floats(saved, loaded, 8 * NCLS));
        CHECK(train_steps(a, 2, 16) >= 0);
        CHECK(fl_model_load_weights(a, "/nonexistent/foldline.model", &err) == FL_EIO);
        /* The same file's bytes, read elsewhere, load to the same weights. */
        FILE *f = fopen(path, "rb");
        static char bytes[1 << 22];
        size_t n = f ? fread(bytes, 1, sizeof bytes, f) : 0;
        if (f)
            fclose(f);
        char job[8];
        CHECK(n > 0 && n < sizeof bytes);
        CHECK(fl_model_load_bytes(a, bytes, n, path, job, sizeof job, &err) == FL_OK && job[0] == '\0');
        CHECK(fl_model_predict(a, x, 8, NULL, 0, NULL, loaded, NULL, NULL, &err) == FL_OK);
        CHECK(same_floats(saved, loaded, 8 * NCLS));
        CHECK(fl_model_load_bytes(a, bytes, n / 2, path, NULL, 0, &err) == FL_EINPUT);
    }
    unlink(path);
    fl_model_free(a);
}

static void test_load_refuses_another_model_and_bad_files(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model-XXXXXX", test_tmpdir());
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    fl_model_spec s = small_spec();
    fl_model *a = model_new(&s);
    s.num_classes = NCLS + 1;
    fl_model *b = model_new(&s);
    fl_error err;
    CHECK(a && b);
    if (a && b) {
        CHECK(write(fd, "not a model", 11) == 11);
        CHECK(fl_model_load(a, path, NULL, 0, &err) == FL_EINPUT);
        CHECK(strstr(err.msg, path) != NULL);
        CHECK(fl_model_save(a, path, NULL, &err) == FL_OK);
        CHECK(fl_model_load(b, path, NULL, 0, &err) == FL_EINPUT);
        CHECK(strstr(err.msg, "4 classes") && strstr(err.msg, "5 classes"));
        CHECK(fl_model_load(a, "/nonexistent/foldline.model", NULL, 0, &err) == FL_EIO);
        CHECK(fl_model_load_weights(b, path, &err) == FL_EINPUT);
        CHECK(fl_model_save(a, "/nonexistent/foldline.model", NULL, &err) == FL_EIO);
    }
    close(fd);
    unlink(path);
    fl_model_free(a);
    fl_model_free(b);
}

/* ---- augmentation -------------------------------------------------------------- */

static void test_hflip_and_vflip_mirror_exactly_and_twice_is_identity(void)
{
    enum { B = 2, C = 3, H = 9, W = 7, N = B * C * H * W };
    uint8_t x[N], back[N];
    float once[N], twice[N];
    fl_augment aug[B] = {{.n_ops = 1, .ops = {{.kind = FL_AUG_HFLIP}}}, {.n_ops = 1, .ops = {{.kind = FL_AUG_VFLIP}}}};
    fl_error err;
    random_bytes(x, N);
    CHECK(fl_torch_augment_batch(x, B, C, H, W, aug, test_device, once, &err) == FL_OK);
    for (int c = 0; c < C; c++)
        for (int r = 0; r < H; r++)
            for (int q = 0; q < W; q++) {
                CHECK(once[(c * H + r) * W + q] == x[(c * H + r) * W + (W - 1 - q)]);
                CHECK(once[((C + c) * H + r) * W + q] == x[((C + c) * H + (H - 1 - r)) * W + q]);
            }
    for (int i = 0; i < N; i++)
        back[i] = (uint8_t)once[i];
    CHECK(fl_torch_augment_batch(back, B, C, H, W, aug, test_device, twice, &err) == FL_OK);
    for (int i = 0; i < N; i++)
        CHECK(twice[i] == x[i]);
}

static void test_rotation_by_zero_is_exact_even_beside_a_rotated_image(void)
{
    enum { B = 2, H = 10, W = 13, N = B * H * W };
    uint8_t x[N];
    float out[N];
    fl_augment aug[B] = {{.n_ops = 1, .ops = {{.kind = FL_AUG_ROTATE, .angle_deg = 10.0f}}},
                         {.n_ops = 1, .ops = {{.kind = FL_AUG_ROTATE, .angle_deg = 0.0f}}}};
    fl_error err;
    random_bytes(x, N);
    CHECK(fl_torch_augment_batch(x, B, 1, H, W, aug, test_device, out, &err) == FL_OK);
    for (int i = H * W; i < N; i++)
        CHECK(out[i] == x[i]);
    int moved = 0;
    for (int i = 0; i < H * W; i++)
        moved += out[i] != x[i];
    CHECK(moved > H * W / 2);
}

static void test_rotation_by_90_turns_counter_clockwise(void)
{
    enum { S = 9, N = S * S };
    uint8_t x[2 * N];
    float out[2 * N];
    fl_augment aug[2] = {{.n_ops = 1, .ops = {{.kind = FL_AUG_ROTATE, .angle_deg = 90.0f}}},
                         {.n_ops = 1, .ops = {{.kind = FL_AUG_ROTATE, .angle_deg = -90.0f}}}};
    fl_error err;
    random_bytes(x, N);
    memcpy(x + N, x, N);
    CHECK(fl_torch_augment_batch(x, 2, 1, S, S, aug, test_device, out, &err) == FL_OK);
    /* +90: numpy's rot90(k=1), the top-right corner goes to the top left. */
    for (int r = 0; r < S; r++)
        for (int c = 0; c < S; c++) {
            CHECK(fabsf(out[r * S + c] - x[c * S + (S - 1 - r)]) < 1e-3f);
            CHECK(fabsf(out[N + r * S + c] - x[(S - 1 - c) * S + r]) < 1e-3f);
        }
}

static void test_rotation_of_a_wide_image_is_a_true_rotation_in_pixels(void)
{
    /* H 11, W 17, centre (x 8, y 5): +90 maps the central 11x11 square onto itself. */
    enum { H = 11, W = 17, N = H * W };
    uint8_t x[N];
    float out[N];
    fl_augment aug = {.n_ops = 1, .ops = {{.kind = FL_AUG_ROTATE, .angle_deg = 90.0f}}};
    fl_error err;
    random_bytes(x, N);
    CHECK(fl_torch_augment_batch(x, 1, 1, H, W, &aug, test_device, out, &err) == FL_OK);
    for (int r = 0; r < H; r++)
        for (int c = 3; c < 14; c++)
            CHECK(fabsf(out[r * W + c] - x[(c - 3) * W + (13 - r)]) < 1e-3f);
}

/* ---- loss and prediction --------------------------------------------------------- */

static void test_label_smoothing_follows_its_formula(void)
{
    /* A frozen backbone stays in eval mode and the head is linear, so
     * forward_backward sees the logits that predict turns into probabilities. */
    const double eps = 0.2;
    fl_model_spec s = small_spec();
    s.freeze_backbone = 1;
    s.label_smoothing = eps;
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    enum { B = 16 };
    uint8_t x[B * SIDE * SIDE];
    int32_t y[B];
    float p[B * NCLS];
    double loss, plain, want = 0;
    int correct, correct_p;
    fl_error err;
    CHECK(train_steps(m, 30, 16) >= 0); /* away from uniform probabilities, where smoothing is free */
    make_batch(x, y, B);
    CHECK(fl_model_predict(m, x, B, NULL, 0, y, p, &plain, &correct_p, &err) == FL_OK);
    CHECK(fl_model_forward_backward(m, x, y, B, NULL, 1.0, &loss, &correct, &err) == FL_OK);
    for (int i = 0; i < B; i++) {
        double mean_nll = 0;
        for (int c = 0; c < NCLS; c++)
            mean_nll -= log(p[i * NCLS + c]) / NCLS;
        want += (1 - eps) * -log(p[i * NCLS + y[i]]) + eps * mean_nll;
    }
    CHECK(fabs(loss - want) < 1e-4 * want);
    CHECK(fabs(loss - plain) > 1e-3 * plain); /* predict's loss has no smoothing */
    CHECK(correct == correct_p);
    fl_model_free(m);
}

static void test_tta_views_average_with_the_plain_view(void)
{
    enum { B = 6, N = B * SIDE * SIDE };
    fl_model_spec s = small_spec();
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m || train_steps(m, 2, 16) < 0)
        goto done;
    uint8_t x[N], xf[N];
    int32_t y[B];
    float plain[B * NCLS], flipped[B * NCLS], tta[B * NCLS];
    fl_error err;
    for (int kind = 0; kind < 2; kind++) { /* 0 hflip, 1 vflip */
        make_batch(x, y, B);
        for (int i = 0; i < B; i++)
            for (int r = 0; r < SIDE; r++)
                for (int c = 0; c < SIDE; c++)
                    xf[(i * SIDE + r) * SIDE + c] =
                        kind == 0 ? x[(i * SIDE + r) * SIDE + SIDE - 1 - c] : x[(i * SIDE + SIDE - 1 - r) * SIDE + c];
        CHECK(fl_model_predict(m, x, B, NULL, 0, NULL, plain, NULL, NULL, &err) == FL_OK);
        CHECK(fl_model_predict(m, xf, B, NULL, 0, NULL, flipped, NULL, NULL, &err) == FL_OK);
        CHECK(fl_model_predict(m, x, B, &kind, 1, NULL, tta, NULL, NULL, &err) == FL_OK);
        for (int i = 0; i < B * NCLS; i++)
            CHECK(fabsf(tta[i] - (plain[i] + flipped[i]) / 2) < 1e-6f);
    }
done:
    fl_model_free(m);
}

static void test_predict_reports_loss_and_accuracy_of_its_probabilities(void)
{
    fl_model_spec s = small_spec();
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    enum { B = 10 };
    uint8_t x[B * SIDE * SIDE];
    int32_t y[B];
    float p[B * NCLS];
    double loss, want = 0;
    int correct, want_correct = 0;
    fl_error err;
    make_batch(x, y, B);
    CHECK(fl_model_predict(m, x, B, NULL, 0, y, p, &loss, &correct, &err) == FL_OK);
    for (int i = 0; i < B; i++) {
        int best = 0;
        float sum = 0;
        for (int c = 0; c < NCLS; c++) {
            sum += p[i * NCLS + c];
            if (p[i * NCLS + c] > p[i * NCLS + best])
                best = c;
        }
        CHECK(fabsf(sum - 1) < 1e-5f);
        want_correct += best == y[i];
        want -= log(p[i * NCLS + y[i]]);
    }
    CHECK(correct == want_correct);
    CHECK(fabs(loss - want) < 1e-9 * want);
    fl_model_free(m);
}

/* ---- errors ---------------------------------------------------------------------- */

/* fl_model_new must fail with FL_EINPUT and a message holding both words. */
static int refused(const fl_model_spec *s, const char *word1, const char *word2)
{
    static char sentinel;
    fl_model *m = (fl_model *)&sentinel; /* must come back NULL */
    fl_error err = {0};
    fl_code rc = fl_model_new(s, &m, &err);
    int ok = rc == FL_EINPUT && m == NULL && strstr(err.msg, word1) && strstr(err.msg, word2);
    if (!ok)
        fprintf(stderr, "     got code %d, message: %s\n", (int)rc, err.msg);
    if (rc == FL_OK)
        fl_model_free(m);
    return ok;
}

static void test_unknown_names_are_input_errors_naming_what_is_allowed(void)
{
    fl_model_spec s = small_spec();
    s.backbone = "resnet19";
    CHECK(refused(&s, "resnet19", "resnet50"));
    s = small_spec();
    s.head_type = "mlp4";
    CHECK(refused(&s, "mlp4", "mlp3"));
    s = small_spec();
    s.head_type = "mlp3";
    s.head_hidden = 8;
    s.head_act = "tanh";
    CHECK(refused(&s, "tanh", "gelu"));
    s = small_spec();
    s.optimizer = "lamb";
    CHECK(refused(&s, "lamb", "adamw"));
    s = small_spec();
    s.device = "tpu";
    CHECK(refused(&s, "tpu", "cuda:N"));
    s = small_spec();
    s.height = 4;
    CHECK(refused(&s, "4x12", "8x8"));
    s = small_spec();
    s.optimizer = "sgd";
    s.momentum = 0;
    s.nesterov = 1;
    CHECK(refused(&s, "nesterov", "momentum"));
}

static void test_cuda_devices_that_are_not_there_are_input_errors(void)
{
    fl_torch_info info;
    fl_error err;
    CHECK(fl_torch_get_info(&info, &err) == FL_OK);
    fl_model_spec s = small_spec();
    s.device = "cuda:99";
    CHECK(refused(&s, "cuda:99", info.cuda_devices ? "visible" : "not available"));
    s.device = "cuda:x";
    CHECK(refused(&s, "cuda:x", "cuda:N"));
}

static void test_labels_out_of_range_are_input_errors(void)
{
    fl_model_spec s = small_spec();
    fl_model *m = model_new(&s);
    CHECK(m);
    if (!m)
        return;
    uint8_t x[2 * SIDE * SIDE] = {0};
    int32_t y[2] = {0, NCLS};
    fl_error err;
    double loss;
    int correct;
    CHECK(fl_model_forward_backward(m, x, y, 2, NULL, 1.0, &loss, &correct, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "label 4 of row 1") != NULL);
    float p[2 * NCLS];
    int bad_view = 2;
    CHECK(fl_model_predict(m, x, 2, &bad_view, 1, NULL, p, NULL, NULL, &err) == FL_EINPUT);
    fl_model_free(m);
}

int main(void)
{
    fl_error err;
    if (getenv("FOLDLINE_TEST_DEVICE"))
        test_device = getenv("FOLDLINE_TEST_DEVICE");
    if (fl_torch_keep_freed_memory(&err) != FL_OK || fl_torch_set_threads(2, &err) != FL_OK)
        return 1;
    printf("device %s\n", test_device);
    RUN(test_resnet18_with_10_classes_has_11181642_params);
    RUN(test_resnet34_and_resnet50_have_torchvisions_param_counts);
    RUN(test_frozen_backbone_trains_only_the_head);
    RUN(test_frozen_backbone_keeps_its_features_through_training);
    RUN(test_smallcnn_learns_a_separable_problem);
    RUN(test_same_seed_gives_the_same_probabilities);
    RUN(test_different_seeds_give_different_probabilities);
    RUN(test_lr_zero_keeps_the_head_still);
    RUN(test_clip_grad_norm_bounds_the_step);
    RUN(test_save_load_then_training_on_is_bit_identical);
    RUN(test_load_weights_predicts_with_the_saved_weights);
    RUN(test_load_refuses_another_model_and_bad_files);
    RUN(test_hflip_and_vflip_mirror_exactly_and_twice_is_identity);
    RUN(test_rotation_by_zero_is_exact_even_beside_a_rotated_image);
    RUN(test_rotation_by_90_turns_counter_clockwise);
    RUN(test_rotation_of_a_wide_image_is_a_true_rotation_in_pixels);
    RUN(test_label_smoothing_follows_its_formula);
    RUN(test_tta_views_average_with_the_plain_view);
    RUN(test_predict_reports_loss_and_accuracy_of_its_probabilities);
    RUN(test_unknown_names_are_input_errors_naming_what_is_allowed);
    RUN(test_cuda_devices_that_are_not_there_are_input_errors);
    RUN(test_labels_out_of_range_are_input_errors);
    return check_summary();
}
