/* vote.c -- fl_vote_run: read a run directory, check every predictions file
 * against the data file, and compute every vote (see vote.h for the methods).
 *
 * Predictions are streamed: one preds.h5 is in memory at a time, and what the
 * votes need is accumulated in double precision as it is read:
 *   test rows:    vote/vote_sum.h's sums (M, C), which `foldline predict`
 *                 shares: per model, the sum of its folds' probabilities and
 *                 the count of their argmaxes; across models, the weighted
 *                 sums of those (soft-soft, hard-hard) and the weighted
 *                 count of the models' soft argmaxes (soft-hard);
 *   OOF rows:     the weighted sum of OOF probabilities (N, C).
 * Argmaxes of sums equal argmaxes of means (one positive scale), and sums of
 * the same terms are what an exact tie needs to stay exact. Ties go to the
 * lowest class id everywhere (vote_argmax_* take the first maximum).
 */
#include "vote/vote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/names.h"
#include "dataset/datafile.h"
#include "dataset/preds.h"
#include "vote/vote_internal.h"
#include "vote/vote_sum.h"
#include "vote/vote_weights.h"

#define VOTE_HINT_FOLDS "HINT: the fold was trained with another fold assignment than %s's; retrain it"
#define VOTE_HINT_TRAIN "HINT: run or finish training (foldline train CONFIG skips the folds already done)"

static void vote_preds_path(const vote_state *v, const char *model, int fold, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/fold%d/preds.h5", v->opt->run_dir, model, fold);
}

/* ---- the run and its method ---------------------------------------------------- */

