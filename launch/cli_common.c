/* cli_common.c -- error reporting and option parsing shared by the verbs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launch/cli.h"

int cli_report(const fl_error *err)
{
    fprintf(stderr, "foldline: error: %s\n", err->msg);
    fflush(stderr);
    return fl_exit_status(err->code);
}

fl_code cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out, fl_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return fl_fail(err, FL_EUSAGE, "%s '%s': expected an integer in %ld..%ld", opt, s, lo, hi);
    *out = v;
    return FL_OK;
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}
