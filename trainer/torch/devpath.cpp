// devpath.cpp -- see devpath.h. The operations mirror model_api.cpp's
// host-buffer path (model_input, backbone_forward, head_backward) one for one,
// so that on the CPU the results are bit for bit the same; what differs is
// only where the tensors live between the calls.
#include "trainer/torch/devpath.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "trainer/torch/bridge_guard.h"
#include "trainer/torch/images.h"
#include "trainer/torch/model.h"

#ifdef FL_TORCH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

using namespace foldline;

namespace
{

// A staging slot: the images of one batch on the host (pinned on CUDA) and on
// the device (the same tensor on the CPU).
struct Slot {
    torch::Tensor host, dev; // uint8 (cap, C, H, W)
    int64_t B = 0;
#ifdef FL_TORCH_CUDA
    at::cuda::CUDAEvent copied;   // the host-to-device copy of this slot is done (side stream)
    at::cuda::CUDAEvent consumed; // the compute that read dev is done (the compute stream)
#endif
};

const char *dtype_name(at::ScalarType t)
{
    return t == at::kBFloat16 ? "bfloat16" : t == at::kHalf ? "float16" : "float32";
}

// cross_entropy_rows of model_api.cpp.
torch::Tensor ce_rows(const torch::Tensor &logits, const torch::Tensor &y, double eps)
{
    torch::Tensor logp = torch::log_softmax(logits.to(torch::kFloat32), 1);
    torch::Tensor nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1);
    if (eps == 0)
        return nll;
    return nll * (1 - eps) - logp.mean(1) * eps;
}

// The backbone's frozen features of normalised images, under autocast.
torch::Tensor frozen_forward(fl_model &m, const torch::Tensor &xb)
{
    m.net->backbone->eval();
    torch::NoGradGuard no_grad;
    AutocastScope autocast(m.device, m.amp);
    return m.net->backbone->forward(xb);
}

// Free device memory in bytes for the cache (-1: unknown), capped by
// $FOLDLINE_DEVICE_FREE_MB; headroom (the backbone's activations) left out.
double free_bytes(const torch::Device &dev)
{
    double free = -1;
#ifdef FL_TORCH_CUDA
    if (dev.is_cuda()) {
        // The CUDA runtime torch loaded, found at run time: no link-time dependency on cudart.
        typedef int (*mem_get_info_fn)(size_t *, size_t *);
        auto fn = (mem_get_info_fn)dlsym(RTLD_DEFAULT, "cudaMemGetInfo");
        size_t fr = 0, total = 0;
        c10::cuda::CUDAGuard guard(dev.index());
        if (fn && fn(&fr, &total) == 0)
            free = (double)fr - std::max(1024.0 * 1024 * 1024, (double)total / 10);
    }
#else
    (void)dev;
#endif
    if (const char *cap = std::getenv("FOLDLINE_DEVICE_FREE_MB")) {
        double mb = std::atof(cap) * 1024 * 1024;
        free = free < 0 ? mb : std::min(free, mb);
    }
    return free;
}

} // namespace

struct fl_devpath {
    std::vector<fl_model *> models;
    torch::Device dev{torch::kCPU};
    std::string dev_name;
    int64_t N = 0, D = 0, cap = 0;
    at::ScalarType feat_dtype = at::kFloat;                 // the backbone's output dtype under its autocast
    torch::Tensor labels;                                   // (N) int64
    torch::Tensor cache;                                    // (N, D) feat_dtype, or undefined
    torch::Tensor rows;                                     // (n) int64: the epoch's order
    std::vector<torch::Tensor> pos, head_rows, head_labels; // per head: positions, their rows and labels
    torch::Tensor raw, batch;                               // the embedded batch: (B, D) feat_dtype and float32
    int64_t batch_lo = 0;
    torch::Tensor stats, last; // (n, 3) and (n, 2) float64
    Slot slot[2];
    int next = 0;
#ifdef FL_TORCH_CUDA
    std::unique_ptr<c10::cuda::CUDAStream> side; // the copies' stream
#endif
};