static fl_code vote_load_manifest(vote_state *v, fl_error *err)
{
    const char *dir = v->opt->run_dir;
    struct stat st;
    if (stat(dir, &st) != 0)
        return fl_fail(err, errno == ENOENT ? FL_EUSAGE : FL_EIO,
                       "%s: %s HINT: give the run directory foldline train wrote (run.out_dir/run.name, it holds "
                       "run.cfg)",
                       dir, errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fl_fail(err, FL_EUSAGE,
                       "%s: not a directory HINT: give the run directory foldline train wrote (RUN_DIR holds run.cfg)",
                       dir);
    if (strlen(dir) + 200 >= sizeof v->manifest_path)
        return fl_fail(err, FL_EINPUT, "%s: path too long", dir);
    snprintf(v->manifest_path, sizeof v->manifest_path, "%s/run.cfg", dir);
    snprintf(v->report_path, sizeof v->report_path, "%s/ensemble/report.md", dir);
    fl_code rc = fl_manifest_read(v->manifest_path, &v->man, err);
    if (rc)
        return rc;
    v->n_models = v->man.n_models;
    for (int m = 0; m < v->n_models; m++) {
        v->models[m].name = v->man.models[m].name;
        v->models[m].weight = v->man.models[m].weight;
    }
    return FL_OK;
}

static void vote_model_list(const vote_state *v, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int m = 0; m < v->n_models && used < n; m++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", m ? ", " : "", v->models[m].name);
}

/* Which method (and for soft/hard, which model) writes the submission:
 * checked before any file is read, since it needs only the manifest. */
static fl_code vote_choose(vote_state *v, const char **method, int *model, fl_error *err)
{
    const fl_vote_options *o = v->opt;
    char names[2048];
    vote_model_list(v, names, sizeof names);
    *method = o->method ? o->method : v->man.vote_method;
    *model = -1;
    if (o->fit_weights) {
        /* the fitted weights weigh the soft-soft vote, and the submission is that vote */
        if ((o->method && fl_vote_method_parse(o->method) != FL_VOTE_SOFT_SOFT) || o->model)
            return fl_fail(err, FL_EUSAGE,
                           "vote: --fit-weights fits the weights of the soft-soft vote, and the submission is that "
                           "vote; it does not go with %s %s HINT: drop %s, or drop --fit-weights",
                           o->model ? "--model" : "--method", o->model ? o->model : o->method,
                           o->model ? "--model" : "--method");
        if (o->fit_metric && fl_fit_metric_parse(o->fit_metric) < 0) {
            char names[64];
            fl_names_join(names, sizeof names, fl_fit_metric_names, NULL, 0, "", ", ", " or ");
            return fl_fail(err, FL_EUSAGE, "vote: unknown --fit-metric '%s' HINT: use %s", o->fit_metric, names);
        }
        *method = "fitted";
        return FL_OK;
    }
    char list[80];
    if (!fl_manifest_method_valid(*method))
        return fl_fail(err, FL_EUSAGE, "vote: unknown method '%s' HINT: use %s", *method,
                       fl_vote_method_list(list, sizeof list));
    int per_model = fl_vote_method_is_per_model(*method);
    if (o->model && !per_model)
        return fl_fail(
            err, FL_EUSAGE,
            "vote: --model applies to the methods soft and hard, not %s HINT: add --method soft or --method hard",
            *method);
    if (!per_model)
        return FL_OK;
    if (o->model) {
        for (int m = 0; m < v->n_models; m++)
            if (!strcmp(v->models[m].name, o->model))
                *model = m;
        if (*model < 0)
            return fl_fail(err, FL_EUSAGE, "vote: model '%s' is not in %s HINT: the run's models are: %s", o->model,
                           v->manifest_path, names);
        return FL_OK;
    }
    if (v->n_models > 1)
        return fl_fail(err, FL_EUSAGE,
                       "vote: method %s%s votes within one model, and the run has %d models HINT: add --model NAME "
                       "with one of: %s (or use soft-soft, soft-hard, hard-hard)",
                       *method, o->method ? "" : " (run.cfg's vote_method)", v->n_models, names);
    *model = 0;
    return FL_OK;
}

/* ---- the data file ------------------------------------------------------------- */

static fl_code vote_read_rows(vote_state *v, fl_datafile *df, fl_error *err)
{
    size_t n = (size_t)(v->n_train ? v->n_train : 1), mt = (size_t)(v->n_test ? v->n_test : 1);
    v->train_labels = malloc(n * sizeof *v->train_labels);
    v->train_fold = malloc(n * sizeof *v->train_fold);
    if (!v->train_labels || !v->train_fold)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory for %lld train rows", v->data_path, (long long)v->n_train);
    fl_code rc;
    if ((rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, v->train_labels, err)) ||
        (rc = fl_datafile_read_folds(df, v->train_fold, err)) ||
        (rc = fl_datafile_read_paths(df, FL_SPLIT_TEST, &v->test_paths, err)) ||
        (rc = fl_datafile_read_paths(df, FL_SPLIT_TRAIN, &v->train_paths, err)) ||
        (rc = fl_datafile_fingerprint(df, v->fingerprint, err)))
        return rc;
    if (fl_datafile_info(df)->has_test_labels && !v->opt->labels_csv) {
        if (!(v->test_labels = malloc(mt * sizeof *v->test_labels)))
            return fl_fail(err, FL_ENOMEM, "%s: out of memory", v->data_path);
        if ((rc = fl_datafile_read_labels(df, FL_SPLIT_TEST, v->test_labels, err)))
            return rc;
        snprintf(v->labels_source, sizeof v->labels_source, "/test/labels of the data file");
    }
    for (int i = 0; i < v->man.n_folds; i++)
        if (v->man.folds[i] >= v->data_folds)
            return fl_fail(err, FL_EINPUT,
                           "%s: fold %d is not a fold of %s (it has folds 0..%d) HINT: vote with the data file the run "
                           "trained on (--data FILE.h5)",
                           v->manifest_path, v->man.folds[i], v->data_path, v->data_folds - 1);
    return FL_OK;
}

