/* manifest.c -- see manifest.h. Written by hand (not config_write_file) so
 * that weights keep every digit and the file opens with a comment saying who
 * wrote it; read with libconfig so that errors carry the file and line. */
#include "vote/manifest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "base/names.h"
#include "base/tempfile.h"

int fl_manifest_method_valid(const char *method)
{
    return fl_vote_method_parse(method) >= 0;
}

int fl_manifest_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 64 || !strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return 1;
}

/* ---- writing ----------------------------------------------------------------- */

/* A libconfig string literal: quotes, backslashes and control bytes escaped. */
static void manifest_put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            fprintf(f, "\\x%02x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* The shortest decimal that reads back as v, always with a '.' or exponent
 * so that libconfig reads a float. */
static void manifest_put_float(FILE *f, double v)
{
    char buf[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".eE"))
        strcat(buf, ".0");
    fputs(buf, f);
}

static fl_code manifest_check(const char *path, const fl_manifest *m, fl_error *err)
{
    if (m->n_folds < 1 || m->n_folds > 64 || m->n_models < 1 || m->n_models > 32)
        return fl_fail(err, FL_EINTERNAL, "%s: manifest with %d folds and %d models", path, m->n_folds, m->n_models);
    for (int i = 0; i < m->n_models; i++)
        if (!fl_manifest_name_valid(m->models[i].name) || !(m->models[i].weight > 0) || !isfinite(m->models[i].weight))
            return fl_fail(err, FL_EINTERNAL, "%s: model '%s' with weight %g cannot go into a manifest", path,
                           m->models[i].name, m->models[i].weight);
    if (!fl_manifest_method_valid(m->vote_method))
        return fl_fail(err, FL_EINTERNAL, "%s: vote method '%s' cannot go into a manifest", path, m->vote_method);
    return FL_OK;
}

fl_code fl_manifest_write(const char *path, const fl_manifest *m, fl_error *err)
{
    fl_code rc = manifest_check(path, m, err);
    if (rc)
        return rc;
    fl_tempfile t;
    if ((rc = fl_tempfile_begin(&t, path, 1, err)))
        return rc;
    FILE *f = fopen(t.tmp_path, "w");
    if (!f)
        return fl_tempfile_close_stream(&t, NULL, 1, err);
    fputs("# run.cfg -- written by foldline train, read by foldline vote: the data file, the folds and the\n"
          "# models of this run. Each model's predictions are <model>/fold<k>/preds.h5 beside this file.\n",
          f);
    fputs("data_file = ", f);
    manifest_put_string(f, m->data_file);
    fputs(";\nfolds = [", f);
    for (int i = 0; i < m->n_folds; i++)
        fprintf(f, "%s%d", i ? ", " : " ", m->folds[i]);
    fputs(" ];\nmodels = (\n", f);
    for (int i = 0; i < m->n_models; i++) {
        fputs("  { name = ", f);
        manifest_put_string(f, m->models[i].name);
        fputs("; weight = ", f);
        manifest_put_float(f, m->models[i].weight);
        fprintf(f, "; }%s\n", i + 1 < m->n_models ? "," : "");
    }
    fputs(");\nvote_method = ", f);
    manifest_put_string(f, m->vote_method);
    fputs(";\n", f);
    return fl_tempfile_close_stream(&t, f, 0, err);
}

/* ---- reading ----------------------------------------------------------------- */

static fl_code manifest_bad(fl_error *err, const char *path, const config_setting_t *s, const char *what)
{
    return fl_fail(err, FL_EINPUT, "%s:%d: %s HINT: run.cfg is written by foldline train; rerun it or fix the file",
                   path, s ? (int)config_setting_source_line(s) : 0, what);
}

static int manifest_is_number(const config_setting_t *s)
{
    int t = config_setting_type(s);
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64 || t == CONFIG_TYPE_FLOAT;
}

static fl_code manifest_read_folds(const char *path, const config_setting_t *s, fl_manifest *m, fl_error *err)
{
    if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
        return manifest_bad(err, path, s, "'folds' must be a list of fold ids, e.g. [0, 1, 2]");
    int n = config_setting_length(s);
    if (n < 1 || n > 64)
        return manifest_bad(err, path, s, "'folds' must hold 1 to 64 fold ids");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int t = config_setting_type(e);
        long long v = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64 ? config_setting_get_int64(e) : -1;
        if (v < 0 || v > 1000000)
            return manifest_bad(err, path, e, "'folds' holds something other than a fold id >= 0");
        for (int j = 0; j < i; j++)
            if (m->folds[j] == (int)v)
                return manifest_bad(err, path, e, "'folds' names a fold twice");
        m->folds[i] = (int)v;
    }
    m->n_folds = n;
    return FL_OK;
}

