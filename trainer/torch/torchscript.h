// torchscript.h -- a backbone read from a TorchScript file ("torchscript:PATH"),
// for pretrained networks exported from Python (launch/export_timm.py).
// C++ only; never included from C.
//
// The module must map float images (B, ch, H, W) to features (B, D). Its
// parameters and buffers are registered in foldline's module tree under their
// TorchScript names (backbone.blocks.0.attn.qkv.weight, ...), the same tensors,
// not copies: the optimizer, checkpoints, the data-parallel collectives and
// parameter counts treat it like a built-in backbone, and train()/eval()
// reach the TorchScript module too.
#ifndef FOLDLINE_TORCH_TORCHSCRIPT_H
#define FOLDLINE_TORCH_TORCHSCRIPT_H

#include <memory>
#include <string>

#include "base/error.h"
#include "trainer/torch/nets.h"

#include <torch/script.h>

namespace foldline
{

// The prefix of a backbone name that names a TorchScript file.
extern const char *const kTorchScriptPrefix;

// True when name is "torchscript:PATH" (PATH may be empty: check_spec refuses that).
bool is_torchscript(const std::string &name);

// Loads the module at path onto device and finds D with one dry forward pass
// (eval mode, no grad) of 2 zero images (2, ch, h, w). FL_EINPUT, naming path,
// when the file cannot be opened, is not a TorchScript module, fails on such
// a batch (other channels or size than it was exported for), or returns
// anything but one floating-point tensor (2, D).
// The TorchScript module of a "torchscript:PATH" backbone, or nullptr when
// the backbone is a built-in one (for export: the module goes in as it is).
const torch::jit::Module *torchscript_module_of(const BackboneImpl &backbone);

fl_code torchscript_backbone_new(const std::string &path, const torch::Device &device, int64_t ch, int64_t h, int64_t w,
                                 std::shared_ptr<BackboneImpl> *out, fl_error *err);

} // namespace foldline

#endif