static fl_code vote_load_data(vote_state *v, fl_error *err)
{
    const char *path = v->opt->data_file ? v->opt->data_file : v->man.data_file;
    snprintf(v->data_path, sizeof v->data_path, "%s", path);
    fl_datafile *df;
    struct stat st;
    if (!v->opt->data_file && stat(path, &st) != 0 && errno == ENOENT)
        return fl_fail(err, FL_EINPUT,
                       "%s names the data file %s, which does not exist (moved or deleted?) HINT: pass its new path: "
                       "foldline vote %s --data NEW_PATH",
                       v->manifest_path, path, v->opt->run_dir);
    fl_code rc = fl_datafile_open(path, &df, err);
    if (rc) {
        if (!v->opt->data_file)
            fl_error_prefix(err, "%s names the data file", v->manifest_path);
        return rc;
    }
    const fl_data_info *in = fl_datafile_info(df);
    v->n_train = in->n_train;
    v->n_test = in->n_test;
    v->num_classes = in->num_classes;
    v->data_folds = in->folds;
    v->class_names = calloc((size_t)(v->num_classes ? v->num_classes : 1), sizeof *v->class_names);
    for (int c = 0; v->class_names && c < v->num_classes; c++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "class %d", c);
        v->class_names[c] = strdup(in->classes && in->classes[c] ? in->classes[c] : fallback);
        if (!v->class_names[c]) {
            fl_datafile_close(df);
            return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
        }
    }
    rc = v->class_names ? vote_read_rows(v, df, err) : fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    fl_datafile_close(df);
    if (!rc && v->opt->labels_csv) {
        rc = vote_labels_from_csv(v, v->opt->labels_csv, err);
        snprintf(v->labels_source, sizeof v->labels_source, "%s", v->opt->labels_csv);
    }
    return rc;
}

/* ---- the predictions files ----------------------------------------------------- */

/* Every model x fold file exists, before any is read: a run with holes is
 * named as such, with as many of the missing paths as fit. */
static fl_code vote_check_complete(const vote_state *v, fl_error *err)
{
    char path[4400], list[700] = "";
    int missing = 0, total = v->n_models * v->man.n_folds;
    size_t used = 0;
    for (int m = 0; m < v->n_models; m++)
        for (int i = 0; i < v->man.n_folds; i++) {
            struct stat st;
            vote_preds_path(v, v->models[m].name, v->man.folds[i], path, sizeof path);
            if (stat(path, &st) == 0)
                continue;
            if (missing < 3 && used < sizeof list)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", missing ? ", " : "", path);
            missing++;
        }
    if (missing)
        return fl_fail(err, FL_EINPUT,
                       "%s: the run has missing folds: %d of %d predictions files are absent: %s%s " VOTE_HINT_TRAIN,
                       v->opt->run_dir, missing, total, list, missing > 3 ? ", ..." : "");
    return FL_OK;
}

/* What only the data file can tell about a predictions file. */
static fl_code vote_check_preds(const vote_state *v, const char *path, const char *model, int fold, const fl_preds *p,
                                fl_error *err)
{
    if (p->num_classes != v->num_classes)
        return fl_fail(err, FL_EINPUT,
                       "%s: predictions of %d classes, the data file %s has %d HINT: the fold was trained on another "
                       "data file; vote with that one (--data) or retrain the fold",
                       path, p->num_classes, v->data_path, v->num_classes);
    if (strcmp(p->test_fingerprint, v->fingerprint) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: predictions of a different test set (test fingerprint %s, the data file %s has %s) HINT: "
                       "vote with the data file the run trained on (--data) or retrain the fold",
                       path, p->test_fingerprint, v->data_path, v->fingerprint);
    if (p->n_test != v->n_test)
        return fl_fail(err, FL_EINPUT, "%s: /test/probs has %lld rows, the data file %s has %lld test rows", path,
                       (long long)p->n_test, v->data_path, (long long)v->n_test);
    if (p->fold != fold || strcmp(p->model, model) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: the file says model '%s' fold %d, its place says model '%s' fold %d HINT: predictions "
                       "files must not be moved or copied between folds",
                       path, p->model, p->fold, model, fold);
    int64_t i = 0, expected = 0;
    for (int64_t r = 0; r < v->n_train; r++) {
        if (v->train_fold[r] != fold)
            continue;
        if (i >= p->n_oof)
            return fl_fail(err, FL_EINPUT,
                           "%s: /oof/index lacks train row %lld of fold %d (it has %lld rows) " VOTE_HINT_FOLDS, path,
                           (long long)r, fold, (long long)p->n_oof, v->data_path);
        if (p->oof_index[i] != r)
            return fl_fail(err, FL_EINPUT,
                           "%s: /oof/index is not the train rows of fold %d: at position %lld it has row %d, the "
                           "fold's next row is %lld " VOTE_HINT_FOLDS,
                           path, fold, (long long)i, p->oof_index[i], (long long)r, v->data_path);
        i++;
        expected++;
    }
    if (p->n_oof != expected)
        return fl_fail(err, FL_EINPUT,
                       "%s: /oof/index has %lld rows, fold %d has %lld: row %d is not in the fold " VOTE_HINT_FOLDS,
                       path, (long long)p->n_oof, fold, (long long)expected, p->oof_index[expected], v->data_path);
    return FL_OK;
}

