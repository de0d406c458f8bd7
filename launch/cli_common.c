/* cli_common.c -- error reporting and option parsing shared by the verbs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "launch/cli.h"

/* The message with control characters written as \n, \r, \t or \xNN: a
 * CSV field or a file name may hold a line break, and an error is one line. */
static void cli_one_line(const char *msg, char *out, size_t n)
{
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)msg; *c && o + 5 < n; c++) {
        if (*c >= 0x20 && *c != 0x7f)
            out[o++] = (char)*c;
        else if (*c == '\n' || *c == '\r' || *c == '\t')
            o += (size_t)snprintf(out + o, n - o, "\\%c", *c == '\n' ? 'n' : *c == '\r' ? 'r' : 't');
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", *c);
    }
    out[o] = '\0';
}

/* MPI_Abort asks the launcher (mpirun's daemon on this host, or srun) to end
 * every rank. With the host cut off from the launcher's own host that
 * request may never be answered, and the rank would hang in MPI_Abort: after
 * this many seconds it exits by itself, so that no rank outlives a fault by
 * more than dist.timeout_s and this grace. */
#define CLI_ABORT_GRACE_S 10

static volatile sig_atomic_t cli_abort_status = 1;

static void cli_abort_expired(int sig)
{
    (void)sig;
    static const char msg[] = "foldline: MPI_Abort did not end this rank in time (the launcher is unreachable); "
                              "exiting\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(cli_abort_status);
}

int cli_report(const fl_error *err)
{
    char msg[4 * FL_ERROR_MSG_MAX + 8];
    cli_one_line(err->msg, msg, sizeof msg);
    int status = fl_exit_status(err->code), up = 0, down = 0, size = 1;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down)
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (up && !down && size > 1) {
        /* One rank failed while the others may be waiting for it in a
         * collective: name this rank, then end every rank of the job. */
        int rank = 0, len = 0;
        char host[MPI_MAX_PROCESSOR_NAME] = "unknown host";
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Get_processor_name(host, &len);
        fprintf(stderr, "foldline: error: rank %d of %d (%s): %s\n", rank, size, host, msg);
        fflush(stderr);
        fflush(stdout);
        cli_abort_status = status;
        signal(SIGALRM, cli_abort_expired);
        alarm(CLI_ABORT_GRACE_S);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    if (up && !down)
        MPI_Finalize(); /* alone: end MPI as a successful run would */
    fprintf(stderr, "foldline: error: %s\n", msg);
    fflush(stderr);
    return status;
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
