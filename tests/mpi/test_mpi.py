#!/usr/bin/env python3
"""`foldline train` under real mpirun: fold-parallel runs equal to one process, uneven and
spare groups, data-parallel groups equal to one process, the vote after the jobs, and
failures that end every rank.

Needs $FOLDLINE and $MPIRUN (tests/tests.cmake sets both); as root also
OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1. Tiny data (3 classes x 30
images of 16x16) and run.threads = 1 keep it to about a minute on 2 cores.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

from fltest.train import FOLDLINE, config_text, model_text, read_metrics, run, write_data_file  # noqa: E402

MPIRUN = os.environ.get("MPIRUN") or "mpirun"


def mpirun(n, *args, timeout=120, env=None):
    """Runs `mpirun -np n foldline ARGS`; returns (status, stdout, stderr, seconds)."""
    cmd = [MPIRUN, "--oversubscribe", "-np", str(n), FOLDLINE] + [str(a) for a in args]
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       timeout=timeout, env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.time() - t0


def read_preds(path):
    with h5py.File(path) as f:
        return {"oof/index": f["oof/index"][:], "oof/probs": f["oof/probs"][:], "test/probs": f["test/probs"][:],
                "epoch": int(f.attrs["epoch"]), "checkpoint": f.attrs["checkpoint"]}


def foldline_errors(stderr):
    return [l for l in stderr.splitlines() if l.startswith("foldline: error:")]


FOLDS = 5
SMALLCNN = model_text("m", epochs=1).replace("batch = 32", "batch = 16")
# No batch norm: data-parallel gradients are exactly the one-process gradients (up to rounding).
# SGD, not Adam: Adam's steps barely change when every gradient is scaled, SGD's do, so a
# wrong loss scale or a missing all-reduce shows in the loss curve.
MLP = """{ name = "m"; backbone = "mlp"; epochs = 4; batch = 8;
      optimizer = { type = "sgd"; lr = 0.02; momentum = 0.9; }; }"""


class Run:
    """Data file, configs and run directories shared by the tests of this file."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="fl-mpi-")
        self.tmp = self._tmp.name
        self.data = self.path("data.h5")
        self.labels, self.fold, _ = write_data_file(self.data, n_per_class=30, classes=3, folds=FOLDS, n_test=20,
                                                    size=16)
        self.runs = {}

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def config(self, name, models=None, extra=""):
        p = self.path(name + ".cfg")
        with open(p, "w") as f:
            f.write(config_text(self.data, self.path("runs"), name, models or [SMALLCNN], extra))
        return p

    def run_dir(self, name):
        return self.path("runs", name)

    def once(self, name, ranks, models=None, extra=""):
        """Runs config `name` once (alone when ranks is 0) and keeps the result for every test."""
        if name not in self.runs:
            cfg = self.config(name, models, extra)
            if ranks == 0:
                t0 = time.time()
                rc, out, err = run("train", cfg)
                self.runs[name] = (rc, out, err, time.time() - t0)
            else:
                self.runs[name] = mpirun(ranks, "train", cfg)
        return self.runs[name]


R = None


def setUpModule():
    global R
    R = Run()


def tearDownModule():
    R._tmp.cleanup()


class LaunchShapes(unittest.TestCase):
    """run.threads sizes every thread pool, the BLAS's own included: OpenBLAS sizes its pool from the
    process's core mask, which differs between a process alone (every core) and an mpirun rank bound to one
    core, and its products split the work by thread count. A ResNet-18 (its layers go through the BLAS)
    trained alone and under mpirun --bind-to core must give the same model bit for bit."""

    def test_alone_and_mpirun_bound_to_cores_give_the_same_model(self):
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest("needs 2 cores to tell the launch shapes apart")
        data = R.path("grey32.h5")
        write_data_file(data, n_per_class=12, classes=3, folds=2, n_test=6, size=32)
        model = model_text("m", extra='head = { type = "mlp3"; hidden = 1024; act = "relu"; };')
        model = model.replace('backbone = "smallcnn"', 'backbone = "resnet18"').replace("batch = 32", "batch = 12")
        results = {}
        for name in ("shape_alone", "shape_bound"):
            cfg = R.path(name + ".cfg")
            with open(cfg, "w") as f:
                f.write(config_text(data, R.path("runs"), name, [model]))
            if name == "shape_alone":
                rc, out, err = run("train", cfg)
            else:
                p = subprocess.run([MPIRUN, "-np", "2", "--bind-to", "core", "--map-by", "core", FOLDLINE, "train", cfg],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   timeout=300)
                rc, out, err = p.returncode, p.stdout.decode(), p.stderr.decode()
            self.assertEqual(rc, 0, err)
            self.assertIn("1 thread per rank (libtorch, OpenMP, OpenBLAS)", out)
            results[name] = [read_preds(os.path.join(R.run_dir(name), "m", "fold%d" % k, "preds.h5")) for k in (0, 1)]
        for k in (0, 1):
            a, b = results["shape_alone"][k], results["shape_bound"][k]
            self.assertTrue(np.array_equal(a["test/probs"], b["test/probs"]),
                            "fold %d: max difference %g" % (k, np.abs(a["test/probs"] - b["test/probs"]).max()))
            self.assertTrue(np.array_equal(a["oof/probs"], b["oof/probs"]))


