#!/usr/bin/python3
"""RUN_DIR/ensemble/report.html from `foldline vote`: well-formed, self-contained, every number drawn equal
to an independent numpy computation from metrics.csv and preds.h5, rendered by headless Chromium without a
console error (the screenshot is kept), and a 500-class run readable and under 5 MB.

Runs are built by hand as in test_vote.py (h5py data file, preds.h5 per model x fold, run.cfg), plus a
metrics.csv per fold for the learning curves. The numbers are read back from the SVG's data-* attributes.

Screenshots go to $FOLDLINE_ARTIFACTS (default: a foldline-artifacts folder in the system's temporary
directory); the test prints their paths.
"""

import glob
import html.parser
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
import common  # noqa: E402
from common import np  # noqa: E402
import test_vote as tv  # noqa: E402

import h5py  # noqa: E402

load_tests = common.concurrent_load_tests
BINS = 15
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


# ---------------------------------------------------------------------------- reading the page back

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag=None, cls=None, **data):
        out = []
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.attrs.get("class", "").split():
                continue
            if any(n.attrs.get("data-" + k.replace("_", "-")) != str(v) for k, v in data.items()):
                continue
            out.append(n)
        return out

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)


class StrictParser(html.parser.HTMLParser):
    """Builds a tree and refuses what is not well-formed: an end tag that does not close the innermost open
    element, an element left open at the end, a non-void element written as <x/> outside SVG is fine too."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root
        self.errors = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node
        elif tag != "meta":
            self.errors.append("void element <%s> must be written <%s/>" % (tag, tag))

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append("end tag of void element </%s>" % tag)
        elif self.cur.tag != tag:
            self.errors.append("</%s> closes <%s> at %s" % (tag, self.cur.tag, self.getpos()))
        else:
            self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.text += data

    def close(self):
        super().close()
        if self.cur is not self.root:
            self.errors.append("<%s> never closed" % self.cur.tag)


def parse_page(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    p = StrictParser()
    p.feed(text)
    p.close()
    return text, p.root, p.errors


def nums(s):
    return [float(x) for x in s.split()]


# ---------------------------------------------------------------------------- the oracle

def ece_bins(conf, right):
    """(n, correct, conf sum) per bin and the ECE, as the report defines them."""
    b = np.minimum(np.floor(conf * BINS).astype(int), BINS - 1)
    n = np.bincount(b, minlength=BINS)
    c = np.bincount(b, weights=right.astype(float), minlength=BINS)
    s = np.bincount(b, weights=conf, minlength=BINS)
    rows = len(conf)
    ece = sum(n[k] / rows * abs(c[k] / n[k] - s[k] / n[k]) for k in range(BINS) if n[k])
    return n, c, s, ece


class Probs:
    """Every probability of a run, read back from its preds.h5 files with h5py."""

    def __init__(self, run):
        self.run = run
        names = [n for n, _ in run.models]
        self.oof = {n: np.zeros((run.N, run.C)) for n in names}
        self.test_sum = {n: np.zeros((run.M, run.C)) for n in names}
        self.epoch = {}
        for n in names:
            for k in run.folds:
                with h5py.File(run.preds_path(n, k), "r") as f:
                    self.oof[n][f["oof/index"][()]] = f["oof/probs"][()].astype(np.float64)
                    self.test_sum[n] += f["test/probs"][()].astype(np.float64)  # summed in fold order, as vote
                    self.epoch[(n, k)] = int(f.attrs["epoch"])
        self.oof_rows = np.array(sorted(r for r in range(run.N) if run.fold[r] in run.folds))
        K, W = len(run.folds), sum(float(w) for _, w in run.models)
        ens_oof, ens_test = np.zeros((run.N, run.C)), np.zeros((run.M, run.C))
        for n, w in run.models:
            ens_oof += float(w) * self.oof[n]
            ens_test += float(w) * self.test_sum[n]
        self.ens_oof, self.ens_test = ens_oof / W, ens_test / (K * W)
        self.model_test = {n: self.test_sum[n] / K for n in names}

    def calib(self, p, labels):
        a = p.argmax(1)
        return ece_bins(p[np.arange(len(a)), a], a == np.asarray(labels))


# ---------------------------------------------------------------------------- runs

def write_metrics(run, epochs, seed):
    """A metrics.csv per model x fold (the train's columns), with curves that fall and rise."""
    rng = np.random.default_rng(seed)
    for n, _ in run.models:
        for k in run.folds:
            path = os.path.join(run.dir, n, "fold%d" % k, "metrics.csv")
            with open(path, "w") as f:
                f.write("epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,images_per_s\n")
                for e in range(epochs):
                    tl = 2.0 * np.exp(-0.4 * e) + 0.1 * rng.random()
                    vl = tl + 0.05 * e * rng.random()
                    f.write("%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f\n" % (
                        e, 0.01 * 0.9 ** e, tl, 1 - tl / 2.5, vl, 1 - vl / 2.6, 10.0 + e, 800.0))


def artifacts_dir():
    d = os.environ.get("FOLDLINE_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "foldline-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def render(html_path, png_path, height=3000):
    """Headless Chromium's screenshot of a page; returns (rc, the console lines of its log)."""
    with tempfile.TemporaryDirectory(prefix="foldline-chromium-") as profile:
        p = subprocess.run([chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                            "--v=0", "--user-data-dir=" + profile, "--screenshot=" + png_path,
                            "--window-size=1400,%d" % height, "file://" + html_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
    log = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p.returncode, [line for line in log.splitlines() if ":CONSOLE" in line]


class HtmlCase(tv.VoteCase):
    def page(self, run):
        path = os.path.join(run.dir, "ensemble", "report.html")
        text, root, errors = parse_page(path)
        self.assertEqual(errors, [], "report.html is not well-formed")
        return path, text, root


# ---------------------------------------------------------------------------- the tests

class PageTest(HtmlCase):
    def test_well_formed_and_self_contained(self):
        run = tv.Run(self.tmp, seed=3, models=(("a", 1.0), ("b", 0.5)), C=5, K=4, N=41, M=23, exact=False)
        write_metrics(run, 6, 1)
        self.assertOK(run.vote("--quiet"))
        path, text, root = self.page(run)
        self.assertTrue(text.startswith("<!DOCTYPE html>"))
        for tag in ("script", "link", "img", "iframe", "object", "embed"):
            self.assertEqual(root.find_all(tag), [], tag)
        for needle in ("http:", "https:", "url(", "src="):
            self.assertNotIn(needle, text)
        # every section is there
        for h in ("curves", "methods", "folds", "confusion", "per-class", "agreement", "calibration"):
            self.assertIn('id="%s"' % h, text)
        # the report.md is unchanged by it and names the same submission
        self.assertIn("soft-soft", root.find_all("tr", cls="chosen")[0].all_text())

    def test_every_number_drawn_equals_the_oracle(self):
        run = tv.Run(self.tmp, seed=3, models=(("a", 1.0), ("b", 0.5)), C=5, K=4, N=41, M=23, exact=False)
        write_metrics(run, 6, 1)
        self.check_numbers(run, "soft-soft")

    def test_numbers_with_exact_ties_and_hard_vote(self):
        run = tv.Run(self.tmp, seed=11)  # quarters: many exact ties, confidences on bin edges
        write_metrics(run, 5, 2)
        self.check_numbers(run, "hard-hard", "--method", "hard-hard")

    def check_numbers(self, run, chosen, *args):
        self.assertOK(run.vote("--quiet", *args))
        _, _, root = self.page(run)
        oracle, probs = tv.Oracle(run), Probs(run)
        names = [n for n, _ in run.models]
        y, ty = np.array(run.labels), np.array(run.test_labels)
        # learning curves: every polyline's values equal metrics.csv, the marker sits at preds.h5's epoch
        for n in names:
            for k in run.folds:
                rows = tv.read_submission(os.path.join(run.dir, n, "fold%d" % k, "metrics.csv"))
                header, data = rows
                for series in ("train_loss", "val_loss", "train_acc", "val_acc"):
                    (line,) = root.find_all("polyline", model=n, fold=k, series=series)
                    col = header.index(series)
                    self.assertEqual(nums(line.attrs["data-epochs"]), [float(r[0]) for r in data])
                    np.testing.assert_allclose(nums(line.attrs["data-values"]), [float(r[col]) for r in data],
                                               rtol=1e-9)
                for series in ("val_loss", "val_acc"):
                    (mark,) = root.find_all("circle", cls="checkpoint", model=n, fold=k, series=series)
                    self.assertEqual(int(mark.attrs["data-epoch"]), probs.epoch[(n, k)])
                    val = [float(r[header.index(series)]) for r in data if int(r[0]) == probs.epoch[(n, k)]]
                    self.assertAlmostEqual(float(mark.attrs["data-value"]), val[0], places=9)
        # confusion matrix of the submission's vote on the OOF rows
        pred = oracle.methods()[chosen][1]
        conf = np.zeros((run.C, run.C), int)
        for r in oracle.oof_rows:
            conf[y[r], pred[r]] += 1
        drawn = np.zeros_like(conf)
        (svg,) = root.find_all("svg", cls="confusion")
        order = [int(x) for x in svg.attrs["data-order"].split()]
        self.assertEqual(sorted(order), list(range(run.C)))
        for g in svg.find_all("g", cls="cm-row"):
            t = int(g.attrs["data-true"])
            self.assertEqual(int(g.attrs["data-rowtotal"]), conf[t].sum())
            for cell in g.find_all("rect"):
                drawn[t, int(cell.attrs["data-pred"])] = int(cell.attrs["data-count"])
        np.testing.assert_array_equal(drawn, conf)
        # per-class accuracy, worst first (exact fractions, ties by class id)
        bars = root.find_all("rect", cls="class-acc")
        got = [(int(b.attrs["data-class"]), int(b.attrs["data-correct"]), int(b.attrs["data-total"])) for b in bars]
        want = sorted(((c, int(conf[c, c]), int(conf[c].sum())) for c in range(run.C)),
                      key=lambda t: (t[1] / t[2] if t[2] else 2, t[0]))
        self.assertEqual(got, want)
        # agreement of the models' soft votes on test
        for a_i, a in enumerate(names):
            for b_i, b in enumerate(names):
                (g,) = root.find_all("g", cls="agree", a=a_i, b=b_i)
                same = sum(1 for i in range(run.M) if oracle.test_soft[a][i] == oracle.test_soft[b][i])
                self.assertEqual((int(g.attrs["data-same"]), int(g.attrs["data-total"])), (same, run.M))
        # calibration: bins and ECE of each model and of the soft-soft vote, OOF and test
        rows = probs.oof_rows
        cases = [(n, "oof", probs.oof[n][rows], y[rows]) for n in names]
        cases += [(n, "test", probs.model_test[n], ty) for n in names]
        cases += [("soft-soft", "oof", probs.ens_oof[rows], y[rows]), ("soft-soft", "test", probs.ens_test, ty)]
        for who, split, p, labels in cases:
            with self.subTest(model=who, split=split):
                (panel,) = root.find_all("svg", cls="reliability", model=who, split=split)
                n, c, s, ece = probs.calib(p, labels)
                self.assertAlmostEqual(float(panel.attrs["data-ece"]), ece, places=8)
                self.assertEqual(int(panel.attrs["data-rows"]), len(labels))
                got = {int(b.attrs["data-bin"]): b for b in panel.find_all("rect", cls="bin")}
                self.assertEqual(sorted(got), [k for k in range(BINS) if n[k]])
                for k, b in got.items():
                    self.assertEqual(int(b.attrs["data-count"]), n[k])
                    self.assertEqual(int(b.attrs["data-correct"]), int(c[k]))
                    self.assertAlmostEqual(float(b.attrs["data-conf"]), s[k] / n[k], places=8)
                (row,) = root.find_all("table", cls="ece")[0].find_all("tr", model=who)
                cells = [td for td in row.find_all("td") if "data-ece" in td.attrs]
                self.assertAlmostEqual(float(cells[0 if split == "oof" else 1].attrs["data-ece"]), ece, places=8)
        # the folds table carries preds.h5's epoch
        for n in names:
            for k in run.folds:
                (tr,) = root.find_all("tr", model=n, fold=k)
                self.assertEqual(int(tr.attrs["data-epoch"]), probs.epoch[(n, k)])

    def test_without_test_labels_and_without_metrics(self):
        run = tv.Run(self.tmp, seed=9, test_labels=False)
        self.assertOK(run.vote("--quiet"))
        _, text, root = self.page(run)
        self.assertEqual(root.find_all("svg", cls="reliability", split="test"), [])
        self.assertEqual(len(root.find_all("svg", cls="reliability", split="oof")), 4)
        self.assertEqual(root.find_all("polyline", cls="curve"), [])
        self.assertIn("metrics.csv", " ".join(p.all_text() for p in root.find_all("p", cls="missing-curve")))


class ClustersTest(HtmlCase):
    def test_500_classes_readable_and_small(self):
        """500 classes in blocks of 5 confused only among themselves: every block sits together in the
        heat map's order, the 20 most confused pairs and their examples equal numpy's, every class is in
        the per-class table, and the page stays under 5 MB."""
        C, N, M, block = 500, 6000, 60, 5
        rng = np.random.default_rng(7)
        perm = rng.permutation(C)
        block_of = np.empty(C, int)
        block_of[perm] = np.arange(C) // block
        members = {b: np.flatnonzero(block_of == b) for b in range(C // block)}
        root = self.tmp
        run_dir = os.path.join(root, "run")
        labels = rng.integers(0, C, N)
        fold = np.arange(N) % 3
        rng.shuffle(fold)
        test_paths = ["t/%d.png" % i for i in range(M)]
        data = os.path.join(root, "data.h5")
        tv.write_data(data, labels, fold, 3, C, test_paths, rng.integers(0, C, M))
        fp = tv.fingerprint(data)

        def probs_for(rows_labels):
            logits = np.full((len(rows_labels), C), -40.0)
            for i, t in enumerate(rows_labels):
                mates = members[block_of[t]]
                logits[i, mates] = rng.normal(size=len(mates)) * 1.2
                logits[i, t] += 1.5
            e = np.exp(logits - logits.max(1, keepdims=True))
            return (e / e.sum(1, keepdims=True)).astype(np.float32)

        test_p = probs_for(rng.integers(0, C, M))
        oof_all = np.zeros((N, C), np.float32)
        for k in range(3):
            idx = np.flatnonzero(fold == k)
            p = probs_for(labels[idx])
            oof_all[idx] = p
            tv.write_preds(os.path.join(run_dir, "m", "fold%d" % k, "preds.h5"), "m", k, idx, p, test_p, C, fp)
        tv.write_manifest(os.path.join(run_dir, "run.cfg"), data, [0, 1, 2], [("m", 1.0)], "soft-soft")
        res = common.run("vote", run_dir, "--quiet")
        self.assertOK(res)
        path = os.path.join(run_dir, "ensemble", "report.html")
        size = os.path.getsize(path)
        print("500-class report.html: %d bytes" % size, file=sys.stderr)
        self.assertLess(size, 5 * 1024 * 1024)
        _, root_node, errors = parse_page(path)
        self.assertEqual(errors, [])
        pred = oof_all.argmax(1)
        conf = np.zeros((C, C), int)
        np.add.at(conf, (labels, pred), 1)
        # the cluster order keeps each block together
        (svg,) = root_node.find_all("svg", cls="confusion")
        order = [int(x) for x in svg.attrs["data-order"].split()]
        self.assertEqual(sorted(order), list(range(C)))
        pos = np.empty(C, int)
        pos[order] = np.arange(C)
        for b, mates in members.items():
            p = sorted(pos[mates])
            self.assertEqual(p[-1] - p[0], block - 1, "block %d is split: %s" % (b, p))
        drawn = sum(len(g.find_all("rect")) for g in svg.find_all("g", cls="cm-row"))
        self.assertEqual(drawn, int((conf > 0).sum()))
        # the 20 most confused pairs, with their first examples
        pairs = []
        for a in range(C):
            for b in range(a + 1, C):
                if conf[a, b] + conf[b, a]:
                    pairs.append((-(conf[a, b] + conf[b, a]), a, b))
        pairs.sort()
        rows = root_node.find_all("table", cls="pairs")[0].find_all("tr")[1:]
        self.assertEqual(len(rows), 20)
        for tr, (_, a, b) in zip(rows, pairs[:20]):
            self.assertEqual((int(tr.attrs["data-a"]), int(tr.attrs["data-b"])), (a, b))
            self.assertEqual((int(tr.attrs["data-ab"]), int(tr.attrs["data-ba"])), (conf[a, b], conf[b, a]))
            want = [r for r in range(N) if (labels[r], pred[r]) in ((a, b), (b, a))][:3]
            codes = tr.find_all("code")
            self.assertEqual([int(c.attrs["data-row"]) for c in codes], want)
            self.assertEqual([c.all_text() for c in codes], ["c/train_%d.png" % r for r in want])
        # every class in the per-class table, worst first; 50 bars drawn
        self.assertEqual(len(root_node.find_all("rect", cls="class-acc")), 50)
        trs = root_node.find_all("table", cls="per-class")[0].find_all("tr")[1:]
        got = [int(tr.attrs["data-class"]) for tr in trs]
        acc = [(conf[c, c] / conf[c].sum() if conf[c].sum() else 2, c) for c in range(C)]
        self.assertEqual(got, [c for _, c in sorted(acc)])
        if chromium():
            png = os.path.join(artifacts_dir(), "report-500-classes.png")
            rc, console = render(path, png, height=2400)
            self.assertEqual((rc, console), (0, []))
            print("screenshot: %s" % png, file=sys.stderr)


@unittest.skipUnless(chromium(), "needs Debian's chromium (tools/deps.sh installs it with the tests)")
class ChromiumTest(HtmlCase):
    def test_console_check_catches_an_error(self):
        """The console check itself: a page that logs an error is caught."""
        bad = os.path.join(self.tmp, "bad.html")
        with open(bad, "w") as f:
            f.write("<!DOCTYPE html><html><body><script>console.error('broken')</script><p>x</p></body></html>")
        rc, console = render(bad, os.path.join(self.tmp, "bad.png"), height=300)
        self.assertEqual(rc, 0)
        self.assertTrue(any("broken" in line for line in console), console)

    def test_renders_without_console_errors(self):
        run = tv.Run(self.tmp, seed=3, models=(("cnn", 1.0), ("cnn_mlp", 1.0), ("vit", 0.5)), C=10, K=5, N=400,
                     M=120, exact=False)
        write_metrics(run, 12, 3)
        self.assertOK(run.vote("--quiet", "--fit-weights", "--fit-temperature"))
        path, _, _ = self.page(run)
        png = os.path.join(artifacts_dir(), "report.png")
        rc, console = render(path, png, height=4200)
        self.assertEqual(rc, 0)
        self.assertEqual(console, [])
        self.assertGreater(os.path.getsize(png), 20000)  # a real picture, not a blank page
        print("screenshot: %s" % png, file=sys.stderr)


if __name__ == "__main__":
    common.main()
