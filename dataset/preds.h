/* preds.h -- the predictions file of one job: RUN_DIR/<model>/fold<k>/preds.h5.
 *
 * Contract (docs/formats.md): /oof/index int32 [n_k] (rows of /train held out in
 * fold k, ascending), /oof/probs float32 [n_k, C], /test/probs float32
 * [M, C]; attributes model, fold, epoch, checkpoint. foldline also writes
 * format = "foldline-preds", version = 1, num_classes, and test_fingerprint
 * (fl_datafile_fingerprint of the data file it predicted), so that vote can
 * tell predictions of different test sets apart. Written to a temporary name
 * and renamed: the file exists only when complete.
 */
#ifndef FOLDLINE_PREDS_H
#define FOLDLINE_PREDS_H

#include <stdint.h>

#include "base/error.h"

#define FL_PREDS_FORMAT  "foldline-preds"
#define FL_PREDS_VERSION 1

typedef struct {
    char model[64];
    int fold;
    int epoch;           /* epoch of the checkpoint that predicted (0-based) */
    char checkpoint[16]; /* "best_acc" | "best_loss" | "last" */
    int num_classes;
    char test_fingerprint[17];
    int64_t n_oof;
    int32_t *oof_index; /* (n_oof) ascending */
    float *oof_probs;   /* (n_oof, num_classes) */
    int64_t n_test;
    float *test_probs; /* (n_test, num_classes) */
} fl_preds;

/* Writes p to path through a temporary file and a rename (overwriting). */
fl_code fl_preds_write(const char *path, const fl_preds *p, fl_error *err);
/* Reads and checks a predictions file (format, shapes, rows of probabilities
 * that sum to 1 within 1e-3, ascending index); messages name the path. */
fl_code fl_preds_read(const char *path, fl_preds *p, fl_error *err);
/* Frees the arrays fl_preds_read allocated (not p itself). */
void fl_preds_free(fl_preds *p);
/* 1 if path is an HDF5 file whose format attribute is "foldline-preds". */
int fl_preds_probe(const char *path);

#endif
