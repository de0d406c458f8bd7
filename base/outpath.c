/* outpath.c -- see outpath.h. Only looks (lstat, stat, realpath) until the
 * caller writes: a refused path is never opened, so a FIFO is not blocked
 * on, a device not touched and a directory not renamed over. */
#include "base/outpath.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/tempfile.h"

/* "a directory", "a FIFO", ... for a file type that is never written. */
static const char *outpath_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

fl_code fl_outpath_resolve(fl_outpath *o, const char *path, int flags, fl_error *err)
{
    memset(o, 0, sizeof *o);
    if (!path || !*path)
        return fl_fail(err, FL_EUSAGE, "the output path is empty HINT: name a file");
    if (strlen(path) >= sizeof o->path - 64)
        return fl_fail(err, FL_EUSAGE, "%.64s...: the output path is too long", path);
    snprintf(o->path, sizeof o->path, "%s", path);
    if (!strcmp(path, "-")) {
        if (!(flags & FL_OUTPATH_STDOUT))
            return fl_fail(err, FL_EUSAGE, "-: this output cannot go to stdout HINT: name a file");
        o->to_stdout = 1;
        return FL_OK;
    }
    struct stat l, s;
    if (lstat(path, &l) != 0) {
        if (errno != ENOENT)
            return fl_fail(err, FL_EIO, "%s: cannot look at the output path (%s)", path, strerror(errno));
        if (path[strlen(path) - 1] == '/')
            return fl_fail(err, FL_EUSAGE, "%s: the output path ends in '/', a directory HINT: name a file", path);
        snprintf(o->target, sizeof o->target, "%s", path);
        return FL_OK; /* a new file */
    }
    int link = S_ISLNK(l.st_mode);
    if (link && stat(path, &s) != 0) {
        if (errno == ENOENT)
            return fl_fail(err, FL_EUSAGE,
                           "%s: is a symbolic link to a file that does not exist; it is left as it is HINT: remove the "
                           "link, or name its target",
                           path);
        return fl_fail(err, FL_EUSAGE, "%s: is a symbolic link that cannot be followed (%s); it is left as it is", path,
                       strerror(errno));
    }
    if (!link)
        s = l;
    if (!S_ISREG(s.st_mode))
        return fl_fail(err, FL_EUSAGE,
                       "%s: is %s%s; it is left as it is, with or without --force HINT: name a "
                       "regular file%s",
                       path, link ? "a symbolic link to " : "", outpath_kind(s.st_mode),
                       S_ISDIR(s.st_mode) ? ", e.g. DIR/NAME for a file in that directory" : "");
    if (!(flags & FL_OUTPATH_REPLACE))
        return fl_fail(err, FL_EUSAGE, "%s: already exists HINT: pass --force to replace it", path);
    if (link) {
        char real[PATH_MAX];
        if (!realpath(path, real))
            return fl_fail(err, FL_EIO, "%s: cannot resolve the symbolic link (%s)", path, strerror(errno));
        snprintf(o->target, sizeof o->target, "%s", real);
    } else {
        snprintf(o->target, sizeof o->target, "%s", path);
    }
    o->exists = 1;
    o->dev = s.st_dev;
    o->ino = s.st_ino;
    return FL_OK;
}

fl_code fl_outpath_not_input(const fl_outpath *o, const char *input, const char *what, fl_error *err)
{
    struct stat s;
    if (!o->exists || !input || stat(input, &s) != 0)
        return FL_OK;
    if (s.st_dev != o->dev || s.st_ino != o->ino)
        return FL_OK;
    return fl_fail(err, FL_EUSAGE,
                   "%s: is %s (%s), which this command reads; it is left as it is HINT: name "
                   "another output file",
                   o->path, what, input);
}

fl_code fl_outpath_not_in_dir(const fl_outpath *o, const char *dir, const char *what, fl_error *err)
{
    if (!o->exists)
        return FL_OK;
    DIR *d = opendir(dir);
    if (!d)
        return FL_OK;
    fl_code rc = FL_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[8192], desc[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(desc, sizeof desc, "%s %s", what, e->d_name);
        rc = fl_outpath_not_input(o, path, desc, err);
    }
    closedir(d);
    return rc;
}

fl_code fl_outpath_write(const fl_outpath *o, const void *data, size_t len, fl_error *err)
{
    if (o->to_stdout) {
        if ((len && fwrite(data, 1, len, stdout) != len) || fflush(stdout) != 0)
            return fl_fail(err, FL_EIO, "stdout: cannot write (%s)", strerror(errno));
        return FL_OK;
    }
    return fl_write_file_atomic(o->target, data, len, err);
}

int fl_outpath_is_input(const char *path, char *const *inputs, int n_inputs)
{
    struct stat out, in;
    if (stat(path, &out) != 0)
        return 0;
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && stat(inputs[i], &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
            return 1;
    return 0;
}

fl_code fl_outpath_check(const char *opt, const char *path, char *const *inputs, int n_inputs, char *final,
                         size_t n_final, fl_error *err)
{
    fl_outpath o;
    fl_code rc = fl_outpath_resolve(&o, path, FL_OUTPATH_REPLACE, err);
    for (int i = 0; !rc && i < n_inputs; i++)
        rc = fl_outpath_not_input(&o, inputs[i], "a file", err);
    if (!rc && strlen(o.target) >= n_final)
        rc = fl_fail(err, FL_EUSAGE, "%s: the path is too long", path);
    if (rc)
        return fl_error_prefix(err, "%s", opt);
    snprintf(final, n_final, "%s", o.target);
    return FL_OK;
}
