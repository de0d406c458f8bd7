#!/usr/bin/env python3
"""`foldline train` with backbone = "torchscript:PATH", end to end on a small data file:
a traced module frozen (its checkpoints hold the head alone; its predictions are the module's
features through that head, computed again in torch) and a scripted one trained, each found relative to the config file's folder; and every way a module is
refused before any job starts, in one line naming the config file, line and key (the
config-only errors, an empty path or a bad backbone_lr_scale, are tests/unit/test_config.c's).

The modules are written with Debian's python3-torch; skipped (77) without it."""
import os
import re
import sys
import unittest

import h5py
import numpy as np

try:
    import torch
    import torch.nn as nn
except ImportError as e:
    print(f"skipped: {e}; HINT: apt-get install python3-torch")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TempDirTest, config_text, run, write_data_file  # noqa: E402

SIZE = 16  # the data file's images: (N, 1, 16, 16)


class TinyCnn(nn.Module):
    """Conv-BN-ReLU pooled to 4x4 cells, then Linear: (B, ch, H, W) -> (B, 16)."""

    def __init__(self, ch=1):
        super().__init__()
        self.conv = nn.Conv2d(ch, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return torch.relu(self.fc(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)))


class Unpooled(nn.Module):
    """Returns (B, 8, 1, 1): the features are not flattened."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(self.conv(x), 1)


class TwoOutputs(nn.Module):
    """Returns a tuple (features, features)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        return y, y


def tensors_of(module):
    named = dict(module.named_parameters())
    named.update(dict(module.named_buffers()))
    return named


def checkpoint_backbone(path):
    """The backbone tensors of a foldline checkpoint, by the module's own names."""
    named = tensors_of(torch.jit.load(path, map_location="cpu"))
    return {k[len("net.backbone."):]: v for k, v in named.items() if k.startswith("net.backbone.")}


