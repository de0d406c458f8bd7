/* vote_sum.c -- see vote_sum.h. */
#include "vote/vote_sum.h"

#include <stdlib.h>
#include <string.h>

#include "vote/vote_weights.h"

static int32_t sum_argmax(const double *x, int n)
{
    int32_t best = 0;
    for (int c = 1; c < n; c++)
        if (x[c] > x[best])
            best = c;
    return best;
}

fl_code fl_vote_sums_init(fl_vote_sums *s, int64_t n, int C, fl_error *err)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->C = C;
    size_t nc = (size_t)(n ? n : 1) * (size_t)C;
    s->model_soft = calloc(nc, sizeof(double));
    s->model_hard = calloc(nc, sizeof(double));
    s->soft_soft = calloc(nc, sizeof(double));
    s->soft_hard = calloc(nc, sizeof(double));
    s->hard_hard = calloc(nc, sizeof(double));
    s->row = calloc((size_t)C, sizeof(double));
    if (!s->model_soft || !s->model_hard || !s->soft_soft || !s->soft_hard || !s->hard_hard || !s->row) {
        fl_vote_sums_free(s);
        return fl_fail(err, FL_ENOMEM, "vote: out of memory for %lld rows of %d classes", (long long)n, C);
    }
    return FL_OK;
}

void fl_vote_sums_free(fl_vote_sums *s)
{
    free(s->model_soft);
    free(s->model_hard);
    free(s->soft_soft);
    free(s->soft_hard);
    free(s->hard_hard);
    free(s->row);
    memset(s, 0, sizeof *s);
}

void fl_vote_sums_model_begin(fl_vote_sums *s)
{
    size_t nc = (size_t)s->n * (size_t)s->C;
    memset(s->model_soft, 0, nc * sizeof(double));
    memset(s->model_hard, 0, nc * sizeof(double));
    s->folds = 0;
}

/* T == 0: untempered. */
static void sums_add_fold(fl_vote_sums *s, const float *probs, int64_t stride, double T)
{
    const int C = s->C;
    for (int64_t i = 0; i < s->n; i++) {
        const float *row = probs + (size_t)i * (size_t)stride;
        double *soft = s->model_soft + (size_t)i * C;
        int32_t a = 0;
        for (int c = 1; c < C; c++)
            if (row[c] > row[a])
                a = c;
        s->model_hard[(size_t)i * C + a] += 1.0;
        if (T > 0) {
            fl_vote_temper(row, C, T, s->row);
            for (int c = 0; c < C; c++)
                soft[c] += s->row[c];
        } else {
            for (int c = 0; c < C; c++)
                soft[c] += (double)row[c];
        }
    }
    s->folds++;
}

void fl_vote_sums_add_fold(fl_vote_sums *s, const float *probs, int64_t stride)
{
    sums_add_fold(s, probs, stride, 0);
}

void fl_vote_sums_add_fold_tempered(fl_vote_sums *s, const float *probs, int64_t stride, double T)
{
    sums_add_fold(s, probs, stride, T > 0 ? T : 1.0);
}

void fl_vote_sums_model_end(fl_vote_sums *s, double weight, int32_t *soft_arg, int32_t *hard_arg)
{
    const int C = s->C;
    for (int64_t i = 0; i < s->n; i++) {
        size_t o = (size_t)i * C;
        int32_t soft = sum_argmax(s->model_soft + o, C);
        if (soft_arg)
            soft_arg[i] = soft;
        if (hard_arg)
            hard_arg[i] = sum_argmax(s->model_hard + o, C);
        s->soft_hard[o + soft] += weight;
        for (int c = 0; c < C; c++) {
            s->soft_soft[o + c] += weight * s->model_soft[o + c];
            s->hard_hard[o + c] += weight * s->model_hard[o + c];
        }
    }
    s->model_folds = s->folds;
    s->weight_sum += weight;
    s->fold_weight_sum += weight * s->folds;
}

void fl_vote_sums_model_end_fitted(fl_vote_sums *s, double weight)
{
    const size_t nc = (size_t)s->n * (size_t)s->C;
    for (size_t j = 0; j < nc; j++)
        s->soft_soft[j] += weight * (s->model_soft[j] / s->folds);
    s->fitted = 1;
    s->model_folds = s->folds;
    s->weight_sum += weight;
    s->fold_weight_sum += weight * s->folds;
}

int fl_vote_method_is_per_model(const char *method)
{
    return !strcmp(method, "soft") || !strcmp(method, "hard");
}

int fl_vote_method_is_soft(const char *method)
{
    return !strcmp(method, "soft") || !strcmp(method, "soft-soft");
}

int32_t fl_vote_sums_row(const fl_vote_sums *s, const char *method, int64_t i, double *scores)
{
    const int C = s->C;
    size_t o = (size_t)i * C;
    const double *sum = s->soft_soft + o;
    double total = s->fitted ? 1.0 : s->fold_weight_sum;
    if (!strcmp(method, "soft")) {
        sum = s->model_soft + o;
        total = s->model_folds;
    } else if (!strcmp(method, "hard")) {
        sum = s->model_hard + o;
        total = s->model_folds;
    } else if (!strcmp(method, "soft-hard")) {
        sum = s->soft_hard + o;
        total = s->weight_sum;
    } else if (!strcmp(method, "hard-hard")) {
        sum = s->hard_hard + o;
    }
    for (int c = 0; scores && c < C; c++)
        scores[c] = total > 0 ? sum[c] / total : 0;
    return sum_argmax(sum, C);
}
