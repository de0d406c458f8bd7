// export.cpp -- fl_export_ensemble: a run's ensemble as one TorchScript
// module (see export.h).
//
// Each built-in backbone and head is turned into a torch::jit::Module whose
// forward is TorchScript source written here from the libtorch module tree
// (Conv2d, BatchNorm2d, ReLU, GELU, MaxPool2d, Linear, Sequential and the
// ResNet blocks of nets.cpp), calling the same aten operators with the same
// arguments as the libtorch modules do, over copies of the trained tensors
// registered as the module's parameters (batch-norm statistics as buffers).
// The top module normalises, runs each distinct backbone once per view,
// every head, and votes, in the order foldline's predict does (with fitted
// weights: each fold tempered, then sum_m w_m * mean_m, as vote_sum.c).
#include "trainer/torch/export.h"

#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/version.h>

#include "trainer/spec.h"
#include "trainer/torch/bridge_guard.h"
#include "trainer/torch/model.h"
#include "trainer/torch/torchscript.h"

namespace foldline
{
namespace
{

namespace nn = torch::nn;

// A double as a TorchScript float literal that reads back to the same value.
std::string lit(double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    std::string s(buf);
    if (s.find_first_of(".eEn") == std::string::npos)
        s += ".0";
    return s;
}

std::string ints(const c10::ArrayRef<int64_t> &v)
{
    std::string s = "[";
    for (size_t i = 0; i < v.size(); i++)
        s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
}

// Writes the forward of one libtorch module as TorchScript over module `m`'s
// own copies of its tensors.
struct Emitter {
    torch::jit::Module m;
    std::ostringstream body;
    int vars = 0;

    explicit Emitter(const std::string &name) : m(name) {}

    std::string tensor(const std::string &name, const torch::Tensor &t, bool buffer)
    {
        if (!t.defined())
            return "None";
        std::string flat = "t_" + name;
        for (char &c : flat)
            if (c == '.')
                c = '_';
        if (!m.hasattr(flat)) {
            torch::Tensor copy = t.detach().to(torch::kCPU).clone();
            if (buffer)
                m.register_buffer(flat, copy);
            else
                m.register_parameter(flat, copy, false);
        }
        return "self." + flat;
    }

    void line(const std::string &s) { body << "    " << s << "\n"; }

    std::string fresh()
    {
        std::string v = "y"; // not "y" + to_string(): gcc 12's -Wrestrict false positive (bug 105329)
        return v += std::to_string(vars++);
    }

    // x = module(x), for the module types foldline's networks are made of.
    void module(nn::Module &mod, const std::string &name, const std::string &x)
    {
        const std::string p = name.empty() ? "" : name + ".";
        if (auto *c = mod.as<nn::Conv2dImpl>()) {
            const auto &o = c->options;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
            const auto &pad = std::get<torch::ExpandingArray<2>>(o.padding()); // c10::variant is std::variant
#else
            const auto &pad = c10::get<torch::ExpandingArray<2>>(o.padding());
#endif
            line(x + " = torch.conv2d(" + x + ", " + tensor(p + "weight", c->weight, false) + ", " +
                 tensor(p + "bias", c->bias, false) + ", " + ints(*o.stride()) + ", " + ints(*pad) + ", " +
                 ints(*o.dilation()) + ", " + std::to_string(o.groups()) + ")");
        } else if (auto *b = mod.as<nn::BatchNorm2dImpl>()) {
            const auto &o = b->options;
            line(x + " = torch.batch_norm(" + x + ", " + tensor(p + "weight", b->weight, false) + ", " +
                 tensor(p + "bias", b->bias, false) + ", " + tensor(p + "running_mean", b->running_mean, true) + ", " +
                 tensor(p + "running_var", b->running_var, true) + ", False, " +
                 lit(o.momentum().has_value() ? *o.momentum() : 0.1) + ", " + lit(o.eps()) + ", False)");
        } else if (mod.as<nn::ReLUImpl>()) {
            line(x + " = torch.relu(" + x + ")");
        } else if (mod.as<nn::GELUImpl>()) {
            line(x + " = torch.gelu(" + x + ")");
        } else if (auto *mp = mod.as<nn::MaxPool2dImpl>()) {
            const auto &o = mp->options;
            line(x + " = torch.max_pool2d(" + x + ", " + ints(*o.kernel_size()) + ", " + ints(*o.stride()) + ", " +
                 ints(*o.padding()) + ", " + ints(*o.dilation()) + ", " + (o.ceil_mode() ? "True" : "False") + ")");
        } else if (auto *l = mod.as<nn::LinearImpl>()) {
            line(x + " = torch.linear(" + x + ", " + tensor(p + "weight", l->weight, false) + ", " +
                 tensor(p + "bias", l->bias, false) + ")");
        } else if (mod.as<nn::SequentialImpl>()) {
            for (const auto &c : mod.named_children())
                module(*c.value(), p + c.key(), x);
        } else if (has_child(mod, "conv1") && has_child(mod, "bn2")) {
            res_block(mod, p, x);
        } else {
            throw std::runtime_error("export: no TorchScript for module " + name + " (" + mod.name() + ")");
        }
    }

