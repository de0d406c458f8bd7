#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/<target>/): small valid
inputs of every form each reader accepts, so that fuzzing starts from deep
inside the formats. Run it again only to change the seeds; they are committed."""

import gzip
import io
import os
import struct
import zlib

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def csv_seeds():
    put("csv", "train.csv", b"class_name,image_path,target\nn01,n01/a.JPEG,0\nn02,n02/b.JPEG,1\n")
    put("csv", "test.csv", b"image_path\nx/1.png\nx/2.png\n")
    put("csv", "quoted_crlf_bom.csv",
        b'\xef\xbb\xbfclass_name,image_path,target\r\n"a, b","q""uote.png",0\r\n"multi\nline",c.png,1\r\n')
    put("csv", "blank_lines.csv", b"a,b\n\n1,2\n\r\n3,4")


def config_seeds():
    base = (b'run = { name = "r"; out_dir = "/nonexistent/runs"; seed = 7; threads = 1; };\n'
            b'data = { file = "/dev/null"; mean = [0.5]; std = [0.25]; cache = "none"; };\n'
            b'folds = { use = [0, 2]; };\n'
            b'dist = { ranks_per_job = 1; backend = "auto"; };\n'
            b'models = ( { name = "cnn"; backbone = "smallcnn"; head = { type = "mlp3"; hidden = 64; act = "gelu"; };\n'
            b'  epochs = 3; batch = 32; optimizer = { type = "sgd"; lr = 0.1; momentum = 0.9; nesterov = true; };\n'
            b'  schedule = { type = "cosine"; warmup_epochs = 1; min_lr = 0.0; }; label_smoothing = 0.1;\n'
            b'  predict_with = "best_loss"; tta = [ "hflip", "vflip" ];\n'
            b'  augment = ( { from_epoch = 0; ops = ( ); },\n'
            b'              { from_epoch = 1; ops = ( { op = "hflip"; p = 0.5; }, { op = "rotate"; degrees = 10.0; p = 0.5; } ); } ); },\n'
            b'  { name = "r18"; backbone = "resnet18"; freeze_backbone = true; head = { type = "linear"; }; epochs = 1; } );\n'
            b'vote = { method = "soft-hard"; weights = [1.0, 2.0]; };\n')
    put("config", "full.cfg", base)
    put("config", "minimal.cfg", b'data = { file = "/dev/null"; }; models = ( { name = "a"; backbone = "mlp"; epochs = 1; } );\n')
    put("config", "with_overrides.cfg", base + b"\0models.cnn.epochs=2\nfolds.use=[1]\nrun.seed=42L\nmodels.[1].head.type=\"mlp3\"\nvote.weights=[1.0, 3.5]")
    put("config", "syntax_error.cfg", b'data = { file = "/dev/null" ; models = ( ;\n')


def idx_seeds():
    imgs = bytes(range(2 * 3 * 4))
    idx3 = struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 3, 4) + imgs
    idx1 = struct.pack(">BBBBI", 0, 0, 8, 1, 5) + bytes([0, 1, 9, 255, 3])
    put("idx", "images.idx3", idx3)
    put("idx", "labels.idx1", idx1)
    put("idx", "images.idx3.gz", gzip.compress(idx3, mtime=0))
    put("idx", "labels.idx1.gz", gzip.compress(idx1, mtime=0))


def adam7_png(img):
    """An interlaced (Adam7) RGB PNG, which Pillow does not write."""
    w, h = img.size
    px = img.load()
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue
        for y in ys:
            raw += b"\0" + b"".join(bytes(px[x, y]) for x in xs)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(w, h):
    """A valid PNG header of w x h grey pixels with one row of data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def bomb_jpeg(jpeg, w, h):
    """jpeg with its frame header (SOF0) claiming w x h pixels."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[:i + 5] + struct.pack(">HH", h, w) + jpeg[i + 9:]


def image_seeds():
    rgb = Image.new("RGB", (9, 7))
    rgb.putdata([(x * 28, y * 36, (x * y * 9) % 256) for y in range(7) for x in range(9)])

    def enc(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    put("image", "rgb.jpg", enc(rgb, "JPEG", quality=80))
    put("image", "grey.jpg", enc(rgb.convert("L"), "JPEG", quality=80))
    put("image", "progressive.jpg", enc(rgb, "JPEG", quality=70, progressive=True))
    put("image", "cmyk.jpg", enc(rgb.convert("CMYK"), "JPEG", quality=80))
    put("image", "rgb.png", enc(rgb, "PNG"))
    put("image", "grey.png", enc(rgb.convert("L"), "PNG"))
    put("image", "rgba.png", enc(rgb.convert("RGBA"), "PNG"))
    put("image", "palette.png", enc(rgb.convert("P"), "PNG"))
    put("image", "grey16.png", enc(rgb.convert("L").convert("I"), "PNG"))
    put("image", "bilevel.png", enc(rgb.convert("1"), "PNG"))
    put("image", "interlaced.png", adam7_png(rgb))
    # Regressions: headers that declare far more pixels than the file holds
    # (decoders used to allocate them all before reading a pixel).
    put("image", "regress-bomb.png", bomb_png(100000, 100000))
    put("image", "regress-bomb.jpg", bomb_jpeg(enc(rgb, "JPEG", quality=80), 65000, 65000))


if __name__ == "__main__":
    csv_seeds()
    config_seeds()
    idx_seeds()
    image_seeds()
