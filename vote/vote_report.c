/* vote_report.c -- what `foldline vote` writes: the submission CSV
 * (ID,image_path,target in test order) and RUN_DIR/ensemble/report.md, a
 * markdown report of every fold, model and method (and, after --fit-weights,
 * the fitted weights: vote_fit_report_md). Both go through a
 * temporary file and a rename, so a reader never sees half of either.
 *
 * Accuracies are printed as "0.9123 (913/1000)": the fraction to four places
 * and the exact counts, so that scripts can compare counts instead of floats.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/csv.h"
#include "base/tempfile.h"
#include "vote/vote_internal.h"

fl_code vote_write_submission(const vote_state *v, fl_error *err)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", v->submission_path);
    const int32_t *target = v->methods[v->chosen].test;
    fputs("ID,image_path,target\n", f);
    for (int64_t i = 0; i < v->n_test; i++) {
        fprintf(f, "%lld,", (long long)i);
        fl_csv_write_field(f, v->test_paths[i]);
        fprintf(f, ",%d\n", target[i]);
    }
    fl_code rc = FL_OK;
    if (fclose(f) != 0 || !text)
        rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", v->submission_path);
    else
        rc = fl_outpath_write(&v->out, text, n, err);
    free(text);
    return rc;
}

/* ---- the report ------------------------------------------------------------------ */

static void report_acc(FILE *f, int64_t correct, int64_t total)
{
    if (total <= 0)
        fputs(" n/a |", f);
    else
        fprintf(f, " %.4f (%lld/%lld) |", (double)correct / (double)total, (long long)correct, (long long)total);
}

static void report_test_acc(FILE *f, const vote_state *v, int64_t correct)
{
    report_acc(f, correct, v->test_labels ? v->n_test : 0);
}

static void report_head(FILE *f, const vote_state *v)
{
    const vote_method *chosen = &v->methods[v->chosen];
    fprintf(f, "# foldline vote: %s\n\n", v->opt->run_dir);
    fprintf(f, "- data file: `%s` (test fingerprint %s): %lld train rows, %lld test rows, %d classes\n", v->data_path,
            v->fingerprint, (long long)v->n_train, (long long)v->n_test, v->num_classes);
    fprintf(f, "- folds:");
    for (int i = 0; i < v->man.n_folds; i++)
        fprintf(f, "%s %d", i ? "," : "", v->man.folds[i]);
    fprintf(f, " (of %d); OOF rows: %lld\n", v->data_folds, (long long)v->models[0].oof_rows);
    fprintf(f, "- models:");
    for (int m = 0; m < v->n_models; m++)
        fprintf(f, "%s %s (weight %g)", m ? "," : "", v->models[m].name, v->models[m].weight);
    fprintf(f, "\n- test labels: %s\n", v->test_labels ? v->labels_source : "none (no test accuracy)");
    fprintf(f, "- submission: `%s` by **%s** (%lld rows)\n\n", v->submission_path, chosen->name, (long long)v->n_test);
}

static void report_folds(FILE *f, const vote_state *v)
{
    fputs("## Folds\n\nOut-of-fold (OOF) accuracy of each fold's held-out rows; test accuracy of the fold's own "
          "test predictions. The epoch of the checkpoint that predicted counts from 1, as the train log does.\n\n",
          f);
    fputs("| model | fold | epoch (1-based) | checkpoint | OOF accuracy | test accuracy |\n", f);
    fputs("|---|---:|---:|---|---:|---:|\n", f);
    for (int m = 0; m < v->n_models; m++)
        for (int i = 0; i < v->man.n_folds; i++) {
            const vote_fold *vf = &v->models[m].folds[i];
            /* preds.h5's epoch attribute is 0-based (the contract); people read the log's 1-based count */
            fprintf(f, "| %s | %d | %d | %s |", v->models[m].name, vf->fold, vf->epoch + 1, vf->checkpoint);
            report_acc(f, vf->oof_correct, vf->oof_rows);
            report_test_acc(f, v, vf->test_correct);
            fputc('\n', f);
        }
    fputc('\n', f);
}

static void report_models(FILE *f, const vote_state *v)
{
    fputs("## Models\n\nOOF accuracy over all the model's folds; test accuracy of its soft vote (mean of the "
          "folds' probabilities) and its hard vote (majority of the folds' argmaxes).\n\n",
          f);
    fputs("| model | weight | OOF accuracy | test accuracy, soft | test accuracy, hard |\n", f);
    fputs("|---|---:|---:|---:|---:|\n", f);
    for (int m = 0; m < v->n_models; m++) {
        const vote_model *vm = &v->models[m];
        fprintf(f, "| %s | %g |", vm->name, vm->weight);
        report_acc(f, vm->oof_correct, vm->oof_rows);
        report_test_acc(f, v, v->methods[2 * m].test_correct);
        report_test_acc(f, v, v->methods[2 * m + 1].test_correct);
        fputc('\n', f);
    }
    fputc('\n', f);
}

static void report_methods(FILE *f, const vote_state *v)
{
    fputs("## Methods\n\n"
          "soft/hard MODEL: within one model, the mean of its folds' probabilities / the majority of its folds' "
          "argmaxes. soft-soft: the weighted mean of every fold's probabilities of every model. soft-hard: the "
          "weighted majority of the models' soft votes. hard-hard: the weighted majority of every model x fold "
          "argmax. Ties go to the lowest class id. An OOF row has one prediction per model (the fold that held "
          "it out), so there soft and hard of a model are the model's OOF accuracy, and soft-hard and hard-hard "
          "are both the weighted majority of the models' argmaxes.\n\n",
          f);
    fputs("| method | OOF accuracy | test accuracy | submission |\n", f);
    fputs("|---|---:|---:|:---:|\n", f);
    for (int i = 0; i < v->n_methods; i++) {
        const vote_method *vm = &v->methods[i];
        fprintf(f, "| %s |", vm->name);
        report_acc(f, vm->oof_correct, vm->oof_rows);
        report_test_acc(f, v, vm->test_correct);
        fprintf(f, " %s |\n", i == v->chosen ? "yes" : "");
    }
    fputc('\n', f);
}

static void report_agreement(FILE *f, const vote_state *v)
{
    fputs("## Agreement between models\n\nFraction of test rows on which two models' soft votes agree.\n\n", f);
    fputs("| model |", f);
    for (int m = 0; m < v->n_models; m++)
        fprintf(f, " %s |", v->models[m].name);
    fputs("\n|---|", f);
    for (int m = 0; m < v->n_models; m++)
        fputs("---:|", f);
    fputc('\n', f);
    for (int a = 0; a < v->n_models; a++) {
        fprintf(f, "| %s |", v->models[a].name);
        for (int b = 0; b < v->n_models; b++) {
            int64_t same = 0;
            for (int64_t i = 0; i < v->n_test; i++)
                same += v->models[a].test_soft[i] == v->models[b].test_soft[i];
            report_acc(f, same, v->n_test);
        }
        fputc('\n', f);
    }
}

fl_code vote_write_report(const vote_state *v, FILE *echo, fl_error *err)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", v->report_path);
    report_head(f, v);
    report_folds(f, v);
    report_models(f, v);
    report_methods(f, v);
    if (v->fit.done)
        vote_fit_report_md(f, v);
    report_agreement(f, v);
    fl_code rc = FL_OK;
    if (fclose(f) != 0 || !text)
        rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", v->report_path);
    else
        rc = fl_write_file_atomic(v->report_path, text, n, err);
    if (!rc && echo) {
        fwrite(text, 1, n, echo);
        fflush(echo);
    }
    free(text);
    return rc;
}