/* Accumulators, all (rows, C) doubles; see the file comment. */
typedef struct {
    fl_vote_sums test; /* (M, C) each: per model and across models (vote/vote_sum.h) */
    double *oof_sum;   /* (N, C) weighted OOF probabilities */
    double *row;       /* (C) scratch */
} vote_sums;

static void vote_add_fold(vote_state *v, vote_model *vm, vote_fold *vf, const fl_preds *p, vote_sums *s)
{
    const int C = v->num_classes;
    for (int64_t i = 0; i < p->n_oof; i++) {
        const float *row = p->oof_probs + (size_t)i * C;
        int32_t r = p->oof_index[i], a = vote_argmax_f(row, C);
        double *sum = s->oof_sum + (size_t)r * C;
        vm->oof_pred[r] = a;
        vf->oof_correct += a == v->train_labels[r];
        vote_calib_add_f(&vm->cal_oof, row, C, v->train_labels[r]);
        if (vm->oof_probs)
            memcpy(vm->oof_probs + (size_t)r * C, row, (size_t)C * sizeof *row);
        for (int c = 0; c < C; c++)
            sum[c] += vm->weight * (double)row[c];
    }
    vf->oof_rows = p->n_oof;
    fl_vote_sums_add_fold(&s->test, p->test_probs, C);
    for (int64_t i = 0; v->test_labels && i < p->n_test; i++)
        vf->test_correct += vote_argmax_f(p->test_probs + (size_t)i * C, C) == v->test_labels[i];
}

static fl_code vote_read_model(vote_state *v, int m, vote_sums *s, fl_error *err)
{
    vote_model *vm = &v->models[m];
    const int C = v->num_classes;
    char path[4400];
    vm->oof_pred = malloc((size_t)(v->n_train ? v->n_train : 1) * sizeof *vm->oof_pred);
    vm->test_soft = malloc((size_t)(v->n_test ? v->n_test : 1) * sizeof *vm->test_soft);
    vm->test_hard = malloc((size_t)(v->n_test ? v->n_test : 1) * sizeof *vm->test_hard);
    if (v->opt->fit_weights)
        vm->oof_probs = calloc((size_t)(v->n_train ? v->n_train : 1) * C, sizeof *vm->oof_probs);
    if (!vm->oof_pred || !vm->test_soft || !vm->test_hard || (v->opt->fit_weights && !vm->oof_probs))
        return fl_fail(err, FL_ENOMEM, "vote: out of memory for model %s", vm->name);
    for (int64_t r = 0; r < v->n_train; r++)
        vm->oof_pred[r] = -1;
    fl_vote_sums_model_begin(&s->test);
    for (int i = 0; i < v->man.n_folds; i++) {
        fl_preds p;
        vote_fold *vf = &vm->folds[i];
        vf->fold = v->man.folds[i];
        vote_preds_path(v, vm->name, vf->fold, path, sizeof path);
        fl_code rc = fl_preds_read(path, &p, err);
        if (!rc && !(rc = vote_check_preds(v, path, vm->name, vf->fold, &p, err))) {
            vf->epoch = p.epoch;
            snprintf(vf->checkpoint, sizeof vf->checkpoint, "%s", p.checkpoint);
            vote_add_fold(v, vm, vf, &p, s);
            vm->oof_rows += vf->oof_rows;
            vm->oof_correct += vf->oof_correct;
        }
        fl_preds_free(&p);
        if (rc)
            return rc;
    }
    for (int64_t i = 0; v->test_labels && i < v->n_test; i++) {
        /* the model's soft vote as probabilities: the mean of its folds' */
        for (int c = 0; c < C; c++)
            s->row[c] = s->test.model_soft[(size_t)i * C + c] / v->man.n_folds;
        vote_calib_add(&vm->cal_test, s->row, C, v->test_labels[i]);
    }
    fl_vote_sums_model_end(&s->test, vm->weight, vm->test_soft, vm->test_hard);
    return FL_OK;
}

