#!/usr/bin/python3
"""`foldline vote --fit-weights`: greedy ensemble selection with replacement (Caruana et al., 2004) on the
OOF rows, the nested score, per-model temperatures, weights.txt, and the submission from the fitted weights,
each against a numpy re-implementation of docs/cli.md's definitions on runs built by hand (test_vote.py).
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
import common  # noqa: E402
from common import np  # noqa: E402
import test_vote as tv  # noqa: E402
import test_report_html as th  # noqa: E402

load_tests = common.concurrent_load_tests
EPS = 1e-15


# ---------------------------------------------------------------------------- the oracle

def greedy(P, y, rows, rounds, acc):
    """Picks per model: each round adds the model giving the best score of the mean of the picks (ties: the
    first model); the picks of the best round (the earliest of equal scores) win."""
    M = len(P)
    picks, best, best_score = np.zeros(M, int), None, None
    S = np.zeros((len(rows), P[0].shape[1]))
    for r in range(1, rounds + 1):
        scores = []
        for m in range(M):
            T = S + P[m][rows]
            if acc:
                scores.append(-float((T.argmax(1) == y[rows]).sum()))
            else:
                scores.append(float(np.mean(-np.log(np.maximum(T[np.arange(len(rows)), y[rows]] / r, EPS)))))
        m = int(np.argmin(scores))  # the first of equal scores
        picks[m] += 1
        S += P[m][rows]
        if best is None or scores[m] < best_score:
            best, best_score = picks.copy(), scores[m]
    return best


def temper(p, T):
    if T == 1.0:
        return p.copy()
    with np.errstate(divide="ignore"):
        lp = np.where(p > 0, np.log(np.where(p > 0, p, 1)), -np.inf)
    e = np.where(p > 0, np.exp((lp - lp.max(1, keepdims=True)) / T), 0.0)
    return e / e.sum(1, keepdims=True)


def nll(p, y):
    return float(np.mean(-np.log(np.maximum(p[np.arange(len(y)), y], EPS))))


def score(P, w, y, rows):
    e = sum(wm * P[m][rows] for m, wm in enumerate(w))
    return nll(e, y[rows]), int((e.argmax(1) == y[rows]).sum())


def read_weights(path):
    """weights.txt as docs/formats.md documents it."""
    out = {"models": []}
    with open(path) as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "format foldline-weights 1", lines[0]
    for ln in lines[1:]:
        key, *rest = ln.split()
        if key == "model":
            out["models"].append((rest[0], float(rest[1]), float(rest[2]), int(rest[3])))
        else:
            out[key] = rest[0]
    return out


def fit_table(text):
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| (equal|fitted) \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return rows


class FitCase(tv.VoteCase):
    def read_test_probs(self, run, model, k):
        with th.h5py.File(run.preds_path(model, k), "r") as f:
            return f["test/probs"][()].astype(np.float64)

    def weights(self, run):
        return read_weights(os.path.join(run.dir, "ensemble", "weights.txt"))

    def oof_probs(self, run):
        probs = th.Probs(run)
        return [probs.oof[n] for n, _ in run.models], probs, np.array(run.labels)


# ---------------------------------------------------------------------------- the tests

class GreedyTest(FitCase):
    def check_greedy(self, run, metric, rounds=50):
        args = ["--fit-weights", "--quiet"] + (["--fit-metric", metric] if metric else [])
        if rounds != 50:
            args += ["--fit-rounds", str(rounds)]
        self.assertOK(run.vote(*args))
        P, probs, y = self.oof_probs(run)
        picks = greedy(P, y, probs.oof_rows, rounds, metric == "acc")
        w = self.weights(run)
        self.assertEqual(w["metric"], metric or "logloss")
        self.assertEqual([m[0] for m in w["models"]], [n for n, _ in run.models])
        self.assertEqual([m[3] for m in w["models"]], list(picks))
        np.testing.assert_allclose([m[1] for m in w["models"]], picks / picks.sum(), rtol=0, atol=1e-15)
        self.assertEqual([m[2] for m in w["models"]], [1.0] * len(run.models))
        # the submission is the fitted vote: weighted mean of the models' fold means, first argmax
        wts = [m[1] for m in w["models"]]
        ens = sum(wm * probs.model_test[n] for wm, (n, _) in zip(wts, run.models))
        self.assertEqual(self.submission_targets(run), [int(c) for c in ens.argmax(1)])
        # the report's OOF and test scores, equal against fitted weights
        table = fit_table(self.report(run))
        M = len(run.models)
        for name, ww in (("equal", [1.0 / M] * M), ("fitted", wts)):
            ll, right = score(P, ww, y, probs.oof_rows)
            self.assertAlmostEqual(float(table[name][0]), ll, places=5)
            self.assertEqual(tv.parse_acc(table[name][1]), (right, len(probs.oof_rows)))
        return picks

    def test_logloss_selection(self):
        run = tv.Run(self.tmp, seed=3, models=(("a", 1.0), ("b", 1.0), ("c", 1.0)), C=5, K=4, N=60, M=23,
                     exact=False)
        picks = self.check_greedy(run, None)
        self.assertGreater((picks > 0).sum(), 1)  # a real mixture, not one model

    def test_accuracy_selection_with_ties(self):
        # quarters: many candidates with equal right rows; the first model of run.cfg wins each tie
        run = tv.Run(self.tmp, seed=11)
        self.check_greedy(run, "acc", rounds=7)

    def test_accuracy_selection_softmax(self):
        run = tv.Run(self.tmp, seed=5, models=(("a", 1.0), ("b", 1.0)), C=6, K=3, N=90, M=20, exact=False)
        self.check_greedy(run, "acc")

    def test_duplicate_model_tie_goes_to_the_first(self):
        run = tv.Run(self.tmp, seed=4, models=(("a", 1.0), ("b", 1.0)), C=4, K=3, N=45, M=10, exact=False)
        for k in run.folds:  # b predicts exactly as a
            idx, oof, test = run.probs[("a", k)]
            tv.write_preds(run.preds_path("b", k), "b", k, idx, run.floats(oof), run.floats(test), run.C, run.fp)
        picks = self.check_greedy(run, None)
        self.assertEqual(picks[1], 0)

    def test_nested_score(self):
        run = tv.Run(self.tmp, seed=8, models=(("a", 1.0), ("b", 1.0), ("c", 1.0)), C=5, K=4, N=80, M=12,
                     exact=False)
        self.assertOK(run.vote("--fit-weights", "--quiet", "--fit-rounds", "20"))
        P, probs, y = self.oof_probs(run)
        fold = np.array(run.fold)
        rows = probs.oof_rows
        M = len(run.models)
        sums = {"equal": [0.0, 0.0], "fitted": [0.0, 0.0]}
        for k in run.folds:
            fit_rows, held = rows[fold[rows] != k], rows[fold[rows] == k]
            picks = greedy(P, y, fit_rows, 20, False)
            for name, w in (("equal", [1.0 / M] * M), ("fitted", picks / picks.sum())):
                ll, right = score(P, w, y, held)
                sums[name][0] += ll / len(run.folds)
                sums[name][1] += right / len(held) / len(run.folds)
        table = fit_table(self.report(run))
        for name in ("equal", "fitted"):
            self.assertAlmostEqual(float(table[name][2]), sums[name][0], places=5)
            self.assertAlmostEqual(float(table[name][3]), sums[name][1], places=4)
        # the HTML carries the same numbers
        _, root, _ = th.parse_page(os.path.join(run.dir, "ensemble", "report.html"))
        (tr,) = root.find_all("tr", weights="fitted")
        lls = [float(td.attrs["data-logloss"]) for td in tr.find_all("td") if "data-logloss" in td.attrs]
        self.assertAlmostEqual(lls[1], sums["fitted"][0], places=9)


class TemperatureTest(FitCase):
    def overconfident_run(self):
        """Models whose probabilities are far too sharp (and one too flat): temperatures help."""
        run = tv.Run(self.tmp, seed=2, models=(("sharp", 1.0), ("flat", 1.0)), C=4, K=3, N=90, M=15, exact=False)
        for n, T in (("sharp", 0.2), ("flat", 3.0)):
            for k in run.folds:
                idx, oof, test = run.probs[(n, k)]
                o = temper(run.floats(oof).astype(np.float64), T).astype(np.float32)
                t = temper(run.floats(test).astype(np.float64), T).astype(np.float32)
                o /= o.sum(1, keepdims=True)
                t /= t.sum(1, keepdims=True)
                tv.write_preds(run.preds_path(n, k), n, k, idx, o, t, run.C, run.fp)
        return run

    def test_temperature_lowers_oof_logloss(self):
        run = self.overconfident_run()
        self.assertOK(run.vote("--fit-weights", "--quiet"))
        plain = fit_table(self.report(run))
        self.assertOK(run.vote("--fit-weights", "--fit-temperature", "--quiet"))
        tempered = fit_table(self.report(run))
        self.assertLess(float(tempered["fitted"][0]), float(plain["fitted"][0]))
        P, probs, y = self.oof_probs(run)
        rows = probs.oof_rows
        w = self.weights(run)
        self.assertEqual(w["temperature"], "1")
        for m, (name, _, T, _) in enumerate(w["models"]):
            # each model's own OOF log-loss falls, to about the best a grid of temperatures finds
            self.assertLess(nll(temper(P[m][rows], T), y[rows]), nll(P[m][rows], y[rows]), name)
            grid = min(nll(temper(P[m][rows], t), y[rows]) for t in np.exp(np.linspace(np.log(0.05), np.log(20), 400)))
            self.assertLess(nll(temper(P[m][rows], T), y[rows]), grid + 1e-4, name)
        temps = dict((n, T) for n, _, T, _ in w["models"])
        self.assertGreater(temps["sharp"], 1.0)
        self.assertLess(temps["flat"], 1.0)
        # the submission applies the temperatures per fold, then the weights
        K = len(run.folds)
        ens = 0
        for n, wt, T, _ in w["models"]:
            mean = sum(temper(self.read_test_probs(run, n, k), T) for k in run.folds) / K
            ens = ens + wt * mean
        self.assertEqual(self.submission_targets(run), [int(c) for c in ens.argmax(1)])


class FilesTest(FitCase):
    def test_plain_vote_removes_weights(self):
        run = tv.Run(self.tmp, seed=3, models=(("a", 1.0), ("b", 1.0)), C=5, K=3, N=30, M=10, exact=False)
        self.assertOK(run.vote("--fit-weights", "--quiet"))
        path = os.path.join(run.dir, "ensemble", "weights.txt")
        self.assertTrue(os.path.exists(path))
        self.assertIn("## Fitted weights", self.report(run))
        self.assertEqual(sorted(os.listdir(os.path.join(run.dir, "ensemble"))),
                         ["report.html", "report.md", "submission.csv", "weights.txt"])
        self.assertOK(run.vote("--quiet"))
        self.assertFalse(os.path.exists(path))
        self.assertNotIn("Fitted weights", self.report(run))

    def test_usage(self):
        run = tv.Run(self.tmp, seed=3, models=(("a", 1.0), ("b", 1.0)), C=5, K=3, N=30, M=10, exact=False)
        self.assertFails(run.vote("--fit-metric", "acc"), 2, "--fit-weights")
        self.assertFails(run.vote("--fit-weights", "--method", "hard-hard"), 2, "--fit-weights", "hard-hard")
        self.assertFails(run.vote("--fit-weights", "--fit-metric", "auc"), 2, "auc", "logloss")
        self.assertFails(run.vote("--fit-weights", "--fit-rounds", "0"), 2, "--fit-rounds")
        r = common.run("vote", "--help")
        for opt in ("--fit-weights", "--fit-metric", "--fit-temperature", "--fit-rounds"):
            self.assertIn(opt, r.stdout)

    def test_one_fold_has_no_nested_score(self):
        run = tv.Run(self.tmp, seed=4, models=(("a", 1), ("b", 1)), folds=[1])
        self.assertOK(run.vote("--fit-weights", "--quiet"))
        table = fit_table(self.report(run))
        self.assertEqual(table["fitted"][2:4], ["n/a", "n/a"])


if __name__ == "__main__":
    common.main()
