/* folds.h -- stratified k-fold assignment.
 *
 * The algorithm is scikit-learn's StratifiedKFold(n_splits=k, shuffle=True,
 * random_state=seed) step for step, including numpy's legacy MT19937 stream,
 * so that foldline's folds equal the ones a Python recipe made with seed 42.
 * Classes in order of first appearance take fold quotas by a round robin over
 * the label-sorted rows; each class's fold ids are then shuffled and handed
 * to its rows in row order. Hence within every class fold sizes differ by at
 * most one, and so do overall fold sizes.
 */
#ifndef FOLDLINE_FOLDS_H
#define FOLDLINE_FOLDS_H

#include <stdint.h>

#include "base/error.h"

/* fold_of_row[i] in 0..k-1 for every row i of labels (n rows, values >= 0).
 * Fails when some class has fewer than k rows. */
fl_code fl_folds_stratified(const int32_t *labels, int n, int k, uint32_t seed, int32_t *fold_of_row, fl_error *err);

/* numpy's legacy RandomState: MT19937 seeded with init_genrand. */
typedef struct {
    uint32_t key[624];
    int pos;
} fl_mt19937;

void fl_mt19937_seed(fl_mt19937 *mt, uint32_t seed);
uint32_t fl_mt19937_next(fl_mt19937 *mt);
/* Uniform in [0, max] by masked rejection, as numpy's random_interval. */
uint32_t fl_mt19937_interval(fl_mt19937 *mt, uint32_t max);

#endif