/* The cross-model votes on test and OOF rows from the accumulated sums. */
static fl_code vote_across_models(vote_state *v, const vote_sums *s, fl_error *err)
{
    const int C = v->num_classes;
    size_t n = (size_t)(v->n_train ? v->n_train : 1), mt = (size_t)(v->n_test ? v->n_test : 1);
    double *count = calloc((size_t)C, sizeof *count);
    v->test_soft_soft = malloc(mt * sizeof(int32_t));
    v->test_soft_hard = malloc(mt * sizeof(int32_t));
    v->test_hard_hard = malloc(mt * sizeof(int32_t));
    v->oof_soft_soft = malloc(n * sizeof(int32_t));
    v->oof_majority = malloc(n * sizeof(int32_t));
    if (!count || !v->test_soft_soft || !v->test_soft_hard || !v->test_hard_hard || !v->oof_soft_soft ||
        !v->oof_majority) {
        free(count);
        return fl_fail(err, FL_ENOMEM, "vote: out of memory");
    }
    /* The soft-soft vote as probabilities, for its reliability statistics. */
    double total_weight = 0;
    for (int m = 0; m < v->n_models; m++)
        total_weight += v->models[m].weight;
    for (int64_t i = 0; i < v->n_test; i++) {
        size_t o = (size_t)i * C;
        v->test_soft_soft[i] = vote_argmax_d(s->test.soft_soft + o, C);
        v->test_soft_hard[i] = vote_argmax_d(s->test.soft_hard + o, C);
        v->test_hard_hard[i] = vote_argmax_d(s->test.hard_hard + o, C);
        if (v->test_labels) {
            for (int c = 0; c < C; c++)
                s->row[c] = s->test.soft_soft[o + c] / (v->man.n_folds * total_weight);
            vote_calib_add(&v->cal_test, s->row, C, v->test_labels[i]);
        }
    }
    /* Every model predicted the same OOF rows (checked against the folds), so
     * the first model's tells which rows are OOF. */
    for (int64_t r = 0; r < v->n_train; r++) {
        v->oof_soft_soft[r] = v->oof_majority[r] = -1;
        if (v->models[0].oof_pred[r] < 0)
            continue;
        memset(count, 0, (size_t)C * sizeof *count);
        for (int m = 0; m < v->n_models; m++)
            count[v->models[m].oof_pred[r]] += v->models[m].weight;
        v->oof_majority[r] = vote_argmax_d(count, C);
        v->oof_soft_soft[r] = vote_argmax_d(s->oof_sum + (size_t)r * C, C);
        for (int c = 0; c < C; c++)
            s->row[c] = s->oof_sum[(size_t)r * C + c] / total_weight;
        vote_calib_add(&v->cal_oof, s->row, C, v->train_labels[r]);
    }
    v->oof_soft_hard = v->oof_hard_hard = v->oof_majority;
    free(count);
    return FL_OK;
}

static fl_code vote_read_predictions(vote_state *v, fl_error *err)
{
    const size_t NC = (size_t)(v->n_train ? v->n_train : 1) * v->num_classes;
    vote_sums s = {0};
    fl_code rc = fl_vote_sums_init(&s.test, v->n_test, v->num_classes, err);
    if (rc)
        return rc;
    s.oof_sum = calloc(NC, sizeof(double));
    s.row = malloc((size_t)(v->num_classes ? v->num_classes : 1) * sizeof(double));
    if (!s.oof_sum || !s.row)
        rc = fl_fail(err, FL_ENOMEM, "vote: out of memory for %lld test and %lld train rows of %d classes",
                     (long long)v->n_test, (long long)v->n_train, v->num_classes);
    for (int m = 0; !rc && m < v->n_models; m++)
        rc = vote_read_model(v, m, &s, err);
    if (!rc)
        rc = vote_across_models(v, &s, err);
    fl_vote_sums_free(&s.test);
    free(s.oof_sum);
    free(s.row);
    return rc;
}

/* ---- the methods table --------------------------------------------------------- */