static fl_code manifest_read_model(const char *path, const config_setting_t *g, fl_manifest *m, fl_error *err)
{
    char what[160];
    int i = m->n_models;
    if (!config_setting_is_group(g))
        return manifest_bad(err, path, g, "each entry of 'models' must be a group { name = \"...\"; weight = 1.0; }");
    m->models[i].weight = 1.0;
    m->models[i].name[0] = '\0';
    for (int k = 0; k < config_setting_length(g); k++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)k);
        const char *key = config_setting_name(s);
        if (!strcmp(key, "name")) {
            const char *v = config_setting_get_string(s);
            if (!v || !fl_manifest_name_valid(v))
                return manifest_bad(err, path, s, "model 'name' must be 1 to 63 letters, digits, '_', '-' or '.'");
            snprintf(m->models[i].name, sizeof m->models[i].name, "%s", v);
        } else if (!strcmp(key, "weight")) {
            double w = NAN;
            if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
                w = config_setting_get_float(s);
            else if (manifest_is_number(s))
                w = (double)config_setting_get_int64(s);
            if (!(w > 0) || !isfinite(w))
                return manifest_bad(err, path, s, "model 'weight' must be a number > 0");
            m->models[i].weight = w;
        } else {
            snprintf(what, sizeof what, "unknown key 'models.[%d].%s' (a model has name and weight)", i, key);
            return manifest_bad(err, path, s, what);
        }
    }
    if (!m->models[i].name[0])
        return manifest_bad(err, path, g, "a model has no 'name'");
    for (int j = 0; j < i; j++)
        if (!strcmp(m->models[j].name, m->models[i].name)) {
            snprintf(what, sizeof what, "model '%s' is listed twice", m->models[i].name);
            return manifest_bad(err, path, g, what);
        }
    m->n_models++;
    return FL_OK;
}

static fl_code manifest_read_root(const char *path, const config_setting_t *root, fl_manifest *m, fl_error *err)
{
    char what[160];
    fl_code rc;
    for (int k = 0; k < config_setting_length(root); k++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)k);
        const char *key = config_setting_name(s);
        if (!strcmp(key, "data_file") || !strcmp(key, "vote_method")) {
            const char *v = config_setting_get_string(s);
            int is_data = key[0] == 'd';
            if (!v || !*v) {
                snprintf(what, sizeof what, "'%s' must be a non-empty string", key);
                return manifest_bad(err, path, s, what);
            }
            if (is_data && strlen(v) >= sizeof m->data_file)
                return manifest_bad(err, path, s, "'data_file' is too long");
            if (!is_data && !fl_manifest_method_valid(v)) {
                char list[80];
                snprintf(what, sizeof what, "'vote_method' must be %s", fl_vote_method_list(list, sizeof list));
                return manifest_bad(err, path, s, what);
            }
            if (is_data)
                snprintf(m->data_file, sizeof m->data_file, "%s", v);
            else
                snprintf(m->vote_method, sizeof m->vote_method, "%s", v);
        } else if (!strcmp(key, "folds")) {
            if ((rc = manifest_read_folds(path, s, m, err)))
                return rc;
        } else if (!strcmp(key, "models")) {
            if (!config_setting_is_list(s) && !config_setting_is_array(s))
                return manifest_bad(err, path, s, "'models' must be a list ( { name = ...; }, ... )");
            int n = config_setting_length(s);
            if (n < 1 || n > 32)
                return manifest_bad(err, path, s, "'models' must hold 1 to 32 models");
            for (int i = 0; i < n; i++)
                if ((rc = manifest_read_model(path, config_setting_get_elem(s, (unsigned)i), m, err)))
                    return rc;
        } else {
            snprintf(what, sizeof what, "unknown key '%s' (run.cfg has data_file, folds, models, vote_method)", key);
            return manifest_bad(err, path, s, what);
        }
    }
    const char *missing = !m->data_file[0] ? "data_file" : !m->n_folds ? "folds" : !m->n_models ? "models" : NULL;
    if (missing)
        return fl_fail(err, FL_EINPUT,
                       "%s: required key '%s' is missing HINT: run.cfg is written by foldline train; rerun it", path,
                       missing);
    return FL_OK;
}

fl_code fl_manifest_read(const char *path, fl_manifest *m, fl_error *err)
{
    memset(m, 0, sizeof *m);
    snprintf(m->vote_method, sizeof m->vote_method, "%s", fl_vote_method_name(FL_VOTE_SOFT_SOFT));
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, FL_EINPUT,
                       "%s: cannot read the run manifest (%s) HINT: give the run directory that foldline train wrote "
                       "(it holds run.cfg)",
                       path, strerror(errno));
    config_t cfg;
    config_init(&cfg);
    fl_code rc = FL_OK;
    if (config_read(&cfg, f) != CONFIG_TRUE)
        rc = fl_fail(err, FL_EINPUT, "%s:%d: %s HINT: run.cfg is libconfig syntax written by foldline train", path,
                     config_error_line(&cfg), config_error_text(&cfg));
    else
        rc = manifest_read_root(path, config_root_setting(&cfg), m, err);
    config_destroy(&cfg);
    fclose(f);
    return rc;
}
