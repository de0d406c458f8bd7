// model_api.cpp -- the fl_model_* entry points of bridge.h: building a model
// from its spec, one training step (forward_backward, then step), prediction
// with test-time flips, and the seeds. Saving and loading live in
// model_state.cpp. Every entry point checks its arguments (FL_EINPUT, with
// the bad value and what is allowed), then runs under FL_TORCH_GUARD.
// TorchScript backbones are loaded by torchscript.cpp.
#include "trainer/torch/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/names.h"
#include "trainer/torch/bridge_guard.h"
#include "trainer/spec.h"
#include "trainer/torch/images.h"
#include "trainer/torch/torchscript.h"

namespace foldline
{
namespace
{

const char *or_default(const char *s, const char *def)
{
    return s ? s : def;
}

bool finite_at_least(double v, double lo)
{
    return std::isfinite(v) && v >= lo;
}

// Everything of the spec that needs no libtorch. Names default as trainer/spec.h says.
fl_code check_spec(const fl_model_spec &s, fl_error *err)
{
    const std::string backbone = or_default(s.backbone, ""),
                      head = or_default(s.head_type, fl_head_name(FL_HEAD_LINEAR)),
                      act = or_default(s.head_act, fl_act_name(FL_ACT_RELU)),
                      opt = or_default(s.optimizer, fl_optim_name(FL_OPTIM_ADAM));
    const int head_i = fl_head_parse(head.c_str()), act_i = fl_act_parse(act.c_str()),
              opt_i = fl_optim_parse(opt.c_str());
    const bool script = is_torchscript(backbone);
    if (!script && fl_backbone_parse(backbone.c_str()) < 0)
        return fl_fail(err, FL_EINPUT, "backbone \"%s\": expected %s", backbone.c_str(), kBackboneNames);
    if (script && backbone.size() == std::strlen(kTorchScriptPrefix))
        return fl_fail(err, FL_EINPUT, "backbone \"%s\": expected torchscript:PATH, the path of a TorchScript file",
                       backbone.c_str());
    if (!(s.backbone_lr_scale == 0 || (std::isfinite(s.backbone_lr_scale) && s.backbone_lr_scale > 0)))
        return fl_fail(err, FL_EINPUT, "backbone_lr_scale %g: expected a finite number > 0 (0 means 1)",
                       s.backbone_lr_scale);
    if (head_i < 0)
        return fl_fail(err, FL_EINPUT, "head type \"%s\": expected %s", head.c_str(), kHeadNames);
    if (act_i < 0)
        return fl_fail(err, FL_EINPUT, "head activation \"%s\": expected %s", act.c_str(), kActNames);
    char list[64];
    if (opt_i < 0)
        return fl_fail(err, FL_EINPUT, "optimizer \"%s\": expected %s", opt.c_str(),
                       fl_names_join(list, sizeof list, fl_optim_names, nullptr, 0, "\"", " | ", " | "));
    if (s.in_channels < 1 || s.in_channels > 3)
        return fl_fail(err, FL_EINPUT, "in_channels %d: expected 1 to 3 (one mean and std per channel)", s.in_channels);
    if (s.height < 8 || s.width < 8)
        return fl_fail(err, FL_EINPUT, "image size %dx%d (height x width): expected at least 8x8", s.height, s.width);
    if (s.num_classes < 1)
        return fl_fail(err, FL_EINPUT, "num_classes %d: expected at least 1", s.num_classes);
    if (head_i == FL_HEAD_MLP3 && s.head_hidden < 1)
        return fl_fail(err, FL_EINPUT, "mlp3 head_hidden %d: expected at least 1", s.head_hidden);
    if (!finite_at_least(s.lr, 0) || !finite_at_least(s.weight_decay, 0))
        return fl_fail(err, FL_EINPUT, "lr %g, weight_decay %g: expected finite numbers >= 0", s.lr, s.weight_decay);
    if (opt_i == FL_OPTIM_SGD && !(s.momentum >= 0 && s.momentum < 1))
        return fl_fail(err, FL_EINPUT, "sgd momentum %g: expected 0 <= momentum < 1", s.momentum);
    if (opt_i == FL_OPTIM_SGD && s.nesterov && !(s.momentum > 0))
        return fl_fail(err, FL_EINPUT, "sgd nesterov needs a momentum > 0 (momentum is %g)", s.momentum);
    if (!finite_at_least(s.clip_grad_norm, 0))
        return fl_fail(err, FL_EINPUT, "clip_grad_norm %g: expected >= 0 (0 = off)", s.clip_grad_norm);
    if (!(s.label_smoothing >= 0 && s.label_smoothing < 1))
        return fl_fail(err, FL_EINPUT, "label_smoothing %g: expected 0 <= label_smoothing < 1", s.label_smoothing);
    for (int c = 0; c < s.in_channels; c++)
        if (!std::isfinite(s.mean[c]) || !(s.std[c] > 0) || !std::isfinite(s.std[c]))
            return fl_fail(err, FL_EINPUT, "channel %d: mean %g, std %g: expected finite numbers, std > 0", c,
                           (double)s.mean[c], (double)s.std[c]);
    return FL_OK;
}

// Every group takes the spec's options; model_set_lr then sets each group's lr.
std::unique_ptr<torch::optim::Optimizer> optimizer_new(const std::string &name, const fl_model_spec &s,
                                                       const std::vector<torch::optim::OptimizerParamGroup> &groups)
{
    namespace optim = torch::optim;
    const int opt = fl_optim_parse(name.c_str());
    if (opt == FL_OPTIM_ADAMW)
        return std::make_unique<optim::AdamW>(groups, optim::AdamWOptions(s.lr).weight_decay(s.weight_decay));
    if (opt == FL_OPTIM_SGD)
        return std::make_unique<optim::SGD>(
            groups,
            optim::SGDOptions(s.lr).momentum(s.momentum).nesterov(s.nesterov != 0).weight_decay(s.weight_decay));
    return std::make_unique<optim::Adam>(groups, optim::AdamOptions(s.lr).weight_decay(s.weight_decay));
}

// The parameters the optimizer updates, in m.trainable (backbone then head),
// and its groups: one for all of them when the backbone's lr is the head's
// (as without a scale, bit for bit), else one for the backbone (lr * scale)
// and one for the head (lr).
std::vector<torch::optim::OptimizerParamGroup> param_groups(fl_model &m)
{
    std::vector<torch::Tensor> backbone, head;
    for (auto &p : m.net->backbone->parameters())
        if (p.requires_grad())
            backbone.push_back(p);
    for (auto &p : m.net->head->parameters())
        if (p.requires_grad())
            head.push_back(p);
    m.trainable = backbone;
    m.trainable.insert(m.trainable.end(), head.begin(), head.end());
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (m.backbone_lr_scale == 1 || backbone.empty()) {
        groups.emplace_back(m.trainable);
        m.group_scale = {1.0};
    } else {
        groups.emplace_back(backbone);
        groups.emplace_back(head);
        m.group_scale = {m.backbone_lr_scale, 1.0};
    }
    return groups;
}

fl_code model_new(const fl_model_spec &s, fl_model **out, fl_error *err)
{
    auto m = std::make_unique<fl_model>();
    m->backbone_name = s.backbone;
    m->head_type = or_default(s.head_type, fl_head_name(FL_HEAD_LINEAR));
    m->head_act = or_default(s.head_act, fl_act_name(FL_ACT_RELU));
    m->optimizer_name = or_default(s.optimizer, fl_optim_name(FL_OPTIM_ADAM));
    m->device_name = or_default(s.device, "cpu");
    m->in_channels = s.in_channels;
    m->height = s.height;
    m->width = s.width;
    m->num_classes = s.num_classes;
    m->head_hidden = fl_head_parse(m->head_type.c_str()) == FL_HEAD_MLP3 ? s.head_hidden : 0;
    m->freeze_backbone = s.freeze_backbone != 0;
    m->backbone_lr_scale = m->freeze_backbone || s.backbone_lr_scale == 0 ? 1.0 : s.backbone_lr_scale;
    m->clip_grad_norm = s.clip_grad_norm;
    m->label_smoothing = s.label_smoothing;
    if (fl_code rc = parse_device(m->device_name, &m->device, err))
        return rc;
    if (fl_code rc = precision_parse(or_default(s.precision, ""), m->device, &m->amp, err))
        return rc;
    m->scaler.on = m->amp == at::kHalf && !m->freeze_backbone; // a frozen backbone has no backward in fp16

    // Weights are drawn on the CPU from a seeded generator, then moved. A
    // TorchScript module is read straight onto the device. A frozen backbone
    // may be another model's (one module for all the folds' heads), or drawn
    // from its own seed.
    std::shared_ptr<BackboneImpl> backbone;
    if (s.backbone_of) {
        const fl_model &o = *s.backbone_of;
        if (!o.freeze_backbone || !m->freeze_backbone || o.backbone_name != m->backbone_name ||
            o.in_channels != m->in_channels || o.height != m->height || o.width != m->width || o.device != m->device)
            return fl_fail(err, FL_EINTERNAL,
                           "a model shares only the frozen backbone of a model of the same backbone, "
                           "images and device");
        backbone = o.net->backbone;
        torch::manual_seed(s.seed);
    } else {
        torch::manual_seed(s.backbone_seed ? s.backbone_seed : s.seed);
        if (is_torchscript(m->backbone_name)) {
            const std::string path = m->backbone_name.substr(std::strlen(kTorchScriptPrefix));
            if (fl_code rc =
                    torchscript_backbone_new(path, m->device, m->in_channels, m->height, m->width, &backbone, err))
                return rc;
        } else {
            backbone = backbone_new(m->backbone_name, m->in_channels, m->height, m->width);
        }
        if (s.backbone_seed)
            torch::manual_seed(s.seed);
    }
    torch::nn::Sequential head =
        head_new(m->head_type, backbone->feature_dim(), m->head_hidden, m->head_act, m->num_classes);
    m->net = Net(backbone, head);
    m->net->to(m->device);
    // channels_last: the convolutions of a convolutional backbone run in NHWC
    // (cuDNN's and oneDNN's native layout, what tensor cores want); the 4-d
    // weights are stored so, the images converted at the input. Convolutional:
    // a built-in ResNet, or any backbone (a TorchScript one too: timm's
    // ConvNeXt, EfficientNet, ...) with more than one 4-d weight; a vision
    // transformer's single patch-embedding convolution does not make it one.
    // Auto: on CUDA, and on the CPU for smallresnet, whose narrow convolutions
    // oneDNN runs faster in NHWC (elsewhere on the CPU it measured slower:
    // docs/gpus.md, docs/demo.md).
    int64_t conv_weights = 0;
    for (const auto &p : m->net->backbone->parameters())
        conv_weights += p.dim() == 4;
    const bool conv = m->backbone_name.compare(0, 6, "resnet") == 0 || conv_weights > 1;
    const bool cpu_nhwc = fl_backbone_parse(m->backbone_name.c_str()) == FL_NET_SMALLRESNET;
    m->channels_last = conv && (s.memory_format == 2 || (s.memory_format == 0 && (m->device.is_cuda() || cpu_nhwc)));
    if (m->channels_last && !s.backbone_of)
        for (auto &p : m->net->backbone->parameters())
            if (p.dim() == 4)
                p.set_data(foldline::nhwc(p.data()));
    if (m->freeze_backbone)
        for (auto &p : m->net->backbone->parameters())
            p.set_requires_grad(false);
    m->opt = optimizer_new(m->optimizer_name, s, param_groups(*m));
    model_set_lr(*m, s.lr);

    auto per_channel = [&](const float *v) {
        return torch::tensor(std::vector<float>(v, v + m->in_channels), torch::kFloat32)
            .view({1, m->in_channels, 1, 1})
            .to(m->device);
    };
    m->mean = per_channel(s.mean);
    m->std = per_channel(s.std);
    *out = m.release();
    return FL_OK;
}

// Per-row cross-entropy (B) of logits (B, C) against y (B): with label
// smoothing eps, (1 - eps) * nll + eps * mean over classes of -log_softmax,
// which is torch's label_smoothing spelled out (the same in every version).
torch::Tensor cross_entropy_rows(const torch::Tensor &logits, const torch::Tensor &y, double eps)
{
    torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat32), 1); // (B, C)
    torch::Tensor nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1);         // (B)
    if (eps == 0)
        return nll;
    return nll * (1 - eps) - logp.mean(1) * eps;
}

