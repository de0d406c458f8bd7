/* datafile.h -- the HDF5 data file that prep writes once and every rank reads.
 *
 * Schema (docs/formats.md, contract): root attributes format = "foldline-data",
 * version = 1, num_classes, folds, fold_seed, height, width, channels;
 * /classes string[C]; /train/{images uint8 (N,ch,H,W) one image per chunk,
 * labels int32 (N), fold int32 (N), paths string (N)}; /test/{images, paths,
 * labels (optional)}.
 *
 * Integrity (within version 1; files without it are read unchecked): the
 * user block holds a seal (dataset/h5util.h): the file's length and a CRC-32
 * of every byte but the image chunks, verified at every open before HDF5
 * parses the file; every image chunk carries HDF5's Fletcher-32 checksum,
 * verified whenever it is read. See datafile_check.c for why.
 */
#ifndef FOLDLINE_DATAFILE_H
#define FOLDLINE_DATAFILE_H

#include <stdint.h>

#include "base/error.h"

#define FL_DATA_FORMAT  "foldline-data"
#define FL_DATA_VERSION 1

typedef enum { FL_SPLIT_TRAIN = 0, FL_SPLIT_TEST = 1 } fl_split_id;

typedef struct {
    int64_t n_train, n_test;
    int num_classes, folds, height, width, channels;
    int64_t fold_seed;
    int has_test_labels;
    char **classes;    /* (num_classes) names */
    int checks;        /* FL_DATA_CHECK_* bits: what the file lets readers verify */
    uint32_t seal_crc; /* sealed: the CRC-32 of the metadata its seal records (else 0) */
} fl_data_info;

#define FL_DATA_CHECK_SEAL   1 /* sealed: length and everything but the pixels verified at open */
#define FL_DATA_CHECK_PIXELS 2 /* every image chunk has a Fletcher-32 checksum */

/* ---- writing ------------------------------------------------------------- */

typedef struct fl_datafile_writer fl_datafile_writer;

/* Creates (truncating) path with the schema laid out for info. Messages call
 * the file name (NULL: path), e.g. the final name of a temporary file. */
fl_code fl_datafile_create(const char *path, const char *name, const fl_data_info *info, fl_datafile_writer **out,
                           fl_error *err);
/* Per-row metadata of a split. labels may be NULL for an unlabelled test set;
 * fold must be NULL for the test split. Both splits' rows come before any
 * image: the seal covers what was written before the first image. */
fl_code fl_datafile_write_rows(fl_datafile_writer *w, fl_split_id split, const int32_t *labels, const int32_t *fold,
                               char *const *paths, fl_error *err);
/* Images [first, first+count) of a split from a (count, ch, H, W) buffer. */
fl_code fl_datafile_write_images(fl_datafile_writer *w, fl_split_id split, int64_t first, int64_t count,
                                 const uint8_t *chw, fl_error *err);
/* Closes and seals the file; returns an error if it could not be flushed.
 * Always frees w. */
fl_code fl_datafile_finish(fl_datafile_writer *w, fl_error *err);

/* ---- reading ------------------------------------------------------------- */

typedef struct fl_datafile fl_datafile;

/* Opens read-only and checks the seal (length and checksum), format, version
 * and that every dataset has the shape the attributes promise; a wrong,
 * truncated or corrupt file is named before any use. Pixels are not read
 * (see fl_datafile_verify_images). */
fl_code fl_datafile_open(const char *path, fl_datafile **out, fl_error *err);
void fl_datafile_close(fl_datafile *df);
const fl_data_info *fl_datafile_info(const fl_datafile *df);
/* (n) labels of a split, each checked to be in 0..C-1; FL_EINPUT if the
 * test split has none. Folds are checked to be in 0..K-1. */
fl_code fl_datafile_read_labels(fl_datafile *df, fl_split_id split, int32_t *labels, fl_error *err);
fl_code fl_datafile_read_folds(fl_datafile *df, int32_t *fold, fl_error *err);
/* Rows [first, first+count) of a split into a (count, ch, H, W) buffer; an
 * image that cannot be read (its checksum fails) is named by row and path. */
fl_code fl_datafile_read_images(fl_datafile *df, fl_split_id split, int64_t first, int64_t count, uint8_t *chw,
                                fl_error *err);
/* Reads part `part` of `parts` of every image of both splits (contiguous
 * shares, so that ranks can split the work) and so verifies their checksums;
 * the first corrupt image is named by split, row and image path. *checked
 * gets the number of images verified: 0 when the file has no pixel
 * checksums (FL_DATA_CHECK_PIXELS unset), which is not an error. */
fl_code fl_datafile_verify_images(fl_datafile *df, int part, int parts, int64_t *checked, fl_error *err);
/* (n) malloc'ed strings of a split's image_path column, and the array. */
fl_code fl_datafile_read_paths(fl_datafile *df, fl_split_id split, char ***paths, fl_error *err);
void fl_datafile_free_paths(char **paths, int64_t n);

/* A 16-hex-digit fingerprint of what predictions depend on: the class count
 * and the test rows (count and paths). Predictions carry it, so that votes
 * never mix predictions of different test sets. */
fl_code fl_datafile_fingerprint(fl_datafile *df, char out[17], fl_error *err);

/* The innermost message of HDF5's error stack (for our own messages). */
void fl_h5_last_error(char *buf, size_t n);
/* Keeps HDF5 from printing its error stack (foldline reports errors itself)
 * and captures each failure's reason for fl_h5_last_error. Per thread: each
 * thread that calls HDF5 calls it first. */
void fl_h5_quiet(void);

#endif
