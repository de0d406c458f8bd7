// images.cpp -- see images.h; also the entry points fl_torch_augment_batch and
// fl_torch_elastic_noise. The geometric ops live in warp.cpp; here are the
// device strings, the uint8 -> float copy, the pixel ops (brightness and
// contrast, cutout) and the checks of drawn parameters.
#include "trainer/torch/images.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "trainer/torch/bridge_guard.h"
#include "trainer/torch/warp.h"

namespace foldline
{

fl_code parse_device(const std::string &name, torch::Device *dev, fl_error *err)
{
    if (name == "cpu") {
        *dev = torch::Device(torch::kCPU);
        return FL_OK;
    }
    long index = 0;
    if (name.compare(0, 5, "cuda:") == 0 && name.size() > 5) {
        char *end = nullptr;
        index = std::strtol(name.c_str() + 5, &end, 10);
        if (*end != '\0' || index < 0 || index > 1024)
            return fl_fail(err, FL_EINPUT, "device \"%s\": expected \"cpu\", \"cuda\" or \"cuda:N\" with N >= 0",
                           name.c_str());
    } else if (name != "cuda") {
        return fl_fail(err, FL_EINPUT, "device \"%s\": expected \"cpu\", \"cuda\" or \"cuda:N\"", name.c_str());
    }
    if (!torch::cuda::is_available()) {
#ifdef FL_TORCH_CUDA
        const char *why = "this libtorch has CUDA but sees no GPU";
#else
        const char *why = "this libtorch was built without CUDA";
#endif
        return fl_fail(err, FL_EINPUT, "device \"%s\": CUDA is not available (%s); HINT: use device \"cpu\"",
                       name.c_str(), why);
    }
    long count = (long)torch::cuda::device_count();
    if (index >= count)
        return fl_fail(err, FL_EINPUT, "device \"%s\": only %ld CUDA device%s visible (cuda:0 to cuda:%ld)",
                       name.c_str(), count, count == 1 ? "" : "s", count - 1);
    *dev = torch::Device(torch::kCUDA, (c10::DeviceIndex)index);
    return FL_OK;
}

torch::Tensor images_to_device(const uint8_t *x, int64_t B, int64_t C, int64_t H, int64_t W,
                               const torch::Device &device)
{
    torch::Tensor host = torch::from_blob(const_cast<uint8_t *>(x), {B, C, H, W}, torch::kUInt8);
    if (device.is_cpu())
        return host.to(torch::kFloat32); // a copy: the caller's buffer is never written
    return host.to(device).to(torch::kFloat32);
}

namespace
{

// Images i whose op k is of kind.
std::vector<int64_t> rows_with(const fl_augment *aug, int64_t B, int k, int kind)
{
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < B; i++)
        if (k < aug[i].n_ops && aug[i].ops[k].kind == kind)
            rows.push_back(i);
    return rows;
}

torch::Tensor index_tensor(const std::vector<int64_t> &rows, const torch::Device &device)
{
    return torch::tensor(rows, torch::kInt64).to(device);
}

// x -> clip(alpha x + beta 255, 0, 255) on the rows (albumentations'
// RandomBrightnessContrast with brightness_by_max, without its rounding to
// uint8: foldline's images stay float between ops).
void brightness_contrast(torch::Tensor &x, const fl_augment *aug, int k, const std::vector<int64_t> &rows)
{
    std::vector<float> alpha, beta;
    for (int64_t i : rows) {
        alpha.push_back(aug[i].ops[k].bc.alpha);
        beta.push_back(aug[i].ops[k].bc.beta * 255.0f);
    }
    const int64_t n = (int64_t)rows.size();
    torch::Tensor idx = index_tensor(rows, x.device());
    torch::Tensor a = torch::tensor(alpha).view({n, 1, 1, 1}).to(x.device()); // (n, 1, 1, 1)
    torch::Tensor b = torch::tensor(beta).view({n, 1, 1, 1}).to(x.device());
    x.index_copy_(0, idx, x.index_select(0, idx).mul_(a).add_(b).clamp_(0.0, 255.0));
}

// One hole's side in pixels: size pixels (at most the side), or int(size * side).
int64_t hole_side(const fl_aug_draw &d, int64_t side)
{
    if (d.cutout.in_pixels)
        return std::min<int64_t>((int64_t)d.cutout.size, side);
    return std::min<int64_t>((int64_t)((double)d.cutout.size * (double)side), side);
}

// Sets the holes of op k to 0 on the rows: one (n, K, H, W) comparison of
// pixel indices against every hole's box, any over K, one masked fill.
void cutout(torch::Tensor &x, const fl_augment *aug, int k, const std::vector<int64_t> &rows)
{
    const int64_t n = (int64_t)rows.size(), H = x.size(2), W = x.size(3);
    int64_t K = 1;
    for (int64_t i : rows)
        K = std::max<int64_t>(K, aug[i].ops[k].cutout.n_holes);
    std::vector<int64_t> box((size_t)(n * K * 4), 0); // y1, y2, x1, x2; unused holes stay empty
    for (int64_t j = 0; j < n; j++) {
        const fl_aug_draw &d = aug[rows[(size_t)j]].ops[k];
        const int64_t h = hole_side(d, H), w = hole_side(d, W);
        for (int q = 0; q < d.cutout.n_holes; q++) {
            int64_t y1 =
                std::min<int64_t>((int64_t)std::floor((double)d.cutout.pos[q][0] * (double)(H - h + 1)), H - h);
            int64_t x1 =
                std::min<int64_t>((int64_t)std::floor((double)d.cutout.pos[q][1] * (double)(W - w + 1)), W - w);
            int64_t *b = &box[(size_t)((j * K + q) * 4)];
            b[0] = y1, b[1] = y1 + h, b[2] = x1, b[3] = x1 + w;
        }
    }
    const torch::Device dev = x.device();
    torch::Tensor bt = torch::tensor(box, torch::kInt64).view({n, K, 4, 1, 1}).to(dev); // (n, K, 4, 1, 1)
    torch::Tensor ys = torch::arange(H, torch::TensorOptions().dtype(torch::kInt64).device(dev)).view({1, 1, H, 1});
    torch::Tensor xs = torch::arange(W, torch::TensorOptions().dtype(torch::kInt64).device(dev)).view({1, 1, 1, W});
    torch::Tensor inside = ys.ge(bt.select(2, 0)) & ys.lt(bt.select(2, 1)) & xs.ge(bt.select(2, 2)) &
                           xs.lt(bt.select(2, 3));        // (n, K, H, W)
    torch::Tensor mask = inside.any(1, /*keepdim=*/true); // (n, 1, H, W)
    torch::Tensor idx = index_tensor(rows, dev);
    x.index_copy_(0, idx, x.index_select(0, idx).masked_fill_(mask, 0.0));
}

bool finite(float v)
{
    return std::isfinite(v);
}

// Why draw d is out of range, or nullptr.
const char *draw_problem(const fl_aug_draw &d)
{
    switch (d.kind) {
    case FL_AUG_NONE:
    case FL_AUG_HFLIP:
    case FL_AUG_VFLIP:
        return nullptr;
    case FL_AUG_ROTATE:
        return finite(d.angle_deg) ? nullptr : "a rotation angle is not a finite number";
    case FL_AUG_ELASTIC:
        if (!finite(d.elastic.alpha) || d.elastic.alpha < 0)
            return "elastic alpha is not a finite number >= 0";
        return finite(d.elastic.sigma) && d.elastic.sigma > 0 ? nullptr : "elastic sigma is not a finite number > 0";
    case FL_AUG_GRID_DISTORTION:
        if (d.grid.num_steps < 1 || d.grid.num_steps > FL_GRID_MAX_STEPS)
            return "grid distortion num_steps is not in 1..32";
        for (int j = 0; j <= d.grid.num_steps; j++)
            if (!finite(d.grid.steps_x[j]) || !finite(d.grid.steps_y[j]))
                return "a grid distortion step is not a finite number";
        return nullptr;
    case FL_AUG_BRIGHTNESS_CONTRAST:
        return finite(d.bc.alpha) && finite(d.bc.beta) ? nullptr : "brightness or contrast is not a finite number";
    case FL_AUG_CUTOUT:
        if (d.cutout.n_holes < 0 || d.cutout.n_holes > FL_CUTOUT_MAX_HOLES)
            return "cutout holes are not in 0..16";
        if (!finite(d.cutout.size) || d.cutout.size <= 0 || (!d.cutout.in_pixels && d.cutout.size > 1))
            return "cutout size is not a number of pixels >= 1 or a fraction in (0, 1]";
        for (int q = 0; q < d.cutout.n_holes; q++)
            for (float u : d.cutout.pos[q])
                if (!(u >= 0 && u < 1))
                    return "a cutout position is not in [0, 1)";
        return nullptr;
    default:
        return "unknown op kind";
    }
}

} // namespace

