/* vote_html.c -- RUN_DIR/ensemble/report.html: the report people look at.
 *
 * One self-contained file beside report.md: HTML with inline CSS and inline
 * SVG drawn here, no script, no external resource, so that it opens from a
 * cluster's file system, a mail attachment or a CI artifact alike. Well-formed
 * as XML as well (every element closed, every attribute quoted, text escaped),
 * so that tests parse it strictly.
 *
 * Every number drawn carries its value in data-* attributes (counts as
 * counts, fractions with 9 significant digits) and a <title> for people, so
 * tests read the drawing back. Epochs in data-* attributes count from 0 as in
 * metrics.csv and preds.h5; labels for people count from 1 as the train log.
 *
 * This file: the page, the header, the tables of report.md, the fitted
 * weights, and the learning curves from each fold's metrics.csv (a missing or
 * unreadable metrics.csv is noted on the page, not an error: the vote's
 * outputs do not depend on it). vote_html_charts.c draws the rest.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tempfile.h"
#include "vote/vote_internal.h"

#define HTML_CURVE_W 520
#define HTML_CURVE_H 250

static const char *html_fold_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

void vote_html_text(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
}

static const char *html_css =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;margin:0;background:#f4f5f7}"
    "main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}"
    "h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:34px 0 8px;padding-top:10px;border-top:1px solid "
    "#e3e5e8}"
    "h3{font-size:15px;margin:18px 0 4px}p.note{color:#555;font-size:13px;max-width:1000px;line-height:1.45}"
    "ul.facts{font-size:13px;color:#333;padding-left:18px;line-height:1.6}code{font-size:12px;background:#f0f1f3;"
    "padding:1px 4px}"
    "table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #e6e7ea}"
    "th{background:#f0f2f5;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.chosen td{background:#fff6d6;font-weight:600}svg{display:block;margin:6px 0}svg text{font-size:11px;fill:#333}"
    "svg .axis{stroke:#999;stroke-width:1}svg .grid{stroke:#eceef1;stroke-width:1}"
    "div.row{display:flex;flex-wrap:wrap;gap:10px}details{margin:8px "
    "0;font-size:13px}summary{cursor:pointer;color:#1f4e8c}"
    ".legend span{display:inline-block;margin-right:14px;font-size:12px}.sw{display:inline-block;width:18px;height:3px;"
    "vertical-align:middle;margin-right:4px}";

/* ---- tables ------------------------------------------------------------------------ */

static void html_acc_cell(FILE *f, int64_t correct, int64_t total)
{
    if (total <= 0)
        fputs("<td class=\"n\">n/a</td>", f);
    else
        fprintf(f, "<td class=\"n\" data-correct=\"%lld\" data-total=\"%lld\">%.4f (%lld/%lld)</td>",
                (long long)correct, (long long)total, (double)correct / (double)total, (long long)correct,
                (long long)total);
}

static void html_head(FILE *f, const vote_state *v)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>foldline vote: ",
          f);
    vote_html_text(f, v->opt->run_dir);
    fprintf(f, "</title><style>%s</style></head>\n<body><main>\n<h1>foldline vote: ", html_css);
    vote_html_text(f, v->opt->run_dir);
    fputs("</h1>\n<ul class=\"facts\"><li>data file: <code>", f);
    vote_html_text(f, v->data_path);
    fprintf(f,
            "</code> (test fingerprint %s): %lld train rows, %lld test rows, %d classes</li><li>folds:", v->fingerprint,
            (long long)v->n_train, (long long)v->n_test, v->num_classes);
    for (int i = 0; i < v->man.n_folds; i++)
        fprintf(f, "%s %d", i ? "," : "", v->man.folds[i]);
    fprintf(f, " (of %d); OOF rows: %lld</li><li>models:", v->data_folds, (long long)v->models[0].oof_rows);
    for (int m = 0; m < v->n_models; m++) {
        fputs(m ? ", " : " ", f);
        vote_html_text(f, v->models[m].name);
        fprintf(f, " (weight %g)", v->models[m].weight);
    }
    fputs("</li><li>test labels: ", f);
    vote_html_text(f, v->test_labels ? v->labels_source : "none (no test accuracy)");
    fputs("</li><li>submission: <code>", f);
    vote_html_text(f, v->submission_path);
    fputs("</code> by <b>", f);
    vote_html_text(f, v->methods[v->chosen].name);
    fprintf(f, "</b> (%lld rows)</li></ul>\n", (long long)v->n_test);
}