fl_code check_batch(const fl_model &m, const void *x, int B, const int32_t *y, fl_error *err)
{
    if (!x || B < 1)
        return fl_fail(err, FL_EINPUT, "batch of %d images at %p: expected B >= 1 and a buffer", B, x);
    if (y)
        for (int i = 0; i < B; i++)
            if (y[i] < 0 || y[i] >= m.num_classes)
                return fl_fail(err, FL_EINPUT, "label %d of row %d: expected a class id in 0..%lld", (int)y[i], i,
                               (long long)m.num_classes - 1);
    return FL_OK;
}

torch::Tensor labels_to_device(const int32_t *y, int B, const torch::Device &dev)
{
    torch::Tensor host = torch::from_blob(const_cast<int32_t *>(y), {B}, torch::kInt32);
    return host.to(dev).to(torch::kInt64); // (B)
}

void copy_to_host(const torch::Tensor &t, float *out)
{
    torch::Tensor h = t.to(torch::kCPU, torch::kFloat32).contiguous();
    std::memcpy(out, h.data_ptr<float>(), sizeof(float) * (size_t)h.numel());
}

void drop_grads(fl_model &m)
{
    for (auto &p : m.trainable)
        p.mutable_grad() = torch::Tensor();
}

void step(fl_model &m)
{
    if (m.scaler.on) { // unscaled before clipping; a step with an inf or NaN gradient is skipped
        std::vector<torch::Tensor> grads;
        for (auto &p : m.trainable)
            if (p.grad().defined())
                grads.push_back(p.grad());
        if (!m.scaler.unscale_and_update(grads)) {
            drop_grads(m);
            return;
        }
    }
    if (m.clip_grad_norm > 0)
        torch::nn::utils::clip_grad_norm_(m.trainable, m.clip_grad_norm);
    m.opt->step();
    // Gradients go back to undefined rather than zero: the same in libtorch
    // 1.13 and 2.x, and what a freshly loaded model has.
    for (auto &p : m.trainable)
        p.mutable_grad() = torch::Tensor();
}

