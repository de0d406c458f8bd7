/* vote_calib.c -- the statistics report.html draws that are more than counts:
 * reliability bins and the expected calibration error, the confusion matrix,
 * and an order of the classes in which confusions cluster.
 *
 * Calibration: the top probability of each row (its confidence) falls in one
 * of VOTE_ECE_BINS equal-width bins, bin = min(floor(conf * 15), 14); the row
 * is right when its first argmax is the label. ECE = sum over bins of
 * (rows in bin / rows) * |accuracy of bin - mean confidence of bin|
 * (Guo et al., 2017).
 *
 * Cluster order: average-linkage agglomerative clustering of the classes
 * under the similarity s(a, b) = (r(a, b) + r(b, a)) / 2, where r(a, b) is
 * the fraction of a's OOF rows predicted as b (so a small class counts as
 * much as a large one). Each step merges the two clusters of highest mean
 * similarity (ties: the lowest cluster index, then the lowest partner; a
 * cluster's index is its lowest class id), and lays the two orders end to
 * end, each possibly reversed, so that the two classes that meet are the
 * most similar of the four choices (ties: the first of A+B, A+rev B, rev A+B,
 * rev A+rev B). Classes confused with each other therefore sit together, and
 * the order is a pure function of the matrix.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vote/vote_internal.h"

static void calib_add_conf(vote_calib *c, double conf, int right)
{
    int b = (int)floor(conf * VOTE_ECE_BINS);
    if (b >= VOTE_ECE_BINS)
        b = VOTE_ECE_BINS - 1;
    if (b < 0)
        b = 0;
    c->rows++;
    c->n[b]++;
    c->correct[b] += right;
    c->conf[b] += conf;
}

void vote_calib_add(vote_calib *c, const double *p, int C, int32_t label)
{
    int32_t a = vote_argmax_d(p, C);
    calib_add_conf(c, p[a], a == label);
}

void vote_calib_add_f(vote_calib *c, const float *p, int C, int32_t label)
{
    int32_t a = vote_argmax_f(p, C);
    calib_add_conf(c, (double)p[a], a == label);
}

double vote_calib_ece(const vote_calib *c)
{
    if (c->rows <= 0)
        return NAN;
    double ece = 0;
    for (int b = 0; b < VOTE_ECE_BINS; b++)
        if (c->n[b])
            ece += (double)c->n[b] / (double)c->rows *
                   fabs((double)c->correct[b] / (double)c->n[b] - c->conf[b] / (double)c->n[b]);
    return ece;
}

int64_t *vote_confusion(const vote_state *v, const int32_t *oof)
{
    const size_t C = (size_t)v->num_classes;
    int64_t *conf = calloc(C ? C * C : 1, sizeof *conf);
    if (!conf)
        return NULL;
    for (int64_t r = 0; r < v->n_train; r++)
        if (oof[r] >= 0)
            conf[(size_t)v->train_labels[r] * C + (size_t)oof[r]]++;
    return conf;
}

/* ---- cluster order ----------------------------------------------------------------- */

typedef struct {
    int C;
    double *sim;   /* (C, C) cluster similarities; rows of merged-away clusters unused */
    double *cls;   /* (C, C) class similarities (fixed) */
    int **members; /* per cluster its classes in order, NULL when merged away */
    int *size;     /* per cluster */
    int *best;     /* per cluster the partner of highest similarity, -1 if none */
} cluster_state;

static void cluster_best(cluster_state *s, int i)
{
    s->best[i] = -1;
    for (int j = 0; j < s->C; j++)
        if (j != i && s->members[j] &&
            (s->best[i] < 0 || s->sim[(size_t)i * s->C + j] > s->sim[(size_t)i * s->C + s->best[i]]))
            s->best[i] = j;
}

/* Lays a's and b's orders end to end (a first), each possibly reversed (see above). */
static int *cluster_join(const cluster_state *s, int a, int b)
{
    const int *A = s->members[a], *B = s->members[b];
    int na = s->size[a], nb = s->size[b], pick = 0;
    /* the ends that meet: A's last or first, B's first or last */
    int ends[4][2] = {{A[na - 1], B[0]}, {A[na - 1], B[nb - 1]}, {A[0], B[0]}, {A[0], B[nb - 1]}};
    for (int k = 1; k < 4; k++)
        if (s->cls[(size_t)ends[k][0] * s->C + ends[k][1]] > s->cls[(size_t)ends[pick][0] * s->C + ends[pick][1]])
            pick = k;
    int *out = malloc((size_t)(na + nb) * sizeof *out);
    if (!out)
        return NULL;
    int rev_a = pick >= 2, rev_b = pick == 1 || pick == 3;
    for (int k = 0; k < na; k++)
        out[k] = A[rev_a ? na - 1 - k : k];
    for (int k = 0; k < nb; k++)
        out[na + k] = B[rev_b ? nb - 1 - k : k];
    return out;
}