static void html_tables(FILE *f, const vote_state *v)
{
    const int64_t mt = v->test_labels ? v->n_test : 0;
    fputs(
        "<h2 id=\"methods\">Methods</h2>\n<p class=\"note\">OOF and test accuracy of every vote (see report.md for "
        "the definitions); the highlighted row wrote the submission.</p>\n<table class=\"methods\"><tr><th>method</th>"
        "<th>OOF accuracy</th><th>test accuracy</th><th>submission</th></tr>\n",
        f);
    for (int i = 0; i < v->n_methods; i++) {
        const vote_method *vm = &v->methods[i];
        fprintf(f, "<tr%s data-method=\"", i == v->chosen ? " class=\"chosen\"" : "");
        vote_html_text(f, vm->name);
        fputs("\"><td>", f);
        vote_html_text(f, vm->name);
        fputs("</td>", f);
        html_acc_cell(f, vm->oof_correct, vm->oof_rows);
        html_acc_cell(f, vm->test_correct, mt);
        fprintf(f, "<td>%s</td></tr>\n", i == v->chosen ? "yes" : "");
    }
    fputs(
        "</table>\n<h2 id=\"folds\">Folds</h2>\n<p class=\"note\">OOF accuracy of each fold's held-out rows and test "
        "accuracy of its own test predictions; the epoch of the checkpoint that predicted, from 1 as the train log "
        "counts.</p>\n<table class=\"folds\"><tr><th>model</th><th>fold</th><th>epoch (1-based)</th><th>checkpoint</th>"
        "<th>OOF accuracy</th><th>test accuracy</th></tr>\n",
        f);
    for (int m = 0; m < v->n_models; m++)
        for (int i = 0; i < v->man.n_folds; i++) {
            const vote_fold *vf = &v->models[m].folds[i];
            fputs("<tr data-model=\"", f);
            vote_html_text(f, v->models[m].name);
            fprintf(f, "\" data-fold=\"%d\" data-epoch=\"%d\"><td>", vf->fold, vf->epoch);
            vote_html_text(f, v->models[m].name);
            fprintf(f, "</td><td class=\"n\">%d</td><td class=\"n\">%d</td><td>", vf->fold, vf->epoch + 1);
            vote_html_text(f, vf->checkpoint);
            fputs("</td>", f);
            html_acc_cell(f, vf->oof_correct, vf->oof_rows);
            html_acc_cell(f, vf->test_correct, mt);
            fputs("</tr>\n", f);
        }
    fputs("</table>\n", f);
}

static void html_num_cell(FILE *f, double x, const char *attr)
{
    if (isnan(x))
        fputs("<td class=\"n\">n/a</td>", f);
    else
        fprintf(f, "<td class=\"n\" data-%s=\"%.9g\">%.4f</td>", attr, x, x);
}

