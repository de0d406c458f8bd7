/* train_data.c -- see train_priv.h: the data files of a run, opened on every
 * rank, checked to hold the same rows, and read whole once by the pass of
 * data.verify = "full". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "dataset/loader.h"
#include "config/config.h"
#include "launch/train_priv.h"

/* "file:line: key" of model m's data.file (its own or the top-level one). */
static void data_key(const fl_train_config *cfg, int m, char *out, size_t n)
{
    const fl_model_cfg *mc = &cfg->models[m];
    char key[48];
    if (mc->own_data_file)
        snprintf(key, sizeof key, "models.[%d].data.file", m);
    else
        snprintf(key, sizeof key, "data.file");
    if (mc->data_file_line > 0)
        snprintf(out, n, "%s:%d: %s", cfg->path, mc->data_file_line, key);
    else
        snprintf(out, n, "%s (--set): %s", cfg->path, key);
}

/* What differs between the open data file df (its info in, its test
 * fingerprint fp) and the first model's, into what (empty when they hold the
 * same rows). */
static fl_code data_compare(const train_ctx *t, fl_datafile *df, const fl_data_info *in, const char *fp, char *what,
                            size_t n, fl_error *err)
{
    const fl_data_info *a = &t->data[0].jd.info;
    what[0] = '\0';
    if (in->n_train != a->n_train) {
        snprintf(what, n, "%lld train rows, the first has %lld", (long long)in->n_train, (long long)a->n_train);
        return FL_OK;
    }
    if (in->num_classes != a->num_classes || in->folds != a->folds) {
        snprintf(what, n, "%d classes and %d folds, the first has %d and %d", in->num_classes, in->folds,
                 a->num_classes, a->folds);
        return FL_OK;
    }
    size_t rows = (size_t)(in->n_train ? in->n_train : 1);
    int32_t *labels = malloc(sizeof *labels * rows), *fold = malloc(sizeof *fold * rows);
    fl_code rc = !labels || !fold ? fl_fail(err, FL_ENOMEM, "out of memory") : FL_OK;
    if (!rc && !(rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, labels, err)) &&
        !(rc = fl_datafile_read_folds(df, fold, err)))
        for (int64_t i = 0; i < in->n_train && !what[0]; i++)
            if (labels[i] != t->labels[i] || fold[i] != t->fold[i])
                snprintf(what, n, "label %d fold %d at train row %lld, the first has label %d fold %d", labels[i],
                         fold[i], (long long)i, t->labels[i], t->fold[i]);
    if (!rc && !what[0] && strcmp(fp, t->env.fingerprint) != 0)
        snprintf(what, n, "another test set (fingerprint %s: %lld test rows; the first has %s: %lld)", fp,
                 (long long)in->n_test, t->env.fingerprint, (long long)a->n_test);
    free(labels);
    free(fold);
    return rc;
}

/* data.verify = "full": every image's checksum before any job, each rank
 * reading its share of the rows, so that a corrupt image stops the run now,
 * not in epoch 3. (The seal, checked at every open, covers the rest.) */
static fl_code train_verify_images(const train_ctx *t, fl_datafile *df, const char *path, fl_error *err)
{
    double t0 = fl_clock_mono();
    int64_t checked;
    fl_code rc = fl_datafile_verify_images(df, t->world.rank, t->world.size, &checked, err);
    if (rc || checked == 0 || t->world.rank != 0)
        return rc;
    printf("train: %s: %lld image checksums verified in %.1f s%s\n", path, (long long)checked, fl_clock_mono() - t0,
           t->world.size > 1 ? " (rank 0's share)" : "");
    fflush(stdout);
    return FL_OK;
}

/* Opens data file model m names, unless an earlier model's is the same file:
 * reads its shapes; the first one's labels, folds and fingerprint go to t,
 * every later one must hold the same (else a config error naming the key). */
