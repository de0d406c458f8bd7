/* train_priv.h -- what the files of `foldline train` share: the state of a
 * rank for the whole run and the set-up steps each file contributes. Not a
 * public API: only launch/cli_train.c and launch/train_*.c include it.
 *
 *   cli_train.c     the verb: the life of a rank (set-up, groups, jobs, vote)
 *   train_data.c    the data files: opening, comparing, the verification pass
 *   train_plan.c    device, folds, jobs, and the checks of backbones and batches
 *   train_rundir.c  the run directory before the jobs: --restart, settings, run.cfg
 *   train_jobs.c    step 4: the jobs from the queue, their locks, the run's ETA
 */
#ifndef FOLDLINE_TRAIN_PRIV_H
#define FOLDLINE_TRAIN_PRIV_H

#include <limits.h>
#include <stdint.h>

#include "dataset/datafile.h"
#include "dataset/verified.h"
#include "dist/group.h"
#include "dist/world.h"
#include "trainer/job.h"
#include "trainer/spec.h"

/* One distinct data file of the run: models that name the same file (by
 * realpath) share it, its loaders and, with data.cache = "memory", its cache. */
typedef struct {
    char real[PATH_MAX]; /* realpath of the file */
    int first_model;     /* the first model that uses it, for messages */
    fl_job_data jd;
    fl_datafile *df;                  /* open from step 2a to the end of the verification pass */
    char ident[FL_VERIFIED_LINE_MAX]; /* rank 0: its identity before the pass (verified.h), "" if none */
} train_data;

/* What the full pass of data.verify = "full" does with a data file (rank 0
 * decides, every rank does the same). */
enum { VERIFY_NONE = 0, VERIFY_READ, VERIFY_RECORDED };

/* What a rank holds for the whole run. */
typedef struct {
    fl_world world;
    const fl_train_config *cfg;
    train_data data[FL_MAX_MODELS]; /* data[0] is the first model's */
    int n_data;
    int data_of_model[FL_MAX_MODELS]; /* index into data */
    int verify[FL_MAX_MODELS];        /* VERIFY_* of each data file */
    int32_t *labels, *fold;           /* (n_train) of the first model's data file; equal in every other */
    /* The run's folds (folds.use: run.cfg, the vote), --fold K or -1, and the
     * folds this process trains (all of the run's, or K alone). */
    int folds[FL_MAX_FOLDS], n_folds, fold_only;
    int train_folds[FL_MAX_FOLDS], n_train_folds;
    char device[32]; /* "cpu" or "cuda:<local rank>" */
    int cuda_device; /* -1 on the CPU */
    fl_backend backend;
    int threads;
    int restart;                    /* --restart */
    int feature_dim[FL_MAX_MODELS]; /* D of each TorchScript backbone (0 for built-in ones) */
    /* The jobs this process's groups share: a model's fold, or (fold -1) all
     * of a fold-fused model's train folds in one job (trainer/fused.h). */
    fl_job jobs[FL_MAX_MODELS * FL_MAX_FOLDS];
    int n_jobs;
    fl_job_env env;
} train_ctx;

/* train_data.c */
fl_code train_open_data(train_ctx *t, fl_error *err);
void train_decide_verify(train_ctx *t);
fl_code train_verify_data(train_ctx *t, fl_error *err);
void train_write_verified(const train_ctx *t);

/* train_plan.c */
fl_code train_pick_device(train_ctx *t, fl_error *err);
fl_code train_pick_folds(train_ctx *t, fl_error *err);
fl_code train_check_frozen_batches(train_ctx *t, fl_error *err);
void train_list_jobs(train_ctx *t);
fl_code train_probe_backbones(train_ctx *t, fl_error *err);
/* What every model's net needs of its data file (at least 8x8 images, classes,
 * channels: fl_model_check_spec): config errors naming the line, before
 * anything of the run is written. A batch larger than the fewest training
 * rows of a job is a warning (rank 0): each epoch is one smaller batch. */
fl_code train_check_models(train_ctx *t, fl_error *err);

/* train_rundir.c (rank 0, before any job starts) */
/* --restart: removes the run directory (a foldline run's: it holds a
 * run.cfg), or with --fold K fold K's job directory of every model; refused
 * while a live trainer holds what it would remove. */
fl_code train_restart(const train_ctx *t, fl_error *err);
/* Every job of the config with a directory was trained with the settings
 * the config gives now; the jobs this process trains where only predict_with
 * or tta changed re-predict from their checkpoints. */
fl_code train_check_settings(const train_ctx *t, fl_error *err);
fl_code train_write_manifest(const train_ctx *t, fl_error *err);

/* train_jobs.c */
/* Step 4 (collective in each group): jobs until the queue is empty. */
fl_code train_jobs(train_ctx *t, fl_error *err);
/* Jobs of the whole run (models x the run's folds) whose preds.h5 is missing. */
int train_jobs_missing(const train_ctx *t);
/* "<prefix>: D of N jobs done ..., ETA ..." from the run directory. */
void train_say_eta(const train_ctx *t, const char *prefix);

#endif
