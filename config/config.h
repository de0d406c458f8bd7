/* config.h -- loading and checking a training config (libconfig syntax).
 *
 * The keys are the config contract (docs/config.md); trainer/spec.h says what each
 * one means, its default and its range. Every problem is reported as one line
 * that names where it is and the full key path, what was expected and what was
 * found, with a HINT where one helps:
 *
 *   configs/x.cfg:12: models.[0].optimizer.lr: must be > 0, found -0.001
 *   --set models.0.batch=0: models.[0].batch: must be >= 1, found 0
 *   configs/x.cfg: missing key data.file
 */
#ifndef FOLDLINE_CONFIG_H
#define FOLDLINE_CONFIG_H

#include "base/error.h"
#include "trainer/spec.h"

/* Loads path, applies overrides ("key.path=value", in order), fills *cfg with
 * defaults for absent keys, and checks every key. Unknown keys and wrong types
 * are errors at every level. An override replaces or creates a setting before
 * the checks, so it is checked like the file; its errors name "--set TEXT".
 * Override paths: components separated by '.', list elements by index ("0" or
 * "[0]") or, for models, by name ("models.cnn_a.epochs=1"); a component of
 * digits is an index. Values are read as libconfig reads them (1, 1.5, 42L,
 * true, "text", [1, 2], ( ... ), { ... }); anything else is a bare string.
 * Also checks that every data.file (top level and models.[i].data.file) can
 * be read; data.file may be absent only when every model gives its own. On failure *cfg is unspecified.
 * *cfg is large (about 600 KB): allocate it, do not put it on the stack. */
fl_code fl_config_load(const char *path, const char *const *overrides, int n_overrides, fl_train_config *cfg,
                       fl_error *err);

/* Checks that need model's data file (cfg->models[model].data_file, with
 * channels and folds): the model's data.mean and data.std (its own or the
 * top-level ones) hold 1 value (for every channel) or one per channel;
 * folds.use lies inside 0..folds-1 and has no duplicates. Messages name the
 * config file, line and key (models.[i].data.mean for a model's own). */
fl_code fl_config_check_data(const fl_train_config *cfg, int model, int channels, int folds, fl_error *err);

/* Checks against the MPI world: dist.ranks_per_job must divide its size. */
fl_code fl_config_check_world(const fl_train_config *cfg, int world_size, fl_error *err);
/* The ranks of one group: dist.ranks_per_job, or every rank of the world
 * when it is 0 (data-parallel on all of them, whatever mpirun -np says). */
static inline int fl_config_group_ranks(const fl_train_config *cfg, int world_size)
{
    return cfg->ranks_per_job > 0 ? cfg->ranks_per_job : world_size;
}

/* Every model's precision on this rank's device: "fp16" needs CUDA (the CPU's
 * autocast is bfloat16), an error naming run.precision or models.[i].precision
 * with its file:line. */
fl_code fl_config_check_precision(const fl_train_config *cfg, int cuda, const char *host, fl_error *err);

/* dist.backend "nccl" needs a CUDA device for this rank (cuda) and a foldline
 * built with NCCL; host names the machine in the message. */
fl_code fl_config_check_backend(const fl_train_config *cfg, int cuda, int nccl_built, const char *host, fl_error *err);

#endif
