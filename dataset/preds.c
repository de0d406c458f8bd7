/* preds.c -- see preds.h. The predictions file is small next to the data
 * file (rows x classes floats), so it is read and written whole. Reading
 * checks everything vote relies on that the file alone can tell; what needs
 * the data file (fold rows, fingerprint, class count) is checked by vote. */
#include "dataset/preds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "dataset/datafile.h"
#include "dataset/h5util.h"
#include "base/tempfile.h"

/* ---- writing ----------------------------------------------------------------- */

static int preds_write_body(hid_t f, const fl_preds *p)
{
    int bad = fl_h5_attr_str(f, "format", FL_PREDS_FORMAT) || fl_h5_attr_int(f, "version", FL_PREDS_VERSION, 0) ||
              fl_h5_attr_str(f, "model", p->model) || fl_h5_attr_int(f, "fold", p->fold, 0) ||
              fl_h5_attr_int(f, "epoch", p->epoch, 0) || fl_h5_attr_str(f, "checkpoint", p->checkpoint) ||
              fl_h5_attr_int(f, "num_classes", p->num_classes, 0) ||
              fl_h5_attr_str(f, "test_fingerprint", p->test_fingerprint);
    const char *groups[2] = {"oof", "test"};
    for (int g = 0; g < 2 && !bad; g++) {
        hid_t gid = H5Gcreate2(f, groups[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (gid < 0)
            return -1;
        if (g == 0)
            bad = fl_h5_write_nd(gid, "index", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, p->n_oof, 1, p->oof_index) ||
                  fl_h5_write_nd(gid, "probs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, p->n_oof, p->num_classes,
                                 p->oof_probs);
        else
            bad = fl_h5_write_nd(gid, "probs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, p->n_test, p->num_classes,
                                 p->test_probs);
        H5Gclose(gid);
    }
    return bad ? -1 : 0;
}

fl_code fl_preds_write(const char *path, const fl_preds *p, fl_error *err)
{
    if (p->num_classes < 1 || p->n_oof < 0 || p->n_test < 0)
        return fl_fail(err, FL_EINTERNAL, "%s: predictions with %d classes, %lld OOF rows, %lld test rows", path,
                       p->num_classes, (long long)p->n_oof, (long long)p->n_test);
    fl_tempfile t;
    fl_code rc = fl_tempfile_begin(&t, path, 1, err);
    if (rc)
        return rc;
    hid_t f = fl_h5_create(t.tmp_path);
    if (f < 0) {
        rc = fl_h5_fail(err, path, "cannot create the predictions file");
        fl_tempfile_abort(&t);
        return rc;
    }
    int bad = preds_write_body(f, p);
    if (bad)
        rc = fl_h5_fail(err, path, "cannot write the predictions");
    if (H5Fclose(f) < 0 && !rc)
        rc = fl_h5_fail(err, path, "cannot close the predictions file (disk full?)");
    if (!rc) /* predictions are small: the seal covers every byte */
        rc = fl_h5_seal(t.tmp_path, path, 0, err);
    if (rc) {
        fl_tempfile_abort(&t);
        return rc;
    }
    return fl_tempfile_commit(&t, err);
}

/* ---- reading ----------------------------------------------------------------- */

int fl_preds_probe(const char *path)
{
    int sealed;
    fl_error ignored;
    if (fl_h5_check_seal(path, &sealed, NULL, &ignored) || H5Fis_hdf5(path) <= 0)
        return 0; /* a broken seal is reported by whoever opens the file */
    hid_t f = fl_h5_open_readonly(path);
    if (f < 0)
        return 0;
    char fmt[64] = "";
    int is = fl_h5_attr_read_str(f, "format", fmt, sizeof fmt) == 0 && !strcmp(fmt, FL_PREDS_FORMAT);
    H5Fclose(f);
    return is;
}

static fl_code preds_read_attrs(hid_t f, const char *path, fl_preds *p, fl_error *err)
{
    char fmt[64] = "";
    int64_t v = 0;
    if (fl_h5_attr_read_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, FL_PREDS_FORMAT) != 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: not a foldline predictions file (format attribute is '%s') HINT: vote reads the preds.h5 "
                       "files foldline train writes",
                       path, fmt);
    if (fl_h5_attr_read_int(f, "version", &v) || v != FL_PREDS_VERSION)
        return fl_fail(err, FL_EINPUT,
                       "%s: predictions file version %lld, this foldline reads version %d HINT: retrain the fold with "
                       "this foldline",
                       path, (long long)v, FL_PREDS_VERSION);
    struct {
        const char *name;
        char *buf;
        size_t n;
    } strs[3] = {{"model", p->model, sizeof p->model},
                 {"checkpoint", p->checkpoint, sizeof p->checkpoint},
                 {"test_fingerprint", p->test_fingerprint, sizeof p->test_fingerprint}};
    for (int i = 0; i < 3; i++)
        if (fl_h5_attr_read_str(f, strs[i].name, strs[i].buf, strs[i].n))
            return fl_fail(err, FL_EINPUT, "%s: attribute '%s' is missing, not a string or longer than %zu bytes", path,
                           strs[i].name, strs[i].n - 1);
    const char *ints[3] = {"fold", "epoch", "num_classes"};
    int64_t iv[3];
    for (int i = 0; i < 3; i++)
        if (fl_h5_attr_read_int(f, ints[i], &iv[i]))
            return fl_fail(err, FL_EINPUT, "%s: integer attribute '%s' is missing", path, ints[i]);
    if (iv[0] < 0 || iv[0] > 1000000 || iv[1] < -1 || iv[1] > 1000000000 || iv[2] < 1 || iv[2] > 10000000)
        return fl_fail(err, FL_EINPUT, "%s: attributes out of range (fold %lld, epoch %lld, num_classes %lld)", path,
                       (long long)iv[0], (long long)iv[1], (long long)iv[2]);
    p->fold = (int)iv[0];
    p->epoch = (int)iv[1];
    p->num_classes = (int)iv[2];
    return FL_OK;
}

/* Every row of (n, C) probabilities is finite, non-negative and sums to 1 within 1e-3. */
static fl_code preds_check_rows(const char *path, const char *name, const float *probs, int64_t n, int C, fl_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * C;
        double sum = 0;
        for (int c = 0; c < C; c++) {
            if (!isfinite(row[c]) || row[c] < 0)
                return fl_fail(
                    err, FL_EINPUT,
                    "%s: %s row %lld class %d is %g, not a probability HINT: write softmax probabilities, not logits",
                    path, name, (long long)i, c, (double)row[c]);
            sum += row[c];
        }
        if (fabs(sum - 1.0) > 1e-3)
            return fl_fail(
                err, FL_EINPUT,
                "%s: %s row %lld sums to %.6f, not 1 (within 1e-3) HINT: write softmax probabilities, not logits", path,
                name, (long long)i, sum);
    }
    return FL_OK;
}

