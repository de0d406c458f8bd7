/* verified.h -- a run's record of the data files a full verification pass
 * read whole (data.verify = "full"), so that the next start of the same run
 * (a rerun, a SLURM requeue) does not read gigabytes of pixels again when
 * nothing about a file changed since.
 *
 * The record is RUN_DIR/verified.txt: a first line "foldline-verified 1",
 * then one line per data file, its real path and its identity:
 *
 *   /data/a.h5<TAB>size 15032385536 mtime 1718031123.123456789 ctime 1718031123.123456789 inode 4211 seal 5f0c2e9a
 *
 * Any write to the file changes its mtime and ctime (a writer that puts the
 * old mtime back, as cp -p or rsync --inplace do, still changes the ctime),
 * a replaced file has another inode, and the seal's CRC-32 of the metadata
 * ("none" for an unsealed file) tells apart files whose other values agree.
 * The device number is left out on purpose: hosts that mount one shared
 * filesystem see different ones, and a requeued run's rank 0 may land on
 * another host. A file is skipped only when the record holds its line
 * exactly; anything else (no record, another format, an unreadable one, any
 * value changed) means the pass reads it again.
 */
#ifndef FOLDLINE_VERIFIED_H
#define FOLDLINE_VERIFIED_H

#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>

#include "dataset/datafile.h"
#include "base/error.h"

#define FL_VERIFIED_NAME     "verified.txt"
#define FL_VERIFIED_LINE_MAX (PATH_MAX + 160)

/* The identity line of the data file at real (its realpath), from st (its
 * stat, taken before the file was opened, so that a file replaced meanwhile
 * does not match) and in (its info, for the seal). Returns 1, or 0 with line
 * empty when the file cannot have one (a path with a line break, too long):
 * such a file is read at every start. */
int fl_verified_identity(const char *real, const struct stat *st, const fl_data_info *in, char *line, size_t n);

/* 1 when the record at path holds line as one of its lines, else 0 (no
 * record, unreadable, not a record, or no such line). */
int fl_verified_holds(const char *path, const char *line);

/* Writes the record at path with the n identity lines (a temporary file,
 * renamed into place). */
fl_code fl_verified_write(const char *path, const char *const *lines, int n, fl_error *err);

#endif
