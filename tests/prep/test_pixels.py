#!/usr/bin/python3
"""Pixels written by `foldline prep` agree with Pillow.

Oracle: Image.open(f).convert('RGB' or 'L').resize((W, H), Image.BILINEAR), compared with the stored
(ch, H, W) pixels; the mean absolute difference must be <= 1.5 grey levels (the max is reported).
Images carry real structure (random shapes and lines plus noise), never constants.

To keep the number of (slow to start) foldline runs low, the images of all cases that share an output
size and channel count go into one layout and one prep run (setUpClass); each test method then checks
the images of its own case. Every image is listed in train.csv and in test.csv.
"""

import os
import random
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

from fltest import prep as common  # noqa: E402
from fltest.prep import Image, np  # noqa: E402

MEAN_TOL = 1.5


def s(seed, w, h, mode="RGB", noise=12):
    return lambda: common.structured_image(random.Random(seed), w, h, mode, noise)


def checkerboard():
    yy, xx = np.mgrid[0:256, 0:256]
    return Image.fromarray((((yy + xx) % 2) * 255).astype(np.uint8), "L")


def grey16():
    g8 = np.asarray(common.structured_image(random.Random(13), 120, 100, "L"))
    return Image.fromarray(g8.astype(np.uint16) * 257)


def grey16_as_8bit():
    return common.structured_image(random.Random(13), 120, 100, "L")