namespace
{

fl_code open(fl_model *const *models, int n, int64_t N, const int32_t *labels, int64_t cap, int want_cache,
             fl_devpath **out, int *cached, char *note, size_t note_size)
{
    auto d = std::make_unique<fl_devpath>();
    fl_model &m = *models[0];
    d->models.assign(models, models + n);
    d->dev = m.device;
    d->dev_name = m.device.str();
    d->N = N;
    d->D = m.net->backbone->feature_dim();
    d->cap = cap;
    d->labels = torch::from_blob(const_cast<int32_t *>(labels), {N}, torch::kInt32).to(d->dev).to(torch::kInt64);
    auto f64 = torch::TensorOptions(torch::kFloat64).device(d->dev);
    d->stats = torch::zeros({n, 3}, f64);
    d->last = torch::zeros({n, 2}, f64);
    d->pos.resize(n);
    d->head_rows.resize(n);
    d->head_labels.resize(n);
    // The features' dtype: one image through the backbone (what autocast leaves at its end).
    {
        torch::Tensor probe =
            torch::zeros({1, m.in_channels, m.height, m.width}, torch::TensorOptions().device(d->dev));
        if (m.channels_last)
            probe = nhwc(probe);
        d->feat_dtype = frozen_forward(m, probe).scalar_type();
    }
    auto u8 = torch::TensorOptions(torch::kUInt8);
    for (Slot &s : d->slot) {
        if (d->dev.is_cuda()) {
            s.host = torch::empty({cap, m.in_channels, m.height, m.width}, u8.pinned_memory(true));
            s.dev = torch::empty({cap, m.in_channels, m.height, m.width}, u8.device(d->dev));
        } else {
            s.host = s.dev = torch::empty({cap, m.in_channels, m.height, m.width}, u8);
        }
    }
#ifdef FL_TORCH_CUDA
    if (d->dev.is_cuda())
        d->side = std::make_unique<c10::cuda::CUDAStream>(c10::cuda::getStreamFromPool(false, d->dev.index()));
#endif
    *cached = 0;
    if (note && note_size)
        note[0] = '\0';
    if (want_cache) {
        double need = (double)N * (double)d->D * (double)c10::elementSize(d->feat_dtype);
        double avail = free_bytes(d->dev);
        if (avail < 0 || need <= avail) {
            d->cache = torch::empty({N, d->D}, torch::TensorOptions(d->feat_dtype).device(d->dev));
            *cached = 1;
        } else if (note && note_size) {
            std::snprintf(note, note_size, "needs %.0f MB, %.0f MB free", need / (1 << 20),
                          std::max(avail, 0.0) / (1 << 20));
        }
    }
    *out = d.release();
    return FL_OK;
}

fl_code stage(fl_devpath &d, const uint8_t *x, int B, int *slot, fl_error *err)
{
    if (B < 0 || B > d.cap)
        return fl_fail(err, FL_EINTERNAL, "devpath: a batch of %d images for slots of %lld", B, (long long)d.cap);
    int k = d.next;
    d.next ^= 1;
    Slot &s = d.slot[k];
#ifdef FL_TORCH_CUDA
    if (d.dev.is_cuda())
        s.copied.synchronize(); // the pinned buffer's previous copy has left it
#endif
    size_t bytes = (size_t)B * (size_t)(s.host.numel() / d.cap);
    if (bytes)
        std::memcpy(s.host.data_ptr<uint8_t>(), x, bytes);
    s.B = B;
#ifdef FL_TORCH_CUDA
    if (d.dev.is_cuda() && B > 0) {
        c10::cuda::CUDAStreamGuard guard(*d.side);
        s.consumed.block(*d.side); // the compute that read this slot's device images is done
        s.dev.narrow(0, 0, B).copy_(s.host.narrow(0, 0, B), /*non_blocking=*/true);
        s.copied.record(*d.side);
    }
#endif
    *slot = k;
    return FL_OK;
}

fl_code embed(fl_devpath &d, int k, const fl_augment *aug, int64_t batch_lo, fl_error *err)
{
    fl_model &m = *d.models[0];
    Slot &s = d.slot[k];
    if (s.B < 1)
        return fl_fail(err, FL_EINTERNAL, "devpath: embed of an empty slot %d", k);
#ifdef FL_TORCH_CUDA
    if (d.dev.is_cuda())
        s.copied.block(c10::cuda::getCurrentCUDAStream(d.dev.index()));
#endif
    // model_input of model_api.cpp, from the slot's images.
    torch::Tensor xb = s.dev.narrow(0, 0, s.B).to(torch::kFloat32);
    if (aug)
        images_augment(xb, aug);
    xb = images_normalise(xb, m.mean, m.std);
    if (m.channels_last)
        xb = nhwc(xb);
    d.raw = frozen_forward(m, xb);
    d.batch = d.raw.to(torch::kFloat32).contiguous();
    d.batch_lo = batch_lo;
#ifdef FL_TORCH_CUDA
    if (d.dev.is_cuda())
        s.consumed.record(c10::cuda::getCurrentCUDAStream(d.dev.index()));
#endif
    return FL_OK;
}

torch::Tensor rows_tensor(const fl_devpath &d, const int64_t *rows, int64_t B)
{
    return torch::from_blob(const_cast<int64_t *>(rows), {B}, torch::kInt64).to(d.dev);
}

void epoch(fl_devpath &d, const int64_t *rows, int64_t n, const int64_t *const *pos, const int64_t *count,
           const double *loss0, const double *correct0)
{
    d.rows = rows_tensor(d, rows, n);
    if (!pos)
        return;
    size_t nh = d.models.size();
    std::vector<double> init(nh * 3, 0.0);
    for (size_t h = 0; h < nh; h++) {
        d.pos[h] = rows_tensor(d, pos[h], count[h]);
        d.head_rows[h] = d.rows.index_select(0, d.pos[h]);
        d.head_labels[h] = d.labels.index_select(0, d.head_rows[h]);
        init[h * 3] = loss0 ? loss0[h] : 0;
        init[h * 3 + 1] = correct0 ? correct0[h] : 0;
    }
    d.stats.copy_(torch::from_blob(init.data(), {(int64_t)nh, 3}, torch::kFloat64));
    d.last.zero_();
}

void head_step(fl_devpath &d, int h, int64_t a, int64_t b, bool from_cache, double scale)
{
    fl_model &m = *d.models[h];
    m.net->head->train();
    torch::Tensor feats;
    if (from_cache)
        feats = d.cache.index_select(0, d.head_rows[h].slice(0, a, b)).to(torch::kFloat32);
    else
        feats = d.batch.index_select(0, d.pos[h].slice(0, a, b) - d.batch_lo);
    torch::Tensor y = d.head_labels[h].slice(0, a, b);
    // head_backward of model_api.cpp, with the statistics kept on the device.
    torch::Tensor logits = m.net->head->forward(feats);
    torch::Tensor rows = ce_rows(logits, y, m.label_smoothing);
    (rows.mean() * (m.scaler.on ? scale * m.scaler.scale : scale)).backward();
    torch::Tensor st =
        torch::stack({rows.detach().sum().to(torch::kFloat64), logits.argmax(1).eq(y).sum().to(torch::kFloat64)});
    d.last[h].copy_(st);
    torch::Tensor acc = d.stats[h];
    acc.narrow(0, 0, 2).add_(st);
    acc.narrow(0, 2, 1).add_(torch::isfinite(st.narrow(0, 0, 1)).logical_not().to(torch::kFloat64));
}

void copy_out(const torch::Tensor &t, void *out, size_t elem)
{
    torch::Tensor h = t.to(torch::kCPU).contiguous();
    std::memcpy(out, h.data_ptr(), elem * (size_t)h.numel());
}

} // namespace

