// images.h -- uint8 host images to float tensors on a device, the per-image
// augmentation (the geometric ops through warp.h, then the pixel ops) and the
// normalisation. C++ only.
#ifndef FOLDLINE_TORCH_IMAGES_H
#define FOLDLINE_TORCH_IMAGES_H

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "trainer/torch/bridge.h"

namespace foldline
{

// "cpu" | "cuda" | "cuda:N" -> *dev; CUDA must be there (FL_EINPUT otherwise).
fl_code parse_device(const std::string &name, torch::Device *dev, fl_error *err);

// x: uint8 (B, C, H, W) host buffer -> float32 (B, C, H, W) on device, still
// on the 0..255 scale. Only the uint8 bytes cross to the device.
torch::Tensor images_to_device(const uint8_t *x, int64_t B, int64_t C, int64_t H, int64_t W,
                               const torch::Device &device);

// Applies aug[i] to image i of x (B, C, H, W) float on the 0..255 scale, in
// place: the geometric ops as one remap (warp_apply), then brightness_contrast
// and cutout in their listed order. Images none of whose ops fired stay bit
// for bit as they were.
void images_augment(torch::Tensor &x, const fl_augment *aug);

// False, with the reason in *why, when a drawn parameter of aug (B) is out of
// its range (not finite, a kind or count out of range, sigma <= 0, ...).
bool images_augment_valid(const fl_augment *aug, int64_t B, std::string *why);

// (x / 255 - mean) / std per channel; mean and std are (1, C, 1, 1) on x's device.
torch::Tensor images_normalise(const torch::Tensor &x, const torch::Tensor &mean, const torch::Tensor &std);

} // namespace foldline

#endif
