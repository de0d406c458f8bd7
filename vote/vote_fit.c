/* vote_fit.c -- `foldline vote --fit-weights`: model weights for the
 * soft-soft vote, fitted on the OOF predictions.
 *
 * Greedy ensemble selection with replacement (Caruana et al., 2004): start
 * from no model; each of R rounds (--fit-rounds, default 50) adds one model
 * (again, possibly) -- the one whose addition gives the best OOF score of the
 * mean of the picked models' probabilities: the lowest log-loss, or with
 * --fit-metric acc the most right rows. Ties go to the first model of
 * run.cfg. The weights are the picks at the best round (the earliest of
 * equal scores) over the picks then: w_m = picks_m / sum of picks.
 * Log-loss is the mean of -log(max(p_label, 1e-15)).
 *
 * --fit-temperature first fits one temperature per model, T minimising the
 * model's OOF log-loss of fl_vote_temper(p, T) (golden-section search of
 * log T over [0.05, 20], 40 steps; T = 1 unless that is strictly lower), and
 * selection then sees the tempered probabilities (kept as float32).
 *
 * A weight fitted and scored on the same rows flatters itself, so the report
 * also gives the nested score: for each fold k of the run, temperatures and
 * weights are fitted on the OOF rows of the other folds and scored on fold
 * k's rows; the scores are averaged over the folds (one number per fold,
 * unweighted), next to equal weights' scores on the same rows.
 *
 * Test probabilities are read again from every preds.h5 (only the OOF ones
 * are kept in memory) and combined as vote_weights.h says predict must.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/names.h"
#include "dataset/preds.h"
#include "vote/vote_internal.h"
#include "vote/vote_sum.h"
#include "vote/vote_weights.h"

#define FIT_EPS     1e-15
#define FIT_T_LO    0.05
#define FIT_T_HI    20.0
#define FIT_T_STEPS 40

typedef struct {
    const vote_state *v;
    int M, C;
    const float *p[VOTE_MAX_MODELS]; /* (n_train, C) per model: what fitting sees */
} fit_input;

/* ---- temperatures -------------------------------------------------------------- */

static double fit_nll_at(const float *probs, const int64_t *rows, int64_t n, const int32_t *labels, int C, double T,
                         double *buf)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = rows[i];
        fl_vote_temper(probs + (size_t)r * C, C, T, buf);
        sum -= log(fmax(buf[labels[r]], FIT_EPS));
    }
    return n ? sum / (double)n : 0;
}

static double fit_temperature(const float *probs, const int64_t *rows, int64_t n, const int32_t *labels, int C,
                              double *buf)
{
    const double g = (sqrt(5.0) - 1) / 2;
    double lo = log(FIT_T_LO), hi = log(FIT_T_HI);
    double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    double f1 = fit_nll_at(probs, rows, n, labels, C, exp(x1), buf);
    double f2 = fit_nll_at(probs, rows, n, labels, C, exp(x2), buf);
    for (int s = 0; s < FIT_T_STEPS; s++) {
        if (f1 <= f2) {
            hi = x2, x2 = x1, f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = fit_nll_at(probs, rows, n, labels, C, exp(x1), buf);
        } else {
            lo = x1, x1 = x2, f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = fit_nll_at(probs, rows, n, labels, C, exp(x2), buf);
        }
    }
    double T = exp((lo + hi) / 2);
    return fit_nll_at(probs, rows, n, labels, C, T, buf) < fit_nll_at(probs, rows, n, labels, C, 1.0, buf) ? T : 1.0;
}

/* Fits temperatures on rows and writes every OOF row of each model, tempered, to out[m]. */
static void fit_temper_all(const vote_state *v, const int64_t *rows, int64_t n, const int64_t *all, int64_t n_all,
                           float **out, double *temp, double *buf)
{
    const int C = v->num_classes;
    for (int m = 0; m < v->n_models; m++) {
        const float *p = v->models[m].oof_probs;
        temp[m] = fit_temperature(p, rows, n, v->train_labels, C, buf);
        for (int64_t i = 0; i < n_all; i++) {
            size_t o = (size_t)all[i] * C;
            fl_vote_temper(p + o, C, temp[m], buf);
            for (int c = 0; c < C; c++)
                out[m][o + c] = (float)buf[c];
        }
    }
}