extern "C" fl_code fl_devpath_open(fl_model *const *models, int n, int64_t N, const int32_t *labels, int64_t cap,
                                   int want_cache, fl_devpath **out, int *cached, char *note, size_t note_size,
                                   fl_error *err)
{
    if (!models || n < 1 || !out || !cached || N < 0 || cap < 1 || (N > 0 && !labels))
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_open: models, labels, out and cap >= 1 must be given");
    *out = nullptr;
    for (int i = 0; i < n; i++)
        if (!models[i]->freeze_backbone || models[i]->device != models[0]->device)
            return fl_fail(err, FL_EINTERNAL, "fl_devpath_open: heads of one frozen backbone on one device only");
    for (int64_t r = 0; r < N; r++)
        if (labels[r] < 0 || labels[r] >= models[0]->num_classes)
            return fl_fail(err, FL_EINPUT, "label %d of train row %lld: expected a class id in 0..%lld", (int)labels[r],
                           (long long)r, (long long)models[0]->num_classes - 1);
    FL_TORCH_GUARD(err, return open(models, n, N, labels, cap, want_cache, out, cached, note, note_size));
}

extern "C" void fl_devpath_close(fl_devpath *d)
{
    if (!d)
        return;
    try {
#ifdef FL_TORCH_CUDA
        if (d->dev.is_cuda()) {
            c10::cuda::CUDAGuard guard(d->dev.index());
            d->side->synchronize();
            c10::cuda::getCurrentCUDAStream(d->dev.index()).synchronize();
        }
#endif
        delete d;
    } catch (...) {
    }
}

extern "C" const char *fl_devpath_device(const fl_devpath *d)
{
    return d->dev_name.c_str();
}

extern "C" const char *fl_devpath_cache_dtype(const fl_devpath *d)
{
    return dtype_name(d->feat_dtype);
}

