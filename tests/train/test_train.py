#!/usr/bin/env python3
"""`foldline train` end to end on a small learnable data file: files, OOF exactness,
checkpoint selection, determinism, skipping complete jobs."""
import os
import sys
import time
import unittest

import h5py
import numpy as np

from fltest.train import TempDirTest, config_text, model_text, read_metrics, run, write_data_file  # noqa: E402

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "images_per_s"]


class TrainEndToEnd(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        self.labels, self.fold, self.test_y = write_data_file(self.data)

    def train(self, models=None, extra="", name="t", args=()):
        cfg = self.write(name + ".cfg", config_text(self.data, self.path("runs"), name, models, extra))
        t0 = time.time()
        rc, out, err = run("train", cfg, *args)
        return rc, out, err, time.time() - t0

    def test_two_folds_one_epoch_writes_every_file_well_under_a_minute(self):
        rc, out, err, secs = self.train()
        self.assertEqual(rc, 0, err)
        self.assertLess(secs, 60)
        run_dir = self.path("runs", "t")
        for k in (0, 1):
            d = os.path.join(run_dir, "m", "fold%d" % k)
            for f in ("preds.h5", "metrics.csv", "last.pt", "best_acc.pt", "best_loss.pt"):
                self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
            rows = read_metrics(os.path.join(d, "metrics.csv"))
            self.assertEqual(len(rows), 1)
            self.assertEqual(list(rows[0].keys())[:8], COLUMNS)
            self.assertGreater(float(rows[0]["images_per_s"]), 0)
            self.assertEqual(float(rows[0]["lr"]), 3e-3)
        sub = open(os.path.join(run_dir, "ensemble", "submission.csv")).read().splitlines()
        self.assertEqual(sub[0], "ID,image_path,target")
        self.assertEqual(len(sub), 41)
        self.assertEqual(sub[1].split(",")[:2], ["0", "0.png"])
        self.assertEqual(sub[40].split(",")[:2], ["39", "39.png"])
        self.assertTrue(os.path.isfile(os.path.join(run_dir, "ensemble", "report.md")))
        self.assertFalse([f for f in os.listdir(run_dir) if ".tmp." in f])

    def test_every_train_row_is_predicted_exactly_once_across_folds(self):
        rc, out, err, _ = self.train()
        self.assertEqual(rc, 0, err)
        seen = np.zeros(len(self.labels), int)
        for k in (0, 1):
            with h5py.File(self.path("runs", "t", "m", "fold%d" % k, "preds.h5")) as f:
                idx = f["oof/index"][:]
                probs = f["oof/probs"][:]
                test = f["test/probs"][:]
                self.assertEqual(f.attrs["fold"], k)
                self.assertEqual(f.attrs["model"], "m")
            np.testing.assert_array_equal(idx, np.flatnonzero(self.fold == k))
            self.assertEqual(probs.shape, (len(idx), 3))
            self.assertEqual(test.shape, (40, 3))
            np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
            np.testing.assert_allclose(test.sum(1), 1, atol=1e-5)
            seen[idx] += 1
        np.testing.assert_array_equal(seen, 1)

    def test_the_model_learns_the_patterns(self):
        rc, out, err, _ = self.train(models=[model_text("m", epochs=3)])
        self.assertEqual(rc, 0, err)
        acc = []
        for k in (0, 1):
            with h5py.File(self.path("runs", "t", "m", "fold%d" % k, "preds.h5")) as f:
                pred = f["oof/probs"][:].argmax(1)
                acc.append((pred == self.labels[f["oof/index"][:]]).mean())
        self.assertGreater(min(acc), 0.8, acc)

    def checkpoint_case(self, which):
        # A high learning rate makes validation wander, so the best epochs differ.
        m = model_text("m", epochs=5, extra='predict_with = "%s"; optimizer = { type = "sgd"; lr = 0.3; momentum = 0.9; };' % which)
        m = m.replace('optimizer = { type = "adam"; lr = 3e-3; };', "")
        rc, out, err, _ = self.train(models=[m], name=which, extra="folds = { use = [0]; };")
        self.assertEqual(rc, 0, err)
        d = self.path("runs", which, "m", "fold0")
        rows = read_metrics(os.path.join(d, "metrics.csv"))
        val_loss = [float(r["val_loss"]) for r in rows]
        val_acc = [float(r["val_acc"]) for r in rows]
        want = {"best_loss": int(np.argmin(val_loss)), "best_acc": int(np.argmax(val_acc)), "last": 4}[which]
        with h5py.File(os.path.join(d, "preds.h5")) as f:
            self.assertEqual(f.attrs["checkpoint"], which)
            self.assertEqual(f.attrs["epoch"], want)
            acc = (f["oof/probs"][:].argmax(1) == self.labels[f["oof/index"][:]]).mean()
        # The OOF predictions come from that epoch's weights: same accuracy as its validation.
        self.assertAlmostEqual(acc, val_acc[want], places=5)
        # preds.h5 and metrics.csv count epochs from 0; the log and the report from 1.
        self.assertEqual(rows[want]["epoch"], str(want))
        self.assertRegex(out, r"\[m fold 0\] predicted .* with %s \(epoch %d\)\n" % (which, want + 1))
        with open(self.path("runs", which, "ensemble", "report.md")) as f:
            report = f.read()
        self.assertIn("| model | fold | epoch (1-based) | checkpoint |", report)
        self.assertIn("| m | 0 | %d | %s |" % (want + 1, which), report)
        return val_loss, val_acc

    def test_predict_with_best_loss_uses_the_epoch_of_lowest_validation_loss(self):
        self.checkpoint_case("best_loss")

    def test_predict_with_best_acc_uses_the_epoch_of_highest_validation_accuracy(self):
        self.checkpoint_case("best_acc")

    def test_predict_with_last_uses_the_last_epoch(self):
        self.checkpoint_case("last")

    def lrs(self, name, schedule, epochs=4):
        m = model_text("m", epochs=epochs, extra="schedule = %s;" % schedule)
        rc, out, err, _ = self.train(models=[m], name=name, extra="folds = { use = [0]; };")
        self.assertEqual(rc, 0, err)
        return [float(r["lr"]) for r in read_metrics(self.path("runs", name, "m", "fold0", "metrics.csv"))]

    def test_step_schedule_multiplies_by_gamma_every_step_epochs(self):
        got = self.lrs("step", '{ type = "step"; step = 2; gamma = 0.1; }')
        np.testing.assert_allclose(got, [3e-3, 3e-3, 3e-4, 3e-4], rtol=1e-5)

    def test_cosine_schedule_warms_up_then_follows_a_half_cosine(self):
        got = self.lrs("cosine", '{ type = "cosine"; warmup_epochs = 1; min_lr = 1e-4; }')
        lr, lo = 3e-3, 1e-4
        want = [lr * 1 / 1] + [lo + (lr - lo) * 0.5 * (1 + np.cos(np.pi * (e - 1) / 3)) for e in (1, 2, 3)]
        np.testing.assert_allclose(got, want, rtol=1e-5)

    def test_rerun_skips_complete_jobs(self):
        rc, out, err, _ = self.train()
        self.assertEqual(rc, 0, err)
        p = self.path("runs", "t", "m", "fold0", "preds.h5")
        before = os.stat(p).st_mtime_ns
        rc, out, err, _ = self.train()
        self.assertEqual(rc, 0, err)
        self.assertIn("skipped", out)
        self.assertEqual(os.stat(p).st_mtime_ns, before)

    def test_same_config_gives_identical_predictions(self):
        runs = []
        for name in ("a", "b"):
            rc, out, err, _ = self.train(name=name)
            self.assertEqual(rc, 0, err)
            with h5py.File(self.path("runs", name, "m", "fold1", "preds.h5")) as f:
                runs.append(f["test/probs"][:])
        np.testing.assert_array_equal(runs[0], runs[1])

    def test_another_seed_gives_other_predictions(self):
        rc, out, err, _ = self.train(name="a")
        self.assertEqual(rc, 0, err)
        rc, out, err, _ = self.train(name="b", args=("--set", "run.seed=8"))
        self.assertEqual(rc, 0, err)
        with h5py.File(self.path("runs", "a", "m", "fold0", "preds.h5")) as fa, \
                h5py.File(self.path("runs", "b", "m", "fold0", "preds.h5")) as fb:
            self.assertFalse(np.array_equal(fa["test/probs"][:], fb["test/probs"][:]))

    def test_augmentation_and_tta_run_and_stay_deterministic(self):
        m = model_text("m", epochs=2, extra='tta = [ "hflip", "vflip" ]; augment = ( { from_epoch = 1; ops = ( '
                       '{ op = "hflip"; p = 0.5; }, { op = "vflip"; p = 0.5; }, { op = "rotate"; degrees = 15.0; p = 0.5; }, '
                       '{ op = "elastic"; alpha = 30.0; sigma = 4.0; p = 0.5; }, '
                       '{ op = "grid_distortion"; num_steps = 4; distort_limit = 0.2; p = 0.5; }, '
                       '{ op = "brightness_contrast"; p = 0.5; }, { op = "cutout"; num_holes = 1; size = 4; p = 0.5; } ); } );')
        probs = []
        for name in ("a", "b"):
            rc, out, err, _ = self.train(models=[m], name=name, extra="folds = { use = [1]; };")
            self.assertEqual(rc, 0, err)
            with h5py.File(self.path("runs", name, "m", "fold1", "preds.h5")) as f:
                probs.append(f["oof/probs"][:])
        np.testing.assert_array_equal(probs[0], probs[1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