/* ---- greedy selection ------------------------------------------------------------ */

/* The score of the mean of the picked models plus model m, over `rounds` picks:
 * log-loss (lower is better) or minus the right rows (so lower is better too). */
static double fit_candidate(const fit_input *in, const int64_t *rows, int64_t n, int acc, const double *S, int m,
                            int picks)
{
    const int C = in->C;
    const int32_t *y = in->v->train_labels;
    double score = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *p = in->p[m] + (size_t)rows[i] * C;
        if (!acc) {
            score -= log(fmax((S[i] + (double)p[y[rows[i]]]) / picks, FIT_EPS));
            continue;
        }
        const double *s = S + (size_t)i * C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (s[c] + (double)p[c] > s[best] + (double)p[best])
                best = c;
        score -= best == y[rows[i]];
    }
    return acc ? score : score / (double)n;
}

/* Greedy selection with replacement on rows (see the file comment): picks per model. */
static fl_code fit_greedy(const fit_input *in, const int64_t *rows, int64_t n, int acc, int rounds, int *picks,
                          fl_error *err)
{
    const int C = in->C, M = in->M;
    const int32_t *y = in->v->train_labels;
    double *S = calloc((size_t)(n ? n : 1) * (acc ? C : 1), sizeof *S); /* per row: sum of the picks' p */
    if (!S)
        return fl_fail(err, FL_ENOMEM, "vote: out of memory fitting weights on %lld rows", (long long)n);
    int now[VOTE_MAX_MODELS] = {0};
    double best_score = 0;
    for (int r = 1; r <= rounds; r++) {
        int pick = 0;
        double pick_score = 0;
        for (int m = 0; m < M; m++) {
            double sc = fit_candidate(in, rows, n, acc, S, m, r);
            if (m == 0 || sc < pick_score)
                pick = m, pick_score = sc;
        }
        now[pick]++;
        for (int64_t i = 0; i < n; i++) {
            const float *p = in->p[pick] + (size_t)rows[i] * C;
            if (acc)
                for (int c = 0; c < C; c++)
                    S[(size_t)i * C + c] += (double)p[c];
            else
                S[i] += (double)p[y[rows[i]]];
        }
        if (r == 1 || pick_score < best_score) {
            best_score = pick_score;
            memcpy(picks, now, (size_t)M * sizeof *picks);
        }
    }
    free(S);
    return FL_OK;
}

/* Log-loss and right rows of sum_m w_m p_m over rows; pred/cal filled when given. */
static void fit_score(const fit_input *in, const double *w, const int64_t *rows, int64_t n, double *logloss,
                      int64_t *correct, int32_t *pred, vote_calib *cal, double *buf)
{
    const int C = in->C;
    const int32_t *y = in->v->train_labels;
    double sum = 0;
    *correct = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t o = (size_t)rows[i] * C;
        for (int c = 0; c < C; c++)
            buf[c] = 0;
        for (int m = 0; m < in->M; m++)
            for (int c = 0; c < C; c++)
                buf[c] += w[m] * (double)in->p[m][o + c];
        int32_t a = vote_argmax_d(buf, C);
        *correct += a == y[rows[i]];
        sum -= log(fmax(buf[y[rows[i]]], FIT_EPS));
        if (pred)
            pred[rows[i]] = a;
        if (cal)
            vote_calib_add(cal, buf, C, y[rows[i]]);
    }
    *logloss = n ? sum / (double)n : NAN;
}

static void fit_weights_of(const int *picks, int M, double *w)
{
    int total = 0;
    for (int m = 0; m < M; m++)
        total += picks[m];
    for (int m = 0; m < M; m++)
        w[m] = (double)picks[m] / total;
}