class FoldParallel(unittest.TestCase):
    def reference(self):
        rc, out, err, _ = R.once("alone", 0)
        self.assertEqual(rc, 0, err)
        return "alone"

    def assert_same_predictions(self, name):
        ref = self.reference()
        for k in range(FOLDS):
            a = read_preds(os.path.join(R.run_dir(ref), "m", "fold%d" % k, "preds.h5"))
            b = read_preds(os.path.join(R.run_dir(name), "m", "fold%d" % k, "preds.h5"))
            for key in a:
                if isinstance(a[key], np.ndarray):
                    self.assertEqual(a[key].dtype, b[key].dtype)
                    self.assertTrue(np.array_equal(a[key], b[key]), "fold %d %s differs" % (k, key))
                else:
                    self.assertEqual(a[key], b[key])

    def test_two_ranks_give_the_predictions_of_one_process_bit_for_bit(self):
        rc, out, err, _ = R.once("np2", 2)
        self.assertEqual(rc, 0, err)
        self.assertIn("2 ranks on 1 host in 2 groups of 1", out)
        self.assert_same_predictions("np2")

    def test_three_ranks_give_the_predictions_of_one_process_bit_for_bit(self):
        rc, out, err, _ = R.once("np3", 3)
        self.assertEqual(rc, 0, err)
        if os.cpu_count() < 3:  # more ranks than cores: said once, naming the host
            self.assertEqual(err.count("runs 3 ranks on %d core" % os.cpu_count()), 1, err)
            self.assertIn("(oversubscribed)", err)
        self.assert_same_predictions("np3")

    def test_launch_mpirun_sh_starts_np_ranks_with_their_threads(self):
        cfg = R.config("script")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_ALLOW_RUN_AS_ROOT")}  # its own
        env.update(NP="2", THREADS="1", OVERSUBSCRIBE="1", FOLDLINE=FOLDLINE, MPIRUN=MPIRUN)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch", "mpirun.sh")
        p = subprocess.run(["bash", script, cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           stdin=subprocess.DEVNULL, timeout=120)
        out, err = p.stdout.decode(), p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("mpirun.sh: 2 rank(s) x 1 thread(s)", out)
        self.assertIn("1 thread per rank", out)
        self.assertIn("2 ranks on 1 host in 2 groups of 1", out)
        self.assert_same_predictions("script")

    def test_five_folds_on_two_groups_run_every_job_exactly_once(self):
        rc, out, err, _ = R.once("np2", 2)
        self.assertEqual(rc, 0, err)
        for k in range(FOLDS):
            self.assertEqual(out.count("[m fold %d] predicted" % k), 1, out)
            self.assertEqual(len(read_metrics(os.path.join(R.run_dir("np2"), "m", "fold%d" % k, "metrics.csv"))), 1)
        self.assertNotIn("warning", err)

    def test_the_vote_after_the_mpirun_job_equals_the_one_process_vote(self):
        rc, out, err, _ = R.once("np2", 2)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("# foldline vote"), 1, "the vote runs once, on rank 0")
        ens = os.path.join(R.run_dir("np2"), "ensemble")
        self.assertTrue(os.path.isfile(os.path.join(ens, "report.md")))
        with open(os.path.join(ens, "submission.csv")) as f:
            sub = f.read()
        with open(os.path.join(R.run_dir(self.reference()), "ensemble", "submission.csv")) as f:
            self.assertEqual(sub, f.read())
        self.assertEqual(len(sub.splitlines()), 21)
        # `foldline vote` alone on the same run directory writes the same submission.
        rc, vout, verr = run("vote", R.run_dir("np2"), "--out", R.path("again.csv"))
        self.assertEqual(rc, 0, verr)
        with open(R.path("again.csv")) as f:
            self.assertEqual(sub, f.read())

    def test_a_rerun_under_mpirun_skips_the_complete_jobs(self):
        rc, out, err, _ = R.once("np2", 2)
        self.assertEqual(rc, 0, err)
        p = os.path.join(R.run_dir("np2"), "m", "fold3", "preds.h5")
        before = os.stat(p).st_mtime_ns
        rc, out, err, _ = mpirun(2, "train", R.path("np2.cfg"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("skipped"), FOLDS, out)
        self.assertEqual(os.stat(p).st_mtime_ns, before)

    def test_spare_ranks_warn_wait_and_exit_cleanly(self):
        rc, out, err, _ = R.once("spare", 3, extra="folds = { use = [0, 1]; };")
        self.assertEqual(rc, 0, err)
        self.assertEqual(err.count("foldline: warning: 3 groups of 1 rank but 2 jobs"), 1, err)
        for k in (0, 1):
            self.assertTrue(os.path.isfile(os.path.join(R.run_dir("spare"), "m", "fold%d" % k, "preds.h5")))
        self.assertTrue(os.path.isfile(os.path.join(R.run_dir("spare"), "ensemble", "submission.csv")))


class DataParallel(unittest.TestCase):
    def test_two_ranks_train_the_loss_curve_of_one_process_with_the_same_global_batch(self):
        # 72 train rows (fold 0 held out) in batches of 8: 9 steps an epoch, 36 steps in all.
        extra = "folds = { use = [0]; };"
        rc, out, err, _ = R.once("dp_alone", 0, models=[MLP], extra=extra)
        self.assertEqual(rc, 0, err)
        rc, out, err, _ = R.once("dp2", 2, models=[MLP], extra=extra + " dist = { ranks_per_job = 2; };")
        self.assertEqual(rc, 0, err)
        self.assertIn("1 group of 2", out)
        a = read_metrics(os.path.join(R.run_dir("dp_alone"), "m", "fold0", "metrics.csv"))
        b = read_metrics(os.path.join(R.run_dir("dp2"), "m", "fold0", "metrics.csv"))
        self.assertEqual(len(a), 4)
        self.assertEqual(len(b), 4)
        for ra, rb in zip(a, b):
            for col in ("train_loss", "val_loss"):
                x, y = float(ra[col]), float(rb[col])
                self.assertLessEqual(abs(x - y), 1e-4 * abs(x) + 1e-6, "%s epoch %s: %r vs %r" % (col, ra["epoch"], x, y))
            for col in ("train_acc", "val_acc"):
                self.assertEqual(ra[col], rb[col])
        pa = read_preds(os.path.join(R.run_dir("dp_alone"), "m", "fold0", "preds.h5"))
        pb = read_preds(os.path.join(R.run_dir("dp2"), "m", "fold0", "preds.h5"))
        np.testing.assert_array_equal(pa["oof/index"], pb["oof/index"])
        np.testing.assert_allclose(pa["oof/probs"], pb["oof/probs"], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(pa["test/probs"], pb["test/probs"], rtol=1e-3, atol=1e-5)

    def test_ranks_per_job_0_is_one_group_of_every_rank_alone_or_under_mpirun(self):
        # The demo's setting: the same config trains data-parallel on all of mpirun's ranks, and alone
        # as one process; each run equals the one with ranks_per_job spelled out, bit for bit.
        extra = "folds = { use = [0]; };"
        for name, ranks, same in (("dp_all2", 2, "dp2"), ("dp_all1", 0, "dp_alone")):
            rc, out, err, _ = R.once(same, ranks, models=[MLP],
                                     extra=extra + (" dist = { ranks_per_job = 2; };" if ranks else ""))
            self.assertEqual(rc, 0, err)
            rc, out, err, _ = R.once(name, ranks, models=[MLP], extra=extra + " dist = { ranks_per_job = 0; };")
            self.assertEqual(rc, 0, err)
            if ranks:
                self.assertIn("1 group of 2 (dist.ranks_per_job); data-parallel", out)
            a = read_preds(os.path.join(R.run_dir(same), "m", "fold0", "preds.h5"))
            b = read_preds(os.path.join(R.run_dir(name), "m", "fold0", "preds.h5"))
            for key in ("oof/index", "oof/probs", "test/probs"):
                np.testing.assert_array_equal(a[key], b[key], err_msg="%s against %s: %s" % (name, same, key))

    def test_overlap_on_and_off_give_the_same_model_and_that_of_one_process(self):
        # dist.bucket_mb tiny (100 bytes): the MLP's 4 tensors in 3 buckets (the head's bias of 12 bytes
        # joins its weight), started during backward. A bucket
        # skipped (half the gradient) or summed twice changes the SGD loss curve well beyond 1e-4.
        extra = "folds = { use = [0]; };"
        rc, out, err, _ = R.once("dp_alone", 0, models=[MLP], extra=extra)
        self.assertEqual(rc, 0, err)
        runs = {"off": "dist = { ranks_per_job = 2; overlap = false; };",
                "on": "dist = { ranks_per_job = 2; overlap = true; bucket_mb = 0.0001; };"}
        for mode, dist in runs.items():
            rc, out, err, _ = R.once("dp2_" + mode, 2, models=[MLP], extra=extra + " " + dist)
            self.assertEqual(rc, 0, err)
            self.assertIn("3 buckets during backward" if mode == "on" else "after backward", out)
        self.assertNotIn("after backward", R.runs["dp2_on"][1])
        alone = read_preds(os.path.join(R.run_dir("dp_alone"), "m", "fold0", "preds.h5"))
        off = read_preds(os.path.join(R.run_dir("dp2_off"), "m", "fold0", "preds.h5"))
        on = read_preds(os.path.join(R.run_dir("dp2_on"), "m", "fold0", "preds.h5"))
        for key in ("oof/probs", "test/probs"):
            # 2 ranks: every element is the same sum of two numbers, with or without buckets.
            np.testing.assert_allclose(on[key], off[key], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(on[key], alone[key], rtol=1e-3, atol=1e-5)
        a = read_metrics(os.path.join(R.run_dir("dp_alone"), "m", "fold0", "metrics.csv"))
        b = read_metrics(os.path.join(R.run_dir("dp2_on"), "m", "fold0", "metrics.csv"))
        for ra, rb in zip(a, b):
            x, y = float(ra["train_loss"]), float(rb["train_loss"])
            self.assertLessEqual(abs(x - y), 1e-4 * abs(x) + 1e-6, "epoch %s: %r vs %r" % (ra["epoch"], x, y))

    def test_overlap_with_an_empty_shard_equals_one_process(self):
        # 3 ranks, batch 5 of 72 rows: the last batch of every epoch (2 rows) leaves a rank without
        # rows and without backward; it still starts every bucket (zeros), in the same order.
        m = MLP.replace("batch = 8", "batch = 5")
        extra = "folds = { use = [0]; };"
        rc, out, err, _ = R.once("dp_alone5", 0, models=[m], extra=extra)
        self.assertEqual(rc, 0, err)
        rc, out, err, _ = R.once("dp3_on", 3, models=[m],
                                 extra=extra + " dist = { ranks_per_job = 3; bucket_mb = 0.0001; };")
        self.assertEqual(rc, 0, err)
        self.assertIn("3 buckets during backward", out)
        pa = read_preds(os.path.join(R.run_dir("dp_alone5"), "m", "fold0", "preds.h5"))
        pb = read_preds(os.path.join(R.run_dir("dp3_on"), "m", "fold0", "preds.h5"))
        np.testing.assert_allclose(pa["oof/probs"], pb["oof/probs"], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(pa["test/probs"], pb["test/probs"], rtol=1e-3, atol=1e-5)

    def test_a_group_with_batch_norm_predicts_every_row_exactly_once(self):
        # Three ranks, a global batch of 4: the last batch of every epoch leaves a rank without rows.
        m = SMALLCNN.replace("batch = 16", "batch = 4")
        rc, out, err, _ = R.once("dp3", 3, models=[m], extra="folds = { use = [1]; }; dist = { ranks_per_job = 3; };")
        self.assertEqual(rc, 0, err)
        p = read_preds(os.path.join(R.run_dir("dp3"), "m", "fold1", "preds.h5"))
        np.testing.assert_array_equal(p["oof/index"], np.flatnonzero(R.fold == 1))
        np.testing.assert_allclose(p["oof/probs"].sum(1), 1, atol=1e-5)
        self.assertEqual(p["test/probs"].shape, (20, 3))
        np.testing.assert_allclose(p["test/probs"].sum(1), 1, atol=1e-5)
        self.assertEqual(out.count("[m fold 1] predicted"), 1)


class Failures(unittest.TestCase):
    def test_ranks_per_job_not_dividing_the_ranks_is_one_config_error_and_every_rank_exits(self):
        cfg = R.config("indivisible", extra="dist = { ranks_per_job = 2; };")
        rc, out, err, secs = mpirun(3, "train", cfg, timeout=60)
        self.assertNotEqual(rc, 0)
        self.assertLess(secs, 30)
        lines = foldline_errors(err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("indivisible.cfg:5: dist.ranks_per_job: 2 does not divide the 3 ranks", lines[0])
        self.assertIn("HINT", lines[0])
        self.assertFalse(os.path.exists(os.path.join(R.run_dir("indivisible"), "m")), "a job started")

    def job_error_case(self, name, ranks, extra):
        cfg = R.config(name, extra=extra)
        # A file where the job's directory should go: that job fails on whichever group takes it.
        os.makedirs(os.path.join(R.run_dir(name), "m"))
        open(os.path.join(R.run_dir(name), "m", "fold1"), "w").close()
        rc, out, err, secs = mpirun(ranks, "train", cfg, timeout=90)
        self.assertNotEqual(rc, 0)
        self.assertLess(secs, 60)
        lines = foldline_errors(err)
        self.assertGreaterEqual(len(lines), 1, err)
        self.assertTrue(re.search(r"rank \d of %d \([^)]+\): job m fold 1: .*fold1: exists and is not a directory" % ranks,
                                  lines[0]), lines[0])
        self.assertFalse(os.path.exists(os.path.join(R.run_dir(name), "ensemble")), "no vote after a failure")

    def test_a_job_error_under_mpirun_ends_every_rank_naming_the_rank_and_the_job(self):
        self.job_error_case("jobfail", 2, "folds = { use = [0, 1, 2, 3]; };")

    def test_a_job_error_in_a_data_parallel_group_ends_every_rank(self):
        self.job_error_case("dpfail", 2, "folds = { use = [1]; }; dist = { ranks_per_job = 2; };")

    def test_srun_without_pmi_is_refused_instead_of_training_n_copies(self):
        cfg = R.config("srun")
        env = dict(os.environ, SLURM_NTASKS="2", SLURM_PROCID="0")
        p = subprocess.run([FOLDLINE, "train", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           stdin=subprocess.DEVNULL, timeout=60)
        err = p.stderr.decode()
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("SLURM_NTASKS is 2 but this MPI world has 1 rank", err)
        self.assertIn("srun --mpi=pmix", err)
        # The other copies fail too, silently: the error appears once.
        env["SLURM_PROCID"] = "1"
        p = subprocess.run([FOLDLINE, "train", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           stdin=subprocess.DEVNULL, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr.decode().strip(), "")
        self.assertFalse(os.path.exists(R.run_dir("srun")))

    def test_a_task_of_an_srun_step_without_pmi_is_refused_before_mpi_init(self):
        # What srun -n 2 with --mpi=none gives each task (tests/slurm runs the real one): Open
        # MPI's MPI_Init would fail there with advice to rebuild it; foldline stops first.
        cfg = R.config("srunstep")
        env = dict(os.environ, SLURM_NTASKS="2", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="2", SLURM_PROCID="0")
        for procid, lines in (("0", 1), ("1", 0)):
            env["SLURM_PROCID"] = procid
            p = subprocess.run([FOLDLINE, "train", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               stdin=subprocess.DEVNULL, timeout=60)
            err = p.stderr.decode()
            self.assertEqual(p.returncode, 2, err)
            self.assertEqual(len(err.strip().splitlines()), lines, err)  # printed by task 0 only
            if lines:
                self.assertIn("srun started 2 tasks without PMI (srun --mpi=none)", err)
                self.assertIn("HINT: srun --mpi=pmix", err)
        self.assertFalse(os.path.exists(R.run_dir("srunstep")))


SLOW = model_text("m", epochs=4).replace("batch = 32", "batch = 2")  # 48 steps an epoch


class StopsAndFailures(unittest.TestCase):
    """Signals to mpirun, a rank killed or stuck: nothing finished is lost, no rank hangs."""

    def assert_same_as_one_process(self, name):
        rc, out, err, _ = R.once("slow_alone", 0, models=[SLOW])
        self.assertEqual(rc, 0, err)
        for k in range(FOLDS):
            a = read_preds(os.path.join(R.run_dir("slow_alone"), "m", "fold%d" % k, "preds.h5"))
            b = read_preds(os.path.join(R.run_dir(name), "m", "fold%d" % k, "preds.h5"))
            for key in ("oof/index", "oof/probs", "test/probs"):
                self.assertTrue(np.array_equal(a[key], b[key]), "fold %d %s" % (k, key))

    def start(self, name, ranks, *args, models=None, extra=""):
        cfg = R.config(name, models=models, extra=extra)
        out = open(R.path(name + ".out"), "w")
        err = open(R.path(name + ".err"), "w")
        cmd = [MPIRUN, "--oversubscribe", "-np", str(ranks), FOLDLINE, "train", cfg] + list(args)
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            with open(R.path(name + ".out")) as f:
                if "epoch 1/" in f.read():  # every rank is past its start-up (signal handlers in place)
                    break
            time.sleep(0.02)
        return cfg, p

    def output(self, name):
        with open(R.path(name + ".out")) as f, open(R.path(name + ".err")) as g:
            return f.read(), g.read()

    def ranks_of(self, cfg):
        pattern = "^" + re.escape(FOLDLINE + " train " + cfg)  # the ranks, not mpirun
        mine = subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.PIPE).stdout.split()
        return [int(x) for x in mine]

    def test_sigusr1_to_mpirun_checkpoints_every_rank_and_a_rerun_equals_one_process(self):
        cfg, p = self.start("usr1", 2, models=[SLOW])
        time.sleep(0.1)
        p.send_signal(signal.SIGUSR1)  # mpirun forwards SIGUSR1 to every rank
        self.assertEqual(p.wait(timeout=120), 75)
        out, err = self.output("usr1")
        self.assertGreaterEqual(len(re.findall(r"job m fold \d: stopped by SIGUSR1 at epoch \d+ step \d+", err)), 1, err)
        self.assertIn("Rerun the same command to resume (exit status 75)", err)
        rc, out, err, _ = mpirun(2, "train", cfg)
        self.assertEqual(rc, 0, err)
        self.assertIn("resumed from last.pt", out)
        self.assert_same_as_one_process("usr1")

    def test_sigterm_to_mpirun_ends_the_run_and_a_rerun_completes_it(self):
        # Open MPI answers SIGTERM by killing the ranks (SIGTERM, then SIGKILL one second later):
        # whatever was checkpointed survives, and the rerun finishes the run.
        cfg, p = self.start("term", 2, models=[SLOW])
        time.sleep(0.3)
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        self.assertNotEqual(rc, 0)
        self.assertLess(time.time() - t0, 30)
        rc, out, err, _ = mpirun(2, "train", cfg)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(R.run_dir("term"), "ensemble", "submission.csv")))
        self.assert_same_as_one_process("term")

    def test_sigint_to_mpirun_says_where_it_stopped_and_a_rerun_resumes(self):
        # Ctrl-C: Open MPI's mpirun sends the ranks SIGTERM, then SIGKILL one second later, and exits 1
        # whatever they return (measured with Open MPI 4.1). Rank 0 says at once, from its signal
        # handler, at which epoch it stops and that last.pt keeps every finished epoch; the rerun
        # resumes there.
        longer = model_text("m", epochs=25).replace("batch = 32", "batch = 2")  # still training when the signal comes
        cfg, p = self.start("int", 2, models=[longer], extra="folds = { use = [0, 1]; };")
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
        self.assertNotEqual(rc, 0)
        out, err = self.output("int")
        said = re.findall(r"foldline: SIGTERM from the MPI launcher: stopping at epoch (\d+) .*last.pt keeps every "
                          r"finished epoch.*Rerun the same command to resume", err)
        self.assertEqual(len(said), 1, err)
        rc, out, err, _ = mpirun(2, "train", cfg)
        self.assertEqual(rc, 0, err)
        resumed = [int(e) for e in re.findall(r"\[m fold \d\] resumed from last.pt at epoch (\d+)/", out)]
        self.assertTrue(set(resumed) & {int(said[0]), int(said[0]) + 1}, out)  # rank 0's job lost no finished epoch
        self.assertTrue(os.path.exists(os.path.join(R.run_dir("int"), "ensemble", "submission.csv")))

    def test_sigint_to_launch_mpirun_sh_stops_with_status_75_and_a_rerun_resumes(self):
        # launch/mpirun.sh passes Ctrl-C on as SIGUSR1, which mpirun forwards and waits for.
        cfg = R.config("sh_int", models=[SLOW])
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_ALLOW_RUN_AS_ROOT")}
        env.update(NP="2", THREADS="1", OVERSUBSCRIBE="1", FOLDLINE=FOLDLINE, MPIRUN=MPIRUN)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch", "mpirun.sh")
        with open(R.path("sh_int.out"), "w") as out, open(R.path("sh_int.err"), "w") as err:
            p = subprocess.Popen(["bash", script, cfg], stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            with open(R.path("sh_int.out")) as f:
                if "epoch 1/" in f.read():
                    break
            time.sleep(0.02)
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(timeout=120), 75)
        out, err = self.output("sh_int")
        self.assertGreaterEqual(len(re.findall(r"job m fold \d: stopped by SIGUSR1 at epoch \d+ step \d+", err)), 1, err)
        self.assertIn("Rerun the same command to resume (exit status 75)", err)
        rc, out, err, _ = mpirun(2, "train", cfg)
        self.assertEqual(rc, 0, err)
        self.assertIn("resumed from last.pt", out)
        self.assert_same_as_one_process("sh_int")

    def test_a_killed_rank_ends_every_rank_within_a_minute(self):
        cfg, p = self.start("kill9", 2, extra="dist = { ranks_per_job = 2; };",
                            models=[model_text("m", epochs=50).replace("batch = 32", "batch = 4")])
        ranks = self.ranks_of(cfg)
        self.assertEqual(len(ranks), 2, ranks)
        t0 = time.time()
        os.kill(max(ranks), signal.SIGKILL)
        rc = p.wait(timeout=90)
        self.assertNotEqual(rc, 0)
        self.assertLess(time.time() - t0, 60)
        out, err = self.output("kill9")
        self.assertIn("exited on signal 9", err)  # mpirun names the rank, its host and the signal
        self.assertEqual(self.ranks_of(cfg), [])

    def test_a_stuck_rank_is_named_after_dist_timeout_s_and_every_rank_ends(self):
        cfg, p = self.start("stuck", 2, extra="dist = { ranks_per_job = 2; timeout_s = 3; };",
                            models=[model_text("m", epochs=50).replace("batch = 32", "batch = 4")])
        ranks = self.ranks_of(cfg)
        self.assertEqual(len(ranks), 2, ranks)
        t0 = time.time()
        os.kill(max(ranks), signal.SIGSTOP)  # alive but never arrives at the next collective
        try:
            rc = p.wait(timeout=90)
        finally:
            for r in self.ranks_of(cfg):
                os.kill(r, signal.SIGKILL)
        self.assertNotEqual(rc, 0)
        self.assertLess(time.time() - t0, 60)
        out, err = self.output("stuck")
        lines = foldline_errors(err)
        self.assertEqual(len(lines), 1, err)
        m = re.search(r"rank (\d) of 2 \([^)]+\): job m fold 0: .*waited \d+ s \(dist.timeout_s\) at collective "
                      r"\d+; group ranks not there: (\d) \(world rank \d on host [^:]+: (still computing, at collective "
                      r"\d+|does not answer in \d+ s: stopped, dead or unreachable)\)", lines[0])
        self.assertTrue(m, lines[0])
        self.assertNotEqual(m.group(1), m.group(2))  # the waiting rank names the other one


if __name__ == "__main__":
    unittest.main(verbosity=2)
