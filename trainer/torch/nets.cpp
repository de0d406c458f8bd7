// nets.cpp -- ResNet-18/34/50 (torchvision's topology), the small CNN of the
// tests, the small ResNet of the CPU demo, the one-layer MLP, and the two
// heads. See nets.h.
#include "trainer/torch/nets.h"

#include <vector>

#include "base/names.h"

namespace foldline
{

namespace
{
// "\"a\" | \"b\"" from one of base/names.h's tables (and extra, when given).
std::string quoted_names(const char *const *names, const char *extra)
{
    char buf[256];
    std::string s = fl_names_join(buf, sizeof buf, names, nullptr, 0, "\"", " | ", " | ");
    return extra ? s + " | " + extra : s;
}
const std::string backbone_names = quoted_names(fl_backbone_names, "\"torchscript:PATH\"");
const std::string head_names = quoted_names(fl_head_names, nullptr);
const std::string act_names = quoted_names(fl_act_names, nullptr);
} // namespace

const char *const kBackboneNames = backbone_names.c_str();
const char *const kHeadNames = head_names.c_str();
const char *const kActNames = act_names.c_str();

namespace
{

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride)
{
    return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

// torchvision's initialisation of every ResNet (and of our small CNN).
void init_like_torchvision(nn::Module &net)
{
    torch::NoGradGuard no_grad;
    for (auto &mod : net.modules(/*include_self=*/false)) {
        if (auto *c = mod->as<nn::Conv2dImpl>()) {
            nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
        } else if (auto *b = mod->as<nn::BatchNorm2dImpl>()) {
            nn::init::ones_(b->weight);
            nn::init::zeros_(b->bias);
        }
    }
}

// BasicBlock (two 3x3) or Bottleneck (1x1, 3x3 with the stride as in
// torchvision's "ResNet v1.5", 1x1 to 4x planes). Output channels: planes *
// expansion(bottleneck).
int64_t expansion(bool bottleneck)
{
    return bottleneck ? 4 : 1;
}

struct ResBlockImpl : nn::Module {
    ResBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, bool bottleneck) : bottleneck(bottleneck)
    {
        int64_t out = planes * expansion(bottleneck);
        if (bottleneck) {
            conv1 = register_module("conv1", conv(inplanes, planes, 1, 1));
            bn1 = register_module("bn1", nn::BatchNorm2d(planes));
            conv2 = register_module("conv2", conv(planes, planes, 3, stride));
            bn2 = register_module("bn2", nn::BatchNorm2d(planes));
            conv3 = register_module("conv3", conv(planes, out, 1, 1));
            bn3 = register_module("bn3", nn::BatchNorm2d(out));
        } else {
            conv1 = register_module("conv1", conv(inplanes, planes, 3, stride));
            bn1 = register_module("bn1", nn::BatchNorm2d(planes));
            conv2 = register_module("conv2", conv(planes, planes, 3, 1));
            bn2 = register_module("bn2", nn::BatchNorm2d(planes));
        }
        if (stride != 1 || inplanes != out)
            downsample =
                register_module("downsample", nn::Sequential(conv(inplanes, out, 1, stride), nn::BatchNorm2d(out)));
    }

    torch::Tensor forward(torch::Tensor x)
    {
        torch::Tensor y = torch::relu(bn1(conv1(x)));
        y = bn2(conv2(y));
        if (bottleneck)
            y = bn3(conv3(torch::relu(y)));
        torch::Tensor identity = downsample ? downsample->forward(x) : x;
        return torch::relu(y + identity);
    }

    bool bottleneck;
    nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
    nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
    nn::Sequential downsample{nullptr};
};
TORCH_MODULE(ResBlock);

struct ResNetImpl : BackboneImpl {
    ResNetImpl(int64_t in_channels, const std::vector<int64_t> &blocks, bool bottleneck)
    {
        conv1 = register_module("conv1",
                                nn::Conv2d(nn::Conv2dOptions(in_channels, 64, 7).stride(2).padding(3).bias(false)));
        bn1 = register_module("bn1", nn::BatchNorm2d(64));
        int64_t inplanes = 64;
        const int64_t planes[4] = {64, 128, 256, 512};
        for (int i = 0; i < 4; i++) {
            nn::Sequential layer;
            for (int64_t b = 0; b < blocks[i]; b++) {
                int64_t stride = (i > 0 && b == 0) ? 2 : 1;
                layer->push_back(ResBlock(inplanes, planes[i], stride, bottleneck));
                inplanes = planes[i] * expansion(bottleneck);
            }
            layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
        }
        dim = inplanes;
        init_like_torchvision(*this);
    }

