// model_state.cpp -- fl_model_save and fl_model_load: one file holds the
// parameters and buffers (batch-norm statistics), the optimizer's state (Adam
// moments and step counts, SGD momentum buffers) and the learning rate, so
// that training continues exactly as if it had never stopped.
//
// The file is a libtorch archive (torch::serialize, a zip of tensors):
//   format     "foldline-model-1"
//   signature  model_signature(): a model loads only a file of its own kind
//   lr         the learning rate of every parameter group
//   net        backbone.* and head.* tensors, torchvision's names below them
//   optimizer  libtorch's own optimizer archive
// libtorch 1.13 and 2.x both read and write it; a file is meant to be read
// back by the libtorch that wrote it (checkpoints of one run).
#include "trainer/torch/model.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "trainer/torch/bridge_guard.h"

namespace foldline
{
namespace
{

const char *const kFormat = "foldline-model-1";

fl_code read_file(const char *path, std::string *bytes, fl_error *err)
{
    FILE *f = std::fopen(path, "rb");
    if (!f)
        return fl_fail(err, FL_EIO, "cannot open model file %s: %s", path, std::strerror(errno));
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        bytes->append(buf, n);
    int rerr = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (rerr)
        return fl_fail(err, FL_EIO, "cannot read model file %s: %s", path, std::strerror(rerr));
    return FL_OK;
}

fl_code save(fl_model &m, const char *path, fl_error *err)
{
    torch::serialize::OutputArchive ar, net_ar, opt_ar;
    ar.write("format", c10::IValue(std::string(kFormat)));
    ar.write("signature", c10::IValue(model_signature(m)));
    ar.write("lr", c10::IValue(m.lr));
    m.net->save(net_ar);
    ar.write("net", net_ar);
    m.opt->save(opt_ar);
    ar.write("optimizer", opt_ar);
    // Straight to the file: a checkpoint of a large model is never held twice
    // in memory. Whatever stops the write (no directory, a full disk) is an
    // I/O error about this path, not a libtorch error. The writer never
    // reports a short write to libtorch: libtorch 1.13's archive writer then
    // throws again from its destructor while unwinding, which terminates the
    // process. It records the failure, drops the rest, and we report it after.
    FILE *f = std::fopen(path, "wb");
    if (!f)
        return fl_fail(err, FL_EIO, "cannot write model file %s: %s", path, std::strerror(errno));
    int write_errno = 0;
    try {
        ar.save_to([&](const void *buf, size_t n) -> size_t {
            if (!write_errno && n && std::fwrite(buf, 1, n, f) != n)
                write_errno = errno ? errno : EIO;
            return n;
        });
    } catch (const std::exception &e) {
        std::fclose(f);
        std::string why(e.what());
        why.resize(std::min(why.find('\n'), why.size()));
        return fl_fail(err, FL_EIO, "cannot write model file %s: %s", path, why.c_str());
    }
    if (std::fclose(f) != 0 && !write_errno)
        write_errno = errno ? errno : EIO;
    if (write_errno)
        return fl_fail(err, FL_EIO, "cannot write model file %s: %s", path, std::strerror(write_errno));
    return FL_OK;
}

fl_code load(fl_model &m, const char *path, fl_error *err)
{
    std::string bytes;
    if (fl_code rc = read_file(path, &bytes, err))
        return rc;
    torch::serialize::InputArchive ar, net_ar, opt_ar;
    try {
        ar.load_from(bytes.data(), bytes.size(), m.device); // every tensor lands on the model's device
    } catch (const std::exception &e) {
        std::string what = e.what();
        what.resize(std::min(what.find('\n'), what.size())); // libtorch appends a backtrace
        return fl_fail(err, FL_EINPUT, "model file %s is not a libtorch archive (%s)", path, what.c_str());
    }
    c10::IValue format, signature, lr;
    if (!ar.try_read("format", format) || !format.isString() || format.toStringRef() != kFormat)
        return fl_fail(err, FL_EINPUT, "model file %s: not a foldline model (expected format \"%s\")", path, kFormat);
    ar.read("signature", signature);
    if (signature.toStringRef() != model_signature(m))
        return fl_fail(err, FL_EINPUT, "model file %s holds a different model: %s; this model: %s", path,
                       signature.toStringRef().c_str(), model_signature(m).c_str());
    ar.read("lr", lr);
    ar.read("net", net_ar);
    m.net->load(net_ar);
    ar.read("optimizer", opt_ar);
    m.opt->load(opt_ar);
    model_set_lr(m, lr.toDouble());
    return FL_OK;
}

} // namespace
} // namespace foldline

extern "C" fl_code fl_model_save(fl_model *m, const char *path, fl_error *err)
{
    if (!m || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_model_save: model and path must not be NULL");
    FL_TORCH_GUARD(err, return foldline::save(*m, path, err));
}

extern "C" fl_code fl_model_load(fl_model *m, const char *path, fl_error *err)
{
    if (!m || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_model_load: model and path must not be NULL");
    FL_TORCH_GUARD(err, return foldline::load(*m, path, err));
}
