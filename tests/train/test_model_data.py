#!/usr/bin/env python3
"""`foldline train` with per-model data (models.[i].data = { file; mean; std; }): two models
on two data files of the same rows at two image sizes train and vote, each job with its
own file's shape and its own mean/std in settings.txt; data files whose labels, folds or
test rows differ from the first model's are refused before any job, in one line naming
the config file, line and key; a model's own mean of the wrong length likewise.

Data files are written with h5py (tests/train/common.py); Debian's /usr/bin/python3."""
import os
import sys
import unittest

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TempDirTest, model_text, run, write_data_file  # noqa: E402


def two_model_config(data_a, data_b, out_dir, b_data_extra='mean = [0.4]; std = [0.3];'):
    return """run = { name = "md"; out_dir = "%s"; seed = 7; threads = 1; };
data = { file = "%s"; mean = [0.5]; std = [0.25]; };
models = ( %s,
  %s );
vote = { method = "hard-hard"; };
""" % (out_dir, data_a, model_text("a"),
       model_text("b", extra='data = { file = "%s"; %s };' % (data_b, b_data_extra)))


def read(path):
    with open(path) as f:
        return f.read()


class PerModelData(TempDirTest):
    def setUp(self):
        super().setUp()
        self.d16 = self.path("d16.h5")
        write_data_file(self.d16, n_per_class=20, n_test=12, size=16, seed=3)

    def line_of(self, text, needle):
        return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)

    def refused(self, d24, *needles):
        text = two_model_config(self.d16, d24, self.path("runs"))
        cfg = self.write("md.cfg", text)
        rc, out, err = run("train", cfg)
        self.assertNotEqual(rc, 0, out + err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("md.cfg:%d: models.[1].data.file:" % self.line_of(text, d24), err)
        for n in needles:
            self.assertIn(n, err)
        self.assertFalse(os.path.exists(self.path("runs", "md", "a")), "a job started")

    def test_two_models_on_two_data_files_train_and_vote(self):
        d24 = self.path("d24.h5")
        write_data_file(d24, n_per_class=20, n_test=12, size=24, seed=3)
        cfg = self.write("md.cfg", two_model_config(self.d16, d24, self.path("runs")))
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("(1, 24, 24) images; models b", out)
        run_dir = self.path("runs", "md")
        for m, shape, mean, std in (("a", "1x16x16", "0.5", "0.25"), ("b", "1x24x24", "0.4", "0.3")):
            for k in (0, 1):
                d = os.path.join(run_dir, m, "fold%d" % k)
                with h5py.File(os.path.join(d, "preds.h5")) as f:
                    self.assertEqual(f["test/probs"].shape, (12, 3))
                settings = read(os.path.join(d, "settings.txt"))
                self.assertIn(", %s, 2 folds" % shape, settings)
                self.assertIn("data.mean = %s\n" % mean, settings)
                self.assertIn("data.std = %s\n" % std, settings)
        self.assertIn('data_file = "%s"' % os.path.realpath(self.d16), read(os.path.join(run_dir, "run.cfg")))
        rows = read(os.path.join(run_dir, "ensemble", "submission.csv")).splitlines()
        self.assertEqual(len(rows), 13)
        rc, out, err = run("vote", run_dir, "--method", "soft-soft")  # alone, from run.cfg's data file
        self.assertEqual(rc, 0, out + err)
        # A rerun with the same config skips every job (settings match, per model).
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out.count("skipped"), 4, out)

    def test_every_model_may_give_its_own_file_without_a_top_level_one(self):
        d24 = self.path("d24.h5")
        write_data_file(d24, n_per_class=20, n_test=12, size=24, seed=3)
        text = two_model_config(self.d16, d24, self.path("runs")).replace(
            'file = "%s"; mean = [0.5]' % self.d16, 'mean = [0.5]').replace(
            model_text("a"), model_text("a", extra='data = { file = "%s"; };' % self.d16))
        rc, out, err = run("train", self.write("md.cfg", text), "--set", "folds.use=[0]")
        self.assertEqual(rc, 0, out + err)

    def test_a_data_file_with_other_labels_is_refused_before_any_job(self):
        d24 = self.path("d24.h5")
        write_data_file(d24, n_per_class=20, n_test=12, size=24, seed=4)  # another shuffle of the labels
        self.refused(d24, "does not hold the rows of", "train row", "HINT:")

    def test_a_data_file_with_other_folds_is_refused_before_any_job(self):
        d24 = self.path("d24.h5")
        write_data_file(d24, n_per_class=20, n_test=12, size=24, seed=3)
        with h5py.File(d24, "r+") as f:
            fold = f["train/fold"][...]
            fold[[0, 1]] = fold[[1, 0]] if fold[0] != fold[1] else fold[[0, 1]]
            fold[5] = 1 - fold[5]
            f["train/fold"][...] = fold
        self.refused(d24, "train row", "fold")

    def test_a_data_file_with_other_test_rows_is_refused_before_any_job(self):
        d24 = self.path("d24.h5")
        write_data_file(d24, n_per_class=20, n_test=10, size=24, seed=3)
        self.refused(d24, "another test set", "10 test rows", "12")

    def test_a_model_mean_of_the_wrong_length_is_refused(self):
        d24 = self.path("d24.h5")
        write_data_file(d24, n_per_class=20, n_test=12, size=24, seed=3)
        text = two_model_config(self.d16, d24, self.path("runs"), b_data_extra="mean = [0.5, 0.5];")
        rc, out, err = run("train", self.write("md.cfg", text))
        self.assertNotEqual(rc, 0, out + err)
        self.assertIn("md.cfg:%d: models.[1].data.mean: expected 1 value (the data file has 1 channel), found 2"
                      % self.line_of(text, "mean = [0.5, 0.5]"), err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
