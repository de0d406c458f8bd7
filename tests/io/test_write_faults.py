#!/usr/bin/python3
"""Write failures: every file foldline writes (the data file, run.cfg, metrics.csv, the
checkpoints, preds.h5, the submission and the report) is written to a temporary name and renamed,
so a full disk leaves the previous file as it was, no temporary behind, and one line on stderr
naming the file, exit status 1.

Two ways to fill the disk. Where the tests may mount (root with CAP_SYS_ADMIN), a real tmpfs of a
few hundred KB, filled with a filler file: the system's own ENOSPC, wherever it strikes. Everywhere,
the test hook FOLDLINE_FAULT_WRITE=NAME[:K], which makes the temporary file of the K-th file named
NAME a link to /dev/full: every write to it fails with ENOSPC, at a chosen file and epoch.
"""

import errno
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
from fltest import prep as common  # noqa: E402

PREFIX = "foldline: error: "
NOSPACE = "No space left on device"

CONFIG = """run = {{ name = "t"; out_dir = "{out}"; seed = 1; threads = 1; }};
data = {{ file = "{data}"; mean = [0.5]; std = [0.25]; }};
folds = {{ use = [0]; }};
models = ( {{ name = "m"; backbone = "smallcnn"; epochs = {epochs}; batch = 8;
             optimizer = {{ type = "adam"; lr = 1e-3; }}; }} );
"""


def run(*args, fault=None, timeout=300):
    env = dict(os.environ)
    env.pop("FOLDLINE_FAULT_WRITE", None)
    if fault:
        env["FOLDLINE_FAULT_WRITE"] = fault
    p = subprocess.run([common.FOLDLINE] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, timeout=timeout)
    return common.Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def temporaries(root):
    """Every foldline temporary file (.<name>.tmp.XXXXXX) under root."""
    return [p for p in glob.glob(os.path.join(root, "**", ".*.tmp.*"), recursive=True)]


