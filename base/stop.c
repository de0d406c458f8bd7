/* stop.c -- see stop.h. The handler only stores to a sig_atomic_t and, on
 * world rank 0 under an MPI launcher, writes one line with write(2); on a
 * second SIGTERM/SIGINT of a process alone it does what the temporary files'
 * handler does. */
#include "base/stop.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/tempfile.h"

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t stop_epoch = -1; /* 1-based epoch in progress, or -1 */
static int stop_launched;                     /* 1: started by mpirun or srun */
static int stop_speaks;                       /* 1: world rank 0 (or alone) */

/* "N" of a non-negative n into buf (async-signal-safe). */
static size_t stop_itoa(long n, char *buf)
{
    char tmp[24];
    size_t k = 0, o = 0;
    do
        tmp[k++] = (char)('0' + n % 10);
    while ((n /= 10) > 0 && k < sizeof tmp);
    while (k)
        buf[o++] = tmp[--k];
    return o;
}

static void stop_say(int sig)
{
    char line[320];
    size_t n = 0;
    const char *parts[] = {"foldline: ",
                           sig == SIGINT    ? "SIGINT"
                           : sig == SIGTERM ? "SIGTERM"
                                            : "SIGUSR1",
                           " from the MPI launcher: stopping"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(parts[i]);
        memcpy(line + n, parts[i], l);
        n += l;
    }
    if (stop_epoch > 0) {
        memcpy(line + n, " at epoch ", 10);
        n += 10;
        n += stop_itoa(stop_epoch, line + n);
    }
    static const char tail[] = " after the current step with a checkpoint; last.pt keeps every finished epoch even "
                               "if the launcher kills the ranks first. Rerun the same command to resume.\n";
    memcpy(line + n, tail, sizeof tail - 1 < sizeof line - n ? sizeof tail - 1 : sizeof line - n);
    n += sizeof tail - 1 < sizeof line - n ? sizeof tail - 1 : sizeof line - n;
    ssize_t w = write(2, line, n);
    (void)w;
}

static void stop_on_signal(int sig)
{
    /* Asked twice: go now. Not under a launcher, whose own second signal
     * (mpirun: SIGINT to the terminal's process group, then its SIGTERM) is no
     * second request; it kills the ranks itself when it has waited enough. */
    if (stop_signal && sig != SIGUSR1 && !stop_launched)
        fl_tempfile_die_of_signal(sig);
    if (!stop_signal && stop_launched && stop_speaks && sig != SIGUSR1)
        stop_say(sig);
    if (!stop_signal)
        stop_signal = sig;
}

void fl_stop_install(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    if (!rank)
        rank = getenv("PMI_RANK");
    if (!rank)
        rank = getenv("PMIX_RANK");
    stop_launched = rank != NULL;
    stop_speaks = !rank || !strcmp(rank, "0");
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
    fl_signal_install(stop_on_signal, SA_RESTART, sigs, 3);
}

int fl_stop_requested(void)
{
    return stop_signal;
}

void fl_stop_note_epoch(int epoch)
{
    stop_epoch = epoch;
}
