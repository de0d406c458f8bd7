#!/usr/bin/python3
"""`foldline prep` on MNIST-family IDX files.

The real Fashion-MNIST files (Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist) are
parsed independently here with gzip + numpy (magic 0x00000803 images / 0x00000801 labels, big-endian
dims) and compared with the data file. A tiny hand-written IDX set (gzip and plain) checks resizing,
channel replication, class names and errors.
"""

import gzip
import os
import random
import re
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Image, np  # noqa: E402

import h5py  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic == 0x00000803:
        n, rows, cols = struct.unpack(">III", data[4:16])
        return np.frombuffer(data, np.uint8, n * rows * cols, 16).reshape(n, rows, cols)
    if magic == 0x00000801:
        n, = struct.unpack(">I", data[4:8])
        return np.frombuffer(data, np.uint8, n, 8)
    raise ValueError("%s: magic %#x" % (path, magic))


def idx_bytes(arr):
    arr = np.ascontiguousarray(arr, np.uint8)
    if arr.ndim == 3:
        head = struct.pack(">IIII", 0x00000803, *arr.shape)
    else:
        head = struct.pack(">II", 0x00000801, arr.shape[0])
    return head + arr.tobytes()


def write_idx(path, arr):
    data = idx_bytes(arr)
    if path.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def find(folder, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(stem)


@unittest.skipUnless(os.path.isdir(FASHION), FASHION + " is absent (Debian package dataset-fashion-mnist)")
class FashionMnistTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._td = tempfile.TemporaryDirectory(prefix="foldline-idx-")
        cls.out = os.path.join(cls._td.name, "fashion.h5")
        cls.res = common.prep(FASHION, cls.out, "--channels", 1, "--quiet")
        if cls.res.rc != 0:
            raise AssertionError("prep failed: %s%s" % (cls.res.stdout, cls.res.stderr))
        cls.train_x = read_idx(find(FASHION, "train-images-idx3-ubyte"))
        cls.train_y = read_idx(find(FASHION, "train-labels-idx1-ubyte"))
        cls.test_x = read_idx(find(FASHION, "t10k-images-idx3-ubyte"))
        cls.test_y = read_idx(find(FASHION, "t10k-labels-idx1-ubyte"))
        cls.f = h5py.File(cls.out, "r")

    @classmethod
    def tearDownClass(cls):
        cls.f.close()
        cls._td.cleanup()

    def test_counts_70000(self):
        self.assertEqual(len(self.train_y), 60000)  # the oracle parsed the files
        self.assertEqual(len(self.test_y), 10000)
        self.assertEqual(self.f["train/images"].shape, (60000, 1, 28, 28))
        self.assertEqual(self.f["test/images"].shape, (10000, 1, 28, 28))
        self.assertEqual(self.f["train/images"].shape[0] + self.f["test/images"].shape[0], 70000)
        self.assertEqual(self.f["train/paths"].shape, (60000,))
        self.assertEqual(self.f["test/paths"].shape, (10000,))

    def test_native_size_attributes(self):
        a = self.f.attrs
        self.assertEqual((a["height"], a["width"], a["channels"]), (28, 28, 1))
        self.assertEqual(a["num_classes"], 10)
        self.assertEqual(self.f["train/images"].chunks, (1, 1, 28, 28))

    def test_train_labels_equal_idx(self):
        np.testing.assert_array_equal(self.f["train/labels"][()], self.train_y.astype(np.int32))
        self.assertEqual(self.f["train/labels"].dtype, np.dtype("<i4"))

    def test_test_labels_equal_idx(self):
        self.assertIn("labels", self.f["test"])
        np.testing.assert_array_equal(self.f["test/labels"][()], self.test_y.astype(np.int32))

    def test_images_equal_raw_pixels(self):
        for i in (0, 1, 2, 777, 31337, 59999):
            np.testing.assert_array_equal(self.f["train/images"][i, 0], self.train_x[i], "train %d" % i)
        for i in (0, 1, 5000, 9999):
            np.testing.assert_array_equal(self.f["test/images"][i, 0], self.test_x[i], "test %d" % i)

    def test_whole_blocks_equal_raw_pixels(self):
        # every test image, and the first and last 2000 train images (reading all 60000 chunks is slow)
        np.testing.assert_array_equal(self.f["test/images"][()][:, 0], self.test_x)
        np.testing.assert_array_equal(self.f["train/images"][:2000][:, 0], self.train_x[:2000])
        np.testing.assert_array_equal(self.f["train/images"][-2000:][:, 0], self.train_x[-2000:])

    def test_classes_has_10_entries(self):
        classes = self.f["classes"][()]
        self.assertEqual(len(classes), 10)
        names = [common._str(c) for c in classes]
        self.assertEqual(len(set(names)), 10)
        self.assertTrue(all(names), names)

    def test_folds_stratified(self):
        fold = self.f["train/fold"][()]
        self.assertEqual(self.f.attrs["folds"], 5)
        self.assertEqual(set(fold.tolist()), set(range(5)))
        for c in range(10):
            sizes = np.bincount(fold[self.train_y == c], minlength=5)
            self.assertLessEqual(sizes.max() - sizes.min(), 1, "class %d: %s" % (c, sizes))
        sizes = np.bincount(fold, minlength=5)
        self.assertLessEqual(sizes.max() - sizes.min(), 1)

    def test_folds_match_sklearn(self):
        fold = self.f["train/fold"][()]
        want = np.empty(len(fold), np.int64)
        skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
        for k, (_, te) in enumerate(skf.split(np.zeros(len(self.train_y)), self.train_y)):
            want[te] = k
        self.assertEqual(int((fold != want).sum()), 0)

    def test_inspect(self):
        r = common.inspect(self.out)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn("labels present", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^\s*train\b.*\b60000\b")
        self.assertRegex(r.stdout, r"(?m)^\s*test\b.*\b10000\b")
        self.assertRegex(r.stdout, r"(?m)^folds:.*\b12000 12000 12000 12000 12000\b")
        counts = np.bincount(self.train_y, minlength=10)
        names = [common._str(c) for c in self.f["classes"][()]]
        for c in range(10):
            self.assertRegex(r.stdout, r"(?m)^\s*%d\s+%s\s+%d\s*$" % (c, names[c], counts[c]))


class TinyIdxTest(common.TempDirCase):
    """A hand-written IDX set: 3 classes, 20x24 (rows x cols) grey images with structure."""

    def make(self, gz_train=True, gz_test=False, n_per_class=(6, 7, 5), n_test=5, seed=3):
        rng = random.Random(seed)
        src = os.path.join(self.tmp, "idx")
        os.makedirs(src, exist_ok=True)
        labels = np.array([c for c, n in enumerate(n_per_class) for _ in range(n)], np.uint8)
        order = list(range(len(labels)))
        rng.shuffle(order)
        labels = labels[order]
        imgs = np.stack([np.asarray(common.structured_image(rng, 24, 20, "L", noise=25)) for _ in labels])
        test_imgs = np.stack([np.asarray(common.structured_image(rng, 24, 20, "L", noise=25))
                              for _ in range(n_test)])
        test_labels = np.array([i % len(n_per_class) for i in range(n_test)], np.uint8)
        sfx_tr = ".gz" if gz_train else ""
        sfx_te = ".gz" if gz_test else ""
        write_idx(os.path.join(src, "train-images-idx3-ubyte" + sfx_tr), imgs)
        write_idx(os.path.join(src, "train-labels-idx1-ubyte" + sfx_tr), labels)
        write_idx(os.path.join(src, "t10k-images-idx3-ubyte" + sfx_te), test_imgs)
        write_idx(os.path.join(src, "t10k-labels-idx1-ubyte" + sfx_te), test_labels)
        self.assertEqual(imgs.shape[1:], (20, 24))
        return src, imgs, labels, test_imgs, test_labels

    def test_resized_pixels_equal_pillow(self):
        src, imgs, labels, test_imgs, test_labels = self.make()
        out = os.path.join(self.tmp, "t.h5")
        self.assertPrepOK(common.prep(src, out, "--size", 32, "--channels", 3, "--folds", 3, "--quiet"))
        d = common.read_data(out)
        self.assertEqual(d["train"]["images"].shape, (len(labels), 3, 32, 32))
        for part, xs, got in (("train", imgs, d["train"]["images"]), ("test", test_imgs, d["test"]["images"])):
            for i, x in enumerate(xs):
                ref = np.asarray(Image.fromarray(x, "L").convert("RGB").resize((32, 32), Image.BILINEAR),
                                 np.float64).transpose(2, 0, 1)
                diff = np.abs(got[i].astype(np.float64) - ref)
                self.assertLessEqual(diff.mean(), 1.5, "%s %d: mean %.3f max %d" % (part, i, diff.mean(), diff.max()))
        np.testing.assert_array_equal(d["train"]["labels"], labels.astype(np.int32))
        np.testing.assert_array_equal(d["test"]["labels"], test_labels.astype(np.int32))

    def test_native_size_non_square_and_plain_files(self):
        src, imgs, labels, test_imgs, _ = self.make(gz_train=False, gz_test=False)
        out = os.path.join(self.tmp, "n.h5")
        self.assertPrepOK(common.prep(src, out, "--folds", 3, "--quiet"))
        with h5py.File(out, "r") as f:
            self.assertEqual((f.attrs["height"], f.attrs["width"], f.attrs["channels"]), (20, 24, 3))
            got = f["train/images"][()]
            tgot = f["test/images"][()]
        self.assertEqual(got.shape, (len(labels), 3, 20, 24))
        for ch in range(3):  # grey replicated into 3 channels (the default)
            np.testing.assert_array_equal(got[:, ch], imgs)
            np.testing.assert_array_equal(tgot[:, ch], test_imgs)

    def test_classes_file_sets_names(self):
        src, _, labels, _, _ = self.make()
        names = ["T-shirt/top", "Trouser", "Ankle boot"]
        cf = os.path.join(self.tmp, "names.txt")
        with open(cf, "w") as f:
            f.write("\n".join(names) + "\n")
        out = os.path.join(self.tmp, "c.h5")
        self.assertPrepOK(common.prep(src, out, "--classes", cf, "--folds", 3, "--size", 8, "--quiet"))
        d = common.read_data(out)
        self.assertEqual(d["classes"], names)
        r = common.inspect(out)
        counts = np.bincount(labels, minlength=3)
        for c, n in enumerate(names):
            self.assertRegex(r.stdout, r"(?m)^\s*%d\s+%s\s+%d\s*$" % (c, __import__("re").escape(n), counts[c]))

    def test_classes_txt_in_src_is_default(self):
        src, _, _, _, _ = self.make()
        with open(os.path.join(src, "classes.txt"), "w") as f:
            f.write("alpha\nbeta\ngamma\n")
        out = os.path.join(self.tmp, "d.h5")
        self.assertPrepOK(common.prep(src, out, "--folds", 3, "--size", 8, "--quiet"))
        self.assertEqual(common.read_data(out)["classes"], ["alpha", "beta", "gamma"])

    def test_folds_stratified_and_match_sklearn(self):
        src, _, labels, _, _ = self.make(n_per_class=(9, 14, 6))
        out = os.path.join(self.tmp, "f.h5")
        self.assertPrepOK(common.prep(src, out, "--folds", 3, "--seed", 5, "--size", 8, "--quiet"))
        fold = common.read_data(out)["train"]["fold"]
        want = np.empty(len(labels), np.int64)
        for k, (_, te) in enumerate(StratifiedKFold(3, shuffle=True, random_state=5).split(labels, labels)):
            want[te] = k
        np.testing.assert_array_equal(fold, want)

    def assertIdxError(self, src, name, *needles, opts=()):
        """The one line names the file and, as FILE: at byte N, where in it."""
        out = os.path.join(self.tmp, "bad.h5")
        before = sorted(os.listdir(self.tmp))
        res = common.prep(src, out, "--folds", 3, "--quiet", *opts)
        self.assertEqual(res.rc, 1, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertTrue(res.stderr.startswith("foldline: error: "), res.stderr)
        self.assertIn(os.path.join(src, name), res.stderr)
        for n in needles:
            self.assertIn(n, res.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(sorted(os.listdir(self.tmp)), before)
        return res.stderr

    def test_truncated_idx_gz_names_the_file(self):
        src, imgs, _, _, _ = self.make(gz_train=True)
        name = "train-images-idx3-ubyte.gz"
        data = idx_bytes(imgs)
        with gzip.open(os.path.join(src, name), "wb") as f:
            f.write(data[: len(data) - 100])  # a valid gzip stream, too few pixels for the header
        # the offset counts the decompressed bytes, where the data ends
        self.assertIdxError(src, name, "%s: at byte %d (uncompressed): file ends before its %d images"
                            % (os.path.join(src, name), len(data) - 100, len(imgs)))

    def test_truncated_gzip_stream_names_the_file(self):
        src, imgs, _, _, _ = self.make(gz_train=True)
        name = "train-images-idx3-ubyte.gz"
        p = os.path.join(src, name)
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(data[: len(data) // 2])
        line = self.assertIdxError(src, name, "(uncompressed; gzip: unexpected end of file): file ends before")
        at = int(re.search(r": at byte (\d+) ", line).group(1))
        self.assertTrue(16 <= at < len(idx_bytes(imgs)), line)  # where the readable part of the stream ends

    def test_truncated_plain_idx_names_the_file(self):
        src, _, _, _, _ = self.make(gz_train=False, gz_test=False)
        name = "t10k-images-idx3-ubyte"
        p = os.path.join(src, name)
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(data[:-7])
        self.assertIdxError(src, name, "%s: at byte %d: file ends before" % (p, len(data) - 7))

    def test_header_promising_terabytes_is_truncation_not_out_of_memory(self):
        # 2^20 images of 65535 x 65535 in a file of 40 bytes: the reader must not trust the header
        # with its allocation (found by fuzz_idx)
        src, _, _, _, _ = self.make(gz_train=False)
        name = "train-images-idx3-ubyte"
        with open(os.path.join(src, name), "wb") as f:
            f.write(struct.pack(">IIII", 0x00000803, 1 << 20, 65535, 65535) + bytes(24))
        self.assertIdxError(src, name, "at byte 40: file ends before its 1048576 images")

    def test_bad_magic_names_the_file(self):
        src, _, labels, _, _ = self.make(gz_train=False)
        name = "train-labels-idx1-ubyte"
        with open(os.path.join(src, name), "wb") as f:
            f.write(struct.pack(">II", 0x00000803, len(labels)) + labels.tobytes())
        self.assertIdxError(src, name, "%s: at byte 0: magic number 00 00 08 03" % os.path.join(src, name))

    def test_header_cut_inside_a_size_names_the_byte(self):
        src, imgs, _, _, _ = self.make(gz_train=False)
        name = "train-images-idx3-ubyte"
        with open(os.path.join(src, name), "wb") as f:
            f.write(idx_bytes(imgs)[:10])
        self.assertIdxError(src, name, "%s: at byte 10: IDX header is truncated" % os.path.join(src, name),
                            "size 2 of 3")

    def test_implausible_dimension_names_its_byte(self):
        src, imgs, _, _, _ = self.make(gz_train=False)
        name = "train-images-idx3-ubyte"
        with open(os.path.join(src, name), "wb") as f:
            f.write(struct.pack(">IIII", 0x00000803, len(imgs), 0, 24) + imgs.tobytes())
        self.assertIdxError(src, name, "%s: at byte 8: implausible IDX image dimensions" % os.path.join(src, name),
                            "the row count, 0,")

    def test_a_label_without_a_class_name_names_its_byte_and_the_classes_file(self):
        src, _, labels, _, _ = self.make(gz_train=False)
        cf = os.path.join(self.tmp, "names.txt")
        with open(cf, "w") as f:
            f.write("alpha\n\nbeta\n")  # two names, the second on line 3
        i = int(np.flatnonzero(labels == 2)[0])  # the first label 2: byte 8 + i
        self.assertIdxError(src, "train-labels-idx1-ubyte",
                            "%s: at byte %d: label 2, but %s names 2 classes" % (os.path.join(src, "train-labels-idx1-ubyte"), 8 + i, cf),
                            "'beta', on line 3", opts=("--classes", cf))

    def test_a_class_name_without_a_label_names_its_line(self):
        src, _, _, _, _ = self.make()
        cf = os.path.join(self.tmp, "names.txt")
        with open(cf, "w") as f:
            f.write("alpha\nbeta\ngamma\n\ndelta\n")
        self.assertIdxError(src, "train-labels-idx1-ubyte.gz",
                            "%s:5: class 'delta' (label 3) has no image in" % cf, opts=("--classes", cf))

    def test_label_count_mismatch_is_an_error(self):
        src, _, labels, _, _ = self.make(gz_train=False)
        name = "train-labels-idx1-ubyte"
        write_idx(os.path.join(src, name), labels[:-1])
        out = os.path.join(self.tmp, "bad.h5")
        res = common.prep(src, out, "--folds", 3, "--quiet")
        self.assertEqual(res.rc, 1, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertTrue(res.stderr.startswith("foldline: error: "), res.stderr)
        self.assertIn("%s: at byte 4: the header says %d labels, but %s says %d images"
                      % (os.path.join(src, name), len(labels) - 1, os.path.join(src, "train-images-idx3-ubyte"),
                         len(labels)), res.stderr)
        self.assertFalse(os.path.exists(out))


load_tests = common.concurrent_load_tests

if __name__ == "__main__":
    common.main()
