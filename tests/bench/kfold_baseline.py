#!/usr/bin/env python3
"""kfold_baseline.py DATA.h5 [options]

The plain PyTorch k-fold script a user would write for Fashion-MNIST, run by
demo_bench.sh next to `foldline train configs/demo.cfg` on the same data file:
the same train rows, the same folds (the file's train/fold), the same test set.
For each fold: train a small CNN on the other folds (Adam, batch 128, shuffled
each epoch, images normalised with the demo's mean and std, optional random
horizontal flips), then predict the test set; the folds' softmax outputs are
averaged (a soft vote). Prints each fold's test accuracy, the vote's, the
training images/s (images over the seconds of the training loops, the first
epoch of each fold included), the training images per CPU-second (the same
images over the process's CPU time in those loops, every thread counted: the
figure a machine shared with other work does not distort much), and the wall
and CPU time of the whole process.

--budget-s S: as many epochs per fold as fit the whole run in S seconds of wall
time (the script given foldline's wall time), from a short timed trial.

--optimizer adamw --weight-decay W --label-smoothing S --onecycle 1 --warmup P
--bf16 1 --tta 1 give the demo's recipe (configs/demo.cfg) in plain PyTorch: AdamW,
label smoothing, torch.optim.lr_scheduler.OneCycleLR per step (pct_start = P),
the forward and the loss under torch.autocast("cpu", torch.bfloat16), and
predictions averaged with the mirror image's.

--net usercnn (the default): the CNN of the PyTorch/Keras Fashion-MNIST
tutorials: conv 32 - pool - conv 64 - pool - linear 128 - dropout - linear.
--net smallcnn / smallresnet: foldline's built-in backbones of those names,
re-written here layer for layer, with foldline's linear head, for the
images/s comparison on the demo's network.
"""
import argparse
import contextlib
import resource
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(i, o, stride=1):
    return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class UserCnn(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(*cbr(1, 32), nn.MaxPool2d(2), *cbr(32, 64), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(inplace=True), nn.Dropout(0.25),
                                  nn.Linear(128, classes))

    def forward(self, x):
        return self.head(self.features(x))


class SmallCnn(nn.Module):
    """foldline's smallcnn + linear head."""

    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(*cbr(1, 16), nn.MaxPool2d(2), *cbr(16, 32), nn.MaxPool2d(2), *cbr(32, 64),
                                      *cbr(64, 64))
        self.head = nn.Linear(64 * 7 * 7, classes)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 7), 1))


class Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        self.down = None
        if stride != 1 or i != o:
            self.down = nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    """foldline's smallresnet + linear head."""

    def __init__(self, classes, widths=(24, 48, 96)):
        super().__init__()
        w0 = widths[0]
        layers = [*cbr(1, w0), nn.MaxPool2d(2)]
        i = w0
        for k, o in enumerate(widths):
            layers.append(Block(i, o, 1 if k == 0 else 2))
            i = o
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(i, classes)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


NETS = {"usercnn": UserCnn, "smallcnn": SmallCnn, "smallresnet": SmallResNet}


def to_input(u8, mean, std, channels_last):
    x = (torch.from_numpy(u8).float() / 255 - mean) / std
    if not channels_last:
        return x
    # Not x.contiguous(memory_format=torch.channels_last): with one channel a contiguous NCHW tensor already
    # counts as channels_last, keeps its NCHW strides, and the first layers then run in the slower layout.
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


def cpu_seconds():
    """The process's user + system CPU time, every thread."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def autocast(bf16):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def predict(model, images, mean, std, batch, channels_last, bf16, tta):
    """Softmax outputs; with tta, the mean of the image's and its mirror's."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = to_input(images[i:i + batch], mean, std, channels_last)
            views = [x, torch.flip(x, [3])] if tta else [x]
            p = 0
            for v in views:
                with autocast(bf16):
                    logits = model(v)
                p = p + torch.softmax(logits.float(), 1)
            out.append(p / len(views))
    return torch.cat(out).numpy()


def train_step(model, opt, x, y, a):
    """One optimizer step on the batch (x, y); returns the loss and the logits."""
    opt.zero_grad(set_to_none=True)
    with autocast(a.bf16):
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=a.label_smoothing)
    loss.backward()
    opt.step()
    return loss, logits


