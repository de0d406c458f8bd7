// amp.cpp -- see amp.h. libtorch 2.4 made autocast's state per device type
// (set_autocast_enabled(device_type, on), set_autocast_dtype(device_type,
// dtype)) and deprecated the old per-device names (set_cpu_enabled,
// set_autocast_cpu_dtype; set_enabled and set_autocast_gpu_dtype for CUDA),
// which are all 1.13 has: TORCH_VERSION_MAJOR/MINOR pick the names.
#include "trainer/torch/amp.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "base/names.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define FL_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace foldline
{

fl_code precision_parse(const std::string &name, const torch::Device &dev, at::ScalarType *dtype, fl_error *err)
{
    const int p = name.empty() ? FL_PRECISION_FP32 : fl_precision_parse(name.c_str());
    char list[64];
    if (p < 0)
        return fl_fail(err, FL_EINPUT, "precision \"%s\": expected %s", name.c_str(),
                       fl_names_join(list, sizeof list, fl_precision_names, nullptr, 0, "\"", " | ", " | "));
    *dtype = p == FL_PRECISION_BF16 ? at::kBFloat16 : p == FL_PRECISION_FP16 ? at::kHalf : at::kFloat;
    if (*dtype == at::kHalf && !dev.is_cuda())
        return fl_fail(err, FL_EINPUT,
                       "precision \"fp16\" needs a CUDA device, and this model is on the CPU HINT: use \"bf16\" on "
                       "the CPU (autocast there is bfloat16), or \"fp32\"");
    return FL_OK;
}

const char *precision_name(at::ScalarType dtype)
{
    return fl_precision_name(dtype == at::kBFloat16 ? FL_PRECISION_BF16
                             : dtype == at::kHalf   ? FL_PRECISION_FP16
                                                    : FL_PRECISION_FP32);
}

namespace
{
bool autocast_enabled(c10::DeviceType t)
{
#ifdef FL_AUTOCAST_BY_DEVICE_TYPE
    return at::autocast::is_autocast_enabled(t);
#else
    return t == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void autocast_set_enabled(c10::DeviceType t, bool on)
{
#ifdef FL_AUTOCAST_BY_DEVICE_TYPE
    at::autocast::set_autocast_enabled(t, on);
#else
    if (t == c10::DeviceType::CUDA)
        at::autocast::set_enabled(on);
    else
        at::autocast::set_cpu_enabled(on);
#endif
}

at::ScalarType autocast_dtype(c10::DeviceType t)
{
#ifdef FL_AUTOCAST_BY_DEVICE_TYPE
    return at::autocast::get_autocast_dtype(t);
#else
    return t == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void autocast_set_dtype(c10::DeviceType t, at::ScalarType dtype)
{
#ifdef FL_AUTOCAST_BY_DEVICE_TYPE
    at::autocast::set_autocast_dtype(t, dtype);
#else
    if (t == c10::DeviceType::CUDA)
        at::autocast::set_autocast_gpu_dtype(dtype);
    else
        at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}
} // namespace

AutocastScope::AutocastScope(const torch::Device &dev, at::ScalarType dtype)
{
    if (dtype == at::kFloat)
        return;
    type_ = dev.is_cuda() ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
    prev_enabled_ = autocast_enabled(type_);
    prev_dtype_ = autocast_dtype(type_);
    autocast_set_dtype(type_, dtype);
    autocast_set_enabled(type_, true);
    at::autocast::increment_nesting();
    active_ = true;
}

AutocastScope::~AutocastScope()
{
    if (!active_)
        return;
    // The cache of casted weights lives as long as the outermost scope, as in
    // Python's torch.autocast.
    if (at::autocast::decrement_nesting() == 0)
        at::autocast::clear_cache();
    autocast_set_enabled(type_, prev_enabled_);
    autocast_set_dtype(type_, prev_dtype_);
}

bool LossScaler::unscale_and_update(const std::vector<torch::Tensor> &grads)
{
    bool finite = true;
    if (!grads.empty()) {
        const torch::Tensor &g0 = grads[0];
        if (g0.is_cuda()) { // one fused kernel, in both 1.13 and 2.x
            torch::Tensor found = torch::zeros({1}, g0.options().dtype(torch::kFloat32));
            torch::Tensor inv = torch::full({1}, 1.0 / scale, g0.options().dtype(torch::kFloat32));
            at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv);
            finite = found.item<float>() == 0.0f;
        } else { // 1.13 has no CPU kernel of that op: plain tensor ops
            std::vector<torch::Tensor> ok;
            ok.reserve(grads.size());
            for (const auto &g : grads) {
                g.mul_(1.0 / scale); // scale is a power of 2: exact
                ok.push_back(torch::isfinite(g).all());
            }
            finite = torch::stack(ok).all().item<bool>();
        }
    }
    if (!finite) {
        scale *= kBackoff;
        good_steps = 0;
        return false;
    }
    if (++good_steps >= kInterval) {
        scale *= kGrowth;
        good_steps = 0;
    }
    return true;
}

} // namespace foldline