def fill(directory, leave=0):
    """Fills the filesystem of directory, then frees about `leave` bytes."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[:len(block) // 2]
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


class Tmpfs:
    """A tmpfs of `size` bytes mounted at a fresh directory, or None where mounting is refused."""

    @staticmethod
    def mount(size):
        if os.geteuid() != 0 or not shutil.which("mount"):
            return None
        d = tempfile.mkdtemp(prefix="foldline-tmpfs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size, "tmpfs", d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != 0:
            os.rmdir(d)
            return None
        return d

    @staticmethod
    def unmount(d):
        subprocess.run(["umount", "-l", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.rmdir(d)


class WriteFaults(common.TempDirCase):

    @classmethod
    def setUpClass(cls):
        """A data file and one complete run (2 epochs, fold 0, voted), made once."""
        cls._cls = tempfile.TemporaryDirectory(prefix="foldline-faults-")
        base = cls._cls.name
        cls.src = os.path.join(base, "src")
        common.simple_layout(cls.src, [6, 6, 6], size=12, seed=5, n_test=4)
        cls.data = os.path.join(base, "data.h5")
        res = run("prep", cls.src, cls.data, "--size", "8", "--folds", "2", "--quiet")
        assert res.rc == 0, res.stderr
        cls.ref = os.path.join(base, "runs")
        res = run("train", cls.write_config(base, cls.ref))
        assert res.rc == 0, res.stdout + res.stderr
        cls.ref_run = os.path.join(cls.ref, "t")

    @classmethod
    def tearDownClass(cls):
        cls._cls.cleanup()

    @classmethod
    def write_config(cls, directory, out, epochs=2):
        path = os.path.join(directory, "t.cfg")
        with open(path, "w") as f:
            f.write(CONFIG.format(out=out, data=cls.data, epochs=epochs))
        return path

    # ------------------------------------------------------------------ helpers

    def fails(self, res, path, *needles):
        self.assertEqual(res.rc, 1, "rc %d\nstdout: %s\nstderr: %s" % (res.rc, res.stdout, res.stderr))
        self.assertTrue(res.stderr.endswith("\n") and res.stderr.count("\n") == 1,
                        "stderr is not one line: %r" % res.stderr)
        self.assertTrue(res.stderr.startswith(PREFIX), res.stderr)
        self.assertIn(path, res.stderr)
        for n in needles:
            self.assertIn(n, res.stderr)

    def train(self, out, fault=None, epochs=2):
        return run("train", self.write_config(self.tmp, out, epochs), fault=fault)

    def job_dir(self, out):
        return os.path.join(out, "t", "m", "fold0")

    # ------------------------------------------------------------------ injected faults

    def test_prep_keeps_the_previous_data_file(self):
        out = os.path.join(self.tmp, "data.h5")
        shutil.copy(self.data, out)
        res = run("prep", self.src, out, "--size", "8", "--folds", "2", "--force", "--quiet", fault="data.h5")
        self.fails(res, out, NOSPACE)
        self.assertEqual(read(out), read(self.data))
        self.assertEqual(temporaries(self.tmp), [])

    def test_train_keeps_the_previous_run_cfg(self):
        out = os.path.join(self.tmp, "runs")
        os.makedirs(os.path.join(out, "t"))
        cfg = os.path.join(out, "t", "run.cfg")
        shutil.copy(os.path.join(self.ref_run, "run.cfg"), cfg)
        with open(cfg, "a") as f:
            f.write("# the previous run's\n")
        before = read(cfg)
        self.fails(self.train(out, fault="run.cfg"), cfg, NOSPACE)
        self.assertEqual(read(cfg), before)
        self.assertFalse(os.path.exists(os.path.join(out, "t", "m")), "a job started")
        self.assertEqual(temporaries(out), [])

    def test_train_keeps_the_first_epochs_metrics(self):
        out = os.path.join(self.tmp, "runs")
        metrics = os.path.join(self.job_dir(out), "metrics.csv")
        self.fails(self.train(out, fault="metrics.csv:2"), metrics, NOSPACE)
        rows = read(metrics).decode().splitlines()
        self.assertEqual(len(rows), 2, rows)  # the header and the first epoch (0), complete
        self.assertTrue(rows[1].startswith("0,"), rows)
        self.assertEqual(temporaries(out), [])
        self.assertFalse(os.path.exists(os.path.join(self.job_dir(out), "preds.h5")))

    def test_train_keeps_the_first_epochs_checkpoint(self):
        out = os.path.join(self.tmp, "runs")
        last = os.path.join(self.job_dir(out), "last.pt")
        self.fails(self.train(out, fault="last.pt:2"), last, NOSPACE)
        self.assertEqual(read(last)[:2], b"PK")  # a complete libtorch archive (zip)
        self.assertEqual(temporaries(out), [])
        self.assertFalse(os.path.exists(os.path.join(self.job_dir(out), "preds.h5")))

    def test_train_names_the_predictions_it_cannot_write(self):
        out = os.path.join(self.tmp, "runs")
        preds = os.path.join(self.job_dir(out), "preds.h5")
        self.fails(self.train(out, fault="preds.h5", epochs=1), preds, NOSPACE)
        self.assertFalse(os.path.exists(preds))
        self.assertEqual(temporaries(out), [])

    def test_vote_keeps_the_previous_submission_and_report(self):
        rd = os.path.join(self.tmp, "t")
        shutil.copytree(self.ref_run, rd)
        for name in ("submission.csv", "report.md"):
            path = os.path.join(rd, "ensemble", name)
            before = read(path)
            self.fails(run("vote", rd, "--method", "soft", fault=name), path, NOSPACE)
            self.assertEqual(read(path), before)
        self.assertEqual(temporaries(rd), [])

    # ------------------------------------------------------------------ a real full filesystem

    def tmpfs(self, size):
        d = Tmpfs.mount(size)
        if d is None:
            self.skipTest("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); "
                          "the FOLDLINE_FAULT_WRITE cases cover the same paths")
        self.addCleanup(Tmpfs.unmount, d)
        return d

    def test_full_tmpfs_prep(self):
        fs = self.tmpfs(256 * 1024)
        out = os.path.join(fs, "data.h5")
        shutil.copy(self.data, out)
        fill(fs)
        res = run("prep", self.src, out, "--size", "8", "--folds", "2", "--force", "--quiet")
        self.fails(res, out, NOSPACE)
        self.assertEqual(read(out), read(self.data))
        self.assertEqual(temporaries(fs), [])

    def test_full_tmpfs_train(self):
        fs = self.tmpfs(1024 * 1024)
        out = os.path.join(fs, "runs")
        os.makedirs(os.path.join(out, "t"))
        cfg = os.path.join(out, "t", "run.cfg")
        shutil.copy(os.path.join(self.ref_run, "run.cfg"), cfg)
        before = read(cfg)
        fill(fs)
        self.fails(self.train(out), cfg, NOSPACE)
        self.assertEqual(read(cfg), before)
        # room for run.cfg and the metrics, not for a checkpoint: the disk fills mid-job
        os.unlink(os.path.join(fs, "filler"))
        fill(fs, leave=16 * 1024)
        res = self.train(out)
        self.fails(res, os.path.join(out, "t", "m", "fold0"), NOSPACE)
        self.assertEqual(temporaries(fs), [])
        self.assertFalse(os.path.exists(os.path.join(self.job_dir(out), "preds.h5")))

    def test_full_tmpfs_vote(self):
        fs = self.tmpfs(1024 * 1024)
        rd = os.path.join(fs, "t")
        shutil.copytree(self.ref_run, rd, ignore=shutil.ignore_patterns("*.pt"))  # vote reads no checkpoint
        sub = os.path.join(rd, "ensemble", "submission.csv")
        before = read(sub)
        fill(fs)
        self.fails(run("vote", rd, "--method", "soft"), sub, NOSPACE)
        self.assertEqual(read(sub), before)
        self.assertEqual(temporaries(fs), [])


load_tests = common.concurrent_load_tests

if __name__ == "__main__":
    common.main()
