/* error.c -- see error.h. */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void error_set(fl_error *err, fl_code code, int names_job, const char *fmt, va_list ap)
{
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    err->code = code;
    err->names_job = names_job;
}

fl_code fl_fail(fl_error *err, fl_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        error_set(err, code, 0, fmt, ap);
        va_end(ap);
    }
    return code;
}

fl_code fl_fail_job(fl_error *err, fl_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        error_set(err, code, 1, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* "head: " in front of err->msg, truncated to fit. */
static void error_put_head(fl_error *err, const char *head)
{
    char old[FL_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(head);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, head, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
}

fl_code fl_error_prefix(fl_error *err, const char *fmt, ...)
{
    char head[FL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    error_put_head(err, head);
    return err->code;
}

fl_code fl_error_job(fl_error *err, const char *fmt, ...)
{
    if (!err->names_job) {
        char head[FL_ERROR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(head, sizeof head, fmt, ap);
        va_end(ap);
        error_put_head(err, head);
        err->names_job = 1;
    }
    return err->code;
}

void fl_error_clear(fl_error *err)
{
    err->code = FL_OK;
    err->msg[0] = '\0';
    err->names_job = 0;
}

const char *fl_strerror(fl_code code)
{
    switch (code) {
    case FL_OK:
        return "ok";
    case FL_EUSAGE:
        return "usage error";
    case FL_EINPUT:
        return "bad input";
    case FL_ECONFIG:
        return "config error";
    case FL_EIO:
        return "I/O error";
    case FL_ENOMEM:
        return "out of memory";
    case FL_ETORCH:
        return "libtorch error";
    case FL_EMPI:
        return "communication error";
    case FL_EINTERRUPT:
        return "interrupted";
    case FL_ESTOPPED:
        return "stopped";
    case FL_EINTERNAL:
        return "internal error";
    }
    return "unknown error";
}

int fl_exit_status(fl_code code)
{
    switch (code) {
    case FL_OK:
        return 0;
    case FL_EUSAGE:
    case FL_ECONFIG:
        return 2;
    case FL_EINTERRUPT:
        return 130;
    case FL_ESTOPPED:
        return 75;
    default:
        return 1;
    }
}
