/* world.c -- see world.h. */
#include "dist/world.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <mpi.h>
#ifdef FL_HAVE_NCCL
#include <dlfcn.h>
#include <link.h>
#include <nccl.h>
#endif

void fl_mpi_library_version(char *buf, size_t n)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    v[strcspn(v, "\n,")] = '\0';
    int major = 0, minor = 0;
    MPI_Get_version(&major, &minor);
    snprintf(buf, n, "%s (MPI %d.%d)", v, major, minor);
}

#ifdef FL_HAVE_NCCL
/* Where the libnccl.so.2 of this process was loaded from (a CUDA libtorch brings
 * its own, which foldline must share), or "?". */
static void nccl_loaded_from(char *buf, size_t n)
{
    snprintf(buf, n, "?");
    void *h = dlopen("libnccl.so.2", RTLD_LAZY | RTLD_NOLOAD);
    struct link_map *map = NULL;
    if (h && dlinfo(h, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0])
        snprintf(buf, n, "%s", map->l_name);
    if (h)
        dlclose(h);
}
#endif

void fl_nccl_version(char *buf, size_t n)
{
#ifdef FL_HAVE_NCCL
    char from[4096];
    nccl_loaded_from(from, sizeof from);
    int v = 0;
    if (ncclGetVersion(&v) == ncclSuccess)
        snprintf(buf, n, "built in (NCCL %d.%d.%d from %s)", v / 10000, (v / 100) % 100, v % 100, from);
    else
        snprintf(buf, n, "built in (NCCL %d.%d.%d headers, library %s)", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH, from);
#else
    snprintf(buf, n, "not built in");
#endif
}

fl_code fl_mpi_fail(fl_error *err, int mpi_rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpi_rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error %d", mpi_rc);
    return fl_fail(err, FL_EMPI, "%s: %s", what, msg);
}

/* 1 when a launcher started this process as a rank of a bigger world: its
 * MPI library finds the others through these (Open MPI's mpirun, PMIx as with
 * srun --mpi=pmix, PMI-1/2 as with srun --mpi=pmi2 or MPICH's hydra, PALS
 * as with srun --mpi=cray_shasta). */