static void vote_add_method(vote_state *v, const char *method, int model, const int32_t *test, const int32_t *oof)
{
    vote_method *vm = &v->methods[v->n_methods++];
    snprintf(vm->method, sizeof vm->method, "%s", method);
    if (model >= 0)
        snprintf(vm->name, sizeof vm->name, "%s %s", method, v->models[model].name);
    else
        snprintf(vm->name, sizeof vm->name, "%s", method);
    vm->model = model;
    vm->test = test;
    vm->oof = oof;
    for (int64_t r = 0; r < v->n_train; r++)
        if (oof[r] >= 0) {
            vm->oof_rows++;
            vm->oof_correct += oof[r] == v->train_labels[r];
        }
    for (int64_t i = 0; v->test_labels && i < v->n_test; i++)
        vm->test_correct += test[i] == v->test_labels[i];
}

/* The table's order is fixed: soft and hard of model m at 2m and 2m+1, then
 * soft-soft, soft-hard, hard-hard (the report's models table relies on it). */
static void vote_build_methods(vote_state *v, const char *method, int model)
{
    for (int m = 0; m < v->n_models; m++) {
        vote_add_method(v, fl_vote_method_name(FL_VOTE_SOFT), m, v->models[m].test_soft, v->models[m].oof_pred);
        vote_add_method(v, fl_vote_method_name(FL_VOTE_HARD), m, v->models[m].test_hard, v->models[m].oof_pred);
    }
    vote_add_method(v, fl_vote_method_name(FL_VOTE_SOFT_SOFT), -1, v->test_soft_soft, v->oof_soft_soft);
    vote_add_method(v, fl_vote_method_name(FL_VOTE_SOFT_HARD), -1, v->test_soft_hard, v->oof_soft_hard);
    vote_add_method(v, fl_vote_method_name(FL_VOTE_HARD_HARD), -1, v->test_hard_hard, v->oof_hard_hard);
    if (v->fit.done) {
        vote_add_method(v, "fitted", -1, v->fit.test_pred, v->fit.oof_pred);
        snprintf(v->methods[v->n_methods - 1].name, sizeof v->methods[0].name, "soft-soft, fitted weights");
    }
    for (int i = 0; i < v->n_methods; i++)
        if (!strcmp(v->methods[i].method, method) && v->methods[i].model == model)
            v->chosen = i;
}

/* ---- the whole vote ------------------------------------------------------------ */

static fl_code vote_make_ensemble_dir(const vote_state *v, fl_error *err)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ensemble", v->opt->run_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return fl_fail(err, FL_EIO, "%s: cannot create the directory (%s) HINT: the run directory must be writable",
                       dir, strerror(errno));
    return FL_OK;
}

/* weights.txt with the fitted weights, or none: a vote without --fit-weights
 * removes one an earlier vote left, so that it always goes with the submission. */
static fl_code vote_write_weights(const vote_state *v, fl_error *err)
{
    char path[4200];
    fl_vote_weights_path(v->opt->run_dir, path, sizeof path);
    if (!v->fit.done) {
        if (unlink(path) != 0 && errno != ENOENT)
            return fl_fail(err, FL_EIO,
                           "%s: cannot remove the weights of an earlier --fit-weights (%s) HINT: the run directory "
                           "must be writable",
                           path, strerror(errno));
        return FL_OK;
    }
    fl_vote_weights w = {0};
    w.present = 1;
    snprintf(w.metric, sizeof w.metric, "%s", fl_fit_metric_name(v->fit.metric_acc ? FL_FIT_ACC : FL_FIT_LOGLOSS));
    w.rounds = v->fit.rounds;
    w.fitted_temperature = v->fit.temperature;
    w.n_models = v->n_models;
    for (int m = 0; m < v->n_models; m++) {
        snprintf(w.models[m].name, sizeof w.models[m].name, "%s", v->models[m].name);
        w.models[m].weight = v->fit.weight[m];
        w.models[m].temperature = v->fit.temp[m];
        w.models[m].picks = v->fit.picks[m];
    }
    return fl_vote_weights_write(v->opt->run_dir, &w, err);
}

