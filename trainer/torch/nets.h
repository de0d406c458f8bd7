// nets.h -- the networks behind an fl_model: backbones (images -> features)
// and heads (features -> class logits). C++ only; never included from C.
//
// The ResNets have torchvision's topology and submodule names (conv1, bn1,
// layer1.0.conv1, layer1.0.downsample.0, ...), so their parameter counts, and
// the names of their tensors in a saved model, are torchvision's.
#ifndef FOLDLINE_TORCH_NETS_H
#define FOLDLINE_TORCH_NETS_H

#include <memory>
#include <string>

#include <torch/torch.h>

namespace foldline
{

// The names fl_model_spec accepts, for messages ("a" | "b" | ...).
extern const char *const kBackboneNames;
extern const char *const kHeadNames;
extern const char *const kActNames;

// A backbone maps images (B, C, H, W) to features (B, D).
struct BackboneImpl : torch::nn::Module {
    virtual torch::Tensor forward(torch::Tensor x) = 0;
    virtual int64_t feature_dim() const = 0;
};

// nullptr when the name is not a built-in one ("torchscript:PATH" is
// torchscript.h's torchscript_backbone_new). Weights are drawn from
// libtorch's global CPU generator (the caller seeds it) as torchvision does:
// convolutions kaiming_normal_(fan_out, relu), batch norms weight 1 bias 0.
// height and width matter only to "mlp" (its input is the flattened image).
std::shared_ptr<BackboneImpl> backbone_new(const std::string &name, int64_t in_channels, int64_t height, int64_t width);

// "linear": Linear(D, classes); "mlp3": Linear(D, hidden) - act - Linear(hidden, classes).
// An empty holder when type or act is unknown. Linear layers keep libtorch's
// default initialisation (that of torch.nn.Linear).
torch::nn::Sequential head_new(const std::string &type, int64_t dim, int64_t hidden, const std::string &act,
                               int64_t classes);

// Backbone + head under the names "backbone" and "head" (the keys of a saved model).
struct NetImpl : torch::nn::Module {
    NetImpl(std::shared_ptr<BackboneImpl> backbone, torch::nn::Sequential head);
    torch::Tensor forward(torch::Tensor x) { return head->forward(backbone->forward(x)); }
    std::shared_ptr<BackboneImpl> backbone;
    torch::nn::Sequential head;
};
TORCH_MODULE(Net);

} // namespace foldline

#endif
