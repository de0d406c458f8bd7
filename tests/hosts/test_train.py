#!/usr/bin/env python3
"""foldline train across two test hosts (tests/hosts/testhosts.py), each run checked against one
process alone with the same config:

- fold-parallel: mpirun -np 2 --map-by node (a rank on each host, run.threads = 1): every
  preds.h5 and the submission bit for bit those of one process; the log names both hosts.
- data-parallel: one group of 2 ranks spanning the 2 hosts (its all-reduce goes over the veths):
  the loss curve and predictions of one process within rounding (tests/mpi/test_mpi.py's bounds).
- SLURM: launch/slurm/train.sbatch with sbatch -N 2 (srun --mpi=pmix, and mpirun inside the
  allocation), the array form (submit-folds.sh: one fold per array task, a node each, then the
  vote job), and preemption: SIGUSR1 to the batch script of a 2-node job, status 75, the requeue,
  and the restarted job resumes to the predictions of one process.

Skipped (77) when not root or without ip/unshare, mpirun, slurm-wlm or munge. Needs $FOLDLINE
(tests/tests.cmake sets it); about a minute on 2 cores.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
import testhosts  # noqa: E402
from fltest.train import FOLDLINE, config_text, model_text, read_metrics, run, write_data_file  # noqa: E402
from testhosts import TestHosts  # noqa: E402

SLURM = os.path.join(ROOT, "launch", "slurm")
SMALLCNN = model_text("m", epochs=1).replace("batch = 32", "batch = 16")
# No batch norm and SGD, as tests/mpi/test_mpi.py: data-parallel gradients are those of one process
# up to rounding, and a wrong scale or a missing all-reduce shows in the loss curve.
MLP = """{ name = "m"; backbone = "mlp"; epochs = 4; batch = 8;
      optimizer = { type = "sgd"; lr = 0.02; momentum = 0.9; }; }"""
# Slow enough to be stopped mid-training after its first epoch: 10 epochs of batches of 2.
SLOW = model_text("m", epochs=10).replace("batch = 32", "batch = 2")

H = None
TMP = None
TIMES = {}


def setUpModule():
    global H, TMP
    TMP = tempfile.mkdtemp(prefix="fl-hosts-train-")
    os.chmod(TMP, 0o755)
    t0 = time.time()
    H = TestHosts(n=2, slurm=True)
    TIMES["bring-up"] = time.time() - t0
    # Four folds for mpirun (the job queue hands each host more than one), two for SLURM (the array
    # form trains every fold, one task per fold).
    write_data_file(path("data4.h5"), n_per_class=30, classes=3, folds=4, n_test=20, size=16)
    write_data_file(path("data2.h5"), n_per_class=30, classes=3, folds=2, n_test=20, size=16)


def tearDownModule():
    global H
    if H:
        H.close()
        H = None
    shutil.rmtree(TMP, ignore_errors=True)
    print("hosts_train: " + ", ".join("%s %.1f s" % kv for kv in TIMES.items()), file=sys.stderr)


def path(*p):
    return os.path.join(TMP, *p)


def config(name, data, models, extra=""):
    p = path(name + ".cfg")
    with open(p, "w") as f:
        f.write(config_text(path(data), path("runs"), name, models, extra))
    return p


def run_dir(name):
    return path("runs", name)


def read_preds(name, k):
    with h5py.File(os.path.join(run_dir(name), "m", "fold%d" % k, "preds.h5")) as f:
        return {"oof/index": f["oof/index"][:], "oof/probs": f["oof/probs"][:], "test/probs": f["test/probs"][:]}


def read(p):
    with open(p, errors="replace") as f:
        return f.read()


ALONE = {}


def alone(name, data, models, extra=""):
    """One process alone with config `name`: the reference, run once for every test."""
    if name not in ALONE:
        t0 = time.time()
        rc, out, err = run("train", config(name, data, models, extra))
        ALONE[name] = (rc, out, err, time.time() - t0)
        TIMES["alone " + name] = ALONE[name][3]
    rc, out, err, _ = ALONE[name]
    assert rc == 0, err
    return name


def mpirun(np_, cfg, timeout=240):
    """foldline train CFG with np_ ranks across the 2 hosts, a rank per host in turn; mpirun on host 0."""
    argv = H.mpirun_argv(np_, extra=["--map-by", "node"]) + [FOLDLINE, "train", cfg]
    t0 = time.time()
    r = H.run(0, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, errors="replace",
              timeout=timeout)
    return r, time.time() - t0


class Case(unittest.TestCase):
    def assert_bit_for_bit(self, ref, name, folds):
        for k in folds:
            a, b = read_preds(ref, k), read_preds(name, k)
            for key in a:
                self.assertEqual(a[key].dtype, b[key].dtype)
                self.assertTrue(np.array_equal(a[key], b[key]), "%s fold %d %s differs from one process" % (
                    name, k, key))
        self.assertEqual(read(os.path.join(run_dir(name), "ensemble", "submission.csv")),
                         read(os.path.join(run_dir(ref), "ensemble", "submission.csv")))


class Mpirun(Case):
    def test_fold_parallel_on_two_hosts_gives_the_predictions_of_one_process_bit_for_bit(self):
        ref = alone("fp_alone", "data4.h5", [SMALLCNN])
        before = H.link_bytes(1)
        r, secs = mpirun(2, config("fp", "data4.h5", [SMALLCNN]))
        TIMES["fold-parallel 2 hosts"] = secs
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("train: 2 ranks on 2 hosts in 2 groups of 1", r.stdout)
        self.assertIn("group 0: rank 0 on %s\n" % H.names[0], r.stdout)
        self.assertIn("group 1: rank 1 on %s\n" % H.names[1], r.stdout)
        for k in range(4):
            self.assertEqual(r.stdout.count("[m fold %d] predicted" % k), 1, r.stdout)
        self.assertNotIn("warning", r.stderr)
        self.assertGreater(H.link_bytes(1)[0], before[0], "the hosts talked over the veths")
        self.assert_bit_for_bit(ref, "fp", range(4))

    def test_a_data_parallel_group_spanning_two_hosts_trains_the_loss_curve_of_one_process(self):
        extra = "folds = { use = [0]; };"
        ref = alone("dp_alone", "data4.h5", [MLP], extra)
        before = H.link_bytes(1)
        r, secs = mpirun(2, config("dp", "data4.h5", [MLP], extra + " dist = { ranks_per_job = 2; };"))
        TIMES["data-parallel 2 hosts"] = secs
        after = H.link_bytes(1)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("train: 2 ranks on 2 hosts in 1 group of 2", r.stdout)
        self.assertIn("group 0: ranks 0 on %s; 1 on %s (spans 2 hosts" % tuple(H.names), r.stdout)
        a = read_metrics(os.path.join(run_dir(ref), "m", "fold0", "metrics.csv"))
        b = read_metrics(os.path.join(run_dir("dp"), "m", "fold0", "metrics.csv"))
        self.assertEqual((len(a), len(b)), (4, 4))
        for ra, rb in zip(a, b):
            for col in ("train_loss", "val_loss"):
                x, y = float(ra[col]), float(rb[col])
                self.assertLessEqual(abs(x - y), 1e-4 * abs(x) + 1e-6,
                                     "%s epoch %s: %r vs %r" % (col, ra["epoch"], x, y))
            for col in ("train_acc", "val_acc"):
                self.assertEqual(ra[col], rb[col])
        pa, pb = read_preds(ref, 0), read_preds("dp", 0)
        np.testing.assert_array_equal(pa["oof/index"], pb["oof/index"])
        np.testing.assert_allclose(pa["oof/probs"], pb["oof/probs"], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(pa["test/probs"], pb["test/probs"], rtol=1e-3, atol=1e-5)
        # The gradient all-reduce crossed the veths: 4 epochs x 9 steps, and at each step host 1 needs
        # all of host 0's gradient, 33,283 floats (Linear(16*16, 128) and the linear head, 128 x 3).
        self.assertGreaterEqual(after[0] - before[0], 36 * 33283 * 4, "the all-reduce went over the veths")


class Slurm(Case):
    def sbatch_env(self, **kw):
        return dict({"FOLDLINE": FOLDLINE}, **kw)

    def train_sbatch(self, name, launcher):
        ref = alone("slurm_alone", "data2.h5", [SMALLCNN])
        cfg = config(name, "data2.h5", [SMALLCNN])
        out = path(name + ".out")
        t0 = time.time()
        # Polled rather than sbatch --wait, which looks every few seconds only.
        job, r = H.sbatch(["-N", "2", "--ntasks-per-node=1", "--cpus-per-task=1", "-D", TMP, "-o", out,
                           os.path.join(SLURM, "train.sbatch"), cfg],
                          env=self.sbatch_env(FOLDLINE_LAUNCHER=launcher), wait=False, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        states = H.wait_jobs(job, seconds=240)
        TIMES["sbatch -N 2 " + launcher] = time.time() - t0
        log = read(out) if os.path.exists(out) else ""
        self.assertEqual(states[job], ("COMPLETED", 0, "0:0"), log + H.slurm_logs())
        self.assertIn("2 rank(s) on %s[0-1]: %s" % (H.names[0][:-1], launcher), log)
        self.assertIn("train: 2 ranks on 2 hosts in 2 groups of 1", log)
        self.assertIn("group 0: rank 0 on %s\n" % H.names[0], log)
        self.assertIn("group 1: rank 1 on %s\n" % H.names[1], log)
        self.assertIn("train.sbatch: foldline exited with status 0", log)
        self.assert_bit_for_bit(ref, name, (0, 1))

    def test_train_sbatch_on_two_nodes_with_srun_pmix(self):
        self.train_sbatch("sb_srun", "srun")

    def test_train_sbatch_on_two_nodes_with_mpirun_inside_the_allocation(self):
        self.train_sbatch("sb_mpirun", "mpirun")

    def test_the_array_form_trains_a_fold_on_each_node_then_votes(self):
        ref = alone("slurm_alone", "data2.h5", [SMALLCNN])
        cfg = config("array", "data2.h5", [SMALLCNN])
        t0 = time.time()
        # --exclusive: a whole node per task, so the two folds run on the two nodes.
        r = H.slurm_cmd(os.path.join(SLURM, "submit-folds.sh"), cfg,
                        env=self.sbatch_env(FOLDS="0-1", SBATCH_OPTS="--exclusive --ntasks-per-node=1 "
                                            "--cpus-per-task=1 -D %s -o %s/%%x-%%j.out" % (TMP, TMP)))
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"folds: job (\d+) \(array 0-1: .*\)\nvote:  job (\d+) \(after every fold succeeded: .*\)\n",
                         r.stdout)
        self.assertTrue(m, r.stdout)
        states = H.wait_jobs(m.group(1), m.group(2), seconds=180)
        TIMES["array form"] = time.time() - t0
        self.assertEqual(len(states), 3, states)
        self.assertTrue(all(s[0] == "COMPLETED" for s in states.values()), states)
        nodes, folds = set(), []
        for j in states:
            if j == m.group(2):
                continue
            out = read(path("foldline-folds-%s.out" % j))
            k = int(re.search(r"\(array task (\d)\)", out).group(1))
            self.assertIn("train %s --fold %d --set run.threads=1" % (cfg, k), out)
            self.assertIn("1 model x fold %d (--fold; the run has 2) = 1 job" % k, out)
            nodes.add(re.search(r"1 rank\(s\) on (\S+):", out).group(1))
            folds.append(k)
        self.assertEqual(sorted(folds), [0, 1])
        self.assertEqual(nodes, set(H.names), "one fold on each node")
        vote = read(path("foldline-vote-%s.out" % m.group(2)))
        self.assertIn("[m fold 0] complete (preds.h5 exists), skipped", vote)
        self.assertIn("submission: `%s/ensemble/submission.csv`" % run_dir("array"), vote)
        self.assert_bit_for_bit(ref, "array", (0, 1))

    def test_a_two_node_job_preempted_by_sigusr1_is_requeued_and_resumes_to_the_same_predictions(self):
        ref = alone("slow_alone", "data2.h5", [SLOW])
        name = "preempt"
        out = path(name + ".out")
        t0 = time.time()
        job, r = H.sbatch(["-N", "2", "--ntasks-per-node=1", "--cpus-per-task=1", "--requeue", "-D", TMP, "-o", out,
                           os.path.join(SLURM, "train.sbatch"), config(name, "data2.h5", [SLOW])],
                          env=self.sbatch_env(), wait=False, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        end = time.time() + 120
        while "epoch 1/10" not in (read(out) if os.path.exists(out) else ""):
            self.assertLess(time.time(), end, H.slurm_logs())
            time.sleep(0.05)
        r = H.slurm_cmd("scancel", "--batch", "--signal=USR1", job)  # as --signal=B:USR1@120 would
        self.assertEqual(r.returncode, 0, r.stderr)
        states = H.wait_jobs(job, seconds=180)
        TIMES["preemption"] = time.time() - t0
        log = read(out)
        self.assertEqual(states[job][:2], ("COMPLETED", 1), log)
        self.assertIn("restart 0: 2 rank(s) on %s[0-1]" % H.names[0][:-1], log)
        self.assertIn("train.sbatch: got SIGUSR1: passing SIGUSR1 to the ranks", log)
        self.assertRegex(log, r"job m fold \d: stopped by SIGUSR1 at epoch \d step \d+")
        self.assertIn("foldline stopped to be resumed (status 75): scontrol requeue %s" % job, log)
        self.assertIn("restart 1: 2 rank(s) on %s[0-1]" % H.names[0][:-1], log)
        self.assertIn("resumed from last.pt", log)
        self.assertEqual(log.count("train: 2 ranks on 2 hosts in 2 groups of 1"), 2, log)
        self.assert_bit_for_bit(ref, name, (0, 1))


def main():
    testhosts.skip_unless_available(slurm=True)
    r = unittest.main(verbosity=2, exit=False)
    return 0 if r.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