static void html_fit(FILE *f, const vote_state *v)
{
    const vote_fit *x = &v->fit;
    if (!x->done)
        return;
    fprintf(f,
            "<h2 id=\"fit\">Fitted weights</h2>\n<p class=\"note\">Greedy ensemble selection with replacement "
            "(Caruana et al., 2004) on the OOF rows, %d rounds, by OOF %s%s. Nested: fitted on all folds' OOF rows "
            "but one, scored on that fold's, averaged over the folds (the honest estimate); the OOF columns score "
            "the weights on the rows they were fitted on. Saved in <code>ensemble/weights.txt</code>.</p>\n",
            x->rounds, x->metric_acc ? "accuracy" : "log-loss",
            x->temperature ? ", after one temperature per model fitted on OOF log-loss" : "");
    fputs("<table class=\"fit-weights\"><tr><th>model</th><th>run.cfg weight</th><th>picks</th><th>fitted weight</th>"
          "<th>temperature</th></tr>\n",
          f);
    for (int m = 0; m < v->n_models; m++) {
        fputs("<tr data-model=\"", f);
        vote_html_text(f, v->models[m].name);
        fprintf(f, "\" data-picks=\"%d\" data-weight=\"%.17g\" data-temperature=\"%.17g\"><td>", x->picks[m],
                x->weight[m], x->temp[m]);
        vote_html_text(f, v->models[m].name);
        fprintf(f,
                "</td><td class=\"n\">%g</td><td class=\"n\">%d</td><td class=\"n\">%.4f</td><td class=\"n\">%.4f</td>"
                "</tr>\n",
                v->models[m].weight, x->picks[m], x->weight[m], x->temp[m]);
    }
    fputs("</table>\n<table class=\"fit-scores\"><tr><th>weights</th><th>OOF log-loss</th><th>OOF accuracy</th>"
          "<th>nested OOF log-loss</th><th>nested OOF accuracy</th><th>test log-loss</th><th>test accuracy</th></tr>\n",
          f);
    const char *names[2] = {"equal", "fitted"};
    for (int e = 0; e < 2; e++) {
        fprintf(f, "<tr data-weights=\"%s\"><td>%s</td>", names[e], names[e]);
        html_num_cell(f, x->oof_logloss[e], "logloss");
        html_acc_cell(f, x->oof_correct[e], v->models[0].oof_rows);
        html_num_cell(f, x->nested_logloss[e], "logloss");
        html_num_cell(f, x->nested_acc[e], "acc");
        html_num_cell(f, v->test_labels ? x->test_logloss[e] : NAN, "logloss");
        html_acc_cell(f, x->test_correct[e], v->test_labels ? v->n_test : 0);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* ---- learning curves ---------------------------------------------------------------- */

enum { CURVE_TRAIN_LOSS, CURVE_VAL_LOSS, CURVE_TRAIN_ACC, CURVE_VAL_ACC, CURVE_N };
static const char *curve_names[CURVE_N] = {"train_loss", "val_loss", "train_acc", "val_acc"};

typedef struct {
    int n;       /* rows */
    int *epoch;  /* (n) 0-based */
    double *val; /* (n, CURVE_N) */
    char note[300];
} curve_fold;

/* metrics.csv (epoch,...,train_loss,train_acc,val_loss,val_acc,...) by column name. */
static void curve_read(const char *path, curve_fold *cf)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(cf->note, sizeof cf->note, "%s: %s", path, strerror(errno));
        return;
    }
    char line[2048];
    int col[CURVE_N + 1], ncol = 0, cap = 0;
    for (int k = 0; k <= CURVE_N; k++)
        col[k] = -1;
    long no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL, *tok = strtok_r(line, ",", &save);
        double cells[64];
        int k = 0, bad = 0;
        for (; tok && k < 64; tok = strtok_r(NULL, ",", &save), k++) {
            if (no == 1) {
                if (!strcmp(tok, "epoch"))
                    col[CURVE_N] = k;
                for (int c = 0; c < CURVE_N; c++)
                    if (!strcmp(tok, curve_names[c]))
                        col[c] = k;
                continue;
            }
            char *end;
            cells[k] = strtod(tok, &end);
            bad |= *end != '\0' || end == tok;
        }
        if (no == 1) {
            ncol = k;
            for (int c = 0; c <= CURVE_N; c++)
                if (col[c] < 0) {
                    snprintf(cf->note, sizeof cf->note, "%s:1: no column %s", path,
                             c < CURVE_N ? curve_names[c] : "epoch");
                    cf->n = 0;
                    fclose(f);
                    return;
                }
            continue;
        }
        if (bad || k != ncol) {
            snprintf(cf->note, sizeof cf->note, "%s:%ld: not a row of numbers (%d of %d cells)", path, no, k, ncol);
            cf->n = 0;
            break;
        }
        if (cf->n == cap) {
            cap = cap ? 2 * cap : 16;
            int *e = realloc(cf->epoch, (size_t)cap * sizeof *e);
            if (e)
                cf->epoch = e;
            double *vv = realloc(cf->val, (size_t)cap * CURVE_N * sizeof *vv);
            if (vv)
                cf->val = vv;
            if (!e || !vv) {
                snprintf(cf->note, sizeof cf->note, "%s: out of memory", path);
                cf->n = 0;
                break;
            }
        }
        cf->epoch[cf->n] = (int)cells[col[CURVE_N]];
        for (int c = 0; c < CURVE_N; c++)
            cf->val[(size_t)cf->n * CURVE_N + c] = cells[col[c]];
        cf->n++;
    }
    fclose(f);
}

