// images.cpp -- see images.h; also the entry point fl_torch_augment_batch.
//
// Rotation convention: a positive angle_deg turns the picture counter-
// clockwise as it is seen on screen (row 0 at the top). With 90 degrees on a
// square N x N image, out[y][x] = in[x][N-1-y]: numpy's rot90(img, k=1).
//
// How: affine_grid gives, for every output pixel, the point of the input to
// sample, in normalised coordinates u = x / ((W-1)/2) - 1 (align_corners
// true: -1 and 1 are the centres of the edge pixels). In pixel coordinates
// relative to the image centre the input point is p = R q for output point q,
// with R = [[cos a, -sin a], [sin a, cos a]] (y pointing down, so this is the
// inverse of a counter-clockwise turn). In normalised coordinates that is
// theta = S^-1 R S with S = diag((W-1)/2, (H-1)/2), which keeps the rotation a
// true rotation of pixels on non-square images.
#include "trainer/torch/images.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "trainer/torch/bridge_guard.h"

namespace foldline
{

namespace F = torch::nn::functional;

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

const double kPi = 3.14159265358979323846;

// Rows i of the batch where pick(aug[i]) holds.
template <typename Pick> std::vector<int64_t> rows_where(const fl_augment *aug, int64_t B, Pick pick)
{
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < B; i++)
        if (pick(aug[i]))
            rows.push_back(i);
    return rows;
}

torch::Tensor index_tensor(const std::vector<int64_t> &rows, const torch::Device &device)
{
    return torch::tensor(rows, torch::kInt64).to(device);
}

void rotate(torch::Tensor &x, const fl_augment *aug, const std::vector<int64_t> &rows)
{
    const int64_t n = (int64_t)rows.size(), C = x.size(1), H = x.size(2), W = x.size(3);
    // Half-extents in pixels; a 1-pixel side has none (its only pixel is the centre).
    const double sx = W > 1 ? (W - 1) / 2.0 : 1.0, sy = H > 1 ? (H - 1) / 2.0 : 1.0;
    std::vector<float> theta;
    theta.reserve((size_t)n * 6);
    for (int64_t row : rows) {
        double a = aug[row].angle_deg * kPi / 180.0, c = std::cos(a), s = std::sin(a);
        const double m[6] = {c, -s * sy / sx, 0.0, s * sx / sy, c, 0.0}; // theta = S^-1 R S, no shift
        theta.insert(theta.end(), m, m + 6);
    }
    torch::Tensor idx = index_tensor(rows, x.device());
    torch::Tensor th = torch::tensor(theta, torch::kFloat32).view({n, 2, 3}).to(x.device()); // (n, 2, 3)
    torch::Tensor sub = x.index_select(0, idx);                                              // (n, C, H, W)
    torch::Tensor grid = F::affine_grid(th, {n, C, H, W}, /*align_corners=*/true);           // (n, H, W, 2)
    torch::Tensor out = F::grid_sample(
        sub, grid,
        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kReflection).align_corners(true));
    x.index_copy_(0, idx, out);
}

void flip(torch::Tensor &x, const std::vector<int64_t> &rows, int64_t dim)
{
    torch::Tensor idx = index_tensor(rows, x.device());
    x.index_copy_(0, idx, x.index_select(0, idx).flip({dim}));
}

} // namespace

bool images_augment_valid(const fl_augment *aug, int64_t B)
{
    for (int64_t i = 0; i < B; i++)
        if (!std::isfinite(aug[i].angle_deg))
            return false;
    return true;
}

void images_augment(torch::Tensor &x, const fl_augment *aug)
{
    const int64_t B = x.size(0);
    std::vector<int64_t> rows = rows_where(aug, B, [](const fl_augment &a) { return a.angle_deg != 0.0f; });
    if (!rows.empty())
        rotate(x, aug, rows);
    rows = rows_where(aug, B, [](const fl_augment &a) { return a.hflip != 0; });
    if (!rows.empty())
        flip(x, rows, 3);
    rows = rows_where(aug, B, [](const fl_augment &a) { return a.vflip != 0; });
    if (!rows.empty())
        flip(x, rows, 2);
}

torch::Tensor images_normalise(const torch::Tensor &x, const torch::Tensor &mean, const torch::Tensor &std)
{
    return x.div(255.0).sub_(mean).div_(std);
}

} // namespace foldline

extern "C" fl_code fl_torch_augment_batch(const uint8_t *x, int B, int ch, int H, int W, const fl_augment *aug,
                                          float *out, fl_error *err)
{
    if (!x || !aug || !out || B < 1 || ch < 1 || H < 1 || W < 1)
        return fl_fail(err, FL_EINPUT, "augment batch: expected buffers and B, ch, H, W >= 1, got B=%d ch=%d H=%d W=%d",
                       B, ch, H, W);
    if (!foldline::images_augment_valid(aug, B))
        return fl_fail(err, FL_EINPUT, "augment batch: a rotation angle is not a finite number");
    FL_TORCH_GUARD(err, {
        torch::Tensor t = foldline::images_to_device(x, B, ch, H, W, torch::kCPU); // (B, ch, H, W)
        foldline::images_augment(t, aug);
        t = t.contiguous();
        std::memcpy(out, t.data_ptr<float>(), sizeof(float) * (size_t)t.numel());
    });
}
