/* outpath.h -- may foldline write this user-named output path?
 *
 * Every verb that writes a path the user named (prep OUT.h5, vote --out, and
 * the outputs of predict and export) asks here first, before anything is
 * written. The path is looked at with lstat and then stat:
 *   - a device, FIFO, socket or directory, or a symbolic link to one, is
 *     refused and left exactly as it was (a "replace it" flag such as
 *     --force never changes that);
 *   - a symbolic link to a regular file is written through: the new file is
 *     written beside the link's target and renamed onto the target, so the
 *     link stays and its target is replaced atomically;
 *   - a dangling link or a link loop is refused;
 *   - "-" means stdout where the verb allows it (FL_OUTPATH_STDOUT).
 * A verb's own inputs are then refused as its output, compared by device and
 * inode (not by name): fl_outpath_not_input for each input file,
 * fl_outpath_not_in_dir for every file of a directory (a job's preds.h5 and
 * model files).
 *
 * Usage:
 *   fl_outpath o;
 *   if ((rc = fl_outpath_resolve(&o, path, FL_OUTPATH_REPLACE, err)) ||
 *       (rc = fl_outpath_not_input(&o, "run.cfg", "the run's manifest", err)))
 *       return rc;
 *   fl_tempfile t;  fl_tempfile_begin(&t, o.target, 1, err) ... commit
 *   (or fl_outpath_write(&o, data, len, err) for a whole buffer, stdout included)
 */
#ifndef FOLDLINE_OUTPATH_H
#define FOLDLINE_OUTPATH_H

#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"

enum {
    FL_OUTPATH_REPLACE = 1, /* an existing regular file may be replaced (--force; vote always) */
    FL_OUTPATH_STDOUT = 2   /* "-" means stdout */
};

typedef struct {
    char path[4096];   /* as the user named it, for messages */
    char target[4096]; /* the file to write (temporary file beside it, then rename): path, or the
                          regular file its symbolic link leads to; "" for stdout */
    int to_stdout;     /* "-" with FL_OUTPATH_STDOUT */
    int exists;        /* target exists (a regular file); dev/ino below are its */
    dev_t dev;
    ino_t ino;
} fl_outpath;

/* Fills o for path, or refuses it (FL_EUSAGE: the user named a path that
 * must not be written; FL_EIO when the system cannot look at it) with one
 * line naming the path, what it is and a HINT. flags: FL_OUTPATH_*. Without
 * FL_OUTPATH_REPLACE an existing file is refused with a HINT about --force. */
fl_code fl_outpath_resolve(fl_outpath *o, const char *path, int flags, fl_error *err);

/* Refuses (FL_EUSAGE) when the output is the same file (device and inode)
 * as input, which the verb reads; what names it ("the data file"). An input
 * that does not exist is no conflict. */
fl_code fl_outpath_not_input(const fl_outpath *o, const char *input, const char *what, fl_error *err);

/* fl_outpath_not_input for every entry of directory dir (a missing
 * directory is no conflict). */
fl_code fl_outpath_not_in_dir(const fl_outpath *o, const char *dir, const char *what, fl_error *err);

/* Writes len bytes to the output: to stdout (flushed; a failed write names
 * stdout), or atomically to o->target (temporary file beside it, rename). */
fl_code fl_outpath_write(const fl_outpath *o, const void *data, size_t len, fl_error *err);

/* The same checks in one call, for predict and export: path is what the
 * user gave for option `opt` ("--out", "OUT.pt"); inputs (n of them, NULL
 * entries skipped) the files the command reads; final (n_final bytes) gets
 * where the atomic write goes (path, or a link's target). An existing
 * regular file is replaced. FL_EUSAGE with one line and a HINT. */
fl_code fl_outpath_check(const char *opt, const char *path, char *const *inputs, int n_inputs, char *final,
                         size_t n_final, fl_error *err);

/* 1 when path exists and is the same file (device and inode, after links)
 * as one of inputs. */
int fl_outpath_is_input(const char *path, char *const *inputs, int n_inputs);

#endif