/* ---- the fit ------------------------------------------------------------------- */

typedef struct {
    int64_t *all, n_all; /* the OOF rows */
    int64_t *fit, *held; /* scratch (n_all) */
    float *tempered[VOTE_MAX_MODELS];
    double *buf; /* (C) */
} fit_scratch;

/* Temperatures (when asked) and weights from the rows `rows`, into in/temp/picks. */
static fl_code fit_on(vote_state *v, fit_scratch *x, fit_input *in, const int64_t *rows, int64_t n, double *temp,
                      int *picks, fl_error *err)
{
    for (int m = 0; m < v->n_models; m++) {
        temp[m] = 1.0;
        in->p[m] = v->models[m].oof_probs;
    }
    if (v->fit.temperature) {
        fit_temper_all(v, rows, n, x->all, x->n_all, x->tempered, temp, x->buf);
        for (int m = 0; m < v->n_models; m++)
            in->p[m] = x->tempered[m];
    }
    return fit_greedy(in, rows, n, v->fit.metric_acc, v->fit.rounds, picks, err);
}

/* The nested score: fit without fold k, score on fold k, mean over the folds. */
static fl_code fit_nested(vote_state *v, fit_scratch *x, fl_error *err)
{
    vote_fit *f = &v->fit;
    double equal[VOTE_MAX_MODELS], w[VOTE_MAX_MODELS], temp[VOTE_MAX_MODELS];
    int picks[VOTE_MAX_MODELS];
    fit_input in = {v, v->n_models, v->num_classes, {0}};
    for (int m = 0; m < v->n_models; m++)
        equal[m] = 1.0 / v->n_models;
    f->nested_logloss[0] = f->nested_logloss[1] = f->nested_acc[0] = f->nested_acc[1] = NAN;
    if (v->man.n_folds < 2)
        return FL_OK;
    double sum_ll[2] = {0, 0}, sum_acc[2] = {0, 0};
    for (int i = 0; i < v->man.n_folds; i++) {
        int64_t n_fit = 0, n_held = 0, right;
        double ll;
        for (int64_t j = 0; j < x->n_all; j++)
            if (v->train_fold[x->all[j]] == v->man.folds[i])
                x->held[n_held++] = x->all[j];
            else
                x->fit[n_fit++] = x->all[j];
        for (int m = 0; m < v->n_models; m++)
            in.p[m] = v->models[m].oof_probs;
        fit_score(&in, equal, x->held, n_held, &ll, &right, NULL, NULL, x->buf);
        sum_ll[0] += ll;
        sum_acc[0] += (double)right / (double)n_held;
        fl_code rc = fit_on(v, x, &in, x->fit, n_fit, temp, picks, err);
        if (rc)
            return rc;
        fit_weights_of(picks, v->n_models, w);
        fit_score(&in, w, x->held, n_held, &ll, &right, NULL, NULL, x->buf);
        sum_ll[1] += ll;
        sum_acc[1] += (double)right / (double)n_held;
    }
    for (int k = 0; k < 2; k++) {
        f->nested_logloss[k] = sum_ll[k] / v->man.n_folds;
        f->nested_acc[k] = sum_acc[k] / v->man.n_folds;
    }
    return FL_OK;
}

/* The equal and fitted votes on the test rows, from every preds.h5 again;
 * the fitted one through fl_vote_sums (vote/vote_sum.h), the code predict
 * applies weights.txt with. */
