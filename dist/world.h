/* world.h -- the MPI side of the process: library versions now; the world,
 * rank groups and collectives as training grows into them. */
#ifndef FOLDLINE_WORLD_H
#define FOLDLINE_WORLD_H

#include <stddef.h>

/* The cores this process may run on (its CPU affinity mask). */
int fl_cores_available(void);

/* First line of MPI_Get_library_version (callable before MPI_Init). */
void fl_mpi_library_version(char *buf, size_t n);
/* "NCCL 2.x.y" when foldline was built with NCCL, else "not built in". */
void fl_nccl_version(char *buf, size_t n);

#endif
