/* test_folds.c -- MT19937 against its published reference stream, and the
 * stratification properties of fl_folds_stratified. (Equality with
 * scikit-learn is checked in tests/prep/test_folds.py.) */
#include <stdlib.h>

#include "check.h"
#include "dataset/folds.h"

static void test_mt19937_matches_reference_outputs(void)
{
    /* init_genrand(5489): the first outputs of the reference mt19937ar.c. */
    fl_mt19937 mt;
    fl_mt19937_seed(&mt, 5489u);
    CHECK(fl_mt19937_next(&mt) == 3499211612u);
    CHECK(fl_mt19937_next(&mt) == 581869302u);
    CHECK(fl_mt19937_next(&mt) == 3890346734u);
    CHECK(fl_mt19937_next(&mt) == 3586334585u);
    /* The 10000th output of the default seed (C++ std::mt19937 requirement). */
    fl_mt19937_seed(&mt, 5489u);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++)
        v = fl_mt19937_next(&mt);
    CHECK(v == 4123659995u);
}

static void test_interval_stays_in_range(void)
{
    fl_mt19937 mt;
    fl_mt19937_seed(&mt, 42);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint32_t v = fl_mt19937_interval(&mt, 6);
        CHECK(v <= 6);
        if (v <= 6)
            seen[v]++;
    }
    for (int i = 0; i < 7; i++)
        CHECK(seen[i] > 800 && seen[i] < 1200);
    CHECK(fl_mt19937_interval(&mt, 0) == 0);
}

/* Labels with uneven class sizes in a scrambled order. */
static int32_t *make_labels(int *n_out)
{
    int sizes[6] = {5, 11, 7, 23, 6, 9}, n = 0;
    for (int c = 0; c < 6; c++)
        n += sizes[c];
    int32_t *y = malloc(sizeof *y * n);
    int k = 0;
    for (int c = 0; c < 6; c++)
        for (int i = 0; i < sizes[c]; i++)
            y[k++] = (c * 7) % 6; /* permuted class ids */
    for (int i = n - 1; i > 0; i--) {
        int j = (i * 7919) % (i + 1);
        int32_t t = y[i];
        y[i] = y[j];
        y[j] = t;
    }
    *n_out = n;
    return y;
}

static void test_fold_sizes_differ_by_at_most_one(void)
{
    int n;
    int32_t *y = make_labels(&n), *f = malloc(sizeof *f * n);
    for (int k = 2; k <= 5; k++) {
        fl_error err;
        CHECK(fl_folds_stratified(y, n, k, 42, f, &err) == FL_OK);
        int total[5] = {0}, per[6][5] = {{0}};
        for (int i = 0; i < n; i++) {
            CHECK(f[i] >= 0 && f[i] < k);
            total[f[i]]++;
            per[y[i]][f[i]]++;
        }
        int lo = n, hi = 0;
        for (int j = 0; j < k; j++) {
            lo = total[j] < lo ? total[j] : lo;
            hi = total[j] > hi ? total[j] : hi;
        }
        CHECK(hi - lo <= 1);
        for (int c = 0; c < 6; c++) {
            int clo = n, chi = 0;
            for (int j = 0; j < k; j++) {
                clo = per[c][j] < clo ? per[c][j] : clo;
                chi = per[c][j] > chi ? per[c][j] : chi;
            }
            CHECK(chi - clo <= 1);
        }
    }
    free(y);
    free(f);
}

static void test_same_seed_same_folds_other_seed_other_folds(void)
{
    int n;
    int32_t *y = make_labels(&n), *a = malloc(sizeof *a * n), *b = malloc(sizeof *b * n), *c = malloc(sizeof *c * n);
    fl_error err;
    fl_folds_stratified(y, n, 5, 42, a, &err);
    fl_folds_stratified(y, n, 5, 42, b, &err);
    fl_folds_stratified(y, n, 5, 7, c, &err);
    CHECK(memcmp(a, b, sizeof *a * n) == 0);
    CHECK(memcmp(a, c, sizeof *a * n) != 0);
    free(y);
    free(a);
    free(b);
    free(c);
}

static void test_class_smaller_than_k_is_refused(void)
{
    int32_t y[7] = {0, 0, 0, 1, 1, 1, 1};
    int32_t f[7];
    fl_error err;
    CHECK(fl_folds_stratified(y, 7, 4, 42, f, &err) == FL_EINPUT);
    CHECK(strstr(err.msg, "fewer than 4 folds") != NULL);
    CHECK(fl_folds_stratified(y, 7, 3, 42, f, &err) == FL_OK);
}

int main(void)
{
    RUN(test_mt19937_matches_reference_outputs);
    RUN(test_interval_stays_in_range);
    RUN(test_fold_sizes_differ_by_at_most_one);
    RUN(test_same_seed_same_folds_other_seed_other_folds);
    RUN(test_class_smaller_than_k_is_refused);
    return check_summary();
}
