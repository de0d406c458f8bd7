/* predict.h -- a trained run's models in memory, predicting new images as
 * the run predicted its test set.
 *
 * Every fold of every chosen model is rebuilt from its settings (trainer/
 * run.h) and loads the checkpoint predict_with names; a frozen model's folds
 * share one backbone (drawn from the model's seed as in training, or its
 * TorchScript file), whose features of each image and test-time view are
 * computed once for all its heads, as a fused job predicts. Images come as
 * the data file stores them: uint8 (B, channels, H, W) at the model's size;
 * each model's probabilities are fl_model_predict's (the plain view and its
 * test-time views averaged), so that a run's test images give back its
 * preds.h5 test probabilities.
 */
#ifndef FOLDLINE_PREDICT_H
#define FOLDLINE_PREDICT_H

#include <stdint.h>

#include "base/error.h"
#include "trainer/run.h"
#include "trainer/torch/bridge.h"

typedef struct fl_predictor fl_predictor;

/* Builds and loads every model x fold of run on device ("cpu", "cuda:N").
 * run must outlive the predictor. */
fl_code fl_predictor_new(const fl_run *run, const char *device, fl_predictor **out, fl_error *err);
void fl_predictor_free(fl_predictor *p);

/* Model m's probabilities for B images x (B, ch, H, W) of its shape: fold i
 * of row r (run.cfg's fold order) into out[r * stride + i * C + c]. */
fl_code fl_predictor_model(fl_predictor *p, int m, const uint8_t *x, int B, float *out, int64_t stride, fl_error *err);

/* Model m's fold i as an fl_model (for export: its tensors). */
fl_model *fl_predictor_fold(const fl_predictor *p, int m, int i);

#endif