    torch::Tensor forward(torch::Tensor x) override
    {
        x = torch::relu(bn1(conv1(x)));                   // (B, 64, H/2, W/2)
        x = torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1}); // (B, 64, H/4, W/4)
        for (auto &layer : layers)
            x = layer->forward(x);                               // (B, D, H/32, W/32)
        return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1); // (B, D)
    }
    int64_t feature_dim() const override { return dim; }

    nn::Conv2d conv1{nullptr};
    nn::BatchNorm2d bn1{nullptr};
    std::vector<nn::Sequential> layers;
    int64_t dim = 0;
};

// The small CNN: 3x3 conv-BN-ReLU blocks of 16, 32, 64 and 64 channels with a
// 2x2 max pool after the first two, then an average pool to 7x7 cells,
// flattened: D = 64 * 49 = 3136. At 28x28 the pool keeps the whole 7x7 map:
// a linear head needs to know where things are (global pooling costs
// Fashion-MNIST 2 points of accuracy). About 3.7 M multiply-adds per 28x28
// grey image, so a laptop's CPU trains it at thousands of images/s. Any
// H, W >= 4 and any channel count work.
struct SmallCnnImpl : BackboneImpl {
    static constexpr int64_t kLast = 64, kCells = 7;

    explicit SmallCnnImpl(int64_t in_channels)
    {
        features = register_module("features", nn::Sequential());
        auto cbr = [&](int64_t in, int64_t out) {
            features->push_back(conv(in, out, 3, 1));
            features->push_back(nn::BatchNorm2d(out));
            features->push_back(nn::ReLU());
        };
        cbr(in_channels, 16);                                        // (B, 16, H, W)
        features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2))); // (B, 16, H/2, W/2)
        cbr(16, 32);
        features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2))); // (B, 32, H/4, W/4)
        cbr(32, 64);
        cbr(64, kLast);
        init_like_torchvision(*this);
    }

    torch::Tensor forward(torch::Tensor x) override
    {
        x = features->forward(x);                                          // (B, 64, H/4, W/4)
        return torch::adaptive_avg_pool2d(x, {kCells, kCells}).flatten(1); // (B, 64 * 7 * 7)
    }
    int64_t feature_dim() const override { return kLast * kCells * kCells; }

    nn::Sequential features{nullptr};
};

// The small ResNet, for 28-64 px images on a CPU: a 3x3 conv-BN-ReLU stem of
// 24 channels and a 2x2 max pool, then three BasicBlocks (two 3x3 conv-BN and
// the identity, or a strided 1x1 conv-BN where the shape changes) of 24, 48
// and 96 channels, the last two with stride 2, and a global average pool:
// D = 96. At 28x28: 28 -> 14 (pool) -> 14 -> 7 -> 4. 172,872 parameters,
// about 5.8 M multiply-adds per 28x28 grey image (the small CNN: 3.7 M); in
// channels_last on the CPU (model_api.cpp) a step costs about 1.5x the small
// CNN's, and the residual blocks learn more per epoch. Any H, W >= 8.
struct SmallResNetImpl : BackboneImpl {
    static constexpr int64_t kWidths[3] = {24, 48, 96};

