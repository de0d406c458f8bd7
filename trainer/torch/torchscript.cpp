// torchscript.cpp -- the "torchscript:PATH" backbone: loading, the dry forward
// pass that finds D, and the mirror of the module's tensors in foldline's
// module tree. See torchscript.h.
#include "trainer/torch/torchscript.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <unordered_set>

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>
#include <torch/version.h>

namespace foldline
{

const char *const kTorchScriptPrefix = "torchscript:";

bool is_torchscript(const std::string &name)
{
    return name.compare(0, std::strlen(kTorchScriptPrefix), kTorchScriptPrefix) == 0;
}

namespace
{

// The line of a libtorch message that says what went wrong. Errors raised
// inside TorchScript code carry the script's traceback first and the cause
// on its last line ("RuntimeError: Given groups=1, ..."); other messages
// state it on the first line and append a C++ backtrace.
std::string cause_of(const char *what)
{
    std::string msg(what ? what : "unknown exception");
    std::vector<std::string> lines;
    std::istringstream in(msg);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Exception raised from", 0) == 0)
            break; // the C++ backtrace
        if (line.find_first_not_of(" \t") != std::string::npos)
            lines.push_back(line);
    }
    if (lines.empty())
        return msg;
    if (msg.find("TorchScript interpreter") != std::string::npos)
        return lines.back();
    return lines.front();
}

// "(2, 512, 1, 1)"
std::string shape_of(const torch::Tensor &t)
{
    std::string s = "(";
    for (int64_t d = 0; d < t.dim(); d++)
        s += (d ? ", " : "") + std::to_string(t.size(d));
    return s + ")";
}

// What a forward pass returned, for messages: "a tensor (2, 512, 1, 1)", "a tuple of 2", ...
std::string describe(const c10::IValue &v)
{
    if (v.isTensor())
        return "a tensor " + shape_of(v.toTensor());
    if (v.isTuple())
        return "a tuple of " + std::to_string(v.toTupleRef().elements().size());
    if (v.isList())
        return "a list";
    if (v.isGenericDict())
        return "a dict";
    return std::string("a value of type ") + v.tagKind();
}

struct ScriptBackboneImpl : BackboneImpl {
    ScriptBackboneImpl(torch::jit::Module module_, int64_t dim_) : module(std::move(module_)), dim(dim_) { mirror(); }

    torch::Tensor forward(torch::Tensor x) override
    {
        return module.forward({x}).toTensor().to(torch::kFloat32); // (B, ch, H, W) -> (B, D), checked at load
    }
    int64_t feature_dim() const override { return dim; }

    // nn::Module::eval() calls train(false): both reach the TorchScript module.
    void train(bool on = true) override
    {
        torch::nn::Module::train(on);
        module.train(on);
    }

    // Registers every parameter and buffer of the module, the same tensors,
    // under its dotted name: intermediate names become empty child modules,
    // since libtorch's names hold no dots. A tensor listed twice (tied
    // weights) is registered once.
    void mirror()
    {
        std::map<std::string, torch::nn::Module *> parents{{"", this}};
        std::unordered_set<const void *> seen;
        auto parent_of = [&](const std::string &name, std::string *leaf) {
            torch::nn::Module *p = this;
            std::string prefix;
            size_t start = 0, dot;
            while ((dot = name.find('.', start)) != std::string::npos) {
                std::string part = name.substr(start, dot - start);
                prefix += (prefix.empty() ? "" : ".") + part;
                auto it = parents.find(prefix);
                if (it == parents.end())
                    it = parents.emplace(prefix, p->register_module(part, std::make_shared<torch::nn::Module>()).get())
                             .first;
                p = it->second;
                start = dot + 1;
            }
            *leaf = name.substr(start);
            return p;
        };
        std::string leaf;
        for (const auto &p : module.named_parameters(/*recurse=*/true)) {
            if (!seen.insert(p.value.unsafeGetTensorImpl()).second)
                continue;
            torch::nn::Module *parent = parent_of(p.name, &leaf);
            parent->register_parameter(leaf, p.value, p.value.requires_grad());
        }
        for (const auto &b : module.named_buffers(/*recurse=*/true)) {
            if (!seen.insert(b.value.unsafeGetTensorImpl()).second)
                continue;
            torch::nn::Module *parent = parent_of(b.name, &leaf);
            parent->register_buffer(leaf, b.value);
        }
    }

