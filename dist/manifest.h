/* manifest.h -- RUN_DIR/run.cfg, what `foldline train` tells `foldline vote`.
 *
 * libconfig syntax, written atomically by every train process that starts
 * jobs of the run (identical content), read by vote:
 *
 *   data_file = "/abs/path/data.h5";
 *   folds = [0, 1, 2, 3, 4];
 *   models = ( { name = "cnn_a"; weight = 1.0; }, { name = "cnn_b"; weight = 1.0; } );
 *   vote_method = "soft-soft";
 */
#ifndef FOLDLINE_MANIFEST_H
#define FOLDLINE_MANIFEST_H

#include "dist/error.h"

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

fl_code fl_manifest_write(const char *path, const fl_manifest *m, fl_error *err);
fl_code fl_manifest_read(const char *path, fl_manifest *m, fl_error *err);

#endif