typedef struct {
    double x0, x1, y0, y1; /* data ranges */
    int left, top, w, h;   /* plot area in pixels */
} curve_axes;

static double ax_x(const curve_axes *a, double x)
{
    return a->left + (x - a->x0) / (a->x1 - a->x0) * a->w;
}
static double ax_y(const curve_axes *a, double y)
{
    return a->top + a->h - (y - a->y0) / (a->y1 - a->y0) * a->h;
}

static void curve_frame(FILE *f, const curve_axes *a, const char *title, int ox)
{
    fprintf(f, "<text x=\"%d\" y=\"14\" font-weight=\"600\">%s</text>", ox + a->left, title);
    for (int k = 0; k <= 4; k++) {
        double y = a->y0 + (a->y1 - a->y0) * k / 4;
        fprintf(f, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", ox + a->left,
                ox + a->left + a->w, ax_y(a, y), ax_y(a, y));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>", ox + a->left - 4, ax_y(a, y) + 4, y);
    }
    int span = (int)(a->x1 - a->x0), step = span <= 10 ? 1 : span <= 50 ? 5 : span <= 200 ? 20 : 50;
    for (int e = (int)a->x0; e <= (int)a->x1; e += step)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>", ox + ax_x(a, e), a->top + a->h + 14,
                e + 1);
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", ox + a->left, ox + a->left + a->w,
            a->top + a->h, a->top + a->h);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch (from 1)</text>", ox + a->left + a->w / 2,
            a->top + a->h + 30);
}

/* One panel (loss or accuracy) of one model: train dashed, val solid, one color per fold. */
static void curve_panel(FILE *f, const vote_state *v, int m, const curve_fold *cf, int acc, int ox)
{
    curve_axes a = {0, 1, acc ? 1 : 0, acc ? 1 : 0, 46, 22, HTML_CURVE_W - 60, HTML_CURVE_H - 60};
    int series[2] = {acc ? CURVE_TRAIN_ACC : CURVE_TRAIN_LOSS, acc ? CURVE_VAL_ACC : CURVE_VAL_LOSS};
    for (int i = 0; i < v->man.n_folds; i++)
        for (int r = 0; r < cf[i].n; r++) {
            if (cf[i].epoch[r] > a.x1)
                a.x1 = cf[i].epoch[r];
            for (int s = 0; s < 2; s++) {
                double y = cf[i].val[(size_t)r * CURVE_N + series[s]];
                if (acc && y < a.y0)
                    a.y0 = floor(y * 10) / 10;
                if (!acc && y > a.y1)
                    a.y1 = y * 1.05;
            }
        }
    if (a.y1 <= a.y0)
        a.y1 = a.y0 + 1;
    curve_frame(f, &a, acc ? "accuracy" : "loss", ox);
    for (int i = 0; i < v->man.n_folds; i++) {
        const vote_fold *vf = &v->models[m].folds[i];
        const char *color = html_fold_colors[i % 10];
        for (int s = 0; s < 2 && cf[i].n; s++) {
            fprintf(f, "<polyline class=\"curve\" data-model=\"");
            vote_html_text(f, v->models[m].name);
            fprintf(f, "\" data-fold=\"%d\" data-series=\"%s\" data-epochs=\"", vf->fold, curve_names[series[s]]);
            for (int r = 0; r < cf[i].n; r++)
                fprintf(f, "%s%d", r ? " " : "", cf[i].epoch[r]);
            fputs("\" data-values=\"", f);
            for (int r = 0; r < cf[i].n; r++)
                fprintf(f, "%s%.10g", r ? " " : "", cf[i].val[(size_t)r * CURVE_N + series[s]]);
            fputs("\" points=\"", f);
            for (int r = 0; r < cf[i].n; r++)
                fprintf(f, "%s%.1f,%.1f", r ? " " : "", ox + ax_x(&a, cf[i].epoch[r]),
                        ax_y(&a, cf[i].val[(size_t)r * CURVE_N + series[s]]));
            fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s><title>fold %d %s</title></polyline>",
                    color, s ? "2" : "1.5", s ? "" : " stroke-dasharray=\"5 3\"", vf->fold, curve_names[series[s]]);
        }
        for (int r = 0; r < cf[i].n; r++)
            if (cf[i].epoch[r] == vf->epoch) {
                double y = cf[i].val[(size_t)r * CURVE_N + series[1]];
                fputs("<circle class=\"checkpoint\" data-model=\"", f);
                vote_html_text(f, v->models[m].name);
                fprintf(f,
                        "\" data-fold=\"%d\" data-epoch=\"%d\" data-series=\"%s\" data-value=\"%.10g\" cx=\"%.1f\" "
                        "cy=\"%.1f\" r=\"5\" fill=\"#fff\" stroke=\"%s\" stroke-width=\"2.5\"><title>fold %d: %s "
                        "checkpoint of epoch %d predicted (%s %.4f)</title></circle>",
                        vf->fold, vf->epoch, curve_names[series[1]], y, ox + ax_x(&a, vf->epoch), ax_y(&a, y), color,
                        vf->fold, vf->checkpoint, vf->epoch + 1, curve_names[series[1]], y);
            }
    }
}

