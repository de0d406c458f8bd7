// bridge_core.cpp -- libtorch build information and process-wide settings.
// The one C++ idiom allowed to leak out is none: every entry point is wrapped
// by FL_TORCH_GUARD (bridge_guard.h), which turns exceptions into fl_codes.
#include "trainer/torch/bridge.h"
#include "trainer/torch/bridge_guard.h"

#include <cstdio>

#include <dlfcn.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <torch/torch.h>
#include <torch/version.h>

extern "C" fl_code fl_torch_get_info(fl_torch_info *info, fl_error *err)
{
    FL_TORCH_GUARD(err, {
        std::snprintf(info->version, sizeof info->version, "%s", TORCH_VERSION);
#ifdef FL_TORCH_CUDA
        info->cuda_built = 1;
#else
        info->cuda_built = 0;
#endif
        info->cuda_devices = torch::cuda::is_available() ? (int)torch::cuda::device_count() : 0;
        info->intra_threads = at::get_num_threads();
    });
}

namespace
{

// The BLAS behind libblas.so.3 (Debian's libtorch calls it for matrix
// products) keeps a thread pool of its own, sized when it loads from the
// cores of the process's affinity mask: 2 for a process alone on a 2-core
// machine, 1 for an mpirun rank bound to one core. Its products split the
// work by thread count, so the same config would give another model under
// another launch. Each BLAS has its own call; which one is loaded is known
// only at run time (libblas.so.3 is an alternatives link), hence dlsym.
// Returns the name of the BLAS whose pool was set, or nullptr.
const char *set_blas_threads(int n)
{
    static const struct {
        const char *symbol, *name;
    } setters[] = {
        {"openblas_set_num_threads", "OpenBLAS"},
        {"bli_thread_set_num_threads", "BLIS"},
        {"MKL_Set_Num_Threads", "MKL"},
    };
    for (const auto &s : setters) {
        void *fn = dlsym(RTLD_DEFAULT, s.symbol);
        if (fn) {
            reinterpret_cast<void (*)(int)>(fn)(n);
            return s.name;
        }
    }
    return nullptr;
}

const char *g_blas_pool = nullptr; // what fl_torch_set_threads set, for fl_torch_threads_text

} // namespace

extern "C" fl_code fl_torch_set_threads(int n, fl_error *err)
{
    if (n < 1)
        return fl_fail(err, FL_EINPUT, "thread count %d: must be at least 1", n);
    FL_TORCH_GUARD(err, {
        at::set_num_threads(n); // intra-op, and OpenMP's pool in an OpenMP build
        // The inter-op pool can be sized only before its first use, and once:
        // a second call (a second run in one process) keeps the first size.
        try {
            at::set_num_interop_threads(n);
        } catch (const std::exception &) {
        }
        void *omp = dlsym(RTLD_DEFAULT, "omp_set_num_threads");
        if (omp)
            reinterpret_cast<void (*)(int)>(omp)(n);
        g_blas_pool = set_blas_threads(n);
    });
}

extern "C" const char *fl_torch_blas_pool(void)
{
    return g_blas_pool;
}

extern "C" fl_code fl_torch_keep_freed_memory(fl_error *err)
{
#ifdef __GLIBC__
    // glibc serves blocks above M_MMAP_THRESHOLD with fresh mmaps and gives
    // the heap's free top back above M_TRIM_THRESHOLD; both make the kernel
    // zero new pages at every training step. 32 MiB is the largest threshold
    // glibc takes; tensors above it are big enough for the faults not to matter.
    // An allocator in glibc's place (AddressSanitizer's, say) refuses them:
    // then there is nothing to tune.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
    (void)err;
    return FL_OK;
}
