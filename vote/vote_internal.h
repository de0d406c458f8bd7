/* vote_internal.h -- what the files of `foldline vote` share: the state of
 * one vote (inputs, per-fold and per-model results, every method's
 * predictions) and the functions each file contributes. Not a public API:
 * only vote/vote*.c include it.
 *
 *   vote.c         fl_vote_run: load the run, accumulate predictions, vote
 *   vote_labels.c  test labels from a CSV (image_path,target)
 *   vote_report.c  the submission CSV and the markdown report
 *   vote_fit.c     --fit-weights: greedy ensemble selection, temperatures, the nested score
 *   vote_calib.c   reliability bins and ECE; the confusion matrix and its cluster order
 *   vote_html.c    report.html: the page, its tables and the learning curves
 *   vote_html_charts.c  report.html's heat maps, per-class bars and reliability diagrams
 */
#ifndef FOLDLINE_VOTE_INTERNAL_H
#define FOLDLINE_VOTE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "vote/manifest.h"
#include "base/outpath.h"
#include "vote/vote.h"

#define VOTE_MAX_FOLDS   64
#define VOTE_MAX_MODELS  32
#define VOTE_MAX_METHODS (2 * VOTE_MAX_MODELS + 4)
#define VOTE_ECE_BINS    15 /* equal-width bins of the top probability in [0, 1] */

/* Reliability statistics of one set of predictions: per bin of the top
 * probability (bin b holds [b/15, (b+1)/15), the last also 1), the rows, the
 * sum of their top probabilities and how many were right. */
typedef struct {
    int64_t rows;
    int64_t n[VOTE_ECE_BINS], correct[VOTE_ECE_BINS];
    double conf[VOTE_ECE_BINS];
} vote_calib;

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
    int32_t *oof_pred;            /* (n_train) argmax of the fold that held the row out; -1 off the run's folds */
    int32_t *test_soft;           /* (n_test) argmax of the sum of the folds' probabilities */
    int32_t *test_hard;           /* (n_test) class with most fold argmaxes, lowest id on ties */
    vote_calib cal_oof, cal_test; /* of its OOF rows, and of its soft vote on test (with test labels) */
    float *oof_probs;             /* (n_train, C) the OOF probabilities, kept only for --fit-weights */
} vote_model;

/* What --fit-weights found (vote_fit.c). Scores: [0] equal weights, [1] fitted. */
typedef struct {
    int done;
    int metric_acc; /* 0: log-loss, 1: accuracy */
    int rounds, temperature;
    int picks[VOTE_MAX_MODELS];
    double weight[VOTE_MAX_MODELS], temp[VOTE_MAX_MODELS];
    double oof_logloss[2], test_logloss[2];
    int64_t oof_correct[2], test_correct[2];
    double nested_logloss[2], nested_acc[2]; /* mean over held-out folds; NAN with one fold */
    int32_t *oof_pred, *test_pred;           /* (n_train) -1 off the folds, (n_test): the fitted vote */
    vote_calib cal_oof, cal_test;            /* of the fitted vote */
} vote_fit;

/* One row of the methods table: a method's predictions and its scores. */
typedef struct {
    char name[96];       /* "soft cnn_a", "soft-soft", ... */
    char method[16];     /* "soft", "hard", "soft-soft", "soft-hard", "hard-hard" */
    int model;           /* index into models for soft/hard, -1 across models */
    const int32_t *test; /* (n_test) predicted class */
    const int32_t *oof;  /* (n_train) predicted class, -1 off the run's folds */
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
    char **train_paths;    /* (n_train) */
    char **class_names;    /* (num_classes) */
    int32_t *test_labels;  /* (n_test), NULL without labels */
    char labels_source[4200];

    int n_models;
    vote_model models[VOTE_MAX_MODELS];
    int32_t *test_soft_soft, *test_soft_hard, *test_hard_hard; /* (n_test) */
    int32_t *oof_soft_soft, *oof_majority;                     /* (n_train), -1 off the run's folds */
    int32_t *oof_soft_hard, *oof_hard_hard;                    /* aliases of oof_majority */

    int n_methods;
    vote_method methods[VOTE_MAX_METHODS]; /* soft m, hard m for each model m; soft-soft, soft-hard, hard-hard */
    int chosen;                            /* index into methods: what the submission holds */
    vote_calib cal_oof, cal_test;          /* the soft-soft vote's (run.cfg weights) */
    vote_fit fit;
    fl_outpath out;             /* the submission's (vote_check_out) */
    char submission_path[4096]; /* for messages and the report: the path, or "(stdout)" */
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

/* vote_calib.c */
void vote_calib_add(vote_calib *c, const double *p, int C, int32_t label);
void vote_calib_add_f(vote_calib *c, const float *p, int C, int32_t label);
double vote_calib_ece(const vote_calib *c); /* sum over bins of n_b/rows * |acc_b - conf_b|; NAN without rows */
/* (C, C) counts of (label, OOF prediction) of a method over the OOF rows; NULL when out of memory. */
int64_t *vote_confusion(const vote_state *v, const int32_t *oof);
/* The classes in an order where classes confused with each other sit together (see vote_calib.c). */
fl_code vote_cluster_order(const int64_t *conf, int C, int *order, fl_error *err);

/* vote_fit.c: fits v->fit (needs every model's oof_probs); rereads the test probabilities. */
fl_code vote_fit_run(vote_state *v, fl_error *err);
void vote_fit_free(vote_fit *f);
void vote_fit_report_md(FILE *f, const vote_state *v);

/* vote_html.c / vote_html_charts.c */
fl_code vote_write_html(const vote_state *v, fl_error *err);
void vote_html_text(FILE *f, const char *s); /* s with & < > " ' escaped */
void vote_html_confusion(FILE *f, const vote_state *v);
void vote_html_per_class(FILE *f, const vote_state *v);
void vote_html_agreement(FILE *f, const vote_state *v);
void vote_html_calibration(FILE *f, const vote_state *v);

/* vote_report.c */
fl_code vote_write_submission(const vote_state *v, fl_error *err);
fl_code vote_write_report(const vote_state *v, FILE *echo, fl_error *err);

#endif