    static nn::Module *child(nn::Module &mod, const std::string &name)
    {
        for (const auto &c : mod.named_children())
            if (c.key() == name)
                return c.value().get();
        return nullptr;
    }
    static bool has_child(nn::Module &mod, const std::string &name)
    {
        return child(mod, name) != nullptr;
    }

    // nets.cpp's ResBlock: relu(bn1(conv1)), bn2(conv2), [bn3(conv3(relu))], + identity, relu.
    void res_block(nn::Module &mod, const std::string &p, const std::string &x)
    {
        std::string y = fresh(), id = fresh();
        line(y + " = " + x);
        module(*child(mod, "conv1"), p + "conv1", y);
        module(*child(mod, "bn1"), p + "bn1", y);
        line(y + " = torch.relu(" + y + ")");
        module(*child(mod, "conv2"), p + "conv2", y);
        module(*child(mod, "bn2"), p + "bn2", y);
        if (nn::Module *c3 = child(mod, "conv3")) {
            line(y + " = torch.relu(" + y + ")");
            module(*c3, p + "conv3", y);
            module(*child(mod, "bn3"), p + "bn3", y);
        }
        line(id + " = " + x);
        if (nn::Module *d = child(mod, "downsample"))
            module(*d, p + "downsample", id);
        line(x + " = torch.relu(" + y + " + " + id + ")");
    }

