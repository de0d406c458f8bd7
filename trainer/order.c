/* order.c -- see order.h. */
#include "trainer/order.h"

#include <stdlib.h>
#include <string.h>

#include "trainer/rng.h"

uint64_t fl_order_model_seed(uint32_t run_seed, const char *model_name)
{
    return fl_mix64((uint64_t)run_seed ^ fl_mix64(fl_hash_str(model_name) ^ 0x6d6f64656cull)); /* "model" */
}

void fl_order_free(fl_order *o)
{
    free(o->rows);
    free(o->ends);
    memset(o, 0, sizeof *o);
}

static fl_code order_alloc(fl_order *o, int64_t n, int64_t n_batches, fl_error *err)
{
    memset(o, 0, sizeof *o);
    o->rows = malloc(sizeof *o->rows * (size_t)(n ? n : 1));
    o->ends = malloc(sizeof *o->ends * (size_t)(n_batches ? n_batches : 1));
    if (!o->rows || !o->ends) {
        fl_order_free(o);
        return fl_fail(err, FL_ENOMEM, "out of memory for the batch order");
    }
    o->n = n;
    o->n_batches = n_batches;
    return FL_OK;
}

fl_code fl_order_frozen(const int32_t *fold, int64_t n_rows, int K, int batch, uint64_t model_seed, int epoch,
                        fl_order *o, fl_error *err)
{
    if (K < 2 || batch < 1 || batch % (K - 1))
        return fl_fail(err, FL_EINTERNAL, "frozen batches: batch %d over %d folds", batch, K);
    int64_t q = batch / (K - 1);
    int64_t *count = calloc((size_t)K, sizeof *count), *start = calloc((size_t)K + 1, sizeof *start);
    int64_t *lists = malloc(sizeof *lists * (size_t)(n_rows ? n_rows : 1));
    fl_code rc = FL_OK;
    if (!count || !start || !lists) {
        rc = fl_fail(err, FL_ENOMEM, "out of memory for the batch order");
        goto done;
    }
    for (int64_t i = 0; i < n_rows; i++) {
        if (fold[i] < 0 || fold[i] >= K) {
            rc = fl_fail(err, FL_EINTERNAL, "frozen batches: row %lld has fold %d of %d", (long long)i, fold[i], K);
            goto done;
        }
        count[fold[i]]++;
    }
    int64_t longest = 0;
    for (int j = 0; j < K; j++) {
        start[j + 1] = start[j] + count[j];
        longest = count[j] > longest ? count[j] : longest;
        count[j] = 0;
    }
    for (int64_t i = 0; i < n_rows; i++) /* each fold's rows, ascending */
        lists[start[fold[i]] + count[fold[i]]++] = i;
    for (int j = 0; j < K; j++) { /* each fold shuffled on its own */
        int64_t *l = lists + start[j];
        fl_rng r = fl_rng_for(model_seed ^ 0x666f6c64ull, (uint64_t)epoch, (uint64_t)j); /* "fold" */
        for (int64_t i = count[j] - 1; i > 0; i--) {
            int64_t t = (int64_t)fl_rng_below(&r, (uint64_t)i + 1), v = l[i];
            l[i] = l[t];
            l[t] = v;
        }
    }
    if ((rc = order_alloc(o, n_rows, (longest + q - 1) / q, err)))
        goto done;
    int64_t n = 0;
    for (int64_t s = 0; s < o->n_batches; s++) {
        for (int j = 0; j < K; j++)
            for (int64_t i = s * q; i < (s + 1) * q && i < count[j]; i++)
                o->rows[n++] = lists[start[j] + i];
        o->ends[s] = n;
    }
done:
    free(count);
    free(start);
    free(lists);
    return rc;
}

fl_code fl_order_without_fold(const fl_order *all, const int32_t *fold, int k, fl_order *o, fl_error *err)
{
    int64_t n = 0;
    for (int64_t i = 0; i < all->n; i++)
        n += fold[all->rows[i]] != k;
    fl_code rc = order_alloc(o, n, all->n_batches, err);
    if (rc)
        return rc;
    n = 0;
    for (int64_t s = 0, i = 0; s < all->n_batches; s++) {
        for (; i < all->ends[s]; i++)
            if (fold[all->rows[i]] != k)
                o->rows[n++] = all->rows[i];
        o->ends[s] = n;
    }
    return FL_OK;
}

fl_code fl_order_plain(const int64_t *rows, int64_t n, int batch, fl_order *o, fl_error *err)
{
    fl_code rc = order_alloc(o, n, (n + batch - 1) / batch, err);
    if (rc)
        return rc;
    memcpy(o->rows, rows, sizeof *rows * (size_t)n);
    for (int64_t s = 0; s < o->n_batches; s++)
        o->ends[s] = (s + 1) * batch < n ? (s + 1) * batch : n;
    return FL_OK;
}