    torch::jit::Module module;
    int64_t dim;
};

// "major.minor" of a version string as one number (2.15.0 -> 2015), or -1.
long version_number(const std::string &v)
{
    long major = 0, minor = 0;
    return std::sscanf(v.c_str(), "%ld.%ld", &major, &minor) == 2 ? major * 1000 + minor : -1;
}

// The torch that wrote the archive at path, as launch/export_timm.py records
// it (extra/foldline_export.txt, a line "torch VERSION"), or "" when not
// recorded or not readable; *format: the archive's file format version (0 if
// unreadable).
std::string writer_torch(const std::string &path, uint64_t *format)
{
    *format = 0;
    try {
        caffe2::serialize::PyTorchStreamReader reader(path);
        *format = reader.version();
        const char *name = "extra/foldline_export.txt";
        if (!reader.hasRecord(name))
            return "";
        auto rec = reader.getRecord(name);
        std::istringstream in(std::string(static_cast<const char *>(std::get<0>(rec).get()), std::get<1>(rec)));
        for (std::string line; std::getline(in, line);)
            if (line.rfind("torch ", 0) == 0)
                return line.substr(6);
    } catch (const std::exception &) {
    }
    return "";
}

// A load failure of a module that a newer torch wrote: one line naming both
// versions and the two ways out. FL_OK when nothing says the module is newer.
fl_code refuse_newer(const std::string &path, const std::string &cause, fl_error *err)
{
    uint64_t format = 0;
    std::string writer = writer_torch(path, &format);
    const long ours = version_number(TORCH_VERSION);
    if (!writer.empty() && version_number(writer) > ours)
        return fl_fail(err, FL_EINPUT,
                       "TorchScript module %s was written by torch %s, which this foldline's libtorch %s cannot "
                       "read (%s) HINT: export it again with torch %s, the torch of foldline's libtorch, or build "
                       "foldline against torch %s (README, \"GPUs\")",
                       path.c_str(), writer.c_str(), TORCH_VERSION, cause.c_str(), TORCH_VERSION, writer.c_str());
    // Not recorded: what an older libtorch says of a newer module's code.
    static const char *const newer[] = {
        "Unknown builtin op",          "Unknown type name",   "Arguments for call are not valid",
        "unexpected keyword argument", "file format version", "maximum supported"};
    bool looks_newer = false;
    for (const char *n : newer)
        looks_newer = looks_newer || cause.find(n) != std::string::npos;
    if (writer.empty() && looks_newer && format > 0)
        return fl_fail(err, FL_EINPUT,
                       "TorchScript module %s was written by a torch newer than this foldline's libtorch %s, which "
                       "cannot read it (file format version %llu: %s) HINT: export it again with torch %s, the "
                       "torch of foldline's libtorch, or build foldline against the torch that wrote it (README, "
                       "\"GPUs\")",
                       path.c_str(), TORCH_VERSION, (unsigned long long)format, cause.c_str(), TORCH_VERSION);
    return FL_OK;
}

// The dry forward pass: *dim = D of a module that maps (2, ch, h, w) to (2, D).
fl_code find_dim(torch::jit::Module &module, const std::string &path, const torch::Device &device, int64_t ch,
                 int64_t h, int64_t w, int64_t *dim, fl_error *err)
{
    const int64_t B = 2; // 2, not 1: a batch dimension squeezed away shows
    module.eval();
    torch::NoGradGuard no_grad;
    c10::IValue out;
    try {
        out = module.forward({torch::zeros({B, ch, h, w}, torch::TensorOptions(torch::kFloat32).device(device))});
    } catch (const std::exception &e) {
        return fl_fail(err, FL_EINPUT,
                       "TorchScript module %s does not accept a batch of float32 images (%lld, %lld, %lld, %lld) = "
                       "(B, channels, height, width) of the data file: %s HINT: export it for %lld channel%s at "
                       "%lldx%lld (launch/export_timm.py --channels %lld --img-size %lld), or prep the data to the "
                       "module's input (foldline prep --channels, --size)",
                       path.c_str(), (long long)B, (long long)ch, (long long)h, (long long)w,
                       cause_of(e.what()).c_str(), (long long)ch, ch == 1 ? "" : "s", (long long)h, (long long)w,
                       (long long)ch, (long long)h);
    }
    bool ok = out.isTensor() && out.toTensor().dim() == 2 && out.toTensor().size(0) == B &&
              out.toTensor().size(1) >= 1 && out.toTensor().is_floating_point();
    if (!ok)
        return fl_fail(err, FL_EINPUT,
                       "TorchScript module %s maps images (%lld, %lld, %lld, %lld) to %s%s, expected one float "
                       "tensor of features (B, D) = (%lld, D) HINT: make forward return the pooled features only "
                       "(timm: num_classes=0; else flatten and drop the classifier), then export it again",
                       path.c_str(), (long long)B, (long long)ch, (long long)h, (long long)w, describe(out).c_str(),
                       out.isTensor() && !out.toTensor().is_floating_point() ? " of integers" : "", (long long)B);
    *dim = out.toTensor().size(1);
    return FL_OK;
}

} // namespace

const torch::jit::Module *torchscript_module_of(const BackboneImpl &backbone)
{
    const auto *script = dynamic_cast<const ScriptBackboneImpl *>(&backbone);
    return script ? &script->module : nullptr;
}

fl_code torchscript_backbone_new(const std::string &path, const torch::Device &device, int64_t ch, int64_t h, int64_t w,
                                 std::shared_ptr<BackboneImpl> *out, fl_error *err)
{
    FILE *f = std::fopen(path.c_str(), "rb"); // a clear I/O error before libtorch's own
    if (!f)
        return fl_fail(err, FL_EINPUT, "TorchScript module %s: cannot open it (%s)", path.c_str(),
                       std::strerror(errno));
    std::fclose(f);
    torch::jit::Module module;
    try {
        module = torch::jit::load(path, device); // every tensor lands on the model's device
    } catch (const std::exception &e) {
        if (fl_code rc = refuse_newer(path, cause_of(e.what()), err))
            return rc;
        return fl_fail(err, FL_EINPUT,
                       "%s is not a TorchScript module (libtorch: %s) HINT: save one from Python with "
                       "torch.jit.script(model).save(PATH) or torch.jit.trace(model, example).save(PATH); a "
                       "state_dict from torch.save is not one (launch/export_timm.py exports timm models)",
                       path.c_str(), cause_of(e.what()).c_str());
    }
    int64_t dim = 0;
    if (fl_code rc = find_dim(module, path, device, ch, h, w, &dim, err))
        return rc;
    *out = std::make_shared<ScriptBackboneImpl>(std::move(module), dim);
    return FL_OK;
}

} // namespace foldline