static fl_code fit_test(vote_state *v, fl_error *err)
{
    vote_fit *f = &v->fit;
    const int C = v->num_classes, K = v->man.n_folds;
    const size_t MC = (size_t)(v->n_test ? v->n_test : 1) * C;
    double *plain = malloc(MC * sizeof *plain), *equal = calloc(MC, sizeof(double));
    fl_vote_sums fitted;
    fl_code rc = fl_vote_sums_init(&fitted, v->n_test, C, err);
    if (!rc && (!plain || !equal))
        rc = fl_fail(err, FL_ENOMEM, "vote: out of memory for the fitted vote of %lld test rows", (long long)v->n_test);
    for (int m = 0; !rc && m < v->n_models; m++) {
        memset(plain, 0, MC * sizeof *plain);
        fl_vote_sums_model_begin(&fitted);
        for (int k = 0; !rc && k < K; k++) {
            char path[4400];
            fl_preds p;
            snprintf(path, sizeof path, "%s/%s/fold%d/preds.h5", v->opt->run_dir, v->models[m].name, v->man.folds[k]);
            if ((rc = fl_preds_read(path, &p, err)) == FL_OK && p.n_test != v->n_test)
                rc = fl_fail(err, FL_EINPUT, "%s: changed while vote read it HINT: vote again once training is done",
                             path);
            if (!rc)
                fl_vote_sums_add_fold_tempered(&fitted, p.test_probs, C, f->temp[m]);
            for (int64_t i = 0; !rc && i < v->n_test; i++)
                for (int c = 0; c < C; c++)
                    plain[(size_t)i * C + c] += (double)p.test_probs[(size_t)i * C + c];
            fl_preds_free(&p);
        }
        if (rc)
            break;
        fl_vote_sums_model_end_fitted(&fitted, f->weight[m]);
        for (size_t j = 0; j < MC; j++)
            equal[j] += (plain[j] / K) / v->n_models;
    }
    for (int e = 0; !rc && e < 2; e++)
        for (int64_t i = 0; i < v->n_test; i++) {
            const double *row = (e ? fitted.soft_soft : equal) + (size_t)i * C;
            int32_t a = vote_argmax_d(row, C);
            if (e == 1)
                f->test_pred[i] = a;
            if (!v->test_labels)
                continue;
            f->test_correct[e] += a == v->test_labels[i];
            f->test_logloss[e] -= log(fmax(row[v->test_labels[i]], FIT_EPS)) / (double)v->n_test;
            if (e == 1)
                vote_calib_add(&f->cal_test, row, C, v->test_labels[i]);
        }
    free(plain);
    free(equal);
    fl_vote_sums_free(&fitted);
    return rc;
}

fl_code vote_fit_run(vote_state *v, fl_error *err)
{
    vote_fit *f = &v->fit;
    const fl_vote_options *o = v->opt;
    const int C = v->num_classes;
    f->metric_acc = o->fit_metric && fl_fit_metric_parse(o->fit_metric) == FL_FIT_ACC;
    f->rounds = o->fit_rounds > 0 ? o->fit_rounds : VOTE_FIT_ROUNDS;
    f->temperature = o->fit_temperature;
    fit_scratch x = {0};
    size_t n = (size_t)(v->n_train ? v->n_train : 1);
    x.all = malloc(n * sizeof *x.all);
    x.fit = malloc(n * sizeof *x.fit);
    x.held = malloc(n * sizeof *x.held);
    x.buf = malloc((size_t)C * sizeof *x.buf);
    f->oof_pred = malloc(n * sizeof *f->oof_pred);
    f->test_pred = calloc((size_t)(v->n_test ? v->n_test : 1), sizeof *f->test_pred);
    fl_code rc = FL_OK;
    if (!x.all || !x.fit || !x.held || !x.buf || !f->oof_pred || !f->test_pred)
        rc = fl_fail(err, FL_ENOMEM, "vote: out of memory fitting weights");
    for (int m = 0; !rc && f->temperature && m < v->n_models; m++)
        if (!(x.tempered[m] = calloc(n * C, sizeof(float))))
            rc = fl_fail(err, FL_ENOMEM, "vote: out of memory for tempered probabilities (%lld x %d)",
                         (long long)v->n_train, C);
    for (int64_t r = 0; !rc && r < v->n_train; r++) {
        f->oof_pred[r] = -1;
        if (v->models[0].oof_pred[r] >= 0)
            x.all[x.n_all++] = r;
    }
    if (!rc)
        rc = fit_nested(v, &x, err);
    fit_input in = {v, v->n_models, C, {0}};
    if (!rc)
        rc = fit_on(v, &x, &in, x.all, x.n_all, f->temp, f->picks, err);
    if (!rc) {
        double equal[VOTE_MAX_MODELS];
        fit_weights_of(f->picks, v->n_models, f->weight);
        fit_score(&in, f->weight, x.all, x.n_all, &f->oof_logloss[1], &f->oof_correct[1], f->oof_pred, &f->cal_oof,
                  x.buf);
        for (int m = 0; m < v->n_models; m++) {
            equal[m] = 1.0 / v->n_models;
            in.p[m] = v->models[m].oof_probs;
        }
        fit_score(&in, equal, x.all, x.n_all, &f->oof_logloss[0], &f->oof_correct[0], NULL, NULL, x.buf);
        rc = fit_test(v, err);
    }
    free(x.all);
    free(x.fit);
    free(x.held);
    free(x.buf);
    for (int m = 0; m < v->n_models; m++)
        free(x.tempered[m]);
    f->done = !rc;
    return rc;
}

