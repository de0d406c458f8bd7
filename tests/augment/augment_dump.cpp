// augment_dump.cpp -- what foldline's augmentation does to given images, for
// tests/augment/test_augment.py to rebuild with OpenCV:
//
//   augment_dump CONFIG SEED EPOCH C H W IN.u8 OUT_DIR ROW [ROW ...]
//   augment_dump -      the same arguments, one case per line of stdin; answers
//                       "ok" or "error: ..." per line (libtorch loads once)
//
// Loads CONFIG (a foldline config; its first model's augment stage at EPOCH
// is used), reads B = number of ROWs uint8 images (B, C, H, W) from IN.u8,
// draws their augmentation with the job seed SEED (fl_augment_draw, as
// training does) and applies it through the bridge (fl_torch_augment_batch)
// on FOLDLINE_TEST_DEVICE (default cpu). Writes into OUT_DIR:
//   out.f32            float32 (B, C, H, W), the augmented images (0..255)
//   draws.json         per image, every op's drawn parameters, and
//                      "grid_samples": the grid_sampler_2d calls libtorch made
//   noise_I_K.f32      float32 (2, H, W), the elastic noise fields (before the
//                      blur) of image I's op K, as the bridge generates them
// C++ only for the count: a libtorch RecordFunction callback sees every op.
#include <ATen/record_function.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "config/config.h"
#include "trainer/augment.h"
}

namespace
{

int grid_samples = 0;

std::unique_ptr<at::ObserverContext> count_grid_samples(const at::RecordFunction &fn)
{
    if (std::strcmp(fn.name(), "aten::grid_sampler_2d") == 0)
        grid_samples++;
    return nullptr;
}

bool write_file(const std::string &path, const void *data, size_t n)
{
    FILE *f = std::fopen(path.c_str(), "wb");
    bool ok = f && std::fwrite(data, 1, n, f) == n;
    if (f)
        ok = std::fclose(f) == 0 && ok;
    return ok;
}

const char *kind_name(int kind)
{
    static const char *const names[] = {
        "none", "hflip", "vflip", "rotate", "elastic", "grid_distortion", "brightness_contrast", "cutout"};
    return kind >= 0 && kind <= FL_AUG_CUTOUT ? names[kind] : "?";
}

void floats_json(std::string &s, const float *v, int n)
{
    char buf[32];
    s += "[";
    for (int i = 0; i < n; i++) {
        std::snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", (double)v[i]);
        s += buf;
    }
    s += "]";
}

std::string draw_json(const fl_aug_draw &d)
{
    char buf[160];
    std::string s = std::string("{\"kind\": \"") + kind_name(d.kind) + "\"";
    switch (d.kind) {
    case FL_AUG_ROTATE:
        std::snprintf(buf, sizeof buf, ", \"angle\": %.9g", (double)d.angle_deg);
        s += buf;
        break;
    case FL_AUG_ELASTIC:
        std::snprintf(buf, sizeof buf, ", \"alpha\": %.9g, \"sigma\": %.9g, \"noise_key\": \"%" PRIu64 "\"",
                      (double)d.elastic.alpha, (double)d.elastic.sigma, d.elastic.noise_key);
        s += buf;
        break;
    case FL_AUG_GRID_DISTORTION:
        std::snprintf(buf, sizeof buf, ", \"num_steps\": %d, \"steps_x\": ", d.grid.num_steps);
        s += buf;
        floats_json(s, d.grid.steps_x, d.grid.num_steps + 1);
        s += ", \"steps_y\": ";
        floats_json(s, d.grid.steps_y, d.grid.num_steps + 1);
        break;
    case FL_AUG_BRIGHTNESS_CONTRAST:
        std::snprintf(buf, sizeof buf, ", \"alpha\": %.9g, \"beta\": %.9g", (double)d.bc.alpha, (double)d.bc.beta);
        s += buf;
        break;
    case FL_AUG_CUTOUT:
        std::snprintf(buf, sizeof buf, ", \"size\": %.9g, \"in_pixels\": %d, \"pos\": ", (double)d.cutout.size,
                      d.cutout.in_pixels);
        s += buf;
        floats_json(s, &d.cutout.pos[0][0], 2 * d.cutout.n_holes);
        break;
    default:
        break;
    }
    return s + "}";
}

int fail(const char *what, const fl_error &err)
{
    std::fprintf(stderr, "augment_dump: %s: %s\n", what, err.msg);
    return 1;
}

int run_case(int argc, char **argv);

} // namespace

