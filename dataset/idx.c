/* idx.c -- see idx.h. zlib's gzread reads plain files as they are, so one
 * path serves both forms. */
#include "dataset/idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

/* Reads exactly n bytes; 0 on success. */
static int idx_read_all(gzFile f, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Reads exactly n bytes into a buffer that grows as the data arrives, so that
 * a header promising more than the file holds costs no more memory than the
 * file does (a 40-byte file may claim 2^28 images of 65535 x 65535). Returns
 * the buffer; NULL with *oom = 0 when the file ends first, *oom = 1 when
 * memory runs out. */
static unsigned char *idx_read_exact(gzFile f, size_t n, int *oom)
{
    size_t have = 0, cap = 0;
    unsigned char *buf = NULL;
    *oom = 0;
    do {
        size_t want = cap ? (cap > n / 2 ? n : cap * 2) : (n < (1u << 20) ? n : (1u << 20));
        unsigned char *nb = realloc(buf, want ? want : 1);
        if (!nb) {
            free(buf);
            *oom = 1;
            return NULL;
        }
        buf = nb;
        cap = want;
        if (idx_read_all(f, buf + have, cap - have)) {
            free(buf);
            return NULL;
        }
        have = cap;
    } while (have < n);
    return buf;
}

/* "PATH: at byte N" for messages: N counts the bytes of the IDX data, which
 * in a .gz file are the decompressed ones, so it says so; with what zlib
 * says of a damaged stream. */
static void idx_where(gzFile f, const char *path, long long at, char *out, size_t n)
{
    int zerr = Z_OK;
    const char *zmsg = gzerror(f, &zerr);
    if (zerr == Z_OK || zerr == Z_STREAM_END || zerr == Z_ERRNO || !zmsg)
        zmsg = "";
    size_t plen = strlen(path); /* zlib's message starts "PATH: " */
    if (!strncmp(zmsg, path, plen) && !strncmp(zmsg + plen, ": ", 2))
        zmsg += plen + 2;
    if (gzdirect(f))
        snprintf(out, n, "%s: at byte %lld", path, at);
    else
        snprintf(out, n, "%s: at byte %lld (uncompressed%s%s)", path, at, *zmsg ? "; gzip: " : "", zmsg);
}

/* Where the data ended: the bytes read so far. */
static long long idx_tell(gzFile f)
{
    z_off_t at = gztell(f);
    return at < 0 ? 0 : (long long)at;
}

/* Opens path and reads its header; dims[] gets ndims big-endian sizes. */
static fl_code idx_open(const char *path, int want_ndims, gzFile *out, uint32_t *dims, fl_error *err)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return fl_fail(err, FL_EINPUT, "%s: cannot open IDX file (%s)", path, strerror(errno));
    char where[4200];
    unsigned char magic[4];
    if (idx_read_all(f, magic, 4)) {
        idx_where(f, path, idx_tell(f), where, sizeof where);
        gzclose(f);
        return fl_fail(err, FL_EINPUT,
                       "%s: the file ends inside the 4-byte IDX magic number HINT: the file is empty or truncated; "
                       "download it again",
                       where);
    }
    if (magic[0] || magic[1] || magic[2] != 0x08 || magic[3] != want_ndims) {
        idx_where(f, path, 0, where, sizeof where);
        gzclose(f);
        return fl_fail(err, FL_EINPUT,
                       "%s: magic number %02x %02x %02x %02x, not an IDX file of unsigned bytes with %d dimensions (00 "
                       "00 08 %02x) HINT: expected the MNIST-family format (%s)",
                       where, magic[0], magic[1], magic[2], magic[3], want_ndims, want_ndims,
                       want_ndims == 3 ? "idx3-ubyte images" : "idx1-ubyte labels");
    }
    for (int i = 0; i < want_ndims; i++) {
        unsigned char b[4];
        if (idx_read_all(f, b, 4)) {
            idx_where(f, path, idx_tell(f), where, sizeof where);
            gzclose(f);
            return fl_fail(err, FL_EINPUT,
                           "%s: IDX header is truncated: the file ends inside size %d of %d (bytes %d..%d) HINT: the "
                           "download is truncated; download it again",
                           where, i + 1, want_ndims, 4 + 4 * i, 7 + 4 * i);
        }
        dims[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    *out = f;
    return FL_OK;
}

fl_code fl_idx_read_images(const char *path, fl_idx_images *out, fl_error *err)
{
    gzFile f = NULL;
    uint32_t d[3] = {0, 0, 0};
    memset(out, 0, sizeof *out);
    fl_code rc = idx_open(path, 3, &f, d, err);
    if (rc)
        return rc;
    char where[4200];
    for (int i = 0; i < 3; i++)
        if (d[i] == 0 || d[i] > (i == 0 ? (1u << 28) : 65535u)) {
            idx_where(f, path, 4 + 4 * i, where, sizeof where);
            gzclose(f);
            return fl_fail(err, FL_EINPUT,
                           "%s: implausible IDX image dimensions %u x %u x %u (the %s, %u, is outside 1..%u) HINT: the "
                           "file is corrupt or not an IDX image file",
                           where, d[0], d[1], d[2],
                           i == 0   ? "image count"
                           : i == 1 ? "row count"
                                    : "column count",
                           d[i], i == 0 ? (1u << 28) : 65535u);
        }
    size_t bytes = (size_t)d[0] * d[1] * d[2];
    int oom;
    out->pixels = idx_read_exact(f, bytes, &oom);
    if (!out->pixels) {
        idx_where(f, path, idx_tell(f), where, sizeof where);
        gzclose(f);
        if (oom)
            return fl_fail(err, FL_ENOMEM, "%s: out of memory for %zu bytes of images", path, bytes);
        return fl_fail(err, FL_EINPUT,
                       "%s: file ends before its %u images (%u x %u pixels from byte 16 on: %zu bytes, up to byte %zu) "
                       "HINT: the download is truncated",
                       where, d[0], d[1], d[2], bytes, 16 + bytes);
    }
    gzclose(f);
    out->count = (int)d[0];
    out->rows = (int)d[1];
    out->cols = (int)d[2];
    return FL_OK;
}

fl_code fl_idx_read_labels(const char *path, int *count, int32_t **labels, fl_error *err)
{
    gzFile f = NULL;
    uint32_t n = 0;
    *labels = NULL;
    fl_code rc = idx_open(path, 1, &f, &n, err);
    if (rc)
        return rc;
    char where[4200];
    if (n == 0 || n > (1u << 28)) {
        idx_where(f, path, 4, where, sizeof where);
        gzclose(f);
        return fl_fail(
            err, FL_EINPUT,
            "%s: implausible IDX label count %u (outside 1..%u) HINT: the file is corrupt or not an IDX label file",
            where, n, 1u << 28);
    }
    int oom;
    unsigned char *raw = idx_read_exact(f, n, &oom);
    int32_t *lab = raw ? malloc(sizeof *lab * n) : NULL;
    if (!lab) {
        idx_where(f, path, idx_tell(f), where, sizeof where);
        free(raw);
        gzclose(f);
        if (raw || oom)
            return fl_fail(err, FL_ENOMEM, "%s: out of memory for %u labels", path, n);
        return fl_fail(err, FL_EINPUT,
                       "%s: file ends before its %u labels (one byte each from byte 8 on, up to byte %llu) HINT: the "
                       "download is truncated",
                       where, n, 8ull + n);
    }
    gzclose(f);
    for (uint32_t i = 0; i < n; i++)
        lab[i] = raw[i];
    free(raw);
    *count = (int)n;
    *labels = lab;
    return FL_OK;
}

void fl_idx_images_free(fl_idx_images *im)
{
    free(im->pixels);
    im->pixels = NULL;
}

int fl_idx_find(const char *dir, const char *stem, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", dir, stem);
    if (access(buf, F_OK) == 0)
        return 1;
    snprintf(buf, n, "%s/%s.gz", dir, stem);
    return access(buf, F_OK) == 0;
}
