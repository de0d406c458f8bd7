#!/usr/bin/env python3
"""train_baseline.py SRC SIZE EPOCHS THREADS [WORKERS]

The plain PyTorch loop a user would write for the same job foldline's train
benchmark runs: torchvision's resnet18 (num_classes from train.csv), AdamW,
batch 64, no augmentation, images read as PIL files through a DataLoader,
resized to SIZE and normalised with mean 0.5 / std 0.5. Trains on every
train.csv row for EPOCHS epochs and prints the training images/s of the last
epoch (the first one warms up) and the peak RSS.
"""
import csv
import resource
import sys
import time

import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset


class Folder(Dataset):
    def __init__(self, src, size):
        with open(f"{src}/train.csv", newline="") as f:
            self.rows = [(f"{src}/train/{r['image_path']}", int(r["target"])) for r in csv.DictReader(f)]
        self.size = size

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        path, y = self.rows[i]
        img = Image.open(path).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        x = x.permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)
        return x, y


def main():
    src, size, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    workers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = Folder(src, size)
    classes = max(y for _, y in data.rows) + 1
    model = torchvision.models.resnet18(num_classes=classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(data, batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    ips = 0.0
    for epoch in range(epochs):
        model.train()
        t0, seen = time.time(), 0
        for x, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            seen += len(y)
        ips = seen / (time.time() - t0)
        print(f"baseline: epoch {epoch + 1} {ips:.1f} images/s, loss {loss.item():.4f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"baseline: {ips:.1f} images/s (last epoch), peak RSS {rss} KiB (+ largest worker {kids} KiB)")


if __name__ == "__main__":
    main()
