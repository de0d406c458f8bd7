// images.h -- uint8 host images to float tensors on a device, the per-image
// augmentation (rotation, flips) and the normalisation. C++ only.
#ifndef FOLDLINE_TORCH_IMAGES_H
#define FOLDLINE_TORCH_IMAGES_H

#include <cstdint>

#include <torch/torch.h>

#include "trainer/torch/bridge.h"

namespace foldline
{

// x: uint8 (B, C, H, W) host buffer -> float32 (B, C, H, W) on device, still
// on the 0..255 scale. Only the uint8 bytes cross to the device.
torch::Tensor images_to_device(const uint8_t *x, int64_t B, int64_t C, int64_t H, int64_t W,
                               const torch::Device &device);

// Applies aug[i] to image i of x (B, C, H, W) float, in place, in the order
// of fl_augment: rotation, then hflip, then vflip. Images with angle 0 never
// go through grid_sample, so without a flip they stay bit for bit as they were.
void images_augment(torch::Tensor &x, const fl_augment *aug);

// False when an angle of aug (B) is NaN or infinite.
bool images_augment_valid(const fl_augment *aug, int64_t B);

// (x / 255 - mean) / std per channel; mean and std are (1, C, 1, 1) on x's device.
torch::Tensor images_normalise(const torch::Tensor &x, const torch::Tensor &mean, const torch::Tensor &std);

} // namespace foldline

#endif
