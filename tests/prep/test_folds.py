#!/usr/bin/python3
"""Stratified fold assignment of `foldline prep` (/train/fold).

Contract: fold ids 0..K-1; per class, fold sizes differ by at most one; overall fold sizes differ by at
most one; deterministic for a seed; and exactly scikit-learn's
StratifiedKFold(n_splits=K, shuffle=True, random_state=seed) on train.csv's row order.
The layout is unbalanced (classes of 5..23 rows) with labels in shuffled order, and target ids that are
not in order of first appearance. Images are 8x8 PNGs (--size 8) so prep is fast.
"""

import os
import sys
import tempfile
import unittest
from concurrent.futures import ThreadPoolExecutor

from fltest import prep as common  # noqa: E402
from fltest.prep import np  # noqa: E402

from sklearn.model_selection import StratifiedKFold  # noqa: E402

# (name of the run, options); None = defaults (5 folds, seed 42)
RUNS = {
    "default": [],
    "default_again": [],
    "k5_s42_explicit_1thread": ["--folds", 5, "--seed", 42, "--threads", 1],
    "k5_s43": ["--folds", 5, "--seed", 43],
    "k3_s0": ["--folds", 3, "--seed", 0],
    "k2_smax": ["--folds", 2, "--seed", 4294967295],
    "k4_s12345": ["--folds", 4, "--seed", 12345],
}
FOLDS_SEED = {"default": (5, 42), "default_again": (5, 42), "k5_s42_explicit_1thread": (5, 42),
              "k5_s43": (5, 43), "k3_s0": (3, 0), "k2_smax": (2, 4294967295), "k4_s12345": (4, 12345)}


def sklearn_folds(labels, k, seed):
    folds = np.full(len(labels), -1, np.int64)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, test_idx) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        folds[test_idx] = f
    assert (folds >= 0).all()
    return folds


class FoldTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._td = tempfile.TemporaryDirectory(prefix="foldline-folds-")
        root = os.path.join(cls._td.name, "src")
        counts = [5, 23, 7, 12, 5, 9, 17, 6, 11, 20, 8, 14]
        # rows shuffled: labels appear out of order, and the order of first appearance is not id order
        lay = common.simple_layout(root, counts, size=8, seed=5, n_test=2, shuffle=True)
        cls.counts = counts
        cls.labels = np.array([t for _, _, t in lay.train], np.int64)
        assert not np.array_equal(cls.labels, np.sort(cls.labels))
        first = list(dict.fromkeys(cls.labels.tolist()))
        assert first != sorted(first)
        def one(name):
            out = os.path.join(cls._td.name, name + ".h5")
            return out, common.prep(root, out, "--size", 8, "--quiet", *RUNS[name])

        with ThreadPoolExecutor(common.ConcurrentSuite.workers) as ex:
            results = dict(zip(RUNS, ex.map(one, RUNS)))
        cls.data = {}
        for name, (out, res) in results.items():
            if res.rc != 0:
                raise AssertionError("prep %s failed: %s%s" % (RUNS[name], res.stdout, res.stderr))
            cls.data[name] = common.read_data(out)

    @classmethod
    def tearDownClass(cls):
        cls._td.cleanup()

    def folds(self, name):
        return self.data[name]["train"]["fold"]

    def test_labels_are_the_csv_targets(self):
        for name, d in self.data.items():
            np.testing.assert_array_equal(d["train"]["labels"], self.labels, name)

    def test_fold_ids_in_range(self):
        for name, (k, _) in FOLDS_SEED.items():
            f = self.folds(name)
            self.assertEqual(f.shape, self.labels.shape)
            self.assertTrue(((f >= 0) & (f < k)).all(), "%s: ids %s" % (name, sorted(set(f.tolist()))))
            self.assertEqual(set(f.tolist()), set(range(k)), name)

    def test_stratified_within_every_class(self):
        for name, (k, _) in FOLDS_SEED.items():
            f = self.folds(name)
            for c in range(len(self.counts)):
                sizes = np.bincount(f[self.labels == c], minlength=k)
                self.assertEqual(sizes.sum(), self.counts[c])
                self.assertLessEqual(sizes.max() - sizes.min(), 1,
                                     "%s: class %d fold sizes %s" % (name, c, sizes.tolist()))

    def test_overall_fold_sizes_balanced(self):
        for name, (k, _) in FOLDS_SEED.items():
            sizes = np.bincount(self.folds(name), minlength=k)
            self.assertEqual(len(sizes), k)
            self.assertLessEqual(sizes.max() - sizes.min(), 1, "%s: fold sizes %s" % (name, sizes.tolist()))

    def test_same_seed_same_folds(self):
        np.testing.assert_array_equal(self.folds("default"), self.folds("default_again"))

    def test_explicit_defaults_and_threads_do_not_change_folds(self):
        np.testing.assert_array_equal(self.folds("default"), self.folds("k5_s42_explicit_1thread"))
        np.testing.assert_array_equal(self.data["default"]["train"]["images"],
                                      self.data["k5_s42_explicit_1thread"]["train"]["images"])

    def test_other_seed_other_folds(self):
        a, b = self.folds("default"), self.folds("k5_s43")
        self.assertGreater(int((a != b).sum()), len(a) // 4)

    def test_matches_sklearn_stratified_kfold(self):
        for name, (k, seed) in FOLDS_SEED.items():
            want = sklearn_folds(self.labels, k, seed)
            got = self.folds(name).astype(np.int64)
            bad = np.nonzero(want != got)[0]
            self.assertEqual(len(bad), 0, "%s (K=%d, seed=%d): %d of %d rows differ from scikit-learn, "
                             "first rows %s" % (name, k, seed, len(bad), len(got), bad[:10].tolist()))

    def test_fold_attributes(self):
        for name, (k, seed) in FOLDS_SEED.items():
            a = self.data[name]["attrs"]
            self.assertEqual(a["folds"], k, name)
            self.assertEqual(a["fold_seed"], seed, name)


if __name__ == "__main__":
    common.main()
