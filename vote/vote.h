/* vote.h -- `foldline vote`: the gather step over a run directory.
 *
 * Reads RUN_DIR/run.cfg (the manifest `foldline train` writes: data file,
 * folds, models with weights, vote method), every RUN_DIR/<model>/fold<k>/
 * preds.h5 it names, and the data file; computes the OOF accuracy of every
 * fold and model, every ensemble's OOF and (where labels exist) test accuracy
 * and the agreement between models; writes the submission and a report.
 *
 * Methods (docs/recipes.md, "The seed recipe"): within one model, `soft` averages its folds'
 * probabilities and `hard` takes a majority of its folds' argmaxes. Across
 * models: `soft-soft` averages every fold probability vector of every model
 * (model weights weight them); `soft-hard` takes each model's soft vote, then
 * a (weighted) majority across models; `hard-hard` takes one (weighted)
 * majority over every model x fold argmax. Ties go to the lowest class id.
 * OOF rows have one prediction per model (the fold that held the row out),
 * so there soft-soft is the weighted mean of the models' OOF probabilities,
 * and soft-hard and hard-hard are both the weighted majority of their argmaxes.
 *
 * Besides submission.csv and report.md, vote writes report.html (vote_html*.c:
 * learning curves, confusion, calibration, as inline SVG) and, with
 * fit_weights, RUN_DIR/ensemble/weights.txt: model weights fitted on the OOF
 * predictions by greedy ensemble selection (vote_fit.c; the file's format and
 * its reader are in vote/vote_weights.h). A vote without fit_weights removes
 * a weights.txt of an earlier one, so that the file always belongs to the
 * submission beside it.
 */
#ifndef FOLDLINE_VOTE_H
#define FOLDLINE_VOTE_H

#include <stdio.h>

#include "base/error.h"

typedef struct {
    const char *run_dir;
    const char *method;     /* NULL: the manifest's vote_method */
    const char *model;      /* for soft/hard with several models: which one; NULL otherwise */
    const char *out_path;   /* NULL: RUN_DIR/ensemble/submission.csv */
    const char *labels_csv; /* NULL, or image_path,target for test accuracy */
    const char *data_file;  /* NULL: the manifest's */
    FILE *echo;             /* where the report is also printed (stdout), or NULL */
    int fit_weights;        /* 1: fit the soft-soft vote's weights on the OOF rows; the submission uses them */
    const char *fit_metric; /* a name of fl_fit_metric_names (base/names.h); NULL: logloss */
    int fit_temperature;    /* 1: also fit one temperature per model (on OOF log-loss) */
    int fit_rounds;         /* rounds of greedy selection (0: VOTE_FIT_ROUNDS) */
} fl_vote_options;

#define VOTE_FIT_ROUNDS 50

fl_code fl_vote_run(const fl_vote_options *opt, fl_error *err);

#endif