bool images_augment_valid(const fl_augment *aug, int64_t B, std::string *why)
{
    for (int64_t i = 0; i < B; i++) {
        if (aug[i].n_ops < 0 || aug[i].n_ops > FL_AUG_MAX_OPS) {
            *why = "image " + std::to_string(i) + ": op count not in 0..16";
            return false;
        }
        for (int k = 0; k < aug[i].n_ops; k++)
            if (const char *problem = draw_problem(aug[i].ops[k])) {
                *why = "image " + std::to_string(i) + " op " + std::to_string(k) + ": " + problem;
                return false;
            }
    }
    return true;
}

void images_augment(torch::Tensor &x, const fl_augment *aug)
{
    const int64_t B = x.size(0);
    warp_apply(x, aug);
    int max_ops = 0;
    for (int64_t i = 0; i < B; i++)
        max_ops = std::max(max_ops, aug[i].n_ops);
    for (int k = 0; k < max_ops; k++) {
        std::vector<int64_t> rows = rows_with(aug, B, k, FL_AUG_BRIGHTNESS_CONTRAST);
        if (!rows.empty())
            brightness_contrast(x, aug, k, rows);
        rows = rows_with(aug, B, k, FL_AUG_CUTOUT);
        if (!rows.empty())
            cutout(x, aug, k, rows);
    }
}

