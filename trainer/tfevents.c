/* tfevents.c -- see tfevents.h. */
#define _XOPEN_SOURCE 700
#include "trainer/tfevents.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/progress.h"

struct fl_tfevents {
    int fd;
    char path[4200];
};

uint32_t fl_crc32c(const void *data, size_t n)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0x82f63b78u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t crc = 0xffffffffu;
    for (const unsigned char *p = data, *end = p + n; p < end; p++)
        crc = table[(crc ^ *p) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

uint32_t fl_crc32c_masked(const void *data, size_t n)
{
    uint32_t c = fl_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- protocol buffer encoding ------------------------------------------------ */

static size_t pb_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static size_t pb_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return (size_t)bytes;
}

/* An Event into buf (512 bytes): file_version when version, else one scalar. */
static size_t tf_event(unsigned char *buf, double wall, int64_t step, const char *version, const char *tag, float value)
{
    size_t n = 0;
    uint64_t bits;
    memcpy(&bits, &wall, 8);
    buf[n++] = 0x09; /* wall_time, fixed64 */
    n += pb_le(buf + n, bits, 8);
    buf[n++] = 0x10; /* step, varint */
    n += pb_varint(buf + n, (uint64_t)step);
    if (version) {
        size_t len = strlen(version);
        buf[n++] = 0x1a; /* file_version, bytes */
        n += pb_varint(buf + n, len);
        memcpy(buf + n, version, len);
        return n + len;
    }
    size_t tlen = strlen(tag) > 200 ? 200 : strlen(tag);
    unsigned char val[256];
    size_t v = 0;
    uint32_t fbits;
    memcpy(&fbits, &value, 4);
    val[v++] = 0x0a; /* Value.tag */
    v += pb_varint(val + v, tlen);
    memcpy(val + v, tag, tlen);
    v += tlen;
    val[v++] = 0x15; /* Value.simple_value, fixed32 */
    v += pb_le(val + v, fbits, 4);
    unsigned char sum[300];
    size_t s = 0;
    sum[s++] = 0x0a; /* Summary.value */
    s += pb_varint(sum + s, v);
    memcpy(sum + s, val, v);
    s += v;
    buf[n++] = 0x2a; /* Event.summary */
    n += pb_varint(buf + n, s);
    memcpy(buf + n, sum, s);
    return n + s;
}

static fl_code tf_record(fl_tfevents *t, const unsigned char *data, size_t n, fl_error *err)
{
    unsigned char rec[600];
    size_t k = pb_le(rec, n, 8);
    k += pb_le(rec + k, fl_crc32c_masked(rec, 8), 4);
    memcpy(rec + k, data, n);
    k += n;
    k += pb_le(rec + k, fl_crc32c_masked(data, n), 4);
    if (write(t->fd, rec, k) != (ssize_t)k)
        return fl_fail(err, FL_EIO, "cannot write %s: %s", t->path, errno ? strerror(errno) : "short write");
    return FL_OK;
}

/* ---- cutting a file after a checkpoint ---------------------------------------- */

static int pb_read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

/* The step and the first value's tag (tag[0] = 0 when none) of an Event. */
static int tf_parse(const unsigned char *p, size_t n, int64_t *step, char *tag, size_t cap)
{
    const unsigned char *end = p + n;
    *step = 0;
    tag[0] = '\0';
    while (p < end) {
        uint64_t key, len;
        if (!pb_read_varint(&p, end, &key))
            return 0;
        int field = (int)(key >> 3), wire = (int)(key & 7);
        if (wire == 0) {
            uint64_t v;
            if (!pb_read_varint(&p, end, &v))
                return 0;
            if (field == 2)
                *step = (int64_t)v;
        } else if (wire == 1 || wire == 5) {
            p += wire == 1 ? 8 : 4;
        } else if (wire == 2) {
            if (!pb_read_varint(&p, end, &len) || len > (uint64_t)(end - p))
                return 0;
            if (field == 5) { /* summary { value { tag } } */
                const unsigned char *q = p, *qe = p + len;
                uint64_t k2, l2, k3, l3;
                if (pb_read_varint(&q, qe, &k2) && k2 == 0x0a && pb_read_varint(&q, qe, &l2) &&
                    l2 <= (uint64_t)(qe - q) && pb_read_varint(&q, qe, &k3) && k3 == 0x0a &&
                    pb_read_varint(&q, qe, &l3) && l3 <= (uint64_t)(qe - q) && l3 < cap) {
                    memcpy(tag, q, l3);
                    tag[l3] = '\0';
                }
            }
            p += len;
        } else {
            return 0;
        }
    }
    return p == end;
}

/* Cuts path at its first record past the checkpoint, or at a record that is
 * torn or corrupt (a process killed in the middle of a write). */
static fl_code tf_cut(const char *path, int epochs_done, int64_t ticks_done, fl_error *err)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return fl_fail(err, FL_EIO, "cannot open %s: %s", path, strerror(errno));
    off_t pos = 0;
    unsigned char head[12], *data = NULL;
    for (;;) {
        if (pread(fd, head, 12, pos) != 12)
            break;
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | head[i];
        uint32_t crc = (uint32_t)head[8] | (uint32_t)head[9] << 8 | (uint32_t)head[10] << 16 | (uint32_t)head[11] << 24;
        if (crc != fl_crc32c_masked(head, 8) || n > (1u << 20))
            break;
        unsigned char *d = realloc(data, n + 4);
        if (!d)
            break;
        data = d;
        if (pread(fd, data, n + 4, pos + 12) != (ssize_t)(n + 4))
            break;
        uint32_t dcrc =
            (uint32_t)data[n] | (uint32_t)data[n + 1] << 8 | (uint32_t)data[n + 2] << 16 | (uint32_t)data[n + 3] << 24;
        int64_t step;
        char tag[256];
        if (dcrc != fl_crc32c_masked(data, n) || !tf_parse(data, n, &step, tag, sizeof tag))
            break;
        if (tag[0] && (!strncmp(tag, "tick/", 5) ? step > ticks_done : step >= epochs_done))
            break;
        pos += 12 + (off_t)n + 4;
    }
    free(data);
    struct stat st;
    fl_code rc = FL_OK;
    if (fstat(fd, &st) == 0 && st.st_size > pos && (ftruncate(fd, pos) != 0 || fsync(fd) != 0))
        rc = fl_fail(err, FL_EIO, "cannot cut %s after the checkpoint: %s", path, strerror(errno));
    close(fd);
    return rc;
}

