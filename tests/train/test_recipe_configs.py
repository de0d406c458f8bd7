#!/usr/bin/env python3
"""configs/sketch_seed.cfg and configs/sketch_finetune.cfg load through the real config
loader and train: each is copied into a temp directory as configs/<name>.cfg beside tiny
stand-in TorchScript modules at the paths it names (../models/*.pt from configs/) and
small data files at its data paths (data/sketch448.h5, data/sketch336.h5: 448 and 336 px,
3 channels, 5 folds, a few rows), then `foldline train configs/<name>.cfg` runs from that
directory with --set overrides of epochs (1, or one past a curriculum's last stage), folds.use ([0]), threads and out_dir only;
every model trains on its own data file and the run votes with the config's method.

The modules are written with Debian's python3-torch; skipped (77) without it."""
import os
import re
import shutil
import sys
import unittest

try:
    import torch
    import torch.nn as nn
except ImportError as e:
    print(f"skipped: {e}; HINT: apt-get install python3-torch")
    sys.exit(77)

import h5py
import numpy as np

from fltest.train import TempDirTest, run, write_recipe_data as write_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(path) as f:
        return f.read()


class TinyBackbone(nn.Module):
    """(B, 3, H, W) -> (B, 16): a strided conv, pooled; stands in for an EVA backbone."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 8, stride=8)
        self.fc = nn.Linear(4 * 2 * 2, 16)

    def forward(self, x):
        return torch.relu(self.fc(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2).flatten(1)))


class RecipeConfigs(TempDirTest):
    def setUp(self):
        super().setUp()
        os.makedirs(self.path("configs"))
        os.makedirs(self.path("models"))
        os.makedirs(self.path("data"))
        torch.manual_seed(0)
        for name in ("eva02_large_patch14_448", "eva_giant_patch14_336"):
            torch.jit.script(TinyBackbone()).save(self.path("models", name + ".pt"))
        write_data(self.path("data", "sketch448.h5"), 448)
        write_data(self.path("data", "sketch336.h5"), 336)

    def train(self, name, method):
        shutil.copy(os.path.join(REPO, "configs", name + ".cfg"), self.path("configs"))
        text = read(self.path("configs", name + ".cfg"))
        found = list(re.finditer(r'^\s*name = "([^"]+)";', text, re.M))
        models = [f.group(1) for f in found]
        sets = ["--set", "folds.use=[0]", "--set", "run.threads=1", "--set", "run.out_dir=runs"]
        for i, f in enumerate(found):
            # As few epochs as keep every augmentation stage (an unreachable stage is refused):
            # 1, or one past a curriculum's last from_epoch.
            block = text[f.start():found[i + 1].start() if i + 1 < len(found) else len(text)]
            last = max([int(e) for e in re.findall(r"from_epoch = (\d+)", block)] or [0])
            sets += ["--set", "models.%s.epochs=%d" % (f.group(1), last + 1)]
        rc, out, err = run("train", "configs/%s.cfg" % name, *sets, cwd=self.tmp)
        self.assertEqual(rc, 0, out + err)
        run_dir = self.path("runs", name)
        for m in models:
            self.assertTrue(os.path.exists(os.path.join(run_dir, m, "fold0", "preds.h5")), m)
        self.assertIn("vote_method = \"%s\"" % method, read(os.path.join(run_dir, "run.cfg")))
        self.assertTrue(os.path.exists(os.path.join(run_dir, "ensemble", "submission.csv")))
        self.assertIn("(3, 336, 336) images", out)
        return models, run_dir

    def test_sketch_seed_cfg_loads_trains_every_model_and_votes_hard_hard(self):
        models, run_dir = self.train("sketch_seed", "hard-hard")
        self.assertEqual(models, ["eva02_l_linear", "eva_g_linear", "eva02_l_mlp3_curriculum"])
        s = read(os.path.join(run_dir, "eva_g_linear", "fold0", "settings.txt"))
        self.assertIn("3x336x336, 5 folds", s)
        self.assertIn("data.mean = 0.485 0.456 0.406\n", s)
        s = read(os.path.join(run_dir, "eva02_l_mlp3_curriculum", "fold0", "settings.txt"))
        self.assertIn("3x448x448, 5 folds", s)
        self.assertIn("schedule = step step_size 5 gamma 0.5", s)

    def test_sketch_finetune_cfg_loads_trains_every_model_and_votes_soft_soft(self):
        models, run_dir = self.train("sketch_finetune", "soft-soft")
        self.assertEqual(models, ["eva02_l_ft", "eva_g_ft"])
        s = read(os.path.join(run_dir, "eva02_l_ft", "fold0", "settings.txt"))
        self.assertIn("freeze_backbone = 0", s)
        self.assertIn("label_smoothing = 0.1\n", s)


if __name__ == "__main__":
    unittest.main(verbosity=2)
