/* run.c -- see run.h. */
#include "trainer/run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset/datafile.h"
#include "vote/vote_sum.h"
#include "vote/vote_weights.h"
#include "trainer/order.h"
#include "trainer/settings.h"

#define RUN_HINT_TRAIN                                                                                                 \
    "HINT: finish training (rerun foldline train CONFIG: it skips the folds already done), or leave the model out "    \
    "with --models"

static void run_fold_file(const fl_run *run, const char *model, int fold, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s/fold%d/%s", run->dir, model, fold, file);
}

void fl_run_checkpoint(const fl_run *run, int m, int i, char *buf, size_t n)
{
    char file[32];
    snprintf(file, sizeof file, "%s.pt", run->models[m].predict_with);
    run_fold_file(run, run->models[m].name, run->man.folds[i], file, buf, n);
}

/* ---- settings.txt ------------------------------------------------------------ */

static fl_code run_key(const char *text, const char *path, const char *model, const char *key, char *val, size_t n,
                       fl_error *err)
{
    char full[FL_NAME_MAX + 64];
    if (model)
        snprintf(full, sizeof full, "models.%s.%s", model, key);
    else
        snprintf(full, sizeof full, "%s", key);
    if (!fl_settings_value(text, full, val, n))
        return fl_fail(
            err, FL_EINPUT,
            "%s: no line '%s = ...' HINT: the file is written by foldline train; retrain the fold if it was edited",
            path, full);
    return FL_OK;
}

static fl_code run_bad(const char *path, const char *key, const char *val, fl_error *err)
{
    return fl_fail(
        err, FL_EINPUT,
        "%s: cannot read %s = %s HINT: the file is written by foldline train; retrain the fold if it was edited", path,
        key, val);
}

/* Up to 3 numbers of a data.mean / data.std line into v (0.5 when absent),
 * one per channel as the trainer expands them. */
static fl_code run_channels(const char *text, const char *path, const char *key, int channels, float *v, fl_error *err)
{
    char val[256] = "";
    double d[3];
    int n = 0, used = 0;
    if (fl_settings_value(text, key, val, sizeof val))
        for (const char *p = val; n < 3 && sscanf(p, "%lf%n", &d[n], &used) == 1; p += used)
            n++;
    if (n != 0 && n != 1 && n != channels)
        return run_bad(path, key, val, err);
    for (int c = 0; c < 3; c++)
        v[c] = (float)(n == 0 ? 0.5 : d[n == 1 ? 0 : c]);
    return FL_OK;
}

