/* world.c -- see world.h. */
#include "dist/world.h"

#include <stdio.h>
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
