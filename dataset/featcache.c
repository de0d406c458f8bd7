/* featcache.c -- see featcache.h. The file holds one dataset, /features
 * (n_rows, dim) float32, in chunks of 16 rows with a chunk cache of 64 MB:
 * rows are written in order, block by block, and read back one by one in
 * whatever order the batches want them. */
#include "dataset/featcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/h5util.h"

struct fl_featcache {
    int64_t n_rows;
    int dim;
    float *mem; /* (n_rows, dim), or NULL for the file */
    char *path; /* the scratch file */
    hid_t file, dset;
};

static fl_code featcache_h5_fail(fl_featcache *c, fl_error *err, const char *what)
{
    return fl_h5_fail(err, c->path, what);
}

fl_code fl_featcache_open(const char *file, int64_t n_rows, int dim, fl_featcache **out, fl_error *err)
{
    *out = NULL;
    if (n_rows < 0 || dim < 1)
        return fl_fail(err, FL_EINTERNAL, "feature cache of %lld rows of %d values", (long long)n_rows, dim);
    fl_featcache *c = calloc(1, sizeof *c);
    if (!c)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    c->n_rows = n_rows;
    c->dim = dim;
    c->file = c->dset = -1;
    if (!file) {
        if (!(c->mem = malloc(sizeof *c->mem * (size_t)(n_rows ? n_rows : 1) * (size_t)dim))) {
            free(c);
            return fl_fail(err, FL_ENOMEM,
                           "no memory for a feature cache of %lld x %d floats (%lld MB) HINT: set "
                           "data.feature_cache = \"file\" or lower data.feature_cache_mb",
                           (long long)n_rows, dim, (long long)(n_rows * dim * 4 >> 20));
        }
        *out = c;
        return FL_OK;
    }
    if (!(c->path = strdup(file))) {
        free(c);
        return fl_fail(err, FL_ENOMEM, "out of memory");
    }
    fl_code rc = FL_OK;
    fl_h5_lock();
    hid_t fapl = fl_h5_fapl();
    c->file = H5Fcreate(file, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (c->file < 0) {
        rc = featcache_h5_fail(c, err, "cannot create the feature cache file");
    } else {
        hsize_t dims[2] = {(hsize_t)n_rows, (hsize_t)dim}, chunk[2] = {16, (hsize_t)dim};
        hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE),
              dapl = H5Pcreate(H5P_DATASET_ACCESS);
        if (n_rows > 0)
            H5Pset_chunk(dcpl, 2, chunk);
        H5Pset_chunk_cache(dapl, 12421, (size_t)64 << 20, 1.0);
        c->dset = H5Dcreate2(c->file, "features", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, dapl);
        H5Sclose(space);
        H5Pclose(dcpl);
        H5Pclose(dapl);
        if (c->dset < 0)
            rc = featcache_h5_fail(c, err, "cannot create the feature cache's dataset");
    }
    fl_h5_unlock();
    if (rc) {
        fl_featcache_close(c);
        return rc;
    }
    *out = c;
    return FL_OK;
}

void fl_featcache_close(fl_featcache *c)
{
    if (!c)
        return;
    if (c->file >= 0) {
        fl_h5_lock();
        if (c->dset >= 0)
            H5Dclose(c->dset);
        H5Fclose(c->file);
        fl_h5_unlock();
    }
    if (c->path)
        unlink(c->path);
    free(c->path);
    free(c->mem);
    free(c);
}

int fl_featcache_in_file(const fl_featcache *c)
{
    return c->mem == NULL;
}

static fl_code featcache_check(const fl_featcache *c, int64_t row, fl_error *err)
{
    if (row < 0 || row >= c->n_rows)
        return fl_fail(err, FL_EINTERNAL, "feature cache: row %lld outside 0..%lld", (long long)row,
                       (long long)c->n_rows - 1);
    return FL_OK;
}

fl_code fl_featcache_put(fl_featcache *c, int64_t row0, int64_t n, const float *src, fl_error *err)
{
    if (n == 0)
        return FL_OK;
    fl_code rc = featcache_check(c, row0, err);
    if (!rc)
        rc = featcache_check(c, row0 + n - 1, err);
    if (rc)
        return rc;
    if (c->mem) {
        memcpy(c->mem + (size_t)row0 * c->dim, src, sizeof *src * (size_t)n * c->dim);
        return FL_OK;
    }
    fl_h5_lock();
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)n, (hsize_t)c->dim};
    hid_t fspace = H5Dget_space(c->dset), mspace = H5Screate_simple(2, count, NULL);
    herr_t h = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    if (h >= 0)
        h = H5Dwrite(c->dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, src);
    H5Sclose(mspace);
    H5Sclose(fspace);
    if (h < 0)
        rc = featcache_h5_fail(c, err, "cannot write to the feature cache file");
    fl_h5_unlock();
    return rc;
}

fl_code fl_featcache_get(fl_featcache *c, const int64_t *rows, int64_t n, float *dst, fl_error *err)
{
    fl_code rc = FL_OK;
    for (int64_t i = 0; i < n && !rc; i++)
        rc = featcache_check(c, rows[i], err);
    if (rc || n == 0)
        return rc;
    if (c->mem) {
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (size_t)i * c->dim, c->mem + (size_t)rows[i] * c->dim, sizeof *dst * (size_t)c->dim);
        return FL_OK;
    }
    fl_h5_lock();
    hsize_t count[2] = {1, (hsize_t)c->dim};
    hid_t fspace = H5Dget_space(c->dset), mspace = H5Screate_simple(2, count, NULL);
    herr_t h = 0;
    for (int64_t i = 0; i < n && h >= 0; i++) {
        /* Runs of consecutive rows in one read. */
        int64_t j = i + 1;
        while (j < n && rows[j] == rows[j - 1] + 1)
            j++;
        hsize_t start[2] = {(hsize_t)rows[i], 0}, run[2] = {(hsize_t)(j - i), (hsize_t)c->dim};
        H5Sset_extent_simple(mspace, 2, run, NULL);
        h = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, run, NULL);
        if (h >= 0)
            h = H5Dread(c->dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, dst + (size_t)i * c->dim);
        i = j - 1;
    }
    H5Sclose(mspace);
    H5Sclose(fspace);
    if (h < 0)
        rc = featcache_h5_fail(c, err, "cannot read the feature cache file");
    fl_h5_unlock();
    return rc;
}
