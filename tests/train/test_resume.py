#!/usr/bin/env python3
"""Never lose finished work: a training stopped by a signal resumes to bit-identical results,
changed configs are refused naming the key, --restart starts afresh, timed checkpoints and
non-finite losses behave as documented."""
import os
import signal
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FOLDLINE, TempDirTest, config_text, model_text, run, seconds_after, write_data_file  # noqa: E402

STOPPED = 75  # exit status of a training stopped at a checkpoint


def read(path):
    with open(path) as f:
        return f.read()


def model(name="m", epochs=3, extra=""):
    return model_text(name, epochs, extra).replace("batch = 32", "batch = 16")


class Resume(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=200, size=24)

    def config(self, name, models=None, extra=""):
        return self.write(name + ".cfg", config_text(self.data, self.path("runs"), name, models or [model()], extra))

    def start(self, cfg, *args):
        out = open(self.path("out.txt"), "w")
        err = open(self.path("err.txt"), "w")
        p = subprocess.Popen([FOLDLINE, "train", cfg] + list(args), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        return p

    def wait_for_training(self, p):
        """Until the process has started its jobs (its signal handlers are in place)."""
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if "train:" in read(self.path("out.txt")):
                return
            time.sleep(0.02)

    def whole_run(self, cfg):
        """Trains cfg uninterrupted; returns the seconds from its "train:" header to its exit."""
        rc, seconds = seconds_after("train:", [FOLDLINE, "train", cfg], self.path("out.txt"), self.path("err.txt"))
        self.assertEqual(rc, 0, read(self.path("err.txt")))
        return seconds

    def interrupted_run(self, cfg, fractions, whole, sig=signal.SIGTERM):
        """Starts cfg again and again, sending sig after each fraction of `whole` seconds (the
        uninterrupted run's time), until it completes. Returns the stop messages seen."""
        stops = []
        for f in list(fractions) + [None] * 20:
            p = self.start(cfg)
            if f is not None:
                self.wait_for_training(p)
                time.sleep(f * whole)
                if p.poll() is None:
                    p.send_signal(sig)
            rc = p.wait(timeout=300)
            err = read(self.path("err.txt"))
            if rc == 0:
                return stops
            self.assertEqual(rc, STOPPED, err)
            stops += [line for line in err.splitlines() if "stopped by SIG" in line]
        self.fail("the run never completed")

    def assert_same_results(self, a, b, folds=(0, 1), name="m"):
        for k in folds:
            pa = self.path("runs", a, name, "fold%d" % k)
            pb = self.path("runs", b, name, "fold%d" % k)
            with h5py.File(os.path.join(pa, "preds.h5")) as fa, h5py.File(os.path.join(pb, "preds.h5")) as fb:
                for key in ("oof/index", "oof/probs", "test/probs"):
                    self.assertTrue(np.array_equal(fa[key][:], fb[key][:]), "%s fold %d %s" % (name, k, key))
            ma = [r.split(",")[:6] for r in read(os.path.join(pa, "metrics.csv")).splitlines()]
            mb = [r.split(",")[:6] for r in read(os.path.join(pb, "metrics.csv")).splitlines()]
            self.assertEqual(ma, mb)  # every column but the timings

    def test_stopped_and_resumed_runs_give_bit_identical_predictions_and_metrics(self):
        whole = self.whole_run(self.config("whole", [model(extra='predict_with = "last";')]))
        stops = self.interrupted_run(self.config("cut", [model(extra='predict_with = "last";')]),
                                     [0.2, 0.3, 0.25, 0.15, 0.3], whole)
        self.assertGreaterEqual(len(stops), 2, stops)
        self.assertTrue(any(not s.split(" step ")[1].startswith("0;") for s in stops), stops)  # mid-epoch too
        for s in stops:
            self.assertIn("last.pt holds it", s)
            self.assertIn("HINT: rerun the same command", s)
        self.assert_same_results("whole", "cut")

    def test_sigusr1_stops_like_sigterm(self):
        # Sent once the first epoch has ended, with many left: inside a job however fast it trains.
        cfg = self.config("u", [model(epochs=10)])
        p = self.start(cfg)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None and "epoch 1/10" not in read(self.path("out.txt")):
            time.sleep(0.02)
        p.send_signal(signal.SIGUSR1)
        self.assertEqual(p.wait(timeout=120), STOPPED)
        self.assertIn("stopped by SIGUSR1", read(self.path("err.txt")))
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 0, err)
        self.assertIn("resumed from last.pt", out)

    def test_a_second_sigint_does_not_wait(self):
        cfg = self.config("twice", [model(epochs=50)])
        p = self.start(cfg)
        self.wait_for_training(p)
        p.send_signal(signal.SIGINT)
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
        self.assertIn(rc, (-signal.SIGINT, STOPPED))  # STOPPED only if the step ended between the two

    def test_rerun_skips_complete_jobs_and_resumes_the_interrupted_one(self):
        cfg = self.config("r", [model(epochs=10)])
        p = self.start(cfg)
        deadline = time.time() + 120
        while "[m fold 1] epoch 1/10" not in read(self.path("out.txt")) and time.time() < deadline:
            time.sleep(0.02)  # fold 0 is complete and fold 1 has 9 epochs to go
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=120), STOPPED)
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 0, err)
        self.assertIn("[m fold 0] complete (preds.h5 exists), skipped", out)
        self.assertIn("[m fold 1] resumed from last.pt", out)

    def test_timed_checkpoints_change_nothing(self):
        rc, out, err = run("train", self.config("plain"))
        self.assertEqual(rc, 0, err)
        timed = self.config("timed", extra="")
        self.write("timed.cfg", read(timed).replace("threads = 1;", "threads = 1; checkpoint_minutes = 0.0001;"))
        p = self.start(timed)
        self.wait_for_training(p)
        seen = set()
        while p.poll() is None:  # last.pt is rewritten within epochs
            try:
                seen.add(os.stat(self.path("runs", "timed", "m", "fold0", "last.pt")).st_mtime_ns)
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        self.assertEqual(p.returncode, 0, read(self.path("err.txt")))
        self.assertGreater(len(seen), 3)  # more than the 3 epoch ends
        self.assert_same_results("plain", "timed")

    def test_a_changed_setting_is_refused_naming_the_key_and_both_values(self):
        cfg = self.config("c")
        self.assertEqual(run("train", cfg)[0], 0)
        changed = self.write("c2.cfg", read(cfg).replace("lr = 3e-3", "lr = 1e-3"))
        rc, out, err = run("train", changed)
        self.assertEqual(rc, 1)
        line = err.strip()
        self.assertEqual(len(line.splitlines()), 1, err)
        self.assertIn("settings.txt", line)
        self.assertIn("models.m.optimizer", line)
        self.assertIn("lr 0.003", line)
        self.assertIn("lr 0.001", line)
        self.assertIn("--restart", line)

    def test_a_changed_seed_or_data_is_refused(self):
        cfg = self.config("s")
        self.assertEqual(run("train", cfg)[0], 0)
        rc, out, err = run("train", cfg, "--set", "run.seed=8")
        self.assertEqual(rc, 1)
        self.assertIn("run.seed = 7", err)
        write_data_file(self.data, n_per_class=200, size=24, seed=5)  # other labels and folds
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 1)
        self.assertIn("data.labels_and_folds", err)

    def test_thread_count_and_vote_changes_are_allowed(self):
        cfg = self.config("t")
        self.assertEqual(run("train", cfg)[0], 0)
        rc, out, err = run("train", cfg, "--set", "run.threads=2", "--set", 'vote.method="hard-hard"')
        self.assertEqual(rc, 0, err)
        self.assertIn("skipped", out)

    def test_restart_discards_the_run(self):
        cfg = self.config("x")
        self.assertEqual(run("train", cfg)[0], 0)
        changed = self.write("x2.cfg", read(cfg).replace("lr = 3e-3", "lr = 1e-3"))
        rc, out, err = run("train", changed, "--restart")
        self.assertEqual(rc, 0, err)
        self.assertIn("--restart: removed", out)
        self.assertNotIn("skipped", out)
        self.assertIn("lr 0.001", open(self.path("runs", "x", "m", "fold0", "settings.txt")).read())

    def test_restart_refuses_a_folder_that_is_not_a_run(self):
        os.makedirs(self.path("runs", "y"))
        keep = self.write(os.path.join("runs", "y", "precious.txt"), "keep me")
        rc, out, err = run("train", self.config("y"), "--restart")
        self.assertEqual(rc, 1)
        self.assertIn("not a foldline run", err)
        self.assertTrue(os.path.exists(keep))

    def test_a_non_finite_loss_stops_the_job_naming_epoch_and_step(self):
        cfg = self.config("nan", [model(epochs=1, extra="").replace("lr = 3e-3", "lr = 1e30")])
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 1)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertRegex(err, r"job m fold 0: the training loss is not finite at epoch 1 step \d+ HINT")

    def test_on_nan_skip_step_skips_that_step_and_goes_on(self):
        # FOLDLINE_FAULT_NONFINITE="EPOCH:STEP" is foldline's fault-injection hook: that step's
        # loss counts as non-finite.
        plain = self.config("plain", [model(epochs=1)])
        self.assertEqual(run("train", plain)[0], 0)
        cfg = self.config("skip", [model(epochs=1)])
        text = read(cfg).replace("threads = 1;", 'threads = 1; on_nan = "skip_step";')
        self.write("skip.cfg", text)
        env = dict(os.environ, FOLDLINE_FAULT_NONFINITE="1:4")
        p = subprocess.run([FOLDLINE, "train", cfg], env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("[m fold 0] epoch 1 step 4: loss not finite, step skipped (run.on_nan)", p.stdout)
        with h5py.File(self.path("runs", "plain", "m", "fold0", "preds.h5")) as a, \
                h5py.File(self.path("runs", "skip", "m", "fold0", "preds.h5")) as b:
            self.assertFalse(np.array_equal(a["test/probs"][:], b["test/probs"][:]))  # one step fewer
        env["FOLDLINE_FAULT_NONFINITE"] = "1:9"
        p = subprocess.run([FOLDLINE, "train", plain, "--restart"], env=env, capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, 1)
        self.assertIn("job m fold 0: the training loss is not finite at epoch 1 step 9", p.stderr)

if __name__ == "__main__":
    unittest.main(verbosity=2)
