// warp.cpp -- see warp.h. Every op is a sampling map: output pixel p of the
// op reads its input at m(p) (bilinear, reflect-101 borders), and a list of
// ops composes into one map, so each image is resampled once.
//
// Coordinates are pixels (x right, y down, pixel centres at integers) until
// the very end, where they become grid_sample's normalised coordinates
// (align_corners true: -1 and 1 are the centres of the edge pixels; its
// reflection padding mirrors about those centres, which is OpenCV's
// BORDER_REFLECT_101). The maps, as albumentations 1.4.15 builds them:
//   hflip     m(x, y) = (W-1-x, y)                      vflip likewise in y
//   rotate    m(q) = c + [[cos a, -sin a], [sin a, cos a]] (q - c),
//             c = ((W-1)/2, (H-1)/2): cv2.warpAffine with getRotationMatrix2D(c, a, 1)
//   elastic   m(x, y) = (x + dx[y][x], y + dy[y][x]), the blurred noise fields times alpha
//   grid      m(x, y) = (xx[x], yy[y]), albumentations' piecewise-linear tables
// All of it runs as batched tensor ops on the images' device; the host only
// computes the grid distortion's 1-D tables (W + H values per draw).
#include "trainer/torch/warp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace foldline
{

namespace F = torch::nn::functional;

namespace
{

const double kPi = 3.14159265358979323846;

// Does op d move pixels? A rotation by 0 and an elastic alpha of 0 do not
// (albumentations' grid distortion always does: even with every stretch 1,
// its cells of `step` pixels spread over step + 1).
bool moves(const fl_aug_draw &d)
{
    switch (d.kind) {
    case FL_AUG_HFLIP:
    case FL_AUG_VFLIP:
    case FL_AUG_GRID_DISTORTION:
        return true;
    case FL_AUG_ROTATE:
        return d.angle_deg != 0.0f;
    case FL_AUG_ELASTIC:
        return d.elastic.alpha != 0.0f;
    default:
        return false;
    }
}

bool is_flip(int kind)
{
    return kind == FL_AUG_HFLIP || kind == FL_AUG_VFLIP;
}

torch::Tensor index_tensor(const std::vector<int64_t> &rows, const torch::Device &device)
{
    return torch::tensor(rows, torch::kInt64).to(device);
}

// ---- building blocks -----------------------------------------------------------

// OpenCV's borderInterpolate(p, len, BORDER_REFLECT_101), for any distance outside.
int64_t reflect101_index(int64_t p, int64_t len)
{
    if (len == 1)
        return 0;
    while (p < 0 || p >= len)
        p = p < 0 ? -p : 2 * (len - 1) - p;
    return p;
}

// The indices that pad a side of len by r on both ends, reflect-101: what
// libtorch's "reflect" padding does, also when r >= len (a kernel wider than
// the image, which "reflect" padding refuses).
torch::Tensor reflect101_pad_index(int64_t len, int64_t r, const torch::Device &device)
{
    std::vector<int64_t> idx((size_t)(len + 2 * r));
    for (int64_t j = 0; j < len + 2 * r; j++)
        idx[(size_t)j] = reflect101_index(j - r, len);
    return index_tensor(idx, device);
}

// Coordinates v (any shape) folded into [0, len-1] by mirroring about 0 and
// len-1: where bilinear sampling with BORDER_REFLECT_101 reads a point
// outside the image (reflecting each of its two neighbours gives the same value).
torch::Tensor reflect_coords(const torch::Tensor &v, int64_t len)
{
    if (len == 1)
        return torch::zeros_like(v);
    const double period = 2.0 * (double)(len - 1);
    torch::Tensor t = v.abs().remainder(period);
    return torch::where(t > (double)(len - 1), period - t, t);
}

// Linear interpolation of tables (m, L) at coordinates v (m, H, W) in [0, L-1];
// exact at integer coordinates (weight 0 on the right neighbour).
torch::Tensor lerp_table(const torch::Tensor &table, const torch::Tensor &v)
{
    const int64_t m = v.size(0), L = table.size(1);
    torch::Tensor v0 = v.floor();
    torch::Tensor f = v - v0;
    torch::Tensor i0 = v0.to(torch::kInt64).clamp_(0, L - 1);
    torch::Tensor i1 = (i0 + 1).clamp_max_(L - 1);
    torch::Tensor a = table.gather(1, i0.view({m, -1})).view_as(v);
    torch::Tensor b = table.gather(1, i1.view({m, -1})).view_as(v);
    return a + f * (b - a);
}

// Bilinear interpolation of fields (m, 2, H, W) at (x, y) (m, H, W), both in
// range; exact at integer coordinates. Returns (m, 2, H, W).
torch::Tensor sample_fields(const torch::Tensor &fields, const torch::Tensor &x, const torch::Tensor &y)
{
    const int64_t m = fields.size(0), H = fields.size(2), W = fields.size(3);
    torch::Tensor x0 = x.floor(), y0 = y.floor();
    torch::Tensor fx = (x - x0).unsqueeze(1), fy = (y - y0).unsqueeze(1); // (m, 1, H, W)
    torch::Tensor ix0 = x0.to(torch::kInt64).clamp_(0, W - 1), iy0 = y0.to(torch::kInt64).clamp_(0, H - 1);
    torch::Tensor ix1 = (ix0 + 1).clamp_max_(W - 1), iy1 = (iy0 + 1).clamp_max_(H - 1);
    torch::Tensor flat = fields.reshape({m, 2, H * W});
    auto at = [&](const torch::Tensor &iy, const torch::Tensor &ix) {
        torch::Tensor i = (iy * W + ix).view({m, 1, H * W}).expand({m, 2, H * W});
        return flat.gather(2, i).view({m, 2, H, W});
    };
    torch::Tensor v00 = at(iy0, ix0), v01 = at(iy0, ix1), v10 = at(iy1, ix0), v11 = at(iy1, ix1);
    torch::Tensor top = v00 + fx * (v01 - v00), bottom = v10 + fx * (v11 - v10);
    return top + fy * (bottom - top);
}

// ---- elastic -------------------------------------------------------------------

// z >> s for the bits of an int64 taken as a uint64 (a logical shift).
torch::Tensor shift_right(const torch::Tensor &z, int s)
{
    return z.__rshift__(s).bitwise_and_((int64_t)(~0ull >> s));
}

int64_t as_int64(uint64_t v)
{
    int64_t r;
    std::memcpy(&r, &v, sizeof r);
    return r;
}

// cv::GaussianBlur(f, Size(0, 0), sigma) of float fields f (m, 1, H, W):
// kernel size cvRound(8 sigma + 1) | 1 (OpenCV's rule for float images), the
// kernel of getGaussianKernel (exp(-d^2 / (2 sigma^2)) normalised to sum 1,
// computed in double, used as float), reflect-101 borders, rows then columns.
torch::Tensor gaussian_blur(const torch::Tensor &f, double sigma)
{
    const int64_t H = f.size(2), W = f.size(3);
    const int64_t k = (int64_t)std::nearbyint(sigma * 8.0 + 1.0) | 1, r = k / 2;
    const double scale = -0.125 / (sigma * sigma); // on doubled offsets, as OpenCV computes it
    std::vector<double> t((size_t)k);
    double sum = 1.0; // the centre
    for (int64_t i = 0; i < r; i++) {
        const double d2 = (double)((2 * (i - r)) * (2 * (i - r)));
        t[(size_t)i] = t[(size_t)(k - 1 - i)] = std::exp(d2 * scale);
        sum += 2.0 * t[(size_t)i];
    }
    t[(size_t)r] = 1.0;
    std::vector<float> kern((size_t)k);
    for (int64_t i = 0; i < k; i++)
        kern[(size_t)i] = (float)(t[(size_t)i] * (1.0 / sum));
    torch::Tensor w = torch::tensor(kern).to(f.device()); // (k)
    torch::Tensor out = f;
    if (W > 1 && k > 1) // OpenCV filters a 1-pixel-wide image with a 1-wide kernel
        out = F::conv2d(out.index_select(3, reflect101_pad_index(W, r, f.device())), w.view({1, 1, 1, k}));
    if (H > 1 && k > 1)
        out = F::conv2d(out.index_select(2, reflect101_pad_index(H, r, f.device())), w.view({1, 1, k, 1}));
    return out;
}

// The displacement fields alpha * blur(noise) of elastic draws: (n, 2, H, W).
// One noise generation for all of them; one blur per distinct sigma.
torch::Tensor elastic_fields(const std::vector<const fl_aug_draw *> &draws, int64_t H, int64_t W,
                             const torch::Device &dev)
{
    const int64_t n = (int64_t)draws.size();
    std::vector<int64_t> keys;
    std::vector<float> alpha;
    for (const fl_aug_draw *d : draws) {
        keys.push_back(as_int64(d->elastic.noise_key));
        alpha.push_back(d->elastic.alpha);
    }
    torch::Tensor noise = warp_elastic_noise(index_tensor(keys, dev), H, W); // (n, 2, H, W)
    torch::Tensor fields = torch::empty_like(noise);
    std::vector<bool> done((size_t)n, false);
    for (int64_t i = 0; i < n; i++) {
        if (done[(size_t)i])
            continue;
        const float sigma = draws[(size_t)i]->elastic.sigma;
        std::vector<int64_t> same;
        for (int64_t j = i; j < n; j++)
            if (!done[(size_t)j] && draws[(size_t)j]->elastic.sigma == sigma) {
                same.push_back(j);
                done[(size_t)j] = true;
            }
        torch::Tensor idx = index_tensor(same, dev);
        torch::Tensor blurred = gaussian_blur(noise.index_select(0, idx).view({-1, 1, H, W}), sigma);
        fields.index_copy_(0, idx, blurred.view({-1, 2, H, W}));
    }
    return fields.mul_(torch::tensor(alpha).view({n, 1, 1, 1}).to(dev));
}

// ---- grid distortion -------------------------------------------------------------

// albumentations 1.4.15's grid_distortion table along one side of len pixels:
// out[i] is where output pixel i reads. Mirrors its loop and numpy.linspace
// (in double; the table is float32 as in albumentations).
void grid_table(int64_t len, int num_steps, const float *steps, float *out)
{
    const int64_t step = len / num_steps;
    std::fill(out, out + len, 0.0f);
    double prev = 0.0;
    for (int idx = 0; idx <= num_steps; idx++) {
        int64_t start = idx * step, end = start + step;
        double cur;
        if (end > len) { // the cell past the last whole step ends at the side
            end = len;
            cur = (double)len;
        } else {
            cur = prev + (double)step * (double)steps[idx];
        }
        const int64_t n = end - start;
        if (n == 1)
            out[start] = (float)prev;
        if (n > 1) {
            const double d = (cur - prev) / (double)(n - 1);
            for (int64_t i = 0; i < n - 1; i++)
                out[start + i] = (float)((double)i * d + prev);
            out[end - 1] = (float)cur;
        }
        prev = cur;
    }
}

// The tables of grid draws: xx (n, W) and yy (n, H) on dev.
void grid_tables(const std::vector<const fl_aug_draw *> &draws, int64_t H, int64_t W, const torch::Device &dev,
                 torch::Tensor *xx, torch::Tensor *yy)
{
    const int64_t n = (int64_t)draws.size();
    std::vector<float> tx((size_t)(n * W)), ty((size_t)(n * H));
    for (int64_t i = 0; i < n; i++) {
        grid_table(W, draws[(size_t)i]->grid.num_steps, draws[(size_t)i]->grid.steps_x, &tx[(size_t)(i * W)]);
        grid_table(H, draws[(size_t)i]->grid.num_steps, draws[(size_t)i]->grid.steps_y, &ty[(size_t)(i * H)]);
    }
    *xx = torch::tensor(tx).view({n, W}).to(dev);
    *yy = torch::tensor(ty).view({n, H}).to(dev);
}

// ---- the composition -------------------------------------------------------------

// The images to resample and, per (image, op), where its elastic field or
// grid tables are (-1: none).
struct Plan {
    std::vector<int64_t> rows; // images of the batch (index j below)
    std::vector<const fl_aug_draw *> elastic, grid;
    std::vector<int> field_of, table_of; // (rows, FL_AUG_MAX_OPS)
    int max_ops = 0;
};

// Applies the map of op kind at slot k to the coordinates P (n, H, W, 2) of
// the images js (indices into plan.rows) that have it.
void apply_map(torch::Tensor &P, const fl_augment *aug, const Plan &plan, int k, int kind,
               const std::vector<int64_t> &js, const torch::Tensor &fields, const torch::Tensor &xx,
               const torch::Tensor &yy)
{
    const int64_t m = (int64_t)js.size(), H = P.size(1), W = P.size(2);
    const torch::Device dev = P.device();
    const bool all = m == P.size(0);
    torch::Tensor idx = all ? torch::Tensor() : index_tensor(js, dev);
    torch::Tensor q = all ? P : P.index_select(0, idx); // (m, H, W, 2)
    // Where the later op read this op's output; outside the image, it read the mirror image.
    torch::Tensor x = reflect_coords(q.select(3, 0), W), y = reflect_coords(q.select(3, 1), H); // (m, H, W)
    std::vector<int64_t> which;
    switch (kind) {
    case FL_AUG_HFLIP:
        x = (double)(W - 1) - x;
        break;
    case FL_AUG_VFLIP:
        y = (double)(H - 1) - y;
        break;
    case FL_AUG_ROTATE: {
        std::vector<float> cs, sn;
        for (int64_t j : js) {
            const double a = aug[plan.rows[(size_t)j]].ops[k].angle_deg * kPi / 180.0;
            cs.push_back((float)std::cos(a));
            sn.push_back((float)std::sin(a));
        }
        torch::Tensor c = torch::tensor(cs).view({m, 1, 1}).to(dev), s = torch::tensor(sn).view({m, 1, 1}).to(dev);
        torch::Tensor dx = x - (double)(W - 1) / 2.0, dy = y - (double)(H - 1) / 2.0;
        x = c * dx - s * dy + (double)(W - 1) / 2.0;
        y = s * dx + c * dy + (double)(H - 1) / 2.0;
        break;
    }
    case FL_AUG_ELASTIC: {
        for (int64_t j : js)
            which.push_back(plan.field_of[(size_t)(j * FL_AUG_MAX_OPS + k)]);
        torch::Tensor d = sample_fields(fields.index_select(0, index_tensor(which, dev)), x, y); // (m, 2, H, W)
        x = x + d.select(1, 0);
        y = y + d.select(1, 1);
        break;
    }
    case FL_AUG_GRID_DISTORTION: {
        for (int64_t j : js)
            which.push_back(plan.table_of[(size_t)(j * FL_AUG_MAX_OPS + k)]);
        torch::Tensor t = index_tensor(which, dev);
        x = lerp_table(xx.index_select(0, t), x);
        y = lerp_table(yy.index_select(0, t), y);
        break;
    }
    default:
        return;
    }
    torch::Tensor mapped = torch::stack({x, y}, 3); // (m, H, W, 2)
    if (all)
        P = mapped;
    else
        P.index_copy_(0, idx, mapped);
}

// Pixel coordinates (n, H, W, 2) -> grid_sample's (align_corners true).
torch::Tensor to_unit(const torch::Tensor &P, int64_t H, int64_t W)
{
    auto unit = [](const torch::Tensor &v, int64_t len) {
        return len > 1 ? v * (2.0 / (double)(len - 1)) - 1.0 : torch::zeros_like(v);
    };
    return torch::stack({unit(P.select(3, 0), W), unit(P.select(3, 1), H)}, 3);
}

// Resamples images plan.rows of x through their composed maps: one grid_sample.
void resample(torch::Tensor &x, const fl_augment *aug, const Plan &plan)
{
    const int64_t n = (int64_t)plan.rows.size(), H = x.size(2), W = x.size(3);
    const torch::Device dev = x.device();
    torch::Tensor fields, xx, yy;
    if (!plan.elastic.empty())
        fields = elastic_fields(plan.elastic, H, W, dev);
    if (!plan.grid.empty())
        grid_tables(plan.grid, H, W, dev, &xx, &yy);
    // The image's output is op_K(...op_1(image)): output pixel p reads the
    // input at m_1(m_2(...m_K(p))). So start from the output pixels and apply
    // the maps from the last op back to the first; each map is evaluated where
    // the later one pointed. That point is between pixel centres, where the
    // later op's bilinear read blends the earlier op's output pixels, so the
    // earlier map (a field on pixel centres) is blended the same way (exact
    // for flips and rotations, bilinear for elastic and grid distortion); and
    // a point outside the image is first mirrored back into it (reflect-101).
    // Composing maps instead of images leaves one interpolation of pixel
    // values instead of K.
    torch::Tensor xs = torch::arange(W, torch::TensorOptions().dtype(torch::kFloat32).device(dev));
    torch::Tensor ys = torch::arange(H, torch::TensorOptions().dtype(torch::kFloat32).device(dev));
    torch::Tensor P = torch::stack({xs.view({1, 1, W}).expand({n, H, W}), ys.view({1, H, 1}).expand({n, H, W})}, 3)
                          .contiguous(); // (n, H, W, 2): the output pixels
    const int kinds[] = {FL_AUG_HFLIP, FL_AUG_VFLIP, FL_AUG_ROTATE, FL_AUG_ELASTIC, FL_AUG_GRID_DISTORTION};
    for (int k = plan.max_ops - 1; k >= 0; k--)
        for (int kind : kinds) {
            std::vector<int64_t> js;
            for (int64_t j = 0; j < n; j++) {
                const fl_augment &a = aug[plan.rows[(size_t)j]];
                if (k < a.n_ops && a.ops[k].kind == kind && moves(a.ops[k]))
                    js.push_back(j);
            }
            if (!js.empty())
                apply_map(P, aug, plan, k, kind, js, fields, xx, yy);
        }
    torch::Tensor idx = index_tensor(plan.rows, dev);
    torch::Tensor out = F::grid_sample(
        x.index_select(0, idx), to_unit(P, H, W),
        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kReflection).align_corners(true));
    x.index_copy_(0, idx, out);
}

void flip_rows(torch::Tensor &x, const std::vector<int64_t> &rows, int64_t dim)
{
    torch::Tensor idx = index_tensor(rows, x.device());
    x.index_copy_(0, idx, x.index_select(0, idx).flip({dim}));
}

} // namespace

