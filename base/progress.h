/* progress.h -- progress lines of long loops (an epoch, prep's images) that
 * neither flood a log nor scroll a terminal.
 *
 * A ticker prints at most one line every interval_s seconds. On a terminal
 * (isatty) the line is rewritten in place ("\r", the text, clear to the end
 * of the line) and the next ordinary line first clears it; in a log (a pipe,
 * a SLURM output file) each tick is one plain line. Under an MPI launcher
 * (mpirun gives its ranks a pseudo-terminal whatever its own output is)
 * always plain lines. Only launch/ and the
 * trainer's log (fl_job_env.log, the group leader's) print through it.
 */
#ifndef FOLDLINE_PROGRESS_H
#define FOLDLINE_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *out;         /* NULL: the ticker is off */
    double interval_s; /* seconds between lines; <= 0: off */
    int tty;           /* out is a terminal: one line rewritten in place */
    int shown;         /* a terminal line is on screen without its newline */
    double last;       /* fl_progress_now() of the last line (or of the start) */
} fl_ticker;

/* Monotonic seconds (CLOCK_MONOTONIC). */
double fl_progress_now(void);
/* Seconds since the epoch (CLOCK_REALTIME): heartbeats other hosts compare. */
double fl_progress_wall(void);

/* Starts a ticker on out (NULL: off) whose first line is due interval_s
 * seconds from now. */
void fl_ticker_init(fl_ticker *t, FILE *out, double interval_s);
/* 1 when a line is due now. */
int fl_ticker_due(const fl_ticker *t, double now);
/* Prints line (no newline in it) and restarts the interval at now. */
void fl_ticker_print(fl_ticker *t, double now, const char *line);
/* Before an ordinary line on the same stream: clears a terminal line. */
void fl_ticker_clear(fl_ticker *t);

/* A duration for people: "42s", "3m05s", "2h07m", "3d04h"; "?" when s is
 * negative or not finite (unknown). */
void fl_progress_duration(double s, char *buf, size_t n);

#endif
