// amp.h -- mixed precision for the bridge: the precision names, an RAII
// autocast scope that works on libtorch 1.13 and 2.x, and the loss scaler of
// fp16 training (libtorch's C++ API has no GradScaler). C++ only.
//
// What runs in which dtype: the backbone's forward (and, when it trains, its
// backward, which follows the forward's dtypes) under autocast in the
// model's precision; the head, the loss, the master weights and the
// optimizer in float32. Features leave the backbone in the autocast dtype
// and are widened to float32 (exactly) before the head.
#ifndef FOLDLINE_TORCH_AMP_H
#define FOLDLINE_TORCH_AMP_H

#include <string>
#include <vector>

#include <torch/torch.h>

#include "base/error.h"

namespace foldline
{

// "fp32" | "bf16" | "fp16" -> kFloat | kBFloat16 | kHalf; FL_EINPUT otherwise.
// fp16 needs a CUDA device: libtorch's CPU autocast is bf16 only in 1.13, and
// CPU fp16 kernels are slow or missing; refused for the CPU in every version.
fl_code precision_parse(const std::string &name, const torch::Device &dev, at::ScalarType *dtype, fl_error *err);
const char *precision_name(at::ScalarType dtype);

// Autocast on dev's device type in dtype for the guard's lifetime (nothing
// when dtype is kFloat); the previous state (on or off, dtype) comes back in
// the destructor, also when an exception unwinds the scope.
class AutocastScope
{
  public:
    AutocastScope(const torch::Device &dev, at::ScalarType dtype);
    ~AutocastScope();
    AutocastScope(const AutocastScope &) = delete;
    AutocastScope &operator=(const AutocastScope &) = delete;

  private:
    bool active_ = false;
    c10::DeviceType type_ = c10::DeviceType::CPU;
    bool prev_enabled_ = false;
    at::ScalarType prev_dtype_ = at::kFloat;
};

// Dynamic loss scaling (torch.cuda.amp.GradScaler's defaults): the loss is
// multiplied by scale before backward; before clipping and the step the
// gradients are divided by it; a step whose gradients hold an inf or NaN is
// skipped and the scale halves; after growth_interval good steps in a row it
// doubles. The state is two numbers, saved with the job's progress.
struct LossScaler {
    bool on = false;
    double scale = 65536.0;
    int64_t good_steps = 0; // since the scale last changed
    static constexpr double kGrowth = 2.0, kBackoff = 0.5;
    static constexpr int64_t kInterval = 2000;

    // Divides grads by the scale in place; true when every one is finite
    // (the step may go on), false when the step must be skipped (the scale
    // is lowered then). Grows the scale after kInterval good steps.
    bool unscale_and_update(const std::vector<torch::Tensor> &grads);
};

} // namespace foldline

#endif
