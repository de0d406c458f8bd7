#!/usr/bin/env python3
"""run.precision and models.[i].precision in real foldline runs on the CPU: bf16 trains to the
fp32 accuracy within docs/gpus.md's margin (and is not the fp32 run), a stopped and resumed bf16
run (trained and frozen backbones) equals the uninterrupted one bit for bit, a precision change
on a resumed run is refused naming run.precision and both values, and fp16, unknown values and
wrong types are refused naming the file, line and key."""
import os
import sys
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_resume  # noqa: E402
from common import TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402

MARGIN = 0.03  # bf16's validation accuracy may trail fp32's by this much (docs/gpus.md)


def read(path):
    with open(path) as f:
        return f.read()


def model(name="m", epochs=3, extra=""):
    return model_text(name, epochs, extra).replace("batch = 32", "batch = 16")


class Precision(TempDirTest):
    # The stop-and-rerun helpers of test_resume.py (plain functions, shared rather than copied).
    start = test_resume.Resume.start
    wait_for_training = test_resume.Resume.wait_for_training
    interrupted_run = test_resume.Resume.interrupted_run
    whole_run = test_resume.Resume.whole_run
    assert_same_results = test_resume.Resume.assert_same_results

    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=200, size=24)

    def config(self, name, precision=None, models=None):
        text = config_text(self.data, self.path("runs"), name, models or [model()])
        if precision:
            text = text.replace("threads = 1;", 'threads = 1; precision = "%s";' % precision)
        return self.write(name + ".cfg", text)

    def val_acc(self, name, folds=(0, 1)):
        accs = []
        for k in folds:
            rows = read(self.path("runs", name, "m", "fold%d" % k, "metrics.csv")).splitlines()
            head = rows[0].split(",")
            accs.append(float(rows[-1].split(",")[head.index("val_acc")]))
        return float(np.mean(accs))

    def oof(self, name, k=0):
        with h5py.File(self.path("runs", name, "m", "fold%d" % k, "preds.h5")) as f:
            return f["oof/probs"][:]

    def test_bf16_reaches_the_fp32_accuracy_within_the_margin(self):
        for p in ("fp32", "bf16"):
            rc, out, err = run("train", self.config(p, p))
            self.assertEqual(rc, 0, err)
        a32, a16 = self.val_acc("fp32"), self.val_acc("bf16")
        print("validation accuracy: fp32 %.4f, bf16 %.4f" % (a32, a16))
        self.assertGreater(a32, 0.8)  # the task is learnt at all
        self.assertGreaterEqual(a16, a32 - MARGIN)
        self.assertFalse(np.array_equal(self.oof("fp32"), self.oof("bf16")))  # bf16 really ran
        self.assertIn("run.precision = bf16", read(self.path("runs", "bf16", "m", "fold0", "settings.txt")))

    def test_a_model_overrides_run_precision(self):
        models = [model("m", 1), model("n", 1, 'precision = "fp32";')]
        rc, out, err = run("train", self.config("o", "bf16", models))
        self.assertEqual(rc, 0, err)
        self.assertIn("run.precision = bf16", read(self.path("runs", "o", "m", "fold0", "settings.txt")))
        self.assertNotIn("precision", read(self.path("runs", "o", "n", "fold0", "settings.txt")))
        rc, out, err = run("train", self.config("plain", None, [model("n", 1)]))
        self.assertEqual(rc, 0, err)
        with h5py.File(self.path("runs", "o", "n", "fold0", "preds.h5")) as a, \
                h5py.File(self.path("runs", "plain", "n", "fold0", "preds.h5")) as b:
            self.assertTrue(np.array_equal(a["oof/probs"][:], b["oof/probs"][:]))  # n is fp32, bit for bit

    def test_a_stopped_bf16_run_resumes_bit_for_bit(self):
        m = [model(extra='predict_with = "last";')]
        whole = self.whole_run(self.config("whole", "bf16", m))
        stops = self.interrupted_run(self.config("cut", "bf16", m), [0.2, 0.3, 0.25, 0.15, 0.3], whole)
        self.assertGreaterEqual(len(stops), 2, stops)
        self.assert_same_results("whole", "cut")

    def test_a_stopped_fused_bf16_run_resumes_bit_for_bit(self):
        m = [model(extra='backbone = "resnet18"; freeze_backbone = true; predict_with = "last";').replace(
            'backbone = "smallcnn"; ', "")]
        whole = self.whole_run(self.config("whole", "bf16", m))
        self.assertIn("fused", read(self.path("out.txt")))
        stops = self.interrupted_run(self.config("cut", "bf16", m), [0.3, 0.4], whole)
        self.assertGreaterEqual(len(stops), 1, stops)
        self.assert_same_results("whole", "cut")

    def test_a_precision_change_on_resume_is_refused_naming_run_precision(self):
        cfg = self.config("c", None, [model(epochs=1)])
        self.assertEqual(run("train", cfg)[0], 0)
        for changed, was, now in ((self.config("c", "bf16", [model(epochs=1)]), "fp32", "bf16"),):
            rc, out, err = run("train", changed)
            self.assertEqual(rc, 1, err)
            line = err.strip()
            self.assertEqual(len(line.splitlines()), 1, err)
            self.assertIn("settings.txt", line)
            self.assertIn("run.precision = %s, the config now gives %s" % (was, now), line)
            self.assertIn("--restart", line)
        # and back: a bf16 run refuses fp32
        cfg = self.config("d", "bf16", [model(epochs=1)])
        self.assertEqual(run("train", cfg)[0], 0)
        rc, out, err = run("train", self.config("d", None, [model(epochs=1)]))
        self.assertEqual(rc, 1, err)
        self.assertIn("run.precision = bf16, the config now gives fp32", err)
        # the same precision given by the model instead of the run is no change
        rc, out, err = run("train", self.config("d", None, [model(epochs=1, extra='precision = "bf16";')]))
        self.assertEqual(rc, 0, err)

    def test_fp16_on_the_cpu_and_bad_values_are_refused_naming_file_line_key(self):
        cfg = self.config("h", "fp16")
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 2, err)  # a config mistake
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("%s:1: run.precision: \"fp16\" needs a CUDA device" % cfg, err)
        self.assertIn('HINT: use "bf16"', err)
        cfg = self.config("h2", None, [model(extra='precision = "fp16";')])
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 2, err)  # a config mistake
        self.assertIn("models.[0].precision", err)
        rc, out, err = run("train", self.config("h3", "fp8"))
        self.assertEqual(rc, 2, err)  # a config mistake
        self.assertIn("run.precision", err)
        self.assertIn("fp8", err)
        self.assertIn(":1:", err)
        cfg = self.write("h4.cfg", read(self.config("h4")).replace("threads = 1;", "threads = 1; precision = 16;"))
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 2, err)  # a config mistake
        self.assertIn("run.precision", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
