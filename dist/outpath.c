/* outpath.c -- see outpath.h. */
#include "dist/outpath.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *outpath_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
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
    struct stat st;
    if (!*path)
        return fl_fail(err, FL_EUSAGE, "%s: an empty path HINT: give the file to write", opt);
    if (strlen(path) >= n_final)
        return fl_fail(err, FL_EUSAGE, "%s %s: path too long", opt, path);
    snprintf(final, n_final, "%s", path);
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return FL_OK; /* a new file: whether its folder is writable, the temporary file tells */
        return fl_fail(err, FL_EUSAGE, "%s %s: cannot look at it (%s) HINT: give a file path in a folder you can write",
                       opt, path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        if (stat(path, &st) != 0 || !realpath(path, target))
            return fl_fail(err, FL_EUSAGE,
                           "%s %s: a symbolic link to nothing (%s) HINT: remove the link or give another path", opt,
                           path, strerror(errno));
        if (S_ISREG(st.st_mode)) {
            if (strlen(target) >= n_final)
                return fl_fail(err, FL_EUSAGE, "%s %s: its target's path is too long", opt, path);
            snprintf(final, n_final, "%s", target);
        }
    }
    if (!S_ISREG(st.st_mode))
        return fl_fail(err, FL_EUSAGE,
                       "%s %s: %s, not a file foldline can replace HINT: give the path of a file to write (a new one "
                       "or a regular file)",
                       opt, path, outpath_kind(st.st_mode));
    if (fl_outpath_is_input(path, inputs, n_inputs))
        return fl_fail(
            err, FL_EUSAGE,
            "%s %s: is a file this command reads; writing it would destroy its input HINT: give another output path",
            opt, path);
    return FL_OK;
}
