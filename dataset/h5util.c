/* h5util.c -- see h5util.h. */
#include "dataset/h5util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/datafile.h"

/* Walking down from the API call, the last entry is the innermost: the
 * actual reason ("truncated file: ...", "data error detected by Fletcher32
 * checksum") rather than the API's summary ("unable to open file"). */
static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    char *buf = data;
    if (e->desc && e->desc[0])
        snprintf(buf, 256, "%s", e->desc);
    return 0;
}

/* One line for foldline's messages: HDF5's I/O errors read "file write
 * failed: time = <ctime with a newline>, filename = ..., errno = 28, error
 * message = 'No space left on device', ..."; keep the summary and the
 * system's reason, and no control characters. */
static void h5_one_line(char *buf, size_t n)
{
    const char *m = strstr(buf, "error message = '");
    if (m) {
        char reason[128], head[64];
        m += strlen("error message = '");
        size_t len = strcspn(m, "'");
        snprintf(reason, sizeof reason, "%.*s", (int)(len < 127 ? len : 127), m);
        snprintf(head, sizeof head, "%.*s", (int)strcspn(buf, ":"), buf);
        snprintf(buf, n, "%s: %s", head, reason);
    }
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
}

/* The innermost message of the last failed HDF5 call on this thread. HDF5
 * clears its error stack at the next API call (an H5Sclose in a cleanup), so
 * the message is captured when the failure happens: HDF5 calls the "auto"
 * error handler at the API boundary of every failing call. */
static _Thread_local char h5_last[256];

static herr_t h5_capture(hid_t estack, void *data)
{
    (void)data;
    char tmp[256] = "";
    H5Ewalk2(estack, H5E_WALK_DOWNWARD, h5_walk_cb, tmp);
    if (tmp[0])
        snprintf(h5_last, sizeof h5_last, "%s", tmp);
    return 0;
}

void fl_h5_last_error(char *buf, size_t n)
{
    char tmp[256] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk_cb, tmp);
    snprintf(buf, n, "%s", tmp[0] ? tmp : h5_last[0] ? h5_last : "unknown HDF5 error");
    h5_one_line(buf, n);
}

void fl_h5_quiet(void)
{
    /* No clean-up at exit: after a write failed (a full disk), HDF5 cannot
     * close that file and its exit handler prints "infinite loop closing
     * library" after foldline's one-line error. foldline closes its files
     * itself. Effective only before HDF5's first use, hence here. */
    H5dont_atexit();
    /* Per thread in a thread-safe HDF5: every thread that calls HDF5 calls this. */
    H5Eset_auto2(H5E_DEFAULT, h5_capture, NULL);
}

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
    herr_t st =
        d < 0 ? -1 : (n && (rank == 1 || cols) ? H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0);
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

/* H5Pset_file_locking exists from HDF5 1.10.7 in the 1.10 series and from
 * 1.12.1 on (not in 1.12.0). */
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
#define FL_H5_HAVE_SET_FILE_LOCKING 1
#else
#define FL_H5_HAVE_SET_FILE_LOCKING 0
#endif

hid_t fl_h5_fapl(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
#if FL_H5_HAVE_SET_FILE_LOCKING
    /* Readers share files that nobody writes (a data file, finished
     * predictions); writers write temporary files nobody else opens. Locks
     * protect neither, and on NFS or Lustre they fail or hang. */
    H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

/* Closes the property lists a file open or create used (plist2 may be -1)
 * and returns f. H5Pclose would clear the error stack that explains a failed
 * open, so when f < 0 the stack is kept across the closes. */
static hid_t h5_close_plists(hid_t f, hid_t plist1, hid_t plist2)
{
    hid_t stack = f < 0 ? H5Eget_current_stack() : -1;
    H5Pclose(plist1);
    if (plist2 >= 0)
        H5Pclose(plist2);
    if (stack >= 0)
        H5Eset_current_stack(stack);
    return f;
}

hid_t fl_h5_open_readonly(const char *path)
{
    hid_t fapl = fl_h5_fapl();
    return h5_close_plists(H5Fopen(path, H5F_ACC_RDONLY, fapl), fapl, -1);
}

/* A file access list for writing: no locks, and the 1.10 file format. */
static hid_t h5_fapl_write(void)
{
    hid_t fapl = fl_h5_fapl();
#if H5_VERSION_GE(1, 10, 2)
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
#endif
    return fapl;
}

hid_t fl_h5_create(const char *path)
{
    hid_t fapl = h5_fapl_write(), fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, FL_H5_USERBLOCK); /* room for fl_h5_seal */
    return h5_close_plists(H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl), fcpl, fapl);
}

hid_t fl_h5_reopen_rdwr(const char *path)
{
    hid_t fapl = h5_fapl_write();
    return h5_close_plists(H5Fopen(path, H5F_ACC_RDWR, fapl), fapl, -1);
}

/* HDF5's own Fletcher-32 (H5_checksum_fletcher32 in H5checksum.c): 16-bit
 * big-endian words, sums folded every 360 words, an odd last byte as the
 * high byte of a word. */
uint32_t fl_h5_fletcher32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t sum1 = 0, sum2 = 0;
    for (size_t words = len / 2; words;) {
        size_t n = words > 360 ? 360 : words;
        words -= n;
        do {
            sum1 += (uint32_t)p[0] << 8 | p[1];
            p += 2;
            sum2 += sum1;
        } while (--n);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (len % 2) {
        sum1 += (uint32_t)*p << 8;
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return sum2 << 16 | sum1;
}

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;

void fl_h5_lock(void)
{
    pthread_mutex_lock(&h5_mutex);
}

void fl_h5_unlock(void)
{
    pthread_mutex_unlock(&h5_mutex);
}
