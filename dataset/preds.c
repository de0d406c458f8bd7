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
#include "dist/tempfile.h"

/* ---- small HDF5 helpers (the data file's live in datafile.c) -------------- */

static fl_code preds_h5_fail(fl_error *err, const char *path, const char *what)
{
    char why[256];
    fl_h5_last_error(why, sizeof why);
    return fl_fail(err, FL_EIO, "%s: %s (HDF5: %s)", path, what, why);
}

static hid_t preds_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static int preds_attr_write(hid_t obj, const char *name, hid_t mem_type, hid_t file_type, const void *value)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, mem_type, value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return st < 0 ? -1 : 0;
}

static int preds_attr_int(hid_t obj, const char *name, int64_t v)
{
    return preds_attr_write(obj, name, H5T_NATIVE_INT64, H5T_STD_I32LE, &v);
}

static int preds_attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = preds_string_type();
    int r = preds_attr_write(obj, name, t, t, &s);
    H5Tclose(t);
    return r;
}

/* A dataset of rank 1 or 2 written at once (n may be 0). */
static int preds_write_nd(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, int64_t n,
                          int64_t cols, const void *data)
{
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : (n && cols ? H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0);
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return st < 0 ? -1 : 0;
}

static int preds_attr_read_int(hid_t obj, const char *name, int64_t *v)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_INT64, v);
    if (a >= 0)
        H5Aclose(a);
    return st < 0 ? -1 : 0;
}

/* A scalar string attribute, variable or fixed length, into buf. */
static int preds_attr_read_str(hid_t obj, const char *name, char *buf, size_t n)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = a < 0 ? -1 : H5Aget_type(a);
    int r = -1;
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t t = preds_string_type();
            char *s = NULL;
            if (H5Aread(a, t, &s) >= 0 && s) {
                r = strlen(s) < n ? 0 : -2;
                snprintf(buf, n, "%s", s);
                H5free_memory(s);
            }
            H5Tclose(t);
        } else {
            size_t sz = H5Tget_size(ft);
            char *s = calloc(1, sz + 1);
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, sz + 1);
            if (s && H5Aread(a, t, s) >= 0) {
                r = strlen(s) < n ? 0 : -2;
                snprintf(buf, n, "%s", s);
            }
            H5Tclose(t);
            free(s);
        }
    }
    if (ft >= 0)
        H5Tclose(ft);
    if (a >= 0)
        H5Aclose(a);
    return r;
}

/* Shape of a dataset of rank `rank` (1 or 2), or -1 if absent or of another rank. */
static int preds_shape(hid_t file, const char *name, int rank, int64_t dims_out[2])
{
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int r = H5Sget_simple_extent_ndims(sp) == rank && H5Sget_simple_extent_dims(sp, dims, NULL) == rank ? 0 : -1;
    dims_out[0] = (int64_t)dims[0];
    dims_out[1] = (int64_t)dims[1];
    H5Sclose(sp);
    H5Dclose(d);
    return r;
}

static int preds_read_all(hid_t file, const char *name, hid_t mem_type, void *out)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    if (d >= 0)
        H5Dclose(d);
    return st < 0 ? -1 : 0;
}

static hid_t preds_open_readonly(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1); /* shared file systems: no locks for readers */
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

/* ---- writing ----------------------------------------------------------------- */