def budget_epochs(a, x_train, y_train, fold, x_test, classes, mean, std, folds, t_start):
    """The epochs per fold that fit the run in a.budget_s seconds: 40 timed training steps (after 10 to warm
    up) and one timed prediction pass of 4096 images, on a throw-away model, give a step's and an image's
    prediction time; the time already spent (loading, this trial) counts against the budget."""
    model = NETS[a.net](classes)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    rows = np.flatnonzero(fold != folds[0])
    if a.train_limit:
        rows = rows[:a.train_limit]
    model.train()
    for i in range(50):
        if i == 10:
            t0 = time.time()
        idx = np.sort(rows[np.arange(i * a.batch, (i + 1) * a.batch) % len(rows)])  # round the rows when few
        x, y = to_input(x_train[idx], mean, std, a.channels_last), torch.from_numpy(y_train[idx])
        train_step(model, opt, x, y, a)[0].item()
    step_s = (time.time() - t0) / 40
    t0 = time.time()
    predict(model, x_test[:4096], mean, std, 512, a.channels_last, a.bf16, a.tta)
    image_s = (time.time() - t0) / 4096
    left = a.budget_s - (time.time() - t_start)
    per_fold = left / len(folds)
    steps = (len(rows) + a.batch - 1) // a.batch
    predict_s = (int((fold == folds[0]).sum()) + len(x_test)) * image_s
    epochs = max(1, int((per_fold - predict_s) / (steps * step_s)))
    print(f"baseline: budget {a.budget_s:.0f} s: {step_s * 1e3:.1f} ms a step, {steps} steps an epoch, "
          f"{predict_s:.1f} s to predict a fold: {epochs} epochs per fold", flush=True)
    return epochs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default")
    ap.add_argument("--net", default="usercnn", choices=sorted(NETS))
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hflip", type=int, default=1, help="random horizontal flips in training")
    ap.add_argument("--onecycle", type=int, default=0, help="OneCycleLR per step (max_lr = --lr)")
    ap.add_argument("--warmup", type=float, default=0.3, help="OneCycleLR's pct_start")
    ap.add_argument("--optimizer", default="adam", choices=["adam", "adamw"])
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--tta", type=int, default=0, help="predict: average with the horizontal mirror (as tta = [hflip])")
    ap.add_argument("--bf16", type=int, default=0, help="forward and loss under CPU autocast (bfloat16)")
    ap.add_argument("--channels-last", type=int, default=0)
    ap.add_argument("--train-limit", type=int, default=0, help="> 0: train on the first N training rows only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=0,
                    help="> 0: instead of --epochs, the most epochs per fold that fit the whole run in this many "
                         "seconds of wall time, from a short timed trial of training and prediction")
    a = ap.parse_args()
    t_start = time.time()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with h5py.File(a.data, "r") as f:
        x_train, y_train = f["train/images"][:], f["train/labels"][:].astype(np.int64)
        fold = f["train/fold"][:]
        x_test, y_test = f["test/images"][:], f["test/labels"][:].astype(np.int64)
    classes = int(y_train.max()) + 1
    mean, std = 0.286, 0.353
    folds = [int(k) for k in a.folds.split(",")]
    if a.budget_s > 0:
        a.epochs = budget_epochs(a, x_train, y_train, fold, x_test, classes, mean, std, folds, t_start)
    vote = np.zeros((len(x_test), classes), np.float64)
    train_images, train_seconds, train_cpu = 0, 0.0, 0.0
    for k in folds:
        torch.manual_seed(a.seed + k)
        rng = np.random.default_rng(a.seed + k)
        rows = np.flatnonzero(fold != k)
        if a.train_limit:
            rows = rows[:a.train_limit]
        model = NETS[a.net](classes)
        if a.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optim = torch.optim.AdamW if a.optimizer == "adamw" else torch.optim.Adam
        opt = optim(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
        steps = a.epochs * ((len(rows) + a.batch - 1) // a.batch)
        sched = None
        if a.onecycle:
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=a.warmup)
        for epoch in range(a.epochs):
            model.train()
            order = rng.permutation(rows)
            t0, c0, loss_sum, correct = time.time(), cpu_seconds(), 0.0, 0
            for i in range(0, len(order), a.batch):
                idx = np.sort(order[i:i + a.batch])
                xb = x_train[idx]
                if a.hflip:
                    flip = rng.random(len(idx)) < 0.5
                    xb = xb.copy()
                    xb[flip] = xb[flip][..., ::-1]
                x, y = to_input(xb, mean, std, a.channels_last), torch.from_numpy(y_train[idx])
                loss, logits = train_step(model, opt, x, y, a)
                if sched:
                    sched.step()
                loss_sum += loss.item() * len(idx)
                correct += int((logits.argmax(1) == y).sum())
            secs, cpu = time.time() - t0, cpu_seconds() - c0
            train_images += len(order)
            train_seconds += secs
            train_cpu += cpu
            print(f"fold {k} epoch {epoch + 1}/{a.epochs}: train loss {loss_sum / len(order):.4f} "
                  f"acc {correct / len(order):.4f} | {secs:.1f} s, {len(order) / secs:.0f} img/s, "
                  f"{len(order) / cpu:.0f} img/CPU-s", flush=True)
        p_val = predict(model, x_train[fold == k], mean, std, 512, a.channels_last, a.bf16, a.tta)
        p = predict(model, x_test, mean, std, 512, a.channels_last, a.bf16, a.tta)
        vote += p
        print(f"fold {k}: val acc {(p_val.argmax(1) == y_train[fold == k]).mean():.4f} "
              f"test acc {(p.argmax(1) == y_test).mean():.4f}", flush=True)
    acc = (vote.argmax(1) == y_test).mean()
    print(f"baseline: {a.net}, {len(folds)} folds x {a.epochs} epochs, soft vote test acc {acc:.4f}")
    print(f"baseline: training {train_images / train_seconds:.0f} images/s")
    print(f"baseline: training {train_images / train_cpu:.0f} images per CPU-second")
    print(f"baseline: wall {time.time() - t_start:.1f} s")
    print(f"baseline: cpu {cpu_seconds():.1f} s")


if __name__ == "__main__":
    main()
