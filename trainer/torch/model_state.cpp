// model_state.cpp -- fl_model_save and fl_model_load(_weights): one file holds the
// parameters and buffers (batch-norm statistics), the optimizer's state (Adam
// moments and step counts, SGD momentum buffers) and the learning rate, so
// that training continues exactly as if it had never stopped.
//
// The file is a libtorch archive (torch::serialize, a zip of tensors):
//   format     "foldline-model-1"
//   signature  model_signature(): a model loads only a file of its own kind
//              (a TorchScript backbone by file name and D)
//   lr         the learning rate of every parameter group
//   net        backbone.* and head.* tensors, torchvision's names below them
//              (a TorchScript backbone: the module's own names, parameters
//              and buffers alike); a frozen backbone's are left out (they
//              never change: the seed or the TorchScript file gives them
//              back), so that net holds head.* only
//   optimizer  libtorch's own optimizer archive
//   job        the caller's text (trainer/job.c: epoch, step, best metrics,
//              metrics.csv so far), optional
// libtorch 1.13 and 2.x both read and write it; a file is meant to be read
// back by the libtorch that wrote it (checkpoints of one run).
#include "trainer/torch/model.h"

#include <algorithm>
#include <cmath>
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

// Opens the archive straight from its file: libtorch reads one tensor record
// at a time, so a checkpoint is never held in memory as bytes beside its
// tensors (that copy was the peak of a whole training run).
// With bytes, the archive is those n bytes (a file read elsewhere), and
// path only names it in messages.
fl_code open_archive(const char *path, const void *bytes, size_t n, const torch::Device &device,
                     torch::serialize::InputArchive &ar, fl_error *err)
{
    if (!bytes) {
        FILE *f = std::fopen(path, "rb"); // a clear I/O error before libtorch's own
        if (!f)
            return fl_fail(err, FL_EIO, "cannot open model file %s: %s", path, std::strerror(errno));
        std::fclose(f);
    }
    try {
        if (bytes) // every tensor lands on the model's device
            ar.load_from(static_cast<const char *>(bytes), n, device);
        else
            ar.load_from(std::string(path), device);
    } catch (const std::exception &e) {
        std::string what = e.what();
        what.resize(std::min(what.find('\n'), what.size())); // libtorch appends a backtrace
        return fl_fail(err, FL_EINPUT, "model file %s is not a libtorch archive (%s)", path, what.c_str());
    }
    return FL_OK;
}

fl_code save(fl_model &m, const char *path, const char *job, fl_error *err)
{
    torch::serialize::OutputArchive ar, net_ar, opt_ar;
    ar.write("format", c10::IValue(std::string(kFormat)));
    if (job)
        ar.write("job", c10::IValue(std::string(job)));
    ar.write("signature", c10::IValue(model_signature(m)));
    ar.write("lr", c10::IValue(m.lr));
    if (m.freeze_backbone) { // under the same names as the whole net's, without backbone.*
        torch::serialize::OutputArchive head_ar;
        m.net->head->save(head_ar);
        net_ar.write("head", head_ar);
    } else {
        m.net->save(net_ar);
    }
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

// job (job_size bytes, NUL-terminated) receives the saved text, "" if none.
fl_code load(fl_model &m, const char *path, const void *bytes, size_t n, bool with_optimizer, char *job,
             size_t job_size, fl_error *err)
{
    if (!with_optimizer)
        m.opt->state().clear(); // freed before the file's tensors arrive: memory for one copy, not two
    torch::serialize::InputArchive ar, net_ar, opt_ar;
    if (fl_code rc = open_archive(path, bytes, n, m.device, ar, err))
        return rc;
    c10::IValue format, signature, lr;
    if (!ar.try_read("format", format) || !format.isString() || format.toStringRef() != kFormat)
        return fl_fail(err, FL_EINPUT, "model file %s: not a foldline model (expected format \"%s\")", path, kFormat);
    ar.read("signature", signature);
    if (signature.toStringRef() != model_signature(m))
        return fl_fail(err, FL_EINPUT, "model file %s holds a different model: %s; this model: %s", path,
                       signature.toStringRef().c_str(), model_signature(m).c_str());
    ar.read("net", net_ar);
    if (m.freeze_backbone) {
        torch::serialize::InputArchive head_ar;
        net_ar.read("head", head_ar);
        m.net->head->load(head_ar);
    } else {
        m.net->load(net_ar);
    }
    if (job && job_size) {
        c10::IValue text;
        job[0] = '\0';
        if (ar.try_read("job", text) && text.isString()) {
            const std::string &t = text.toStringRef();
            if (t.size() >= job_size)
                return fl_fail(err, FL_EINPUT, "model file %s: its job record has %zu bytes, more than %zu", path,
                               t.size(), job_size - 1);
            std::memcpy(job, t.c_str(), t.size() + 1);
        }
    }
    if (!with_optimizer)
        return FL_OK;
    ar.read("lr", lr);
    ar.read("optimizer", opt_ar);
    m.opt->load(opt_ar);
    model_set_lr(m, lr.toDouble());
    return FL_OK;
}

} // namespace
} // namespace foldline

extern "C" fl_code fl_model_save(fl_model *m, const char *path, const char *job, fl_error *err)
{
    if (!m || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_model_save: model and path must not be NULL");
    FL_TORCH_GUARD(err, return foldline::save(*m, path, job, err));
}

extern "C" fl_code fl_model_load(fl_model *m, const char *path, char *job, size_t job_size, fl_error *err)
{
    if (!m || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_model_load: model and path must not be NULL");
    FL_TORCH_GUARD(err, return foldline::load(*m, path, nullptr, 0, true, job, job_size, err));
}

extern "C" fl_code fl_model_load_bytes(fl_model *m, const void *bytes, size_t n, const char *path, char *job,
                                       size_t job_size, fl_error *err)
{
    if (!m || !bytes || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_model_load_bytes: model, bytes and path must not be NULL");
    FL_TORCH_GUARD(err, return foldline::load(*m, path, bytes, n, true, job, job_size, err));
}

extern "C" fl_code fl_model_load_weights(fl_model *m, const char *path, fl_error *err)
{
    if (!m || !path)
        return fl_fail(err, FL_EINTERNAL, "fl_model_load_weights: model and path must not be NULL");
    FL_TORCH_GUARD(err, return foldline::load(*m, path, nullptr, 0, false, nullptr, 0, err));
}

extern "C" int fl_model_loss_scale(const fl_model *m, double *scale, int64_t *good_steps)
{
    if (!m || !m->scaler.on)
        return 0;
    if (scale)
        *scale = m->scaler.scale;
    if (good_steps)
        *good_steps = m->scaler.good_steps;
    return 1;
}

extern "C" fl_code fl_model_set_loss_scale(fl_model *m, double scale, int64_t good_steps, fl_error *err)
{
    if (!m || !m->scaler.on)
        return fl_fail(err, FL_EINPUT, "loss scale %g: this model does not scale its loss (fp16, trained backbone)",
                       scale);
    if (!(scale > 0) || !std::isfinite(scale) || good_steps < 0)
        return fl_fail(err, FL_EINPUT, "loss scale %g after %lld good steps: expected a finite scale > 0", scale,
                       (long long)good_steps);
    m->scaler.scale = scale;
    m->scaler.good_steps = good_steps;
    return FL_OK;
}
