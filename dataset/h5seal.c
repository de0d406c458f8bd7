/* h5seal.c -- a checksum over an HDF5 file, kept in its user block.
 *
 * HDF5 reserves the first FL_H5_USERBLOCK bytes of a file created with a user
 * block for the application, and every reader (h5py too) skips them. foldline
 * keeps there: the file's length, and the CRC-32 of the bytes from the end of
 * the user block up to a given offset, then a CRC-32 of the block itself.
 *
 * For a predictions file the offset is its end: every byte is covered. For a
 * data file it is the file's length before the first pixel was written: the
 * writer writes every attribute, class name, label, fold and path (HDF5 raw
 * data and global heaps, which have no checksums of their own), closes the
 * file, and reopens it for the pixels, which HDF5 then places after that
 * point, with the chunk index and any other structure it adds (1.10 format:
 * all carry checksums). Each image chunk has its own Fletcher-32 checksum,
 * verified when it is read. The seal is checked
 * before HDF5 parses the file: HDF5 1.10 crashes or loops forever on some
 * corrupt global heaps (found by tests/unit/test_datafile.c, which flips every
 * bit of a small data file), and the length names a truncated copy at once.
 *
 * Layout, little-endian: magic[16] "foldline-sealed\n", u32 version (1), u32
 * zero, u64 file length, u64 end of the covered bytes, u32 their CRC-32,
 * zeros, and in the last 4 bytes the CRC-32 of the bytes before them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "dataset/h5util.h"

static const char seal_magic[16] = "foldline-sealed\n";

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* CRC-32 of bytes [FL_H5_USERBLOCK, end) of fd. */
static int seal_crc(int fd, uint64_t end, uint32_t *out)
{
    enum { BLOCK = 1 << 16 };
    uint8_t *buf = malloc(BLOCK);
    if (!buf)
        return -1;
    uLong crc = crc32(0, NULL, 0);
    for (uint64_t pos = FL_H5_USERBLOCK; pos < end;) {
        size_t want = end - pos < BLOCK ? (size_t)(end - pos) : BLOCK;
        ssize_t got = pread(fd, buf, want, (off_t)pos);
        if (got <= 0) {
            free(buf);
            return -1;
        }
        crc = crc32(crc, buf, (uInt)got);
        pos += (uint64_t)got;
    }
    free(buf);
    *out = (uint32_t)crc;
    return 0;
}

fl_code fl_h5_seal(const char *path, const char *name, uint64_t covered_end, fl_error *err)
{
    int fd = open(path, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fl_fail(err, FL_EIO, "%s: cannot reopen to seal (%s)", name, strerror(e));
    }
    uint64_t length = (uint64_t)st.st_size;
    if (covered_end == 0 || covered_end > length)
        covered_end = length;
    uint8_t block[FL_H5_USERBLOCK];
    memset(block, 0, sizeof block);
    uint32_t crc;
    if (length < FL_H5_USERBLOCK || covered_end < FL_H5_USERBLOCK || seal_crc(fd, covered_end, &crc)) {
        int e = errno;
        close(fd);
        return fl_fail(err, FL_EIO, "%s: cannot read back to seal (%s)", name, strerror(e));
    }
    memcpy(block, seal_magic, sizeof seal_magic);
    put_u32(block + 16, 1);
    put_u64(block + 24, length);
    put_u64(block + 32, covered_end);
    put_u32(block + 40, crc);
    put_u32(block + FL_H5_USERBLOCK - 4, (uint32_t)crc32(0, block, FL_H5_USERBLOCK - 4));
    ssize_t put = pwrite(fd, block, sizeof block, 0);
    int e = errno;
    if (close(fd) != 0 && put == (ssize_t)sizeof block)
        put = -1, e = errno;
    if (put != (ssize_t)sizeof block)
        return fl_fail(err, FL_EIO, "%s: cannot write (%s)", name, put < 0 ? strerror(e) : "short write");
    return FL_OK;
}

static fl_code seal_corrupt(fl_error *err, const char *path, const char *what)
{
    return fl_fail(err, FL_EINPUT,
                   "%s: corrupt: %s HINT: the file changed after foldline wrote it; copy it again or rewrite it "
                   "(foldline prep, or retrain the fold)",
                   path, what);
}

fl_code fl_h5_check_seal(const char *path, int *sealed, uint32_t *crc_out, fl_error *err)
{
    *sealed = 0;
    if (crc_out)
        *crc_out = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return FL_OK; /* HDF5 will say what is wrong with it */
    struct stat st;
    uint8_t block[FL_H5_USERBLOCK];
    ssize_t got = fstat(fd, &st) == 0 ? pread(fd, block, sizeof block, 0) : -1;
    fl_code rc = FL_OK;
    if (got < (ssize_t)sizeof seal_magic)
        goto done;
    /* Not sealed: HDF5's signature at 0 (no user block), or a user block of
     * another tool. A magic a few bits off is a damaged seal, not a foreign
     * block: otherwise one flipped bit would turn the checks off. */
    int bits = 0;
    for (size_t i = 0; i < sizeof seal_magic; i++)
        bits += __builtin_popcount((unsigned)(block[i] ^ (uint8_t)seal_magic[i]));
    if (bits > 16)
        goto done;
    *sealed = 1;
    if (bits) {
        rc = seal_corrupt(err, path, "its header block is damaged");
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (got < (ssize_t)sizeof block) {
        rc = fl_fail(err, FL_EINPUT,
                     "%s: truncated: %llu bytes, less than its %d-byte header HINT: the copy or download is "
                     "incomplete; copy it again",
                     path, (unsigned long long)size, FL_H5_USERBLOCK);
        goto done;
    }
    if (get_u32(block + FL_H5_USERBLOCK - 4) != (uint32_t)crc32(0, block, FL_H5_USERBLOCK - 4)) {
        rc = seal_corrupt(err, path, "its header block fails its checksum");
        goto done;
    }
    uint32_t version = get_u32(block + 16);
    uint64_t length = get_u64(block + 24), covered_end = get_u64(block + 32);
    if (version != 1) {
        rc = fl_fail(err, FL_EINPUT,
                     "%s: sealed by another foldline (seal version %u) HINT: read it with the foldline that wrote it, "
                     "or rewrite it",
                     path, version);
        goto done;
    }
    if (size != length) {
        if (size < length)
            rc = fl_fail(err, FL_EINPUT,
                         "%s: truncated: %llu bytes, but it was written with %llu HINT: the copy or download is "
                         "incomplete; copy it again",
                         path, (unsigned long long)size, (unsigned long long)length);
        else
            rc = fl_fail(err, FL_EINPUT,
                         "%s: %llu bytes, but it was written with %llu (bytes appended?) HINT: copy it again", path,
                         (unsigned long long)size, (unsigned long long)length);
        goto done;
    }
    if (covered_end < FL_H5_USERBLOCK || covered_end > length) {
        rc = seal_corrupt(err, path, "its header block is damaged");
        goto done;
    }
    uint32_t crc;
    if (seal_crc(fd, covered_end, &crc)) {
        rc = fl_fail(err, FL_EIO, "%s: read error (%s)", path, strerror(errno));
        goto done;
    }
    if (crc != get_u32(block + 40))
        rc = seal_corrupt(err, path, "the checksum of its metadata does not match");
    else if (crc_out)
        *crc_out = crc;
done:
    close(fd);
    return rc;
}