// The head's loss and accuracy on features (B, D): the second half of
// forward_backward.
void head_backward(fl_model &m, const torch::Tensor &feats, const int32_t *y, int B, double scale, double *loss_sum,
                   int *correct)
{
    torch::Tensor logits = m.net->head->forward(feats.to(torch::kFloat32)); // (B, num_classes), float32
    torch::Tensor yt = labels_to_device(y, B, m.device);
    torch::Tensor rows = cross_entropy_rows(logits, yt, m.label_smoothing); // (B)
    (rows.mean() * (m.scaler.on ? scale * m.scaler.scale : scale)).backward();
    torch::Tensor stats =
        torch::stack({rows.detach().sum().to(torch::kFloat64), logits.argmax(1).eq(yt).sum().to(torch::kFloat64)})
            .to(torch::kCPU); // one device-to-host copy
    if (loss_sum)
        *loss_sum = stats[0].item<double>();
    if (correct)
        *correct = (int)stats[1].item<double>();
}

// Images (B, C, H, W) uint8 on the host -> normalised float on the device,
// with the training augmentation (aug) or a test-time flip (view >= 0).
torch::Tensor model_input(fl_model &m, const uint8_t *x, int B, const fl_augment *aug, int view)
{
    torch::Tensor xb = images_to_device(x, B, m.in_channels, m.height, m.width, m.device);
    if (aug)
        images_augment(xb, aug);
    xb = images_normalise(xb, m.mean, m.std);
    if (view >= 0)
        xb = xb.flip({view == FL_TTA_HFLIP ? 3 : 2});
    return m.channels_last ? foldline::nhwc(xb) : xb;
}

