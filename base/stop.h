/* stop.h -- a polite stop: SIGTERM, SIGUSR1 and SIGINT ask training to stop.
 *
 * On a cluster a job is told to go before it is killed: SLURM sends SIGTERM
 * at preemption and at the time limit (then SIGKILL after KillWait seconds),
 * or SIGUSR1 some minutes earlier with `--signal=USR1@120`. The handler only
 * records the signal; the training loop looks at fl_stop_requested() after
 * every step, finishes that step, writes a checkpoint and exits with status
 * 75 (FL_ESTOPPED), and the same command resumes it. A second SIGTERM or
 * SIGINT does not wait: it removes temporary files and dies of the signal.
 *
 * Under an MPI launcher (OMPI_COMM_WORLD_RANK, PMI_RANK or PMIX_RANK set) a
 * second signal is the launcher's, not the user's: Open MPI's mpirun answers
 * Ctrl-C or SIGTERM by sending the ranks SIGTERM and, one second later
 * (odls_base_sigkill_timeout), SIGKILL, and exits 1 whatever the ranks
 * return. So there the ranks keep stopping at the current step, and world
 * rank 0 says at once, from the handler, at which epoch and that last.pt
 * keeps every finished epoch: if the SIGKILL comes first, the run still
 * resumes from there. launch/mpirun.sh passes Ctrl-C and SIGTERM on to
 * mpirun as SIGUSR1, which mpirun forwards and waits for: exit status 75.
 */
#ifndef FOLDLINE_STOP_H
#define FOLDLINE_STOP_H

/* Installs the handlers (SA_RESTART: reads and writes are not cut short).
 * Idempotent; replaces fl_tempfile_install_signal_cleanup's handlers. */
void fl_stop_install(void);

/* The signal that asked to stop, or 0. */
int fl_stop_requested(void);

/* The 1-based epoch now training (-1: none), for the launcher's stop line. */
void fl_stop_note_epoch(int epoch);

#endif
