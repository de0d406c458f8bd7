#!/usr/bin/env python3
"""configs/sketch_seed.cfg, the frozen fold-fused recipe, end to end on the build against torch 2.x
with the real EVA02 architecture: timm's eva02_tiny_patch14_224 (random weights; the tiny one stands
in for EVA02-L and EVA-g, whose architecture it shares at a smaller width and depth) exported by
launch/export_timm.py at 448 and 336 px to the paths the config names, tiny data files (15 rows in 5
folds, 4 test rows) at its data paths, every one of the 5 folds, 1 epoch per model (11 for the curriculum
model, so that each of its stages runs; --set), on the CPU:
each model is one fused job whose heads all train, and the run votes hard-hard.

    FOLDLINE=build-torch2/foldline FOLDLINE_TORCH_PYTHON=VENV/bin/python python3 test_recipe.py"""
import os
import re
import shutil
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
import t2  # noqa: E402
from fltest.train import TempDirTest, write_recipe_data as write_data  # noqa: E402


class SketchSeedWithEva02(TempDirTest):
    def test_sketch_seed_trains_every_fold_fused_with_eva02_and_votes(self):
        t2.need_py2()
        for d in ("configs", "models", "data"):
            os.makedirs(self.path(d))
        for name, size in (("eva02_large_patch14_448", 448), ("eva_giant_patch14_336", 336)):
            rc, out, err = t2.py2(t2.EXPORT, "eva02_tiny_patch14_224", self.path("models", name + ".pt"),
                                  "--no-pretrained", "--img-size", size)
            self.assertEqual(rc, 0, err)
            self.assertIn("(B, 3, %d, %d) -> (B, 192) features" % (size, size), out)
            write_data(self.path("data", "sketch%d.h5" % size), size)
        shutil.copy(os.path.join(t2.ROOT, "configs", "sketch_seed.cfg"), self.path("configs"))
        with open(self.path("configs", "sketch_seed.cfg")) as f:
            text = f.read()
        found = list(re.finditer(r'^\s*name = "([^"]+)";', text, re.M))
        models = [f.group(1) for f in found]
        self.assertEqual(models, ["eva02_l_linear", "eva_g_linear", "eva02_l_mlp3_curriculum"])
        sets = ["--set", "run.threads=2", "--set", "run.out_dir=runs"]
        for i, f in enumerate(found):
            # 1 epoch, or one past a curriculum's last stage (a stage that never runs is refused)
            block = text[f.start():found[i + 1].start() if i + 1 < len(found) else len(text)]
            last = max([int(e) for e in re.findall(r"from_epoch = (\d+)", block)] or [0])
            sets += ["--set", "models.%s.epochs=%d" % (f.group(1), last + 1)]
        t0 = time.time()
        rc, out, err = t2.run([t2.FOLDLINE, "train", "configs/sketch_seed.cfg"] + sets, cwd=self.tmp, timeout=900)
        print(f"sketch_seed.cfg with EVA02 (tiny) at 448 and 336 px: {time.time() - t0:.1f} s")
        self.assertEqual(rc, 0, out + err)
        for m in models:
            self.assertIn("[%s folds 0,1,2,3,4] fused: one frozen backbone pass per batch" % m, out)
            for k in range(5):
                self.assertTrue(os.path.exists(self.path("runs", "sketch_seed", m, "fold%d" % k, "preds.h5")),
                                (m, k))
        self.assertTrue(os.path.exists(self.path("runs", "sketch_seed", "ensemble", "submission.csv")))
        self.assertIn("(3, 448, 448) images", out)
        self.assertIn("(3, 336, 336) images", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
