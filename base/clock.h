/* clock.h -- the program's two clocks, in seconds as a double: monotonic
 * (durations, deadlines, intervals; never jumps) and wall (timestamps that
 * other hosts and files compare, e.g. lock heartbeats, event files). */
#ifndef FOLDLINE_CLOCK_H
#define FOLDLINE_CLOCK_H

#include <time.h>

static inline double fl_clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double fl_clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