fl_code fl_tfevents_open(const char *dir, int epochs_done, int64_t ticks_done, fl_tfevents **out, fl_error *err)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return fl_fail(err, FL_EIO, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    fl_code rc = FL_OK;
    while (!rc && (e = readdir(d)))
        if (!strncmp(e->d_name, "events.out.tfevents.", 20)) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            rc = tf_cut(path, epochs_done, ticks_done, err);
        }
    closedir(d);
    if (rc)
        return rc;
    fl_tfevents *t = calloc(1, sizeof *t);
    if (!t)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, "/")] = '\0';
    snprintf(t->path, sizeof t->path, "%s/events.out.tfevents.%lld.%s", dir, (long long)time(NULL), host);
    /* Appending: a rerun within the same second finds its own cut file. */
    t->fd = open(t->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        rc = fl_fail(err, FL_EIO, "cannot create %s: %s", t->path, strerror(errno));
        free(t);
        return rc;
    }
    unsigned char buf[512];
    size_t n = tf_event(buf, fl_progress_wall(), 0, "brain.Event:2", NULL, 0);
    if ((rc = tf_record(t, buf, n, err))) {
        fl_tfevents_close(t);
        return rc;
    }
    *out = t;
    return FL_OK;
}

fl_code fl_tfevents_scalar(fl_tfevents *t, const char *tag, int64_t step, double value, fl_error *err)
{
    if (!t)
        return FL_OK;
    unsigned char buf[512];
    size_t n = tf_event(buf, fl_progress_wall(), step, NULL, tag, (float)value);
    return tf_record(t, buf, n, err);
}

fl_code fl_tfevents_sync(fl_tfevents *t, fl_error *err)
{
    if (t && fsync(t->fd) != 0 && errno != EINVAL)
        return fl_fail(err, FL_EIO, "cannot write %s: %s", t->path, strerror(errno));
    return FL_OK;
}

void fl_tfevents_close(fl_tfevents *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}
