/* vote_html_charts.c -- report.html's charts of the predictions themselves:
 * the confusion matrix as a heat map (classes in cluster order, see
 * vote_calib.c) and, with many classes, the most confused pairs; per-class
 * accuracy, worst first; the models' agreement; reliability diagrams and ECE.
 *
 * The confusion matrix and per-class accuracy are those of the submission's
 * method on the OOF rows (every train row of the run's folds has a label).
 * Calibration needs probabilities, so it covers each model (OOF: the fold
 * that held the row out; test: the model's soft vote), the soft-soft vote
 * with run.cfg's weights and, after --fit-weights, the fitted vote.
 *
 * Size: cells with no rows are not drawn; a matrix with more than
 * HEAT_MAX_CELLS non-empty cells draws only its largest cells (the smallest
 * count drawn is said), and one of more than HEAT_MAX_CLASSES classes is not
 * drawn at all, so a 500-class report stays a few MB at most.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vote/vote_internal.h"

#define HEAT_MAX_CLASSES 1000
#define HEAT_MAX_CELLS   20000
#define HEAT_LABELS_MAX  60 /* class names beside the rows and columns up to this many classes */
#define PAIRS_FROM       50 /* more classes than this: list the most confused pairs */
#define PAIRS_N          20
#define PAIRS_EXAMPLES   3
#define BARS_MAX         50 /* per-class bars drawn; all classes are in the table */

