// bridge_core.cpp -- libtorch build information and process-wide settings.
// The one C++ idiom allowed to leak out is none: every entry point is wrapped
// by FL_TORCH_GUARD (bridge_guard.h), which turns exceptions into fl_codes.
#include "trainer/torch/bridge.h"
#include "trainer/torch/bridge_guard.h"

#include <cstdio>

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

extern "C" fl_code fl_torch_set_threads(int n, fl_error *err)
{
    if (n < 1)
        return fl_fail(err, FL_EINPUT, "thread count %d: must be at least 1", n);
    FL_TORCH_GUARD(err, { at::set_num_threads(n); });
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
