#!/usr/bin/python3
"""`foldline predict RUN_DIR INPUT` and `foldline export RUN_DIR OUT.pt`: a trained run on new images.

One competition layout (train.csv, test.csv, train/, test/) is written with Pillow, prepped, trained
(smallcnn, 2 folds, 1 epoch, two models: one fine-tuned, one with a frozen backbone and fused folds,
each with a test-time view) and voted, once for the whole file. Then:

- the oracle: predicting the layout's test/ folder gives exactly vote's submission.csv, and
  probabilities equal to the mean of the preds.h5 test probabilities (h5py, numpy) within 1e-6;
- the same through a CSV of image paths and through the data file; --models; --method; --topk;
- under `mpirun -np 2` the very same CSV;
- bad input: an unreadable image skipped with a warning (refused with --strict), an empty folder, a
  run with a missing fold, a data file of another size, and output paths that cannot be written;
- export: torch.jit.load of the module (Debian's torch 1.13; torch 2.x from a venv when there is one)
  gives predict's probabilities within 1e-5, for the fine-tuned model, the frozen fused one and both;
- fitted weights: a copy of the run voted with --fit-weights --fit-temperature (weights.txt): predict
  gives exactly that vote's submission.csv and the fitted soft-soft probabilities recomputed with numpy
  from preds.h5 and weights.txt within 1e-6, export matches it within 1e-5, both say which weights they
  used; another --method or a subset of --models falls back to run.cfg's weights with a line saying so;
  a malformed weights.txt or one naming other models is one line with a HINT.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
import common  # noqa: E402
from common import np  # noqa: E402

import h5py  # noqa: E402

OMPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
SIZE = 20
CLASSES = 3


def run(*args, timeout=300, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([common.FOLDLINE] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, env=e, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def read_csv(path_or_text, text=False):
    f = io.StringIO(path_or_text) if text else open(path_or_text, newline="")
    with f:
        return list(csv.DictReader(f))


def class_image(rng, c, size):
    """Class c: stripes at a class-dependent angle, in colour, plus noise; learnable in one epoch."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ang = c * np.pi / 3 + rng.uniform(-0.2, 0.2)
    wave = np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * 2 * np.pi / (3 + c) + rng.uniform(0, 6.3))
    img = np.stack([128 + 90 * wave * k for k in (1.0, 0.6, -0.8)], -1) + rng.normal(0, 20, (size, size, 3))
    return common.Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


CONFIG = """run = {{ name = "r"; out_dir = "{out}"; seed = 11; threads = 1; }};
data = {{ file = "{data}"; mean = [0.5, 0.4, 0.3]; std = [0.25, 0.2, 0.3]; }};
models = (
  {{ name = "tuned"; backbone = "smallcnn"; epochs = 1; batch = 16; optimizer = {{ type = "adam"; lr = 3e-3; }};
     tta = [ "hflip" ]; }},
  {{ name = "frozen"; backbone = "smallcnn"; freeze_backbone = true; epochs = 1; batch = 16;
     head = {{ type = "mlp3"; hidden = 32; act = "gelu"; }}; tta = [ "vflip", "hflip" ];
     optimizer = {{ type = "adam"; lr = 3e-3; }}; }}
);
vote = {{ method = "soft-soft"; weights = [1.0, 0.5]; }};
"""


class PredictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="fl-predict-")
        cls.tmp = cls._tmp.name
        t0 = time.time()
        rng = np.random.default_rng(5)
        cls.src = os.path.join(cls.tmp, "src")
        lay = common.Layout(cls.src)
        for i in range(90):
            c = i % CLASSES
            lay.add_train("c%d" % c, "%s/%d.png" % ("c%d" % c, i), c, img=class_image(rng, c, 24 + i % 7))
        for i in range(37):  # one odd-sized batch at the end; JPEG and PNG
            ext = "jpg" if i % 3 == 0 else "png"
            lay.add_test("t%03d.%s" % (i, ext), img=class_image(rng, i % CLASSES, 22 + i % 5), target=i % CLASSES)
        lay.write_csvs()
        cls.data = os.path.join(cls.tmp, "data.h5")
        r = common.prep(cls.src, cls.data, "--size", str(SIZE), "--channels", "3", "--folds", "2")
        assert r.rc == 0, r.stderr
        cfg = os.path.join(cls.tmp, "run.cfg")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(out=os.path.join(cls.tmp, "runs"), data=cls.data))
        rc, out, err = run("train", cfg, timeout=600)
        assert rc == 0, out + err
        cls.run_dir = os.path.join(cls.tmp, "runs", "r")
        rc, out, err = run("vote", cls.run_dir, "--quiet")
        assert rc == 0, err
        cls.submission = read_csv(os.path.join(cls.run_dir, "ensemble", "submission.csv"))
        # the same run with fitted weights and temperatures (ensemble/weights.txt)
        cls.fit_dir = os.path.join(cls.tmp, "runs", "fitted")
        shutil.copytree(cls.run_dir, cls.fit_dir)
        rc, out, err = run("vote", cls.fit_dir, "--fit-weights", "--fit-temperature", "--quiet")
        assert rc == 0, err
        cls.fit_submission = read_csv(os.path.join(cls.fit_dir, "ensemble", "submission.csv"))
        cls.setup_s = time.time() - t0

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def preds(self, model, run_dir=None):
        """The preds.h5 test probabilities of each fold of model, (folds, n_test, C)."""
        out = []
        for k in (0, 1):
            with h5py.File(os.path.join(run_dir or self.run_dir, model, "fold%d" % k, "preds.h5"), "r") as f:
                out.append(f["test/probs"][()].astype(np.float64))
        return np.stack(out)

    def oracle(self, weights):
        """soft-soft: the weighted mean of every fold's probabilities."""
        num = sum(w * self.preds(m).sum(0) for m, w in weights.items())
        return num / sum(w * 2 for w in weights.values())

    def fitted(self):
        """weights.txt read here: {model: (weight, temperature)}."""
        got = {}
        with open(os.path.join(self.fit_dir, "ensemble", "weights.txt")) as f:
            for line in f:
                w = line.split()
                if w and w[0] == "model":
                    got[w[1]] = (float(w[2]), float(w[3]))
        return got

    def fitted_oracle(self, fitted=None):
        """The fitted soft-soft vote: per model the mean over its folds of p^(1/T) renormalised, weighted."""
        total = 0
        for m, (w, t) in (fitted or self.fitted()).items():
            p = self.preds(m, self.fit_dir)
            if t != 1.0:
                lp = np.log(p)
                p = np.exp((lp - lp.max(-1, keepdims=True)) / t)
                p = p / p.sum(-1, keepdims=True)
            total = total + w * p.mean(0)
        return total

    def predict(self, *args, ok=True, run_dir=None, **kw):
        rc, out, err = run("predict", run_dir or self.run_dir, *args, **kw)
        if ok:
            self.assertEqual(rc, 0, err)
        return rc, out, err

    def check_against_vote(self, rows, weights):
        sub = {r["image_path"]: int(r["target"]) for r in self.submission}
        self.assertEqual(sorted(r["image_path"] for r in rows), sorted(sub))
        with h5py.File(self.data, "r") as f:
            order = [p.decode() if isinstance(p, bytes) else p for p in f["test/paths"][()]]
        probs = self.oracle(weights)
        row_of = {p: i for i, p in enumerate(order)}
        worst = 0.0
        for r in rows:
            i = row_of[r["image_path"]]
            self.assertEqual(int(r["target"]), int(np.argmax(probs[i])), r)
            self.assertEqual(r["class_name"], "c%d" % int(r["target"]))
            worst = max(worst, abs(float(r["prob"]) - probs[i][int(r["target"])]))
            for j in range(1, 4):
                c = int(r["top%d" % j][1:])
                worst = max(worst, abs(float(r["top%d_prob" % j]) - probs[i][c]))
        self.assertLess(worst, 1e-6)
        return worst

    # ------------------------------------------------------------------------------------ the oracle

    def test_folder_is_vote(self):
        out = self.path("folder.csv")
        self.predict(self.src + "/test", "--out", out)
        rows = read_csv(out)
        self.assertEqual(list(rows[0].keys()), ["image_path", "target", "class_name", "prob", "top1", "top1_prob",
                                                "top2", "top2_prob", "top3", "top3_prob"])
        self.assertEqual([r["image_path"] for r in rows], sorted(r["image_path"] for r in rows))
        sub = {r["image_path"]: r["target"] for r in self.submission}
        self.assertEqual({r["image_path"]: r["target"] for r in rows}, sub)
        worst = self.check_against_vote(rows, {"tuned": 1.0, "frozen": 0.5})
        print("\npredict vs preds.h5 (soft-soft, 2 models x 2 folds): max |diff| %.3g" % worst, file=sys.stderr)

    def test_csv_and_datafile_inputs(self):
        listing = os.path.join(self.src, "list.csv")  # paths relative to the CSV's folder, in test.csv's order
        with open(listing, "w") as f:
            f.write("id,image_path\n" + "".join("%d,test/%s\n" % (i, r["image_path"])
                                                for i, r in enumerate(self.submission)))
        self.predict(listing, "--out", self.path("bycsv.csv"))
        self.predict(self.data, "--out", self.path("byh5.csv"))
        self.predict(self.src + "/test", "--out", self.path("byfolder.csv"))
        a, b, c = (read_csv(self.path(n)) for n in ("bycsv.csv", "byh5.csv", "byfolder.csv"))
        for r in a:
            self.assertTrue(r["image_path"].startswith("test/"))
            r["image_path"] = r["image_path"][5:]
        sub = [r["image_path"] for r in self.submission]
        self.assertEqual([r["image_path"] for r in a], sub)  # the CSV's order
        self.assertEqual([r["image_path"] for r in b], sub)  # the data file's order
        self.assertEqual(a, b)
        self.assertEqual(sorted(a, key=lambda r: r["image_path"]), c)
        self.check_against_vote(a, {"tuned": 1.0, "frozen": 0.5})

    def test_models_method_topk(self):
        rc, out, err = self.predict(self.data, "--models", "frozen", "--out", "-", "--topk", "2")
        rows = read_csv(out, text=True)
        self.assertEqual(list(rows[0].keys())[-4:], ["top1", "top1_prob", "top2", "top2_prob"])
        self.check_against_vote(rows, {"frozen": 1.0}) if False else None
        probs = self.oracle({"frozen": 1.0})
        for i, r in enumerate(rows):
            self.assertEqual(int(r["target"]), int(np.argmax(probs[i])))
            self.assertLess(abs(float(r["prob"]) - probs[i].max()), 1e-6)
            self.assertEqual(r["top1"], r["class_name"])
            self.assertGreaterEqual(float(r["top1_prob"]), float(r["top2_prob"]))
        # soft of one model: vote --method soft --model tuned's submission
        vote_out = self.path("soft_tuned.csv")
        rc, _, err = run("vote", self.run_dir, "--method", "soft", "--model", "tuned", "--out", vote_out, "--quiet")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.predict(self.data, "--models", "tuned", "--method", "soft", "--out", "-", "--topk", "0")
        rows = read_csv(out, text=True)
        self.assertEqual(list(rows[0].keys()), ["image_path", "target", "class_name", "prob"])
        self.assertEqual([r["target"] for r in rows], [r["target"] for r in read_csv(vote_out)])
        # hard-hard: votes, as vote's submission
        rc, _, err = run("vote", self.run_dir, "--method", "hard-hard", "--out", self.path("hh.csv"), "--quiet")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.predict(self.data, "--method", "hard-hard", "--out", "-")
        rows = read_csv(out, text=True)
        self.assertIn("votes", rows[0])
        self.assertEqual([r["target"] for r in rows], [r["target"] for r in read_csv(self.path("hh.csv"))])
        for r in rows:  # shares of 1 + 1 + 0.5 + 0.5 fold votes
            self.assertIn(round(float(r["votes"]) * 3, 6), (1.0, 1.5, 2.0, 2.5, 3.0))
        # a per-model method with two models chosen: one line with what to do
        rc, out, err = self.predict(self.data, "--method", "soft", ok=False)
        self.assertEqual(rc, 2)
        self.assertIn("HINT: add --models NAME", err)
        self.assertEqual(err.count("\n"), 1, err)

    def test_stdout_only_csv(self):
        rc, out, err = self.predict(self.src + "/test", "--out", "-")
        self.assertTrue(out.startswith("image_path,target,class_name,prob,"), out[:80])
        self.assertEqual(len(read_csv(out, text=True)), 37)
        self.assertIn("predict: 37 images", err)

    def test_mpirun_same_csv(self):
        if not shutil.which("mpirun"):
            self.skipTest("no mpirun")
        # bit for bit with the same threads per rank (libtorch's sums depend on the thread count)
        alone = self.path("alone.csv")
        self.predict(self.src + "/test", "--out", alone, "--threads", "1")
        two = self.path("two.csv")
        p = subprocess.run(["mpirun", "-np", "2", common.FOLDLINE, "predict", self.run_dir, self.src + "/test",
                            "--out", two, "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                           env=dict(os.environ, **OMPI_ENV))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        with open(alone) as a, open(two) as b:
            self.assertEqual(a.read(), b.read())
        p = subprocess.run(["mpirun", "-np", "3", common.FOLDLINE, "predict", self.run_dir, self.data, "--out", "-",
                            "--threads", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                           env=dict(os.environ, **OMPI_ENV))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        by_h5 = self.path("h5.csv")
        self.predict(self.data, "--out", by_h5, "--threads", "1")
        with open(by_h5) as a:
            self.assertEqual(a.read(), p.stdout.decode())

    # ------------------------------------------------------------------------------------ bad input

    def test_unreadable_image(self):
        d = self.path("bad_images")
        shutil.copytree(self.src + "/test", d)
        with open(os.path.join(d, "t005.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n not really")
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("not an image, not listed")
        rc, out, err = self.predict(d, "--out", "-")
        rows = read_csv(out, text=True)
        self.assertEqual(len(rows), 36)
        self.assertNotIn("t005.png", [r["image_path"] for r in rows])
        self.assertIn("t005.png", err)
        self.assertIn("skipped", err)
        good = {r["image_path"]: r for r in read_csv(self.predict(self.src + "/test", "--out", "-")[1], text=True)}
        for r in rows:
            self.assertEqual(r, good[r["image_path"]])
        rc, out, err = self.predict(d, "--out", "-", "--strict", ok=False)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("t005.png", err)
        self.assertIn("HINT", err)
        self.assertEqual(err.count("\n"), 1, err)

    def test_empty_folder_missing_fold_size_mismatch(self):
        empty = self.path("empty")
        os.makedirs(empty, exist_ok=True)
        rc, out, err = self.predict(empty, ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("an empty folder", err)
        self.assertIn("HINT", err)
        self.assertEqual(err.count("\n"), 1, err)
        # a run with a missing fold
        broken = self.path("broken_run")
        shutil.copytree(self.run_dir, broken)
        os.remove(os.path.join(broken, "tuned", "fold1", "preds.h5"))
        rc, out, err = run("predict", broken, self.data)
        self.assertEqual(rc, 1)
        self.assertIn("missing folds", err)
        self.assertIn("tuned/fold1", err)
        self.assertIn("HINT: finish training", err)
        self.assertEqual(err.count("\n"), 1, err)
        self.assertEqual(run("predict", broken, self.data, "--models", "frozen", "--out", "-")[0], 0)
        # a data file of another size
        other = self.path("other.h5")
        r = common.prep(self.src, other, "--size", "16", "--channels", "3", "--folds", "2")
        self.assertEqual(r.rc, 0, r.stderr)
        rc, out, err = self.predict(other, ok=False)
        self.assertEqual(rc, 1)
        self.assertIn("size mismatch", err)
        self.assertIn("--size 20x20 --channels 3", err)
        self.assertEqual(err.count("\n"), 1, err)
        # a CSV without image_path
        bad_csv = self.path("noimg.csv")
        with open(bad_csv, "w") as f:
            f.write("path\nx.png\n")
        rc, out, err = self.predict(bad_csv, ok=False)
        self.assertIn("no image_path column", err)

    def test_output_paths(self):
        fifo = self.path("fifo")
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        for bad, what in ((self.tmp, "a directory"), ("/dev/null", "a character device"), (fifo, "a FIFO"),
                          (self.data, "reads"), (os.path.join(self.run_dir, "run.cfg"), "reads"),
                          (self.src + "/test.csv", "reads")):
            rc, out, err = self.predict(self.src + "/test.csv", "--out", bad, ok=False)
            self.assertEqual(rc, 2, err)
            self.assertIn(what, err)
            self.assertEqual(err.count("\n"), 1, err)
        rc, out, err = self.predict(self.src + "/test", "--out", self.src + "/test/t001.png", ok=False)
        self.assertEqual(rc, 2, err)
        with open(self.path("target.csv"), "w") as f:
            f.write("old\n")
        link = self.path("link.csv")
        if not os.path.lexists(link):
            os.symlink(self.path("target.csv"), link)
        self.predict(self.src + "/test", "--out", link)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(len(read_csv(self.path("target.csv"))), 37)

    # ------------------------------------------------------------------------------------ export

    def predict_probs(self, *args, run_dir=None):
        """predict's full probability vectors (every class in the top-k) on the data file's test rows."""
        rc, out, err = self.predict(self.data, "--out", "-", "--topk", str(CLASSES), *args, run_dir=run_dir)
        probs = np.zeros((37, CLASSES))
        for i, r in enumerate(read_csv(out, text=True)):
            for j in range(1, CLASSES + 1):
                probs[i, int(r["top%d" % j][1:])] = float(r["top%d_prob" % j])
        return probs

    def serve(self, python, module):
        """What plain PyTorch computes with the module on the test images (a child process)."""
        x, y = self.path("x.npy"), self.path("y.npy")
        with h5py.File(self.data, "r") as f:
            np.save(x, f["test/images"][()])
        script = ("import sys, numpy as np, torch\n"
                  "m = torch.jit.load(sys.argv[1])\n"
                  "with torch.no_grad():\n"
                  "    out = m(torch.from_numpy(np.load(sys.argv[2])))\n"
                  "np.save(sys.argv[3], out.numpy())\n")
        p = subprocess.run([python, "-c", script, module, x, y], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr.decode()[-2000:])
        return np.load(y)

    def check_export(self, name, *args, run_dir=None):
        module = self.path(name)
        rc, out, err = run("export", run_dir or self.run_dir, module, *args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "")
        want = self.predict_probs(*args, run_dir=run_dir)
        pythons = [("torch 1.13", "/usr/bin/python3")]
        torch2 = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "foldline",
                              "venv-torch2", "bin", "python")
        if os.access(torch2, os.X_OK):
            pythons.append(("torch 2.x", torch2))
        else:
            print("\n(no %s: torch 2.x half skipped)" % torch2, file=sys.stderr)
        for label, python in pythons:
            got = self.serve(python, module)
            self.assertEqual(got.shape, (37, CLASSES))
            self.assertEqual(list(got.argmax(1)), list(want.argmax(1)))
            worst = float(np.abs(got - want).max())
            self.assertLess(worst, 1e-5)
            print("\nexport %s vs predict (%s): max |diff| %.3g" % (" ".join(args) or "both models", label, worst),
                  file=sys.stderr)
        return err, want, got

    def test_export_finetuned(self):
        self.check_export("tuned.pt", "--models", "tuned")

    def test_export_frozen_fused(self):
        self.check_export("frozen.pt", "--models", "frozen")

    def test_export_ensemble(self):
        self.check_export("both.pt")
        # the module holds the frozen model's backbone once, and one per fold of the fine-tuned one
        script = ("import sys, torch\n"
                  "m = torch.jit.load(sys.argv[1])\n"
                  "print(sorted(n for n, _ in m.named_children()))\n")
        p = subprocess.run(["/usr/bin/python3", "-c", script, self.path("both.pt")], stdout=subprocess.PIPE,
                           timeout=300)
        kids = eval(p.stdout.decode())
        self.assertEqual([k for k in kids if k.startswith("backbone")], ["backbone0_0", "backbone0_1", "backbone1"])
        self.assertEqual(len([k for k in kids if k.startswith("head")]), 4)

    def test_export_bad_output(self):
        for bad in (self.tmp, "/dev/null", os.path.join(self.run_dir, "tuned", "fold0", "best_acc.pt")):
            rc, out, err = run("export", self.run_dir, bad)
            self.assertEqual(rc, 2, err)
            self.assertEqual(err.count("\n"), 1, err)
        rc, out, err = run("export", self.run_dir, self.path("x.pt"), "--models", "nope")
        self.assertEqual(rc, 2)
        self.assertIn("the run's models are: tuned, frozen", err)

    # ------------------------------------------------------------------------------------ fitted weights

    def test_fitted_predict_is_vote(self):
        fitted = self.fitted()
        self.assertEqual(sorted(fitted), ["frozen", "tuned"])
        # the fitted vote must differ from run.cfg's (weights 1, 0.5) for this test to tell them apart
        plain = self.oracle({"tuned": 1.0, "frozen": 0.5})
        want = self.fitted_oracle()
        self.assertGreater(float(np.abs(want - plain).max()), 1e-3, fitted)
        out = self.path("fitted.csv")
        rc, _, err = self.predict(self.src + "/test", "--out", out, "--topk", str(CLASSES), run_dir=self.fit_dir)
        self.assertIn("predict: weights fitted, from %s/ensemble/weights.txt (by logloss, with temperatures): "
                      % self.fit_dir, err)
        for m, (w, t) in fitted.items():
            self.assertIn("%s %.4g (T %.4g)" % (m, w, t), err)
        self.assertIn("(soft-soft)", err)
        rows = read_csv(out)
        sub = {r["image_path"]: r["target"] for r in self.fit_submission}
        self.assertEqual({r["image_path"]: r["target"] for r in rows}, sub)
        with h5py.File(self.data, "r") as f:
            row_of = {(p.decode() if isinstance(p, bytes) else p): i for i, p in enumerate(f["test/paths"][()])}
        worst = 0.0
        for r in rows:
            i = row_of[r["image_path"]]
            self.assertEqual(int(r["target"]), int(np.argmax(want[i])), r)
            worst = max(worst, abs(float(r["prob"]) - want[i][int(r["target"])]))
            for j in range(1, CLASSES + 1):
                worst = max(worst, abs(float(r["top%d_prob" % j]) - want[i][int(r["top%d" % j][1:])]))
        self.assertLess(worst, 1e-6)
        changed = sum(a["target"] != b["target"] for a, b in zip(self.submission, self.fit_submission))
        print("\npredict vs preds.h5 (fitted weights %s): max |diff| %.3g; %d of %d classes differ from run.cfg's "
              "weights" % (fitted, worst, changed, len(rows)), file=sys.stderr)
        # --method soft-soft and --models naming every model are the same fitted vote
        rc, same, err = self.predict(self.src + "/test", "--out", "-", "--topk", str(CLASSES), "--method",
                                     "soft-soft", "--models", "frozen,tuned", run_dir=self.fit_dir)
        self.assertIn("weights fitted", err)
        with open(out) as f:
            self.assertEqual(same, f.read())

    def test_fitted_fallback(self):
        """Another method, or a subset of the models: run.cfg's weights, and a line that says so."""
        for args, why in ((("--method", "hard-hard"), "--method hard-hard"),
                          (("--models", "frozen"), "--models frozen"),
                          (("--models", "tuned", "--method", "soft"), "--method soft")):
            rc, got, err = self.predict(self.data, "--out", "-", *args, run_dir=self.fit_dir)
            rc, plain, _ = self.predict(self.data, "--out", "-", *args)
            self.assertEqual(got, plain)
            self.assertIn("predict: weights run.cfg's:", err)
            self.assertIn("(not %s/ensemble/weights.txt's fitted weights: they weigh the soft-soft vote of all the "
                          "run's models, not %s)" % (self.fit_dir, why), err)
        rc, out, err = self.predict(self.data, "--out", "-")  # no weights.txt
        self.assertIn("predict: weights run.cfg's: tuned 1, frozen 0.5\n", err)

    def test_fitted_bad_weights(self):
        path = os.path.join(self.fit_dir, "ensemble", "weights.txt")
        with open(path) as f:
            good = f.read()
        try:
            for text, what in ((good.replace("\nmodel frozen ", "\nmodel frozen x"), path + ":8: cannot read"),
                               (good.replace("\nmodel frozen ", "\nmodel other "), path + ": names other models")):
                with open(path, "w") as f:
                    f.write(text)
                for verb, out in (("predict", (self.data, "--out", "-")), ("export", (self.path("bad.pt"),))):
                    rc, got, err = run(verb, self.fit_dir, *out)
                    self.assertEqual(rc, 1, err)
                    self.assertEqual(got, "")
                    self.assertIn(what, err)
                    self.assertIn("HINT: rerun foldline vote RUN_DIR --fit-weights", err)
                    self.assertEqual(err.count("\n"), 1, err)
                # another method does not read it
                self.assertEqual(run("predict", self.fit_dir, self.data, "--out", "-", "--method", "hard-hard")[0], 0)
        finally:
            with open(path, "w") as f:
                f.write(good)

    def test_fitted_both_models(self):
        """A weights.txt as vote writes it, with both weights and temperatures away from the fitted ones (the
        fit above may give one model all the weight): predict and export apply every model's T and weight."""
        path = os.path.join(self.fit_dir, "ensemble", "weights.txt")
        with open(path) as f:
            good = f.read()
        mine = {"tuned": (0.25, 0.5), "frozen": (0.75, 3.0)}
        try:
            with open(path, "w") as f:
                f.write("format foldline-weights 1\nmetric acc\nrounds 4\ntemperature 1\n"
                        "model tuned 0.25 0.5 1\nmodel frozen 0.75 3 3\n")
            want = self.fitted_oracle(mine)
            plain = self.oracle({"tuned": 1.0, "frozen": 0.5})
            changed = int((want.argmax(1) != plain.argmax(1)).sum())
            self.assertGreater(float(np.abs(want - plain).max()), 1e-3)
            got = self.predict_probs(run_dir=self.fit_dir)
            self.assertEqual(list(got.argmax(1)), list(want.argmax(1)))
            worst = float(np.abs(got - want).max())
            self.assertLess(worst, 1e-6)
            err, _, module = self.check_export("mine.pt", run_dir=self.fit_dir)
            self.assertIn("weights fitted, from %s (by acc, with temperatures): tuned 0.25 (T 0.5), frozen 0.75 (T 3)"
                          % path, err)
            self.assertLess(float(np.abs(module - want).max()), 1e-5)
            print("\npredict vs numpy (weights.txt tuned 0.25 T 0.5, frozen 0.75 T 3): max |diff| %.3g; %d of 37 "
                  "classes differ from run.cfg's weights" % (worst, changed), file=sys.stderr)
        finally:
            with open(path, "w") as f:
                f.write(good)

    def test_export_fitted(self):
        err, want, got = self.check_export("fitted.pt", run_dir=self.fit_dir)
        self.assertIn("export: weights fitted, from %s/ensemble/weights.txt" % self.fit_dir, err)
        worst = float(np.abs(got - self.fitted_oracle()).max())
        self.assertLess(worst, 1e-5)
        self.assertEqual(list(got.argmax(1)), [int(r["target"]) for r in self.fit_submission])
        print("\nexport (fitted weights) vs numpy's fitted vote: max |diff| %.3g" % worst, file=sys.stderr)
        # a subset: run.cfg's weights (one model: its plain soft-soft mean)
        err, want, got = self.check_export("fitted_tuned.pt", "--models", "tuned", run_dir=self.fit_dir)
        self.assertIn("export: weights run.cfg's: tuned 1 (not ", err)
        self.assertLess(float(np.abs(got - self.oracle({"tuned": 1.0})).max()), 1e-5)

    def test_help(self):
        rc, out, err = run("--help")
        self.assertIn("predict RUN_DIR INPUT", out)
        self.assertIn("export RUN_DIR OUT.pt", out)
        for verb in ("predict", "export"):
            rc, out, err = run(verb, "--help")
            self.assertEqual(rc, 0)
            self.assertIn("usage: foldline " + verb, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
