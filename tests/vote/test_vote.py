#!/usr/bin/python3
"""`foldline vote RUN_DIR`: the seed's votes (docs/recipes.md) against an independent oracle, and every refusal.

Each test builds a run directory by hand: a data file written with h5py (the data-file schema of
docs/formats.md), predictions files written with h5py (the predictions contract), and run.cfg. The test-set
fingerprint the predictions must carry is read from `foldline inspect DATA.h5`.

The oracle below computes every method from the seed's definitions (means of probabilities, majority
votes, ties to the lowest class id). Most runs use probabilities that are multiples of 1/4 and the
oracle computes with exact fractions, so that the runs hold many exact ties (equal probabilities,
equal means across folds, equal vote counts, equal weighted counts) and the tie rule is checked
against the exact definition, not against rounding. One run uses real softmax outputs in float32.
"""

import csv
import io
import os
import re
import shutil
import sys
import unittest
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
import common  # noqa: E402
from common import np  # noqa: E402

import h5py  # noqa: E402

load_tests = common.concurrent_load_tests
STR = h5py.string_dtype("utf-8")


# ---------------------------------------------------------------------------- the oracle

def argmax_first(v):
    """Index of the first largest value (ties -> lowest class id)."""
    best = 0
    for c in range(1, len(v)):
        if v[c] > v[best]:
            best = c
    return best


def is_tie(v):
    top = max(v)
    return sum(1 for x in v if x == top) > 1


def majority(votes, weights, C):
    """The class with the largest (weighted) count of votes; ties -> lowest class id."""
    count = [0] * C
    for cls, w in zip(votes, weights):
        count[cls] += w
    return argmax_first(count), is_tie(count)


class Oracle:
    """Every vote of the seed, from the probabilities the run's files hold.

    probs[(m, k)] = (oof_index, oof_probs, test_probs), rows as lists of Fractions or floats.
    """

    def __init__(self, run):
        self.run = run
        C, K = run.C, len(run.folds)
        names = [n for n, _ in run.models]
        w = {n: (Fraction(str(wt)) if run.exact else wt) for n, wt in run.models}
        self.ties = {}

        def tie(kind, t):
            self.ties[kind] = self.ties.get(kind, 0) + int(t)

        # test rows
        self.test_soft, self.test_hard = {}, {}
        for n in names:
            soft, hard = [], []
            for i in range(run.M):
                rows = [run.probs[(n, k)][2][i] for k in run.folds]
                mean = [sum(r[c] for r in rows) / K for c in range(C)]
                soft.append(argmax_first(mean))
                tie("soft", is_tie(mean))
                h, t = majority([argmax_first(r) for r in rows], [1] * K, C)
                hard.append(h)
                tie("hard", t)
            self.test_soft[n], self.test_hard[n] = soft, hard
        self.soft_soft, self.soft_hard, self.hard_hard = [], [], []
        total = sum(w.values()) * K
        for i in range(run.M):
            mean = [sum(w[n] * run.probs[(n, k)][2][i][c] for n in names for k in run.folds) / total
                    for c in range(C)]
            self.soft_soft.append(argmax_first(mean))
            tie("soft-soft", is_tie(mean))
            h, t = majority([self.test_soft[n][i] for n in names], [w[n] for n in names], C)
            self.soft_hard.append(h)
            tie("soft-hard", t)
            h, t = majority([argmax_first(run.probs[(n, k)][2][i]) for n in names for k in run.folds],
                            [w[n] for n in names for k in run.folds], C)
            self.hard_hard.append(h)
            tie("hard-hard", t)
        # OOF rows: each model's prediction of a row comes from the fold that held it out
        oof = {n: {} for n in names}
        for n in names:
            for k in run.folds:
                idx, p, _ = run.probs[(n, k)]
                for r, row in zip(idx, p):
                    oof[n][r] = row
        self.oof_rows = sorted(oof[names[0]])
        self.oof_model = {n: {r: argmax_first(oof[n][r]) for r in self.oof_rows} for n in names}
        self.oof_soft_soft, self.oof_majority = {}, {}
        for r in self.oof_rows:
            mean = [sum(w[n] * oof[n][r][c] for n in names) / sum(w.values()) for c in range(C)]
            self.oof_soft_soft[r] = argmax_first(mean)
            h, t = majority([self.oof_model[n][r] for n in names], [w[n] for n in names], C)
            self.oof_majority[r] = h
            tie("oof-majority", t)

    # -- what the report must say, as (correct, total) pairs
    def oof_acc(self, pred):
        y = self.run.labels
        return sum(1 for r in self.oof_rows if pred[r] == y[r]), len(self.oof_rows)

    def test_acc(self, pred):
        y = self.run.test_labels
        return sum(1 for i in range(self.run.M) if pred[i] == y[i]), self.run.M

    def methods(self):
        """name -> (test predictions, OOF predictions by row)."""
        out = {}
        for n, _ in self.run.models:
            out["soft " + n] = (self.test_soft[n], self.oof_model[n])
            out["hard " + n] = (self.test_hard[n], self.oof_model[n])
        out["soft-soft"] = (self.soft_soft, self.oof_soft_soft)
        out["soft-hard"] = (self.soft_hard, self.oof_majority)
        out["hard-hard"] = (self.hard_hard, self.oof_majority)
        return out

    def fold_acc(self, n, k):
        idx, p, t = self.run.probs[(n, k)]
        y, ty = self.run.labels, self.run.test_labels
        oof = (sum(1 for r, row in zip(idx, p) if argmax_first(row) == y[r]), len(idx))
        test = (sum(1 for i, row in enumerate(t) if argmax_first(row) == ty[i]), self.run.M)
        return oof, test


