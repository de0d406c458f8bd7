/* job.h -- one job of a run: model m trained on every fold but k, validated
 * on fold k every epoch, then predicting its held-out rows (OOF) and the test
 * set with the checkpoint its config names.
 *
 * Files of a job, in RUN_DIR/<model>/fold<k>/: settings.txt (what decides
 * its results), last.pt, best_loss.pt, best_acc.pt (model + optimizer state
 * + the job's progress), metrics.csv (a row per epoch), and preds.h5
 * (docs/formats.md, "preds.h5"), each written to a temporary name and
 * renamed. A job whose preds.h5 exists is complete and never redone; one
 * with a last.pt resumes from it.
 *
 * Data-parallel: every rank of env->group runs fl_job_run on the same job.
 * `batch` is the global batch; each rank computes the gradient of its
 * contiguous shard of every batch, scaled by (its rows / the batch's rows),
 * the gradients are summed over the group in one flat all-reduce, and every
 * rank steps: the weights stay identical on every rank, and equal (up to
 * rounding) to one process's with the same batch. Group rank 0 broadcasts the
 * initial weights, and its batch-norm running statistics before every
 * validation and prediction (each rank keeps its own while training).
 * Validation and prediction are sharded (each rank a contiguous share of the
 * rows) and gathered, so every row is predicted exactly once. Only group
 * rank 0 writes files and log lines.
 */
#ifndef FOLDLINE_JOB_H
#define FOLDLINE_JOB_H

#include <stdint.h>
#include <stdio.h>

#include "dataset/datafile.h"
#include "dataset/loader.h"
#include "dist/group.h"
#include "dist/jobq.h"
#include "trainer/spec.h"
#include "trainer/torch/bridge.h"

/* One data file of the run and its loaders. A model may have its own data
 * file (another image size); every data file of a run holds the same rows
 * (labels, folds, test set), which launch checks before any job. */
typedef struct {
    fl_data_info info;       /* shapes and counts of the data file (classes not kept) */
    fl_loader *train_loader; /* /train rows (training and validation) */
    fl_loader *test_loader;  /* /test rows */
} fl_job_data;

/* What every job of a run shares: the data and where results go. */
typedef struct {
    const fl_train_config *cfg;
    const fl_job_data *model_data[FL_MAX_MODELS]; /* the data file of each model (several may share one) */
    const int32_t *train_labels;                  /* (n_train), equal in every data file of the run */
    const int32_t *train_fold;                    /* (n_train), likewise */
    char fingerprint[17];                         /* fl_datafile_fingerprint, likewise */
    char run_dir[4096];                           /* out_dir/run_name */
    const char *device;                           /* "cpu", "cuda:0", ... */
    FILE *log;                                    /* per-epoch lines; NULL for none */
    fl_group *group;                              /* the ranks that run each job together; NULL: this process alone */
    fl_jobq *queue;                               /* kept served during a job (fl_jobq_progress); NULL for none */
    /* For status.txt (trainer/jobstatus.h): who runs the job. */
    int world_rank;   /* this rank in the MPI world */
    int groups;       /* rank groups of this train process */
    char launch[300]; /* world rank 0's "host:pid": which train process */
} fl_job_env;

typedef struct {
    int model; /* index into cfg->models */
    int fold;
} fl_job;

/* The job's seed: a function of run.seed, the model name and the fold only. */
uint64_t fl_job_seed(const fl_train_config *cfg, const fl_job *job);

/* The model spec (trainer/torch/bridge.h) of model config mc on data file
 * in, without seeds, device or shared backbone: what fl_model_check_spec
 * checks before a run writes anything. */
void fl_job_model_spec(const fl_model_cfg *mc, const fl_data_info *in, fl_model_spec *spec);

/* RUN_DIR/<model>/fold<k> into buf. */
void fl_job_dir(const fl_job_env *env, const fl_job *job, char *buf, size_t n);

/* 1 if the job's preds.h5 exists (the job is complete). */
int fl_job_is_done(const fl_job_env *env, const fl_job *job);

/* Compares the job's settings.txt, if it has one, with what the config gives
 * now (trainer/settings.h): FL_EINPUT naming the first difference. Changes
 * only to predict_with or tta are no error: *inference_changed = 1. */
fl_code fl_job_check_settings(const fl_job_env *env, const fl_job *job, int *inference_changed, fl_error *err);

/* After fl_job_check_settings found only predict_with or tta changed (and
 * no live trainer holds the job): writes the job's settings.txt anew and
 * removes its preds.h5, so that the job, resumed from its last.pt with every
 * epoch done, re-predicts with the new settings and trains nothing. */
fl_code fl_job_repredict(const fl_job_env *env, const fl_job *job, fl_error *err);

/* Trains and predicts one job (collective over env->group): from its last.pt
 * when it has one. A stop signal (base/stop.h) ends it after the current
 * step with a checkpoint and FL_ESTOPPED. */
fl_code fl_job_run(const fl_job_env *env, const fl_job *job, fl_error *err);

#endif
