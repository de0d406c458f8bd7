#!/usr/bin/python3
"""Pixels written by `foldline prep` agree with Pillow.

Oracle: Image.open(f).convert('RGB' or 'L').resize((W, H), Image.BILINEAR), compared with the stored
(ch, H, W) pixels; the mean absolute difference must be <= 1.5 grey levels (the max is reported).
Images carry real structure (random shapes and lines plus noise), never constants.
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Image, np  # noqa: E402

MEAN_TOL = 1.5


class PixelTest(common.TempDirCase):

    def prep_images(self, images, size, channels):
        """images: list of (file name, PIL image). Each one is listed in train.csv (two classes,
        alternating) and in test.csv. Returns list of (file, stored train pixels, stored test pixels)."""
        self.runs = getattr(self, "runs", 0) + 1
        lay = common.Layout(os.path.join(self.tmp, "src%d" % self.runs))
        names = [n for n, _ in images]
        for n, img in images:
            common.save_image(img, lay.train_file(n))
            common.save_image(img, lay.test_file(n))
        rows = list(names)
        k = 0
        while len(rows) < 4:  # two classes x two rows, enough for --folds 2: add distinct fillers
            filler = "filler%d.png" % k
            k += 1
            common.save_image(common.structured_image(random.Random(k), 16, 16), lay.train_file(filler))
            rows.append(filler)
        for i, n in enumerate(rows):
            lay.train.append(("c%d" % (i % 2), n, i % 2))
        lay.test = [(n,) for n in names]
        lay.write_csvs()
        out = os.path.join(self.tmp, "out%d.h5" % self.runs)
        h, w = size
        res = common.prep(lay.root, out, "--size", "%dx%d" % (h, w), "--channels", channels,
                          "--folds", 2, "--quiet")
        self.assertPrepOK(res)
        d = common.read_data(out)
        self.assertEqual(d["train"]["images"].shape[1:], (channels, h, w))
        first = {}
        for i, p in enumerate(d["train"]["paths"]):
            first.setdefault(p, d["train"]["images"][i])
        result = []
        for j, n in enumerate(names):
            self.assertEqual(d["test"]["paths"][j], n)
            result.append((lay.train_file(n), first[n], d["test"]["images"][j]))
        return result

    def check_against_pillow(self, images, size, channels, label):
        h, w = size
        for f, train_px, test_px in self.prep_images(images, size, channels):
            ref = common.pillow_reference(f, h, w, channels)
            for part, px in (("train", train_px), ("test", test_px)):
                diff = np.abs(px.astype(np.float64) - ref)
                msg = "%s: %s (%s) -> %dx%dx%d: mean abs diff %.3f, max %d" % (
                    label, os.path.basename(f), part, channels, h, w, diff.mean(), diff.max())
                sys.stderr.write("  " + msg + "\n")
                self.assertLessEqual(diff.mean(), MEAN_TOL, msg)
                # the reference has structure, so this comparison means something
                self.assertGreater(ref.std(), 10.0)

    # ------------------------------------------------------------------ geometry

    def test_downscale_4x_jpeg(self):
        rng = random.Random(1)
        imgs = [("a.JPEG", common.structured_image(rng, 400, 400, "RGB")),
                ("b.JPEG", common.structured_image(rng, 400, 400, "RGB"))]
        self.check_against_pillow(imgs, (100, 100), 3, "4x downscale")

    def test_downscale_4x_png(self):
        rng = random.Random(2)
        imgs = [("a.png", common.structured_image(rng, 400, 400, "RGB")),
                ("b.png", common.structured_image(rng, 400, 400, "RGB"))]
        self.check_against_pillow(imgs, (100, 100), 3, "4x downscale png")

    def test_downscale_non_integer_square(self):
        rng = random.Random(3)
        imgs = [("a.JPEG", common.structured_image(rng, 333, 333, "RGB")),
                ("b.png", common.structured_image(rng, 333, 333, "RGB"))]
        self.check_against_pillow(imgs, (224, 224), 3, "333->224")

    def test_downscale_non_integer_rectangle(self):
        rng = random.Random(4)
        imgs = [("a.JPEG", common.structured_image(rng, 517, 389, "RGB")),
                ("b.png", common.structured_image(rng, 517, 389, "RGB"))]
        self.check_against_pillow(imgs, (160, 224), 3, "517x389->224x160")

    def test_aspect_change_both_directions(self):
        # one axis shrinks while the other grows
        rng = random.Random(5)
        imgs = [("a.png", common.structured_image(rng, 150, 40, "RGB")),
                ("b.JPEG", common.structured_image(rng, 37, 121, "RGB"))]
        self.check_against_pillow(imgs, (64, 64), 3, "mixed scale")

    def test_upscale(self):
        rng = random.Random(6)
        imgs = [("a.png", common.structured_image(rng, 20, 20, "RGB", noise=40)),
                ("b.JPEG", common.structured_image(rng, 20, 20, "RGB", noise=40))]
        self.check_against_pillow(imgs, (64, 64), 3, "20->64")

    def test_same_size_is_identity_for_png(self):
        rng = random.Random(7)
        img = common.structured_image(rng, 48, 48, "RGB")
        (f, px, _), = self.prep_images([("a.png", img)], (48, 48), 3)
        np.testing.assert_array_equal(px, np.asarray(img).transpose(2, 0, 1))

    # ------------------------------------------------------------------ colour

    def test_grey_source_to_3_channels_replicated(self):
        rng = random.Random(8)
        imgs = [("g.JPEG", common.structured_image(rng, 300, 260, "L")),
                ("g.png", common.structured_image(rng, 90, 110, "L"))]
        res = self.prep_images(imgs, (100, 100), 3)
        for f, px, _ in res:
            np.testing.assert_array_equal(px[0], px[1], "%s: R != G" % f)
            np.testing.assert_array_equal(px[0], px[2], "%s: R != B" % f)
        self.check_against_pillow(imgs, (100, 100), 3, "grey->RGB")

    def test_rgb_source_to_1_channel(self):
        rng = random.Random(9)
        imgs = [("c.JPEG", common.structured_image(rng, 300, 260, "RGB")),
                ("c.png", common.structured_image(rng, 90, 110, "RGB"))]
        self.check_against_pillow(imgs, (100, 100), 1, "RGB->grey")

    def test_grey_source_to_1_channel(self):
        rng = random.Random(10)
        imgs = [("g.JPEG", common.structured_image(rng, 250, 250, "L")),
                ("g.png", common.structured_image(rng, 250, 250, "L"))]
        self.check_against_pillow(imgs, (80, 80), 1, "grey->grey")

    def test_png_rgba_and_palette(self):
        rng = random.Random(11)
        imgs = [("rgba.png", common.structured_image(rng, 200, 180, "RGBA")),
                ("pal.png", common.structured_image(rng, 180, 200, "P"))]
        self.check_against_pillow(imgs, (64, 64), 3, "RGBA/P png")
        self.check_against_pillow(imgs, (64, 64), 1, "RGBA/P png grey")

    def test_png_grey_with_alpha(self):
        rng = random.Random(12)
        la = common.structured_image(rng, 120, 120, "L").convert("LA")
        self.check_against_pillow([("la.png", la)], (60, 60), 3, "LA png")

    def test_png_16_bit_grey(self):
        # Pillow 9 clips 16-bit grey to 255 in convert('L'), so the oracle is the 8-bit image v whose
        # 16-bit version is v * 257 (any sane 16->8 reduction, >>8 or /257 rounded, gives v back)
        rng = random.Random(13)
        g8 = common.structured_image(rng, 120, 100, "L")
        g16 = Image.fromarray(np.asarray(g8).astype(np.uint16) * 257)
        path8 = os.path.join(self.tmp, "g8.png")
        g8.save(path8)
        (f, px, _), = self.prep_images([("g16.png", g16)], (60, 60), 3)
        with Image.open(f) as im:
            self.assertIn(im.mode, ("I", "I;16"), "test image is not 16-bit")
        ref = common.pillow_reference(path8, 60, 60, 3)
        diff = np.abs(px.astype(np.float64) - ref)
        self.assertLessEqual(diff.mean(), MEAN_TOL, "16-bit grey png: mean %.3f max %d" % (diff.mean(), diff.max()))

    # ------------------------------------------------------------------ antialiasing

    def test_downscale_averages_area_checkerboard(self):
        yy, xx = np.mgrid[0:256, 0:256]
        board = (((yy + xx) % 2) * 255).astype(np.uint8)
        imgs = [("board.png", Image.fromarray(board, "L"))]
        (f, px, _), = self.prep_images(imgs, (64, 64), 3)
        ref = common.pillow_reference(f, 64, 64, 3)
        # Pillow averages the 4x4 area (a border row may see an uneven share); so must foldline
        self.assertTrue(np.all(np.abs(ref - 127.5) < 20), "oracle itself not averaging")
        inner = px[:, 2:-2, 2:-2].astype(np.float64)
        self.assertTrue(np.all(np.abs(inner - 127.5) <= 3),
                        "checkerboard 256->64: inner pixels range %d..%d, expected ~127 (area average)"
                        % (inner.min(), inner.max()))
        self.assertTrue(np.all(np.abs(px.astype(np.float64) - 127.5) < 20),
                        "checkerboard 256->64: pixels range %d..%d" % (px.min(), px.max()))
        self.assertLessEqual(np.abs(px - ref).mean(), MEAN_TOL)


if __name__ == "__main__":
    common.main()
