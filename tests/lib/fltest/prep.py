"""Shared helpers for the integration tests of `foldline prep` and `foldline inspect`.

Run every test with Debian's interpreter (/usr/bin/python3), which has numpy, h5py, Pillow and
scikit-learn. The binary under test comes from the environment variable FOLDLINE (ctest sets it to
the built target), else build/foldline of this repository.
"""

import csv
import io
import os
import random
import subprocess
import sys
import tempfile
import unittest
from collections import namedtuple

import numpy as np

try:
    from PIL import Image, ImageDraw
except ImportError:  # pragma: no cover - every test file needs Pillow
    Image = ImageDraw = None

from fltest import FOLDLINE  # noqa: E402,F401  (the binary under test)

Result = namedtuple("Result", "rc stdout stderr")


def run(*args, timeout=180, cwd=None):
    """Run foldline with ARGS; return Result(rc, stdout, stderr) as text."""
    argv = [FOLDLINE] + [str(a) for a in args]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
    return Result(p.returncode,
                  p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"))


def prep(src, out, *opts, **kw):
    return run("prep", src, out, *opts, **kw)


def inspect(path, **kw):
    return run("inspect", path, **kw)


# ---------------------------------------------------------------------------- images

def structured_image(rng, w, h, mode="RGB", noise=12):
    """An image with real structure: random lines, ellipses and rectangles plus noise.

    rng is a random.Random. mode is any Pillow mode we care about: "RGB", "L", "RGBA", "P".
    """
    base = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(base)
    for _ in range(rng.randint(6, 14)):
        col = tuple(rng.randrange(256) for _ in range(3))
        x0, x1 = sorted(rng.randrange(-w // 4, w + w // 4) for _ in range(2))
        y0, y1 = sorted(rng.randrange(-h // 4, h + h // 4) for _ in range(2))
        kind = rng.randrange(3)
        if kind == 0:
            d.line([(x0, y0), (x1, y1)], fill=col, width=rng.randint(1, max(1, w // 20)))
        elif kind == 1:
            d.ellipse([x0, y0, x1, y1], outline=col, width=rng.randint(1, 3))
        else:
            d.rectangle([x0, y0, x1, y1], fill=col)
    a = np.asarray(base, dtype=np.int16)
    if noise:
        nrng = np.random.default_rng(rng.randrange(1 << 30))
        a = a + nrng.integers(-noise, noise + 1, size=a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGB":
        return img
    if mode == "L":
        return img.convert("L")
    if mode == "RGBA":
        rgba = img.convert("RGBA")
        alpha = np.full((h, w), 255, np.uint8)
        alpha[: h // 3, : w // 3] = 128  # some translucency; Pillow's convert('RGB') drops it
        rgba.putalpha(Image.fromarray(alpha, "L"))
        return rgba
    if mode == "P":
        return img.convert("P", palette=Image.ADAPTIVE, colors=64)
    raise ValueError(mode)


def save_image(img, path, fmt=None, quality=95):
    """Save IMG at PATH (parents created). fmt defaults from the extension; .JPEG is JPEG."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt is None:
        ext = os.path.splitext(path)[1].lower()
        fmt = "PNG" if ext == ".png" else "JPEG"
    if fmt == "JPEG":
        img.save(path, "JPEG", quality=quality)
    else:
        img.save(path, fmt)


def pillow_reference(path, h, w, channels):
    """Independent oracle: Pillow's BILINEAR resize of the decoded file, as (ch, H, W) float."""
    with Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        im = im.resize((w, h), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float64)
    if channels == 1:
        a = a[None, :, :]
    else:
        a = a.transpose(2, 0, 1)
    return a


# ---------------------------------------------------------------------------- CSVs

def write_csv(path, header, rows, bom=False, crlf=False, quote_all=False):
    """Write a CSV with the csv module (quoting where needed, or everywhere)."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\r\n" if crlf else "\n",
                    quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    if header is not None:
        wr.writerow(header)
    for r in rows:
        wr.writerow(r)
    data = buf.getvalue().encode("utf-8")
    if bom:
        data = b"\xef\xbb\xbf" + data
    with open(path, "wb") as f:
        f.write(data)


class Layout:
    """A small competition layout under ROOT.

    train rows: (class_name, image_path, target); test rows: (image_path,) or (image_path, target).
    Images are created with add_train/add_test and written immediately.
    """

    def __init__(self, root):
        self.root = root
        self.train = []
        self.test = []
        os.makedirs(os.path.join(root, "train"), exist_ok=True)
        os.makedirs(os.path.join(root, "test"), exist_ok=True)

    def train_file(self, image_path):
        return os.path.join(self.root, "train", image_path)

    def test_file(self, image_path):
        return os.path.join(self.root, "test", image_path)

    @staticmethod
    def _write(f, img, data):
        """Writes the image img (encoded by its extension) or the raw bytes data to f, if either is given."""
        if img is not None:
            save_image(img, f)
        elif data is not None:
            os.makedirs(os.path.dirname(f), exist_ok=True)
            with open(f, "wb") as fh:
                fh.write(data)

    def add_train(self, class_name, image_path, target, img=None, data=None):
        self._write(self.train_file(image_path), img, data)
        self.train.append((class_name, image_path, target))

    def add_test(self, image_path, img=None, target=None, data=None):
        self._write(self.test_file(image_path), img, data)
        self.test.append((image_path,) if target is None else (image_path, target))

    def write_csvs(self, **kw):
        write_csv(os.path.join(self.root, "train.csv"), ["class_name", "image_path", "target"],
                  self.train, **kw)
        has_t = any(len(r) == 2 for r in self.test)
        write_csv(os.path.join(self.root, "test.csv"),
                  ["image_path", "target"] if has_t else ["image_path"], self.test, **kw)


def simple_layout(root, counts, size=8, seed=0, n_test=3, shuffle=True, names=None,
                  test_targets=False, fmt="png", mode="RGB"):
    """A layout with counts[c] train images of class c (small structured images).

    Rows are shuffled unless shuffle=False. Returns the Layout (CSV files written).
    """
    rng = random.Random(seed)
    lay = Layout(root)
    rows = []
    for c, n in enumerate(counts):
        name = names[c] if names else "class%03d" % c
        for k in range(n):
            rows.append((name, "%s/img_%d.%s" % (name, k, fmt), c))
    if shuffle:
        rng.shuffle(rows)
    for name, p, c in rows:
        lay.add_train(name, p, c, img=structured_image(rng, size, size, mode, noise=20))
    for i in range(n_test):
        lay.add_test("%d.%s" % (i, fmt), img=structured_image(rng, size, size, mode, noise=20),
                     target=(i % len(counts)) if test_targets else None)
    lay.write_csvs()
    return lay


# ---------------------------------------------------------------------------- HDF5

def read_data(path):
    """Everything in a foldline data file as plain numpy / Python values."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        out["attrs"] = {k: _plain(v) for k, v in f.attrs.items()}
        out["classes"] = [_str(s) for s in f["classes"][()]]
        for part in ("train", "test"):
            g = f[part]
            out[part] = {
                "images": g["images"][()],
                "paths": [_str(s) for s in g["paths"][()]],
                "labels": g["labels"][()] if "labels" in g else None,
            }
            if part == "train":
                out[part]["fold"] = g["fold"][()]
    return out


def _str(s):
    return s.decode("utf-8") if isinstance(s, bytes) else str(s)


def _plain(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.reshape(())[()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    return v


# ---------------------------------------------------------------------------- misc

class TempDirCase(unittest.TestCase):
    """A TestCase with self.tmp, a fresh temporary directory per test method."""

    def setUp(self):
        self._td = tempfile.TemporaryDirectory(prefix="foldline-prep-test-")
        self.tmp = self._td.name

    def tearDown(self):
        self._td.cleanup()

    def assertPrepOK(self, res):
        self.assertEqual(res.rc, 0, "prep failed: rc=%d\nstdout:\n%s\nstderr:\n%s"
                         % (res.rc, res.stdout, res.stderr))


class _Recorder(unittest.TestResult):
    """Records what a test reports, to replay it later into the real result in order."""

    def __init__(self):
        super().__init__()
        self.events = []

    def startTest(self, test):
        pass

    def stopTest(self, test):
        pass

    def addSuccess(self, test):
        self.events.append(("addSuccess", test))

    def addFailure(self, test, err):
        self.events.append(("addFailure", test, err))

    def addError(self, test, err):
        self.events.append(("addError", test, err))

    def addSkip(self, test, reason):
        self.events.append(("addSkip", test, reason))

    def addExpectedFailure(self, test, err):
        self.events.append(("addExpectedFailure", test, err))

    def addUnexpectedSuccess(self, test):
        self.events.append(("addUnexpectedSuccess", test))

    def addSubTest(self, test, subtest, err):
        self.events.append(("addSubTest", test, subtest, err))


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


class ConcurrentSuite(unittest.TestSuite):
    """Runs independent test methods on a few threads.

    Every foldline run costs most of a second of start-up (it links libtorch), so the many small
    runs of a file go faster side by side. Each test must use only its own files (TempDirCase).
    setUpClass/tearDownClass run once per class, before and after all its methods; results are
    reported in the usual order.
    """

    workers = max(2, min(4, os.cpu_count() or 2))

    def run(self, result, debug=False):
        from concurrent.futures import ThreadPoolExecutor
        tests = list(_flatten(self))
        classes = list(dict.fromkeys(type(t) for t in tests))
        failed_setup = {}
        skipped = {cls for cls in classes if getattr(cls, "__unittest_skip__", False)}
        classes = [cls for cls in classes if cls not in skipped]
        for cls in classes:
            try:
                cls.setUpClass()
            except Exception:  # noqa: BLE001 - reported per test below
                failed_setup[cls] = sys.exc_info()

        def one(t):
            rec = _Recorder()
            if type(t) in failed_setup:
                rec.addError(t, failed_setup[type(t)])
            else:
                t.run(rec)
            return rec

        with ThreadPoolExecutor(self.workers) as ex:
            recs = list(ex.map(one, tests))
        for t, rec in zip(tests, recs):
            result.startTest(t)
            for ev in rec.events:
                getattr(result, ev[0])(*ev[1:])
            result.stopTest(t)
        for cls in classes:
            if cls in failed_setup:
                continue
            try:
                cls.tearDownClass()
            except Exception:  # noqa: BLE001
                result.addError(tests[0], sys.exc_info())
        return result


def concurrent_load_tests(loader, standard_tests, pattern):
    """Use as `load_tests = common.concurrent_load_tests` in a test module."""
    return ConcurrentSuite(list(_flatten(standard_tests)))


def main():
    if not os.access(FOLDLINE, os.X_OK):
        sys.stderr.write("foldline binary not found at %s (set FOLDLINE)\n" % FOLDLINE)
        sys.exit(1)
    unittest.main(verbosity=2)