static fl_code run_parse_settings(const char *text, const char *path, fl_run_model *m, fl_error *err)
{
    char v[FL_PATH_MAX + 128];
    long long n_train, n_test, seed;
    int folds;
    unsigned run_seed;
    fl_code rc;
    const char *k = m->name;
    if ((rc = run_key(text, path, NULL, "data", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%lld train rows, %lld test rows, %d classes, %dx%dx%d, %d folds (seed %lld)", &n_train, &n_test,
               &m->num_classes, &m->channels, &m->height, &m->width, &folds, &seed) != 8)
        return run_bad(path, "data", v, err);
    if ((rc = run_channels(text, path, "data.mean", m->channels, m->mean, err)) ||
        (rc = run_channels(text, path, "data.std", m->channels, m->std, err)) ||
        (rc = run_key(text, path, NULL, "run.seed", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%u", &run_seed) != 1)
        return run_bad(path, "run.seed", v, err);
    m->backbone_seed = fl_order_model_seed(run_seed, k);
    if ((rc = run_key(text, path, k, "backbone", v, sizeof v, err)))
        return rc;
    if (!strncmp(v, FL_TORCHSCRIPT_PREFIX, strlen(FL_TORCHSCRIPT_PREFIX))) {
        if ((rc = fl_settings_module_check(k, v, err)))
            return fl_error_prefix(err, "%s", path);
        *strstr(v, " bytes ") = '\0'; /* checked: it has one; the path is what precedes the last */
    }
    snprintf(m->backbone, sizeof m->backbone, "%s", v);
    if ((rc = run_key(text, path, k, "freeze_backbone", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%d", &m->frozen) != 1)
        return run_bad(path, "freeze_backbone", v, err);
    if ((rc = run_key(text, path, k, "backbone_lr_scale", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%lf", &m->backbone_lr_scale) != 1)
        return run_bad(path, "backbone_lr_scale", v, err);
    if ((rc = run_key(text, path, k, "head", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%15s hidden %d act %7s", m->head_type, &m->head_hidden, m->head_act) != 3)
        return run_bad(path, "head", v, err);
    if ((rc = run_key(text, path, k, "batch", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%d", &m->batch) != 1 || m->batch < 1)
        return run_bad(path, "batch", v, err);
    if ((rc = run_key(text, path, k, "optimizer", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%7s", m->optimizer) != 1)
        return run_bad(path, "optimizer", v, err);
    if ((rc = run_key(text, path, k, "predict_with", v, sizeof v, err)))
        return rc;
    if (sscanf(v, "%15s", m->predict_with) != 1)
        return run_bad(path, "predict_with", v, err);
    char key[FL_NAME_MAX + 16];
    snprintf(key, sizeof key, "models.%s.tta", k);
    m->n_tta = 0;
    if (fl_settings_value(text, key, v, sizeof v)) {
        char word[16];
        int used = 0;
        for (const char *p = v; m->n_tta < FL_MAX_TTA && sscanf(p, "%15s%n", word, &used) == 1; p += used) {
            if (strcmp(word, "hflip") && strcmp(word, "vflip"))
                return run_bad(path, key, v, err);
            m->tta[m->n_tta++] = !strcmp(word, "hflip") ? FL_TTA_HFLIP : FL_TTA_VFLIP;
        }
    }
    return FL_OK;
}

static fl_code run_read_text(const char *path, char *buf, size_t n, fl_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fl_fail(err, FL_EIO, "cannot read %s (%s)", path, strerror(errno));
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    int bad = ferror(f);
    fclose(f);
    return bad ? fl_fail(err, FL_EIO, "cannot read %s", path) : FL_OK;
}

/* ---- the run ------------------------------------------------------------------- */

/* Which of run.cfg's models list names; every name must be one. */
static fl_code run_choose(const fl_run *run, const char *list, int *chosen, fl_error *err)
{
    const fl_manifest *man = &run->man;
    char names[2048] = "";
    size_t used = 0;
    for (int m = 0; m < man->n_models && used < sizeof names; m++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", m ? ", " : "", man->models[m].name);
    for (int m = 0; m < man->n_models; m++)
        chosen[m] = list == NULL;
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int found = 0;
        for (int m = 0; m < man->n_models; m++)
            if (strlen(man->models[m].name) == n && !strncmp(man->models[m].name, p, n))
                found = chosen[m] = 1;
        if (!found)
            return fl_fail(err, FL_EUSAGE,
                           "--models: '%.*s' is not a model of %s/run.cfg HINT: the run's models are: %s", (int)n, p,
                           run->dir, names);
        p = e ? e + 1 : p + n;
    }
    return FL_OK;
}

static fl_code run_check_folds(const fl_run *run, fl_error *err)
{
    char path[FL_PATH_MAX + 256], list[700] = "";
    size_t used = 0;
    int missing = 0, total = 0;
    for (int m = 0; m < run->n_models; m++)
        for (int i = 0; i < run->man.n_folds; i++) {
            char ckpt[32];
            snprintf(ckpt, sizeof ckpt, "%s.pt", run->models[m].predict_with);
            const char *files[3] = {"settings.txt", "preds.h5", ckpt};
            total++;
            for (int f = 0; f < 3; f++) {
                struct stat st;
                run_fold_file(run, run->models[m].name, run->man.folds[i], files[f], path, sizeof path);
                if (stat(path, &st) == 0)
                    continue;
                if (missing < 3 && used < sizeof list)
                    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", missing ? ", " : "", path);
                missing++;
                break;
            }
        }
    if (missing)
        return fl_fail(
            err, FL_EINPUT,
            "%s: the run has missing folds: %d of %d model x fold jobs are not complete: %s%s " RUN_HINT_TRAIN,
            run->dir, missing, total, list, missing > 3 ? ", ..." : "");
    return FL_OK;
}

/* Model m from each fold's settings.txt: the folds must agree but for "fold". */
static fl_code run_read_model(fl_run *run, int m, fl_error *err)
{
    fl_run_model *rm = &run->models[m];
    char path[FL_PATH_MAX + 256];
    char *text = malloc(FL_SETTINGS_MAX);
    if (!text)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = FL_OK;
    for (int i = 0; !rc && i < run->man.n_folds; i++) {
        fl_run_model got = *rm;
        run_fold_file(run, rm->name, run->man.folds[i], "settings.txt", path, sizeof path);
        rc = run_read_text(path, text, FL_SETTINGS_MAX, err);
        if (!rc)
            rc = run_parse_settings(text, path, i ? &got : rm, err);
        if (!rc && i && memcmp(&got, rm, sizeof got))
            rc = fl_fail(err, FL_EINPUT,
                         "%s: model %s's folds were trained with different settings (this fold's differ from fold "
                         "%d's) HINT: retrain the model's folds with one config",
                         path, rm->name, run->man.folds[0]);
    }
    free(text);
    if (!rc && rm->num_classes != run->num_classes)
        rc = fl_fail(err, FL_EINPUT,
                     "%s: model %s has %d classes, the data file %s has %d HINT: the run's data file was replaced; put "
                     "back the one it trained on",
                     run->dir, rm->name, rm->num_classes, run->man.data_file, run->num_classes);
    return rc;
}

static fl_code run_read_classes(fl_run *run, fl_error *err)
{
    fl_h5_quiet();
    fl_datafile *df;
    fl_code rc = fl_datafile_open(run->man.data_file, &df, err);
    if (rc)
        return fl_error_prefix(err, "%s/run.cfg names the data file", run->dir);
    const fl_data_info *in = fl_datafile_info(df);
    run->num_classes = in->num_classes;
    run->classes = calloc((size_t)in->num_classes, sizeof *run->classes);
    for (int c = 0; run->classes && c < in->num_classes; c++)
        if (!(run->classes[c] = strdup(in->classes[c])))
            rc = fl_fail(err, FL_ENOMEM, "out of memory");
    if (!run->classes)
        rc = fl_fail(err, FL_ENOMEM, "out of memory");
    fl_datafile_close(df);
    return rc;
}

/* ---- weights ------------------------------------------------------------------ */

/* weights.txt's weights and temperatures for the chosen models when they
 * apply (see run.h), and the line that says which weights the vote uses. */
static fl_code run_weights(fl_run *run, const char *models, const char *method, fl_error *err)
{
    char path[FL_PATH_MAX + 64], why[160] = "";
    fl_vote_weights_path(run->dir, path, sizeof path);
    struct stat st;
    int present = stat(path, &st) == 0;
    if (present && method && strcmp(method, "soft-soft"))
        snprintf(why, sizeof why, "--method %s", method);
    else if (present && run->n_models != run->man.n_models)
        snprintf(why, sizeof why, "--models %s", models);
    if (present && !why[0]) {
        fl_vote_weights w;
        fl_code rc = fl_vote_weights_read(run->dir, &w, err);
        if (rc)
            return rc;
        int named = 0;
        for (int m = 0; m < w.n_models; m++)
            for (int q = 0; q < run->n_models; q++)
                named += !strcmp(w.models[m].name, run->models[q].name);
        if (!w.present || named != run->n_models || w.n_models != run->n_models)
            return fl_fail(err, FL_EINPUT,
                           "%s: names other models than %s/run.cfg (%d model lines, %d of the run's %d models) HINT: "
                           "rerun foldline vote RUN_DIR --fit-weights to fit the run's models",
                           path, run->dir, w.n_models, named, run->n_models);
        run->fitted = 1;
        snprintf(run->method, sizeof run->method, "soft-soft");
        size_t used = (size_t)snprintf(run->weights_line, sizeof run->weights_line, "fitted, from %s (by %s%s):", path,
                                       w.metric, w.fitted_temperature ? ", with temperatures" : "");
        for (int q = 0; q < run->n_models; q++) {
            const fl_vote_weight *e = fl_vote_weights_find(&w, run->models[q].name);
            run->models[q].weight = e->weight;
            run->models[q].temperature = e->temperature;
            if (used < sizeof run->weights_line)
                used += (size_t)snprintf(run->weights_line + used, sizeof run->weights_line - used,
                                         "%s %s %.4g (T %.4g)", q ? "," : "", e->name, e->weight, e->temperature);
        }
        return FL_OK;
    }
    size_t used = (size_t)snprintf(run->weights_line, sizeof run->weights_line, "run.cfg's:");
    for (int q = 0; q < run->n_models && used < sizeof run->weights_line; q++)
        used += (size_t)snprintf(run->weights_line + used, sizeof run->weights_line - used, "%s %s %g", q ? "," : "",
                                 run->models[q].name, run->models[q].weight);
    if (why[0] && used < sizeof run->weights_line)
        snprintf(run->weights_line + used, sizeof run->weights_line - used,
                 " (not %s's fitted weights: they weigh the soft-soft vote of all the run's models, not %s)", path,
                 why);
    return FL_OK;
}

fl_code fl_run_open(const char *dir, const char *models, const char *method, fl_run *run, fl_error *err)
{
    memset(run, 0, sizeof *run);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fl_fail(err, FL_EINPUT,
                       "%s: not a directory HINT: give the run directory foldline train wrote (RUN_DIR holds run.cfg)",
                       dir);
    if (strlen(dir) + 300 >= sizeof run->dir)
        return fl_fail(err, FL_EINPUT, "%s: path too long", dir);
    snprintf(run->dir, sizeof run->dir, "%s", dir);
    char path[FL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/run.cfg", dir);
    fl_code rc = fl_manifest_read(path, &run->man, err);
    if (rc)
        return rc;
    snprintf(run->method, sizeof run->method, "%s", method ? method : run->man.vote_method);
    if (!fl_manifest_method_valid(run->method))
        return fl_fail(err, FL_EUSAGE, "unknown method '%s' HINT: use soft, hard, soft-soft, soft-hard or hard-hard",
                       run->method);
    int chosen[FL_MAX_MODELS];
    if ((rc = run_choose(run, models, chosen, err)))
        return rc;
    for (int m = 0; m < run->man.n_models; m++)
        if (chosen[m]) {
            fl_run_model *rm = &run->models[run->n_models++];
            snprintf(rm->name, sizeof rm->name, "%s", run->man.models[m].name);
            rm->weight = run->man.models[m].weight;
            rm->temperature = 1.0;
            snprintf(rm->predict_with, sizeof rm->predict_with, "best_acc");
        }
    if ((rc = run_weights(run, models, method, err)))
        return rc;
    if (fl_vote_method_is_per_model(run->method) && run->n_models != 1)
        return fl_fail(err, FL_EUSAGE,
                       "method %s%s votes within one model, and %d models are chosen HINT: add --models NAME with one "
                       "model, or use soft-soft, soft-hard, hard-hard",
                       run->method, method ? "" : " (run.cfg's vote_method)", run->n_models);
    if ((rc = run_read_classes(run, err)))
        return rc;
    /* predict_with comes from the settings: read the first fold's before checking for the checkpoints. */
    for (int m = 0; m < run->n_models; m++) {
        char *text = malloc(FL_SETTINGS_MAX);
        if (!text)
            return fl_fail(err, FL_ENOMEM, "out of memory");
        run_fold_file(run, run->models[m].name, run->man.folds[0], "settings.txt", path, sizeof path);
        char v[64];
        if (!run_read_text(path, text, FL_SETTINGS_MAX, err)) {
            char key[FL_NAME_MAX + 32];
            snprintf(key, sizeof key, "models.%s.predict_with", run->models[m].name);
            if (fl_settings_value(text, key, v, sizeof v))
                snprintf(run->models[m].predict_with, sizeof run->models[m].predict_with, "%s", v);
        }
        free(text);
    }
    if ((rc = run_check_folds(run, err)))
        return rc;
    for (int m = 0; !rc && m < run->n_models; m++)
        rc = run_read_model(run, m, err);
    return rc;
}

void fl_run_free(fl_run *run)
{
    for (int c = 0; run->classes && c < run->num_classes; c++)
        free(run->classes[c]);
    free(run->classes);
    run->classes = NULL;
}

int fl_run_inputs(const fl_run *run, char **paths, int max)
{
    int n = 0;
    char path[FL_PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/run.cfg", run->dir);
    if (n < max)
        paths[n++] = strdup(path);
    if (n < max)
        paths[n++] = strdup(run->man.data_file);
    fl_vote_weights_path(run->dir, path, sizeof path);
    if (run->fitted && n < max)
        paths[n++] = strdup(path);
    for (int m = 0; m < run->n_models; m++)
        for (int i = 0; i < run->man.n_folds; i++) {
            static const char *const files[] = {"settings.txt", "preds.h5"};
            for (int f = 0; f < 2 && n < max; f++) {
                run_fold_file(run, run->models[m].name, run->man.folds[i], files[f], path, sizeof path);
                paths[n++] = strdup(path);
            }
            if (n < max) {
                fl_run_checkpoint(run, m, i, path, sizeof path);
                paths[n++] = strdup(path);
            }
            if (!strncmp(run->models[m].backbone, FL_TORCHSCRIPT_PREFIX, strlen(FL_TORCHSCRIPT_PREFIX)) && n < max)
                paths[n++] = strdup(run->models[m].backbone + strlen(FL_TORCHSCRIPT_PREFIX));
        }
    int k = 0; /* drop failed copies */
    for (int i = 0; i < n; i++)
        if (paths[i])
            paths[k++] = paths[i];
    return k;
}

void fl_run_free_paths(char **paths, int n)
{
    for (int i = 0; i < n; i++)
        free(paths[i]);
}
