/* fused.h -- a frozen model's folds trained together, from one backbone pass
 * per batch.
 *
 * With a frozen backbone the folds of a model differ only in their heads. A
 * fused job holds one backbone and one head per fold (each with its own
 * optimizer, checkpoints and files, exactly as a fold's own job), and for
 * every batch of trainer/order.h's shared batches computes the features once
 * and trains every head on the rows outside its fold. Validation, the OOF
 * and test predictions and their test-time views likewise compute each
 * image's features once for all the heads. The un-augmented features of the
 * train split are computed once for the whole run (dataset/featcache.h, as
 * data.feature_cache says) and serve validation, the epochs whose
 * augmentation stage has no ops, and the OOF plain view.
 *
 * The results are those of the folds' own jobs (fuse_folds = false) up to
 * float rounding; each fold's files (settings.txt, checkpoints, metrics.csv,
 * preds.h5) are the same files, so a run may resume a fold either way.
 * Collective over env->group, data-parallel like any job: each rank takes a
 * contiguous shard of every batch, the heads' gradients are summed in one
 * all-reduce per step.
 */
#ifndef FOLDLINE_FUSED_H
#define FOLDLINE_FUSED_H

#include "trainer/job.h"

/* Trains and predicts folds[0 .. n_folds-1] of frozen model `model` (those
 * not complete; each from its last.pt when it has one). A stop signal ends it
 * after the current step with every head checkpointed and FL_ESTOPPED. */
fl_code fl_fused_run(const fl_job_env *env, int model, const int *folds, int n_folds, fl_error *err);

#endif
