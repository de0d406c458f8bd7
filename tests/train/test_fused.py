#!/usr/bin/env python3
"""Fold-fused training of a frozen backbone: one job trains every fold's head from one backbone pass
per batch. Its results equal the folds' own jobs (fuse_folds = false: the same seeds and batches, but
each fold running the whole model on the images) within float tolerance; the count of images it runs
through the backbone is what one pass per batch and view gives; the feature cache in a file equals the
one in memory bit for bit; data-parallel ranks, --fold runs and a stopped and resumed run give the same
results; batch sizes the shared batches cannot split are refused naming the line."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FOLDLINE, TempDirTest, config_text, run, seconds_after, write_data_file  # noqa: E402

STOPPED = 75
FOLDS = 5
TOL = 2e-5  # the fused backbone sees other batches than a fold's own job: float rounding only


def frozen_model(fuse=None, epochs=3, batch=16, extra="", last_plain=2):
    fuse_key = "" if fuse is None else "fuse_folds = %s;" % ("true" if fuse else "false")
    return """{ name = "m"; backbone = "smallcnn"; freeze_backbone = true; %s
      head = { type = "mlp3"; hidden = 32; act = "gelu"; }; label_smoothing = 0.05;
      epochs = %d; batch = %d; optimizer = { type = "adam"; lr = 3e-3; };
      schedule = { type = "step"; step = 1; gamma = 0.5; };
      tta = [ "hflip", "vflip" ];
      augment = ( { from_epoch = 1; ops = ( { op = "hflip"; p = 0.5; }, { op = "rotate"; degrees = 10.0; p = 0.5; } ); },
                  { from_epoch = %d; ops = ( ); } );
      %s }""" % (fuse_key, epochs, batch, last_plain, extra)


def read(path):
    with open(path) as f:
        return f.read()


def read_preds(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in ("oof/index", "oof/probs", "test/probs")}, dict(f.attrs)


def read_metrics(path):
    with open(path) as f:
        return [r.split(",") for r in f.read().splitlines()]


class Fused(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        self.labels, self.fold, _ = write_data_file(self.data, n_per_class=40, classes=3, folds=FOLDS, n_test=20)

    def config(self, name, model=None, extra="", data_extra=""):
        text = config_text(self.data, self.path("runs"), name, [model or frozen_model()], extra)
        if data_extra:
            text = text.replace('mean = [0.5];', 'mean = [0.5]; %s' % data_extra)
        return self.write(name + ".cfg", text)

    def train(self, *args, **kw):
        rc, out, err = run("train", *args, **kw)
        self.assertEqual(rc, 0, err)
        return out

    def compare(self, a, b, exact=False, metrics=True, tol=TOL):
        for k in range(FOLDS):
            pa, attrs_a = read_preds(self.path("runs", a, "m", "fold%d" % k, "preds.h5"))
            pb, attrs_b = read_preds(self.path("runs", b, "m", "fold%d" % k, "preds.h5"))
            self.assertTrue(np.array_equal(pa["oof/index"], pb["oof/index"]))
            self.assertEqual(attrs_a["epoch"], attrs_b["epoch"], "fold %d picked another checkpoint" % k)
            for key in ("oof/probs", "test/probs"):
                if exact:
                    self.assertTrue(np.array_equal(pa[key], pb[key]), "%s fold %d %s" % (b, k, key))
                else:
                    np.testing.assert_allclose(pa[key], pb[key], rtol=0, atol=tol, err_msg="%s fold %d %s" % (b, k, key))
            if not metrics:
                continue
            ma = read_metrics(self.path("runs", a, "m", "fold%d" % k, "metrics.csv"))
            mb = read_metrics(self.path("runs", b, "m", "fold%d" % k, "metrics.csv"))
            self.assertEqual(len(ma), len(mb))
            self.assertEqual(ma[0], mb[0])
            for ra, rb in zip(ma[1:], mb[1:]):  # epoch, lr, train_loss, train_acc, val_loss, val_acc
                self.assertEqual(ra[:2], rb[:2])
                np.testing.assert_allclose([float(v) for v in ra[2:6]], [float(v) for v in rb[2:6]], rtol=0, atol=1e-5)

    def test_fused_equals_the_folds_own_jobs_and_runs_each_image_once_per_batch_and_view(self):
        out = self.train(self.config("fused"))
        self.assertIn("1 model x 5 folds = 1 job", out)
        self.assertIn("[m folds 0,1,2,3,4] fused: one frozen backbone pass per batch of 20 rows for 5 heads", out)
        sep = self.train(self.config("sep", frozen_model(fuse=False)))
        self.assertIn("1 model x 5 folds = 5 jobs", sep)
        self.assertNotIn("fused", sep)
        self.compare("sep", "fused")
        # The same training happened: every fold's head stepped on its own rows (its loss is not
        # the others'), and predictions are real (OOF accuracy above chance on learnable data).
        losses = {read_metrics(self.path("runs", "fused", "m", "fold%d" % k, "metrics.csv"))[1][2] for k in range(FOLDS)}
        self.assertEqual(len(losses), FOLDS)
        # Images through the backbone: the cache (every train row: epoch 0 and 2 have no ops), the
        # augmented epoch 1 (every row once), the OOF views hflip and vflip (the plain one is
        # cached), the test set in 3 views. The folds' own jobs: every epoch's training and
        # validation, and 3 views of their OOF rows and the test set.
        n, n_test, views = len(self.labels), 20, 3
        fused_count = n + n + (views - 1) * n + views * n_test
        own = sum(3 * n + views * (int((self.fold == k).sum()) + n_test) for k in range(FOLDS))
        m = re.search(r"fused: (\d+) images through the backbone; the folds' own jobs: (\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (fused_count, own))

    def test_feature_cache_device_on_the_cpu_equals_memory_bit_for_bit(self):
        # The device-resident path (trainer/torch/devpath.h) runs on the CPU over host tensors: the cache,
        # labels, the epoch's order and the heads' rows "on the device", the augmented epoch 1 through the
        # two staging slots, the losses summed there and read at the epoch's end. Every number equals the
        # host path's ("memory").
        self.train(self.config("mem", data_extra='feature_cache = "memory";'))
        out = self.train(self.config("dev", data_extra='feature_cache = "device";'))
        self.assertIn("[m folds 0,1,2,3,4] device-resident: features, labels and 5 heads on cpu; images not cached "
                      "through 2 host buffers; losses read at the progress interval and the epoch's end", out)
        self.assertRegex(out, r"\[m\] feature cache: 120 of 120 train rows x \d+ features \(\d+ MB, float32\) on the "
                              r"device cpu, computed in")
        self.assertNotIn("in memory", out)
        self.compare_exact("mem", "dev")
        # run.on_nan = "skip_step": the losses are read after every step instead; the same numbers.
        cfg = self.config("skip", data_extra='feature_cache = "device";')
        self.write("skip.cfg", read(cfg).replace("threads = 1;", 'threads = 1; on_nan = "skip_step";'))
        out = self.train(cfg)
        self.assertIn("losses read after every step (run.on_nan)", out)
        self.compare_exact("mem", "skip")
        # A device without room for the cache: one line naming both sizes, then the memory cache.
        os.environ["FOLDLINE_DEVICE_FREE_MB"] = "0"
        try:
            out = self.train(self.config("full", data_extra='feature_cache = "device";'))
        finally:
            del os.environ["FOLDLINE_DEVICE_FREE_MB"]
        self.assertRegex(out, r"\[m\] feature cache: 120 rows x \d+ features do not fit on the device cpu \(needs \d+ MB, "
                              r"0 MB free\); in memory instead HINT: ")
        self.assertNotIn("device-resident", out)
        self.compare_exact("mem", "full")

    def compare_exact(self, a, b):
        self.compare(a, b, exact=True)
        for k in range(FOLDS):  # every column but the timings
            ma = read_metrics(self.path("runs", a, "m", "fold%d" % k, "metrics.csv"))
            mb = read_metrics(self.path("runs", b, "m", "fold%d" % k, "metrics.csv"))
            self.assertEqual([r[:6] for r in ma], [r[:6] for r in mb])

    def test_feature_cache_file_equals_memory_bit_for_bit_and_none_within_rounding(self):
        out = self.train(self.config("mem", data_extra='feature_cache = "memory";'))
        self.assertIn("in memory", out)
        # The scratch file lives on node-local storage ($TMPDIR here), never in the shared run directory,
        # and is gone when the job ends.
        scratch = self.path("node-tmp")
        os.mkdir(scratch)
        old_tmpdir = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = scratch
        try:
            out = self.train(self.config("file", data_extra='feature_cache = "file";'))
        finally:
            os.environ.pop("TMPDIR") if old_tmpdir is None else os.environ.update(TMPDIR=old_tmpdir)
        files = re.findall(r"in the scratch file (\S+), computed", out)
        self.assertTrue(files, out)
        for f in files:
            self.assertEqual(os.path.dirname(f), scratch)
            self.assertRegex(os.path.basename(f), r"^foldline-[0-9a-f]{16}-m-features-g0-r0\.h5$")
        self.assertEqual(os.listdir(scratch), [])
        self.assertEqual([f for f in os.listdir(self.path("runs", "file", "m")) if f.endswith(".h5")], [])
        # auto with a budget too small for 120 x 3136 floats goes to the file as well, here in the
        # directory run.scratch_dir names
        cfg = self.config("auto", data_extra="feature_cache_mb = 0.5;")
        with open(cfg) as f:
            text = f.read().replace("threads = 1;", 'threads = 1; scratch_dir = "%s";' % scratch)
        self.write("auto.cfg", text)
        out = self.train(cfg)
        self.assertIn("in the scratch file %s/foldline-" % scratch, out)
        out = self.train(self.config("none", data_extra='feature_cache = "none";'))
        self.assertNotIn("feature cache", out)
        self.compare("mem", "file", exact=True)
        self.compare("mem", "auto", exact=True)
        self.compare("mem", "none")

    def test_data_parallel_fused_equals_one_process(self):
        mpirun = os.environ.get("MPIRUN") or shutil.which("mpirun")
        if not mpirun:
            self.skipTest("no mpirun")
        self.train(self.config("one"))
        cfg = self.config("dp", extra="dist = { ranks_per_job = 2; };")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        p = subprocess.run([mpirun, "--oversubscribe", "-np", "2", FOLDLINE, "train", cfg], env=env,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("data-parallel within each group", p.stdout)
        self.assertIn("all-reduce", p.stdout)
        self.compare("one", "dp")
        # The device-resident path in a group: the ranks trade their shards of the cache's fill through
        # the host, agree that the cache fits and that the losses were finite; the memory path's bits.
        cfg = self.config("dpdev", extra="dist = { ranks_per_job = 2; };", data_extra='feature_cache = "device";')
        p = subprocess.run([mpirun, "--oversubscribe", "-np", "2", FOLDLINE, "train", cfg], env=env,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("device-resident: features, labels and 5 heads on cpu", p.stdout)
        self.compare("dp", "dpdev", exact=True)

    def test_fold_runs_of_a_fused_model_equal_the_whole_run(self):
        self.train(self.config("whole"))
        cfg = self.config("split")
        out = self.train(cfg, "--fold", "3")
        self.assertIn("[m folds 3] fused", out)
        out = self.train(cfg)  # the other four together; fold 3 is complete
        self.assertIn("[m fold 3] complete (preds.h5 exists), skipped", out)
        self.assertIn("[m folds 0,1,2,4] fused", out)
        self.compare("whole", "split")

    def test_a_stopped_fused_run_resumes_to_the_same_results(self):
        self.stopped_and_resumed("")

    def test_a_stopped_device_resident_run_resumes_to_the_memory_path_results(self):
        # Stops mid-epoch read the device's loss sums for last.pt; the resumed epoch starts them there.
        self.stopped_and_resumed('feature_cache = "device";')

    def stopped_and_resumed(self, cut_data_extra):
        model = frozen_model(epochs=4, extra='predict_with = "last";', last_plain=3)
        self.write_data_big()
        rc, whole = seconds_after("fused:", [FOLDLINE, "train", self.config("whole", model)], self.path("out.txt"),
                                  self.path("err.txt"))
        self.assertEqual(rc, 0, read(self.path("err.txt")))
        cfg = self.config("cut", model, data_extra=cut_data_extra)
        stops = []
        for fraction in [0.2, 0.3, 0.25, 0.15, 0.3] + [None] * 20:
            delay = None if fraction is None else fraction * whole
            with open(self.path("err.txt"), "w") as e, open(self.path("out.txt"), "w") as o:
                p = subprocess.Popen([FOLDLINE, "train", cfg], stdout=o, stderr=e, stdin=subprocess.DEVNULL)
            if delay is not None:
                deadline = time.time() + 60
                while time.time() < deadline and p.poll() is None and "fused:" not in read(self.path("out.txt")):
                    time.sleep(0.02)
                time.sleep(delay)
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=300)
            err = read(self.path("err.txt"))
            if rc == 0:
                break
            self.assertEqual(rc, STOPPED, err)
            stops += [line for line in err.splitlines() if "stopped by SIGTERM" in line]
        else:
            self.fail("the run never completed")
        self.assertGreaterEqual(len(stops), 2, stops)
        for s in stops:
            self.assertRegex(s, r"job m folds 0,1,2,3,4 \(fused\): stopped by SIGTERM at epoch \d+ step \d+; "
                                r"each fold's last.pt under .* holds it HINT: rerun")
        self.assertTrue(any(not re.search(r" step 0;", s) for s in stops), stops)  # mid-epoch too
        self.compare("whole", "cut", exact=True)

    def write_data_big(self):
        self.labels, self.fold, _ = write_data_file(self.data, n_per_class=300, classes=3, folds=FOLDS, n_test=20,
                                                     size=24)

    def test_a_batch_the_folds_cannot_share_is_refused_naming_the_line(self):
        cfg = self.config("odd", frozen_model(batch=18))
        rc, out, err = run("train", cfg)
        self.assertEqual(rc, 2)  # a config mistake
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertRegex(err, r"odd\.cfg:\d+: models\.\[0\]\.batch = 18: a frozen backbone's folds share each batch")
        self.assertIn("multiple of 4", err)
        self.assertIn("HINT: set batch = 16 or 20", err)
        self.assertFalse(os.path.exists(self.path("runs", "odd", "m")))

    def test_fuse_folds_needs_a_frozen_backbone(self):
        model = frozen_model(fuse=True).replace("freeze_backbone = true;", "freeze_backbone = false;")
        rc, out, err = run("train", self.config("trained", model))
        self.assertEqual(rc, 2)  # a config mistake
        self.assertRegex(err, r"trained\.cfg:\d+: models\.\[0\]\.fuse_folds: only a frozen backbone's folds can share")


if __name__ == "__main__":
    unittest.main(verbosity=2)
