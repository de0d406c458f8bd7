#!/usr/bin/env python3
"""The seed's two real backbones, eva02_large_patch14_448.mim_m38m_ft_in22k_in1k (EVA02-L, 448 px)
and eva_giant_patch14_336.clip_ft_in1k (EVA-g, 336 px), with random weights (pretrained=False: no
model hub here), through launch/export_timm.py and the bridge built on torch 2.x on the CPU: the
features foldline computes for 2 images equal timm's own pre-logits features within 1e-4 relative in
float32. Minutes and several GB of memory each (label "slow"); the times are printed.

    SCRIPT_MODEL=build-torch2/script_model FOLDLINE_TORCH_PYTHON=VENV/bin/python python3 test_timm_large.py"""
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import t2  # noqa: E402

TOL = 1e-4


class SeedBackbones(unittest.TestCase):
    def setUp(self):
        t2.need_py2()
        self._tmp = tempfile.TemporaryDirectory(prefix="fl-t2-large-")

    def tearDown(self):
        self._tmp.cleanup()

    def check(self, name, size, dim):
        path = os.path.join(self._tmp.name, "m.pt")
        t0 = time.time()
        rc, out, err = t2.py2(t2.EXPORT, name, path, "--no-pretrained", "--check-batches", "1")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("(B, 3, %d, %d) -> (B, %d) features" % (size, size, dim), out)
        t1 = time.time()
        got_dim, got = t2.script_model(t2.SCRIPT_MODEL, path, 3, size)
        t2_ = time.time()
        rc, out, err = t2.py2(t2.ORACLE, "features", name, path, size)
        self.assertEqual(rc, 0, err)
        want = [float(v) for v in out.split()]
        diff = t2.rel_diff(got, want)
        print(f"{name}: D {got_dim}, foldline vs timm {diff:.2e} of the largest feature; export {t1 - t0:.0f} s, "
              f"foldline {t2_ - t1:.0f} s, timm {time.time() - t2_:.0f} s")
        self.assertEqual(got_dim, dim)
        self.assertLess(diff, TOL)

    def test_eva02_large_448(self):
        self.check("eva02_large_patch14_448.mim_m38m_ft_in22k_in1k", 448, 1024)

    def test_eva_giant_336(self):
        self.check("eva_giant_patch14_336.clip_ft_in1k", 336, 1408)


if __name__ == "__main__":
    unittest.main(verbosity=2)