static fl_code preds_read_data(hid_t f, const char *path, fl_preds *p, fl_error *err)
{
    int64_t di[2], dop[2], dtp[2];
    const int C = p->num_classes;
    if (fl_h5_shape(f, "oof/index", 1, di))
        return fl_fail(err, FL_EINPUT, "%s: /oof/index is missing or not 1-D", path);
    if (fl_h5_shape(f, "oof/probs", 2, dop) || dop[0] != di[0] || dop[1] != C)
        return fl_fail(err, FL_EINPUT, "%s: /oof/probs is missing or not (%lld, %d) as /oof/index and num_classes say",
                       path, (long long)di[0], C);
    if (fl_h5_shape(f, "test/probs", 2, dtp) || dtp[1] != C)
        return fl_fail(err, FL_EINPUT, "%s: /test/probs is missing or not (M, %d) as num_classes says", path, C);
    p->n_oof = di[0];
    p->n_test = dtp[0];
    p->oof_index = malloc(sizeof *p->oof_index * (size_t)(p->n_oof ? p->n_oof : 1));
    p->oof_probs = malloc(sizeof *p->oof_probs * (size_t)(p->n_oof ? p->n_oof : 1) * C);
    p->test_probs = malloc(sizeof *p->test_probs * (size_t)(p->n_test ? p->n_test : 1) * C);
    if (!p->oof_index || !p->oof_probs || !p->test_probs)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory for %lld + %lld rows of %d classes", path,
                       (long long)p->n_oof, (long long)p->n_test, C);
    if ((p->n_oof && (fl_h5_read_all(f, "oof/index", H5T_NATIVE_INT32, p->oof_index) ||
                      fl_h5_read_all(f, "oof/probs", H5T_NATIVE_FLOAT, p->oof_probs))) ||
        (p->n_test && fl_h5_read_all(f, "test/probs", H5T_NATIVE_FLOAT, p->test_probs)))
        return fl_h5_fail(err, path, "cannot read the predictions (truncated or corrupt?)");
    for (int64_t i = 0; i < p->n_oof; i++)
        if (p->oof_index[i] < 0 || (i > 0 && p->oof_index[i] <= p->oof_index[i - 1]))
            return fl_fail(err, FL_EINPUT,
                           "%s: /oof/index row %lld is %d: train rows must be >= 0 and strictly ascending", path,
                           (long long)i, p->oof_index[i]);
    fl_code rc = preds_check_rows(path, "/oof/probs", p->oof_probs, p->n_oof, C, err);
    return rc ? rc : preds_check_rows(path, "/test/probs", p->test_probs, p->n_test, C, err);
}

fl_code fl_preds_read(const char *path, fl_preds *p, fl_error *err)
{
    memset(p, 0, sizeof *p);
    int sealed;
    fl_code rc = fl_h5_check_seal(path, &sealed, NULL, err);
    if (rc)
        return rc;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return fl_fail(err, FL_EINPUT, "%s: %s", path,
                       is < 0 ? "cannot open (missing or unreadable)" : "not an HDF5 file");
    hid_t f = fl_h5_open_readonly(path);
    if (f < 0)
        return fl_h5_fail(err, path, "cannot open the predictions file (truncated or corrupt?)");
    rc = preds_read_attrs(f, path, p, err);
    if (!rc)
        rc = preds_read_data(f, path, p, err);
    H5Fclose(f);
    if (rc)
        fl_preds_free(p);
    return rc;
}

void fl_preds_free(fl_preds *p)
{
    free(p->oof_index);
    free(p->oof_probs);
    free(p->test_probs);
    p->oof_index = NULL;
    p->oof_probs = p->test_probs = NULL;
    p->n_oof = p->n_test = 0;
}
