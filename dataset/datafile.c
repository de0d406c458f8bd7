/* datafile.c -- see datafile.h. The layout, writing and reading of
 * foldline's data file; its integrity checks are in datafile_check.c.
 * Errors are reported with the file's name and HDF5's own reason. */
#include "dataset/datafile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/hash.h"
#include "dataset/datafile_priv.h"

const char *const fl_datafile_split_group[2] = {"train", "test"};
#define split_group fl_datafile_split_group

struct fl_datafile_writer {
    char *file_path; /* the file written */
    char *path;      /* the file in messages */
    hid_t file;
    hid_t images[2];   /* dataset ids of /train/images, /test/images */
    uint8_t *chunk;    /* one image and its Fletcher-32 checksum */
    uint64_t meta_end; /* file length before the first pixel (0: none written yet) */
    fl_data_info info;
};

/* ---- small writers ------------------------------------------------------- */

static int h5_write_1d(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int64_t n, const void *data)
{
    return fl_h5_write_nd(loc, name, mem_type, file_type, 1, n, 1, data);
}

static int h5_write_strings(hid_t loc, const char *name, int64_t n, char *const *s)
{
    hid_t t = fl_h5_string_type();
    int r = h5_write_1d(loc, name, t, t, n, s);
    H5Tclose(t);
    return r;
}

/* (n, ch, H, W) uint8, one image per chunk, each with HDF5's Fletcher-32
 * checksum: HDF5 verifies it whenever the chunk is read (h5py too), so a
 * corrupt image is an error, never a silently wrong training input. It
 * costs 4 bytes per image and, measured on 3x224x224 images from the page
 * cache, about 70 us per image read (150 us instead of 80), which the
 * loader's prefetch thread hides; no compression (pixels barely compress
 * and decompressing would cost more than reading). */
static hid_t h5_create_images(hid_t loc, int64_t n, const fl_data_info *in)
{
    hsize_t dims[4] = {(hsize_t)n, (hsize_t)in->channels, (hsize_t)in->height, (hsize_t)in->width};
    hsize_t chunk[4] = {1, dims[1], dims[2], dims[3]};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Pset_fletcher32(dcpl);
    /* Chunks are written whole, so no fill pass is needed. */
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t d = H5Dcreate2(loc, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return d;
}

fl_code fl_datafile_create(const char *path, const char *name, const fl_data_info *info, fl_datafile_writer **out,
                           fl_error *err)
{
    *out = NULL;
    name = name ? name : path;
    size_t bytes = (size_t)info->channels * info->height * info->width;
    fl_datafile_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(name)) || !(w->file_path = strdup(path)) || !(w->chunk = malloc(bytes + 4))) {
        if (w) {
            free(w->path);
            free(w->file_path);
        }
        free(w);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", name);
    }
    w->info = *info;
    w->images[0] = w->images[1] = -1;
    w->file = fl_h5_create(path);
    if (w->file < 0) {
        fl_code rc = fl_h5_fail(err, name, "cannot create HDF5 file");
        free(w->chunk);
        free(w->file_path);
        free(w->path);
        free(w);
        return rc;
    }
    *out = w;
    hid_t f = w->file;
    int bad = fl_h5_attr_str(f, "format", FL_DATA_FORMAT) || fl_h5_attr_int(f, "version", FL_DATA_VERSION, 0) ||
              fl_h5_attr_int(f, "num_classes", info->num_classes, 0) || fl_h5_attr_int(f, "folds", info->folds, 0) ||
              fl_h5_attr_int(f, "fold_seed", info->fold_seed, 1) || fl_h5_attr_int(f, "height", info->height, 0) ||
              fl_h5_attr_int(f, "width", info->width, 0) || fl_h5_attr_int(f, "channels", info->channels, 0) ||
              h5_write_strings(f, "classes", info->num_classes, info->classes);
    for (int s = 0; s < 2 && !bad; s++) {
        hid_t g = H5Gcreate2(f, split_group[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            bad = 1;
            break;
        }
        w->images[s] = h5_create_images(g, s == 0 ? info->n_train : info->n_test, info);
        bad = w->images[s] < 0;
        H5Gclose(g);
    }
    if (bad)
        return fl_h5_fail(err, name, "cannot lay out the data file");
    return FL_OK;
}

