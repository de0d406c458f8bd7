/* cli_version.c -- `foldline --version`: what this binary was built with. The libtorch line loads
 * the libtorch module (launch/torch_module.h); when it cannot be loaded, every other line is
 * printed and the error follows. */
#include <stdio.h>

#include <hdf5.h>
#include <libconfig.h>

#include "dist/world.h"
#include "launch/cli.h"
#include "launch/torch_module.h"

int cli_version(void)
{
    fl_error err;
    fl_torch_info ti;
    const fl_torch_verbs_table *t;
    fl_code rc = cli_torch_module(&t, &err);
    if (!rc)
        rc = t->torch_info(&ti, &err);
    char mpi[256], nccl[4200];
    fl_mpi_library_version(mpi, sizeof mpi);
    fl_nccl_version(nccl, sizeof nccl);
    unsigned h5maj, h5min, h5rel;
    H5get_libversion(&h5maj, &h5min, &h5rel);
    printf("foldline %s\n", FOLDLINE_VERSION);
    if (rc)
        printf("libtorch unknown (the libtorch module %s did not load)\n", cli_torch_module_path());
    else if (ti.cuda_built)
        printf("libtorch %s (CUDA built, %d device%s visible)\n", ti.version, ti.cuda_devices,
               ti.cuda_devices == 1 ? "" : "s");
    else
        printf("libtorch %s (CPU only, no CUDA)\n", ti.version);
    printf("MPI      %s\n", mpi);
    printf("HDF5     %u.%u.%u\n", h5maj, h5min, h5rel);
    printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
    printf("NCCL     %s\n", nccl);
    if (rc) {
        fflush(stdout);
        return cli_report(&err);
    }
    return 0;
}