static void html_curves(FILE *f, const vote_state *v)
{
    fputs("<h2 id=\"curves\">Learning curves</h2>\n<p class=\"note\">Per model, one color per fold: training (dashed) "
          "and validation (solid) loss and accuracy per epoch from each fold's <code>metrics.csv</code>. The open "
          "circle marks the epoch of the checkpoint that wrote the fold's predictions (preds.h5).</p>\n",
          f);
    curve_fold cf[VOTE_MAX_FOLDS];
    for (int m = 0; m < v->n_models; m++) {
        memset(cf, 0, sizeof cf);
        int any = 0;
        for (int i = 0; i < v->man.n_folds; i++) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s/fold%d/metrics.csv", v->opt->run_dir, v->models[m].name,
                     v->man.folds[i]);
            curve_read(path, &cf[i]);
            any |= cf[i].n > 0;
        }
        fputs("<h3>", f);
        vote_html_text(f, v->models[m].name);
        fputs("</h3>\n<div class=\"legend\">", f);
        for (int i = 0; i < v->man.n_folds; i++)
            fprintf(f, "<span><i class=\"sw\" style=\"background:%s\"></i>fold %d</span>", html_fold_colors[i % 10],
                    v->man.folds[i]);
        fputs("<span>- - train</span><span>&#8212; validation</span><span>&#9675; predicting checkpoint</span></div>\n",
              f);
        if (any) {
            fprintf(f, "<svg class=\"curves\" width=\"%d\" height=\"%d\" role=\"img\">", 2 * HTML_CURVE_W,
                    HTML_CURVE_H);
            curve_panel(f, v, m, cf, 0, 0);
            curve_panel(f, v, m, cf, 1, HTML_CURVE_W);
            fputs("</svg>\n", f);
        }
        int notes = 0;
        for (int i = 0; i < v->man.n_folds; i++) {
            if (cf[i].note[0]) {
                fputs(notes++ ? "; " : "<p class=\"note missing-curve\">no learning curve: ", f);
                vote_html_text(f, cf[i].note);
            }
            free(cf[i].epoch);
            free(cf[i].val);
        }
        if (notes)
            fputs("</p>\n", f);
    }
}

fl_code vote_write_html(const vote_state *v, fl_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/ensemble/report.html", v->opt->run_dir);
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    html_head(f, v);
    html_curves(f, v);
    html_tables(f, v);
    html_fit(f, v);
    vote_html_confusion(f, v);
    vote_html_per_class(f, v);
    vote_html_agreement(f, v);
    vote_html_calibration(f, v);
    fputs("</main></body></html>\n", f);
    fl_code rc = FL_OK;
    if (fclose(f) != 0 || !text)
        rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    else
        rc = fl_write_file_atomic(path, text, n, err);
    free(text);
    return rc;
}