    explicit SmallResNetImpl(int64_t in_channels)
    {
        stem = register_module(
            "stem", nn::Sequential(conv(in_channels, kWidths[0], 3, 1), nn::BatchNorm2d(kWidths[0]), nn::ReLU()));
        blocks = register_module("blocks", nn::Sequential());
        int64_t in = kWidths[0];
        for (int i = 0; i < 3; i++) {
            blocks->push_back(ResBlock(in, kWidths[i], i == 0 ? 1 : 2, false));
            in = kWidths[i];
        }
        init_like_torchvision(*this);
    }

    torch::Tensor forward(torch::Tensor x) override
    {
        x = torch::max_pool2d(stem->forward(x), {2, 2});         // (B, 24, H/2, W/2)
        x = blocks->forward(x);                                  // (B, 96, H/8, W/8), rounded up
        return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1); // (B, 96)
    }
    int64_t feature_dim() const override { return kWidths[2]; }

    nn::Sequential stem{nullptr}, blocks{nullptr};
};

// The "mlp" backbone: the image flattened, one Linear(ch * H * W, 128) and a
// ReLU; D = 128. No batch norm, so data-parallel training computes the same
// gradients as one process would (the equivalence tests of dist/ rely on it),
// and small enough to train in milliseconds on tiny images.
struct MlpImpl : BackboneImpl {
    MlpImpl(int64_t in_channels, int64_t height, int64_t width)
    {
        fc = register_module("fc", nn::Linear(in_channels * height * width, kWidth));
    }

    torch::Tensor forward(torch::Tensor x) override
    {
        return torch::relu(fc(x.flatten(1))); // (B, ch * H * W) -> (B, 128)
    }
    int64_t feature_dim() const override { return kWidth; }
    static constexpr int64_t kWidth = 128;
    nn::Linear fc{nullptr};
};

} // namespace

std::shared_ptr<BackboneImpl> backbone_new(const std::string &name, int64_t in_channels, int64_t height, int64_t width)
{
    switch (fl_backbone_parse(name.c_str())) {
    case FL_NET_RESNET18:
        return std::make_shared<ResNetImpl>(in_channels, std::vector<int64_t>{2, 2, 2, 2}, false);
    case FL_NET_RESNET34:
        return std::make_shared<ResNetImpl>(in_channels, std::vector<int64_t>{3, 4, 6, 3}, false);
    case FL_NET_RESNET50:
        return std::make_shared<ResNetImpl>(in_channels, std::vector<int64_t>{3, 4, 6, 3}, true);
    case FL_NET_SMALLCNN:
        return std::make_shared<SmallCnnImpl>(in_channels);
    case FL_NET_SMALLRESNET:
        return std::make_shared<SmallResNetImpl>(in_channels);
    case FL_NET_MLP:
        return std::make_shared<MlpImpl>(in_channels, height, width);
    default:
        return nullptr;
    }
}

nn::Sequential head_new(const std::string &type, int64_t dim, int64_t hidden, const std::string &act, int64_t classes)
{
    const int head = fl_head_parse(type.c_str()), a = fl_act_parse(act.c_str());
    if (head == FL_HEAD_LINEAR)
        return nn::Sequential(nn::Linear(dim, classes));
    if (head != FL_HEAD_MLP3)
        return nn::Sequential(nullptr);
    if (a == FL_ACT_RELU)
        return nn::Sequential(nn::Linear(dim, hidden), nn::ReLU(), nn::Linear(hidden, classes));
    if (a == FL_ACT_GELU)
        return nn::Sequential(nn::Linear(dim, hidden), nn::GELU(), nn::Linear(hidden, classes));
    return nn::Sequential(nullptr);
}

NetImpl::NetImpl(std::shared_ptr<BackboneImpl> backbone_, nn::Sequential head_)
    : backbone(register_module("backbone", std::move(backbone_))), head(register_module("head", std::move(head_)))
{
}

} // namespace foldline
