/* h5util.c -- see h5util.h. */
#include "dataset/h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/datafile.h"

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    char *buf = data;
    if (n == 0) /* innermost: the actual reason */
        snprintf(buf, 256, "%s", e->desc ? e->desc : "unknown HDF5 error");
    return 0;
}

void fl_h5_last_error(char *buf, size_t n)
{
    char tmp[256] = "unknown HDF5 error";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk_cb, tmp);
    snprintf(buf, n, "%s", tmp);
}

void fl_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

fl_code fl_h5_fail(fl_error *err, const char *path, const char *what)
{
    char why[256];
    fl_h5_last_error(why, sizeof why);
    return fl_fail(err, FL_EIO, "%s: %s (HDF5: %s)", path, what, why);
}

hid_t fl_h5_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static int h5_attr_write(hid_t obj, const char *name, hid_t mem_type, hid_t file_type, const void *value)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, mem_type, value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return st < 0 ? -1 : 0;
}

int fl_h5_attr_int(hid_t obj, const char *name, int64_t v, int wide)
{
    return h5_attr_write(obj, name, H5T_NATIVE_INT64, wide ? H5T_STD_I64LE : H5T_STD_I32LE, &v);
}

int fl_h5_attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = fl_h5_string_type();
    int r = h5_attr_write(obj, name, t, t, &s);
    H5Tclose(t);
    return r;
}

int fl_h5_attr_read_int(hid_t obj, const char *name, int64_t *v)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_INT64, v);
    if (a >= 0)
        H5Aclose(a);
    return st < 0 ? -1 : 0;
}

int fl_h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t n)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = a < 0 ? -1 : H5Aget_type(a);
    int r = -1;
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t t = fl_h5_string_type();
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

int fl_h5_write_nd(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, int64_t n, int64_t cols,
                   const void *data)
{
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : (n && (rank == 1 || cols) ? H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0);
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return st < 0 ? -1 : 0;
}

int fl_h5_shape(hid_t loc, const char *name, int rank, int64_t dims_out[2])
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
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

int fl_h5_read_all(hid_t loc, const char *name, hid_t mem_type, void *out)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    if (d >= 0)
        H5Dclose(d);
    return st < 0 ? -1 : 0;
}

hid_t fl_h5_open_readonly(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}
