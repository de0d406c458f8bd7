/* outpath.h -- checking an output path before any work: a verb that writes
 * FILE refuses a directory, a device, a FIFO or a socket there, and any file
 * that the same command reads (writing over an input would destroy it), and
 * writes through a symbolic link to a regular file: the temporary file goes
 * beside the link's target, which the rename replaces, so the link stays.
 */
#ifndef FOLDLINE_OUTPATH_H
#define FOLDLINE_OUTPATH_H

#include <stddef.h>

#include "dist/error.h"

/* path: what the user gave for option `opt` (e.g. "--out"). inputs (n of
 * them, NULL entries skipped): the files the command reads. final (n_final
 * bytes) receives where the atomic write goes: path itself, or the target of
 * a link. FL_EUSAGE with one line and a HINT when path cannot be written. */
fl_code fl_outpath_check(const char *opt, const char *path, char *const *inputs, int n_inputs, char *final,
                         size_t n_final, fl_error *err);

/* 1 when path exists and is the same file as one of inputs (after links). */
int fl_outpath_is_input(const char *path, char *const *inputs, int n_inputs);

#endif
