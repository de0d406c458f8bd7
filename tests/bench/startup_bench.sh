#!/usr/bin/env bash
# startup_bench.sh [BEFORE_BINARY] -- how fast the verbs that need no libtorch start and finish:
# `foldline --help`, `foldline inspect FILE --quick`, `foldline vote RUN`, `foldline status RUN`
# (median wall time of 10 runs, and CPU time), and how many shared libraries each loads
# (LD_DEBUG=libs). The data file and the run are small (a 1-epoch smallcnn on 3 classes of
# 16x16 images), so that the figures are start-up, not work. --version and a 1-epoch train, which
# load the libtorch module, are shown for comparison.
#
# BEFORE_BINARY: another foldline to measure on the same files, e.g. one built from a commit before
# the libtorch module existed (git worktree add /tmp/fl-old COMMIT; cmake -S /tmp/fl-old -B
# /tmp/fl-old/build -DCMAKE_BUILD_TYPE=Release; cmake --build /tmp/fl-old/build --target foldline).
# Not part of ctest: a benchmark, not a test (docs/startup.md has the figures).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
foldline=${FOLDLINE:-$root/build/foldline}
before=${1:-}
py=/usr/bin/python3
runs=${BENCH_RUNS:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/foldline-startup-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "bench: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $runs runs each;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) (wall times need a quiet machine; CPU times much less so)"
# A small learnable data file, written with h5py (the tests' writer), and a 1-epoch run.
$py - "$root/tests/lib" "$work" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
from fltest.train import write_data_file, config_text, model_text
work = sys.argv[2]
write_data_file(os.path.join(work, "data.h5"), n_per_class=20, classes=3, folds=2, n_test=12, size=16)
with open(os.path.join(work, "run.cfg"), "w") as f:
    f.write(config_text(os.path.join(work, "data.h5"), os.path.join(work, "runs"), "t", [model_text("m", epochs=1).replace("batch = 32", "batch = 16")]))
PY
"$foldline" train "$work/run.cfg" >"$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }

$py - "$work" "$runs" "$foldline" $before <<'PY'
import os, resource, statistics, subprocess, sys, time
work, runs, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cases = [("--help", ["--help"]),
         ("inspect FILE --quick", ["inspect", work + "/data.h5", "--quick"]),
         ("vote RUN", ["vote", work + "/runs/t"]),
         ("status RUN", ["status", work + "/runs/t"]),
         ("--version", ["--version"])]

def measure(argv):
    walls, cpus = [], []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        walls.append((time.perf_counter() - t0) * 1e3)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1e3)
        if p.returncode not in (0, 3):  # status: 3 when some job is not done
            sys.exit("bench: %s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr.decode()))
    return statistics.median(walls), statistics.median(cpus)

def libraries(argv):
    env = dict(os.environ, LD_DEBUG="libs")
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    return len({l.split("calling init:")[1].strip() for l in p.stderr.decode().splitlines() if "calling init:" in l})

print("%-22s %-8s %10s %10s %6s" % ("command", "binary", "wall ms", "CPU ms", "libs"))
for name, args in cases:
    for label, b in zip(("after", "before"), bins):
        wall, cpu = measure([b] + args)
        print("%-22s %-8s %10.1f %10.1f %6d" % (name, label if len(bins) > 1 else "", wall, cpu, libraries([b] + args)))
PY
# One full (1-epoch) training, for scale: it loads libtorch in any case.
/usr/bin/time -f "train 1 epoch (tiny): %e s wall, %U s user" "$foldline" train "$work/run.cfg" --restart >/dev/null
