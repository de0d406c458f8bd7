#!/usr/bin/env python3
"""tests/gpu/seed_scale.sh's dry run (SEED_SCALE_DRY=1): the H200 script's whole flow on the CPU with
tiny sizes against this build (torch 2.x) and its virtual environment's Python: the matmul peak, the
export of two (tiny) EVA backbones, their FLOPs, the forward rates through bench_model, a prepped data
file, one fold-fused epoch with the device cache, the MFU and the projection, each in its one line,
and the summary table. The figures mean nothing on this CPU; every stage must give one."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from t2 import FOLDLINE, PY2, ROOT, need_py2, skip  # noqa: E402

SCRIPT = os.path.join(ROOT, "tests", "gpu", "seed_scale.sh")


class SeedScaleDry(unittest.TestCase):
    def test_every_stage_prints_its_figure_and_the_table(self):
        need_py2()
        if not FOLDLINE or not os.access(FOLDLINE, os.X_OK):
            skip("no FOLDLINE")
        build = os.path.dirname(os.path.abspath(FOLDLINE))
        if not os.access(os.path.join(build, "bench_model"), os.X_OK):
            skip("no bench_model in " + build)
        out = tempfile.mkdtemp(prefix="foldline-seed-scale-")
        try:
            env = dict(os.environ, SEED_SCALE_DRY="1", SEED_SCALE_BUILD=build, FOLDLINE_TORCH_PYTHON=PY2,
                       SEED_SCALE_BUDGET_S="300")
            p = subprocess.run(["bash", SCRIPT, out], env=env, capture_output=True, text=True, timeout=600)
            text = p.stdout
            self.assertEqual(p.returncode, 0, text[-3000:] + p.stderr[-2000:])
            self.assertIn("DRY RUN on the CPU", text)
            for line in [r"peak_bf16: torch\.matmul 512\^2: bf16 [\d.e+-]+ TFLOP/s, fp32 [\d.e+-]+ TFLOP/s",
                         r"export_l: eva02_tiny_patch14_224 exported in \d+ s",
                         r"gflops_l: forward GFLOPs per image: EVA02-L [\d.]+, EVA-g [\d.]+",
                         r"fwd_l_bf16: [\d.]+ images/s forward \(bf16, batch 4, cpu\)",
                         r"fwd_l_fp32: [\d.]+ images/s forward \(fp32, batch 4, cpu\)",
                         r"data: 60 rows at 28 px \(\+10 test\) made and prepped",
                         r"epoch_l: one fold-fused epoch, 5 heads, augmented: [\d.]+ s for 60 rows; cache fill [\d.]+ s",
                         r"export_g: eva02_tiny_patch14_224 exported",
                         r"fwd_g_bf16: [\d.]+ images/s forward", r"fwd_g_fp32: [\d.]+ images/s forward",
                         r"allreduce: skipped \(dry run: NCCL needs a GPU\)",
                         r"mfu_l: EVA02-L bf16 forward at [\d.]+% of the measured bf16 matmul peak; EVA-g",
                         r"project: the seed's ensemble .*: [\d.]+ GPU-hours \(goal < 1\)"]:
                self.assertRegex(text, "seed_scale: " + line, text[-3000:])
            # The fused epoch ran the device-resident path with the cache on the (CPU) device.
            self.assertIn("device-resident: features, labels and 5 heads on cpu", text)
            self.assertRegex(text, r"feature cache: 60 of 60 train rows x 192 features \(\d+ MB, float32\) on the device cpu")
            table = text[text.index("seed_scale summary"):]
            for name in ("peak_bf16", "gflops_l", "fwd_l_bf16", "epoch_l", "mfu_l", "project"):
                self.assertRegex(table, r"\n  %s +[\d.e+-]+\n" % name)
            self.assertIn("every stage gave its figure", table)
            # FLOPs of eva02_tiny at 28 px (4 patches + the class token, 12 blocks of width 192) are far
            # below a GFLOP, and at 42 px above the 28 px count.
            m = re.search(r"EVA02-L ([\d.]+), EVA-g ([\d.]+)", text)
            self.assertLess(float(m.group(1)), float(m.group(2)))
            self.assertLess(float(m.group(2)), 1.0)
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
