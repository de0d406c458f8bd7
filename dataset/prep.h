/* prep.h -- `foldline prep`: the source layout -> one HDF5 data file.
 *
 * Reading and checking the source happens first (seconds); then worker
 * threads decode and resize images into a double-buffered block while the
 * calling thread writes the previous block to HDF5 (HDF5 itself is used from
 * that one thread only). The file is written under a temporary name and
 * renamed into place when complete.
 */
#ifndef FOLDLINE_PREP_H
#define FOLDLINE_PREP_H

#include <stdint.h>

#include "base/error.h"

typedef struct {
    const char *src_dir;
    const char *out_path;
    const char *classes_file; /* IDX sources only; may be NULL */
    int height, width;        /* 0: 224x224 for image folders, native for IDX */
    int channels;             /* 1 or 3 */
    int folds;
    uint32_t seed;
    int threads;     /* 0: every core this process may use */
    int force;       /* replace out_path if it exists */
    int shape_given; /* --channels or --size was given: no note about a grey source */
    /* Called by the writing thread as images are decoded (often: it must be
     * cheap), with the images done so far of total; may be NULL. */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} fl_prep_options;

typedef struct {
    int64_t n_train, n_test;
    int threads;
    double seconds_total;  /* wall clock */
    double seconds_scan;   /* reading and checking the CSVs / IDX files, folds */
    double seconds_decode; /* summed over worker threads */
    double seconds_resize; /* summed over worker threads */
    double seconds_write;  /* HDF5 writes and the final flush, on the writer thread */
    double seconds_wait;   /* writer waiting for decoded blocks */
    /* Without shape_given: the source's images are grey (IDX, or the first
     * train image has R = G = B), at grey_h x grey_w; 0 otherwise. */
    int grey_source, grey_h, grey_w;
    int out_h, out_w, is_idx; /* the size written; 1 for an IDX source */
} fl_prep_stats;

fl_code fl_prep_run(const fl_prep_options *opt, fl_prep_stats *stats, fl_error *err);

#endif