// The backbone's features (B, D) of normalised images, under autocast in the
// model's precision (amp.h); without grad when the backbone is frozen. The
// dtype is the autocast one: callers widen to float32 for the head.
torch::Tensor backbone_forward(fl_model &m, const torch::Tensor &xb)
{
    AutocastScope autocast(m.device, m.amp);
    if (m.freeze_backbone || !torch::GradMode::is_enabled()) {
        torch::NoGradGuard no_grad;
        return m.net->backbone->forward(xb);
    }
    return m.net->backbone->forward(xb);
}

// Eval mode, no grad: the logits (B, C), float32, of normalised images.
torch::Tensor net_logits(fl_model &m, const torch::Tensor &xb)
{
    return m.net->head->forward(backbone_forward(m, xb).to(torch::kFloat32));
}

// Host float32 (B, D) -> device tensor.
torch::Tensor feats_to_device(const fl_model &m, const float *feats, int B)
{
    const int64_t D = m.net->backbone->feature_dim();
    return torch::from_blob(const_cast<float *>(feats), {B, D}, torch::kFloat32).to(m.device);
}

void forward_backward(fl_model &m, const uint8_t *x, const int32_t *y, int B, const fl_augment *aug, double scale,
                      double *loss_sum, int *correct)
{
    m.net->train();
    if (m.freeze_backbone)
        m.net->backbone->eval();                      // batch-norm statistics stay as they are
    torch::Tensor xb = model_input(m, x, B, aug, -1); // (B, C, H, W)
    torch::Tensor feats = backbone_forward(m, xb);    // (B, D)
    head_backward(m, feats, y, B, scale, loss_sum, correct);
}

