// model.h -- what an fl_model holds (C sees only the opaque pointer).
// Shared by model_api.cpp (building, training, predicting) and
// model_state.cpp (saving and loading). C++ only.
#ifndef FOLDLINE_TORCH_MODEL_H
#define FOLDLINE_TORCH_MODEL_H

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "trainer/torch/amp.h"
#include "trainer/torch/bridge.h"
#include "trainer/torch/nets.h"

namespace foldline
{
struct Overlap; // model_overlap.cpp: the buckets and hooks of fl_model_grads_overlap_*
}

struct fl_model {
    // The spec, as owned copies (the caller's strings may go away).
    std::string backbone_name, head_type, head_act, optimizer_name, device_name;
    int64_t in_channels = 0, height = 0, width = 0, num_classes = 0, head_hidden = 0;
    bool freeze_backbone = false;
    double backbone_lr_scale = 1; // the backbone's lr over the head's (1 when frozen)
    double clip_grad_norm = 0, label_smoothing = 0;

    torch::Device device{torch::kCPU};
    foldline::Net net{nullptr};
    std::vector<torch::Tensor> trainable; // what the optimizer updates
    std::unique_ptr<torch::optim::Optimizer> opt;
    double lr = 0;                              // the head's; the backbone's is lr * backbone_lr_scale
    std::vector<double> group_scale;            // lr factor of each optimizer parameter group
    torch::Tensor mean, std;                    // (1, C, 1, 1) float32 on device
    torch::Tensor flat;                         // (count) float32: model_comm.cpp's buffer, kept between steps
    std::shared_ptr<foldline::Overlap> overlap; // built at the first fl_model_grads_overlap_begin
    at::ScalarType amp = at::kFloat;            // the backbone's autocast dtype (kFloat: none); amp.h
    foldline::LossScaler scaler;                // fp16 with a trained backbone
    bool channels_last = false;                 // backbone weights and input images in channels_last (NHWC) memory
};

namespace foldline
{
// One line naming what must match between a saved model and the one loading
// it: backbone (a TorchScript one by file name and D), channels, classes,
// head, optimizer and a backbone lr scale other than 1.
std::string model_signature(const fl_model &m);
// A 4-d tensor in NHWC strides. Not .contiguous(ChannelsLast): with one
// channel (a grey image, the first convolution's weight) a contiguous NCHW
// tensor already counts as channels_last contiguous, so .contiguous() keeps its
// NCHW strides, the convolution then suggests NCHW, and the first layers run
// contiguous: bf16 max pooling's NCHW kernel alone took a fifth of smallresnet's
// step. PyTorch's module.to(memory_format=...) makes these strides too.
inline torch::Tensor nhwc(const torch::Tensor &t)
{
    return torch::empty_like(t, t.options(), torch::MemoryFormat::ChannelsLast).copy_(t);
}
// Sets lr (times the group's scale) on every parameter group and remembers it.
void model_set_lr(fl_model &m, double lr);
} // namespace foldline

#endif
