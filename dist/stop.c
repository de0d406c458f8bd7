/* stop.c -- see stop.h. The handler only stores to a sig_atomic_t, or, on a
 * second SIGTERM/SIGINT, does what the temporary files' handler does. */
#include "dist/stop.h"

#include <signal.h>
#include <string.h>

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
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int fl_stop_requested(void)
{
    return stop_signal;
}
