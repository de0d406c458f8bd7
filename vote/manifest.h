/* manifest.h -- RUN_DIR/run.cfg, what `foldline train` tells `foldline vote`.
 *
 * libconfig syntax, written atomically by every train process that starts
 * jobs of the run (identical content), read by vote:
 *
 *   data_file = "/abs/path/data.h5";
 *   folds = [0, 1, 2, 3, 4];
 *   models = ( { name = "cnn_a"; weight = 1.0; }, { name = "cnn_b"; weight = 1.0; } );
 *   vote_method = "soft-soft";
 *
 * data_file should be absolute: vote opens it as written (relative to its own
 * working directory) unless --data says otherwise.
 */
#ifndef FOLDLINE_MANIFEST_H
#define FOLDLINE_MANIFEST_H

#include "base/error.h"

typedef struct {
    char data_file[4096];
    int n_folds;
    int folds[64];
    int n_models;
    struct {
        char name[64];
        double weight;
    } models[32];
    char vote_method[16];
} fl_manifest;

/* Writes m to path through a temporary file and a rename (overwriting). */
fl_code fl_manifest_write(const char *path, const fl_manifest *m, fl_error *err);
/* Reads and checks path: data_file, folds and models are required (a model's
 * weight defaults to 1.0, vote_method to "soft-soft"); unknown keys, wrong
 * types, duplicate folds or model names are errors naming the file and line. */
fl_code fl_manifest_read(const char *path, fl_manifest *m, fl_error *err);

/* 1 if method is one of soft, hard, soft-soft, soft-hard, hard-hard. */
int fl_manifest_method_valid(const char *method);
/* 1 if name can be a model (and directory) name: 1..63 of [A-Za-z0-9_.-],
 * not "." or "..". */
int fl_manifest_name_valid(const char *name);

#endif
