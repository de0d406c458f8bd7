#!/usr/bin/env python3
"""Host faults on real test hosts (network namespaces on a bridge, tests/hosts/testhosts.py): foldline
across 2 hosts under launch/mpirun.sh (which sets Open MPI's keepalive from dist.timeout_s), then

- a host's link cut in the middle of a data-parallel all-reduce,
- every process of one host killed,
- one host's rank stopped with SIGSTOP,
- a link that comes back within dist.timeout_s (a blip).

For each fault: every surviving rank ends within dist.timeout_s + 30 s (measured and printed), one
line names the lost host and rank and the job and collective it was in, and a rerun on the surviving
host alone, with fewer ranks, resumes from the checkpoints on the shared filesystem, redoes no finished
job and completes the predictions. The blip loses nothing: the run completes, equal to an undisturbed
run.

Root only (exit 77 otherwise, or without `ip`/mpirun). Needs $FOLDLINE. About 3 minutes on 2 cores.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
from fltest.train import FOLDLINE, config_text, write_data_file  # noqa: E402
from testhosts import TestHosts, skip_unless_available  # noqa: E402

TIMEOUT_S = 12  # dist.timeout_s of these runs: the hang watch, and the keepalive mpirun.sh derives
FOLDS = 2
# No batch norm, SGD: two ranks' data-parallel steps equal one process's up to rounding, and the
# sum of two gradients is the same whichever rank adds: a run is bit-identical to its repeat.
MODEL = """{ name = "%s"; backbone = "mlp"; epochs = %d; batch = 8;
      optimizer = { type = "sgd"; lr = 0.02; momentum = 0.9; }; }"""


def foldline_pids(h, i):
    """The foldline processes inside host i."""
    pids = []
    for pid in h.pids(i):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "foldline":
                    pids.append(pid)
        except OSError:
            pass
    return pids


def read_preds(path):
    with h5py.File(path) as f:
        return f["oof/probs"][:], f["test/probs"][:]


class HostFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="fl-faults-")
        cls.tmp = cls._tmp.name
        cls.data = os.path.join(cls.tmp, "data.h5")
        write_data_file(cls.data, n_per_class=120, classes=3, folds=FOLDS, n_test=30, size=16)
        # The launcher mpirun.sh calls: the harness's mpirun (its rsh agent and the subnet's
        # interfaces), set per test in a small wrapper script.
        cls.wrapper = os.path.join(cls.tmp, "mpirun")

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def setUp(self):
        self.hosts = TestHosts(n=2)
        self.h = self.hosts.__enter__()
        self.addCleanup(self.hosts.__exit__, None, None, None)
        argv = self.h.mpirun_argv(2)
        # mpirun_argv gives "mpirun -np 2 ...": mpirun.sh adds -np, --host, --map-by and keepalive itself.
        base = list(argv)
        for opt in ("-np", "--host"):
            k = base.index(opt)
            del base[k:k + 2]
        with open(self.wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join("'%s'" % a for a in base))
        os.chmod(self.wrapper, 0o755)

    def config(self, name, epochs_a, epochs_b):
        """Model a's jobs come first (jobs go model by model), then model b's."""
        path = os.path.join(self.tmp, name + ".cfg")
        with open(path, "w") as f:
            f.write(config_text(self.data, os.path.join(self.tmp, "runs"), name,
                                [MODEL % ("a", epochs_a), MODEL % ("b", epochs_b)],
                                "dist = { ranks_per_job = 2; timeout_s = %d; };" % TIMEOUT_S))
        return path

    def start(self, cfg, log):
        """launch/mpirun.sh across both hosts (one rank each, one group spanning them), from host 0."""
        env = dict(os.environ, HOSTS="%s,%s" % tuple(self.h.names), THREADS="1", OVERSUBSCRIBE="1",
                   FOLDLINE=FOLDLINE, MPIRUN=self.wrapper)
        out = open(log, "w")
        p = self.h.popen(0, ["bash", os.path.join(ROOT, "launch", "mpirun.sh"), cfg], stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        out.close()
        return p

    @staticmethod
    def read(path):
        with open(path) as f:
            return f.read()

    def wait_for(self, log, pattern, p, limit=120):
        t0 = time.time()
        while time.time() - t0 < limit:
            with open(log) as f:
                text = f.read()
            if re.search(pattern, text):
                return text
            if p.poll() is not None:
                self.fail("the run ended (status %s) before %r:\n%s" % (p.returncode, pattern, text))
            time.sleep(0.2)
        self.fail("no %r within %d s" % (pattern, limit))

    def wait_ranks_gone(self, t0, limit):
        """Seconds from t0 until no foldline process is left on either host (None: not within limit)."""
        while time.time() - t0 < limit:
            if not foldline_pids(self.h, 0) and not foldline_pids(self.h, 1):
                return time.time() - t0
            time.sleep(0.1)
        return None

    def run_dir(self, name):
        return os.path.join(self.tmp, "runs", name)

    def assert_rerun_alone_completes(self, name, cfg):
        """The surviving host alone (one rank: dist.ranks_per_job = 1) resumes and completes the run."""
        preds = lambda m, k: os.path.join(self.run_dir(name), m, "fold%d" % k, "preds.h5")
        done_before = [(m, k) for m in "ab" for k in range(FOLDS) if os.path.exists(preds(m, k))]
        self.assertIn(("a", FOLDS - 1), done_before)  # model a was complete before the fault
        stamps = {j: os.stat(preds(*j)).st_mtime_ns for j in done_before}
        p = self.h.run(0, [FOLDLINE, "train", cfg, "--set", "dist.ranks_per_job=1"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=300)
        out, err = p.stdout.decode(), p.stderr.decode()
        self.assertEqual(p.returncode, 0, err)
        for m, k in done_before:  # finished jobs are not redone
            self.assertIn("[%s fold %d] complete (preds.h5 exists), skipped" % (m, k), out)
            self.assertEqual(os.stat(preds(m, k)).st_mtime_ns, stamps[(m, k)])
        self.assertIn("[b fold 0] resumed from last.pt", out)
        for m in "ab":
            for k in range(FOLDS):
                oof, test = read_preds(preds(m, k))
                self.assertTrue(np.allclose(test.sum(1), 1, atol=1e-5))
        self.assertTrue(os.path.exists(os.path.join(self.run_dir(name), "ensemble", "submission.csv")))
        return out

    def fault_run(self, name, fault):
        """Starts a 2-host data-parallel run, waits until fold 0 is complete and fold 1 trains, applies
        fault(), and returns (seconds until every rank is gone, mpirun's status, the log)."""
        cfg = self.config(name, 1, 40)
        log = os.path.join(self.tmp, name + ".log")
        p = self.start(cfg, log)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.wait_for(log, r"\[b fold 0\] epoch 2/", p)
        self.assertEqual(len(foldline_pids(self.h, 1)), 1)
        t0 = time.time()
        fault()
        gone = self.wait_ranks_gone(t0, TIMEOUT_S + 60)
        # mpirun itself may wait on for the daemon of a host cut off, until the kernel gives up its TCP
        # connection (minutes): that is no rank, and the test does not wait for it.
        try:
            status = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            status = None
        with open(log) as f:
            text = f.read()
        print("\n%s: every rank gone %s s after the fault; mpirun status %s after %.1f s" %
              (name, "%.1f" % gone if gone is not None else "NOT", status, time.time() - t0), file=sys.stderr)
        self.assertIsNotNone(gone, text)
        self.assertLessEqual(gone, TIMEOUT_S + 30, text)
        self.assertNotEqual(status, 0, text)
        if p.poll() is None:
            p.kill()
            p.wait()
        return cfg, text

    def test_a_link_cut_mid_all_reduce_ends_every_rank_and_a_rerun_alone_completes(self):
        cfg, text = self.fault_run("cut", lambda: self.h.cut(1))
        lost = self.h.names[1]
        # One line names the lost host and rank, the job and the collective.
        self.assertRegex(text, r"foldline: error: rank 0 of 2 \(%s\): job b fold 0: MPI_\w+ of [^:]+: group rank 0 "
                               r"\(%s\) waited \d+ s \(dist\.timeout_s\) at collective \d+; group ranks not there: 1 "
                               r"\(world rank 1 on host %s: does not answer" % (self.h.names[0], self.h.names[0], lost))
        self.h.heal(1)
        self.assert_rerun_alone_completes("cut", cfg)

    def test_every_process_of_a_host_killed_ends_the_run_and_a_rerun_alone_completes(self):
        cfg, text = self.fault_run("kill", lambda: self.h.stop_host(1, signal.SIGKILL))
        self.assertIn(self.h.names[1], text)  # mpirun names the lost daemon's host
        self.assert_rerun_alone_completes("kill", cfg)

    def test_a_stopped_rank_is_named_and_every_rank_ends(self):
        def stop():
            for pid in foldline_pids(self.h, 1):
                os.kill(pid, signal.SIGSTOP)
        cfg, text = self.fault_run("sigstop", stop)
        self.assertRegex(text, r"group ranks not there: 1 \(world rank 1 on host %s: does not answer in \d+ s: "
                               r"stopped, dead or unreachable\)" % self.h.names[1])
        self.assert_rerun_alone_completes("sigstop", cfg)

    def test_a_blip_shorter_than_the_timeout_loses_nothing(self):
        ref_cfg = self.config("steady", 1, 3)
        log = os.path.join(self.tmp, "steady.log")
        p = self.start(ref_cfg, log)
        self.assertEqual(p.wait(timeout=300), 0, self.read(log))
        cfg = self.config("blip", 1, 3)
        log = os.path.join(self.tmp, "blip.log")
        p = self.start(cfg, log)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.wait_for(log, r"\[b fold 0\] epoch 1/", p)
        self.h.cut(1)
        time.sleep(TIMEOUT_S / 3)
        self.h.heal(1)
        self.assertEqual(p.wait(timeout=300), 0, self.read(log))
        for m in "ab":
            for k in range(FOLDS):
                x = read_preds(os.path.join(self.run_dir("steady"), m, "fold%d" % k, "preds.h5"))
                y = read_preds(os.path.join(self.run_dir("blip"), m, "fold%d" % k, "preds.h5"))
                self.assertTrue(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]), "%s fold %d differs" % (m, k))


if __name__ == "__main__":
    skip_unless_available()
    unittest.main(verbosity=2)