# ---------------------------------------------------------------------------- files

def write_data(path, labels, fold, K, C, test_paths, test_labels=None):
    """A foldline data file (docs/formats.md schema) with 1x2x2 images, written with h5py."""
    N, M = len(labels), len(test_paths)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "foldline-data"
        for k, v in (("version", 1), ("num_classes", C), ("folds", K), ("height", 2), ("width", 2),
                     ("channels", 1)):
            f.attrs[k] = np.int32(v)
        f.attrs["fold_seed"] = np.int64(42)
        f.create_dataset("classes", data=["class%d" % c for c in range(C)], dtype=STR)
        g = f.create_group("train")
        g.create_dataset("images", data=np.zeros((N, 1, 2, 2), np.uint8))
        g.create_dataset("labels", data=np.asarray(labels, np.int32))
        g.create_dataset("fold", data=np.asarray(fold, np.int32))
        g.create_dataset("paths", data=["c/train_%d.png" % i for i in range(N)], dtype=STR)
        t = f.create_group("test")
        t.create_dataset("images", data=np.zeros((M, 1, 2, 2), np.uint8))
        t.create_dataset("paths", data=list(test_paths), dtype=STR)
        if test_labels is not None:
            t.create_dataset("labels", data=np.asarray(test_labels, np.int32))


_fingerprints = {}


def fingerprint(data_path):
    """The data file's test-set fingerprint, as `foldline inspect` prints it. It depends on the class
    count and the test paths only, so runs that share those share one inspect (each costs a second)."""
    with h5py.File(data_path, "r") as f:
        key = (int(f.attrs["num_classes"]), tuple(common._str(s) for s in f["test/paths"][()]))
    if key not in _fingerprints:
        _fingerprints[key] = _inspect_fingerprint(data_path)
    return _fingerprints[key]


def _inspect_fingerprint(data_path):
    r = common.inspect(data_path)
    assert r.rc == 0, r.stderr
    m = re.search(r"(?m)^fingerprint:\s*([0-9a-f]{16})\s*$", r.stdout)
    assert m, r.stdout
    return m.group(1)


