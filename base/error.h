/* error.h -- foldline's error codes and the error context every module fills.
 *
 * Functions return an fl_code; on failure they also write a one-line message
 * (what was expected, what was found, and a HINT where one helps) into an
 * fl_error the caller passed in. Only launch/ prints it and exits, so that
 * under MPI exactly one place decides to abort the job.
 */
#ifndef FOLDLINE_ERROR_H
#define FOLDLINE_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FL_OK = 0,
    FL_EUSAGE,     /* bad command line */
    FL_EINPUT,     /* bad user input: CSV, image, data file */
    FL_ECONFIG,    /* a config mistake (a key, a value, or one that does not fit the data file) */
    FL_EIO,        /* the system refused a read or write */
    FL_ENOMEM,     /* out of memory */
    FL_ETORCH,     /* libtorch raised */
    FL_EMPI,       /* MPI or NCCL failed */
    FL_EINTERRUPT, /* a signal asked us to stop */
    FL_ESTOPPED,   /* a signal asked training to stop; it checkpointed: rerun to resume */
    FL_EINTERNAL   /* a bug in foldline */
} fl_code;

#define FL_ERROR_MSG_MAX 1024

typedef struct {
    fl_code code;
    char msg[FL_ERROR_MSG_MAX];
    int names_job; /* 1: msg already says which training job ("job M fold k: ..."), so the trainer adds no
                      second one; set by fl_fail_job and fl_error_job, cleared by fl_fail */
} fl_error;

/* Sets err (when not NULL) to code and the formatted message; returns code,
 * so that `return fl_fail(err, FL_EINPUT, "...")` reads naturally. */
fl_code fl_fail(fl_error *err, fl_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Puts "prefix: " in front of the message already in err (for adding the
 * file or job a lower layer did not know about). Returns err->code. */
fl_code fl_error_prefix(fl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fl_fail for a message that starts with its job ("job M fold k: ..."). */
fl_code fl_fail_job(fl_error *err, fl_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Puts the job (fmt, e.g. "job M fold k") in front of the message unless the
 * message already names one (err->names_job); either way the message then
 * names its job. Returns err->code. */
fl_code fl_error_job(fl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void fl_error_clear(fl_error *err);

/* A short human name of a code: "bad input", "I/O error", ... */
const char *fl_strerror(fl_code code);

/* The process exit status for a code (docs/failures.md, "Exit status"): 2
 * for usage and config mistakes (the fix is in the command line or the
 * config), 130 for an interrupt, 75 (EX_TEMPFAIL) for a training that
 * stopped at a checkpoint (rerun the same command to resume), 1 for data and
 * runtime errors (everything else). */
int fl_exit_status(fl_code code);

#ifdef __cplusplus
}
#endif

#endif
