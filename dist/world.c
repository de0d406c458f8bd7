/* world.c -- see world.h. */
#include "dist/world.h"

#include <sched.h>
#include <stdio.h>
#include <unistd.h>
#include <string.h>

#include <mpi.h>
#ifdef FL_HAVE_NCCL
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

void fl_nccl_version(char *buf, size_t n)
{
#ifdef FL_HAVE_NCCL
    int v = 0;
    if (ncclGetVersion(&v) == ncclSuccess)
        snprintf(buf, n, "built in (NCCL %d.%d.%d)", v / 10000, (v / 100) % 100, v % 100);
    else
        snprintf(buf, n, "built in (NCCL %d.%d.%d headers)", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
#else
    snprintf(buf, n, "not built in");
#endif
}

int fl_cores_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