void vote_fit_free(vote_fit *f)
{
    free(f->oof_pred);
    free(f->test_pred);
}

/* ---- the report ------------------------------------------------------------------ */

static void fit_md_num(FILE *f, double x, const char *fmt)
{
    if (isnan(x))
        fputs(" n/a |", f);
    else
        fprintf(f, fmt, x);
}

void vote_fit_report_md(FILE *f, const vote_state *v)
{
    const vote_fit *x = &v->fit;
    fprintf(f,
            "## Fitted weights\n\nGreedy ensemble selection with replacement (Caruana et al., 2004) on the OOF "
            "rows: %d rounds, each adding the model that gives the %s of the mean of the picked models' "
            "probabilities (ties: the first model of run.cfg); weight = picks at the best round / all picks then. "
            "%s The submission is the soft-soft vote with these weights (RUN_DIR/ensemble/weights.txt). "
            "Nested: weights%s fitted on the OOF rows of all folds but one and scored on that fold's rows, the "
            "mean over the folds; the OOF columns score the weights on the rows they were fitted on.\n\n",
            x->rounds, x->metric_acc ? "most right rows" : "lowest log-loss",
            x->temperature ? "Each model's probabilities are first tempered (p^(1/T), renormalised) with the T "
                             "that minimises its OOF log-loss."
                           : "No temperatures (T = 1).",
            x->temperature ? " and temperatures" : "");
    fputs("| model | run.cfg weight | picks | fitted weight | temperature |\n|---|---:|---:|---:|---:|\n", f);
    for (int m = 0; m < v->n_models; m++)
        fprintf(f, "| %s | %g | %d | %.4f | %.4f |\n", v->models[m].name, v->models[m].weight, x->picks[m],
                x->weight[m], x->temp[m]);
    fputs("\n| weights | OOF log-loss | OOF accuracy | nested OOF log-loss | nested OOF accuracy | test log-loss | "
          "test accuracy |\n|---|---:|---:|---:|---:|---:|---:|\n",
          f);
    const char *names[2] = {"equal", "fitted"};
    int64_t rows = v->models[0].oof_rows;
    for (int e = 0; e < 2; e++) {
        fprintf(f, "| %s | %.6f |", names[e], x->oof_logloss[e]);
        fprintf(f, " %.4f (%lld/%lld) |", rows ? (double)x->oof_correct[e] / rows : 0.0, (long long)x->oof_correct[e],
                (long long)rows);
        fit_md_num(f, x->nested_logloss[e], " %.6f |");
        fit_md_num(f, x->nested_acc[e], " %.4f |");
        if (v->test_labels && v->n_test)
            fprintf(f, " %.6f | %.4f (%lld/%lld) |\n", x->test_logloss[e], (double)x->test_correct[e] / v->n_test,
                    (long long)x->test_correct[e], (long long)v->n_test);
        else
            fputs(" n/a | n/a |\n", f);
    }
    fputc('\n', f);
}