torch::Tensor images_normalise(const torch::Tensor &x, const torch::Tensor &mean, const torch::Tensor &std)
{
    return x.div(255.0).sub_(mean).div_(std);
}

} // namespace foldline

extern "C" fl_code fl_torch_augment_batch(const uint8_t *x, int B, int ch, int H, int W, const fl_augment *aug,
                                          const char *device, float *out, fl_error *err)
{
    if (!x || !aug || !out || B < 1 || ch < 1 || H < 1 || W < 1)
        return fl_fail(err, FL_EINPUT, "augment batch: expected buffers and B, ch, H, W >= 1, got B=%d ch=%d H=%d W=%d",
                       B, ch, H, W);
    std::string why;
    if (!foldline::images_augment_valid(aug, B, &why))
        return fl_fail(err, FL_EINPUT, "augment batch: %s", why.c_str());
    FL_TORCH_GUARD(err, {
        torch::Device dev(torch::kCPU);
        if (fl_code rc = foldline::parse_device(device ? device : "cpu", &dev, err))
            return rc;
        torch::Tensor t = foldline::images_to_device(x, B, ch, H, W, dev); // (B, ch, H, W)
        foldline::images_augment(t, aug);
        t = t.to(torch::kCPU).contiguous();
        std::memcpy(out, t.data_ptr<float>(), sizeof(float) * (size_t)t.numel());
    });
}

extern "C" fl_code fl_torch_elastic_noise(uint64_t noise_key, int H, int W, const char *device, float *out,
                                          fl_error *err)
{
    if (!out || H < 1 || W < 1)
        return fl_fail(err, FL_EINPUT, "elastic noise: expected a buffer and H, W >= 1, got H=%d W=%d", H, W);
    FL_TORCH_GUARD(err, {
        torch::Device dev(torch::kCPU);
        if (fl_code rc = foldline::parse_device(device ? device : "cpu", &dev, err))
            return rc;
        torch::Tensor key = torch::tensor({(int64_t)noise_key}, torch::kInt64).to(dev);
        torch::Tensor t = foldline::warp_elastic_noise(key, H, W).to(torch::kCPU).contiguous(); // (1, 2, H, W)
        std::memcpy(out, t.data_ptr<float>(), sizeof(float) * (size_t)t.numel());
    });
}
