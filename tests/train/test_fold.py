#!/usr/bin/env python3
"""`foldline train --fold K`: one fold per process (a SLURM array task each), run.cfg still
listing every fold, the vote deferred until every job has its preds.h5, and the result bit for
bit that of one full run (run.threads = 1)."""
import os
import sys
import unittest

import h5py
import numpy as np

from fltest.train import TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402

MODELS = [model_text("a"), model_text("b")]


def read_preds(path):
    with h5py.File(path) as f:
        return [f["oof/index"][:], f["oof/probs"][:], f["test/probs"][:]]


class TrainOneFold(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=30, folds=2, n_test=20)

    def config(self, name, extra=""):
        return self.write(name + ".cfg", config_text(self.data, self.path("runs"), name, MODELS, extra))

    def test_two_fold_runs_then_vote_give_the_submission_of_one_full_run_bit_for_bit(self):
        rc, out, err = run("train", self.config("full"))
        self.assertEqual(rc, 0, err)
        split = self.config("split")
        split_dir = self.path("runs", "split")

        rc, out, err = run("train", split, "--fold", "1")
        self.assertEqual(rc, 0, err)
        self.assertIn("x fold 1 (--fold; the run has 2) = 2 jobs", out)
        self.assertIn("vote: 2 of 4 jobs not finished yet; run foldline vote %s when they are" % split_dir, out)
        self.assertFalse(os.path.exists(os.path.join(split_dir, "ensemble")))
        for m in "ab":
            self.assertTrue(os.path.isfile(os.path.join(split_dir, m, "fold1", "preds.h5")))
            self.assertFalse(os.path.exists(os.path.join(split_dir, m, "fold0")))
        with open(os.path.join(split_dir, "run.cfg")) as f:
            self.assertIn("folds = [ 0, 1 ];", f.read())

        rc, out, err = run("train", split, "--fold=0")  # the last fold: every job is done, it votes
        self.assertEqual(rc, 0, err)
        self.assertNotIn("not finished yet", out)
        self.assertIn("submission:", out)
        os.remove(os.path.join(split_dir, "ensemble", "submission.csv"))
        rc, out, err = run("vote", split_dir)
        self.assertEqual(rc, 0, err)

        for m in "ab":
            for k in (0, 1):
                full = read_preds(self.path("runs", "full", m, "fold%d" % k, "preds.h5"))
                one = read_preds(os.path.join(split_dir, m, "fold%d" % k, "preds.h5"))
                for x, y in zip(full, one):
                    self.assertTrue(np.array_equal(x, y), (m, k))
        with open(self.path("runs", "full", "ensemble", "submission.csv"), "rb") as f:
            full_sub = f.read()
        with open(os.path.join(split_dir, "ensemble", "submission.csv"), "rb") as f:
            self.assertEqual(f.read(), full_sub)

    def test_a_fold_outside_folds_use_is_a_usage_error_naming_the_fold_and_the_folds(self):
        cfg = self.config("t", 'folds = { use = [1]; };')
        rc, out, err = run("train", cfg, "--fold", "0")
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("--fold 0 is not one of the run's folds (%s: folds.use = [1]) HINT:" % cfg, err)
        self.assertFalse(os.path.exists(self.path("runs", "t")))  # refused before anything is written

    def test_a_fold_outside_the_data_file_is_refused(self):
        rc, out, err = run("train", self.config("t"), "--fold", "2")
        self.assertEqual(rc, 2, err)
        self.assertIn("--fold 2 is not one of the run's folds", err)
        self.assertIn("folds.use = [0, 1]", err)

    def test_a_fold_that_is_not_a_number_is_refused(self):
        for bad in (["--fold", "x"], ["--fold", "-1"], ["--fold"]):
            rc, out, err = run("train", self.config("t"), *bad)
            self.assertEqual(rc, 2, (bad, err))
            self.assertTrue(err.startswith("foldline: error: train: --fold"), err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
