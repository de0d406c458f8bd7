#!/usr/bin/python3
"""The HDF5 data file written by `foldline prep` from a competition layout, and `foldline inspect`.

One realistic small layout (5 classes x 7..9 images, rows not sorted, mixed sizes and aspects, grey
and RGB JPEGs, RGB/RGBA/palette/grey PNGs, macOS `._*` junk beside listed files, train.csv with a
UTF-8 BOM, CRLF line ends and quoted fields) is built once and prepped once; each method checks one
property of the contract (docs/formats.md, "The data file", and the verbs' command lines, docs/cli.md).
"""

import os
import random
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import np  # noqa: E402

import h5py  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

# target id -> class name; ids deliberately not in the alphabetical order of the names, and names
# that need CSV quoting (comma, doubled quote) or are not ASCII.
CLASSES = {
    0: "zebra",
    1: "ink, pen",
    2: 'say "hi"',
    3: "n01872401",
    4: "caf\u00e9",
}
# per class: folder under train/ and number of images
FOLDERS = {0: "d_zebra", 1: "d_ink", 2: "d_say", 3: "n01872401", 4: "d caf\u00e9 dir"}  # space, non-ASCII
COUNTS = {0: 8, 1: 7, 2: 9, 3: 8, 4: 7}
# image formats cycled through per image: (extension, Pillow mode)
KINDS = [(".JPEG", "RGB"), (".JPEG", "L"), (".png", "RGB"), (".png", "RGBA"), (".png", "P"),
         (".JPEG", "RGB"), (".png", "L"), (".jpg", "L")]


