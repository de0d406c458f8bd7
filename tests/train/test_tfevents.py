#!/usr/bin/env python3
"""TensorBoard scalars: each fold's events.out.tfevents.* file, read back by tensorboard's own
EventAccumulator (the PyPI package, in a virtual environment outside the repository), holds the
values of metrics.csv per epoch and the progress ticks; a job stopped by SIGTERM and resumed
continues the same curves with no step written twice, as does one killed outright after a timed
checkpoint.

The environment: ${XDG_CACHE_HOME:-~/.cache}/foldline/venv-tb (tools/deps.sh creates it; made
here when missing). Exit 77 (skipped) only when PyPI cannot be reached to install tensorboard."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FOLDLINE, TempDirTest, config_text, model_text, read_metrics, run, write_data_file  # noqa: E402

TENSORBOARD = "tensorboard==2.21.0"
VENV = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "foldline", "venv-tb")
VPY = os.path.join(VENV, "bin", "python")

READER = r"""
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
print(json.dumps({t: [[s.step, s.value] for s in ea.Scalars(t)] for t in ea.Tags()["scalars"]}))
"""


def ensure_tensorboard():
    """The venv's python with tensorboard, or None when PyPI is unreachable."""
    probe = [VPY, "-c", "import tensorboard.backend.event_processing.event_accumulator"]
    if os.path.exists(VPY) and subprocess.run(probe, capture_output=True).returncode == 0:
        return VPY
    for py in ("/usr/bin/python3", "python3"):
        if subprocess.run([py, "-m", "venv", "--clear", VENV], capture_output=True).returncode == 0:
            break
    else:
        raise RuntimeError("cannot create a virtual environment in %s (python3-venv)" % VENV)
    pip = subprocess.run([VPY, "-m", "pip", "install", "-q", TENSORBOARD], capture_output=True, text=True)
    if pip.returncode != 0:
        return None  # PyPI unreachable (the only reason to skip)
    return VPY


def scalars(py, folder):
    out = subprocess.run([py, "-c", READER, folder], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


class TfEvents(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls.py = ensure_tensorboard()
        if cls.py is None:
            print("skipped: PyPI unreachable, no tensorboard for the reader", file=sys.stderr)
            sys.exit(77)

    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=200, size=24)

    def config(self, name, epochs, run_keys=""):
        m = model_text("m", epochs).replace("batch = 32", "batch = 8")
        text = config_text(self.data, self.path("runs"), name, [m])
        return self.write(name + ".cfg", text.replace("threads = 1;", "threads = 1; progress_s = 0.1; " + run_keys))

    def assert_equals_metrics(self, fold_dir, epochs):
        files = [f for f in os.listdir(fold_dir) if f.startswith("events.out.tfevents.")]
        self.assertTrue(files)
        sc = scalars(self.py, fold_dir)
        metrics = read_metrics(os.path.join(fold_dir, "metrics.csv"))
        self.assertEqual(len(metrics), epochs)
        for tag, col in (("train/loss", "train_loss"), ("train/acc", "train_acc"), ("val/loss", "val_loss"),
                         ("val/acc", "val_acc"), ("lr", "lr"), ("images_per_s", "images_per_s")):
            self.assertEqual([s for s, _ in sc[tag]], list(range(epochs)), tag)  # each epoch once
            for (step, v), row in zip(sc[tag], metrics):
                want = float(row[col])
                # metrics.csv keeps 6 decimals (images_per_s 1); the events a float32
                tol = 0.051 if col == "images_per_s" else 1.5e-6 + 1e-6 * abs(want)
                self.assertLessEqual(abs(v - want), tol, (tag, step, v, want))
        for tag in ("tick/train_loss", "tick/train_acc", "tick/images_per_s"):
            steps = [s for s, _ in sc[tag]]
            self.assertTrue(steps, tag)
            self.assertEqual(len(steps), len(set(steps)), "%s: a step twice: %s" % (tag, steps))
            self.assertEqual(steps, sorted(steps), tag)
        return sc

    def test_scalars_read_back_by_tensorboard_equal_metrics_csv(self):
        rc, out, err = run("train", self.config("t", 2))
        self.assertEqual(rc, 0, err)
        for k in (0, 1):
            sc = self.assert_equals_metrics(self.path("runs", "t", "m", "fold%d" % k), 2)
            self.assertTrue(all(0 <= v <= 1 for _, v in sc["tick/train_acc"]))
            self.assertLessEqual(max(s for s, _ in sc["tick/train_loss"]), 2 * 38)  # global batch: 2 epochs x 38

    def test_a_resumed_job_continues_the_curves_without_duplicate_steps(self):
        # Timed checkpoints every 0.3 s: a process killed outright (attempt 1) has written ticks
        # past its last.pt, which the rerun trains again: those must not appear twice.
        cfg = self.config("r", 4, "checkpoint_minutes = 0.005;")
        stops = 0
        for attempt in range(12):
            with open(self.path("out.txt"), "w") as out:
                p = subprocess.Popen([FOLDLINE, "train", cfg], stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
            if attempt < 3:  # stop it in its second epoch (and later), mid-epoch
                deadline = time.time() + 120
                while time.time() < deadline and p.poll() is None:  # a progress line of fold 0, epoch >= attempt + 2
                    with open(self.path("out.txt")) as f:
                        seen = re.findall(r"^\[m fold 0\] epoch (\d+)/4 step \d+/\d+ \|", f.read(), re.M)
                    if seen and int(seen[-1]) >= attempt + 2:
                        break
                    time.sleep(0.02)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL if attempt == 1 else signal.SIGTERM)
            rc = p.wait(timeout=300)
            if rc == 0:
                break
            self.assertEqual(rc, -signal.SIGKILL if attempt == 1 else 75)
            stops += 1
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(stops, 2)
        fold0 = self.path("runs", "r", "m", "fold0")
        self.assertGreaterEqual(len([f for f in os.listdir(fold0) if "tfevents" in f]), 2)
        self.assert_equals_metrics(fold0, 4)
        self.assert_equals_metrics(self.path("runs", "r", "m", "fold1"), 4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
