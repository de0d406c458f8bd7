/* progress.c -- see progress.h. */
#include "base/progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double fl_progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double fl_progress_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void fl_ticker_init(fl_ticker *t, FILE *out, double interval_s)
{
    memset(t, 0, sizeof *t);
    t->out = interval_s > 0 ? out : NULL;
    t->interval_s = interval_s;
    /* Under mpirun a rank's stdout is a pseudo-terminal of Open MPI's even
     * when mpirun's own output goes to a log: there, plain lines. */
    int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
    t->tty = t->out && !launched && isatty(fileno(t->out));
    t->last = fl_progress_now();
}

int fl_ticker_due(const fl_ticker *t, double now)
{
    return t->out && now - t->last >= t->interval_s;
}

void fl_ticker_print(fl_ticker *t, double now, const char *line)
{
    t->last = now;
    if (!t->out)
        return;
    if (t->tty) {
        fprintf(t->out, "\r%s\033[K", line);
        t->shown = 1;
    } else {
        fprintf(t->out, "%s\n", line);
    }
    fflush(t->out);
}

void fl_ticker_clear(fl_ticker *t)
{
    if (t->out && t->shown) {
        fputs("\r\033[K", t->out);
        fflush(t->out);
    }
    t->shown = 0;
}

void fl_progress_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || !isfinite(s) || s > 1e9) {
        snprintf(buf, n, "?");
        return;
    }
    long v = lround(s);
    if (v < 60)
        snprintf(buf, n, "%lds", v);
    else if (v < 3600)
        snprintf(buf, n, "%ldm%02lds", v / 60, v % 60);
    else if (v < 86400)
        snprintf(buf, n, "%ldh%02ldm", v / 3600, v % 3600 / 60);
    else
        snprintf(buf, n, "%ldd%02ldh", v / 86400, v % 86400 / 3600);
}
