/* featcache.h -- a frozen backbone's features of every image of a split,
 * computed once and read back by row: the un-augmented view that validation,
 * the epochs whose augmentation stage has no ops, and the OOF prediction of
 * a fold-fused job all use (trainer/fused.c).
 *
 * A table of n_rows float32 rows of `dim` values, in memory or, when it is
 * larger than the memory the run allows it, in a scratch HDF5 file that lives
 * as long as the cache (removed at close; a file left by a killed process is
 * overwritten by the next open). Every HDF5 call holds fl_h5_lock, so the
 * cache may be used while a loader reads the data file on its own thread.
 */
#ifndef FOLDLINE_FEATCACHE_H
#define FOLDLINE_FEATCACHE_H

#include <stdint.h>

#include "base/error.h"

typedef struct fl_featcache fl_featcache;

/* file NULL: in memory; else the scratch HDF5 file's path. */
fl_code fl_featcache_open(const char *file, int64_t n_rows, int dim, fl_featcache **out, fl_error *err);
/* Removes the scratch file, if any. NULL is fine. */
void fl_featcache_close(fl_featcache *c);

/* Rows row0 .. row0+n-1 from src (n, dim). */
fl_code fl_featcache_put(fl_featcache *c, int64_t row0, int64_t n, const float *src, fl_error *err);
/* Rows rows[0 .. n-1] (any order, repeats allowed) into dst (n, dim). */
fl_code fl_featcache_get(fl_featcache *c, const int64_t *rows, int64_t n, float *dst, fl_error *err);

int fl_featcache_in_file(const fl_featcache *c);

#endif