int main(int argc, char **argv)
{
    if (argc == 2 && std::strcmp(argv[1], "-") == 0) {
        char line[65536];
        while (std::fgets(line, sizeof line, stdin)) {
            std::vector<char *> args{argv[0]};
            for (char *t = std::strtok(line, " \t\n"); t; t = std::strtok(nullptr, " \t\n"))
                args.push_back(t);
            std::printf("%s\n", run_case((int)args.size(), args.data()) ? "error" : "ok");
            std::fflush(stdout);
        }
        return 0;
    }
    return run_case(argc, argv);
}

namespace
{

int run_case(int argc, char **argv)
{
    if (argc < 10) {
        std::fprintf(stderr, "usage: augment_dump CONFIG SEED EPOCH C H W IN.u8 OUT_DIR ROW [ROW ...]\n");
        return 2;
    }
    grid_samples = 0;
    const uint64_t seed = std::strtoull(argv[2], nullptr, 10);
    const int epoch = std::atoi(argv[3]), C = std::atoi(argv[4]), H = std::atoi(argv[5]), W = std::atoi(argv[6]);
    const std::string in = argv[7], out_dir = argv[8];
    std::vector<int64_t> rows;
    for (int i = 9; i < argc; i++)
        rows.push_back(std::strtoll(argv[i], nullptr, 10));
    const int B = (int)rows.size();
    const char *device = std::getenv("FOLDLINE_TEST_DEVICE") ? std::getenv("FOLDLINE_TEST_DEVICE") : "cpu";

    fl_error err;
    fl_error_clear(&err);
    std::vector<fl_train_config> cfg(1); // large: on the heap
    if (fl_config_load(argv[1], nullptr, 0, cfg.data(), &err))
        return fail("config", err);
    const size_t n = (size_t)B * C * H * W;
    std::vector<uint8_t> x(n);
    FILE *f = std::fopen(in.c_str(), "rb");
    if (!f || std::fread(x.data(), 1, n, f) != n) {
        std::fprintf(stderr, "augment_dump: %s: expected %zu bytes\n", in.c_str(), n);
        return 1;
    }
    std::fclose(f);

    std::vector<fl_augment> aug((size_t)B);
    fl_augment_draw(fl_augment_stage_at(&cfg[0].models[0], epoch), seed, epoch, rows.data(), B, aug.data());
    std::vector<float> out(n);
    at::CallbackHandle h = at::addGlobalCallback(at::RecordFunctionCallback(count_grid_samples));
    fl_code rc = fl_torch_augment_batch(x.data(), B, C, H, W, aug.data(), device, out.data(), &err);
    at::removeCallback(h);
    if (rc)
        return fail("augment", err);
    if (!write_file(out_dir + "/out.f32", out.data(), sizeof(float) * n))
        return std::fprintf(stderr, "augment_dump: cannot write %s/out.f32\n", out_dir.c_str()), 1;

    std::string js =
        "{\"grid_samples\": " + std::to_string(grid_samples) + ", \"device\": \"" + device + "\", \"images\": [\n";
    std::vector<float> noise((size_t)2 * H * W);
    for (int i = 0; i < B; i++) {
        js += std::string(i ? ",\n" : "") + "{\"row\": " + std::to_string(rows[(size_t)i]) + ", \"ops\": [";
        for (int k = 0; k < aug[(size_t)i].n_ops; k++) {
            const fl_aug_draw &d = aug[(size_t)i].ops[k];
            js += (k ? ", " : "") + draw_json(d);
            if (d.kind != FL_AUG_ELASTIC)
                continue;
            if (fl_torch_elastic_noise(d.elastic.noise_key, H, W, device, noise.data(), &err))
                return fail("noise", err);
            std::string path = out_dir + "/noise_" + std::to_string(i) + "_" + std::to_string(k) + ".f32";
            if (!write_file(path, noise.data(), sizeof(float) * noise.size()))
                return std::fprintf(stderr, "augment_dump: cannot write %s\n", path.c_str()), 1;
        }
        js += "]}";
    }
    js += "\n]}\n";
    if (!write_file(out_dir + "/draws.json", js.data(), js.size()))
        return std::fprintf(stderr, "augment_dump: cannot write %s/draws.json\n", out_dir.c_str()), 1;
    return 0;
}

} // namespace
