/* test_model_comm.c -- the data-parallel entry points of the libtorch bridge
 * (fl_model_grads_reduce, fl_model_grads_overlap_*, fl_model_state_broadcast,
 * fl_model_cuda_stream),
 * with stand-in collectives instead of MPI: one flat buffer per call, packed
 * and unpacked in a fixed order, so that what a collective does to the buffer
 * is what happens to the model. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "trainer/torch/bridge.h"

#define NCLS 3
#define SIDE 8
#define B    6

static fl_model_spec spec_of(const char *backbone, const char *optimizer, uint64_t seed)
{
    fl_model_spec s = {.backbone = backbone,
                       .in_channels = 1,
                       .height = SIDE,
                       .width = SIDE,
                       .num_classes = NCLS,
                       .head_type = "linear",
                       .head_act = "relu",
                       .optimizer = optimizer,
                       .lr = 0.1,
                       .mean = {0.5f, 0.5f, 0.5f},
                       .std = {0.25f, 0.25f, 0.25f},
                       .seed = seed,
                       .device = "cpu"};
    return s;
}

static fl_model *model_new(const char *backbone, const char *optimizer, uint64_t seed)
{
    fl_model_spec s = spec_of(backbone, optimizer, seed);
    fl_model *m = NULL;
    fl_error err;
    if (fl_model_new(&s, &m, &err) != FL_OK)
        fprintf(stderr, "fl_model_new: %s\n", err.msg);
    return m;
}

static uint8_t x[B * SIDE * SIDE];
static int32_t y[B];

static void make_batch(void)
{
    uint32_t r = 99;
    for (size_t i = 0; i < sizeof x; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (uint8_t)(r >> 24);
    }
    for (int i = 0; i < B; i++)
        y[i] = i % NCLS;
}

static void predict(fl_model *m, float *probs)
{
    fl_error err;
    CHECK(fl_model_predict(m, x, B, NULL, 0, NULL, probs, NULL, NULL, &err) == FL_OK);
}

/* Stand-in collectives. */
typedef struct {
    int calls;
    int64_t count;
    float factor; /* scale: multiply every value */
    float *saved; /* record: keep a copy; replay: write it back */
} stand_in;

static fl_code scale(float *buf, int64_t count, void *ctx, fl_error *err)
{
    (void)err;
    stand_in *s = ctx;
    s->calls++;
    s->count = count;
    for (int64_t i = 0; i < count; i++)
        buf[i] *= s->factor;
    return FL_OK;
}

static fl_code record(float *buf, int64_t count, void *ctx, fl_error *err)
{
    (void)err;
    stand_in *s = ctx;
    s->calls++;
    s->count = count;
    s->saved = malloc(sizeof *buf * (size_t)count);
    memcpy(s->saved, buf, sizeof *buf * (size_t)count);
    return FL_OK;
}

static fl_code replay(float *buf, int64_t count, void *ctx, fl_error *err)
{
    stand_in *s = ctx;
    s->calls++;
    if (count != s->count)
        return fl_fail(err, FL_EINTERNAL, "replay: %lld values, recorded %lld", (long long)count, (long long)s->count);
    memcpy(buf, s->saved, sizeof *buf * (size_t)count);
    return FL_OK;
}

static fl_code refuse(float *buf, int64_t count, void *ctx, fl_error *err)
{
    (void)buf, (void)count, (void)ctx;
    return fl_fail(err, FL_EMPI, "the peer is gone");
}

/* A step after the reduce multiplied the gradients by 2 is the step of a
 * loss scaled by 2: the reduce unpacks exactly what the collective left. */