static fl_code cluster_merge(cluster_state *s, int a, int b, fl_error *err)
{
    const int C = s->C;
    int *joined = cluster_join(s, a, b);
    if (!joined)
        return fl_fail(err, FL_ENOMEM, "vote: out of memory ordering %d classes", C);
    double na = s->size[a], nb = s->size[b];
    for (int k = 0; k < C; k++)
        if (s->members[k] && k != a && k != b) {
            double x = (na * s->sim[(size_t)k * C + a] + nb * s->sim[(size_t)k * C + b]) / (na + nb);
            s->sim[(size_t)k * C + a] = s->sim[(size_t)a * C + k] = x;
        }
    free(s->members[a]);
    free(s->members[b]);
    s->members[a] = joined;
    s->members[b] = NULL;
    s->size[a] += s->size[b];
    for (int k = 0; k < C; k++)
        if (s->members[k] && (k == a || s->best[k] == a || s->best[k] == b))
            cluster_best(s, k);
        else if (s->members[k] && (s->sim[(size_t)k * C + a] > s->sim[(size_t)k * C + s->best[k]] ||
                                   (s->sim[(size_t)k * C + a] == s->sim[(size_t)k * C + s->best[k]] && a < s->best[k])))
            s->best[k] = a; /* as cluster_best would find: the first of the highest */
    return FL_OK;
}

static void cluster_free(cluster_state *s)
{
    for (int i = 0; s->members && i < s->C; i++)
        free(s->members[i]);
    free(s->members);
    free(s->sim);
    free(s->cls);
    free(s->size);
    free(s->best);
}

fl_code vote_cluster_order(const int64_t *conf, int C, int *order, fl_error *err)
{
    cluster_state s = {C, NULL, NULL, NULL, NULL, NULL};
    s.sim = malloc((size_t)C * C * sizeof *s.sim);
    s.cls = malloc((size_t)C * C * sizeof *s.cls);
    s.members = calloc((size_t)C, sizeof *s.members);
    s.size = malloc((size_t)C * sizeof *s.size);
    s.best = malloc((size_t)C * sizeof *s.best);
    fl_code rc = FL_OK;
    if (!s.sim || !s.cls || !s.members || !s.size || !s.best) {
        cluster_free(&s);
        return fl_fail(err, FL_ENOMEM, "vote: out of memory ordering %d classes", C);
    }
    for (int a = 0; a < C; a++) {
        int64_t row_a = 0;
        for (int b = 0; b < C; b++)
            row_a += conf[(size_t)a * C + b];
        for (int b = 0; b < C; b++)
            s.cls[(size_t)a * C + b] = row_a ? (double)conf[(size_t)a * C + b] / (double)row_a : 0.0;
    }
    for (int a = 0; a < C; a++)
        for (int b = a; b < C; b++)
            s.cls[(size_t)a * C + b] = s.cls[(size_t)b * C + a] =
                a == b ? 0.0 : (s.cls[(size_t)a * C + b] + s.cls[(size_t)b * C + a]) / 2;
    memcpy(s.sim, s.cls, (size_t)C * C * sizeof *s.sim);
    for (int i = 0; i < C && !rc; i++) {
        s.size[i] = 1;
        if (!(s.members[i] = malloc(sizeof(int))))
            rc = fl_fail(err, FL_ENOMEM, "vote: out of memory ordering %d classes", C);
        else
            s.members[i][0] = i;
    }
    for (int i = 0; i < C && !rc; i++)
        cluster_best(&s, i);
    for (int step = 1; step < C && !rc; step++) {
        int a = -1;
        for (int i = 0; i < C; i++)
            if (s.members[i] && s.best[i] >= 0 &&
                (a < 0 || s.sim[(size_t)i * C + s.best[i]] > s.sim[(size_t)a * C + s.best[a]]))
                a = i;
        int b = s.best[a];
        rc = cluster_merge(&s, a < b ? a : b, a < b ? b : a, err);
    }
    if (!rc)
        memcpy(order, s.members[0], (size_t)C * sizeof *order);
    cluster_free(&s);
    return rc;
}