def csv_field(s, quote):
    if quote or any(ch in s for ch in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def write_raw_csv(path, lines, bom=True, crlf=True):
    nl = "\r\n" if crlf else "\n"
    data = nl.join(lines) + nl
    with open(path, "wb") as f:
        if bom:
            f.write(b"\xef\xbb\xbf")
        f.write(data.encode("utf-8"))


def build_layout(root, test_targets=False):
    """Writes the layout; returns (train_rows, test_rows) in CSV order.

    train_rows: (class_name, image_path, target); test_rows: (image_path, target or None).
    """
    rng = random.Random(1234)
    os.makedirs(os.path.join(root, "train"))
    os.makedirs(os.path.join(root, "test"))
    rows = []
    k = 0
    for t, n in COUNTS.items():
        for i in range(n):
            ext, mode = KINDS[k % len(KINDS)]
            k += 1
            rows.append((CLASSES[t], "%s/sketch_%d%s" % (FOLDERS[t], i, ext), t, mode))
    rng.shuffle(rows)
    for name, path, t, mode in rows:
        side = rng.randint(30, 200)
        aspect = rng.uniform(0.8, 1.2)
        w, h = side, max(2, int(round(side * aspect)))
        img = common.structured_image(rng, w, h, mode)
        common.save_image(img, os.path.join(root, "train", path))
        # macOS junk beside a listed file: garbage that must never be opened
        if rng.random() < 0.4:
            d, b = os.path.split(path)
            with open(os.path.join(root, "train", d, "._" + b), "wb") as f:
                f.write(b"\x00\x05\x16\x07Mac OS X        " + bytes(rng.randrange(256) for _ in range(60)))
    with open(os.path.join(root, "train", "._" + FOLDERS[0]), "wb") as f:
        f.write(b"garbage")
    lines = ["class_name,image_path,target"]
    for j, (name, path, t, _) in enumerate(rows):
        q = (j % 3 == 0)
        lines.append(",".join([csv_field(name, q), csv_field(path, j % 4 == 1), str(t)]))
    write_raw_csv(os.path.join(root, "train.csv"), lines)

    test_rows = []
    for i in [7, 2, 10, 0, 5, 1]:  # test.csv not sorted either
        ext, mode = KINDS[i % len(KINDS)]
        path = "%d%s" % (i, ext)
        img = common.structured_image(rng, rng.randint(30, 200), rng.randint(30, 200), mode)
        common.save_image(img, os.path.join(root, "test", path))
        test_rows.append((path, (i * 3) % 5 if test_targets else None))
    with open(os.path.join(root, "test", "._0.JPEG"), "wb") as f:
        f.write(b"\x00\x05\x16\x07junk")
    if test_targets:
        lines = ["image_path,target"] + ["%s,%d" % (p, t) for p, t in test_rows]
    else:
        lines = ["image_path"] + [csv_field(p, i % 2 == 0) for i, (p, _) in enumerate(test_rows)]
    write_raw_csv(os.path.join(root, "test.csv"), lines)
    return [(n, p, t) for n, p, t, _ in rows], test_rows


class SchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._td = tempfile.TemporaryDirectory(prefix="foldline-schema-")
        cls.tmp = cls._td.name
        cls.src = os.path.join(cls.tmp, "src")
        cls.train_rows, cls.test_rows = build_layout(cls.src)
        cls.out = os.path.join(cls.tmp, "data.h5")
        cls.res = common.prep(cls.src, cls.out)
        if cls.res.rc != 0:
            raise AssertionError("prep failed: rc=%d\n%s%s" % (cls.res.rc, cls.res.stdout, cls.res.stderr))
        cls.data = common.read_data(cls.out)
        cls.inspected = common.inspect(cls.out)

    @classmethod
    def tearDownClass(cls):
        cls._td.cleanup()

    def run_prep(self, *opts, src=None, name="x.h5"):
        out = os.path.join(self.tmp, name)
        if os.path.exists(out):
            os.unlink(out)
        res = common.prep(src or self.src, out, *opts)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        return out

    # ------------------------------------------------------------------ attributes and types

    def test_root_attributes(self):
        a = self.data["attrs"]
        self.assertEqual(a.get("format"), "foldline-data")
        self.assertEqual(a.get("version"), 1)
        self.assertEqual(a.get("num_classes"), len(CLASSES))
        self.assertEqual(a.get("folds"), 5)
        self.assertEqual(a.get("fold_seed"), 42)
        self.assertEqual(a.get("height"), 224)
        self.assertEqual(a.get("width"), 224)
        self.assertEqual(a.get("channels"), 3)

    def test_dataset_dtypes(self):
        with h5py.File(self.out, "r") as f:
            self.assertEqual(f["train/images"].dtype, np.uint8)
            self.assertEqual(f["test/images"].dtype, np.uint8)
            self.assertEqual(f["train/labels"].dtype, np.dtype("<i4"))
            self.assertEqual(f["train/fold"].dtype, np.dtype("<i4"))
            for name in ("classes", "train/paths", "test/paths"):
                dt = f[name].dtype
                self.assertTrue(h5py.check_string_dtype(dt) is not None, "%s is %s, not a string" % (name, dt))

    def test_dataset_shapes(self):
        n, m = len(self.train_rows), len(self.test_rows)
        with h5py.File(self.out, "r") as f:
            self.assertEqual(f["train/images"].shape, (n, 3, 224, 224))
            self.assertEqual(f["train/labels"].shape, (n,))
            self.assertEqual(f["train/fold"].shape, (n,))
            self.assertEqual(f["train/paths"].shape, (n,))
            self.assertEqual(f["test/images"].shape, (m, 3, 224, 224))
            self.assertEqual(f["test/paths"].shape, (m,))
            self.assertEqual(f["classes"].shape, (len(CLASSES),))

    def test_images_chunked_one_per_chunk(self):
        with h5py.File(self.out, "r") as f:
            self.assertEqual(f["train/images"].chunks, (1, 3, 224, 224))
            self.assertEqual(f["test/images"].chunks, (1, 3, 224, 224))

    # ------------------------------------------------------------------ contents and order

    def test_labels_are_csv_targets_in_csv_order(self):
        want = np.array([t for _, _, t in self.train_rows], np.int32)
        np.testing.assert_array_equal(self.data["train"]["labels"], want)

    def test_classes_map_target_to_class_name(self):
        self.assertEqual(self.data["classes"], [CLASSES[t] for t in range(len(CLASSES))])

    def test_train_paths_in_csv_order(self):
        self.assertEqual(self.data["train"]["paths"], [p for _, p, _ in self.train_rows])

    def test_test_paths_in_test_csv_order(self):
        self.assertEqual(self.data["test"]["paths"], [p for p, _ in self.test_rows])

    def test_junk_files_ignored(self):
        # every listed row and nothing else; no `._` path anywhere
        self.assertEqual(len(self.data["train"]["paths"]), len(self.train_rows))
        self.assertEqual(len(self.data["test"]["paths"]), len(self.test_rows))
        for p in self.data["train"]["paths"] + self.data["test"]["paths"]:
            self.assertNotIn("._", p)

    def test_image_rows_follow_csv_order(self):
        # each stored image matches Pillow's resize of its own file far better than any other's
        for part, rows, images in (("train", [p for _, p, _ in self.train_rows], self.data["train"]["images"]),
                                   ("test", [p for p, _ in self.test_rows], self.data["test"]["images"])):
            refs = [common.pillow_reference(os.path.join(self.src, part, p), 224, 224, 3) for p in rows]
            for i, ref in enumerate(refs):
                d = np.abs(images[i].astype(np.float64) - ref).mean()
                self.assertLess(d, 2.0, "%s row %d (%s): mean abs diff %.2f" % (part, i, rows[i], d))
                j = (i + 1) % len(refs)
                self.assertGreater(np.abs(images[i].astype(np.float64) - refs[j]).mean(), 2 * d + 1)

    def test_no_test_labels_without_target_column(self):
        with h5py.File(self.out, "r") as f:
            self.assertNotIn("labels", f["test"])

    def test_test_labels_from_target_column(self):
        src = os.path.join(self.tmp, "src_tl")
        _, test_rows = build_layout(src, test_targets=True)
        out = self.run_prep("--size", "32", src=src, name="tl.h5")
        with h5py.File(out, "r") as f:
            self.assertIn("labels", f["test"])
            self.assertEqual(f["test/labels"].dtype, np.dtype("<i4"))
            np.testing.assert_array_equal(f["test/labels"][()], np.array([t for _, t in test_rows], np.int32))
        r = common.inspect(out)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn("labels present", r.stdout)

    def test_columns_in_any_order_with_extra_columns(self):
        src = os.path.join(self.tmp, "src_cols")
        shutil.copytree(self.src, src)
        lines = ["target,note,image_path,class_name"]
        for j, (name, path, t) in enumerate(self.train_rows):
            lines.append(",".join([str(t), "row %d" % j, csv_field(path, False), csv_field(name, False)]))
        write_raw_csv(os.path.join(src, "train.csv"), lines, bom=False, crlf=False)
        write_raw_csv(os.path.join(src, "test.csv"), ["id,image_path"] + ["%d,%s" % (i, p) for i, (p, _) in
                                                                          enumerate(self.test_rows)])
        out = self.run_prep("--size", "16", src=src, name="cols.h5")
        d = common.read_data(out)
        np.testing.assert_array_equal(d["train"]["labels"], [t for _, _, t in self.train_rows])
        self.assertEqual(d["train"]["paths"], [p for _, p, _ in self.train_rows])
        self.assertEqual(d["test"]["paths"], [p for p, _ in self.test_rows])
        self.assertEqual(d["classes"], [CLASSES[t] for t in range(len(CLASSES))])
        with h5py.File(out, "r") as f:
            self.assertNotIn("labels", f["test"])

    # ------------------------------------------------------------------ options

    def test_size_hxw_non_square(self):
        out = self.run_prep("--size", "48x80", name="hw.h5")
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["height"], 48)
            self.assertEqual(f.attrs["width"], 80)
            self.assertEqual(f["train/images"].shape, (len(self.train_rows), 3, 48, 80))
            self.assertEqual(f["test/images"].shape, (len(self.test_rows), 3, 48, 80))
            self.assertEqual(f["train/images"].chunks, (1, 3, 48, 80))
            img = f["train/images"][0].astype(np.float64)
        ref = common.pillow_reference(os.path.join(self.src, "train", self.train_rows[0][1]), 48, 80, 3)
        self.assertLess(np.abs(img - ref).mean(), 2.0)

    def test_size_n_square(self):
        out = self.run_prep("--size", "40", name="n.h5")
        with h5py.File(out, "r") as f:
            self.assertEqual((f.attrs["height"], f.attrs["width"]), (40, 40))
            self.assertEqual(f["train/images"].shape[1:], (3, 40, 40))

    def test_channels_1(self):
        out = self.run_prep("--channels", "1", "--size", "64", name="c1.h5")
        with h5py.File(out, "r") as f:
            self.assertEqual(f.attrs["channels"], 1)
            self.assertEqual(f["train/images"].shape, (len(self.train_rows), 1, 64, 64))
            self.assertEqual(f["test/images"].shape, (len(self.test_rows), 1, 64, 64))
            self.assertEqual(f["train/images"].chunks, (1, 1, 64, 64))
            img = f["train/images"][3].astype(np.float64)
        ref = common.pillow_reference(os.path.join(self.src, "train", self.train_rows[3][1]), 64, 64, 1)
        self.assertLess(np.abs(img - ref).mean(), 2.0)

    def test_force_replaces_existing_file(self):
        out = os.path.join(self.tmp, "force.h5")
        with open(out, "wb") as f:
            f.write(b"not an hdf5 file at all")
        res = common.prep(self.src, out, "--size", "24", "--force")
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        with h5py.File(out, "r") as f:
            self.assertEqual(f["train/images"].shape[1:], (3, 24, 24))
        # and again over a valid data file, with another size
        res = common.prep(self.src, out, "--size", "20", "--force")
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        with h5py.File(out, "r") as f:
            self.assertEqual(f["train/images"].shape[1:], (3, 20, 20))
            self.assertEqual(f.attrs["height"], 20)
        leftovers = [n for n in os.listdir(self.tmp) if n.startswith(".force.h5")]
        self.assertEqual(leftovers, [])

    def test_quiet_prints_nothing(self):
        out = os.path.join(self.tmp, "quiet.h5")
        res = common.prep(self.src, out, "--size", "16", "--quiet")
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertEqual(res.stdout, "")
        self.assertEqual(res.stderr, "")
        self.assertTrue(os.path.isfile(out))

    def test_not_quiet_reports_counts(self):
        # without --quiet prep says something on success (and nothing on stderr)
        self.assertNotEqual(self.res.stdout.strip(), "")
        self.assertEqual(self.res.stderr, "")

    # ------------------------------------------------------------------ inspect

    def inspect_out(self):
        r = self.inspected
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        return r.stdout

    def test_inspect_schema_version_and_shape(self):
        s = self.inspect_out()
        self.assertIn("foldline-data", s)
        self.assertRegex(s, r"version\D{0,3}1\b")
        self.assertRegex(s, r"3\s*,\s*224\s*,\s*224")

    def test_inspect_train_test_counts(self):
        s = self.inspect_out()
        self.assertRegex(s, r"(?mi)^\s*train\b.*\b%d\b" % len(self.train_rows))
        self.assertRegex(s, r"(?mi)^\s*test\b.*\b%d\b" % len(self.test_rows))

    def test_inspect_labels_absent(self):
        s = self.inspect_out()
        self.assertIn("labels absent", s)
        self.assertNotIn("labels present", s)

    def test_inspect_fold_sizes(self):
        s = self.inspect_out()
        lines = [l for l in s.splitlines() if l.startswith("folds:")]
        self.assertEqual(len(lines), 1, s)
        # independent oracle: scikit-learn's fold sizes for the CSV targets
        y = np.array([t for _, _, t in self.train_rows])
        skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
        sizes = [len(te) for _, te in skf.split(np.zeros(len(y)), y)]
        nums = [int(x) for x in re.findall(r"\d+", lines[0].split(":", 1)[1])]
        self.assertTrue(any(nums[i:i + 5] == sizes for i in range(len(nums))),
                        "fold sizes %s not in %r" % (sizes, lines[0]))

    def test_inspect_class_lines(self):
        s = self.inspect_out()
        for t, name in CLASSES.items():
            pat = r"(?m)^\s*%d\s+%s\s+%d\s*$" % (t, re.escape(name), COUNTS[t])
            self.assertRegex(s, pat, "no line '%d %s %d'" % (t, name, COUNTS[t]))

    def test_inspect_missing_file(self):
        r = common.inspect(os.path.join(self.tmp, "nothing-here.h5"))
        self.assertEqual(r.rc, 1)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("foldline: error: "), r.stderr)
        self.assertIn("nothing-here.h5", r.stderr)

    def test_inspect_hdf5_that_is_not_a_data_file(self):
        other = os.path.join(self.tmp, "other.h5")
        with h5py.File(other, "w") as f:
            f["x"] = np.arange(3)
        r = common.inspect(other)
        self.assertEqual(r.rc, 1)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("foldline: error: "), r.stderr)
        self.assertIn("other.h5", r.stderr)


load_tests = common.concurrent_load_tests

if __name__ == "__main__":
    common.main()
