#!/usr/bin/env python3
"""Run locks: two trainers of one job at once never both write it. A second `foldline train
--fold 1` refuses the fold its first holds, naming it, and leaves the run directory as it was; a
lock left by a killed trainer is taken over and the job completes as if never interrupted; a lock
of another host (a real second hostname: `unshare --uts`) is refused while its heartbeat is fresh
and taken over once it is older than dist.lock_timeout_s; --restart refuses to delete a run one of
whose jobs is held. Real processes, real training, compared with an uninterrupted run."""
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FOLDLINE, TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402

SINCE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
EPOCHS = 12  # about 1 s of training: the holder is stopped (SIGSTOP) or killed within milliseconds of a line


def snapshot(top):
    """Every file under top (temporary files, locks included) and a hash of its bytes."""
    out = {}
    for d, _, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, top)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def job_files(path):
    """A job directory's results, without what only watches a run (status.txt, TensorBoard events: their
    names hold the writer's host and time, and a job resumed by another process starts a new file)."""
    return sorted(n for n in os.listdir(path)
                  if not n.startswith(".") and n != "status.txt" and not n.startswith("events.out.tfevents."))


def read_preds(path):
    with h5py.File(path) as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return out


class Locks(TempDirTest):
    @classmethod
    def setUpClass(cls):
        cls._shared = tempfile.TemporaryDirectory(prefix="fl-locks-")
        cls.data = os.path.join(cls._shared.name, "data.h5")
        write_data_file(cls.data, n_per_class=30, folds=2, n_test=20)
        cfg = os.path.join(cls._shared.name, "ref.cfg")
        with open(cfg, "w") as f:
            f.write(config_text(cls.data, os.path.join(cls._shared.name, "runs"), "t", [model_text("m", EPOCHS)]))
        rc, out, err = run("train", cfg, "--fold", "1")
        assert rc == 0, err
        cls.ref = os.path.join(cls._shared.name, "runs", "t")

    @classmethod
    def tearDownClass(cls):
        cls._shared.cleanup()

    def setUp(self):
        super().setUp()
        self.cfg = self.write("t.cfg", config_text(self.data, self.path("runs"), "t", [model_text("m", EPOCHS)]))
        self.run_dir = self.path("runs", "t")
        self.job_dir = os.path.join(self.run_dir, "m", "fold1")
        self.lock = os.path.join(self.job_dir, "lock")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        super().tearDown()

    def start(self, argv_prefix=()):
        """`foldline train CFG --fold 1` in the background, its stdout in a file."""
        self.out_file = self.path("holder%d.txt" % len(self.procs))
        with open(self.out_file, "w") as out:
            p = subprocess.Popen(list(argv_prefix) + [FOLDLINE, "train", self.cfg, "--fold", "1"], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def wait_for(self, p, text, timeout=120):
        """Until the holder's output has text (a log line: it is inside its job)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.out_file) as f:
                got = f.read()
            if text in got:
                return got
            self.assertIsNone(p.poll(), "the holder ended before %r:\n%s" % (text, got))
            time.sleep(0.01)
        self.fail("no %r within %d s" % (text, timeout))

    def finish(self, p):
        rc = p.wait(timeout=120)
        with open(self.out_file) as f:
            out = f.read()
        self.assertEqual(rc, 0, out)
        return out

    def assert_one_line(self, out, pattern):
        lines = [ln for ln in out.splitlines() if re.fullmatch(pattern, ln)]
        self.assertEqual(len(lines), 1, "%r in:\n%s" % (pattern, out))
        return lines[0]

    def assert_same_as_uninterrupted(self):
        """The job's files as one uninterrupted solo run's: the same names, settings and run.cfg
        bytes, and the same predictions (every dataset of preds.h5), no lock left."""
        self.assertEqual(job_files(self.job_dir), job_files(os.path.join(self.ref, "m", "fold1")))
        for name in ("run.cfg", "m/fold1/settings.txt"):
            with open(os.path.join(self.run_dir, name), "rb") as a, open(os.path.join(self.ref, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        got = read_preds(os.path.join(self.job_dir, "preds.h5"))
        want = read_preds(os.path.join(self.ref, "m", "fold1", "preds.h5"))
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            self.assertTrue(np.array_equal(got[k], want[k]), k)

    def test_a_second_trainer_of_the_same_fold_refuses_it_naming_the_holder_and_changes_nothing(self):
        holder = self.start()
        self.wait_for(holder, "[m fold 1] epoch 1/%d" % EPOCHS)
        holder.send_signal(signal.SIGSTOP)  # holds still while the second one runs, lock held, pid alive
        before = snapshot(self.run_dir)
        self.assertIn("m/fold1/lock", before)
        rc, out, err = run("train", self.cfg, "--fold", "1")
        after = snapshot(self.run_dir)
        holder.send_signal(signal.SIGCONT)
        self.assertEqual(rc, 0, err)
        self.assert_one_line(out, r"\[m fold 1\] held by host %s pid %d since %s \(heartbeat \d+ s ago\), skipped"
                             % (re.escape(os.uname().nodename), holder.pid, SINCE))
        self.assertNotIn("epoch", out)
        self.assertEqual(out.splitlines()[-1],
                         "vote: 2 of 2 jobs not finished yet; run foldline vote %s when they are" % self.run_dir)
        self.assertEqual(before, after)  # nothing of the run written or removed by the refused start
        self.finish(holder)
        self.assertFalse(os.path.exists(self.lock))
        self.assert_same_as_uninterrupted()

    def test_a_lock_left_by_a_killed_trainer_is_taken_over_and_the_job_completes_as_uninterrupted(self):
        holder = self.start()
        self.wait_for(holder, "[m fold 1] epoch 3/%d" % EPOCHS)  # last.pt written at epoch ends
        holder.kill()
        holder.wait()
        self.assertTrue(os.path.exists(self.lock))  # left behind
        rc, out, err = run("train", self.cfg, "--fold", "1")
        self.assertEqual(rc, 0, err)
        self.assert_one_line(out, r"\[m fold 1\] taking over the lock of host %s pid %d \(heartbeat \d+ s old, dead\)"
                             % (re.escape(os.uname().nodename), holder.pid))
        self.assertIn("[m fold 1] resumed from last.pt at epoch", out)
        self.assertFalse(os.path.exists(self.lock))
        for name in os.listdir(self.job_dir):  # the takeover removed the dead holder's files of the lock
            if name.startswith("lock"):
                self.fail("%s left in %s" % (name, os.listdir(self.job_dir)))
        # not a killed write's temporary
        self.assertEqual(job_files(self.job_dir), job_files(os.path.join(self.ref, "m", "fold1")))
        got = read_preds(os.path.join(self.job_dir, "preds.h5"))
        want = read_preds(os.path.join(self.ref, "m", "fold1", "preds.h5"))
        for k in want:
            self.assertTrue(np.array_equal(got[k], want[k]), k)

    def test_a_lock_of_another_host_is_refused_while_its_heartbeat_is_fresh_and_taken_over_once_older_than_the_timeout(self):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare for a second hostname")
        if subprocess.run(["unshare", "--uts", "true"], stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("unshare --uts is not allowed here")
        other = "otherhost" if os.uname().nodename != "otherhost" else "otherhost2"
        # The holder under another hostname on the same filesystem: its pid means nothing here, only
        # its heartbeat counts. `exec` keeps its pid the Popen's.
        holder = self.start(["unshare", "--uts", "sh", "-c", 'hostname %s && exec "$0" "$@"' % other])
        self.wait_for(holder, "[m fold 1] epoch 1/%d" % EPOCHS)
        holder.send_signal(signal.SIGSTOP)  # a hung host: alive, no more heartbeats
        rc, out, err = run("train", self.cfg, "--fold", "1")  # default dist.lock_timeout_s = 60
        self.assertEqual(rc, 0, err)
        self.assert_one_line(out, r"\[m fold 1\] held by host %s pid %d since %s \(heartbeat \d+ s ago\), skipped"
                             % (other, holder.pid, SINCE))
        self.assertNotIn("epoch", out)
        deadline = time.time() + 60
        while time.time() - os.stat(self.lock).st_mtime <= 5.5:  # the heartbeat older than 5 s
            self.assertLess(time.time(), deadline)
            time.sleep(0.1)
        rc, out, err = run("train", self.cfg, "--fold", "1", "--set", "dist.lock_timeout_s=5")
        self.assertEqual(rc, 0, err)
        line = self.assert_one_line(
            out, r"\[m fold 1\] taking over the lock of host %s pid %d \(heartbeat (\d+) s old, older than "
            r"dist.lock_timeout_s = 5 s\)" % (other, holder.pid))
        self.assertGreaterEqual(int(re.search(r"heartbeat (\d+)", line).group(1)), 5)
        self.assertIn("predicted", out)
        holder.kill()  # still stopped: it never writes again
        holder.wait()
        self.assertFalse(os.path.exists(self.lock))
        self.assert_same_as_uninterrupted()

    def test_two_test_hosts_a_hung_hosts_lock_is_refused_while_fresh_then_taken_over(self):
        """Host 0 (tests/hosts/testhosts.py: its own network namespace and hostname, this
        filesystem) holds fold 1 and hangs (every process stopped); host 1 refuses the fold while the
        heartbeat is fresh and takes it over once it is older than dist.lock_timeout_s."""
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hosts"))
        try:
            from testhosts import TestHosts, Unavailable
        except ImportError:
            self.skipTest("no tests/hosts/testhosts.py")
        try:
            h = TestHosts(n=2)
        except Unavailable as e:
            self.skipTest(str(e))
        with h:
            self.out_file = self.path("host0.txt")
            with open(self.out_file, "w") as out:
                holder = h.popen(0, [FOLDLINE, "train", self.cfg, "--fold", "1"], stdout=out,
                                 stderr=subprocess.STDOUT)
            self.wait_for(holder, "[m fold 1] epoch 1/%d" % EPOCHS)
            h.stop_host(0, signal.SIGSTOP)  # the host hangs: no more heartbeats
            r = h.run(1, [FOLDLINE, "train", self.cfg, "--fold", "1"], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assert_one_line(r.stdout, r"\[m fold 1\] held by host %s pid \d+ since %s \(heartbeat \d+ s ago\), "
                                 r"skipped" % (re.escape(h.names[0]), SINCE))
            deadline = time.time() + 60
            while time.time() - os.stat(self.lock).st_mtime <= 5.5:
                self.assertLess(time.time(), deadline)
                time.sleep(0.1)
            r = h.run(1, [FOLDLINE, "train", self.cfg, "--fold", "1", "--set", "dist.lock_timeout_s=5"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assert_one_line(r.stdout, r"\[m fold 1\] taking over the lock of host %s pid \d+ \(heartbeat \d+ s "
                                 r"old, older than dist.lock_timeout_s = 5 s\)" % re.escape(h.names[0]))
            h.stop_host(0, signal.SIGKILL)
        self.assertFalse(os.path.exists(self.lock))
        self.assert_same_as_uninterrupted()

    def test_restart_is_refused_while_another_trainer_holds_a_fold_and_deletes_nothing(self):
        holder = self.start()
        self.wait_for(holder, "[m fold 1] epoch 1/%d" % EPOCHS)
        holder.send_signal(signal.SIGSTOP)
        before = snapshot(self.run_dir)
        rc, out, err = run("train", self.cfg, "--restart")
        after = snapshot(self.run_dir)
        holder.send_signal(signal.SIGCONT)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, r"^foldline: error: %s: --restart: %s is held by host %s pid %d since %s \(heartbeat "
                         r"\d+ s ago\), a trainer of this run that is still running; %s is left as it is HINT: "
                         % (re.escape(self.cfg), re.escape(self.lock), re.escape(os.uname().nodename), holder.pid,
                            SINCE, re.escape(self.run_dir)))
        self.assertEqual(before, after)
        self.finish(holder)
        self.assert_same_as_uninterrupted()

    def test_a_fused_job_trains_the_folds_no_one_holds_and_skips_the_held_one(self):
        frozen = """{ name = "m"; backbone = "smallcnn"; freeze_backbone = true; epochs = %d; batch = 16;
              optimizer = { type = "adam"; lr = 3e-3; }; }""" % EPOCHS
        self.cfg = self.write("t.cfg", config_text(self.data, self.path("runs"), "t", [frozen]))
        holder = self.start()  # --fold 1: the fused job of fold 1 alone
        self.wait_for(holder, "[m fold 1] epoch 1/%d" % EPOCHS)
        holder.send_signal(signal.SIGSTOP)
        rc, out, err = run("train", self.cfg)  # the fused job of folds 0 and 1
        holder.send_signal(signal.SIGCONT)
        self.assertEqual(rc, 0, err)
        self.assert_one_line(out, r"\[m fold 1\] held by host %s pid %d since %s \(heartbeat \d+ s ago\), skipped"
                             % (re.escape(os.uname().nodename), holder.pid, SINCE))
        self.assertIn("[m fold 0] epoch %d/%d" % (EPOCHS, EPOCHS), out)
        self.assertNotIn("[m fold 1] epoch", out)
        self.assertTrue(os.path.exists(os.path.join(self.run_dir, "m", "fold0", "preds.h5")))
        self.assertEqual(out.splitlines()[-1],
                         "vote: 1 of 2 jobs not finished yet; run foldline vote %s when they are" % self.run_dir)
        held_out = self.finish(holder)  # finishing last, the holder votes
        self.assertIn("submission:", held_out)
        for k in (0, 1):
            self.assertEqual([n for n in os.listdir(os.path.join(self.run_dir, "m", "fold%d" % k)) if "lock" in n], [])

    def test_lock_timeout_below_the_heartbeat_margin_is_a_config_error_naming_the_key(self):
        rc, out, err = run("train", self.cfg, "--set", "dist.lock_timeout_s=2")
        self.assertEqual(rc, 2, err)  # a config mistake
        self.assertIn("dist.lock_timeout_s: must be >= 5, found 2", err)
        self.assertFalse(os.path.exists(self.run_dir))


if __name__ == "__main__":
    unittest.main(verbosity=2)