// Mean of the softmax over the plain view and the flipped views (B, C), on host.
void predict(fl_model &m, const uint8_t *x, int B, const int *tta, int n_tta, float *probs)
{
    m.net->eval();
    torch::NoGradGuard no_grad;
    torch::Tensor xb = model_input(m, x, B, nullptr, -1);   // (B, C, H, W)
    torch::Tensor p = torch::softmax(net_logits(m, xb), 1); // (B, num_classes)
    for (int t = 0; t < n_tta; t++) {
        torch::Tensor view = xb.flip({tta[t] == FL_TTA_HFLIP ? 3 : 2});
        p = p + torch::softmax(net_logits(m, view), 1);
    }
    if (n_tta > 0)
        p = p / (double)(n_tta + 1);
    copy_to_host(p, probs);
}

// predict's average from the views' features.
void head_predict(fl_model &m, const float *const *views, int n_views, int B, float *probs)
{
    m.net->eval();
    torch::NoGradGuard no_grad;
    torch::Tensor p = torch::softmax(m.net->head->forward(feats_to_device(m, views[0], B)).to(torch::kFloat32), 1);
    for (int t = 1; t < n_views; t++)
        p = p + torch::softmax(m.net->head->forward(feats_to_device(m, views[t], B)).to(torch::kFloat32), 1);
    if (n_views > 1)
        p = p / (double)n_views;
    copy_to_host(p, probs);
}

// Loss and accuracy of averaged probabilities (B, C) on the host; ties go to
// the lowest class id, as in the votes.
void probs_score(const fl_model &m, const float *probs, int B, const int32_t *y, double *loss_sum, int *correct)
{
    const int64_t C = m.num_classes;
    double loss = 0;
    int hits = 0;
    for (int i = 0; y && i < B; i++) {
        const float *row = probs + (size_t)i * C;
        int64_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (row[c] > row[best])
                best = c;
        hits += best == y[i];
        loss -= std::log(std::max((double)row[y[i]], 1e-12));
    }
    if (loss_sum)
        *loss_sum = loss;
    if (correct)
        *correct = hits;
}

} // namespace

void model_set_lr(fl_model &m, double lr)
{
    auto &groups = m.opt->param_groups();
    for (size_t i = 0; i < groups.size(); i++)
        groups[i].options().set_lr(lr * m.group_scale.at(i));
    m.lr = lr;
}

std::string model_signature(const fl_model &m)
{
    std::string backbone = m.backbone_name;
    if (is_torchscript(backbone)) { // the file's name, not where it lies
        size_t slash = backbone.find_last_of('/');
        std::string file = backbone.substr(slash == std::string::npos ? std::strlen(kTorchScriptPrefix) : slash + 1);
        backbone = kTorchScriptPrefix + file + " (D " + std::to_string(m.net->backbone->feature_dim()) + ")";
    }
    std::string s = "backbone " + backbone + ", in_channels " + std::to_string(m.in_channels) + ", " +
                    std::to_string(m.num_classes) + " classes, head " + m.head_type;
    if (fl_head_parse(m.head_type.c_str()) == FL_HEAD_MLP3)
        s += "(" + std::to_string(m.head_hidden) + ", " + m.head_act + ")";
    s += m.freeze_backbone ? ", frozen backbone" : ", trained backbone";
    if (m.backbone_lr_scale != 1) {
        char scale[32];
        std::snprintf(scale, sizeof scale, " (lr x %g)", m.backbone_lr_scale);
        s += scale;
    }
    return s + ", optimizer " + m.optimizer_name;
}

} // namespace foldline

