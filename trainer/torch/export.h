/* export.h -- a run's ensemble as one TorchScript module (`foldline export`).
 *
 * The module's forward takes uint8 images (N, C, H, W) at the run's size and
 * returns float64 (N, num_classes): the ensemble's class probabilities for the
 * soft methods (soft, soft-soft), the shares of the weighted votes for the
 * hard ones (hard, soft-hard, hard-hard); its argmax (the first maximum) is
 * the class `foldline predict` gives. Inside, as predict computes it: the
 * normalisation ((x / 255 - mean) / std per model), each distinct backbone
 * once (a frozen model's folds share theirs: its features of each view feed
 * every head), every fold's head, the test-time views (softmax averaged over
 * the plain view and the flips), and the vote in double precision, models
 * and folds summed in the run's order. Fitted (weights.txt, method
 * soft-soft): each fold's probabilities tempered with its model's T, and the
 * output is sum_m weight_m * (sum of m's tempered folds / folds), as
 * vote/vote_sum.h's fitted sums.
 *
 * Built-in backbones are written out as TorchScript source over their
 * trained tensors (registered as the module's parameters and buffers); a
 * "torchscript:PATH" backbone goes in as the module it is. Plain PyTorch
 * loads the file (torch.jit.load) with no foldline code.
 */
#ifndef FOLDLINE_TORCH_EXPORT_H
#define FOLDLINE_TORCH_EXPORT_H

#include "base/error.h"
#include "trainer/torch/bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double weight;
    double temperature; /* fitted: the model's T (1: none) */
    int frozen;         /* the folds share one backbone */
    int n_folds;
    fl_model *const *folds; /* (n_folds), loaded with the weights they predict with */
    int n_tta;
    const int *tta; /* fl_tta_kind */
} fl_export_model;

/* Writes the module to path (the caller makes it atomic: a temporary name,
 * then a rename). method: soft | hard | soft-soft | soft-hard | hard-hard
 * (soft and hard: one model); fitted: the weights and temperatures are
 * weights.txt's (method soft-soft). Every model must take the same images. */
fl_code fl_export_ensemble(const fl_export_model *models, int n_models, const char *method, int fitted,
                           const char *path, fl_error *err);

#ifdef __cplusplus
}
#endif

#endif
