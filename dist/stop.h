/* stop.h -- a polite stop: SIGTERM, SIGUSR1 and SIGINT ask training to stop.
 *
 * On a cluster a job is told to go before it is killed: SLURM sends SIGTERM
 * at preemption and at the time limit (then SIGKILL after KillWait seconds),
 * or SIGUSR1 some minutes earlier with `--signal=USR1@120`. The handler only
 * records the signal; the training loop looks at fl_stop_requested() after
 * every step, finishes that step, writes a checkpoint and exits with status
 * 75 (FL_ESTOPPED), and the same command resumes it. A second SIGTERM or
 * SIGINT does not wait: it removes temporary files and dies of the signal.
 */
#ifndef FOLDLINE_STOP_H
#define FOLDLINE_STOP_H

/* Installs the handlers (SA_RESTART: reads and writes are not cut short).
 * Idempotent; replaces fl_tempfile_install_signal_cleanup's handlers. */
void fl_stop_install(void);

/* The signal that asked to stop, or 0. */
int fl_stop_requested(void);

#endif