static fl_code train_open_model_data(train_ctx *t, int m, fl_error *err)
{
    const fl_train_config *cfg = t->cfg;
    const fl_model_cfg *mc = &cfg->models[m];
    char where[FL_PATH_MAX + 64], real[PATH_MAX];
    data_key(cfg, m, where, sizeof where);
    if (!realpath(mc->data_file, real))
        return fl_fail(err, FL_EINPUT, "%s: '%s': %s", where, mc->data_file, strerror(errno));
    for (int d = 0; d < t->n_data; d++)
        if (!strcmp(t->data[d].real, real)) {
            t->data_of_model[m] = d;
            return fl_config_check_data(cfg, m, t->data[d].jd.info.channels, t->data[d].jd.info.folds, err);
        }
    /* rank 0 keeps the identity the file had before it was opened: a file
     * replaced or written from now on does not match it */
    struct stat st;
    int ident = t->world.rank == 0 && stat(real, &st) == 0;
    fl_datafile *df;
    fl_code rc = fl_datafile_open(mc->data_file, &df, err);
    if (rc)
        return fl_error_prefix(err, "%s", where);
    train_data *td = &t->data[t->n_data];
    snprintf(td->real, sizeof td->real, "%s", real);
    td->first_model = m;
    td->df = df; /* closed after the verification pass (or by train_free) */
    td->jd.info = *fl_datafile_info(df);
    td->jd.info.classes = NULL; /* owned by df */
    if (ident)
        fl_verified_identity(real, &st, &td->jd.info, td->ident, sizeof td->ident);
    t->data_of_model[m] = t->n_data++;
    rc = fl_config_check_data(cfg, m, td->jd.info.channels, td->jd.info.folds, err);
    if (!rc && t->n_data == 1) {
        size_t n = (size_t)(td->jd.info.n_train ? td->jd.info.n_train : 1);
        t->labels = malloc(sizeof *t->labels * n);
        t->fold = malloc(sizeof *t->fold * n);
        if (!t->labels || !t->fold)
            rc = fl_fail(err, FL_ENOMEM, "out of memory");
        if (!rc)
            rc = fl_datafile_read_labels(df, FL_SPLIT_TRAIN, t->labels, err);
        if (!rc)
            rc = fl_datafile_read_folds(df, t->fold, err);
        if (!rc)
            rc = fl_datafile_fingerprint(df, t->env.fingerprint, err);
    } else if (!rc) {
        char fp[17], what[256];
        if (!(rc = fl_datafile_fingerprint(df, fp, err)) &&
            !(rc = data_compare(t, df, &td->jd.info, fp, what, sizeof what, err)) && what[0])
            rc = fl_fail(err, FL_EINPUT,
                         "%s: '%s' does not hold the rows of '%s' (the data file of models.[0]): it has %s HINT: "
                         "every data file of a run must come from the same source with the same --folds and --seed "
                         "(foldline prep SRC OUT.h5 --size N ...), so that OOF and test rows line up for the vote",
                         where, mc->data_file, cfg->models[0].data_file, what);
    }
    return rc;
}

/* Reads what every job needs from the data files and checks the config against them. */
fl_code train_open_data(train_ctx *t, fl_error *err)
{
    for (int m = 0; m < t->cfg->n_models; m++) {
        fl_code rc = train_open_model_data(t, m, err);
        if (rc)
            return rc;
    }
    return FL_OK;
}

/* Rank 0, step 2a: what the full pass does with each data file. With
 * data.cache = "memory" the loaders read (and so verify) every image before
 * the first job anyway, and a file without pixel checksums has nothing to
 * verify. A file the run's verified.txt lists with the identity it has now
 * was read whole since it last changed: not again (--restart discards the
 * record with the run). */
void train_decide_verify(train_ctx *t)
{
    const fl_train_config *cfg = t->cfg;
    int full = cfg->data_verify == FL_VERIFY_FULL && cfg->data_cache != FL_DATA_CACHE_MEMORY;
    char record[sizeof t->env.run_dir + sizeof FL_VERIFIED_NAME + 1];
    snprintf(record, sizeof record, "%s/%s", t->env.run_dir, FL_VERIFIED_NAME);
    for (int d = 0; d < t->n_data; d++) {
        const train_data *td = &t->data[d];
        if (!full || !(td->jd.info.checks & FL_DATA_CHECK_PIXELS))
            t->verify[d] = VERIFY_NONE;
        else if (!t->restart && td->ident[0] && fl_verified_holds(record, td->ident))
            t->verify[d] = VERIFY_RECORDED;
        else
            t->verify[d] = VERIFY_READ;
    }
}

/* Step 2b: this rank's share of the pass over each data file rank 0 chose;
 * then the files are closed (the loaders open their own). */
fl_code train_verify_data(train_ctx *t, fl_error *err)
{
    fl_code rc = FL_OK;
    for (int d = 0; d < t->n_data; d++) {
        train_data *td = &t->data[d];
        const char *path = t->cfg->models[td->first_model].data_file;
        if (!rc && t->verify[d] == VERIFY_READ)
            rc = train_verify_images(t, td->df, path, err);
        else if (!rc && t->verify[d] == VERIFY_RECORDED && t->world.rank == 0)
            printf("train: data file %s verified before (%s/%s), not read again; data.verify = \"full\" reads it "
                   "again after any change\n",
                   path, t->env.run_dir, FL_VERIFIED_NAME);
        fl_datafile_close(td->df);
        td->df = NULL;
    }
    fflush(stdout);
    return rc;
}

/* Rank 0, once every rank's share of the pass passed: verified.txt lists
 * every data file read whole, now or before, with the identity it had
 * before this start's pass. Unchanged when nothing was read; a record that
 * cannot be written only costs the next start a pass, so it is a warning. */
void train_write_verified(const train_ctx *t)
{
    const char *lines[FL_MAX_MODELS];
    int n = 0, read = 0;
    for (int d = 0; d < t->n_data; d++) {
        const train_data *td = &t->data[d];
        read += t->verify[d] == VERIFY_READ;
        if (t->verify[d] != VERIFY_NONE && td->ident[0])
            lines[n++] = td->ident;
    }
    if (!read || !n)
        return;
    char record[sizeof t->env.run_dir + sizeof FL_VERIFIED_NAME + 1];
    snprintf(record, sizeof record, "%s/%s", t->env.run_dir, FL_VERIFIED_NAME);
    fl_error err;
    fl_error_clear(&err);
    if (fl_verified_write(record, lines, n, &err)) {
        fprintf(stderr, "foldline: warning: the next start of this run verifies its data files again: %s\n", err.msg);
        fflush(stderr);
    }
}
