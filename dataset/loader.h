/* loader.h -- batches of images from the data file, read ahead by a thread.
 *
 * The caller decides which rows form each batch (shuffling, fold selection
 * and, under MPI, sharding live in trainer/ and dist/); the loader reads the
 * rows of the next batches on a prefetch thread while the model computes on
 * the current one, so that reading does not show in the step time. With
 * cache_memory the whole split is read once and batches are gathered from
 * RAM.
 *
 * HDF5 (serial build) is not thread-safe: the prefetch thread reads under
 * fl_h5_lock (dataset/h5util.h), which any other thread that calls HDF5
 * while an epoch is in flight must hold too (the feature cache does).
 */
#ifndef FOLDLINE_LOADER_H
#define FOLDLINE_LOADER_H

#include <stdint.h>

#include "dataset/datafile.h"

typedef struct fl_loader fl_loader;

/* Opens its own handle on the data file; split selects /train or /test. */
fl_code fl_loader_open(const char *path, fl_split_id split, int cache_memory, fl_loader **out, fl_error *err);
void fl_loader_close(fl_loader *ld);

/* Starts reading the rows (n, indices into the split) in batches of `batch`
 * (the last one may be shorter). The rows array is copied. */
fl_code fl_loader_start(fl_loader *ld, const int64_t *rows, int64_t n, int batch, fl_error *err);

/* The same, reading only shard `shard` of n_shards of every batch: of a batch
 * of len rows starting at position lo, the rows [lo + len * shard / n_shards,
 * lo + len * (shard + 1) / n_shards), so that the shards of the ranks of a
 * data-parallel group tile every batch in order. A shard may be empty (B = 0)
 * when a batch has fewer rows than there are shards. */
fl_code fl_loader_start_shard(fl_loader *ld, const int64_t *rows, int64_t n, int batch, int shard, int n_shards,
                              fl_error *err);

/* The same with batches of any size: batch b is the rows [ends[b-1], ends[b])
 * (ends[-1] = 0; ends[n_batches - 1] = n), possibly empty; a frozen
 * backbone's fold-stratified batches (trainer/order.h). ends is copied. */
fl_code fl_loader_start_batches(fl_loader *ld, const int64_t *rows, int64_t n, const int64_t *ends, int64_t n_batches,
                                int shard, int n_shards, fl_error *err);

/* The next batch (or its shard): *x points to (B, ch, H, W) uint8 pixels valid
 * until the next call, *first its position in the rows of fl_loader_start.
 * Returns 1, 0 at the end, or -1 (err set). */
int fl_loader_next(fl_loader *ld, const uint8_t **x, int *B, int64_t *first, fl_error *err);

/* Seconds the caller spent waiting in fl_loader_next since the last start. */
double fl_loader_wait_seconds(const fl_loader *ld);

#endif
