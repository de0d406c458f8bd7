/* vote_weights.c -- reads and writes RUN_DIR/ensemble/weights.txt (the format
 * is in vote_weights.h), and temperature scaling, so that vote, predict and
 * export apply fitted weights with one piece of code.
 */
#include "vote/vote_weights.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tempfile.h"

#define WEIGHTS_HINT "HINT: rerun foldline vote RUN_DIR --fit-weights to write it again"

void fl_vote_weights_path(const char *run_dir, char *path, size_t n)
{
    snprintf(path, n, "%s/ensemble/weights.txt", run_dir);
}

void fl_vote_temper(const float *p, int C, double T, double *out)
{
    if (T == 1.0) {
        for (int c = 0; c < C; c++)
            out[c] = (double)p[c];
        return;
    }
    double top = -INFINITY, sum = 0;
    for (int c = 0; c < C; c++)
        if (p[c] > 0 && log((double)p[c]) > top)
            top = log((double)p[c]);
    for (int c = 0; c < C; c++) {
        out[c] = p[c] > 0 ? exp((log((double)p[c]) - top) / T) : 0.0;
        sum += out[c];
    }
    for (int c = 0; c < C; c++)
        out[c] /= sum;
}

const fl_vote_weight *fl_vote_weights_find(const fl_vote_weights *w, const char *model)
{
    for (int m = 0; w->present && m < w->n_models; m++)
        if (!strcmp(w->models[m].name, model))
            return &w->models[m];
    return NULL;
}

/* One "model NAME WEIGHT TEMPERATURE PICKS" line. */
static int weights_parse_model(const char *line, fl_vote_weight *e)
{
    char name[128], tail;
    if (sscanf(line, "model %127s %lf %lf %d %c", name, &e->weight, &e->temperature, &e->picks, &tail) != 4)
        return 0;
    if (strlen(name) >= sizeof e->name || !(e->weight >= 0) || !isfinite(e->weight) || !(e->temperature > 0) ||
        !isfinite(e->temperature) || e->picks < 0)
        return 0;
    snprintf(e->name, sizeof e->name, "%s", name);
    return 1;
}

static fl_code weights_parse(const char *path, FILE *f, fl_vote_weights *w, fl_error *err)
{
    char line[512];
    long no = 0;
    int have_format = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        int version, ok = 1;
        char tail;
        if (!strncmp(line, "format ", 7))
            ok = sscanf(line, "format " FL_WEIGHTS_FORMAT " %d %c", &version, &tail) == 1 &&
                 version == FL_WEIGHTS_VERSION && (have_format = 1);
        else if (!have_format)
            ok = 0;
        else if (!strncmp(line, "metric ", 7))
            ok = (!strcmp(line + 7, "logloss") || !strcmp(line + 7, "acc")) &&
                 snprintf(w->metric, sizeof w->metric, "%s", line + 7) > 0;
        else if (!strncmp(line, "rounds ", 7))
            ok = sscanf(line, "rounds %d %c", &w->rounds, &tail) == 1 && w->rounds > 0;
        else if (!strncmp(line, "temperature ", 12))
            ok = sscanf(line, "temperature %d %c", &w->fitted_temperature, &tail) == 1;
        else if (!strncmp(line, "model ", 6))
            ok = w->n_models < FL_WEIGHTS_MAX_MODELS && weights_parse_model(line, &w->models[w->n_models++]);
        else
            ok = 0;
        if (!ok)
            return fl_fail(err, FL_EINPUT, "%s:%ld: cannot read '%.80s' (expected %s) " WEIGHTS_HINT, path, no, line,
                           have_format ? "metric, rounds, temperature or model NAME WEIGHT TEMPERATURE PICKS"
                                       : "the first line 'format " FL_WEIGHTS_FORMAT " 1'");
    }
    if (ferror(f))
        return fl_fail(err, FL_EIO, "%s: read error (%s)", path, strerror(errno));
    double total = 0;
    for (int m = 0; m < w->n_models; m++)
        total += w->models[m].weight;
    if (!have_format || !w->n_models || !(total > 0))
        return fl_fail(err, FL_EINPUT, "%s: %s " WEIGHTS_HINT, path,
                       !have_format ? "not a weights file (no 'format " FL_WEIGHTS_FORMAT " 1' line)"
                                    : "no model has a positive weight");
    w->present = 1;
    return FL_OK;
}

fl_code fl_vote_weights_read(const char *run_dir, fl_vote_weights *w, fl_error *err)
{
    char path[4200];
    memset(w, 0, sizeof *w);
    fl_vote_weights_path(run_dir, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return FL_OK;
        return fl_fail(err, FL_EIO, "%s: cannot open (%s)", path, strerror(errno));
    }
    fl_code rc = weights_parse(path, f, w, err);
    fclose(f);
    if (rc)
        memset(w, 0, sizeof *w);
    return rc;
}

fl_code fl_vote_weights_write(const char *run_dir, const fl_vote_weights *w, fl_error *err)
{
    char path[4200];
    fl_vote_weights_path(run_dir, path, sizeof path);
    fl_tempfile t;
    fl_code rc = fl_tempfile_begin(&t, path, 1, err);
    if (rc)
        return rc;
    FILE *f = fopen(t.tmp_path, "w");
    int failed = !f;
    if (f) {
        fprintf(f, "# foldline ensemble weights, fitted on the OOF predictions by foldline vote --fit-weights\n");
        fprintf(f, "format " FL_WEIGHTS_FORMAT " %d\nmetric %s\nrounds %d\ntemperature %d\n", FL_WEIGHTS_VERSION,
                w->metric, w->rounds, w->fitted_temperature);
        fprintf(f, "# model NAME WEIGHT TEMPERATURE PICKS\n");
        for (int m = 0; m < w->n_models; m++)
            fprintf(f, "model %s %.17g %.17g %d\n", w->models[m].name, w->models[m].weight, w->models[m].temperature,
                    w->models[m].picks);
    }
    return fl_tempfile_close_stream(&t, f, failed, err);
}