fl_code fl_datafile_write_rows(fl_datafile_writer *w, fl_split_id split, const int32_t *labels, const int32_t *fold,
                               char *const *paths, fl_error *err)
{
    int64_t n = split == FL_SPLIT_TRAIN ? w->info.n_train : w->info.n_test;
    hid_t g = H5Gopen2(w->file, split_group[split], H5P_DEFAULT);
    int bad = g < 0 || h5_write_strings(g, "paths", n, paths) ||
              (labels && h5_write_1d(g, "labels", H5T_NATIVE_INT32, H5T_STD_I32LE, n, labels)) ||
              (fold && h5_write_1d(g, "fold", H5T_NATIVE_INT32, H5T_STD_I32LE, n, fold));
    if (g >= 0)
        H5Gclose(g);
    return bad ? fl_h5_fail(err, w->path, "cannot write row data") : FL_OK;
}

/* Selects rows [first, first+count) of a (N, ch, H, W) dataset. */
static hid_t h5_select_rows(hid_t d, int64_t first, int64_t count, hid_t *mem)
{
    hid_t fs = H5Dget_space(d);
    hsize_t dims[4];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    hsize_t start[4] = {(hsize_t)first, 0, 0, 0}, cnt[4] = {(hsize_t)count, dims[1], dims[2], dims[3]};
    if ((hsize_t)(first + count) > dims[0] || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0) {
        H5Sclose(fs);
        return -1;
    }
    *mem = H5Screate_simple(4, cnt, NULL);
    return fs;
}

/* Before the first pixel: closes the file, so that everything written so far
 * (attributes, classes, rows) lies before meta_end, which the seal covers, and
 * reopens it; HDF5 puts what comes next (chunks, their index) after it. */
static fl_code writer_start_pixels(fl_datafile_writer *w, fl_error *err)
{
    for (int s = 0; s < 2; s++)
        if (w->images[s] >= 0 && H5Dclose(w->images[s]) >= 0)
            w->images[s] = -1;
    herr_t st = H5Fclose(w->file);
    w->file = -1;
    struct stat sb;
    if (st < 0 || stat(w->file_path, &sb) != 0)
        return fl_h5_fail(err, w->path, "cannot flush the metadata (disk full?)");
    w->meta_end = (uint64_t)sb.st_size;
    if ((w->file = fl_h5_reopen_rdwr(w->file_path)) < 0)
        return fl_h5_fail(err, w->path, "cannot reopen to write the images");
    for (int s = 0; s < 2; s++) {
        char name[32];
        snprintf(name, sizeof name, "%s/images", split_group[s]);
        if ((w->images[s] = H5Dopen2(w->file, name, H5P_DEFAULT)) < 0)
            return fl_h5_fail(err, w->path, "cannot reopen the image datasets");
    }
    return FL_OK;
}

fl_code fl_datafile_write_images(fl_datafile_writer *w, fl_split_id split, int64_t first, int64_t count,
                                 const uint8_t *chw, fl_error *err)
{
    fl_code rc;
    if (!w->meta_end && (rc = writer_start_pixels(w, err)))
        return rc;
#if H5_VERSION_GE(1, 10, 3)
    /* One image is one chunk: hand HDF5 the bytes and their checksum (what
     * its Fletcher-32 filter would produce) directly, skipping the dataspace
     * selection and filter machinery (about 2x faster writes). */
    const fl_data_info *in = &w->info;
    size_t bytes = (size_t)in->channels * in->height * in->width;
    int64_t n = split == FL_SPLIT_TRAIN ? in->n_train : in->n_test;
    if (first < 0 || first + count > n)
        return fl_fail(err, FL_EINTERNAL, "%s: image rows %lld..%lld are out of range", w->path, (long long)first,
                       (long long)(first + count));
    for (int64_t i = 0; i < count; i++) {
        hsize_t off[4] = {(hsize_t)(first + i), 0, 0, 0};
        const uint8_t *img = chw + (size_t)i * bytes;
        uint32_t sum = fl_h5_fletcher32(img, bytes);
        memcpy(w->chunk, img, bytes);
        for (int b = 0; b < 4; b++) /* little-endian, as HDF5's filter stores it */
            w->chunk[bytes + b] = (uint8_t)(sum >> (8 * b));
        if (H5Dwrite_chunk(w->images[split], H5P_DEFAULT, 0, off, bytes + 4, w->chunk) < 0)
            return fl_h5_fail(err, w->path, "cannot write images");
    }
    return FL_OK;
#else
    hid_t mem, fs = h5_select_rows(w->images[split], first, count, &mem);
    if (fs < 0)
        return fl_fail(err, FL_EINTERNAL, "%s: image rows %lld..%lld are out of range", w->path, (long long)first,
                       (long long)(first + count));
    herr_t st = H5Dwrite(w->images[split], H5T_NATIVE_UINT8, mem, fs, H5P_DEFAULT, chw);
    H5Sclose(mem);
    H5Sclose(fs);
    return st < 0 ? fl_h5_fail(err, w->path, "cannot write images") : FL_OK;
#endif
}

