#!/usr/bin/env python3
"""A real timm EVA02 (eva02_tiny_patch14_224, random weights) through launch/export_timm.py and the
bridge built on torch 2.x: the features foldline computes (fl_model_features, through
tests/unit/script_model) equal timm's own pre-logits features, forward_head(forward_features(x),
pre_logits=True), within 1e-4 relative in float32, for a checkpoint brought with --weights and at
another --img-size; the module records the torch and timm that wrote it; a checkpoint of another
model is refused in one line.

    SCRIPT_MODEL=build-torch2/script_model FOLDLINE_TORCH_PYTHON=VENV/bin/python python3 test_timm.py"""
import os
import sys
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import t2  # noqa: E402

MODEL = "eva02_tiny_patch14_224"
TOL = 1e-4


class TimmEva02Tiny(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t2.need_py2()
        cls._tmp = tempfile.TemporaryDirectory(prefix="fl-t2-timm-")
        cls.tmp = cls._tmp.name
        cls.state = os.path.join(cls.tmp, "state.pt")
        rc, out, err = t2.py2(t2.ORACLE, "save", MODEL, cls.state)
        assert rc == 0, err

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def export(self, out, *args):
        rc, stdout, err = t2.py2(t2.EXPORT, MODEL, out, *args)
        self.assertEqual(rc, 0, stdout + err)
        return stdout

    def compare(self, path, size):
        dim, got = t2.script_model(t2.SCRIPT_MODEL, path, 3, size)
        rc, out, err = t2.py2(t2.ORACLE, "features", MODEL, self.state, size)
        self.assertEqual(rc, 0, err)
        want = [float(v) for v in out.split()]
        self.assertEqual(dim, 192)
        self.assertEqual(len(want), 2 * dim)
        self.assertNotEqual(want[:dim], want[dim:])  # two images, two feature vectors
        self.assertGreater(max(abs(v) for v in want), 1e-3)
        diff = t2.rel_diff(got, want)
        print(f"{MODEL} at {size}: foldline vs timm, largest difference {diff:.2e} of the largest feature")
        self.assertLess(diff, TOL)

    def test_weights_file_features_equal_timms_forward(self):
        path = os.path.join(self.tmp, "eva02_tiny.pt")
        out = self.export(path, "--weights", self.state)
        self.assertIn("(B, 3, 224, 224) -> (B, 192) features", out)
        self.assertIn("(weights %s, scripted)" % self.state, out)
        with zipfile.ZipFile(path) as z:
            rec = [n for n in z.namelist() if n.endswith("/extra/foldline_export.txt")]
            self.assertEqual(len(rec), 1, z.namelist()[:5])
            text = z.read(rec[0]).decode()
        self.assertRegex(text, r"^torch 2\.\d+\.\d+.*\ntimm 1\.\d+\.\d+\nmodel eva02_tiny_patch14_224\n$")
        self.compare(path, 224)

    def test_other_img_size_features_equal_timms_forward(self):
        path = os.path.join(self.tmp, "eva02_tiny_112.pt")
        # the checkpoint holds 224's position embedding: timm's own resampling is not export_timm's,
        # so this one is exported with the weights the oracle makes at 112 itself
        state = os.path.join(self.tmp, "state112.pt")
        rc, out, err = t2.py2(t2.ORACLE, "save", MODEL, state, 112)
        self.assertEqual(rc, 0, err)
        out = self.export(path, "--weights", state, "--img-size", "112")
        self.assertIn("(B, 3, 112, 112) -> (B, 192) features", out)
        self.state, saved = state, self.state
        try:
            self.compare(path, 112)
        finally:
            self.state = saved

    def test_a_checkpoint_of_another_model_is_refused_in_one_line(self):
        other = os.path.join(self.tmp, "other.pt")
        rc, out, err = t2.py2(t2.ORACLE, "save", "eva02_tiny_patch14_336", other)
        self.assertEqual(rc, 0, err)
        rc, out, err = t2.py2(t2.EXPORT, MODEL, os.path.join(self.tmp, "x.pt"), "--weights", other)
        self.assertEqual(rc, 1)
        lines = err.strip().split("\n")
        self.assertEqual(len(lines), 1, err)
        self.assertIn("does not fit", lines[0])
        self.assertIn("of another shape (first pos_embed)", lines[0])
        self.assertIn("HINT:", lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.pt")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