/* The submission's path (--out, "-" for stdout, or RUN_DIR/ensemble/
 * submission.csv), before anything is read or written: never a device,
 * FIFO, socket or directory, nor a file this vote reads (run.cfg, the data
 * file, the labels, any file of a job directory: preds.h5, the models) or
 * writes besides it (report.md, report.html, weights.txt). */
static fl_code vote_check_out(vote_state *v, fl_error *err)
{
    const fl_vote_options *o = v->opt;
    char path[4200];
    if (o->out_path)
        snprintf(path, sizeof path, "%s", o->out_path);
    else
        snprintf(path, sizeof path, "%s/ensemble/submission.csv", o->run_dir);
    fl_code rc = fl_outpath_resolve(&v->out, path, FL_OUTPATH_REPLACE | FL_OUTPATH_STDOUT, err);
    if (rc)
        return fl_error_prefix(err, "vote: --out");
    snprintf(v->submission_path, sizeof v->submission_path, "%s", v->out.to_stdout ? "(stdout)" : path);
    const char *data = o->data_file ? o->data_file : v->man.data_file;
    rc = fl_outpath_not_input(&v->out, v->manifest_path, "the run's run.cfg", err);
    if (!rc)
        rc = fl_outpath_not_input(&v->out, data, "the run's data file", err);
    if (!rc)
        rc = fl_outpath_not_input(&v->out, o->labels_csv, "the --labels file", err);
    static const char *own[] = {"report.md", "report.html", "weights.txt"};
    for (size_t i = 0; !rc && i < sizeof own / sizeof *own; i++) {
        snprintf(path, sizeof path, "%s/ensemble/%s", o->run_dir, own[i]);
        rc = fl_outpath_not_input(&v->out, path, "a file vote writes besides the submission", err);
    }
    for (int m = 0; !rc && m < v->n_models; m++)
        for (int k = 0; !rc && k < v->man.n_folds; k++) {
            snprintf(path, sizeof path, "%s/%s/fold%d", o->run_dir, v->models[m].name, v->man.folds[k]);
            rc = fl_outpath_not_in_dir(&v->out, path, "a job's", err);
        }
    return rc ? fl_error_prefix(err, "vote: --out") : FL_OK;
}

static void vote_free(vote_state *v)
{
    free(v->train_labels);
    free(v->train_fold);
    free(v->test_labels);
    fl_datafile_free_paths(v->test_paths, v->n_test);
    fl_datafile_free_paths(v->train_paths, v->n_train);
    for (int c = 0; v->class_names && c < v->num_classes; c++)
        free(v->class_names[c]);
    free(v->class_names);
    vote_fit_free(&v->fit);
    for (int m = 0; m < v->n_models; m++) {
        free(v->models[m].oof_probs);
        free(v->models[m].oof_pred);
        free(v->models[m].test_soft);
        free(v->models[m].test_hard);
    }
    free(v->test_soft_soft);
    free(v->test_soft_hard);
    free(v->test_hard_hard);
    free(v->oof_soft_soft);
    free(v->oof_majority);
    free(v);
}

fl_code fl_vote_run(const fl_vote_options *opt, fl_error *err)
{
    vote_state *v = calloc(1, sizeof *v);
    if (!v)
        return fl_fail(err, FL_ENOMEM, "vote: out of memory");
    v->opt = opt;
    snprintf(v->labels_source, sizeof v->labels_source, "none");
    fl_h5_quiet();
    const char *method = NULL;
    int model = -1;
    fl_code rc = vote_load_manifest(v, err);
    if (!rc)
        rc = vote_choose(v, &method, &model, err);
    if (!rc)
        rc = vote_check_out(v, err);
    if (!rc)
        rc = vote_load_data(v, err);
    if (!rc)
        rc = vote_check_complete(v, err);
    if (!rc)
        rc = vote_read_predictions(v, err);
    if (!rc && opt->fit_weights)
        rc = vote_fit_run(v, err);
    if (!rc) {
        vote_build_methods(v, method, model);
        rc = vote_make_ensemble_dir(v, err);
    }
    if (!rc)
        rc = vote_write_weights(v, err);
    if (!rc)
        rc = vote_write_submission(v, err);
    if (!rc)
        rc = vote_write_report(v, opt->echo, err);
    if (!rc)
        rc = vote_write_html(v, err);
    vote_free(v);
    return rc;
}
