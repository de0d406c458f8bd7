/* order.h -- which rows form each training batch of an epoch.
 *
 * A model whose backbone trains: each job shuffles its own rows (every fold
 * but k) from its job seed and cuts them into batches of `batch` rows.
 *
 * A frozen backbone: the folds share the batches, so that one backbone pass
 * per batch can feed every fold's head (trainer/fused.h). From the model's
 * seed and the epoch, each of the data file's K folds is shuffled on its own;
 * batch s takes rows s*q .. s*q+q-1 of every fold's list, fold 0 first, with
 * q = batch / (K - 1). Fold k's head trains on the rows of each batch outside
 * fold k: exactly `batch` of them, every batch but the last ones once the
 * folds run out (a head with none in a batch does not step). A fold's own
 * run of a frozen model (fuse_folds = false) takes the same batches, so it
 * equals the fused run up to float rounding. `batch` must be a multiple of
 * K - 1 (launch checks it, naming the config line).
 */
#ifndef FOLDLINE_ORDER_H
#define FOLDLINE_ORDER_H

#include <stdint.h>

#include "base/error.h"

typedef struct {
    int64_t n;     /* rows in the order */
    int64_t *rows; /* (n) batch s is rows[ends[s-1] .. ends[s]) (ends[-1] = 0) */
    int64_t n_batches;
    int64_t *ends; /* (n_batches); a batch may be empty */
} fl_order;

/* The seed of what a model's folds share (a frozen backbone's weights, its
 * batches and augmentation draws): run.seed and the model's name only. */
uint64_t fl_order_model_seed(uint32_t run_seed, const char *model_name);

/* Epoch `epoch`'s frozen-backbone batches over all n_rows rows of the train
 * split (fold[i] in 0..K-1), into o (fl_order_free releases it). */
fl_code fl_order_frozen(const int32_t *fold, int64_t n_rows, int K, int batch, uint64_t model_seed, int epoch,
                        fl_order *o, fl_error *err);

/* The rows of `all` outside fold k, in its order and batches (the same
 * n_batches, some maybe empty), into o. */
fl_code fl_order_without_fold(const fl_order *all, const int32_t *fold, int k, fl_order *o, fl_error *err);

/* rows (n, already in epoch order) in batches of `batch`, into o (rows copied). */
fl_code fl_order_plain(const int64_t *rows, int64_t n, int batch, fl_order *o, fl_error *err);

/* Rows of batch s: *lo, *hi positions in o->rows. */
static inline void fl_order_batch(const fl_order *o, int64_t s, int64_t *lo, int64_t *hi)
{
    *lo = s ? o->ends[s - 1] : 0;
    *hi = o->ends[s];
}

void fl_order_free(fl_order *o);

#endif