extern "C" int64_t fl_devpath_cache_bytes(const fl_devpath *d)
{
    return d->cache.defined() ? d->cache.numel() * (int64_t)d->cache.element_size() : 0;
}

extern "C" fl_code fl_devpath_stage(fl_devpath *d, const uint8_t *x, int B, int *slot, fl_error *err)
{
    if (!x && B > 0)
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_stage: no images");
    FL_TORCH_GUARD(err, return stage(*d, x, B, slot, err));
}

extern "C" fl_code fl_devpath_embed(fl_devpath *d, int slot, const fl_augment *aug, int64_t batch_lo, fl_error *err)
{
    if (slot < 0 || slot > 1)
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_embed: slot %d", slot);
    std::string why;
    if (aug && !images_augment_valid(aug, d->slot[slot].B, &why))
        return fl_fail(err, FL_EINPUT, "embed: %s", why.c_str());
    FL_TORCH_GUARD(err, return embed(*d, slot, aug, batch_lo, err));
}

extern "C" fl_code fl_devpath_cache_put(fl_devpath *d, int64_t lo, fl_error *err)
{
    if (!d->cache.defined() || !d->raw.defined() || !d->rows.defined() || lo < 0 ||
        lo + d->raw.size(0) > d->rows.numel())
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_cache_put: no cache, batch or rows at %lld", (long long)lo);
    FL_TORCH_GUARD(err, d->cache.index_copy_(0, d->rows.narrow(0, lo, d->raw.size(0)), d->raw.to(d->feat_dtype)));
}

extern "C" fl_code fl_devpath_batch_to_host(fl_devpath *d, float *out, fl_error *err)
{
    if (!d->batch.defined())
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_batch_to_host: no batch");
    FL_TORCH_GUARD(err, copy_out(d->batch, out, sizeof(float)));
}

extern "C" fl_code fl_devpath_cache_put_host(fl_devpath *d, const int64_t *rows, int64_t B, const float *feats,
                                             fl_error *err)
{
    if (!d->cache.defined())
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_cache_put_host: no cache");
    FL_TORCH_GUARD(err, {
        torch::Tensor f = torch::from_blob(const_cast<float *>(feats), {B, d->D}, torch::kFloat32);
        d->cache.index_copy_(0, rows_tensor(*d, rows, B), f.to(d->dev).to(d->feat_dtype));
    });
}

extern "C" fl_code fl_devpath_cache_get_host(fl_devpath *d, const int64_t *rows, int64_t B, float *out, fl_error *err)
{
    if (!d->cache.defined())
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_cache_get_host: no cache");
    FL_TORCH_GUARD(
        err, copy_out(d->cache.index_select(0, rows_tensor(*d, rows, B)).to(torch::kFloat32), out, sizeof(float)));
}

extern "C" fl_code fl_devpath_epoch(fl_devpath *d, const int64_t *rows, int64_t n, const int64_t *const *pos,
                                    const int64_t *count, const double *loss0, const double *correct0, fl_error *err)
{
    for (size_t h = 0; pos && h < d->models.size(); h++)
        for (int64_t i = 0; i < count[h]; i++)
            if (pos[h][i] < 0 || pos[h][i] >= n || (i && pos[h][i] <= pos[h][i - 1]))
                return fl_fail(err, FL_EINTERNAL, "fl_devpath_epoch: head %zu position %lld out of order", h,
                               (long long)i);
    FL_TORCH_GUARD(err, epoch(*d, rows, n, pos, count, loss0, correct0));
}

extern "C" fl_code fl_devpath_head_step(fl_devpath *d, int h, int64_t a, int64_t b, int from_cache, double loss_scale,
                                        fl_error *err)
{
    if (h < 0 || h >= (int)d->models.size() || a < 0 || b <= a || b > d->pos[h].numel())
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_head_step: head %d positions [%lld, %lld)", h, (long long)a,
                       (long long)b);
    if (from_cache ? !d->cache.defined() : !d->batch.defined())
        return fl_fail(err, FL_EINTERNAL, "fl_devpath_head_step: no %s", from_cache ? "cache" : "batch");
    if (!std::isfinite(loss_scale))
        return fl_fail(err, FL_EINPUT, "loss_scale %g: expected a finite number", loss_scale);
    FL_TORCH_GUARD(err, head_step(*d, h, a, b, from_cache != 0, loss_scale));
}

extern "C" fl_code fl_devpath_read(fl_devpath *d, int last, double *out, fl_error *err)
{
    FL_TORCH_GUARD(err, copy_out(last ? d->last : d->stats, out, sizeof(double)));
}