class Saved:
    """An image that must be saved with particular JPEG options."""

    def __init__(self, img, **opts):
        self.img, self.opts = img, opts

    def save(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.img.save(path, "JPEG", **self.opts)


def progressive():
    return Saved(common.structured_image(random.Random(30), 230, 210), progressive=True, quality=90)


def cmyk():
    return Saved(common.structured_image(random.Random(31), 210, 230).convert("CMYK"), quality=90)


# case -> ((H, W), channels, [(file name, image factory)])
CASES = {
    "downscale_4x_jpeg": ((100, 100), 3, [("a4.JPEG", s(1, 400, 400)), ("b4.JPEG", s(2, 400, 400))]),
    "downscale_4x_png": ((100, 100), 3, [("a4.png", s(3, 400, 400)), ("b4.png", s(4, 400, 400))]),
    "non_integer_square": ((224, 224), 3, [("a333.JPEG", s(5, 333, 333)), ("b333.png", s(6, 333, 333))]),
    "non_integer_rectangle": ((160, 224), 3, [("a517.JPEG", s(7, 517, 389)), ("b517.png", s(8, 517, 389))]),
    "mixed_scale": ((64, 64), 3, [("wide.png", s(9, 150, 40)), ("tall.JPEG", s(10, 37, 121))]),
    "upscale": ((64, 64), 3, [("up.png", s(11, 20, 20, noise=40)), ("up.JPEG", s(12, 20, 20, noise=40))]),
    "identity_png": ((48, 48), 3, [("same.png", s(13, 48, 48))]),
    "grey_to_3": ((100, 100), 3, [("g.JPEG", s(14, 300, 260, "L")), ("g.png", s(15, 90, 110, "L"))]),
    "rgb_to_1": ((100, 100), 1, [("c.JPEG", s(16, 300, 260)), ("c.png", s(17, 90, 110))]),
    "grey_to_1": ((100, 100), 1, [("g1.JPEG", s(18, 250, 250, "L")), ("g1.png", s(19, 250, 250, "L"))]),
    "rgba_palette_to_3": ((64, 64), 3, [("rgba.png", s(20, 200, 180, "RGBA")), ("pal.png", s(21, 180, 200, "P"))]),
    "rgba_palette_to_1": ((100, 100), 1, [("rgba1.png", s(22, 200, 180, "RGBA")),
                                          ("pal1.png", s(23, 180, 200, "P"))]),
    "grey_alpha_png": ((64, 64), 3, [("la.png", lambda: common.structured_image(random.Random(24), 120, 120, "L")
                                      .convert("LA"))]),
    "grey_16_bit_png": ((64, 64), 3, [("g16.png", grey16)]),
    "checkerboard": ((64, 64), 3, [("board.png", checkerboard)]),
    "progressive_and_cmyk_jpeg": ((100, 100), 3, [("prog.JPEG", progressive), ("cmyk.JPEG", cmyk)]),
}


class PixelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._td = tempfile.TemporaryDirectory(prefix="foldline-pixels-")
        groups = {}
        for case, (size, ch, imgs) in CASES.items():
            groups.setdefault((size, ch), []).extend(imgs)
        cls.files = {}    # file name -> path of the source file
        cls.stored = {}   # (size, ch, file name) -> (train pixels, test pixels)

        def one(key):
            (h, w), ch = key
            root = os.path.join(cls._td.name, "src_%dx%d_%d" % (h, w, ch))
            lay = common.Layout(root)
            names = []
            for n, make in groups[key]:
                img = make()
                for f in (lay.train_file(n), lay.test_file(n)):
                    if isinstance(img, Saved):
                        img.save(f)
                    else:
                        common.save_image(img, f)
                names.append(n)
            rows = list(names)
            k = 0
            while len(rows) < 4:  # two classes x two rows, enough for --folds 2
                filler = "filler%d.png" % k
                k += 1
                common.save_image(common.structured_image(random.Random(k), 16, 16), lay.train_file(filler))
                rows.append(filler)
            lay.train = [("c%d" % (i % 2), n, i % 2) for i, n in enumerate(rows)]
            lay.test = [(n,) for n in names]
            lay.write_csvs()
            out = root + ".h5"
            res = common.prep(root, out, "--size", "%dx%d" % (h, w), "--channels", ch, "--folds", 2, "--quiet")
            return key, lay, names, out, res

        with ThreadPoolExecutor(common.ConcurrentSuite.workers) as ex:
            runs = list(ex.map(one, list(groups)))
        for key, lay, names, out, res in runs:
            if res.rc != 0:
                raise AssertionError("prep %s failed: %s%s" % (key, res.stdout, res.stderr))
            d = common.read_data(out)
            (h, w), ch = key
            assert d["train"]["images"].shape[1:] == (ch, h, w), d["train"]["images"].shape
            assert d["test"]["paths"] == names, (d["test"]["paths"], names)
            train_idx = {p: i for i, p in enumerate(d["train"]["paths"])}
            for j, n in enumerate(names):
                cls.files[n] = lay.train_file(n)
                cls.stored[(key, n)] = (d["train"]["images"][train_idx[n]], d["test"]["images"][j])

    @classmethod
    def tearDownClass(cls):
        cls._td.cleanup()

    def pixels(self, case):
        """[(source file, stored train pixels, stored test pixels)] of CASE."""
        size, ch, imgs = CASES[case]
        return [(self.files[n],) + self.stored[((size, ch), n)] for n, _ in imgs]

    def check_against_pillow(self, case):
        (h, w), ch, _ = CASES[case]
        for f, train_px, test_px in self.pixels(case):
            ref = common.pillow_reference(f, h, w, ch)
            self.assertGreater(ref.std(), 5.0)  # the reference has structure: the comparison means something
            for part, px in (("train", train_px), ("test", test_px)):
                diff = np.abs(px.astype(np.float64) - ref)
                msg = "%s: %s (%s) -> %dx%dx%d: mean abs diff %.3f, max %d" % (
                    case, os.path.basename(f), part, ch, h, w, diff.mean(), diff.max())
                sys.stderr.write("  " + msg + "\n")
                self.assertLessEqual(diff.mean(), MEAN_TOL, msg)

    # ------------------------------------------------------------------ geometry

    def test_downscale_4x_jpeg(self):
        self.check_against_pillow("downscale_4x_jpeg")

    def test_downscale_4x_png(self):
        self.check_against_pillow("downscale_4x_png")

    def test_downscale_non_integer_square(self):
        self.check_against_pillow("non_integer_square")

    def test_downscale_non_integer_rectangle(self):
        self.check_against_pillow("non_integer_rectangle")

    def test_one_axis_shrinks_other_grows(self):
        self.check_against_pillow("mixed_scale")

    def test_upscale(self):
        self.check_against_pillow("upscale")

    def test_same_size_png_is_identity(self):
        (f, px, tpx), = self.pixels("identity_png")
        with Image.open(f) as im:
            want = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(px, want)
        np.testing.assert_array_equal(tpx, want)

    # ------------------------------------------------------------------ colour

    def test_grey_source_to_3_channels_replicated(self):
        for f, px, _ in self.pixels("grey_to_3"):
            np.testing.assert_array_equal(px[0], px[1], "%s: R != G" % f)
            np.testing.assert_array_equal(px[0], px[2], "%s: R != B" % f)
        self.check_against_pillow("grey_to_3")

    def test_rgb_source_to_1_channel(self):
        self.check_against_pillow("rgb_to_1")

    def test_grey_source_to_1_channel(self):
        self.check_against_pillow("grey_to_1")

    def test_png_rgba_and_palette_to_3_channels(self):
        self.check_against_pillow("rgba_palette_to_3")

    def test_png_rgba_and_palette_to_1_channel(self):
        self.check_against_pillow("rgba_palette_to_1")

    def test_png_grey_with_alpha(self):
        self.check_against_pillow("grey_alpha_png")

    def test_png_16_bit_grey(self):
        # Pillow 9 clips 16-bit grey to 255 in convert('L'), so the oracle is the 8-bit image v whose
        # 16-bit version is v * 257 (any sane 16->8 reduction, >>8 or /257 rounded, gives v back)
        (f, px, _), = self.pixels("grey_16_bit_png")
        with Image.open(f) as im:
            self.assertIn(im.mode, ("I", "I;16"), "the test image is not 16-bit")
        ref = grey16_as_8bit().convert("RGB").resize((64, 64), Image.BILINEAR)
        ref = np.asarray(ref, np.float64).transpose(2, 0, 1)
        diff = np.abs(px.astype(np.float64) - ref)
        self.assertLessEqual(diff.mean(), MEAN_TOL, "16-bit grey png: mean %.3f max %d" % (diff.mean(), diff.max()))

    def test_progressive_and_cmyk_jpeg(self):
        for f, _, _ in self.pixels("progressive_and_cmyk_jpeg"):
            with Image.open(f) as im:  # the files are what the test means
                self.assertTrue(im.info.get("progressive") or im.mode == "CMYK", (f, im.mode, im.info))
        self.check_against_pillow("progressive_and_cmyk_jpeg")

    # ------------------------------------------------------------------ antialiasing

    def test_downscale_averages_area_checkerboard(self):
        (f, px, _), = self.pixels("checkerboard")
        ref = common.pillow_reference(f, 64, 64, 3)
        # Pillow averages the 4x4 area (an edge pixel may see an uneven share); so must foldline
        self.assertTrue(np.all(np.abs(ref - 127.5) < 20), "the oracle itself does not average")
        inner = px[:, 2:-2, 2:-2].astype(np.float64)
        self.assertTrue(np.all(np.abs(inner - 127.5) <= 3),
                        "checkerboard 256->64: inner pixels range %d..%d, expected ~127 (area average), "
                        "not 0/255 (point sampling)" % (inner.min(), inner.max()))
        self.assertTrue(np.all(np.abs(px.astype(np.float64) - 127.5) < 20),
                        "checkerboard 256->64: pixels range %d..%d" % (px.min(), px.max()))
        self.assertLessEqual(np.abs(px - ref).mean(), MEAN_TOL)


if __name__ == "__main__":
    common.main()