using namespace foldline;

extern "C" fl_code fl_model_new(const fl_model_spec *spec, fl_model **out, fl_error *err)
{
    if (!spec || !out)
        return fl_fail(err, FL_EINTERNAL, "fl_model_new: spec and out must not be NULL");
    *out = nullptr;
    if (fl_code rc = check_spec(*spec, err))
        return rc;
    if ((spec->backbone_seed || spec->backbone_of) && !spec->freeze_backbone)
        return fl_fail(err, FL_EINPUT, "backbone_seed and backbone_of are for a frozen backbone only");
    FL_TORCH_GUARD(err, return model_new(*spec, out, err));
}

extern "C" fl_code fl_model_check_spec(const fl_model_spec *spec, fl_error *err)
{
    if (!spec)
        return fl_fail(err, FL_EINTERNAL, "fl_model_check_spec: spec must not be NULL");
    return check_spec(*spec, err);
}

extern "C" fl_code fl_torchscript_probe(const char *path, int in_channels, int height, int width, const char *device,
                                        int *dim, fl_error *err)
{
    if (!path || !dim)
        return fl_fail(err, FL_EINTERNAL, "fl_torchscript_probe: path and dim must not be NULL");
    if (in_channels < 1 || height < 1 || width < 1)
        return fl_fail(err, FL_EINPUT, "images (%d, %d, %d): expected positive channels, height and width", in_channels,
                       height, width);
    FL_TORCH_GUARD(err, {
        torch::Device dev(torch::kCPU);
        if (fl_code rc = parse_device(or_default(device, "cpu"), &dev, err))
            return rc;
        std::shared_ptr<BackboneImpl> backbone;
        if (fl_code rc = torchscript_backbone_new(path, dev, in_channels, height, width, &backbone, err))
            return rc;
        *dim = (int)backbone->feature_dim();
    });
}

extern "C" void fl_model_free(fl_model *m)
{
    try {
        delete m;
    } catch (...) {
    }
}

extern "C" int64_t fl_model_num_params(const fl_model *m, int trainable_only)
{
    try {
        int64_t n = 0;
        for (const auto &p : m->net->parameters())
            if (!trainable_only || p.requires_grad())
                n += p.numel();
        return n;
    } catch (...) {
        return -1;
    }
}

extern "C" int fl_model_memory_format(const fl_model *m)
{
    return m->channels_last ? 2 : 1;
}

extern "C" int fl_model_feature_dim(const fl_model *m)
{
    try {
        return m && m->net && m->net->backbone ? (int)m->net->backbone->feature_dim() : -1;
    } catch (...) {
        return -1;
    }
}

extern "C" fl_code fl_model_set_lr(fl_model *m, double lr, fl_error *err)
{
    if (!finite_at_least(lr, 0))
        return fl_fail(err, FL_EINPUT, "learning rate %g: expected a finite number >= 0", lr);
    FL_TORCH_GUARD(err, model_set_lr(*m, lr));
}

extern "C" fl_code fl_model_forward_backward(fl_model *m, const uint8_t *x, const int32_t *y, int B,
                                             const fl_augment *aug, double loss_scale, double *loss_sum, int *correct,
                                             fl_error *err)
{
    if (!y)
        return fl_fail(err, FL_EINPUT, "forward_backward: labels must not be NULL");
    if (fl_code rc = check_batch(*m, x, B, y, err))
        return rc;
    if (!std::isfinite(loss_scale))
        return fl_fail(err, FL_EINPUT, "loss_scale %g: expected a finite number", loss_scale);
    std::string why;
    if (aug && !images_augment_valid(aug, B, &why))
        return fl_fail(err, FL_EINPUT, "forward_backward: %s", why.c_str());
    FL_TORCH_GUARD(err, forward_backward(*m, x, y, B, aug, loss_scale, loss_sum, correct));
}

extern "C" fl_code fl_model_step(fl_model *m, fl_error *err)
{
    FL_TORCH_GUARD(err, step(*m));
}

extern "C" fl_code fl_model_zero_grad(fl_model *m, fl_error *err)
{
    FL_TORCH_GUARD(err, drop_grads(*m));
}