/* A sequential ramp (light to dark blue) at t in [0, 1], as #rrggbb. */
static void heat_color(double t, char out[8])
{
    static const int stops[5][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x = t * 4;
    int k = x >= 4 ? 3 : (int)x;
    double u = x - k;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(stops[k][c] + u * (stops[k + 1][c] - stops[k][c]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static void chart_name(FILE *f, const vote_state *v, int c, int max_len)
{
    const char *s = v->class_names[c];
    if ((int)strlen(s) <= max_len) {
        vote_html_text(f, s);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s...", max_len - 3 > 60 ? 60 : max_len - 3, s);
    vote_html_text(f, buf);
}

static int cmp_i64_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* The smallest count drawn: 1, or what keeps the drawn cells under HEAT_MAX_CELLS. */
static int64_t heat_threshold(const int64_t *conf, int C)
{
    size_t nz = 0, CC = (size_t)C * C;
    for (size_t k = 0; k < CC; k++)
        nz += conf[k] > 0;
    if (nz <= HEAT_MAX_CELLS)
        return 1;
    int64_t *vals = malloc(nz * sizeof *vals);
    if (!vals)
        return INT64_MAX;
    size_t j = 0;
    for (size_t k = 0; k < CC; k++)
        if (conf[k] > 0)
            vals[j++] = conf[k];
    qsort(vals, nz, sizeof *vals, cmp_i64_desc);
    int64_t t = vals[HEAT_MAX_CELLS - 1] + 1; /* strictly above the HEAT_MAX_CELLS-th: at most that many drawn */
    free(vals);
    return t;
}

static void heat_cells(FILE *f, const vote_state *v, const int64_t *conf, const int *order, int64_t min_count)
{
    const int C = v->num_classes;
    for (int i = 0; i < C; i++) {
        int a = order[i];
        int64_t row = 0;
        for (int b = 0; b < C; b++)
            row += conf[(size_t)a * C + b];
        fprintf(f, "<g class=\"cm-row\" data-true=\"%d\" data-rowtotal=\"%lld\" transform=\"translate(0 %d)\">", a,
                (long long)row, i);
        for (int j = 0; j < C; j++) {
            int b = order[j];
            int64_t n = conf[(size_t)a * C + b];
            if (n < min_count || n == 0)
                continue;
            char color[8];
            heat_color(sqrt((double)n / (double)row), color);
            fprintf(f,
                    "<rect x=\"%d\" width=\"1\" height=\"1\" fill=\"%s\" data-pred=\"%d\" data-count=\"%lld\"><title>",
                    j, color, b, (long long)n);
            chart_name(f, v, a, 40);
            fputs(" as ", f);
            chart_name(f, v, b, 40);
            fprintf(f, ": %lld (%.1f%% of its %lld)</title></rect>", (long long)n, 100.0 * n / row, (long long)row);
        }
        fputs("</g>\n", f);
    }
}

static void heat_legend(FILE *f, int x, int y)
{
    fprintf(f,
            "<g class=\"legend\" transform=\"translate(%d %d)\"><text x=\"0\" y=\"-6\">share of the true class</text>",
            x, y);
    for (int k = 0; k <= 10; k++) {
        char color[8];
        heat_color(sqrt(k / 10.0), color);
        fprintf(f,
                "<rect x=\"%d\" y=\"0\" width=\"16\" height=\"12\" fill=\"%s\" stroke=\"#ccc\" stroke-width=\"0.5\"/>",
                k * 16, color);
    }
    fputs("<text x=\"0\" y=\"26\">0</text><text x=\"176\" y=\"26\" text-anchor=\"end\">1</text></g>", f);
}

static void pairs_table(FILE *f, const vote_state *v, const int64_t *conf, const int32_t *oof);

void vote_html_confusion(FILE *f, const vote_state *v)
{
    const int C = v->num_classes;
    const vote_method *vm = &v->methods[v->chosen];
    fputs("<h2 id=\"confusion\">Confusion matrix</h2>\n<p class=\"note\">", f);
    fprintf(f, "The submission's vote (<b>");
    vote_html_text(f, vm->name);
    fprintf(f,
            "</b>) on the %lld OOF rows: row = true class, column = predicted class, color = share of the true "
            "class's rows (square-root scale). Classes are ordered by average-linkage clustering of the "
            "symmetrised row-normalised confusion matrix, so classes confused with each other sit together.",
            (long long)vm->oof_rows);
    if (C > HEAT_MAX_CLASSES) {
        fprintf(f, " With %d classes (more than %d) the matrix is not drawn; see the most confused pairs.</p>\n", C,
                HEAT_MAX_CLASSES);
        int64_t *conf = vote_confusion(v, vm->oof);
        if (conf)
            pairs_table(f, v, conf, vm->oof);
        free(conf);
        return;
    }
    int64_t *conf = vote_confusion(v, vm->oof);
    int *order = malloc((size_t)C * sizeof *order);
    fl_error err;
    if (!conf || !order || vote_cluster_order(conf, C, order, &err)) {
        fputs(" (not drawn: out of memory)</p>\n", f);
        free(conf);
        free(order);
        return;
    }
    int64_t min_count = heat_threshold(conf, C);
    if (min_count > 1)
        fprintf(f, " Only cells of at least %lld rows are drawn (the %d largest).", (long long)min_count,
                HEAT_MAX_CELLS);
    fputs("</p>\n", f);
    int labels = C <= HEAT_LABELS_MAX, side = C <= 12 ? 36 * C : 12 * C + 300 < 760 ? 12 * C + 300 : 760;
    int left = labels ? 150 : 40, top = labels ? 100 : 30;
    fprintf(f,
            "<svg class=\"confusion\" width=\"%d\" height=\"%d\" data-classes=\"%d\" data-min-count=\"%lld\" "
            "data-order=\"",
            left + side + 230, top + side + 50, C, (long long)min_count);
    for (int i = 0; i < C; i++)
        fprintf(f, "%s%d", i ? " " : "", order[i]);
    fputs("\" role=\"img\">", f);
    if (labels) {
        double cell = (double)side / C;
        for (int i = 0; i < C; i++) {
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", left - 4, top + (i + 0.5) * cell + 4);
            chart_name(f, v, order[i], 22);
            fprintf(f, "</text><text transform=\"translate(%.1f %d) rotate(-55)\">", left + (i + 0.5) * cell + 3,
                    top - 4);
            chart_name(f, v, order[i], 18);
            fputs("</text>", f);
        }
    } else {
        fprintf(f, "<text x=\"%d\" y=\"%d\">predicted class (cluster order) &#8594;</text>", left, top - 10);
        fprintf(f, "<text transform=\"translate(%d %d) rotate(-90)\" text-anchor=\"end\">&#8592; true class</text>",
                left - 10, top);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fff\" stroke=\"#bbb\"/>", left, top, side,
            side);
    fprintf(f,
            "<svg x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" preserveAspectRatio=\"none\" "
            "shape-rendering=\"crispEdges\">\n",
            left, top, side, side, C, C);
    heat_cells(f, v, conf, order, min_count);
    fputs("</svg>", f);
    heat_legend(f, left + side + 30, top + 20);
    fputs("</svg>\n", f);
    if (C > PAIRS_FROM)
        pairs_table(f, v, conf, vm->oof);
    free(conf);
    free(order);
}

/* ---- the most confused pairs ------------------------------------------------------------ */

typedef struct {
    int a, b; /* a < b */
    int64_t ab, ba;
} conf_pair;

static int pair_before(const conf_pair *x, const conf_pair *y)
{
    int64_t tx = x->ab + x->ba, ty = y->ab + y->ba;
    return tx != ty ? tx > ty : x->a != y->a ? x->a < y->a : x->b < y->b;
}

static void pairs_examples(FILE *f, const vote_state *v, const int32_t *oof, int a, int b)
{
    int shown = 0;
    for (int64_t r = 0; r < v->n_train && shown < PAIRS_EXAMPLES; r++)
        if (oof[r] >= 0 && ((v->train_labels[r] == a && oof[r] == b) || (v->train_labels[r] == b && oof[r] == a))) {
            fprintf(f, "%s<code data-row=\"%lld\">", shown ? "<br/>" : "", (long long)r);
            vote_html_text(f, v->train_paths[r]);
            fputs("</code>", f);
            shown++;
        }
}

/* The PAIRS_N pairs {a, b} with the most rows of one predicted as the other (ties: lowest a, then b). */
static void pairs_table(FILE *f, const vote_state *v, const int64_t *conf, const int32_t *oof)
{
    const int C = v->num_classes;
    conf_pair top[PAIRS_N];
    int n = 0;
    for (int a = 0; a < C; a++)
        for (int b = a + 1; b < C; b++) {
            conf_pair p = {a, b, conf[(size_t)a * C + b], conf[(size_t)b * C + a]};
            if (p.ab + p.ba == 0 || (n == PAIRS_N && !pair_before(&p, &top[n - 1])))
                continue;
            int k = n < PAIRS_N ? n++ : n - 1;
            for (; k > 0 && pair_before(&p, &top[k - 1]); k--)
                top[k] = top[k - 1];
            top[k] = p;
        }
    fprintf(f,
            "<h3>The %d most confused pairs</h3>\n<table class=\"pairs\"><tr><th>#</th><th>class A</th><th>class B"
            "</th><th>A as B</th><th>B as A</th><th>total</th><th>examples (OOF rows, first %d)</th></tr>\n",
            PAIRS_N, PAIRS_EXAMPLES);
    for (int k = 0; k < n; k++) {
        fprintf(f, "<tr data-a=\"%d\" data-b=\"%d\" data-ab=\"%lld\" data-ba=\"%lld\"><td class=\"n\">%d</td><td>",
                top[k].a, top[k].b, (long long)top[k].ab, (long long)top[k].ba, k + 1);
        chart_name(f, v, top[k].a, 40);
        fputs("</td><td>", f);
        chart_name(f, v, top[k].b, 40);
        fprintf(f, "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td>",
                (long long)top[k].ab, (long long)top[k].ba, (long long)(top[k].ab + top[k].ba));
        pairs_examples(f, v, oof, top[k].a, top[k].b);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* ---- per-class accuracy ------------------------------------------------------------------- */

typedef struct {
    int c;
    int64_t right, rows;
} class_acc;

/* Worst first: lower accuracy (compared exactly, as fractions), then lower class id; no rows last. */
static int class_acc_cmp(const void *x, const void *y)
{
    const class_acc *a = x, *b = y;
    if (!a->rows || !b->rows)
        return a->rows && !b->rows ? -1 : !a->rows && b->rows ? 1 : a->c - b->c;
    int64_t l = a->right * b->rows, r = b->right * a->rows;
    return l != r ? (l < r ? -1 : 1) : a->c - b->c;
}

void vote_html_per_class(FILE *f, const vote_state *v)
{
    const int C = v->num_classes;
    class_acc *acc = calloc((size_t)C, sizeof *acc);
    if (!acc)
        return;
    for (int c = 0; c < C; c++)
        acc[c].c = c;
    const vote_method *vm = &v->methods[v->chosen];
    for (int64_t r = 0; r < v->n_train; r++)
        if (vm->oof[r] >= 0) {
            acc[v->train_labels[r]].rows++;
            acc[v->train_labels[r]].right += vm->oof[r] == v->train_labels[r];
        }
    qsort(acc, (size_t)C, sizeof *acc, class_acc_cmp);
    int bars = C < BARS_MAX ? C : BARS_MAX, row_h = 18, left = 190, w = 480;
    fprintf(f,
            "<h2 id=\"per-class\">Per-class accuracy</h2>\n<p class=\"note\">The submission's vote on the OOF rows "
            "of each class, worst first%s.</p>\n",
            C > BARS_MAX ? " (the worst 50 drawn; every class in the table below)" : "");
    fprintf(f, "<svg class=\"per-class\" width=\"%d\" height=\"%d\" role=\"img\">", left + w + 140, bars * row_h + 30);
    for (int k = 0; k <= 4; k++)
        fprintf(f,
                "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"0\" y2=\"%d\"/><text x=\"%d\" y=\"%d\" "
                "text-anchor=\"middle\">%.2f</text>",
                left + w * k / 4, left + w * k / 4, bars * row_h, left + w * k / 4, bars * row_h + 14, k / 4.0);
    for (int k = 0; k < bars; k++) {
        const class_acc *a = &acc[k];
        double x = a->rows ? (double)a->right / a->rows : 0;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, k * row_h + 13);
        chart_name(f, v, a->c, 28);
        fprintf(f,
                "</text><rect class=\"class-acc\" data-class=\"%d\" data-correct=\"%lld\" data-total=\"%lld\" x=\"%d\" "
                "y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>",
                a->c, (long long)a->right, (long long)a->rows, left, k * row_h + 2, w * x, row_h - 4,
                x < 0.5   ? "#d6604d"
                : x < 0.8 ? "#f4a582"
                          : "#4393c3");
        chart_name(f, v, a->c, 60);
        fprintf(f, ": %lld/%lld</title></rect><text x=\"%d\" y=\"%d\">", (long long)a->right, (long long)a->rows,
                left + w + 6, k * row_h + 13);
        if (a->rows)
            fprintf(f, "%.3f (%lld/%lld)", x, (long long)a->right, (long long)a->rows);
        else
            fputs("no OOF rows", f);
        fputs("</text>", f);
    }
    fputs("</svg>\n", f);
    if (C > BARS_MAX) {
        fprintf(f,
                "<details><summary>every class (%d), worst first</summary><table class=\"per-class\"><tr><th>class</th>"
                "<th>id</th><th>OOF accuracy</th></tr>\n",
                C);
        for (int k = 0; k < C; k++) {
            fprintf(f, "<tr data-class=\"%d\"><td>", acc[k].c);
            chart_name(f, v, acc[k].c, 60);
            fprintf(f, "</td><td class=\"n\">%d</td>", acc[k].c);
            if (acc[k].rows)
                fprintf(f, "<td class=\"n\" data-correct=\"%lld\" data-total=\"%lld\">%.4f (%lld/%lld)</td></tr>\n",
                        (long long)acc[k].right, (long long)acc[k].rows, (double)acc[k].right / acc[k].rows,
                        (long long)acc[k].right, (long long)acc[k].rows);
            else
                fputs("<td class=\"n\">n/a</td></tr>\n", f);
        }
        fputs("</table></details>\n", f);
    }
    free(acc);
}

/* ---- agreement ----------------------------------------------------------------------------- */

void vote_html_agreement(FILE *f, const vote_state *v)
{
    const int M = v->n_models, cell = 64, left = 150, top = 100;
    fputs(
        "<h2 id=\"agreement\">Agreement between models</h2>\n<p class=\"note\">Fraction of test rows on which two "
        "models' soft votes agree (as in report.md); color from the lowest agreement shown (light) to 1 (dark).</p>\n",
        f);
    if (!v->n_test) {
        fputs("<p class=\"note\">No test rows.</p>\n", f);
        return;
    }
    double lo = 1;
    int64_t *same = calloc((size_t)M * M, sizeof *same);
    if (!same)
        return;
    for (int a = 0; a < M; a++)
        for (int b = 0; b < M; b++) {
            for (int64_t i = 0; i < v->n_test; i++)
                same[a * M + b] += v->models[a].test_soft[i] == v->models[b].test_soft[i];
            lo = fmin(lo, (double)same[a * M + b] / v->n_test);
        }
    fprintf(f, "<svg class=\"agreement\" width=\"%d\" height=\"%d\" role=\"img\">", left + M * cell + 20,
            top + M * cell + 20);
    for (int a = 0; a < M; a++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, top + a * cell + cell / 2 + 4);
        vote_html_text(f, v->models[a].name);
        fprintf(f, "</text><text transform=\"translate(%d %d) rotate(-40)\">", left + a * cell + cell / 2, top - 6);
        vote_html_text(f, v->models[a].name);
        fputs("</text>", f);
    }
    for (int a = 0; a < M; a++)
        for (int b = 0; b < M; b++) {
            double x = (double)same[a * M + b] / v->n_test, t = lo < 1 ? (x - lo) / (1 - lo) : 1;
            char color[8];
            heat_color(0.15 + 0.85 * t, color);
            fprintf(
                f,
                "<g class=\"agree\" data-a=\"%d\" data-b=\"%d\" data-same=\"%lld\" data-total=\"%lld\"><rect x=\"%d\" "
                "y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#fff\"/><text x=\"%d\" y=\"%d\" "
                "text-anchor=\"middle\" style=\"fill:%s\">%.3f</text><title>",
                a, b, (long long)same[a * M + b], (long long)v->n_test, left + b * cell, top + a * cell, cell, cell,
                color, left + b * cell + cell / 2, top + a * cell + cell / 2 + 4, t > 0.55 ? "#fff" : "#222", x);
            vote_html_text(f, v->models[a].name);
            fputs(" and ", f);
            vote_html_text(f, v->models[b].name);
            fprintf(f, ": %lld/%lld</title></g>", (long long)same[a * M + b], (long long)v->n_test);
        }
    fputs("</svg>\n", f);
    free(same);
}

/* ---- calibration ---------------------------------------------------------------------------- */

static void calib_panel(FILE *f, const char *who, const char *split, const vote_calib *c)
{
    const int left = 36, top = 38, side = 180, W = left + side + 20, H = top + side + 58;
    double ece = vote_calib_ece(c);
    fputs("<svg class=\"reliability\" width=\"", f);
    fprintf(f, "%d\" height=\"%d\" data-model=\"", W, H);
    vote_html_text(f, who);
    fprintf(f,
            "\" data-split=\"%s\" data-rows=\"%lld\" data-ece=\"%.9g\" role=\"img\"><text x=\"%d\" y=\"13\" "
            "font-weight=\"600\">",
            split, (long long)c->rows, ece, left);
    vote_html_text(f, who);
    fprintf(f, "</text><text x=\"%d\" y=\"28\">%s, %lld rows &#183; ECE %.4f</text>", left,
            strcmp(split, "oof") ? "test" : "OOF", (long long)c->rows, ece);
    for (int k = 0; k <= 4; k++) {
        int y = top + side - side * k / 4, x = left + side * k / 4;
        fprintf(f,
                "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/><text x=\"%d\" y=\"%d\" "
                "text-anchor=\"end\">%.2f</text><text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.2f</text>",
                left, left + side, y, y, left - 3, y + 4, k / 4.0, x, top + side + 13, k / 4.0);
    }
    double bw = (double)side / VOTE_ECE_BINS;
    for (int b = 0; b < VOTE_ECE_BINS; b++) {
        if (!c->n[b])
            continue;
        double acc = (double)c->correct[b] / c->n[b], conf = c->conf[b] / c->n[b];
        double x = left + b * bw, share = (double)c->n[b] / c->rows;
        fprintf(f,
                "<rect class=\"bin\" data-bin=\"%d\" data-count=\"%lld\" data-correct=\"%lld\" data-conf=\"%.9g\" "
                "x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4393c3\" stroke=\"#fff\" "
                "stroke-width=\"0.5\"><title>confidence %.2f-%.2f: %lld rows, accuracy %.3f, mean confidence %.3f"
                "</title></rect>",
                b, (long long)c->n[b], (long long)c->correct[b], conf, x, top + side - acc * side, bw, acc * side,
                (double)b / VOTE_ECE_BINS, (double)(b + 1) / VOTE_ECE_BINS, (long long)c->n[b], acc, conf);
        /* overconfidence (mean confidence above the accuracy) as a pink gap above the bar; the mean
         * confidence of every bin as a red mark, which sits inside the bar when underconfident */
        if (conf > acc)
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f4a582\" "
                    "fill-opacity=\"0.6\"/>",
                    x, top + side - conf * side, bw, (conf - acc) * side);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#b2182b\" stroke-width=\"2\"/>",
                x + 1, x + bw - 1, top + side - conf * side, top + side - conf * side);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#999\"/>", x,
                top + side + 40 - 18 * share, bw - 0.5, 18 * share);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>", left,
            top + side, left + side, top);
    fprintf(f, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", left, left + side, top + side,
            top + side);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">confidence; rows per bin below</text></svg>",
            left + side / 2, top + side + 54);
}

void vote_html_calibration(FILE *f, const vote_state *v)
{
    fprintf(f,
            "<h2 id=\"calibration\">Calibration</h2>\n<p class=\"note\">Reliability diagrams: rows binned by their "
            "top probability (%d equal bins); blue bars are each bin's accuracy, the red mark its mean "
            "confidence (pink: confidence above accuracy), grey the share of rows; the dashed diagonal is perfect "
            "calibration. ECE = sum over bins of (rows in bin / rows) &#215; |accuracy - "
            "mean confidence|. A model's OOF rows are predicted by the fold that held them out, its test rows by "
            "its soft vote; the ensemble is the soft-soft vote with run.cfg's weights%s.%s</p>\n",
            VOTE_ECE_BINS, v->fit.done ? " and the fitted soft-soft vote" : "",
            v->test_labels ? "" : " No test labels: OOF only.");
    const char *ens = "soft-soft", *fitted = "soft-soft, fitted weights";
    fputs("<table class=\"ece\"><tr><th>predictions</th><th>OOF ECE</th><th>test ECE</th></tr>\n", f);
    for (int m = 0; m <= v->n_models + v->fit.done; m++) {
        const char *who = m < v->n_models ? v->models[m].name : m == v->n_models ? ens : fitted;
        const vote_calib *o = m < v->n_models    ? &v->models[m].cal_oof
                              : m == v->n_models ? &v->cal_oof
                                                 : &v->fit.cal_oof;
        const vote_calib *t = m < v->n_models    ? &v->models[m].cal_test
                              : m == v->n_models ? &v->cal_test
                                                 : &v->fit.cal_test;
        fputs("<tr data-model=\"", f);
        vote_html_text(f, who);
        fputs("\"><td>", f);
        vote_html_text(f, who);
        fprintf(f, "</td><td class=\"n\" data-ece=\"%.9g\">%.4f</td>", vote_calib_ece(o), vote_calib_ece(o));
        if (v->test_labels && t->rows)
            fprintf(f, "<td class=\"n\" data-ece=\"%.9g\">%.4f</td></tr>\n", vote_calib_ece(t), vote_calib_ece(t));
        else
            fputs("<td class=\"n\">n/a</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    for (int split = 0; split < 1 + !!v->test_labels; split++) {
        fprintf(f, "<h3>%s</h3>\n<div class=\"row\">", split ? "test" : "OOF");
        for (int m = 0; m <= v->n_models + v->fit.done; m++) {
            const char *who = m < v->n_models ? v->models[m].name : m == v->n_models ? ens : fitted;
            const vote_calib *c = m < v->n_models    ? (split ? &v->models[m].cal_test : &v->models[m].cal_oof)
                                  : m == v->n_models ? (split ? &v->cal_test : &v->cal_oof)
                                                     : (split ? &v->fit.cal_test : &v->fit.cal_oof);
            calib_panel(f, who, split ? "test" : "oof", c);
        }
        fputs("</div>\n", f);
    }
}
