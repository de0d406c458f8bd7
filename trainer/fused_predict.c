/* fused_predict.c -- a fused job's validation and predictions: every head on
 * the features of each batch (and of its TTA views), validation after each
 * epoch, and the OOF and test predictions that end the job. See fused.c. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/stop.h"
#include "dataset/featcache.h"
#include "trainer/augment.h"
#include "trainer/fused_internal.h"

/* The features of rows (B) for view 0 (plain) and the model's test-time
 * views: plain from the cache when it holds them, else from the images x. */
static fl_code fused_views(fused_state *f, const uint8_t *x, const int64_t *rows, int B, int n_views, int from_cache,
                           fl_error *err)
{
    fl_code rc = from_cache && f->dev_cache ? fl_devpath_cache_get_host(f->dev, rows, B, f->views[0], err)
                 : from_cache               ? fl_featcache_get(f->cache, rows, B, f->views[0], err)
                                            : fused_embed(f, x, B, NULL, -1, f->views[0], err);
    for (int t = 1; t < n_views && !rc; t++)
        rc = fused_embed(f, x, B, NULL, (int)f->mc->tta[t - 1], f->views[t], err);
    return rc;
}

/* A prediction of fused_predict in progress: the split and its rows, the
 * views, and each head's probabilities and sums. */
typedef struct {
    int train; /* the train split (each row by its fold's head), else the test split (every head) */
    const int64_t *rows;
    int n_views;
    const char *phase; /* for the heads' status.txt: "predict" or "validate" */
    float **own;       /* (nh) each head's probabilities of this rank's rows, NULL without probs */
    int64_t *filled;   /* (nh) rows in own[h] so far */
    double *loss, *correct;
} fused_pred;

/* How many of rows (n) each head predicts on each rank (per_rank, head-major)
 * and on this one (mine). */
static void fused_predict_counts(const fused_state *f, int train, const int64_t *rows, int64_t n, int64_t *mine,
                                 int64_t *per_rank)
{
    for (int r = 0; r < f->g_size; r++) {
        int64_t a, b;
        fl_group_share(n, r, f->g_size, &a, &b);
        for (int64_t i = a; i < b; i++)
            for (int h = 0; h < f->n; h++)
                if (!train || f->head_of_fold[f->env->train_fold[rows[i]]] == h) {
                    per_rank[(size_t)h * f->g_size + r]++;
                    if (r == f->g_rank)
                        mine[h]++;
                }
    }
}

/* Each head on its rows among rows[p .. p + B) (their views' features in
 * f->views): the views of those rows gathered, then its probabilities, loss
 * and correct count. */
static fl_code fused_predict_heads(fused_state *f, fused_pred *pr, int64_t p, int B, fl_error *err)
{
    fl_code rc = FL_OK;
    for (int h = 0; h < f->n && !rc; h++) {
        int m = 0;
        const float *vs[1 + FL_MAX_TTA];
        for (int i = 0; i < B; i++) {
            int64_t row = pr->rows[p + i];
            if (pr->train && f->head_of_fold[f->env->train_fold[row]] != h)
                continue;
            for (int t = 0; t < pr->n_views; t++)
                memcpy(f->sel_views[t] + (size_t)m * f->D, f->views[t] + (size_t)i * f->D, sizeof(float) * f->D);
            if (pr->train)
                f->labels[m] = f->env->train_labels[row];
            m++;
        }
        if (!m)
            continue;
        for (int t = 0; t < pr->n_views; t++)
            vs[t] = f->sel_views[t];
        double l = 0;
        int c = 0;
        float *out = pr->own[h] ? pr->own[h] + (size_t)pr->filled[h] * f->C : f->probs;
        rc = fl_model_head_predict(f->models[h], vs, pr->n_views, m, pr->train ? f->labels : NULL, out, &l, &c, err);
        job_monitor_phase(&f->js[h], pr->phase);
        pr->loss[h] += l;
        pr->correct[h] += c;
        pr->filled[h] += m;
    }
    return rc;
}

/* Predicts rows (n, of the train split when train, else the test split) for
 * the heads: on the train split each row by the head of its fold (only
 * folds with a head), on the test split every row by every head. Sharded
 * over the group; each head's probabilities (when probs[i] is not NULL, the
 * leader's) are gathered in the order of its rows. loss and correct (n per
 * head) cover the rows with labels, summed over the group. */
