#!/usr/bin/env python3
"""prep_baseline.py SRC OUT.h5 SIZE WORKERS

What a user would otherwise write: Pillow decode + convert('RGB') +
resize(BILINEAR) in a multiprocessing Pool, written with h5py in the same
layout (uint8 (N, 3, S, S), one image per chunk). Prints images/s.
"""
import csv
import sys
import time
from multiprocessing import Pool

import h5py
import numpy as np
from PIL import Image

SIZE = 224


def load(path):
    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(img).transpose(2, 0, 1)


def init(size):
    global SIZE
    SIZE = size


def main():
    src, out, size, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    t0 = time.time()
    with open(f"{src}/train.csv", newline="") as f:
        train = [r["image_path"] for r in csv.DictReader(f)]
    with open(f"{src}/test.csv", newline="") as f:
        test = [r["image_path"] for r in csv.DictReader(f)]
    with h5py.File(out, "w") as h5, Pool(workers, initializer=init, initargs=(size,)) as pool:
        for name, rows, sub in (("train", train, "train"), ("test", test, "test")):
            ds = h5.create_dataset(f"{name}/images", (len(rows), 3, size, size), np.uint8, chunks=(1, 3, size, size))
            for i, arr in enumerate(pool.imap(load, [f"{src}/{sub}/{p}" for p in rows], chunksize=32)):
                ds[i] = arr
    n = len(train) + len(test)
    dt = time.time() - t0
    print(f"baseline: {n} images in {dt:.2f} s = {n / dt:.0f} images/s on {workers} processes")


if __name__ == "__main__":
    main()
