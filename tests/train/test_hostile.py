#!/usr/bin/env python3
"""`foldline train`, `vote` and `inspect` tried clumsily and on purpose: every refusal comes before
any write, --restart --fold K touches fold K alone, a changed predict_with or tta re-predicts
without training, vote --out never clobbers what it must not, and each message says what is
wrong with the exit status docs/failures.md's "Exit status" gives (2 usage and config, 1 data
and runtime)."""
import hashlib
import os
import re
import shutil
import socket
import sys
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402

SGD = 'optimizer = { type = "sgd"; lr = 0.02; momentum = 0.9; };'


def model(name="m", epochs=2, batch=16, extra=""):
    return model_text(name, epochs=epochs, extra=extra).replace('optimizer = { type = "adam"; lr = 3e-3; };', SGD) \
        .replace("batch = 32", "batch = %d" % batch)


def tree(root):
    """Every path under root with its size and mtime: what a refusal must not change."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def preds(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in ("oof/index", "oof/probs", "test/probs")}


class Hostile(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=40)  # 2 folds: 60 training rows a job
        self.runs = self.path("runs")

    def cfg(self, name="t", models=None, extra="", file="t.cfg", data=None):
        return self.write(file, config_text(data or self.data, self.runs, name=name, models=models or [model()],
                                            extra=extra))

    def train(self, cfg, *args, status=0):
        rc, out, err = run("train", cfg, *args)
        self.assertEqual(rc, status, out + err)
        return out, err

    def refused(self, cfg, status, *needles, args=()):
        before = tree(self.tmp)
        rc, out, err = run("train", cfg, *args)
        self.assertEqual(rc, status, out + err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("foldline: error: "), err)
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertEqual(tree(self.tmp), before, "a refused run wrote something")
        return lines[0]

    # ---- 3: every refusal before any write -------------------------------------------------------

    def test_every_refusal_comes_before_any_write(self):
        # into a fresh out_dir: nothing of the run may appear
        tiny = self.path("tiny.h5")
        write_data_file(tiny, n_per_class=40, size=1)
        line = self.refused(self.cfg(data=tiny), 2, "t.cfg:", "1x1", "at least 8x8", "--size")
        self.assertFalse(os.path.exists(self.runs), line)
        late = model(epochs=2, extra='augment = ( { from_epoch = 2; ops = ( { op = "hflip"; p = 0.5; } ); } );')
        self.refused(self.cfg(models=[late]), 2, "from_epoch", "beyond the model's epochs = 2")
        self.refused(self.cfg(), 2, "--fold 7", args=("--fold", "7"))
        self.refused(self.cfg(extra="folds = { use = [0, 3]; };"), 2, "fold 3")
        # and into an existing run: its files stay as they were (sizes and mtimes)
        self.train(self.cfg(), "--fold", "0")
        self.refused(self.cfg(data=tiny), 2, "at least 8x8")
        self.refused(self.cfg(models=[late]), 2, "from_epoch")
        self.refused(self.cfg(), 2, "--fold 5", args=("--fold", "5"))
        # --restart discards the run only once the config has passed every check
        self.refused(self.cfg(data=tiny), 2, "at least 8x8", args=("--restart",))
        self.refused(self.cfg(models=[late]), 2, "from_epoch", args=("--restart", "--fold", "0"))
        text = config_text(self.data, self.runs, name="t", models=[model()]).replace("mean = [0.5]", "mean = [0.5, 0.5, 0.5]")
        self.refused(self.write("t.cfg", text), 2, "data.mean")
        self.refused_everywhere_else()

    def refused_everywhere_else(self):
        """classes (two data files of one run that disagree) and batch (a frozen backbone's batch that
        does not split over the folds), each refused before any write: into the existing run, then into
        a fresh out_dir."""
        four = self.path("four.h5")
        write_data_file(four, n_per_class=30, classes=4)  # as many training rows, one class more
        three_folds = self.path("three-folds.h5")
        write_data_file(three_folds, n_per_class=40, folds=3)
        other = model("n", extra='data = { file = "%s"; };' % four)
        frozen = model("f", batch=15, extra="freeze_backbone = true;")  # 3 folds: batch must split by 2
        for runs in (self.runs, self.path("fresh-runs")):
            self.runs = runs
            self.refused(self.cfg(models=[model(), other]), 1, "four.h5", "4 classes and 2 folds, the first has 3 and 2")
            self.refused(self.cfg(models=[frozen], data=three_folds), 2, "models.[0].batch = 15",
                         "a multiple of 2")
        self.assertFalse(os.path.exists(self.runs))

    # ---- 5: no silent acceptance -----------------------------------------------------------------

    def test_a_batch_larger_than_a_jobs_rows_and_too_many_threads_are_said_once(self):
        out, err = self.train(self.cfg(models=[model(epochs=1, batch=100)]), "--fold", "0",
                              "--set", "run.threads=1000")
        self.assertEqual(err.count("models.[0].batch = 100 is larger than the 60 training rows"), 1, err)
        self.assertEqual(err.count("run.threads = 1000 is more than the"), 1, err)
        m = re.search(r"(\d+) threads? per rank", out)
        self.assertLessEqual(int(m.group(1)), os.cpu_count(), out)
        # 8: momentum in its shortest round-trip form
        with open(os.path.join(self.runs, "t", "m", "fold0", "settings.txt")) as f:
            self.assertIn("momentum 0.9 nesterov", f.read())

    # ---- 2: --restart --fold K -------------------------------------------------------------------

    def test_restart_of_one_fold_leaves_the_other_folds_and_the_run_alone(self):
        cfg = self.cfg(models=[model(epochs=1), model("n", epochs=1)])
        self.train(cfg, "--fold", "0")
        self.train(cfg, "--fold", "1")  # the last one votes
        run_dir = os.path.join(self.runs, "t")
        keep = {p: digest(os.path.join(run_dir, p)) for p in
                ("run.cfg", "m/fold1/preds.h5", "n/fold1/preds.h5", "m/fold1/last.pt", "ensemble/submission.csv")}
        before0 = preds(os.path.join(run_dir, "m", "fold0", "preds.h5"))
        out, err = self.train(cfg, "--fold", "0", "--restart")
        self.assertIn("--restart --fold 0: removed %s" % os.path.join(run_dir, "m", "fold0"), out)
        self.assertIn("--restart --fold 0: removed %s" % os.path.join(run_dir, "n", "fold0"), out)
        self.assertNotIn("resumed", out)
        self.assertEqual({p: digest(os.path.join(run_dir, p)) for p in keep}, keep)
        after0 = preds(os.path.join(run_dir, "m", "fold0", "preds.h5"))  # retrained, to the same result
        for k in before0:
            self.assertTrue(np.array_equal(before0[k], after0[k]), k)
        # without --fold, --restart keeps its meaning: the whole run goes
        out, err = self.train(cfg, "--restart")
        self.assertIn("--restart: removed %s" % run_dir, out)

    # ---- 6: re-predict without retraining ---------------------------------------------------------

    def test_a_changed_predict_with_or_tta_repredicts_without_training(self):
        first = model(epochs=2, extra='predict_with = "last";')
        self.train(self.cfg(models=[first]))
        run_dir = os.path.join(self.runs, "t")
        metrics = {k: digest(os.path.join(run_dir, "m", "fold%d" % k, "metrics.csv")) for k in range(2)}
        last = {k: digest(os.path.join(run_dir, "m", "fold%d" % k, "last.pt")) for k in range(2)}
        second = model(epochs=2, extra='predict_with = "best_loss"; tta = [ "hflip", "vflip" ];')
        out, err = self.train(self.cfg(models=[second]))
        for k in range(2):
            self.assertIn("[m fold %d] re-predicting with best_loss, tta [hflip, vflip]; no training" % k, out)
            self.assertEqual(digest(os.path.join(run_dir, "m", "fold%d" % k, "metrics.csv")), metrics[k])
            self.assertEqual(digest(os.path.join(run_dir, "m", "fold%d" % k, "last.pt")), last[k])
        self.assertNotRegex(out, r"epoch \d+/2 lr")
        # a fresh full run with the new settings predicts the same
        self.train(self.cfg(name="fresh", models=[second], file="fresh.cfg"))
        for k in range(2):
            a = preds(os.path.join(run_dir, "m", "fold%d" % k, "preds.h5"))
            b = preds(os.path.join(self.runs, "fresh", "m", "fold%d" % k, "preds.h5"))
            self.assertTrue(np.array_equal(a["oof/index"], b["oof/index"]))
            for key in ("oof/probs", "test/probs"):
                np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, err_msg="fold %d %s" % (k, key))
        # any other change is still refused, and leaves the run as it is
        before = tree(run_dir)
        rc, out, err = run("train", self.cfg(models=[model(epochs=3, extra='predict_with = "best_loss";')]))
        self.assertEqual(rc, 1, err)
        self.assertIn("models.m.epochs = 2, the config now gives 3", err)
        self.assertEqual(tree(run_dir), before)


class HostileVote(TempDirTest):
    """vote --out: never a device, FIFO, socket, directory or a file the vote reads; - is stdout."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._ctmp = tempfile.TemporaryDirectory(prefix="fl-hostile-")
        cls.ctmp = cls._ctmp.name
        cls.data = os.path.join(cls.ctmp, "data.h5")
        write_data_file(cls.data, n_per_class=40)
        with open(os.path.join(cls.ctmp, "t.cfg"), "w") as f:
            f.write(config_text(cls.data, os.path.join(cls.ctmp, "runs"), models=[model(epochs=1)]))
        rc, out, err = run("train", os.path.join(cls.ctmp, "t.cfg"))
        assert rc == 0, out + err
        cls.run_dir = os.path.join(cls.ctmp, "runs", "t")

    @classmethod
    def tearDownClass(cls):
        cls._ctmp.cleanup()

    def refused(self, out, *needles):
        st = os.lstat(out)
        before = tree(self.run_dir)
        rc, so, se = run("vote", self.run_dir, "--out", out, "--quiet")
        self.assertEqual(rc, 2, se)
        self.assertEqual(se.count("\n"), 1, se)
        for n in needles:
            self.assertIn(n, se)
        after = os.lstat(out)
        self.assertEqual((after.st_ino, after.st_mode, after.st_size, after.st_mtime_ns),
                         (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns))
        self.assertEqual(tree(self.run_dir), before)

    def test_special_files_are_refused(self):
        fifo = self.path("fifo.csv")
        os.mkfifo(fifo)
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path("sock.csv"))
        try:
            self.refused("/dev/null", "is a character device")
            self.refused(fifo, "is a FIFO")
            self.refused(self.path("sock.csv"), "is a socket")
            self.refused(self.tmp, "is a directory")
            os.symlink("/proc/self/fd/1", self.path("stdout.csv"))
            self.refused(self.path("stdout.csv"), "is a symbolic link to a FIFO")
        finally:
            s.close()

    def test_the_votes_own_inputs_are_refused_by_inode(self):
        for p, what in (("run.cfg", "the run's run.cfg"), ("m/fold0/preds.h5", "a job's preds.h5"),
                        ("m/fold1/last.pt", "a job's last.pt")):
            alias = self.path("alias-" + p.replace("/", "-"))
            os.link(os.path.join(self.run_dir, p), alias)  # another name: the same file
            self.refused(alias, what, "which this command reads")
        self.refused(self.data, "the run's data file")

    def test_dash_is_stdout_and_the_report_goes_to_stderr(self):
        rc, out, err = run("vote", self.run_dir, "--out", "-")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines()[0], "ID,image_path,target")
        self.assertEqual(len(out.splitlines()), 41, out)  # the CSV alone
        self.assertIn("OOF", err)
        self.assertFalse(os.path.exists("-"))
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, "-")))

    def test_a_link_to_a_file_is_written_through(self):
        target = self.path("real.csv")
        with open(target, "w") as f:
            f.write("old\n")
        os.symlink(target, self.path("link.csv"))
        rc, out, err = run("vote", self.run_dir, "--out", self.path("link.csv"), "--quiet")
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.islink(self.path("link.csv")))
        with open(target) as f:
            self.assertEqual(f.readline(), "ID,image_path,target\n")
        self.assertEqual(sorted(os.listdir(self.tmp)), ["link.csv", "real.csv"])

    def test_messages_say_what_happened(self):
        rc, out, err = run("vote", self.path("no-such-run"))
        self.assertEqual(rc, 2, err)
        self.assertIn("no-such-run: does not exist", err)
        moved = self.path("moved.h5")
        shutil.move(self.data, moved)
        try:
            rc, out, err = run("vote", self.run_dir, "--quiet")
            self.assertEqual(rc, 1, err)
            self.assertIn("which does not exist (moved or deleted?)", err)
            self.assertIn("--data NEW_PATH", err)
            self.assertNotIn("foldline prep", err)
            rc, out, err = run("vote", self.run_dir, "--quiet", "--data", moved)
            self.assertEqual(rc, 0, err)
        finally:
            shutil.move(moved, self.data)
        rc, out, err = run("train", self.tmp)
        self.assertEqual(rc, 2, err)
        self.assertIn("CONFIG is a directory", err)
        self.assertNotIn("included file", err)
        rc, out, err = run("inspect", os.path.join(self.run_dir, "m", "fold0", "last.pt"))
        self.assertEqual(rc, 2, err)
        self.assertIn("is a model checkpoint", err)
        self.assertIn("foldline train reads it", err)
        self.assertNotIn("make it with foldline prep", err)
        rc, out, err = run("inspect", os.path.join(self.run_dir, "m", "fold0", "preds.h5"))
        self.assertEqual(rc, 0, err)
        self.assertIn("epoch:       1 (1-based", out)  # the train log's count: epoch 1/1
        rc, out, err = run("--help")
        self.assertRegex(out, r"train CONFIG \[--fold K\].*\[--restart\]")


if __name__ == "__main__":
    unittest.main(verbosity=2)