static void test_grads_reduce_hands_the_collective_every_gradient_once(void)
{
    fl_error err;
    fl_model *a = model_new("mlp", "sgd", 3), *b = model_new("mlp", "sgd", 3);
    double l;
    int c;
    CHECK(fl_model_forward_backward(a, x, y, B, NULL, 2.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_step(a, &err) == FL_OK);
    CHECK(fl_model_forward_backward(b, x, y, B, NULL, 1.0, &l, &c, &err) == FL_OK);
    stand_in s = {.factor = 2.0f};
    CHECK(fl_model_grads_reduce(b, 1, scale, &s, &err) == FL_OK);
    CHECK(s.calls == 1); /* one flat bucket, not one call per tensor */
    CHECK(s.count == fl_model_num_params(b, 1));
    CHECK(fl_model_step(b, &err) == FL_OK);
    float pa[B * NCLS], pb[B * NCLS];
    predict(a, pa);
    predict(b, pb);
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    fl_model_free(a);
    fl_model_free(b);
}

/* A rank whose shard was empty has no gradients: they go out as zeros, and
 * come back as whatever the group summed. */
static void test_grads_reduce_without_gradients_sends_zeros(void)
{
    fl_error err;
    fl_model *m = model_new("mlp", "sgd", 3);
    stand_in s = {0};
    CHECK(fl_model_grads_reduce(m, 1, record, &s, &err) == FL_OK);
    CHECK(s.count == fl_model_num_params(m, 1));
    int zeros = 1;
    for (int64_t i = 0; i < s.count; i++)
        zeros &= s.saved[i] == 0.0f;
    CHECK(zeros);
    free(s.saved);
    fl_model_free(m);
}

/* Broadcasting parameters and buffers makes a model of another seed predict
 * exactly as the sender does (batch norm included). */
static void test_state_broadcast_copies_weights_and_batch_norm_statistics(void)
{
    fl_error err;
    fl_model *a = model_new("smallcnn", "adam", 1), *b = model_new("smallcnn", "adam", 2);
    double l;
    int c;
    /* Training moves a's running statistics away from their initial values. */
    CHECK(fl_model_forward_backward(a, x, y, B, NULL, 1.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_step(a, &err) == FL_OK);
    float pa[B * NCLS], pb[B * NCLS];
    predict(a, pa);
    predict(b, pb);
    CHECK(memcmp(pa, pb, sizeof pa) != 0);
    stand_in s = {0};
    CHECK(fl_model_state_broadcast(a, FL_STATE_PARAMS | FL_STATE_BUFFERS, 1, record, &s, &err) == FL_OK);
    CHECK(s.count > fl_model_num_params(a, 0)); /* parameters and the running means and variances */
    CHECK(fl_model_state_broadcast(b, FL_STATE_PARAMS | FL_STATE_BUFFERS, 1, replay, &s, &err) == FL_OK);
    CHECK(s.calls == 2);
    predict(b, pb);
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    free(s.saved);
    fl_model_free(a);
    fl_model_free(b);
}

static void test_a_model_without_buffers_broadcasts_none(void)
{
    fl_error err;
    fl_model *m = model_new("mlp", "adam", 1);
    stand_in s = {0};
    CHECK(fl_model_state_broadcast(m, FL_STATE_BUFFERS, 1, record, &s, &err) == FL_OK);
    CHECK(s.calls == 0);
    CHECK(fl_model_state_broadcast(m, FL_STATE_PARAMS, 1, record, &s, &err) == FL_OK);
    CHECK(s.calls == 1 && s.count == fl_model_num_params(m, 0));
    free(s.saved);
    fl_model_free(m);
}

static void test_a_failing_collective_is_the_callers_error(void)
{
    fl_error err;
    fl_model *m = model_new("mlp", "adam", 1);
    double l;
    int c;
    CHECK(fl_model_forward_backward(m, x, y, B, NULL, 1.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_grads_reduce(m, 1, refuse, NULL, &err) == FL_EMPI);
    CHECK(strstr(err.msg, "the peer is gone") != NULL);
    CHECK(fl_model_state_broadcast(m, FL_STATE_PARAMS, 0, refuse, NULL, &err) == FL_EMPI);
    fl_model_free(m);
}

static void test_a_cpu_model_has_no_cuda_stream(void)
{
    fl_model *m = model_new("mlp", "adam", 1);
    CHECK(fl_model_cuda_stream(m) == NULL);
    fl_model_free(m);
}

/* A stand-in nonblocking collective: start notes the bucket, test never
 * finishes it, wait doubles its values (as a sum over 2 equal ranks would). */
#define MAX_BUCKETS 64
typedef struct {
    int starts, tests, waits, waited[MAX_BUCKETS], nonzero_at_start, fail_start;
    float *bufs[MAX_BUCKETS];
    int64_t counts[MAX_BUCKETS];
} fake_async;

static fl_code fake_start(float *buf, int64_t count, void *ctx, void **handle, fl_error *err)
{
    fake_async *f = ctx;
    if (f->fail_start || f->starts == MAX_BUCKETS)
        return fl_fail(err, FL_EMPI, "the bucket could not start");
    for (int64_t i = 0; i < count; i++)
        f->nonzero_at_start |= buf[i] != 0.0f;
    f->bufs[f->starts] = buf;
    f->counts[f->starts] = count;
    *handle = (void *)(intptr_t)++f->starts;
    return FL_OK;
}

static int fake_test(void *handle, void *ctx)
{
    (void)handle;
    ((fake_async *)ctx)->tests++;
    return 0;
}

static fl_code fake_wait(void *handle, void *ctx, fl_error *err)
{
    (void)err;
    fake_async *f = ctx;
    int i = (int)(intptr_t)handle - 1;
    f->waits++;
    f->waited[i]++;
    for (int64_t k = 0; k < f->counts[i]; k++)
        f->bufs[i][k] *= 2.0f;
    return FL_OK;
}

static const fl_flat_async_ops fake_ops = {fake_start, fake_test, fake_wait, 0};

/* One bucket per tensor (1-byte buckets) or one for all: either way every
 * gradient is doubled exactly once (a bucket skipped or summed twice would
 * change the step), buckets start in reverse parameter order during
 * backward, and each is waited for once. */
static void overlap_case(int64_t bucket_bytes)
{
    fl_error err;
    fl_model *a = model_new("mlp", "sgd", 3), *b = model_new("mlp", "sgd", 3);
    double l;
    int c;
    CHECK(fl_model_forward_backward(a, x, y, B, NULL, 2.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_step(a, &err) == FL_OK);
    for (int step = 0; step < 2; step++) { /* the hooks stay armed across steps */
        fake_async f = {0};
        fl_overlap_stats st = {0};
        CHECK(fl_model_grads_overlap_begin(b, 1, &fake_ops, &f, bucket_bytes, &err) == FL_OK);
        CHECK(fl_model_forward_backward(b, x, y, B, NULL, step ? 2.0 : 1.0, &l, &c, &err) == FL_OK);
        CHECK(f.starts == (bucket_bytes == 1 ? 4 : 1)); /* mlp: 2 layers of weight and bias */
        CHECK(f.tests > 0 && f.waits == 0);
        CHECK(fl_model_grads_overlap_end(b, &st, &err) == FL_OK);
        CHECK(st.buckets == f.starts && st.started_in_backward == f.starts && f.waits == f.starts);
        int64_t total = 0;
        for (int i = 0; i < f.starts; i++) {
            CHECK(f.waited[i] == 1);
            total += f.counts[i];
        }
        CHECK(total == fl_model_num_params(b, 1));
        if (bucket_bytes == 1)
            CHECK(f.counts[0] == NCLS); /* the last parameter first: the head's bias */
        if (step == 0)
            CHECK(fl_model_step(b, &err) == FL_OK);
        else
            CHECK(fl_model_zero_grad(b, &err) == FL_OK);
    }
    float pa[B * NCLS], pb[B * NCLS];
    predict(a, pa);
    predict(b, pb);
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
    fl_model_free(a);
    fl_model_free(b);
}

static void test_overlap_doubles_every_gradient_once_in_one_bucket_per_tensor(void)
{
    overlap_case(1);
}

static void test_overlap_doubles_every_gradient_once_in_one_bucket(void)
{
    overlap_case(1 << 30);
}

/* A rank without backward (an empty shard) starts every bucket at the end,
 * with zeros, in the same order, and gets the sums back as gradients. */
static void test_overlap_without_backward_starts_every_bucket_with_zeros(void)
{
    fl_error err;
    fl_model *m = model_new("mlp", "sgd", 3);
    fake_async f = {0};
    fl_overlap_stats st = {0};
    CHECK(fl_model_grads_overlap_begin(m, 1, &fake_ops, &f, 1, &err) == FL_OK);
    CHECK(fl_model_grads_overlap_end(m, &st, &err) == FL_OK);
    CHECK(f.starts == 4 && st.buckets == 4 && st.started_in_backward == 0 && f.waits == 4);
    CHECK(f.counts[0] == NCLS && !f.nonzero_at_start);
    fl_model_free(m);
}

static void test_overlap_errors_are_the_callers(void)
{
    fl_error err;
    double l;
    int c;
    fl_model *m = model_new("mlp", "sgd", 3);
    fake_async f = {.fail_start = 1};
    CHECK(fl_model_grads_overlap_begin(m, 1, &fake_ops, &f, 1, &err) == FL_OK);
    CHECK(fl_model_grads_overlap_begin(m, 1, &fake_ops, &f, 1, &err) == FL_EINTERNAL);
    CHECK(fl_model_forward_backward(m, x, y, B, NULL, 1.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_grads_overlap_end(m, NULL, &err) == FL_EMPI);
    CHECK(strstr(err.msg, "the bucket could not start") != NULL);
    CHECK(fl_model_grads_overlap_end(m, NULL, &err) == FL_EINTERNAL); /* not begun */
    /* A second backward after a bucket has started would send stale gradients. */
    fake_async g = {0};
    CHECK(fl_model_zero_grad(m, &err) == FL_OK);
    CHECK(fl_model_grads_overlap_begin(m, 1, &fake_ops, &g, 1, &err) == FL_OK);
    CHECK(fl_model_forward_backward(m, x, y, B, NULL, 1.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_forward_backward(m, x, y, B, NULL, 1.0, &l, &c, &err) == FL_OK);
    CHECK(fl_model_grads_overlap_end(m, NULL, &err) == FL_EINTERNAL);
    CHECK(strstr(err.msg, "after its bucket") != NULL);
    CHECK(g.waits == g.starts);
    fl_model_free(m);
}

int main(void)
{
    fl_error err;
    if (fl_torch_set_threads(1, &err))
        return 1;
    make_batch();
    RUN(test_grads_reduce_hands_the_collective_every_gradient_once);
    RUN(test_grads_reduce_without_gradients_sends_zeros);
    RUN(test_state_broadcast_copies_weights_and_batch_norm_statistics);
    RUN(test_a_model_without_buffers_broadcasts_none);
    RUN(test_a_failing_collective_is_the_callers_error);
    RUN(test_a_cpu_model_has_no_cuda_stream);
    RUN(test_overlap_doubles_every_gradient_once_in_one_bucket_per_tensor);
    RUN(test_overlap_doubles_every_gradient_once_in_one_bucket);
    RUN(test_overlap_without_backward_starts_every_bucket_with_zeros);
    RUN(test_overlap_errors_are_the_callers);
    return check_summary();
}
