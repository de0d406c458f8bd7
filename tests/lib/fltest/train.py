"""Shared helpers of the `foldline train` tests: a small learnable data file written
directly with h5py (an independent writer of the data-file schema), configs, runs.

Run with Debian's /usr/bin/python3 (numpy, h5py). The binary comes from $FOLDLINE.
"""
import csv
import os
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

from fltest import FOLDLINE  # noqa: E402,F401  (the binary under test)


def run(*args, timeout=300, cwd=None):
    p = subprocess.run([FOLDLINE] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def pattern_images(labels, size, rng, channels=1):
    """Class c draws stripes of period c+2 at a class-dependent angle, plus noise: learnable
    in one epoch by a small CNN, not by chance."""
    n = len(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, channels, size, size), np.uint8)
    for i, c in enumerate(labels):
        ang = c * np.pi / 5 + rng.uniform(-0.15, 0.15)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * 2 * np.pi / (3 + c) + phase)
        img = 128 + 90 * wave + rng.normal(0, 25, wave.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)[None]
    return out


def write_data_file(path, n_per_class=60, classes=3, folds=2, n_test=40, size=16, seed=0, test_labels=True,
                    version=1, fmt="foldline-data"):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    rng.shuffle(labels)
    fold = np.empty(len(labels), np.int32)
    for c in range(classes):  # stratified: fold ids round robin inside each class
        idx = np.flatnonzero(labels == c)
        fold[idx] = np.arange(len(idx)) % folds
    test_y = rng.integers(0, classes, n_test)
    str_t = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = fmt
        f.attrs["version"] = np.int32(version)
        for k, v in dict(num_classes=classes, folds=folds, height=size, width=size, channels=1).items():
            f.attrs[k] = np.int32(v)
        f.attrs["fold_seed"] = np.int64(42)
        f.create_dataset("classes", data=["class%d" % c for c in range(classes)], dtype=str_t)
        f.create_dataset("train/images", data=pattern_images(labels, size, rng), chunks=(1, 1, size, size))
        f.create_dataset("train/labels", data=labels.astype(np.int32))
        f.create_dataset("train/fold", data=fold)
        f.create_dataset("train/paths", data=["train/%d.png" % i for i in range(len(labels))], dtype=str_t)
        f.create_dataset("test/images", data=pattern_images(test_y, size, rng), chunks=(1, 1, size, size))
        f.create_dataset("test/paths", data=["%d.png" % i for i in range(n_test)], dtype=str_t)
        if test_labels:
            f.create_dataset("test/labels", data=test_y.astype(np.int32))
    return labels, fold, test_y


def config_text(data, out_dir, name="t", models=None, extra=""):
    models = models or [model_text("m")]
    return """run = { name = "%s"; out_dir = "%s"; seed = 7; threads = 1; };
data = { file = "%s"; mean = [0.5]; std = [0.25]; };
models = ( %s );
%s
""" % (name, out_dir, data, ",\n".join(models), extra)


def model_text(name, epochs=1, extra=""):
    return """{ name = "%s"; backbone = "smallcnn"; epochs = %d; batch = 32;
      optimizer = { type = "adam"; lr = 3e-3; }; %s }""" % (name, epochs, extra)


def read_metrics(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def seconds_after(marker, argv, out_path, err_path, timeout=300):
    """Runs argv with stdout to out_path and stderr to err_path, and returns (exit status, seconds from the
    first stdout line holding marker to the exit). Tests that stop a run part-way use it to time their
    signals as fractions of the uninterrupted run, so they stop it mid-run on a slow machine or a fast one."""
    with open(out_path, "w") as o, open(err_path, "w") as e:
        p = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    t0 = None
    deadline = time.time() + timeout
    while p.poll() is None and time.time() < deadline:
        if t0 is None:
            with open(out_path) as f:
                if marker in f.read():
                    t0 = time.monotonic()
        time.sleep(0.01)
    rc = p.wait(timeout=max(1, deadline - time.time()))
    return rc, time.monotonic() - (t0 if t0 is not None else time.monotonic())


def write_recipe_data(path, size, classes=3, per_class=5, folds=5, n_test=4):
    """A tiny data file for the recipes' configs (configs/sketch_*.cfg): the same rows in every file
    (seeded), 3-channel images at size x size, what prep writes, smaller."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), per_class).astype(np.int32)
    fold = np.tile(np.arange(folds), classes * per_class // folds).astype(np.int32)
    s = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "foldline-data"
        f.attrs["version"] = np.int32(1)
        for k, v in dict(num_classes=classes, folds=folds, height=size, width=size, channels=3).items():
            f.attrs[k] = np.int32(v)
        f.attrs["fold_seed"] = np.int64(42)
        f.create_dataset("classes", data=["c%d" % c for c in range(classes)], dtype=s)
        img = rng.integers(0, 256, (len(labels), 3, size, size), dtype=np.uint8)
        f.create_dataset("train/images", data=img, chunks=(1, 3, size, size))
        f.create_dataset("train/labels", data=labels)
        f.create_dataset("train/fold", data=fold)
        f.create_dataset("train/paths", data=["t/%d.JPEG" % i for i in range(len(labels))], dtype=s)
        f.create_dataset("test/images", data=img[:n_test], chunks=(1, 3, size, size))
        f.create_dataset("test/paths", data=["%d.JPEG" % i for i in range(n_test)], dtype=s)


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="fl-train-")
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)