class TorchScriptTrain(TempDirTest):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.tiny = TinyCnn().eval()
        cls.scripted = TinyCnn()

    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=12, size=SIZE)
        os.mkdir(self.path("cfg"))

    def model(self, backbone, extra="", name="m"):
        return """{ name = "%s"; backbone = "%s"; epochs = 1; batch = 16;
      optimizer = { type = "adam"; lr = 3e-3; }; %s }""" % (name, backbone, extra)

    def config(self, backbone, extra="", models=None):
        """cfg/run.cfg: modules named relatively are looked for in cfg/."""
        text = config_text(self.data, self.path("runs"), models=models or [self.model(backbone, extra)])
        return self.write(os.path.join("cfg", "run.cfg"), text), text

    def fails(self, backbone, *needles, extra="", status=1):
        cfg, text = self.config(backbone, extra)
        rc, out, err = run("train", cfg, cwd=self.tmp)
        lines = err.strip().splitlines()
        self.assertEqual(rc, status, err)
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("foldline: error: "), err)
        for n in needles:
            self.assertIn(n, lines[0])
        # the dry run comes before the first write of the run: no run directory, no run.cfg
        self.assertFalse(os.path.exists(self.path("runs")), "a refused run wrote something")
        self.assertEqual(out.count("[m fold"), 0, out)
        return lines[0]

    def line_of(self, text, needle):
        return next(i + 1 for i, l in enumerate(text.splitlines()) if needle in l)

    def test_frozen_traced_and_trained_scripted_modules_train_end_to_end(self):
        # One run, two models: "frozen", a traced module with freeze_backbone, and
        # "trained", a scripted one fine-tuned at half the head's lr.
        torch.jit.trace(self.tiny, torch.zeros(2, 1, SIZE, SIZE)).save(self.path("cfg", "tiny.pt"))
        torch.jit.script(self.scripted).save(self.path("cfg", "scripted.pt"))
        cfg, _ = self.config(None, models=[
            self.model("torchscript:tiny.pt", "freeze_backbone = true;", name="frozen"),
            self.model("torchscript:scripted.pt", "backbone_lr_scale = 0.5;", name="trained")])
        rc, out, err = run("train", cfg, cwd=self.tmp)  # not cfg/: the paths are the config's
        self.assertEqual(rc, 0, err)
        for m in ("frozen", "trained"):
            for k in (0, 1):
                self.assertTrue(os.path.exists(self.path("runs", "t", m, "fold%d" % k, "preds.h5")))
        self.assertTrue(os.path.exists(self.path("runs", "t", "ensemble", "submission.csv")))
        self.assertIn("model frozen: TorchScript backbone %s, (B, 1, 16, 16) -> (B, 16) features, frozen"
                      % os.path.join(self.path("cfg"), "tiny.pt"), out)
        self.assertIn("model trained: TorchScript backbone %s, (B, 1, 16, 16) -> (B, 16) features, trained at "
                      "lr x 0.5" % os.path.join(self.path("cfg"), "scripted.pt"), out)
        # Frozen: the checkpoints hold the head alone (the module file gives the backbone back),
        # and the predictions are the exported module's features through that head: an
        # independent forward pass in torch of every OOF row and test row.
        with h5py.File(self.data) as f:
            train_x, test_x = f["train/images"][:], f["test/images"][:]
        for k in (0, 1):
            for ckpt in ("last", "best_acc", "best_loss"):
                path = self.path("runs", "t", "frozen", "fold%d" % k, ckpt + ".pt")
                self.assertEqual(checkpoint_backbone(path), {})
            with h5py.File(self.path("runs", "t", "frozen", "fold%d" % k, "preds.h5")) as f:
                rows, oof, test, which = f["oof/index"][:], f["oof/probs"][:], f["test/probs"][:], f.attrs["checkpoint"]
            head = tensors_of(torch.jit.load(self.path("runs", "t", "frozen", "fold%d" % k, "%s.pt" % which),
                                             map_location="cpu"))
            for x, want in ((train_x[rows], oof), (test_x, test)):
                with torch.no_grad():
                    feats = self.tiny((torch.from_numpy(x).float() / 255 - 0.5) / 0.25)
                    probs = torch.softmax(feats @ head["net.head.0.weight"].T + head["net.head.0.bias"], 1)
                np.testing.assert_allclose(want, probs.numpy(), rtol=0, atol=1e-5)
        # Trained: weights and batch-norm statistics (train mode) moved.
        saved = checkpoint_backbone(self.path("runs", "t", "trained", "fold0", "last.pt"))
        start = tensors_of(self.scripted)
        self.assertEqual(set(saved), set(start))
        self.assertGreater((saved["conv.weight"] - start["conv.weight"]).abs().max().item(), 1e-4)
        self.assertFalse(torch.equal(saved["bn.running_mean"], start["bn.running_mean"]))

    def test_a_module_replaced_under_the_same_name_is_a_changed_setting(self):
        # settings.txt records the module's size and a hash of its bytes: another valid
        # module saved over it (same architecture, other weights) is refused on a rerun,
        # naming the key and both values; the original bytes back (a new file) are accepted.
        module = self.path("cfg", "net.pt")
        torch.jit.script(self.scripted).save(module)
        with open(module, "rb") as f:
            original = f.read()
        cfg, _ = self.config("torchscript:net.pt")
        rc, out, err = run("train", cfg, cwd=self.tmp)
        self.assertEqual(rc, 0, err)
        settings = self.path("runs", "t", "m", "fold0", "settings.txt")
        with open(settings) as f:
            saved = next(l for l in f.read().splitlines() if l.startswith("models.m.backbone = "))
        self.assertRegex(saved, r"^models\.m\.backbone = torchscript:%s bytes %d hash [0-9a-f]{16}$"
                         % (re.escape(module), len(original)))
        torch.manual_seed(1)
        torch.jit.script(TinyCnn()).save(module + ".new")
        os.replace(module + ".new", module)
        rc, out, err = run("train", cfg, cwd=self.tmp)
        lines = err.strip().splitlines()
        self.assertEqual(rc, 1, err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("%s: the run was trained with %s, the config now gives torchscript:%s bytes "
                      % (settings, saved, module), lines[0])
        now = re.search(r"the config now gives (\S+ bytes \d+ hash [0-9a-f]{16})", lines[0]).group(1)
        self.assertNotEqual(now, saved.split(" = ", 1)[1])
        self.assertIn("HINT", lines[0])
        with open(module + ".new", "wb") as f:
            f.write(original)
        os.replace(module + ".new", module)
        rc, out, err = run("train", cfg, cwd=self.tmp)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("complete (preds.h5 exists), skipped"), 2, out)

    def test_missing_module_names_the_config_line_and_the_folder(self):
        cfg, text = self.config("torchscript:nope.pt")
        line = self.fails("torchscript:nope.pt", "run.cfg:%d: models.[0].backbone" % self.line_of(text, "nope.pt"),
                          os.path.join(self.path("cfg"), "nope.pt"), "No such file",
                          "relative path starts at the config file's folder", status=2)  # a config mistake
        self.assertIn("HINT", line)
        absolute = self.path("elsewhere", "nope.pt")
        line = self.fails("torchscript:" + absolute, absolute, "the path is absolute", status=2)
        self.assertNotIn("relative path", line)

    def test_a_file_that_is_not_torchscript_is_refused(self):
        with open(self.path("cfg", "junk.pt"), "wb") as f:
            f.write(b"not a zip archive at all" * 10)
        self.fails("torchscript:junk.pt", "run.cfg:", "models.[0].backbone", "junk.pt is not a TorchScript module",
                   "HINT")

    def test_a_state_dict_is_not_a_torchscript_module(self):
        torch.save(self.tiny.state_dict(), self.path("cfg", "weights.pt"))
        self.fails("torchscript:weights.pt", "weights.pt is not a TorchScript module", "state_dict")

    def test_features_that_are_not_2d_are_refused(self):
        torch.jit.script(Unpooled()).save(self.path("cfg", "unpooled.pt"))
        self.fails("torchscript:unpooled.pt", "models.[0].backbone", "a tensor (2, 8, 1, 1)", "(B, D)", "HINT")

    def test_a_tuple_of_outputs_is_refused(self):
        torch.jit.script(TwoOutputs()).save(self.path("cfg", "tuple.pt"))
        self.fails("torchscript:tuple.pt", "a tuple of 2", "(B, D)")

    def test_a_module_for_other_channels_is_refused_with_the_numbers(self):
        torch.jit.script(TinyCnn(ch=3)).save(self.path("cfg", "rgb.pt"))
        self.fails("torchscript:rgb.pt", "models.[0].backbone", "does not accept",
                   "(2, 1, 16, 16)", "to have 3 channels, but got 1", "HINT", "--channels 1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
