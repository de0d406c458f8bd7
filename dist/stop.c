/* stop.c -- see stop.h. The handler only stores to a sig_atomic_t, or, on a
 * second SIGTERM/SIGINT, does what the temporary files' handler does. */
#include "dist/stop.h"

#include <signal.h>

#include "dist/tempfile.h"

static volatile sig_atomic_t stop_signal;

static void stop_on_signal(int sig)
{
    if (stop_signal && sig != SIGUSR1)
        fl_tempfile_die_of_signal(sig); /* asked twice: go now */
    stop_signal = sig;
}

void fl_stop_install(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    fl_signal_install(stop_on_signal, SA_RESTART, sigs, 3);
}

int fl_stop_requested(void)
{
    return stop_signal;
}
