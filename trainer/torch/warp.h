// warp.h -- the geometric ops of a batch (flips, rotate, elastic, grid
// distortion) as one sampling grid and one grid_sample. C++ only.
#ifndef FOLDLINE_TORCH_WARP_H
#define FOLDLINE_TORCH_WARP_H

#include <torch/torch.h>

#include "trainer/torch/bridge.h"

namespace foldline
{

// Applies the geometric ops of aug (B) to x (B, C, H, W) float, in place.
// Images whose geometric ops are all flips (or none) are flipped exactly
// (index flips; two hflips cancel); every other image's ops compose into one
// sampling grid, and one grid_sample resamples all of them together.
void warp_apply(torch::Tensor &x, const fl_augment *aug);

// The uniform noise fields of elastic draws, generated on keys' device:
// keys (n) int64 (the bits of fl_aug_draw.elastic.noise_key) -> (n, 2, H, W)
// float32 in [-1, 1). See fl_aug_draw in bridge.h.
torch::Tensor warp_elastic_noise(const torch::Tensor &keys, int64_t H, int64_t W);

} // namespace foldline

#endif