static int launched_by_mpi(void)
{
    static const char *const vars[] = {
        "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "PMI_FD", "PALS_RANKID", NULL,
    };
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

/* A task of an srun step of several tasks that no MPI launcher set up: srun
 * without PMI (--mpi=none, the usual MpiDefault). Open MPI's MPI_Init would
 * fail there with a long message that suggests rebuilding it; other MPI
 * libraries would start a singleton. Either way the fix is the launch. */
static long srun_without_pmi(void)
{
    const char *step = getenv("SLURM_STEP_ID"), *tasks = getenv("SLURM_STEP_NUM_TASKS");
    if (!step || !tasks || launched_by_mpi())
        return 0;
    char *end;
    errno = 0;
    long n = strtol(tasks, &end, 10);
    return *end || errno || n < 2 ? 0 : n;
}

int fl_world_launched(void)
{
    return launched_by_mpi() || srun_without_pmi() != 0;
}

fl_code fl_world_start(fl_world *w, fl_error *err)
{
    memset(w, 0, sizeof *w);
    w->size = w->local_size = w->hosts = 1;
    long n = srun_without_pmi();
    if (n)
        return fl_fail(err, FL_EUSAGE,
                       "srun started %ld tasks without PMI (srun --mpi=none): each would be a separate "
                       "one-rank MPI world training the whole run HINT: srun --mpi=pmix foldline train ... "
                       "(srun --mpi=list shows what this SLURM offers), or mpirun foldline train ... inside "
                       "the allocation",
                       n);
    /* Alone, Open MPI starts a helper daemon (orted) for MPI_Comm_spawn,
     * which foldline never calls: that is 0.5 s of every run on a laptop.
     * Other MPI libraries ignore the variable; the user's own setting wins. */
    if (!launched_by_mpi())
        setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return fl_fail(err, FL_EMPI,
                       "MPI_Init_thread failed (MPI error %d) HINT: start foldline train alone, or "
                       "with mpirun -np N, or srun --mpi=pmix",
                       rc);
    /* Errors come back as codes, so that every failure goes through the one
     * reporting path of launch/ (which aborts the whole job). */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_FUNNELED)
        return fl_fail(err, FL_EMPI, "this MPI library provides thread level %d, below MPI_THREAD_FUNNELED", provided);
    MPI_Comm node;
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &w->rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(MPI_COMM_WORLD, &w->size)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_COMM_WORLD");
    int len = 0;
    char host[MPI_MAX_PROCESSOR_NAME];
    if (MPI_Get_processor_name(host, &len) != MPI_SUCCESS)
        snprintf(host, sizeof host, "unknown host");
    snprintf(w->host, sizeof w->host, "%s", host);
    /* The ranks that share this host's memory: local_rank picks the GPU. */
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Comm_split_type (ranks of this host)");
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_size(node, &w->local_size);
    MPI_Comm_free(&node);
    int first_on_host = w->local_rank == 0;
    if ((rc = MPI_Allreduce(&first_on_host, &w->hosts, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allreduce (counting hosts)");
    return FL_OK;
}

fl_code fl_world_check_launch(const fl_world *w, fl_error *err)
{
    /* Rank 0 judges: under mpirun inside a multi-node allocation, the ranks
     * of the other nodes inherit the environment of the one-task srun step
     * that started their orted (SLURM_NTASKS=1); rank 0 runs where mpirun
     * does, in the batch step, whose SLURM_NTASKS is the job's. */
    if (w->rank != 0)
        return FL_OK;
    const char *ntasks = getenv("SLURM_NTASKS");
    if (!ntasks || !*ntasks)
        return FL_OK;
    char *end;
    errno = 0;
    long n = strtol(ntasks, &end, 10);
    if (*end || errno || n < 1)
        return FL_OK; /* not a task count we understand: not ours to judge */
    if (n == w->size)
        return FL_OK;
    if (w->size == 1)
        return fl_fail(err, FL_EUSAGE,
                       "SLURM_NTASKS is %ld but this MPI world has 1 rank: srun started %ld separate copies "
                       "without PMI, each of which would train the whole run HINT: srun --mpi=pmix foldline "
                       "train ... (srun --mpi=list shows what this SLURM offers), or mpirun -np %ld foldline "
                       "train ... inside the allocation",
                       n, n, n);
    return fl_fail(err, FL_EUSAGE,
                   "SLURM_NTASKS is %ld but this MPI world has %d ranks HINT: start one rank per SLURM task "
                   "(mpirun without -np, or -np %ld, inside the allocation; or srun --mpi=pmix)",
                   n, w->size, n);
}

int fl_world_reports(const fl_world *w)
{
    if (w->rank != 0)
        return 0;
    const char *procid = getenv("SLURM_PROCID");
    return w->size > 1 || !procid || !*procid || !strcmp(procid, "0");
}

fl_code fl_world_agree(const fl_world *w, int failed, int *first, int *n_failed, fl_error *err)
{
    int in[2] = {failed ? w->rank : w->size, failed ? 1 : 0}, lowest = w->size, count = 0, rc;
    if ((rc = MPI_Allreduce(&in[0], &lowest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD)) != MPI_SUCCESS ||
        (rc = MPI_Allreduce(&in[1], &count, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD)) != MPI_SUCCESS)
        return fl_mpi_fail(err, rc, "MPI_Allreduce (did every rank start?)");
    *first = lowest;
    *n_failed = count;
    return FL_OK;
}

fl_code fl_world_bcast_ints(const fl_world *w, int *v, int n, fl_error *err)
{
    (void)w;
    int rc = MPI_Bcast(v, n, MPI_INT, 0, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, rc, "MPI_Bcast (rank 0's decision)");
}

fl_code fl_world_barrier(const fl_world *w, fl_error *err)
{
    (void)w;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? FL_OK : fl_mpi_fail(err, rc, "MPI_Barrier (after the jobs)");
}

void fl_world_end(void)
{
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (up && !down)
        MPI_Finalize();
}