static int preds_write_body(hid_t f, const fl_preds *p)
{
    int bad = preds_attr_str(f, "format", FL_PREDS_FORMAT) || preds_attr_int(f, "version", FL_PREDS_VERSION) ||
              preds_attr_str(f, "model", p->model) || preds_attr_int(f, "fold", p->fold) ||
              preds_attr_int(f, "epoch", p->epoch) || preds_attr_str(f, "checkpoint", p->checkpoint) ||
              preds_attr_int(f, "num_classes", p->num_classes) ||
              preds_attr_str(f, "test_fingerprint", p->test_fingerprint);
    const char *groups[2] = {"oof", "test"};
    for (int g = 0; g < 2 && !bad; g++) {
        hid_t gid = H5Gcreate2(f, groups[g], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (gid < 0)
            return -1;
        if (g == 0)
            bad = preds_write_nd(gid, "index", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, p->n_oof, 1, p->oof_index) ||
                  preds_write_nd(gid, "probs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, p->n_oof, p->num_classes,
                                 p->oof_probs);
        else
            bad = preds_write_nd(gid, "probs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, p->n_test, p->num_classes,
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
    hid_t f = H5Fcreate(t.tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        rc = preds_h5_fail(err, path, "cannot create the predictions file");
        fl_tempfile_abort(&t);
        return rc;
    }
    int bad = preds_write_body(f, p);
    if (bad)
        rc = preds_h5_fail(err, path, "cannot write the predictions");
    if (H5Fclose(f) < 0 && !rc)
        rc = preds_h5_fail(err, path, "cannot close the predictions file (disk full?)");
    if (rc) {
        fl_tempfile_abort(&t);
        return rc;
    }
    return fl_tempfile_commit(&t, err);
}

/* ---- reading ----------------------------------------------------------------- */

int fl_preds_probe(const char *path)
{
    if (H5Fis_hdf5(path) <= 0)
        return 0;
    hid_t f = preds_open_readonly(path);
    if (f < 0)
        return 0;
    char fmt[64] = "";
    int is = preds_attr_read_str(f, "format", fmt, sizeof fmt) == 0 && !strcmp(fmt, FL_PREDS_FORMAT);
    H5Fclose(f);
    return is;
}

static fl_code preds_read_attrs(hid_t f, const char *path, fl_preds *p, fl_error *err)
{
    char fmt[64] = "";
    int64_t v = 0;
    if (preds_attr_read_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, FL_PREDS_FORMAT) != 0)
        return fl_fail(err, FL_EINPUT, "%s: not a foldline predictions file (format attribute is '%s') HINT: vote reads the preds.h5 files foldline train writes", path, fmt);
    if (preds_attr_read_int(f, "version", &v) || v != FL_PREDS_VERSION)
        return fl_fail(err, FL_EINPUT, "%s: predictions file version %lld, this foldline reads version %d HINT: retrain the fold with this foldline", path, (long long)v, FL_PREDS_VERSION);
    struct {
        const char *name;
        char *buf;
        size_t n;
    } strs[3] = {{"model", p->model, sizeof p->model},
                 {"checkpoint", p->checkpoint, sizeof p->checkpoint},
                 {"test_fingerprint", p->test_fingerprint, sizeof p->test_fingerprint}};
    for (int i = 0; i < 3; i++)
        if (preds_attr_read_str(f, strs[i].name, strs[i].buf, strs[i].n))
            return fl_fail(err, FL_EINPUT, "%s: attribute '%s' is missing, not a string or longer than %zu bytes", path, strs[i].name, strs[i].n - 1);
    const char *ints[3] = {"fold", "epoch", "num_classes"};
    int64_t iv[3];
    for (int i = 0; i < 3; i++)
        if (preds_attr_read_int(f, ints[i], &iv[i]))
            return fl_fail(err, FL_EINPUT, "%s: integer attribute '%s' is missing", path, ints[i]);
    if (iv[0] < 0 || iv[0] > 1000000 || iv[1] < -1 || iv[1] > 1000000000 || iv[2] < 1 || iv[2] > 10000000)
        return fl_fail(err, FL_EINPUT, "%s: attributes out of range (fold %lld, epoch %lld, num_classes %lld)", path, (long long)iv[0], (long long)iv[1], (long long)iv[2]);
    p->fold = (int)iv[0];
    p->epoch = (int)iv[1];
    p->num_classes = (int)iv[2];
    return FL_OK;
}

/* Every row of (n, C) probabilities is finite, non-negative and sums to 1 within 1e-3. */
static fl_code preds_check_rows(const char *path, const char *name, const float *probs, int64_t n, int C,
                                fl_error *err)
{
    for (int64_t i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * C;
        double sum = 0;
        for (int c = 0; c < C; c++) {
            if (!isfinite(row[c]) || row[c] < 0)
                return fl_fail(err, FL_EINPUT, "%s: %s row %lld class %d is %g, not a probability HINT: write softmax probabilities, not logits", path, name, (long long)i, c, (double)row[c]);
            sum += row[c];
        }
        if (fabs(sum - 1.0) > 1e-3)
            return fl_fail(err, FL_EINPUT, "%s: %s row %lld sums to %.6f, not 1 (within 1e-3) HINT: write softmax probabilities, not logits", path, name, (long long)i, sum);
    }
    return FL_OK;
}

static fl_code preds_read_data(hid_t f, const char *path, fl_preds *p, fl_error *err)
{
    int64_t di[2], dop[2], dtp[2];
    const int C = p->num_classes;
    if (preds_shape(f, "oof/index", 1, di))
        return fl_fail(err, FL_EINPUT, "%s: /oof/index is missing or not 1-D", path);
    if (preds_shape(f, "oof/probs", 2, dop) || dop[0] != di[0] || dop[1] != C)
        return fl_fail(err, FL_EINPUT, "%s: /oof/probs is missing or not (%lld, %d) as /oof/index and num_classes say", path, (long long)di[0], C);
    if (preds_shape(f, "test/probs", 2, dtp) || dtp[1] != C)
        return fl_fail(err, FL_EINPUT, "%s: /test/probs is missing or not (M, %d) as num_classes says", path, C);
    p->n_oof = di[0];
    p->n_test = dtp[0];
    p->oof_index = malloc(sizeof *p->oof_index * (size_t)(p->n_oof ? p->n_oof : 1));
    p->oof_probs = malloc(sizeof *p->oof_probs * (size_t)(p->n_oof ? p->n_oof : 1) * C);
    p->test_probs = malloc(sizeof *p->test_probs * (size_t)(p->n_test ? p->n_test : 1) * C);
    if (!p->oof_index || !p->oof_probs || !p->test_probs)
        return fl_fail(err, FL_ENOMEM, "%s: out of memory for %lld + %lld rows of %d classes", path, (long long)p->n_oof, (long long)p->n_test, C);
    if ((p->n_oof && (preds_read_all(f, "oof/index", H5T_NATIVE_INT32, p->oof_index) ||
                      preds_read_all(f, "oof/probs", H5T_NATIVE_FLOAT, p->oof_probs))) ||
        (p->n_test && preds_read_all(f, "test/probs", H5T_NATIVE_FLOAT, p->test_probs)))
        return preds_h5_fail(err, path, "cannot read the predictions (truncated or corrupt?)");
    for (int64_t i = 0; i < p->n_oof; i++)
        if (p->oof_index[i] < 0 || (i > 0 && p->oof_index[i] <= p->oof_index[i - 1]))
            return fl_fail(err, FL_EINPUT, "%s: /oof/index row %lld is %d: train rows must be >= 0 and strictly ascending", path, (long long)i, p->oof_index[i]);
    fl_code rc = preds_check_rows(path, "/oof/probs", p->oof_probs, p->n_oof, C, err);
    return rc ? rc : preds_check_rows(path, "/test/probs", p->test_probs, p->n_test, C, err);
}

fl_code fl_preds_read(const char *path, fl_preds *p, fl_error *err)
{
    memset(p, 0, sizeof *p);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return fl_fail(err, FL_EINPUT, "%s: %s", path, is < 0 ? "cannot open (missing or unreadable)" : "not an HDF5 file");
    hid_t f = preds_open_readonly(path);
    if (f < 0)
        return preds_h5_fail(err, path, "cannot open the predictions file (truncated or corrupt?)");
    fl_code rc = preds_read_attrs(f, path, p, err);
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