static fl_code fused_predict(fused_state *f, int train, const int64_t *rows, int64_t n, int n_views, float **probs,
                             double *loss, double *correct, fl_error *err)
{
    int C = f->C, nh = f->n;
    int64_t lo, hi;
    fl_group_share(n, f->g_rank, f->g_size, &lo, &hi);
    /* Each head's rows on this rank: its count, then a buffer for their probabilities. */
    int64_t *mine = calloc((size_t)nh * (f->g_size + 1), sizeof *mine), *per_rank = mine + nh;
    fused_pred pr = {train, rows, n_views, probs ? "predict" : "validate", NULL, NULL, loss, correct};
    pr.own = calloc((size_t)nh, sizeof *pr.own);
    pr.filled = calloc((size_t)nh, sizeof *pr.filled);
    fl_code rc = FL_OK;
    if (!mine || !pr.own || !pr.filled) {
        rc = fused_oom(err);
        goto done;
    }
    fused_predict_counts(f, train, rows, n, mine, per_rank);
    for (int h = 0; h < nh && probs; h++) /* every rank: its rows, gathered to the leader's probs[h] */
        if (!(pr.own[h] = malloc(sizeof *pr.own[h] * (size_t)(mine[h] ? mine[h] : 1) * C))) {
            rc = fused_oom(err);
            goto done;
        }
    for (int h = 0; h < nh; h++)
        loss[h] = correct[h] = 0;
    int from_cache = train && fused_all_cached(f, rows + lo, hi - lo);
    fl_loader *ld = train ? f->data->train_loader : f->data->test_loader;
    int need_images = !from_cache || n_views > 1;
    if (need_images)
        rc = fl_loader_start(ld, rows + lo, hi - lo, (int)f->cap, err);
    for (int64_t p = lo; p < hi && !rc; p += f->cap) {
        int B = (int)(hi - p < f->cap ? hi - p : f->cap), got_B = B, got;
        const uint8_t *x = NULL;
        int64_t first;
        if (need_images && (got = fl_loader_next(ld, &x, &got_B, &first, err)) != 1) {
            rc = got < 0 ? err->code : fl_fail(err, FL_EINTERNAL, "fused: the loader ended early");
            break;
        }
        if ((rc = fused_views(f, x, rows + p, B, n_views, from_cache, err)))
            break;
        rc = fused_predict_heads(f, &pr, p, B, err);
        fl_group_progress(f->env->group);
    }
    if (rc)
        goto done;
    rc = fused_sum_pairs(f, loss, correct, nh, err);
    for (int h = 0; h < nh && !rc && probs; h++) {
        if (!pr.own[h])
            continue;
        if (f->g_size == 1)
            memcpy(probs[h], pr.own[h], sizeof *pr.own[h] * (size_t)mine[h] * C);
        else
            rc = fl_group_gather_rows_of(f->group, pr.own[h], f->leader ? probs[h] : NULL,
                                         per_rank + (size_t)h * f->g_size, C, err);
    }
done:
    for (int h = 0; pr.own && h < nh; h++)
        free(pr.own[h]);
    free(pr.own);
    free(mine);
    free(pr.filled);
    return rc;
}

/* Validation of the active heads, each on its fold: vl, va (n). */
fl_code fused_validate(fused_state *f, const int *active, double *vl, double *va, fl_error *err)
{
    int64_t *rows = malloc(sizeof *rows * (size_t)(f->N ? f->N : 1)), n = 0;
    double *loss = calloc((size_t)f->n * 2, sizeof *loss);
    fl_code rc = FL_OK;
    if (!rows || !loss) {
        rc = fused_oom(err);
        goto done;
    }
    for (int64_t r = 0; r < f->N; r++) {
        int h = f->head_of_fold[f->env->train_fold[r]];
        if (h >= 0 && active[h])
            rows[n++] = r;
    }
    for (int i = 0; i < f->n; i++)
        if ((rc = job_sync(&f->js[i], FL_STATE_BUFFERS, err)))
            goto done;
    if ((rc = fused_predict(f, 1, rows, n, 1, NULL, loss, loss + f->n, err)))
        goto done;
    for (int i = 0; i < f->n; i++) {
        vl[i] = f->js[i].n_val ? loss[i] / (double)f->js[i].n_val : 0;
        va[i] = f->js[i].n_val ? loss[f->n + i] / (double)f->js[i].n_val : 0;
    }
done:
    free(rows);
    free(loss);
    return rc;
}

/* Every head loads the checkpoint predict_with names, then predicts its OOF
 * rows and the test set with the test-time views; each writes its preds.h5. */
fl_code fused_predict_all(fused_state *f, fl_error *err)
{
    int nh = f->n, C = f->C, n_views = 1 + f->mc->n_tta;
    int64_t n_test = f->data->info.n_test;
    int *epoch = calloc((size_t)nh, sizeof *epoch);
    float **oof = calloc((size_t)nh * 2, sizeof *oof), **test = oof ? oof + nh : NULL;
    int64_t *rows = malloc(sizeof *rows * (size_t)((f->N > n_test ? f->N : n_test) + 1)), n = 0;
    double *loss = calloc((size_t)nh * 2, sizeof *loss);
    fl_code rc = FL_OK;
    if (!epoch || !oof || !rows || !loss) {
        rc = fused_oom(err);
        goto done;
    }
    for (int h = 0; h < nh && !rc; h++) {
        rc = job_load_predict_weights(&f->js[h], &epoch[h], err);
        if (!rc && f->leader &&
            (!(oof[h] = malloc(sizeof **oof * (size_t)(f->js[h].n_val ? f->js[h].n_val : 1) * C)) ||
             !(test[h] = malloc(sizeof **test * (size_t)(n_test ? n_test : 1) * C))))
            rc = fused_oom(err);
    }
    if (rc)
        goto done;
    for (int64_t r = 0; r < f->N; r++)
        if (f->head_of_fold[f->env->train_fold[r]] >= 0)
            rows[n++] = r;
    if ((rc = fused_predict(f, 1, rows, n, n_views, oof, loss, loss + nh, err)))
        goto done;
    double *acc = malloc(sizeof *acc * (size_t)nh);
    if (!acc) {
        rc = fused_oom(err);
        goto done;
    }
    for (int h = 0; h < nh; h++)
        acc[h] = f->js[h].n_val ? loss[nh + h] / (double)f->js[h].n_val : 0;
    for (int64_t i = 0; i < n_test; i++)
        rows[i] = i;
    rc = fused_predict(f, 0, rows, n_test, n_views, test, loss, loss + nh, err);
    for (int h = 0; h < nh && !rc; h++)
        rc = job_write_preds(&f->js[h], epoch[h], oof[h], test[h], acc[h], err);
    free(acc);
done:
    for (int h = 0; oof && h < nh; h++) {
        free(oof[h]);
        free(test[h]);
    }
    free(oof);
    free(epoch);
    free(rows);
    free(loss);
    return rc;
}

/* ---- the job ------------------------------------------------------------------ */
