/* world.h -- the MPI world of `foldline train`: starting and ending MPI, who
 * this process is (rank, size, host, rank on its host), the launch check
 * against SLURM, and agreeing on a failure that every rank met on its own.
 *
 * `foldline train` starts MPI, and `foldline predict` when a launcher
 * started it (fl_world_launched); prep, inspect, vote and export never do. The
 * same binary runs alone (a singleton world of one rank) and under mpirun or
 * srun --mpi=pmix. MPI_THREAD_FUNNELED is enough: only the main thread calls
 * MPI (the loader's prefetch thread and libtorch's threads never do).
 *
 * The rank groups that train one job together are in dist/group.h, the queue
 * of jobs in dist/jobq.h.
 */
#ifndef FOLDLINE_WORLD_H
#define FOLDLINE_WORLD_H

#include <stddef.h>

#include "base/error.h"

typedef struct {
    int rank, size;             /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* among the ranks on this host (MPI_COMM_TYPE_SHARED) */
    int hosts;                  /* hosts the world spans */
    char host[256];             /* MPI_Get_processor_name */
} fl_world;

/* First line of MPI_Get_library_version (callable before MPI_Init). */
void fl_mpi_library_version(char *buf, size_t n);
/* "NCCL 2.x.y" when foldline was built with NCCL, else "not built in". */
void fl_nccl_version(char *buf, size_t n);

/* 1 when mpirun or srun (with PMI) started this process as a rank of a
 * world: a verb that works alone starts MPI only then. */
int fl_world_launched(void);

/* MPI_Init_thread (FUNNELED), then fills w. On failure MPI may be half up:
 * call fl_world_end anyway. A task of an srun step of several tasks without
 * PMI is refused before MPI_Init (FL_EUSAGE; w stays a world of one rank, so
 * fl_world_reports picks SLURM_PROCID 0 to print it). */
fl_code fl_world_start(fl_world *w, fl_error *err);

/* Under SLURM (SLURM_NTASKS set) the world must have SLURM_NTASKS ranks: a
 * plain srun without PMI starts N singletons, each "rank 0 of 1", which would
 * all train the whole run. Fails with a message and a HINT. Only rank 0's
 * environment counts (mpirun's ranks on other nodes see their orted's step). */
fl_code fl_world_check_launch(const fl_world *w, fl_error *err);

/* Whether this process is the one that prints a failure every process shares:
 * world rank 0, except that of the N singletons a plain srun starts, only
 * SLURM_PROCID 0 (so that the error appears once, not N times). */
int fl_world_reports(const fl_world *w);

/* Collective over the world: after a step that every rank ran on its own,
 * whether any rank failed (failed != 0 here). *first: the lowest rank that
 * failed; *n_failed: how many did. Returns FL_OK or FL_EMPI. */
fl_code fl_world_agree(const fl_world *w, int failed, int *first, int *n_failed, fl_error *err);

/* Collective over the world: rank 0's n ints v to every rank (MPI_Bcast),
 * for a decision rank 0 alone makes. Returns FL_OK or FL_EMPI. */
fl_code fl_world_bcast_ints(const fl_world *w, int *v, int n, fl_error *err);

/* Waits for every rank (MPI_Barrier). */
fl_code fl_world_barrier(const fl_world *w, fl_error *err);

/* MPI_Finalize if MPI is up and not yet finalized; idempotent. */
void fl_world_end(void);

/* Message of an MPI error code, "what: MPI message". Returns FL_EMPI. */
fl_code fl_mpi_fail(fl_error *err, int mpi_rc, const char *what);

#endif
