/* vote_internal.h -- what the files of `foldline vote` share: the state of
 * one vote (inputs, per-fold and per-model results, every method's
 * predictions) and the functions each file contributes. Not a public API:
 * only dist/vote*.c include it.
 *
 *   vote.c         fl_vote_run: load the run, accumulate predictions, vote
 *   vote_labels.c  test labels from a CSV (image_path,target)
 *   vote_report.c  the submission CSV and the markdown report
 */
#ifndef FOLDLINE_VOTE_INTERNAL_H
#define FOLDLINE_VOTE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "dist/error.h"
#include "dist/manifest.h"
#include "dist/vote.h"

#define VOTE_MAX_FOLDS 64
#define VOTE_MAX_MODELS 32
#define VOTE_MAX_METHODS (2 * VOTE_MAX_MODELS + 3)

typedef struct {
    int fold, epoch;
    char checkpoint[16];
    int64_t oof_rows, oof_correct;
    int64_t test_correct; /* when test labels exist */
} vote_fold;

typedef struct {
    const char *name;
    double weight;
    vote_fold folds[VOTE_MAX_FOLDS]; /* in manifest order */
    int64_t oof_rows, oof_correct;
    int32_t *oof_pred;  /* (n_train) argmax of the fold that held the row out; -1 off the run's folds */
    int32_t *test_soft; /* (n_test) argmax of the sum of the folds' probabilities */
    int32_t *test_hard; /* (n_test) class with most fold argmaxes, lowest id on ties */
} vote_model;

/* One row of the methods table: a method's predictions and its scores. */
typedef struct {
    char name[96];         /* "soft cnn_a", "soft-soft", ... */
    char method[16];       /* "soft", "hard", "soft-soft", "soft-hard", "hard-hard" */
    int model;             /* index into models for soft/hard, -1 across models */
    const int32_t *test;   /* (n_test) predicted class */
    const int32_t *oof;    /* (n_train) predicted class, -1 off the run's folds */
    int64_t oof_rows, oof_correct, test_correct;
} vote_method;

typedef struct {
    const fl_vote_options *opt;
    fl_manifest man;
    char manifest_path[4096];
    char data_path[4096];
    char fingerprint[17];
    int64_t n_train, n_test;
    int num_classes, data_folds;
    int32_t *train_labels; /* (n_train) */
    int32_t *train_fold;   /* (n_train) */
    char **test_paths;     /* (n_test) */
    int32_t *test_labels;  /* (n_test), NULL without labels */
    char labels_source[4200];

    int n_models;
    vote_model models[VOTE_MAX_MODELS];
    int32_t *test_soft_soft, *test_soft_hard, *test_hard_hard; /* (n_test) */
    int32_t *oof_soft_soft, *oof_majority;                     /* (n_train), -1 off the run's folds */
    int32_t *oof_soft_hard, *oof_hard_hard;                    /* aliases of oof_majority */

    int n_methods;
    vote_method methods[VOTE_MAX_METHODS]; /* soft m, hard m for each model m; soft-soft, soft-hard, hard-hard */
    int chosen; /* index into methods: what the submission holds */
    char submission_path[4096];
    char report_path[4096];
} vote_state;

/* Index of the first largest of x[0..n) (ties -> lowest index). */
static inline int32_t vote_argmax_f(const float *x, int n)
{
    int32_t best = 0;
    for (int c = 1; c < n; c++)
        if (x[c] > x[best])
            best = c;
    return best;
}

static inline int32_t vote_argmax_d(const double *x, int n)
{
    int32_t best = 0;
    for (int c = 1; c < n; c++)
        if (x[c] > x[best])
            best = c;
    return best;
}

/* vote_labels.c: fills v->test_labels (n_test) from csv_path, matching rows by
 * image_path against v->test_paths; every test row must be covered. */
fl_code vote_labels_from_csv(vote_state *v, const char *csv_path, fl_error *err);

/* vote_report.c */
fl_code vote_write_submission(const vote_state *v, fl_error *err);
fl_code vote_write_report(const vote_state *v, FILE *echo, fl_error *err);

#endif