fl_code fl_datafile_finish(fl_datafile_writer *w, fl_error *err)
{
    fl_code rc = FL_OK;
    for (int s = 0; s < 2; s++)
        if (w->images[s] >= 0)
            H5Dclose(w->images[s]);
    if (w->file >= 0 && H5Fclose(w->file) < 0)
        rc = fl_h5_fail(err, w->path, "cannot close the HDF5 file (disk full?)");
    else if (w->file < 0)
        rc = fl_fail(err, FL_EIO, "%s: cannot reopen to write the images", w->path);
    /* No pixel written (no rows): the seal covers the whole file. */
    if (!rc)
        rc = fl_h5_seal(w->file_path, w->path, w->meta_end, err);
    free(w->chunk);
    free(w->file_path);
    free(w->path);
    free(w);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

/* Length of a 1-D dataset, or -1 if absent or not 1-D. */
static int64_t h5_len_1d(hid_t loc, const char *name)
{
    int64_t dims[2];
    return fl_h5_shape(loc, name, 1, dims) ? -1 : dims[0];
}

static fl_code h5_read_strings(hid_t loc, const char *name, const char *path, int64_t n, char ***out, fl_error *err)
{
    char **s = calloc((size_t)(n > 0 ? n : 1), sizeof *s);
    char **copy = calloc((size_t)(n > 0 ? n : 1), sizeof *copy);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t t = fl_h5_string_type();
    fl_code rc = FL_OK;
    if (!s || !copy)
        rc = fl_fail(err, FL_ENOMEM, "%s: out of memory reading /%s", path, name);
    else if (d < 0 || (n && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0))
        rc = fl_fail(err, FL_EINPUT, "%s: cannot read strings '%s' HINT: rerun foldline prep", path, name);
    for (int64_t i = 0; !rc && i < n; i++)
        if (!(copy[i] = strdup(s[i] ? s[i] : "")))
            rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    if (d >= 0 && n && s) {
        hid_t sp = H5Dget_space(d);
        H5Dvlen_reclaim(t, sp, H5P_DEFAULT, s);
        H5Sclose(sp);
    }
    if (d >= 0)
        H5Dclose(d);
    H5Tclose(t);
    free(s);
    if (rc) {
        fl_datafile_free_paths(copy, n);
        return rc;
    }
    *out = copy;
    return FL_OK;
}

void fl_datafile_free_paths(char **paths, int64_t n)
{
    for (int64_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
}

/* Checks one split's datasets against the root attributes. */
static fl_code datafile_check_split(fl_datafile *df, int s, fl_error *err)
{
    const char *g = split_group[s];
    char name[64];
    fl_data_info *in = &df->info;
    snprintf(name, sizeof name, "%s/images", g);
    if (H5Lexists(df->file, g, H5P_DEFAULT) <= 0 || H5Lexists(df->file, name, H5P_DEFAULT) <= 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: no /%s HINT: the file is not a complete foldline data file; rerun foldline prep", df->path,
                       name);
    df->images[s] = H5Dopen2(df->file, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(df->images[s]);
    hsize_t dims[4] = {0};
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd == 4)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (nd != 4 || dims[1] != (hsize_t)in->channels || dims[2] != (hsize_t)in->height || dims[3] != (hsize_t)in->width)
        return fl_fail(err, FL_EINPUT, "%s: /%s is not (N, %d, %d, %d) as the attributes say", df->path, name,
                       in->channels, in->height, in->width);
    int64_t n = (int64_t)dims[0];
    if (s == 0)
        in->n_train = n;
    else
        in->n_test = n;
    const char *need[3] = {"paths", s == 0 ? "labels" : NULL, s == 0 ? "fold" : NULL};
    for (int i = 0; i < 3; i++) {
        if (!need[i])
            continue;
        snprintf(name, sizeof name, "%s/%s", g, need[i]);
        if (h5_len_1d(df->file, name) != n)
            return fl_fail(err, FL_EINPUT, "%s: /%s is missing or not of length %lld HINT: rerun foldline prep",
                           df->path, name, (long long)n);
    }
    if (s == 1) {
        /* Present means usable: a damaged /test/labels is an error, not absent labels. */
        int present = H5Lexists(df->file, "test/labels", H5P_DEFAULT) > 0;
        int64_t nl = present ? h5_len_1d(df->file, "test/labels") : -1;
        if (present && nl != n)
            return fl_fail(err, FL_EINPUT,
                           "%s: /test/labels is unreadable or has %lld rows for %lld images HINT: rerun foldline prep",
                           df->path, (long long)nl, (long long)n);
        in->has_test_labels = present;
    }
    return FL_OK;
}

fl_code fl_datafile_open(const char *path, fl_datafile **out, fl_error *err)
{
    *out = NULL;
    fl_datafile *df = calloc(1, sizeof *df);
    if (!df || !(df->path = strdup(path))) {
        free(df);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    df->images[0] = df->images[1] = -1;
    int sealed = 0;
    fl_code rc = fl_h5_check_seal(path, &sealed, &df->info.seal_crc, err);
    if (rc)
        goto fail;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        rc = fl_fail(err, FL_EINPUT, "%s: %s HINT: make it with foldline prep", path,
                     is < 0 ? "cannot open (missing or unreadable)" : "not an HDF5 file");
        goto fail;
    }
    df->file = fl_h5_open_readonly(path);
    if (df->file < 0) {
        rc = datafile_open_failed(path, err);
        goto fail;
    }
    char fmt[64] = "";
    int64_t v[7];
    if (fl_h5_attr_read_str(df->file, "format", fmt, sizeof fmt) || strcmp(fmt, FL_DATA_FORMAT) != 0) {
        rc = fl_fail(err, FL_EINPUT,
                     "%s: not a foldline data file (format attribute is '%s') HINT: make it with foldline prep", path,
                     fmt);
        goto fail;
    }
    if (fl_h5_attr_read_int(df->file, "version", &v[0]) || v[0] != FL_DATA_VERSION) {
        rc = fl_fail(
            err, FL_EINPUT,
            "%s: data file version %lld, this foldline reads version %d HINT: rerun foldline prep with this foldline",
            path, (long long)v[0], FL_DATA_VERSION);
        goto fail;
    }
    const char *keys[6] = {"num_classes", "folds", "fold_seed", "height", "width", "channels"};
    for (int i = 0; i < 6; i++)
        if (fl_h5_attr_read_int(df->file, keys[i], &v[i + 1])) {
            rc = fl_fail(err, FL_EINPUT, "%s: root attribute '%s' is missing HINT: rerun foldline prep", path, keys[i]);
            goto fail;
        }
    fl_data_info *in = &df->info;
    in->num_classes = (int)v[1];
    in->folds = (int)v[2];
    in->fold_seed = v[3];
    in->height = (int)v[4];
    in->width = (int)v[5];
    in->channels = (int)v[6];
    if (in->num_classes < 1 || in->folds < 1 || in->height < 1 || in->width < 1 ||
        (in->channels != 1 && in->channels != 3)) {
        rc = fl_fail(err, FL_EINPUT, "%s: root attributes out of range (classes %d, folds %d, %dx%dx%d)", path,
                     in->num_classes, in->folds, in->channels, in->height, in->width);
        goto fail;
    }
    if (h5_len_1d(df->file, "classes") != in->num_classes) {
        rc = fl_fail(err, FL_EINPUT, "%s: /classes does not hold %d names", path, in->num_classes);
        goto fail;
    }
    if ((rc = h5_read_strings(df->file, "classes", path, in->num_classes, &in->classes, err)))
        goto fail;
    for (int s = 0; s < 2; s++)
        if ((rc = datafile_check_split(df, s, err)))
            goto fail;
    if (sealed)
        in->checks |= FL_DATA_CHECK_SEAL;
    if (datafile_images_checksummed(df->images[0]) && datafile_images_checksummed(df->images[1]))
        in->checks |= FL_DATA_CHECK_PIXELS;
    *out = df;
    return FL_OK;
fail:
    fl_datafile_close(df);
    return rc;
}

void fl_datafile_close(fl_datafile *df)
{
    if (!df)
        return;
    for (int s = 0; s < 2; s++)
        if (df->images[s] >= 0)
            H5Dclose(df->images[s]);
    if (df->file > 0)
        H5Fclose(df->file);
    fl_datafile_free_paths(df->info.classes, df->info.num_classes);
    free(df->path);
    free(df);
}

const fl_data_info *fl_datafile_info(const fl_datafile *df)
{
    return &df->info;
}

/* Reads the (n) values of dataset name, each of which must lie in 0..hi-1. */
static fl_code datafile_read_int32(fl_datafile *df, const char *name, int64_t n, int32_t hi, int32_t *out,
                                   fl_error *err)
{
    hid_t d = H5Dopen2(df->file, name, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    if (d >= 0)
        H5Dclose(d);
    if (st < 0)
        return fl_h5_fail(err, df->path, name);
    for (int64_t i = 0; i < n; i++)
        if (out[i] < 0 || out[i] >= hi)
            return fl_fail(err, FL_EINPUT,
                           "%s: /%s row %lld is %d, outside 0..%d HINT: the file is corrupt or was not written by "
                           "foldline prep; rerun foldline prep",
                           df->path, name, (long long)i, out[i], hi - 1);
    return FL_OK;
}

fl_code fl_datafile_read_labels(fl_datafile *df, fl_split_id split, int32_t *labels, fl_error *err)
{
    if (split == FL_SPLIT_TEST && !df->info.has_test_labels)
        return fl_fail(err, FL_EINPUT, "%s: the test set has no labels", df->path);
    return datafile_read_int32(df, split == FL_SPLIT_TRAIN ? "train/labels" : "test/labels",
                               split == FL_SPLIT_TRAIN ? df->info.n_train : df->info.n_test, df->info.num_classes,
                               labels, err);
}

fl_code fl_datafile_read_folds(fl_datafile *df, int32_t *fold, fl_error *err)
{
    return datafile_read_int32(df, "train/fold", df->info.n_train, df->info.folds, fold, err);
}

/* One H5Dread of rows [first, first+count); HDF5's reason in why on failure. */
static int datafile_read_raw(fl_datafile *df, fl_split_id split, int64_t first, int64_t count, uint8_t *chw,
                             char why[256])
{
    hid_t mem, fs = h5_select_rows(df->images[split], first, count, &mem);
    if (fs < 0)
        return snprintf(why, 256, "rows out of range"), -1;
    herr_t st = H5Dread(df->images[split], H5T_NATIVE_UINT8, mem, fs, H5P_DEFAULT, chw);
    if (st < 0) /* before H5Sclose clears HDF5's error stack */
        fl_h5_last_error(why, 256);
    H5Sclose(mem);
    H5Sclose(fs);
    return st < 0 ? -1 : 0;
}

fl_code fl_datafile_read_images(fl_datafile *df, fl_split_id split, int64_t first, int64_t count, uint8_t *chw,
                                fl_error *err)
{
    int64_t n = split == FL_SPLIT_TRAIN ? df->info.n_train : df->info.n_test;
    if (first < 0 || count < 0 || first + count > n)
        return fl_fail(err, FL_EINTERNAL, "%s: image rows %lld..%lld are out of range", df->path, (long long)first,
                       (long long)(first + count));
    char why[256];
    if (!count || !datafile_read_raw(df, split, first, count, chw, why))
        return FL_OK;
    /* Name the row: read them one by one (into chw, which holds them all). */
    size_t bytes = (size_t)df->info.channels * df->info.height * df->info.width;
    int64_t bad = first;
    for (int64_t r = first; count > 1 && r < first + count; r++)
        if (datafile_read_raw(df, split, r, 1, chw + (size_t)(r - first) * bytes, why)) {
            bad = r;
            break;
        }
    char **paths = NULL;
    fl_error e;
    int have = !fl_datafile_read_paths(df, split, &paths, &e);
    fl_fail(err, strstr(why, "checksum") ? FL_EINPUT : FL_EIO,
            "%s: /%s/images row %lld (image_path '%s') cannot be read (HDF5: %s) HINT: the data file is damaged; copy "
            "it again or rerun foldline prep",
            df->path, split_group[split], (long long)bad, have ? paths[bad] : "?", why);
    if (have)
        fl_datafile_free_paths(paths, n);
    return err->code;
}

fl_code fl_datafile_read_paths(fl_datafile *df, fl_split_id split, char ***paths, fl_error *err)
{
    return h5_read_strings(df->file, split == FL_SPLIT_TRAIN ? "train/paths" : "test/paths", df->path,
                           split == FL_SPLIT_TRAIN ? df->info.n_train : df->info.n_test, paths, err);
}

fl_code fl_datafile_fingerprint(fl_datafile *df, char out[17], fl_error *err)
{
    char **paths = NULL;
    fl_code rc = fl_datafile_read_paths(df, FL_SPLIT_TEST, &paths, err);
    if (rc)
        return rc;
    char head[64];
    snprintf(head, sizeof head, "%d classes, %lld test rows\n", df->info.num_classes, (long long)df->info.n_test);
    uint64_t h = fl_fnv1a_str(FL_FNV1A_INIT, head);
    for (int64_t i = 0; i < df->info.n_test; i++)
        h = fl_fnv1a(fl_fnv1a_str(h, paths[i]), "\n", 1);
    fl_datafile_free_paths(paths, df->info.n_test);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return FL_OK;
}
