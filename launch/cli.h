/* cli.h -- the `foldline` command: one function per verb, and the one place
 * that prints an error and ends the process. */
#ifndef FOLDLINE_CLI_H
#define FOLDLINE_CLI_H

#include "base/error.h"

#define FOLDLINE_VERSION "0.1.0"

int cli_prep(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_vote(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_version(void);

/* Prints "foldline: error: <msg>" on stderr and returns the exit status for
 * err's code. The one place that ends a failed run: under MPI with more than
 * one rank it names the rank and host and calls MPI_Abort(MPI_COMM_WORLD,
 * status), so that no rank waits forever for this one; a process alone
 * finalizes MPI (if it is up) and returns the status. */
int cli_report(const fl_error *err);

/* Parses a whole decimal integer in [lo, hi] from s for option `opt`. */
fl_code cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out, fl_error *err);

/* Option lookup for "--name value" and "--name=value": if argv[*i] is the
 * option `name`, sets *val (advancing *i past a separate value) and returns
 * 1; returns -1 if the value is missing, 0 if argv[*i] is another option. */
int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **val);

#endif