extern "C" fl_code fl_model_predict(fl_model *m, const uint8_t *x, int B, const int *tta, int n_tta, const int32_t *y,
                                    float *probs, double *loss_sum, int *correct, fl_error *err)
{
    if (fl_code rc = check_batch(*m, x, B, y, err))
        return rc;
    if (!probs || n_tta < 0 || (n_tta > 0 && !tta))
        return fl_fail(err, FL_EINPUT, "predict: expected a probs buffer and n_tta >= 0 views (got %d)", n_tta);
    for (int t = 0; t < n_tta; t++)
        if (tta[t] != FL_TTA_HFLIP && tta[t] != FL_TTA_VFLIP)
            return fl_fail(err, FL_EINPUT, "test-time view %d: expected 0 (hflip) or 1 (vflip)", tta[t]);
    FL_TORCH_GUARD(err, {
        predict(*m, x, B, tta, n_tta, probs);
        probs_score(*m, probs, B, y, loss_sum, correct);
    });
}

extern "C" fl_code fl_model_features(fl_model *m, const uint8_t *x, int B, float *feats, fl_error *err)
{
    if (fl_code rc = check_batch(*m, x, B, nullptr, err))
        return rc;
    if (!feats)
        return fl_fail(err, FL_EINPUT, "features: the output buffer must not be NULL");
    FL_TORCH_GUARD(err, {
        m->net->eval();
        torch::NoGradGuard no_grad;
        copy_to_host(backbone_forward(*m, model_input(*m, x, B, nullptr, -1)), feats); // (B, D)
    });
}

extern "C" fl_code fl_model_embed(fl_model *m, const uint8_t *x, int B, const fl_augment *aug, int view, float *feats,
                                  fl_error *err)
{
    if (fl_code rc = check_batch(*m, x, B, nullptr, err))
        return rc;
    if (!feats || !m->freeze_backbone || view < -1 || view > FL_TTA_VFLIP || (aug && view >= 0))
        return fl_fail(err, FL_EINTERNAL, "embed: expected a frozen backbone, a buffer, and aug or a view (%d)", view);
    std::string why;
    if (aug && !images_augment_valid(aug, B, &why))
        return fl_fail(err, FL_EINPUT, "embed: %s", why.c_str());
    FL_TORCH_GUARD(err, {
        m->net->backbone->eval();
        torch::NoGradGuard no_grad;
        copy_to_host(backbone_forward(*m, model_input(*m, x, B, aug, view)), feats); // (B, D)
    });
}

extern "C" fl_code fl_model_head_forward_backward(fl_model *m, const float *feats, const int32_t *y, int B,
                                                  double loss_scale, double *loss_sum, int *correct, fl_error *err)
{
    if (!y)
        return fl_fail(err, FL_EINPUT, "head_forward_backward: labels must not be NULL");
    if (fl_code rc = check_batch(*m, feats, B, y, err))
        return rc;
    if (!std::isfinite(loss_scale))
        return fl_fail(err, FL_EINPUT, "loss_scale %g: expected a finite number", loss_scale);
    FL_TORCH_GUARD(err, {
        m->net->head->train();
        head_backward(*m, feats_to_device(*m, feats, B), y, B, loss_scale, loss_sum, correct);
    });
}

extern "C" fl_code fl_model_head_predict(fl_model *m, const float *const *views, int n_views, int B, const int32_t *y,
                                         float *probs, double *loss_sum, int *correct, fl_error *err)
{
    if (!views || n_views < 1 || n_views > 1 + FL_MAX_TTA || !probs)
        return fl_fail(err, FL_EINPUT, "head_predict: expected 1 to %d views and a probs buffer (got %d)",
                       1 + FL_MAX_TTA, n_views);
    for (int t = 0; t < n_views; t++)
        if (fl_code rc = check_batch(*m, views[t], B, t ? nullptr : y, err))
            return rc;
    FL_TORCH_GUARD(err, {
        head_predict(*m, views, n_views, B, probs);
        probs_score(*m, probs, B, y, loss_sum, correct);
    });
}

extern "C" fl_code fl_torch_manual_seed(uint64_t seed, fl_error *err)
{
    FL_TORCH_GUARD(err, torch::manual_seed(seed));
}