def write_preds(path, model, fold, oof_index, oof_probs, test_probs, C, fp, epoch=4, checkpoint="best_acc",
                num_classes=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "foldline-preds"
        f.attrs["version"] = np.int32(1)
        f.attrs["model"] = model
        f.attrs["fold"] = np.int32(fold)
        f.attrs["epoch"] = np.int32(epoch)
        f.attrs["checkpoint"] = checkpoint
        f.attrs["num_classes"] = np.int32(C if num_classes is None else num_classes)
        f.attrs["test_fingerprint"] = fp
        f.create_dataset("oof/index", data=np.asarray(oof_index, np.int32))
        f.create_dataset("oof/probs", data=np.asarray(oof_probs, np.float32).reshape(len(oof_index), C))
        f.create_dataset("test/probs", data=np.asarray(test_probs, np.float32))


def write_manifest(path, data_file, folds, models, method):
    with open(path, "w") as f:
        f.write('data_file = "%s";\n' % data_file)
        f.write("folds = [%s];\n" % ", ".join(str(k) for k in folds))
        f.write("models = (\n%s\n);\n" % ",\n".join('  { name = "%s"; weight = %r; }' % (n, float(w))
                                                    for n, w in models))
        f.write('vote_method = "%s";\n' % method)


class Run:
    """A run directory with a data file, run.cfg and every model x fold preds.h5.

    exact: probabilities are multiples of 1/4 (float32-exact, many ties), else float32 softmax.
    """

    def __init__(self, root, seed=1, models=(("alpha", 1), ("beta", 1), ("gamma", 1)), C=4, K=3, N=30, M=16,
                 exact=True, test_labels=True, method="soft-soft", folds=None):
        rng = np.random.default_rng(seed)
        self.root, self.C, self.K, self.N, self.M = root, C, K, N, M
        self.models, self.exact = list(models), exact
        self.folds = list(range(K)) if folds is None else list(folds)
        self.dir = os.path.join(root, "run")
        os.makedirs(self.dir)
        self.labels = [int(x) for x in rng.integers(0, C, N)]
        fold = np.arange(N) % K
        rng.shuffle(fold)
        self.fold = [int(x) for x in fold]
        self.test_labels = [int(x) for x in rng.integers(0, C, M)]
        self.test_paths = ["%d.png" % i for i in range(M)]
        self.test_paths[3] = 'odd, "name".png'  # needs CSV quoting in the submission
        self.data = os.path.join(root, "data.h5")
        write_data(self.data, self.labels, self.fold, K, C, self.test_paths,
                   self.test_labels if test_labels else None)
        self.fp = fingerprint(self.data)
        self.probs = {}
        for n, _ in self.models:
            for k in self.folds:
                idx = [r for r in range(N) if self.fold[r] == k]
                oof = [self.row(rng, self.labels[r]) for r in idx]
                test = [self.row(rng, self.test_labels[i]) for i in range(M)]
                self.plant_ties(test, k)
                self.probs[(n, k)] = (idx, oof, test)
                write_preds(self.preds_path(n, k), n, k, idx, self.floats(oof), self.floats(test), C, self.fp)
        self.manifest = os.path.join(self.dir, "run.cfg")
        write_manifest(self.manifest, self.data, self.folds, self.models, method)

    def row(self, rng, label):
        p = np.ones(self.C)
        p[label] += 1.0
        if self.exact:
            counts = rng.multinomial(4, p / p.sum())
            return [Fraction(int(c), 4) for c in counts]
        logits = rng.normal(size=self.C) + 1.5 * (np.arange(self.C) == label)
        e = np.exp(logits - logits.max())
        return [float(x) for x in (e / e.sum()).astype(np.float32)]

    def plant_ties(self, test, k):
        """Test row 0: every class equal. Row 1: the folds' argmaxes are 3, 1, 2 (a three-way hard tie
        and equal means), the same for every model."""
        if not self.exact or self.C < 4:
            return
        q = Fraction(1, 4)
        test[0] = [q] * self.C
        one_hot = [0] * self.C
        one_hot[[3, 1, 2][k % 3]] = Fraction(1)
        test[1] = one_hot

    def floats(self, rows):
        return np.array([[float(x) for x in r] for r in rows], np.float32).reshape(len(rows), self.C)

    def preds_path(self, model, k):
        return os.path.join(self.dir, model, "fold%d" % k, "preds.h5")

    def vote(self, *args):
        return common.run("vote", self.dir, *args)


# ---------------------------------------------------------------------------- outputs

ACC = re.compile(r"^([0-9.]+) \((\d+)/(\d+)\)$")


def parse_acc(cell):
    if cell == "n/a":
        return None
    m = ACC.match(cell)
    assert m, cell
    return int(m.group(2)), int(m.group(3))


def parse_report(text):
    """{section title: [rows as lists of cells]} for every markdown table of the report."""
    sections, title = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            sections[title] = []
        elif line.startswith("|") and title:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                sections[title].pop()  # the header row above the separator
                continue
            sections[title].append(cells)
    return sections


def read_submission(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


class VoteCase(common.TempDirCase):
    def assertOK(self, res):
        self.assertEqual(res.rc, 0, "vote failed: rc=%d\nstdout:\n%s\nstderr:\n%s" % (res.rc, res.stdout, res.stderr))

    def assertFails(self, res, rc, *needles):
        self.assertEqual(res.rc, rc, "rc=%d\nstdout:\n%s\nstderr:\n%s" % (res.rc, res.stdout, res.stderr))
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertTrue(lines[0].startswith("foldline: error: "), res.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]

    def submission_targets(self, run, path=None):
        header, rows = read_submission(path or os.path.join(run.dir, "ensemble", "submission.csv"))
        self.assertEqual(header, ["ID", "image_path", "target"])
        self.assertEqual([r[0] for r in rows], [str(i) for i in range(run.M)])
        self.assertEqual([r[1] for r in rows], run.test_paths)
        return [int(r[2]) for r in rows]

    def report(self, run):
        with open(os.path.join(run.dir, "ensemble", "report.md"), encoding="utf-8") as f:
            return f.read()

    def check_report(self, run, oracle, chosen, labels=True):
        """Every table of the report against the oracle (exact counts)."""
        text = self.report(run)
        self.assertIn("| model | fold | epoch (1-based) | checkpoint | OOF accuracy | test accuracy |", text)
        rep = parse_report(text)
        names = [n for n, _ in run.models]
        test_or_none = (lambda pred: oracle.test_acc(pred)) if labels else (lambda pred: None)
        folds = {(r[0], int(r[1])): r for r in rep["Folds"]}
        self.assertEqual(set(folds), {(n, k) for n in names for k in run.folds})
        for (n, k), r in folds.items():
            oof, test = oracle.fold_acc(n, k)
            self.assertEqual(parse_acc(r[4]), oof, (n, k))
            self.assertEqual(parse_acc(r[5]), test if labels else None, (n, k))
            self.assertEqual((r[2], r[3]), ("5", "best_acc"))  # preds.h5's epoch 4 counts from 0
        models = {r[0]: r for r in rep["Models"]}
        self.assertEqual(set(models), set(names))
        for n, w in run.models:
            r = models[n]
            self.assertEqual(float(r[1]), float(w))
            self.assertEqual(parse_acc(r[2]), oracle.oof_acc(oracle.oof_model[n]))
            self.assertEqual(parse_acc(r[3]), test_or_none(oracle.test_soft[n]))
            self.assertEqual(parse_acc(r[4]), test_or_none(oracle.test_hard[n]))
        methods = {r[0]: r for r in rep["Methods"]}
        want = oracle.methods()
        self.assertEqual(set(methods), set(want))
        for name, (test_pred, oof_pred) in want.items():
            r = methods[name]
            self.assertEqual(parse_acc(r[1]), oracle.oof_acc(oof_pred), name)
            self.assertEqual(parse_acc(r[2]), test_or_none(test_pred), name)
            self.assertEqual(r[3], "yes" if name == chosen else "", name)
        agree = {r[0]: r[1:] for r in rep["Agreement between models"]}
        for a_i, a in enumerate(names):
            for b_i, b in enumerate(names):
                same = sum(1 for i in range(run.M) if oracle.test_soft[a][i] == oracle.test_soft[b][i])
                self.assertEqual(parse_acc(agree[a][b_i]), (same, run.M), (a, b))


# ---------------------------------------------------------------------------- the votes

class MethodsTest(VoteCase):
    """Every method's submission and every number of the report equal the oracle's."""

    def check_every_method(self, run):
        oracle = Oracle(run)
        want = oracle.methods()
        cases = [("soft-soft",), ("soft-hard",), ("hard-hard",)]
        cases += [(m, n) for n, _ in run.models for m in ("soft", "hard")]
        for case in cases:
            with self.subTest(case=case):
                args = ["--method", case[0]] + (["--model", case[1]] if len(case) > 1 else [])
                res = run.vote(*args)
                self.assertOK(res)
                name = " ".join(case)
                self.assertEqual(self.submission_targets(run), want[name][0], name)
                self.check_report(run, oracle, name)
                self.assertEqual(res.stdout, self.report(run))  # the report is also printed
        return oracle

    def test_every_method_with_exact_ties(self):
        run = Run(self.tmp, seed=11)
        oracle = self.check_every_method(run)
        # the run really exercises the tie rule of every kind of vote
        for kind in ("soft", "hard", "soft-soft", "soft-hard", "hard-hard", "oof-majority"):
            self.assertGreater(oracle.ties.get(kind, 0), 0, kind)
        # planted rows: all classes equal -> 0; fold argmaxes 3, 1, 2 -> 1 (lowest of the tie)
        for name, (pred, _) in oracle.methods().items():
            self.assertEqual(pred[0], 0, name)
            self.assertEqual(pred[1], 1, name)

    def test_weights(self):
        # gamma weighs as much as alpha and beta together: weighted ties between {alpha, beta} and gamma
        run = Run(self.tmp, seed=5, models=(("alpha", 1.0), ("beta", 1.0), ("gamma", 2.0)))
        oracle = self.check_every_method(run)
        self.assertGreater(oracle.ties.get("soft-hard", 0) + oracle.ties.get("oof-majority", 0), 0)
        # and the weights matter: the unweighted votes differ somewhere
        plain = Oracle(Run(os.path.join(self.tmp, "plain"), seed=5))
        self.assertNotEqual((oracle.soft_hard, oracle.hard_hard, oracle.soft_soft),
                            (plain.soft_hard, plain.hard_hard, plain.soft_soft))

    def test_weights_tilt_two_models(self):
        run = Run(self.tmp, seed=8, models=(("a", 0.25), ("b", 4.0)))
        self.check_every_method(run)

    def test_softmax_probabilities(self):
        run = Run(self.tmp, seed=3, models=(("a", 1.0), ("b", 0.5)), C=5, K=4, N=41, M=23, exact=False)
        self.check_every_method(run)

    def test_subset_of_folds(self):
        # a run that trained folds 0 and 2 of 3: OOF rows are those two folds' rows
        run = Run(self.tmp, seed=4, models=(("a", 1), ("b", 1)), folds=[0, 2])
        oracle = self.check_every_method(run)
        self.assertEqual(len(oracle.oof_rows), sum(1 for f in run.fold if f in (0, 2)))

    def test_one_model_soft_and_hard_need_no_model(self):
        run = Run(self.tmp, seed=6, models=(("solo", 1),))
        oracle = Oracle(run)
        for m in ("soft", "hard"):
            with self.subTest(method=m):
                self.assertOK(run.vote("--method", m))
                self.assertEqual(self.submission_targets(run), oracle.methods()[m + " solo"][0])

    def test_manifest_method_is_the_default(self):
        run = Run(self.tmp, seed=7, method="hard-hard")
        oracle = Oracle(run)
        self.assertOK(run.vote())
        self.assertEqual(self.submission_targets(run), oracle.hard_hard)
        self.check_report(run, oracle, "hard-hard")


class OutputsTest(VoteCase):
    def test_submission_format(self):
        run = Run(self.tmp, seed=2, models=(("a", 1),))
        self.assertOK(run.vote("--quiet"))
        path = os.path.join(run.dir, "ensemble", "submission.csv")
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8")
        self.assertTrue(raw.startswith("ID,image_path,target\n"))
        self.assertIn('3,"odd, ""name"".png",', raw)
        self.submission_targets(run)
        # no temporary files left beside the outputs
        self.assertEqual(sorted(os.listdir(os.path.join(run.dir, "ensemble"))), ["report.html", "report.md", "submission.csv"])

    def test_quiet_prints_nothing(self):
        run = Run(self.tmp, seed=2, models=(("a", 1),))
        res = run.vote("--quiet")
        self.assertOK(res)
        self.assertEqual(res.stdout, "")

    def test_out_path(self):
        run = Run(self.tmp, seed=2)
        out = os.path.join(self.tmp, "elsewhere.csv")
        self.assertOK(run.vote("--out", out, "--method", "hard-hard"))
        self.assertEqual(self.submission_targets(run, out), Oracle(run).hard_hard)
        self.assertFalse(os.path.exists(os.path.join(run.dir, "ensemble", "submission.csv")))
        self.assertTrue(os.path.exists(os.path.join(run.dir, "ensemble", "report.md")))
        self.assertIn("`%s`" % out, self.report(run))

    def test_out_path_in_missing_directory(self):
        run = Run(self.tmp, seed=2)
        self.assertFails(run.vote("--out", os.path.join(self.tmp, "no", "such", "dir.csv")), 1, "no/such")

    def test_rerun_replaces_outputs(self):
        run = Run(self.tmp, seed=2)
        self.assertOK(run.vote("--method", "soft-soft"))
        self.assertOK(run.vote("--method", "hard-hard"))
        self.assertEqual(self.submission_targets(run), Oracle(run).hard_hard)

    def test_data_file_override(self):
        run = Run(self.tmp, seed=2)
        moved = os.path.join(self.tmp, "moved.h5")
        shutil.move(run.data, moved)
        self.assertFails(run.vote(), 1, "run.cfg", run.data)
        self.assertOK(run.vote("--data", moved))

    def test_inspect_predictions_file(self):
        run = Run(self.tmp, seed=2)
        r = common.inspect(run.preds_path("beta", 2))
        self.assertEqual(r.rc, 0, r.stderr)
        got = dict(re.findall(r"(?m)^(\w+):\s*(.*?)\s*$", r.stdout))
        self.assertEqual(got["model"], "beta")
        self.assertEqual(got["fold"], "2")
        self.assertEqual(got["epoch"], "5 (1-based, as the train log counts)")  # the file's epoch attribute 4
        self.assertEqual(got["checkpoint"], "best_acc")
        self.assertEqual(got["num_classes"], "4")
        self.assertEqual(got["n_oof"], str(run.fold.count(2)))
        self.assertEqual(got["n_test"], str(run.M))


class LabelsTest(VoteCase):
    def labels_csv(self, run, rows):
        path = os.path.join(self.tmp, "labels.csv")
        common.write_csv(path, ["image_path", "target"], rows)
        return path

    def test_labels_csv_gives_test_accuracy(self):
        run = Run(self.tmp, seed=9, test_labels=False)
        oracle = Oracle(run)
        # without labels: no test accuracy anywhere
        self.assertOK(run.vote())
        self.check_report(run, oracle, "soft-soft", labels=False)
        rows = [(p, t) for p, t in zip(run.test_paths, run.test_labels)]
        rows.reverse()  # matched by image_path, not by order
        self.assertOK(run.vote("--labels", self.labels_csv(run, rows)))
        self.check_report(run, oracle, "soft-soft", labels=True)
        self.assertIn("labels.csv", self.report(run))

    def test_labels_csv_must_cover_every_test_row(self):
        run = Run(self.tmp, seed=9, test_labels=False)
        rows = [(p, t) for p, t in zip(run.test_paths, run.test_labels)]
        del rows[5]
        csv_path = self.labels_csv(run, rows)
        self.assertFails(run.vote("--labels", csv_path), 1, csv_path, run.test_paths[5])
        self.assertFalse(os.path.exists(os.path.join(run.dir, "ensemble", "submission.csv")))

    def test_labels_csv_bad_target_names_line(self):
        run = Run(self.tmp, seed=9, test_labels=False)
        rows = [(p, t) for p, t in zip(run.test_paths, run.test_labels)]
        rows[2] = (rows[2][0], 7)
        csv_path = self.labels_csv(run, rows)
        self.assertFails(run.vote("--labels", csv_path), 1, csv_path + ":4:")

    def test_labels_csv_unknown_image(self):
        run = Run(self.tmp, seed=9, test_labels=False)
        rows = [(p, t) for p, t in zip(run.test_paths, run.test_labels)] + [("stranger.png", 0)]
        csv_path = self.labels_csv(run, rows)
        self.assertFails(run.vote("--labels", csv_path), 1, "stranger.png")


# ---------------------------------------------------------------------------- refusals

class RefusalsTest(VoteCase):
    def assertNoOutputs(self, run):
        self.assertFalse(os.path.exists(os.path.join(run.dir, "ensemble", "submission.csv")))
        self.assertFalse(os.path.exists(os.path.join(run.dir, "ensemble", "report.md")))

    def test_missing_fold_file(self):
        run = Run(self.tmp, seed=1)
        gone = run.preds_path("beta", 1)
        os.remove(gone)
        self.assertFails(run.vote(), 1, "missing folds", gone, "HINT", "train")
        self.assertNoOutputs(run)

    def test_class_count_mismatch(self):
        run = Run(self.tmp, seed=1)
        path = run.preds_path("gamma", 0)
        idx, _, _ = run.probs[("gamma", 0)]
        five = np.full((len(idx), 5), 0.2, np.float32)
        write_preds(path, "gamma", 0, idx, five, np.full((run.M, 5), 0.2, np.float32), 5, run.fp)
        line = self.assertFails(run.vote(), 1, path, "5 classes")
        self.assertIn("has 4", line)
        self.assertNoOutputs(run)

    def test_different_test_set(self):
        run = Run(self.tmp, seed=1)
        other = os.path.join(self.tmp, "other.h5")
        write_data(other, run.labels, run.fold, run.K, run.C, ["x%d.png" % i for i in range(run.M)])
        other_fp = fingerprint(other)
        self.assertNotEqual(other_fp, run.fp)
        path = run.preds_path("alpha", 2)
        idx, oof, test = run.probs[("alpha", 2)]
        write_preds(path, "alpha", 2, idx, run.floats(oof), run.floats(test), run.C, other_fp)
        self.assertFails(run.vote(), 1, path, "different test set")

    def test_soft_with_several_models_needs_model(self):
        run = Run(self.tmp, seed=1)
        for m in ("soft", "hard"):
            with self.subTest(method=m):
                line = self.assertFails(run.vote("--method", m), 2, "--model", "HINT")
                for n, _ in run.models:
                    self.assertIn(n, line)
        self.assertNoOutputs(run)

    def test_manifest_soft_with_several_models_needs_model(self):
        run = Run(self.tmp, seed=1, method="soft")
        self.assertFails(run.vote(), 2, "--model", "alpha, beta, gamma")

    def test_unknown_model(self):
        run = Run(self.tmp, seed=1)
        self.assertFails(run.vote("--method", "soft", "--model", "delta"), 2, "delta", "alpha")

    def test_model_with_cross_model_method(self):
        run = Run(self.tmp, seed=1)
        self.assertFails(run.vote("--method", "soft-soft", "--model", "alpha"), 2, "--model")

    def test_unknown_method(self):
        run = Run(self.tmp, seed=1)
        self.assertFails(run.vote("--method", "average"), 2, "average")

    def test_oof_rows_of_another_fold(self):
        run = Run(self.tmp, seed=1)
        path = run.preds_path("beta", 0)
        idx1, oof1, _ = run.probs[("beta", 1)]
        _, _, test = run.probs[("beta", 0)]
        write_preds(path, "beta", 0, idx1, run.floats(oof1), run.floats(test), run.C, run.fp)
        self.assertFails(run.vote(), 1, path, "/oof/index", "fold 0")

    def test_probabilities_not_summing_to_one(self):
        run = Run(self.tmp, seed=1)
        path = run.preds_path("alpha", 1)
        idx, oof, test = run.probs[("alpha", 1)]
        t = run.floats(test)
        t[6] *= 3.0
        write_preds(path, "alpha", 1, idx, run.floats(oof), t, run.C, run.fp)
        self.assertFails(run.vote(), 1, path, "row 6")

    def test_file_in_the_wrong_fold_directory(self):
        run = Run(self.tmp, seed=1)
        shutil.copy(run.preds_path("alpha", 1), run.preds_path("alpha", 0))
        self.assertFails(run.vote(), 1, run.preds_path("alpha", 0), "fold 1")

    def test_no_manifest(self):
        run = Run(self.tmp, seed=1)
        os.remove(run.manifest)
        self.assertFails(run.vote(), 1, run.manifest, "HINT")

    def test_bad_manifest_names_line(self):
        run = Run(self.tmp, seed=1)
        with open(run.manifest, "a") as f:
            f.write("extra = 1;\n")
        self.assertFails(run.vote(), 1, run.manifest + ":", "extra")

    def test_usage(self):
        r = common.run("vote")
        self.assertFails(r, 2, "RUN_DIR")
        r = common.run("vote", self.tmp, "--frobnicate")
        self.assertFails(r, 2, "--frobnicate")
        r = common.run("vote", "--help")
        self.assertEqual(r.rc, 0)
        for opt in ("--method", "--model", "--out", "--labels", "--data"):
            self.assertIn(opt, r.stdout)
        r = common.run("--help")
        self.assertIn("vote RUN_DIR", r.stdout)


# ---------------------------------------------------------------------------- with prep

class WithPrepTest(VoteCase):
    def test_vote_on_a_prepped_data_file(self):
        """A data file from `foldline prep` (real folds, real paths, test labels from test.csv)."""
        src = os.path.join(self.tmp, "src")
        lay = common.simple_layout(src, [6, 6, 6], size=8, n_test=7, test_targets=True)
        data = os.path.join(self.tmp, "data.h5")
        r = common.prep(src, data, "--size", "8", "--folds", "3", "--quiet")
        self.assertEqual(r.rc, 0, r.stderr)
        with h5py.File(data, "r") as f:
            fold = f["train/fold"][()]
            labels = f["train/labels"][()]
            test_labels = f["test/labels"][()]
        fp = fingerprint(data)
        run_dir = os.path.join(self.tmp, "run")
        os.makedirs(run_dir)
        C, M = 3, len(lay.test)
        eye = np.eye(C, dtype=np.float32)
        for k in range(3):
            idx = np.flatnonzero(fold == k)
            # a perfect model: one-hot on the true label
            write_preds(os.path.join(run_dir, "m", "fold%d" % k, "preds.h5"), "m", k, idx, eye[labels[idx]],
                        eye[test_labels], C, fp)
        write_manifest(os.path.join(run_dir, "run.cfg"), data, [0, 1, 2], [("m", 1.0)], "soft-soft")
        res = common.run("vote", run_dir)
        self.assertOK(res)
        self.assertIn("| soft-soft | 1.0000 (18/18) | 1.0000 (7/7) | yes |", res.stdout)
        _, rows = read_submission(os.path.join(run_dir, "ensemble", "submission.csv"))
        self.assertEqual([int(r[2]) for r in rows], [int(t) for t in test_labels])
        self.assertEqual([r[1] for r in rows], [t[0] for t in lay.test])


if __name__ == "__main__":
    common.main()
