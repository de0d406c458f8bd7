/* test_order.c -- a frozen backbone's shared batches (trainer/order.h): every
 * row once per epoch; q = batch / (K - 1) rows of every fold in each batch,
 * so that each fold's head sees exactly `batch` rows until the folds run out;
 * drawn from the model's seed and the epoch alone; and a fold's own view of
 * them keeps the batch boundaries. */
#include <stdlib.h>

#include "check.h"
#include "trainer/order.h"

/* Folds of n rows: row i in fold (i * 7) % K. */
static int32_t *make_folds(int64_t n, int K)
{
    int32_t *fold = malloc(sizeof *fold * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        fold[i] = (int32_t)((i * 7) % K);
    return fold;
}

static void check_order(int64_t n, int K, int batch)
{
    int32_t *fold = make_folds(n, K);
    fl_order o;
    fl_error err;
    CHECK(fl_order_frozen(fold, n, K, batch, 99, 3, &o, &err) == FL_OK);
    CHECK(o.n == n);
    char *seen = calloc((size_t)n, 1);
    for (int64_t i = 0; i < n; i++)
        seen[o.rows[i]]++;
    for (int64_t i = 0; i < n; i++)
        CHECK(seen[i] == 1);
    int q = batch / (K - 1);
    int64_t left[64] = {0};
    for (int64_t i = 0; i < n; i++)
        left[fold[i]]++;
    for (int64_t s = 0; s < o.n_batches; s++) {
        int64_t lo, hi, per[64] = {0};
        fl_order_batch(&o, s, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) {
            per[fold[o.rows[i]]]++;
            if (i > lo) /* folds in order, 0 first */
                CHECK(fold[o.rows[i]] >= fold[o.rows[i - 1]]);
        }
        for (int j = 0; j < K; j++) {
            CHECK(per[j] == (left[j] < q ? left[j] : q));
            left[j] -= per[j];
        }
        for (int k = 0; k < K; k++) { /* head k: batch rows while every other fold had q to give */
            int64_t rows_k = (hi - lo) - per[k];
            int full = 1;
            for (int j = 0; j < K; j++)
                full &= j == k || per[j] == q;
            if (full)
                CHECK(rows_k == batch);
        }
    }
    for (int j = 0; j < K; j++)
        CHECK(left[j] == 0);
    /* The same seed and epoch: the same order; another epoch or seed: another. */
    fl_order a, b;
    CHECK(fl_order_frozen(fold, n, K, batch, 99, 3, &a, &err) == FL_OK);
    CHECK(fl_order_frozen(fold, n, K, batch, 99, 4, &b, &err) == FL_OK);
    CHECK(memcmp(a.rows, o.rows, sizeof *a.rows * (size_t)n) == 0);
    CHECK(memcmp(b.rows, o.rows, sizeof *b.rows * (size_t)n) != 0);
    fl_order_free(&a);
    fl_order_free(&b);
    /* Fold 1's own view: every row outside fold 1, the same batches. */
    fl_order v;
    CHECK(fl_order_without_fold(&o, fold, 1, &v, &err) == FL_OK);
    CHECK(v.n_batches == o.n_batches);
    int64_t at = 0;
    for (int64_t s = 0; s < o.n_batches; s++) {
        int64_t lo, hi;
        fl_order_batch(&o, s, &lo, &hi);
        for (int64_t i = lo; i < hi; i++)
            if (fold[o.rows[i]] != 1)
                CHECK(v.rows[at++] == o.rows[i]);
        CHECK(v.ends[s] == at);
    }
    CHECK(at == v.n);
    fl_order_free(&v);
    fl_order_free(&o);
    free(seen);
    free(fold);
}

static void test_every_head_gets_its_batch_from_every_other_fold(void)
{
    check_order(1000, 5, 64);
    check_order(1003, 5, 16); /* uneven folds */
    check_order(97, 2, 7);    /* two folds: q = batch */
    check_order(10, 5, 64);   /* fewer rows than one batch */
}

static void test_a_batch_that_does_not_split_is_refused(void)
{
    int32_t fold[4] = {0, 1, 2, 0};
    fl_order o;
    fl_error err;
    CHECK(fl_order_frozen(fold, 4, 3, 5, 1, 0, &o, &err) == FL_EINTERNAL);
    CHECK(fl_order_frozen(fold, 4, 1, 4, 1, 0, &o, &err) == FL_EINTERNAL);
}

static void test_plain_batches(void)
{
    int64_t rows[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    fl_order o;
    fl_error err;
    CHECK(fl_order_plain(rows, 10, 4, &o, &err) == FL_OK);
    CHECK(o.n_batches == 3 && o.ends[0] == 4 && o.ends[1] == 8 && o.ends[2] == 10);
    CHECK(o.rows[0] == 9 && o.rows[9] == 0);
    fl_order_free(&o);
}

int main(void)
{
    RUN(test_every_head_gets_its_batch_from_every_other_fold);
    RUN(test_a_batch_that_does_not_split_is_refused);
    RUN(test_plain_batches);
    return check_summary();
}
