/* vote_weights.h -- RUN_DIR/ensemble/weights.txt: the ensemble weights that
 * `foldline vote --fit-weights` fitted on the OOF predictions, for every
 * later step that applies the ensemble (predict, export).
 *
 * Format (text, one record a line, '#' starts a comment line):
 *
 *   format foldline-weights 1
 *   metric logloss                 # or acc: what greedy selection minimised/maximised
 *   rounds 50                      # rounds of greedy selection run
 *   temperature 1                  # 1: temperatures were fitted, 0: every one is 1
 *   model NAME WEIGHT TEMPERATURE PICKS
 *   ...                            # one line per model of run.cfg, in run.cfg's order
 *
 * WEIGHT is PICKS / (sum of PICKS), printed with %.17g (it reads back to the
 * same double); weights sum to 1 and may be 0 (a model greedy selection never
 * picked). TEMPERATURE > 0 (%.17g).
 *
 * Applying them (what vote does for the submission, and what predict and
 * export must do to give the same classes): for each model m, in this file's
 * order, the mean over its folds (in run.cfg's fold order, summed in double,
 * divided by the fold count) of fl_vote_temper(fold probabilities, T_m); the
 * ensemble's probabilities are the sum over models of WEIGHT_m times that
 * mean; the class is its first argmax (ties to the lowest class id).
 */
#ifndef FOLDLINE_VOTE_WEIGHTS_H
#define FOLDLINE_VOTE_WEIGHTS_H

#include "base/error.h"

#define FL_WEIGHTS_FORMAT     "foldline-weights"
#define FL_WEIGHTS_VERSION    1
#define FL_WEIGHTS_MAX_MODELS 32

typedef struct {
    char name[64];
    double weight;      /* >= 0; the models' weights sum to 1 */
    double temperature; /* > 0; 1 when not fitted */
    int picks;          /* times greedy selection picked the model */
} fl_vote_weight;

typedef struct {
    int present;     /* 0: the run has no weights.txt (vote without --fit-weights) */
    char metric[16]; /* "logloss" | "acc" */
    int rounds;
    int fitted_temperature;
    int n_models;
    fl_vote_weight models[FL_WEIGHTS_MAX_MODELS];
} fl_vote_weights;

/* RUN_DIR/ensemble/weights.txt into path (n bytes). */
void fl_vote_weights_path(const char *run_dir, char *path, size_t n);

/* Reads RUN_DIR/ensemble/weights.txt. A missing file is no error: FL_OK with
 * w->present = 0. A malformed one is named with its line and a HINT. */
fl_code fl_vote_weights_read(const char *run_dir, fl_vote_weights *w, fl_error *err);

/* The entry of a model, or NULL when the file does not name it. */
const fl_vote_weight *fl_vote_weights_find(const fl_vote_weights *w, const char *model);

/* Writes w (present, n_models >= 1) atomically (temporary file and rename). */
fl_code fl_vote_weights_write(const char *run_dir, const fl_vote_weights *w, fl_error *err);

/* Temperature scaling of one probability row: out_c = p_c^(1/T) / sum_k p_k^(1/T),
 * computed as exp((log p_c - max log p) / T) normalised; zero stays zero.
 * T == 1 copies p. p (C) float32 as in preds.h5, out (C) double. */
void fl_vote_temper(const float *p, int C, double T, double *out);

#endif
