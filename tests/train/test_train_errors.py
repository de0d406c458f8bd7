#!/usr/bin/env python3
"""Bad config and data for `foldline train`: one line on stderr naming the file, the line
and the key, and no run started; exit status 2 for a config mistake (the fix is in the config or
the command line), 1 for a data or runtime error (docs/failures.md, "Exit status")."""
import os
import sys
import unittest

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402


class TrainErrors(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=40)  # 60 training rows a job: more than a batch

    def fails(self, text, *needles, args=(), status=2):
        cfg = self.write("bad.cfg", text)
        rc, out, err = run("train", cfg, *args)
        lines = err.strip().splitlines()
        self.assertEqual(rc, status, err)
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("foldline: error: "), err)
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertFalse(os.path.exists(self.path("runs", "t", "m")), "a job started")
        return lines[0]

    def line_of(self, text, needle):
        return next(i + 1 for i, l in enumerate(text.splitlines()) if needle in l)

    def test_unknown_key_names_file_line_and_key(self):
        text = config_text(self.data, self.path("runs"), extra="folds = { use = [0]; sede = 1; };")
        self.fails(text, "bad.cfg:%d:" % self.line_of(text, "sede"), "folds.sede", "unknown key")

    def test_wrong_type_names_the_key(self):
        text = config_text(self.data, self.path("runs"), models=[model_text("m").replace("batch = 32", 'batch = "big"')])
        self.fails(text, "bad.cfg:", "models.[0].batch", "expected an integer")

    def test_lr_must_be_positive(self):
        text = config_text(self.data, self.path("runs"), models=[model_text("m").replace("lr = 3e-3", "lr = -0.1")])
        self.fails(text, "bad.cfg:", "models.[0].optimizer.lr", "> 0")

    def test_batch_must_be_at_least_one(self):
        text = config_text(self.data, self.path("runs"), models=[model_text("m").replace("batch = 32", "batch = 0")])
        self.fails(text, "models.[0].batch")

    def test_fold_outside_the_data_file_is_refused(self):
        text = config_text(self.data, self.path("runs"), extra="folds = { use = [0, 5]; };")
        self.fails(text, "bad.cfg:%d:" % self.line_of(text, "use = [0, 5]"), "folds.use", "fold 5")

    def test_mean_length_must_match_the_channels(self):
        text = config_text(self.data, self.path("runs")).replace("mean = [0.5]", "mean = [0.5, 0.5, 0.5]")
        self.fails(text, "bad.cfg:%d:" % self.line_of(text, "mean ="), "data.mean", "1 channel")

    def test_unknown_backbone_is_named(self):
        text = config_text(self.data, self.path("runs"), models=[model_text("m").replace("smallcnn", "resnet999")])
        self.fails(text, "models.[0].backbone", "resnet999")

    def test_unknown_op_is_named(self):
        m = model_text("m", extra='augment = ( { from_epoch = 0; ops = ( { op = "blur"; } ); } );')
        self.fails(config_text(self.data, self.path("runs"), models=[m]), "models.[0].augment.[0].ops.[0].op", "blur")

    def test_an_op_parameter_out_of_range_names_file_line_and_key(self):
        m = model_text("m", extra='augment = ( { from_epoch = 0; ops = ( { op = "elastic"; alpha = 30.0; sigma = 0.0; } ); } );')
        text = config_text(self.data, self.path("runs"), models=[m])
        self.fails(text, "bad.cfg:%d:" % self.line_of(text, "augment ="), "models.[0].augment.[0].ops.[0].sigma",
                   "must be > 0")

    def test_missing_data_file_is_named(self):
        self.fails(config_text(self.path("nope.h5"), self.path("runs")), "nope.h5", "data.file")

    def test_a_non_foldline_data_file_is_refused(self):
        other = self.path("other.h5")
        write_data_file(other, n_per_class=10, fmt="something-else")
        self.fails(config_text(other, self.path("runs")), "other.h5", "not a foldline data file", status=1)

    def test_a_wrong_schema_version_is_refused(self):
        v2 = self.path("v2.h5")
        write_data_file(v2, n_per_class=10, version=2)
        self.fails(config_text(v2, self.path("runs")), "v2.h5", "version 2", status=1)

    def test_a_plain_file_that_is_not_hdf5_is_refused(self):
        junk = self.write("junk.h5", "not hdf5 at all\n")
        self.fails(config_text(junk, self.path("runs")), "junk.h5", status=1)

    def test_unwritable_out_dir_is_named(self):
        blocker = self.write("blocker", "a file where the run directory should go\n")
        self.fails(config_text(self.data, os.path.join(blocker, "runs")), "run.out_dir", "blocker", status=1)

    def test_bad_override_names_the_set_option(self):
        self.fails(config_text(self.data, self.path("runs")), "--set models.0.epochs=0", args=("--set", "models.0.epochs=0"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
