#!/usr/bin/env python3
"""A TorchScript module written by torch 2.x that libtorch 1.13 cannot read (a real timm EVA02,
whose attention is aten::scaled_dot_product_attention) is refused by the libtorch 1.13 build of
`foldline train` in one line naming both versions and what to do: with the writer's version when
launch/export_timm.py recorded it, as "a torch newer than" when the module was saved by torch
itself. Exit status 1, never a crash. Needs both builds.

    FOLDLINE_REFERENCE_BUILD=build FOLDLINE_TORCH_PYTHON=VENV/bin/python python3 test_refused.py"""
import os
import re
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))
import t2  # noqa: E402
from common import write_data_file  # noqa: E402

MODEL = "eva02_tiny_patch14_224"


class RefusedByLibtorch113(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t2.need_py2()
        cls.old = t2.need_ref("foldline")
        rc, out, err = t2.run([cls.old, "--version"])
        cls.old_torch = re.search(r"^libtorch (\S+)", out, re.M).group(1)
        if not cls.old_torch.startswith("1."):
            t2.skip(f"the reference build's libtorch is {cls.old_torch}, not 1.x")
        rc, out, err = t2.py2("-c", "import torch; print(torch.__version__)")
        cls.new_torch = out.strip()
        cls._tmp = tempfile.TemporaryDirectory(prefix="fl-t2-refused-")
        cls.tmp = cls._tmp.name
        cls.data = os.path.join(cls.tmp, "d.h5")
        write_data_file(cls.data, n_per_class=4, folds=2, n_test=2, size=28)

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def train(self, module):
        cfg = os.path.join(self.tmp, "run.cfg")
        with open(cfg, "w") as f:
            f.write(f"""run = {{ name = "r"; out_dir = "{self.tmp}/runs"; seed = 1; threads = 1; }};
data = {{ file = "{self.data}"; mean = [0.5]; std = [0.25]; }};
models = ( {{ name = "m"; backbone = "torchscript:{module}"; epochs = 1; batch = 4;
             optimizer = {{ type = "adam"; lr = 1e-3; }}; }} );
""")
        rc, out, err = t2.run([self.old, "train", cfg], timeout=300)
        self.assertEqual(rc, 1, out + err)  # an error, not a signal
        lines = [ln for ln in (out + err).split("\n") if module in ln]
        self.assertEqual(len(lines), 1, out + err)
        self.assertNotIn("terminate called", err)
        return lines[0]

    def test_exported_by_export_timm_names_the_writers_torch_and_ours(self):
        path = os.path.join(self.tmp, "eva02_tiny.pt")
        rc, out, err = t2.py2(t2.EXPORT, MODEL, path, "--no-pretrained")
        self.assertEqual(rc, 0, err)
        line = self.train(path)
        self.assertIn(f"was written by torch {self.new_torch}, which this foldline's libtorch {self.old_torch} "
                      "cannot read (Unknown builtin op: aten::scaled_dot_product_attention", line)
        self.assertIn(f"HINT: export it again with torch {self.old_torch}", line)
        self.assertIn(f"or build foldline against torch {self.new_torch}", line)

    def test_saved_by_torch_itself_says_a_newer_torch(self):
        path = os.path.join(self.tmp, "plain.pt")
        rc, out, err = t2.py2(t2.ORACLE, "jit_save", MODEL, path)
        self.assertEqual(rc, 0, err)
        line = self.train(path)
        self.assertIn(f"was written by a torch newer than this foldline's libtorch {self.old_torch}", line)
        self.assertIn("HINT: export it again with torch", line)


if __name__ == "__main__":
    unittest.main(verbosity=2)
