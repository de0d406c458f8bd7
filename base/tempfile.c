/* tempfile.c -- see tempfile.h. The signal handler touches only a static
 * array of paths and calls unlink(), both async-signal-safe. */
#include "base/tempfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMP_SLOTS 32

static char temp_registry[TEMP_SLOTS][4096];
static volatile sig_atomic_t temp_used[TEMP_SLOTS];

void fl_tempfile_die_of_signal(int sig)
{
    for (int i = 0; i < TEMP_SLOTS; i++)
        if (temp_used[i])
            unlink(temp_registry[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void fl_signal_install(void (*handler)(int), int flags, const int *sigs, int n)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < n; i++)
        sigaction(sigs[i], &sa, NULL);
}

void fl_tempfile_install_signal_cleanup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    static const int sigs[] = {SIGINT, SIGTERM};
    fl_signal_install(fl_tempfile_die_of_signal, 0, sigs, 2);
}

static int temp_register(const char *path)
{
    for (int i = 0; i < TEMP_SLOTS; i++)
        if (!temp_used[i]) {
            snprintf(temp_registry[i], sizeof temp_registry[i], "%s", path);
            temp_used[i] = 1;
            return i;
        }
    return -1;
}

static void temp_unregister(fl_tempfile *t)
{
    if (t->slot >= 0)
        temp_used[t->slot] = 0;
    t->slot = -1;
}

static void dir_of(const char *path, char *dir, size_t n)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, n, "%s", dirname(tmp));
}

/* The test hook FOLDLINE_FAULT_WRITE (see tempfile.h): 1 when the temporary
 * file of final_path is to stand on a full disk. */
static int temp_fault_here(const char *final_path)
{
    static int begun, matched;  /* temporary files begun; of those, named as asked */
    static char last_want[256]; /* the setting matched counts for */
    const char *want = getenv("FOLDLINE_FAULT_WRITE");
    begun++;
    if (!want || !*want)
        return 0;
    if (strncmp(want, last_want, sizeof last_want) != 0) {
        snprintf(last_want, sizeof last_want, "%s", want);
        matched = 0;
    }
    if (strspn(want, "0123456789") == strlen(want))
        return atoi(want) == begun;
    const char *colon = strchr(want, ':'), *slash = strrchr(final_path, '/');
    const char *base = slash ? slash + 1 : final_path;
    size_t n = colon ? (size_t)(colon - want) : strlen(want);
    if (strlen(base) != n || strncmp(base, want, n) != 0)
        return 0;
    matched++;
    return !colon || atoi(colon + 1) == matched;
}

fl_code fl_tempfile_begin(fl_tempfile *t, const char *final_path, int overwrite, fl_error *err)
{
    memset(t, 0, sizeof *t);
    t->slot = -1;
    if (strlen(final_path) + 32 >= sizeof t->tmp_path)
        return fl_fail(err, FL_EINPUT, "%s: path too long", final_path);
    snprintf(t->final_path, sizeof t->final_path, "%s", final_path);
    struct stat st;
    if (!overwrite && stat(final_path, &st) == 0)
        return fl_fail(err, FL_EINPUT, "%s: already exists HINT: pass --force to replace it", final_path);
    char dir[4096], base[4096];
    dir_of(final_path, dir, sizeof dir);
    snprintf(base, sizeof base, "%s", final_path);
    const char *slash = strrchr(base, '/');
    snprintf(t->tmp_path, sizeof t->tmp_path, "%s/.%s.tmp.XXXXXX", dir, slash ? slash + 1 : base);
    int fd = mkstemp(t->tmp_path);
    if (fd < 0) {
        int e = errno;
        if (stat(dir, &st) != 0)
            return fl_fail(err, FL_EIO, "%s: directory '%s' does not exist HINT: create it first", final_path, dir);
        return fl_fail(err, FL_EIO, "%s: cannot create a file in directory '%s' (%s) HINT: choose a writable directory",
                       final_path, dir, strerror(e));
    }
    fchmod(fd, 0644);
    close(fd);
    t->slot = temp_register(t->tmp_path);
    if (temp_fault_here(final_path)) {
        /* Every write to /dev/full fails with ENOSPC, as on a full disk. */
        unlink(t->tmp_path);
        if (symlink("/dev/full", t->tmp_path) != 0) {
            int e = errno;
            fl_tempfile_abort(t);
            return fl_fail(err, FL_EIO, "%s: FOLDLINE_FAULT_WRITE: cannot stand in /dev/full (%s)", final_path,
                           strerror(e));
        }
    }
    return FL_OK;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

fl_code fl_tempfile_commit(fl_tempfile *t, fl_error *err)
{
    if (fsync_path(t->tmp_path, O_RDONLY) != 0) {
        int e = errno;
        fl_tempfile_abort(t);
        return fl_fail(err, FL_EIO, "%s: cannot flush to disk (%s)", t->final_path, strerror(e));
    }
    if (rename(t->tmp_path, t->final_path) != 0) {
        int e = errno;
        fl_tempfile_abort(t);
        return fl_fail(err, FL_EIO, "%s: cannot rename the finished file into place (%s)", t->final_path, strerror(e));
    }
    temp_unregister(t);
    char dir[4096];
    dir_of(t->final_path, dir, sizeof dir);
    fsync_path(dir, O_RDONLY | O_DIRECTORY); /* best effort: some filesystems refuse */
    return FL_OK;
}

void fl_tempfile_abort(fl_tempfile *t)
{
    if (t->tmp_path[0])
        unlink(t->tmp_path);
    temp_unregister(t);
}

fl_code fl_mkdir_p(const char *path, fl_error *err)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf)
        return fl_fail(err, FL_EINPUT, "%s: path too long", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return fl_fail(err, FL_EIO, "%s: cannot create directory (%s) HINT: choose a writable location", buf,
                               strerror(errno));
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                return fl_fail(err, FL_EIO, "%s: exists and is not a directory", buf);
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return FL_OK;
}

fl_code fl_tempfile_close_stream(fl_tempfile *t, FILE *f, int failed, fl_error *err)
{
    int e = failed ? errno : 0;
    if (f) {
        failed |= ferror(f);
        if (fclose(f) != 0 && !e) /* a full disk often shows only here */
            failed = 1, e = errno;
    }
    if (failed) {
        fl_tempfile_abort(t);
        return fl_fail(err, FL_EIO,
                       "%s: cannot write (%s) HINT: free space there, or point the output elsewhere; the previous "
                       "file, if any, is unchanged",
                       t->final_path, e ? strerror(e) : "I/O error");
    }
    return fl_tempfile_commit(t, err);
}

fl_code fl_write_file_atomic(const char *path, const void *data, size_t len, fl_error *err)
{
    fl_tempfile t;
    fl_code rc = fl_tempfile_begin(&t, path, 1, err);
    if (rc)
        return rc;
    FILE *f = fopen(t.tmp_path, "wb");
    return fl_tempfile_close_stream(&t, f, !f || fwrite(data, 1, len, f) != len, err);
}