    torch::jit::Module finish()
    {
        m.define("def forward(self, x: Tensor) -> Tensor:\n" + body.str() + "    return x\n");
        return m;
    }
};

// A built-in backbone (images -> features) as a module, or a TorchScript one as it is.
torch::jit::Module backbone_module(fl_model &fm, const std::string &name)
{
    BackboneImpl &bb = *fm.net->backbone;
    if (const torch::jit::Module *script = torchscript_module_of(bb)) {
        Emitter e(name);
        e.m.register_module("script", script->clone());
        e.line("x = self.script.forward(x).to(6)");
        return e.finish();
    }
    Emitter e(name);
    const std::string &kind = fm.backbone_name;
    const int net = fl_backbone_parse(kind.c_str());
    if (net == FL_NET_SMALLCNN) {
        e.module(*Emitter::child(bb, "features"), "features", "x");
        e.line("x = torch.flatten(torch.adaptive_avg_pool2d(x, [7, 7]), 1)");
    } else if (net == FL_NET_SMALLRESNET) {
        e.module(*Emitter::child(bb, "stem"), "stem", "x");
        e.line("x = torch.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False)");
        e.module(*Emitter::child(bb, "blocks"), "blocks", "x");
        e.line("x = torch.flatten(torch.adaptive_avg_pool2d(x, [1, 1]), 1)");
    } else if (net == FL_NET_MLP) {
        e.line("x = torch.flatten(x, 1)");
        e.module(*Emitter::child(bb, "fc"), "fc", "x");
        e.line("x = torch.relu(x)");
    } else if (net == FL_NET_RESNET18 || net == FL_NET_RESNET34 || net == FL_NET_RESNET50) {
        e.module(*Emitter::child(bb, "conv1"), "conv1", "x");
        e.module(*Emitter::child(bb, "bn1"), "bn1", "x");
        e.line("x = torch.relu(x)");
        e.line("x = torch.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], False)");
        for (int i = 1; i <= 4; i++)
            e.module(*Emitter::child(bb, "layer" + std::to_string(i)), "layer" + std::to_string(i), "x");
        e.line("x = torch.flatten(torch.adaptive_avg_pool2d(x, [1, 1]), 1)");
    } else {
        throw std::runtime_error("export: no TorchScript for backbone " + kind);
    }
    return e.finish();
}

torch::jit::Module head_module(fl_model &fm, const std::string &name)
{
    Emitter e(name);
    e.module(*fm.net->head, "", "x");
    e.line("x = x.to(6)");
    return e.finish();
}

void export_ensemble(const fl_export_model *models, int n_models, const std::string &method, bool fitted,
                     const char *path)
{
    torch::jit::Module top("FoldlineEnsemble");
    const fl_model &first = *models[0].folds[0];
    const int64_t C = first.num_classes;
    std::ostringstream o;
    auto line = [&](const std::string &s) { o << "    " << s << "\n"; };
    line("x = x.to(6)");
    double weight_sum = 0, fold_weight_sum = 0;
    int last_folds = 1;
    for (int m = 0; m < n_models; m++) {
        const fl_export_model &em = models[m];
        const std::string M = std::to_string(m);
        fl_model &f0 = *em.folds[0];
        top.register_buffer("mean" + M, f0.mean.to(torch::kCPU).clone());
        top.register_buffer("std" + M, f0.std.to(torch::kCPU).clone());
        line("x" + M + " = torch.div(torch.sub(torch.div(x, 255.0), self.mean" + M + "), self.std" + M + ")");
        std::vector<std::string> views{"x" + M};
        for (int t = 0; t < em.n_tta; t++) {
            views.push_back("v" + M + "_" + std::to_string(t + 1));
            line(views.back() + " = torch.flip(x" + M + ", [" + (em.tta[t] == FL_TTA_HFLIP ? "3" : "2") + "])");
        }
        if (em.frozen) { // one backbone: each view's features once, for every head
            top.register_module("backbone" + M, backbone_module(f0, "Backbone" + M));
            for (size_t v = 0; v < views.size(); v++)
                line("f" + M + "_" + std::to_string(v) + " = self.backbone" + M + ".forward(" + views[v] + ")");
        }
        for (int i = 0; i < em.n_folds; i++) {
            const std::string I = M + "_" + std::to_string(i);
            fl_model &fm = *em.folds[i];
            if (!em.frozen)
                top.register_module("backbone" + I, backbone_module(fm, "Backbone" + I));
            top.register_module("head" + I, head_module(fm, "Head" + I));
            for (size_t v = 0; v < views.size(); v++) {
                std::string feats =
                    em.frozen ? "f" + M + "_" + std::to_string(v) : "self.backbone" + I + ".forward(" + views[v] + ")";
                std::string sm = "torch.softmax(self.head" + I + ".forward(" + feats + "), 1)";
                line("p" + I + (v ? " = p" + I + " + " : " = ") + sm);
            }
            if (views.size() > 1)
                line("p" + I + " = p" + I + " / " + lit((double)views.size()));
            // the vote's sums (vote/vote_sum.c): per model, then across models
            std::string hard = "torch.one_hot(torch.argmax(p" + I + ", 1), " + std::to_string(C) + ").to(7)";
            std::string soft = "p" + I + ".to(7)";
            if (fitted && em.temperature != 1.0) { // fl_vote_temper: exp((log p - max log p) / T), renormalised
                soft = "q" + I;
                line(soft + " = torch.log(p" + I + ".to(7))");
                line(soft + " = torch.exp(torch.div(torch.sub(" + soft + ", torch.amax(" + soft + ", [1], True)), " +
                     lit(em.temperature) + "))");
                line(soft + " = torch.div(" + soft + ", torch.sum(" + soft + ", [1], True))");
            }
            line("ms" + M + (i ? " = ms" + M + " + " : " = ") + soft);
            line("mh" + M + (i ? " = mh" + M + " + " : " = ") + hard);
        }
        const std::string w = lit(em.weight);
        std::string sh = "torch.one_hot(torch.argmax(ms" + M + ", 1), " + std::to_string(C) + ").to(7) * " + w;
        if (fitted) // the fitted vote's probabilities themselves: no scale at the end
            line(std::string("ss") + (m ? " = ss + " : " = ") + w + " * (ms" + M + " / " + lit(em.n_folds) + ")");
        else
            line(std::string("ss") + (m ? " = ss + " : " = ") + w + " * ms" + M);
        line(std::string("hh") + (m ? " = hh + " : " = ") + w + " * mh" + M);
        line(std::string("sh") + (m ? " = sh + " : " = ") + sh);
        weight_sum += em.weight;
        fold_weight_sum += em.weight * em.n_folds;
        last_folds = em.n_folds;
    }
    const std::string L = std::to_string(n_models - 1);
    const int vm = fl_vote_method_parse(method.c_str()); /* -1: fitted */
    if (vm == FL_VOTE_SOFT)
        line("return ms" + L + " / " + lit(last_folds));
    else if (vm == FL_VOTE_HARD)
        line("return mh" + L + " / " + lit(last_folds));
    else if (vm == FL_VOTE_SOFT_HARD)
        line("return sh / " + lit(weight_sum));
    else if (vm == FL_VOTE_HARD_HARD)
        line("return hh / " + lit(fold_weight_sum));
    else if (fitted)
        line("return ss");
    else
        line("return ss / " + lit(fold_weight_sum));
    top.define("def forward(self, x: Tensor) -> Tensor:\n" + o.str());
    top.eval();
    top.save(path);
}

} // namespace
} // namespace foldline

extern "C" fl_code fl_export_ensemble(const fl_export_model *models, int n_models, const char *method, int fitted,
                                      const char *path, fl_error *err)
{
    if (!models || n_models < 1 || !method || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_export_ensemble: models, method and path must be given");
    for (int m = 0; m < n_models; m++) {
        const fl_model *a = models[m].folds[0], *b = models[0].folds[0];
        if (models[m].n_folds < 1 || a->in_channels != b->in_channels || a->height != b->height ||
            a->width != b->width || a->num_classes != b->num_classes)
            return fl_fail(err, FL_EINPUT, "export: the models take images of different shapes or classes");
    }
    FL_TORCH_GUARD(err, foldline::export_ensemble(models, n_models, method, fitted != 0, path));
}