torch::Tensor warp_elastic_noise(const torch::Tensor &keys, int64_t H, int64_t W)
{
    // fl_rng_next (trainer/rng.h) in int64 tensor arithmetic: sums and
    // products wrap modulo 2^64 exactly as uint64_t's do; right shifts are made
    // logical by masking. Draw number i (1-based) of a stream with state key
    // is mix(key + i * golden).
    torch::Tensor i = torch::arange(1, 2 * H * W + 1, keys.options());                           // (2HW)
    torch::Tensor z = i.mul(as_int64(0x9e3779b97f4a7c15ull)).view({1, -1}) + keys.view({-1, 1}); // (n, 2HW)
    z = (z ^ shift_right(z, 30)).mul_(as_int64(0xbf58476d1ce4e5b9ull));
    z = (z ^ shift_right(z, 27)).mul_(as_int64(0x94d049bb133111ebull));
    z = z ^ shift_right(z, 31);
    // The top 24 bits -> k * 2^-23 - 1: exact in float32, uniform in [-1, 1).
    return shift_right(z, 40).to(torch::kFloat32).mul_(1.0 / 8388608.0).sub_(1.0).view({-1, 2, H, W});
}

void warp_apply(torch::Tensor &x, const fl_augment *aug)
{
    const int64_t B = x.size(0);
    Plan plan;
    std::vector<int64_t> hflips, vflips; // flip-only images with an odd count of each
    for (int64_t i = 0; i < B; i++) {
        bool resampled = false;
        int h = 0, v = 0;
        for (int k = 0; k < aug[i].n_ops; k++) {
            const fl_aug_draw &d = aug[i].ops[k];
            resampled |= moves(d) && !is_flip(d.kind);
            h ^= d.kind == FL_AUG_HFLIP;
            v ^= d.kind == FL_AUG_VFLIP;
        }
        if (!resampled) {
            if (h)
                hflips.push_back(i);
            if (v)
                vflips.push_back(i);
            continue;
        }
        const int64_t j = (int64_t)plan.rows.size();
        plan.rows.push_back(i);
        plan.max_ops = std::max(plan.max_ops, aug[i].n_ops);
        plan.field_of.resize((size_t)((j + 1) * FL_AUG_MAX_OPS), -1);
        plan.table_of.resize((size_t)((j + 1) * FL_AUG_MAX_OPS), -1);
        for (int k = 0; k < aug[i].n_ops; k++) {
            const fl_aug_draw &d = aug[i].ops[k];
            if (d.kind == FL_AUG_ELASTIC && moves(d)) {
                plan.field_of[(size_t)(j * FL_AUG_MAX_OPS + k)] = (int)plan.elastic.size();
                plan.elastic.push_back(&d);
            } else if (d.kind == FL_AUG_GRID_DISTORTION) {
                plan.table_of[(size_t)(j * FL_AUG_MAX_OPS + k)] = (int)plan.grid.size();
                plan.grid.push_back(&d);
            }
        }
    }
    if (!hflips.empty())
        flip_rows(x, hflips, 3);
    if (!vflips.empty())
        flip_rows(x, vflips, 2);
    if (!plan.rows.empty())
        resample(x, aug, plan);
}

} // namespace foldline
