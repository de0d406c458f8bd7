"""foldline's one-cycle learning rate (trainer/schedule.c, schedule = { type =
"onecycle"; }) against torch.optim.lr_scheduler.OneCycleLR (an independent
oracle: cosine both ways, div_factor 25, pct_start = warmup, the final rate
min_lr), step by step over whole runs of several lengths.

foldline places the peak at the share `warmup` of all the steps (step
warmup * T of T); torch at step pct_start * T - 1, and its last step at T - 1
rather than T. So the two differ by at most one step's move of the cosine:
the test allows lr * 2 / (warmup * T), a bound that a wrong shape (a linear
ramp, another start or end, the peak elsewhere) exceeds many times over, and
checks that the peaks are at most one step apart.

    python3 test_onecycle.py BUILD/schedule_lr
"""
import math
import subprocess
import sys

try:
    import torch
except ImportError:
    print("skip: no torch (python3-torch)")
    sys.exit(77)


def torch_lrs(lr, warmup, min_lr, epochs, steps):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    start = lr / 25
    final = start / min_lr if min_lr > 0 else math.inf
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps, pct_start=warmup,
                                                anneal_strategy="cos", div_factor=25, final_div_factor=final,
                                                cycle_momentum=False)
    out = []
    for _ in range(epochs * steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def foldline_lrs(binary, lr, warmup, min_lr, epochs, steps):
    r = subprocess.run([binary, "onecycle", repr(lr), repr(warmup), repr(min_lr), str(epochs), str(steps)],
                       capture_output=True, text=True, check=True)
    return [float(v) for v in r.stdout.split()]


CASES = [  # lr, warmup, min_lr, epochs, steps per epoch
    (3e-3, 0.25, 0.0, 10, 375),  # the demo (configs/demo.cfg): 48,000 rows / batch 128
    (3e-3, 0.25, 0.0, 1, 375),
    (0.1, 0.3, 1e-4, 4, 100),
    (1e-3, 0.1, 1e-6, 3, 250),
]


def main():
    binary = sys.argv[1]
    failures = 0
    for lr, warmup, min_lr, epochs, steps in CASES:
        got = foldline_lrs(binary, lr, warmup, min_lr, epochs, steps)
        want = torch_lrs(lr, warmup, min_lr, epochs, steps)
        total = epochs * steps
        assert len(got) == total, (len(got), total)
        diff = max(abs(a - b) for a, b in zip(got, want))
        bound = lr * 2 / (warmup * total)
        peak_got, peak_want = got.index(max(got)), want.index(max(want))
        ok = (diff <= bound and abs(peak_got - peak_want) <= 1 and abs(got[0] - lr / 25) < 1e-15 * lr
              and abs(got[-1] - want[-1]) <= bound and max(got) <= lr * (1 + 1e-12))
        print(f"{'ok' if ok else 'FAIL'}: lr {lr} warmup {warmup} min_lr {min_lr}, {epochs} x {steps} steps: "
              f"max |foldline - torch| {diff:.3g} (bound {bound:.3g}), peak at step {peak_got} (torch {peak_want})")
        failures += not ok
    # The bound is tight enough to see a wrong shape: a linear warm-up instead of the cosine.
    lr, warmup, epochs, steps = 3e-3, 0.25, 10, 375
    want = torch_lrs(lr, warmup, 0.0, epochs, steps)
    n = int(warmup * epochs * steps)
    linear = [lr / 25 + (lr - lr / 25) * i / n for i in range(n)]
    off = max(abs(a - b) for a, b in zip(linear, want))
    sees = off > 10 * lr * 2 / (warmup * epochs * steps)
    print(f"{'ok' if sees else 'FAIL'}: a linear warm-up is {off:.3g} off torch's, over 10x the bound")
    failures += not sees
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
