/* verified.c -- see verified.h. */
#include "dataset/verified.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/tempfile.h"

static const char verified_header[] = "foldline-verified 1\n";

/* A record larger than this is not one foldline wrote (bytes). */
enum { VERIFIED_MAX_BYTES = 1 << 20 };

int fl_verified_identity(const char *real, const struct stat *st, const fl_data_info *in, char *line, size_t n)
{
    char seal[16] = "none";
    if (in->checks & FL_DATA_CHECK_SEAL)
        snprintf(seal, sizeof seal, "%08" PRIx32, in->seal_crc);
    int len = snprintf(line, n, "%s\tsize %lld mtime %lld.%09ld ctime %lld.%09ld inode %llu seal %s", real,
                       (long long)st->st_size, (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec,
                       (long long)st->st_ctim.tv_sec, (long)st->st_ctim.tv_nsec, (unsigned long long)st->st_ino, seal);
    if (len < 0 || (size_t)len >= n || strchr(real, '\n')) {
        if (n)
            line[0] = '\0';
        return 0;
    }
    return 1;
}

int fl_verified_holds(const char *path, const char *line)
{
    size_t want = strlen(line);
    if (!want || strchr(line, '\n'))
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *buf = malloc(VERIFIED_MAX_BYTES + 1);
    size_t got = buf ? fread(buf, 1, VERIFIED_MAX_BYTES + 1, f) : 0;
    int ok = !ferror(f) && got <= VERIFIED_MAX_BYTES;
    fclose(f);
    size_t head = sizeof verified_header - 1;
    if (!buf || !ok || got < head || memcmp(buf, verified_header, head) != 0) {
        free(buf);
        return 0;
    }
    buf[got] = '\0';
    int found = 0;
    /* whole lines only: each line ends with '\n', so a match must start
     * after one and end at one */
    for (const char *p = buf + head; !found && *p;) {
        const char *end = strchr(p, '\n');
        if (!end)
            break;
        found = (size_t)(end - p) == want && memcmp(p, line, want) == 0;
        p = end + 1;
    }
    free(buf);
    return found;
}

fl_code fl_verified_write(const char *path, const char *const *lines, int n, fl_error *err)
{
    fl_tempfile t;
    fl_code rc = fl_tempfile_begin(&t, path, 1, err);
    if (rc)
        return rc;
    FILE *f = fopen(t.tmp_path, "wb");
    int failed = !f || fputs(verified_header, f) == EOF;
    for (int i = 0; i < n && !failed; i++)
        failed = fputs(lines[i], f) == EOF || fputc('\n', f) == EOF;
    return fl_tempfile_close_stream(&t, f, failed, err);
}
