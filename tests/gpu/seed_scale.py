#!/usr/bin/env python3
"""seed_scale.py -- the arithmetic of tests/gpu/seed_scale.sh, run with the torch 2.x Python.

    seed_scale.py peak DEVICE N                 matrix-product peak: torch.matmul of N x N in bf16 and
                                                fp32 on DEVICE; prints "BF16_TFLOPS FP32_TFLOPS"
    seed_scale.py flops MODEL IMG               forward FLOPs per image of timm's MODEL (num_classes=0)
                                                at IMG px, counted by torch.utils.flop_counter on the
                                                meta device (no weights, no memory); prints GFLOPs
    seed_scale.py project KEY=VALUE...          the seed's 3-model ensemble in device-hours from the
                                                measured figures (below); prints one line per model and
                                                a "total" line

project's figures: rows, test (the seed's test images), fwd_l, fwd_g (images/s of the bf16 forward of
EVA02-L/448 and EVA-g/336), epoch_l (seconds of one measured fold-fused epoch of EVA02-L, 5 heads,
augmented, over `rows_measured` rows), fill_l (seconds of its cache fill over `rows_measured` rows). The
seed (configs/sketch_seed.cfg): eva02_l_linear 30 augmented epochs, eva_g_linear 30 augmented epochs,
eva02_l_mlp3_curriculum 5 epochs without augmentation (from the cache) then 15 augmented; each model one
fold-fused job of 5 heads, one cache fill, one pass over the test set. EVA-g's epochs are EVA02-L's
measured epoch scaled by the ratio of the forward rates; a cached epoch costs the heads only (counted as
2% of an augmented epoch, an upper bound of what the measured run shows).
"""
import sys
import time


def peak(device, n):
    import torch

    dev = torch.device(device)
    out = []
    for dtype in (torch.bfloat16, torch.float32):
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak is fp32's, not TF32's
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        reps = 3 if dev.type == "cpu" else 20
        for _ in range(2):
            torch.matmul(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out.append(2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12)
    print("%.4g %.4g" % tuple(out))


def flops(model, img):
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        m = timm.create_model(model, pretrained=False, num_classes=0, img_size=img).eval()
        x = torch.empty(1, 3, img, img)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    print("%.2f" % (fc.get_total_flops() / 1e9))


def project(args):
    v = {k: float(x) for k, x in (a.split("=", 1) for a in args)}
    rows, test, meas = v["rows"], v["test"], v["rows_measured"]
    ep_l = v["epoch_l"] * rows / meas  # one augmented fold-fused epoch of EVA02-L over the seed's rows
    fill_l = v["fill_l"] * rows / meas
    g_over_l = v["fwd_l"] / v["fwd_g"]  # EVA-g's images cost this many EVA02-L images
    test_l, test_g = test / v["fwd_l"], test / v["fwd_g"]
    cached = 0.02 * ep_l
    models = [
        ("eva02_l_linear", fill_l + 30 * ep_l + test_l),
        ("eva_g_linear", g_over_l * (fill_l + 30 * ep_l) + test_g),
        ("eva02_l_mlp3_curriculum", fill_l + 5 * cached + 15 * ep_l + test_l),
    ]
    total = 0.0
    for name, s in models:
        total += s
        print("%s %.3f" % (name, s / 3600))
    print("total %.3f" % (total / 3600))


def main(argv):
    if len(argv) >= 3 and argv[0] == "peak":
        peak(argv[1], int(argv[2]))
    elif len(argv) == 3 and argv[0] == "flops":
        flops(argv[1], int(argv[2]))
    elif argv and argv[0] == "project":
        project(argv[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
