/* settings.h -- what decides a job's results, as text kept in its directory.
 *
 * A rerun of `foldline train` resumes interrupted jobs and skips complete
 * ones; that is only right when the job would compute the same thing. Each
 * job writes RUN_DIR/<model>/fold<k>/settings.txt when it starts: one
 * "key = value" line per setting that changes its results (the data's shape,
 * labels and folds, run.seed, the fold, every key of the model; a TorchScript
 * backbone with its file's size and a 64-bit hash of its bytes). Before any
 * job starts, the settings of every job that has a directory are compared
 * with the config's, and the first difference is an error naming the key and
 * both values. Thread counts, ranks, the cache, the vote and out_dir are left
 * out: changing them is allowed.
 */
#ifndef FOLDLINE_SETTINGS_H
#define FOLDLINE_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "dataset/datafile.h"
#include "base/error.h"
#include "trainer/spec.h"

#define FL_SETTINGS_MAX 16384

/* The settings of job (model, fold) into buf (FL_SETTINGS_MAX bytes). data
 * is the model's data file (models.[i].data.file or data.file) and the mean
 * and std are the model's (its own or the top-level ones); labels and folds
 * are the /train rows' (n = data->n_train). A TorchScript backbone's file is
 * read and hashed once per process (again if stat shows it replaced); an
 * unreadable one is FL_EIO naming the model and path. Not thread-safe. */
fl_code fl_settings_of_job(const fl_train_config *cfg, int model, int fold, const fl_data_info *data,
                           const char *fingerprint, const int32_t *labels, const int32_t *folds, char *buf,
                           fl_error *err);

/* Compares the settings saved at path with now (a text of fl_settings_of_job).
 * A missing file is no difference (FL_OK). A difference is FL_EINPUT naming
 * the key and both values, with a HINT; numbers compare as numbers (a file
 * of an older foldline printed them with %.17g). With inference_changed
 * (not NULL), differences only in keys that change how a trained model
 * predicts (models.M.predict_with, models.M.tta) are no error: FL_OK and
 * *inference_changed = 1 (the job re-predicts from its checkpoints). */
fl_code fl_settings_check(const char *path, const char *now, int *inference_changed, fl_error *err);

/* The value of key in a settings text ("key = value" lines) into val (n
 * bytes); 0 when the text has no such key. */
int fl_settings_value(const char *text, const char *key, char *val, size_t n);

/* A TorchScript backbone's settings value ("torchscript:PATH bytes N hash H")
 * against the file at PATH now: FL_OK when it has the same size and hash,
 * else FL_EINPUT (FL_EIO when unreadable) naming model and path. */
fl_code fl_settings_module_check(const char *model, const char *value, fl_error *err);

#endif
