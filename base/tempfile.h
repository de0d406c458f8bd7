/* tempfile.h -- files that appear complete or not at all.
 *
 * Every file a later step reads is written to a temporary name in the same
 * directory and renamed into place once complete (after fsync), so a crash,
 * a full disk or a signal never leaves a half-written file under the real
 * name. Temporary files are registered so that SIGINT/SIGTERM remove them.
 *
 * Test hook: with FOLDLINE_FAULT_WRITE=NAME in the environment, the temporary
 * file of every final path whose last component is NAME (preds.h5,
 * metrics.csv, last.pt, run.cfg, submission.csv, ...) is a symbolic link to
 * /dev/full, so that every write to it fails with ENOSPC as on a full disk;
 * NAME:K does that to the K-th such file only (last.pt:2, the second epoch's
 * checkpoint), and N (digits) to the N-th temporary file of the process. The
 * tests use it where no small filesystem can be mounted.
 */
#ifndef FOLDLINE_TEMPFILE_H
#define FOLDLINE_TEMPFILE_H

#include <stddef.h>
#include <stdio.h>

#include "base/error.h"

typedef struct {
    char final_path[4096];
    char tmp_path[4096];
    int slot; /* registry slot for signal cleanup, -1 if none */
} fl_tempfile;

/* Picks and creates (empty, mode 0644) a unique temporary file beside
 * final_path. Fails with a message naming the directory if it is not
 * writable. If !overwrite and final_path exists, fails with a HINT about
 * --force. */
fl_code fl_tempfile_begin(fl_tempfile *t, const char *final_path, int overwrite, fl_error *err);
/* fsyncs the temporary file, renames it to the final path, fsyncs the directory. */
fl_code fl_tempfile_commit(fl_tempfile *t, fl_error *err);
/* Removes the temporary file (after a failure). */
void fl_tempfile_abort(fl_tempfile *t);

/* Creates a directory and its parents (mode 0755); fails naming the path. */
fl_code fl_mkdir_p(const char *path, fl_error *err);

/* For a temporary file written through a stdio stream f (opened on
 * t->tmp_path; NULL if fopen failed): closes f and commits, or, when f could
 * not be opened or written (failed != 0, errno set by the failing call), the
 * stream reports an error, or fclose fails (a full disk often shows there),
 * aborts with one line naming the final path and the system's reason. */
fl_code fl_tempfile_close_stream(fl_tempfile *t, FILE *f, int failed, fl_error *err);

/* Writes len bytes to path atomically (temporary file, fsync, rename). */
fl_code fl_write_file_atomic(const char *path, const void *data, size_t len, fl_error *err);

/* Installs handler for each of the n signals in sigs with sigaction: an
 * empty sa_mask (only the signal being handled is blocked while the handler
 * runs) and flags (SA_RESTART, or 0). foldline's one way to install a handler:
 * the temporary files' below and the stop request's (base/stop.h). */
void fl_signal_install(void (*handler)(int), int flags, const int *sigs, int n);

/* Installs SIGINT/SIGTERM handlers that unlink registered temporary files and
 * then die of the signal as before. Idempotent. */
void fl_tempfile_install_signal_cleanup(void);
/* What that handler does, for other handlers (async-signal-safe): removes
 * every temporary file, then dies of sig with its default action. */
void fl_tempfile_die_of_signal(int sig);

#endif
