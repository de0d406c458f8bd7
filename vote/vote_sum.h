/* vote_sum.h -- the votes of a set of rows from every model x fold's
 * probabilities: what `foldline vote` computes for the test rows of a run,
 * and `foldline predict` for new images, with one code for both.
 *
 * Per row, in double precision and in the order models and folds are added:
 *   per model:     the sum of its folds' probabilities (soft) and the count of
 *                  its folds' argmaxes (hard);
 *   across models: sum_m w_m * soft_m (soft-soft), sum_m w_m * hard_m
 *                  (hard-hard) and the weighted count of the models' soft
 *                  argmaxes (soft-hard).
 * Argmaxes of sums equal argmaxes of means (one positive scale); ties go to
 * the lowest class id (the first maximum). See vote.h for the methods.
 *
 * Fitted weights (RUN_DIR/ensemble/weights.txt, vote/vote_weights.h): each
 * fold's probabilities tempered with the model's T (fl_vote_sums_add_fold_
 * tempered), and soft_soft += w_m * (soft_m / folds) (fl_vote_sums_model_end_
 * fitted): the ensemble's probabilities themselves, in vote --fit-weights's
 * arithmetic, which vote, predict and export share through this code.
 */
#ifndef FOLDLINE_VOTE_SUM_H
#define FOLDLINE_VOTE_SUM_H

#include <stdint.h>

#include "base/error.h"

typedef struct {
    int64_t n;
    int C;
    double *model_soft, *model_hard;           /* (n, C) of the model being added (kept after its end) */
    double *soft_soft, *soft_hard, *hard_hard; /* (n, C) across the models ended so far */
    int folds;                                 /* folds added to the model being added */
    int model_folds;                           /* folds of the last model ended */
    double weight_sum;                         /* sum of the ended models' weights */
    double fold_weight_sum;                    /* sum over the ended models of weight x folds */
    int fitted;                                /* soft_soft holds fitted weights' probabilities (no scale) */
    double *row;                               /* (C) scratch: a tempered row */
} fl_vote_sums;

/* Zeroed sums for n rows of C classes. */
fl_code fl_vote_sums_init(fl_vote_sums *s, int64_t n, int C, fl_error *err);
void fl_vote_sums_free(fl_vote_sums *s);

/* The next model: its own sums start at zero. */
void fl_vote_sums_model_begin(fl_vote_sums *s);
/* One fold's probabilities (n, C) of the model being added, row stride
 * `stride` floats (C when they are packed). */
void fl_vote_sums_add_fold(fl_vote_sums *s, const float *probs, int64_t stride);
/* The same with each row tempered first (fl_vote_temper(row, C, T)); the
 * hard votes count the untempered argmax. */
void fl_vote_sums_add_fold_tempered(fl_vote_sums *s, const float *probs, int64_t stride, double T);
/* Ends the model with its weight: adds it to the votes across models. Its
 * soft and hard argmaxes per row go to soft_arg and hard_arg when not NULL. */
void fl_vote_sums_model_end(fl_vote_sums *s, double weight, int32_t *soft_arg, int32_t *hard_arg);
/* Ends the model with its fitted weight: soft_soft += weight * (its soft sum
 * / its folds), so that soft_soft is the fitted vote's probabilities and the
 * soft-soft scores are soft_soft as it is. Only soft-soft is kept. */
void fl_vote_sums_model_end_fitted(fl_vote_sums *s, double weight);

/* 1 if method is soft or hard (a vote within one model). */
int fl_vote_method_is_per_model(const char *method);
/* 1 if method gives probabilities (soft, soft-soft), 0 if votes. */
int fl_vote_method_is_soft(const char *method);

/* Row i's vote by method (soft and hard: of the last model ended, the only
 * one for those methods): the winning class, and in scores (C) when not NULL
 * the method's normalised sums: probabilities (soft: the model's mean,
 * soft-soft: the weighted mean of every fold's) or shares of the votes
 * (hard, hard-hard: of the weighted fold argmaxes, soft-hard: of the
 * weighted model argmaxes), each row summing to 1. */
int32_t fl_vote_sums_row(const fl_vote_sums *s, const char *method, int64_t i, double *scores);

#endif
