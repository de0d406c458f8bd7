#!/usr/bin/env python3
"""make_sketches.py OUT_DIR N_TRAIN N_TEST [SIDE] [CLASSES]

Writes a competition-layout folder of synthetic line drawings (JPEG, mostly
grey-on-white strokes like the sketch data, some single-channel files) for
prep benchmarks: OUT_DIR/train.csv, test.csv, train/<class>/sketch_<k>.JPEG,
test/<i>.JPEG. Deterministic for given arguments.
"""
import os
import random
import sys
from multiprocessing import Pool

from PIL import Image, ImageDraw


def draw(args):
    path, seed, side = args
    rng = random.Random(seed)
    w = int(side * rng.uniform(0.9, 1.1))
    h = int(side * rng.uniform(0.9, 1.1))
    img = Image.new("L" if seed % 7 == 0 else "RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(8, 30)):
        pts = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(2, 6))]
        d.line(pts, fill=0 if img.mode == "L" else (rng.randrange(80),) * 3, width=rng.randint(1, 4))
    img.save(path, "JPEG", quality=90)


def main():
    out, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    side = int(sys.argv[4]) if len(sys.argv) > 4 else 600
    classes = int(sys.argv[5]) if len(sys.argv) > 5 else 500
    jobs, rows = [], []
    for i in range(n_train):
        c = i % classes
        rel = f"n{c:08d}/sketch_{i // classes}.JPEG"
        os.makedirs(os.path.join(out, "train", f"n{c:08d}"), exist_ok=True)
        jobs.append((os.path.join(out, "train", rel), i, side))
        rows.append((f"n{c:08d}", rel, c))
    os.makedirs(os.path.join(out, "test"), exist_ok=True)
    for i in range(n_test):
        jobs.append((os.path.join(out, "test", f"{i}.JPEG"), 10**7 + i, side))
    random.Random(1).shuffle(rows)
    with Pool() as pool:
        pool.map(draw, jobs, chunksize=64)
    with open(os.path.join(out, "train.csv"), "w") as f:
        f.write("class_name,image_path,target\n")
        f.writelines(f"{a},{b},{c}\n" for a, b, c in rows)
    with open(os.path.join(out, "test.csv"), "w") as f:
        f.write("image_path\n")
        f.writelines(f"{i}.JPEG\n" for i in range(n_test))


if __name__ == "__main__":
    main()
