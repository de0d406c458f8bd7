#!/usr/bin/env python3
"""A short CPU training run (smallcnn, 2 folds, 2 epochs, one thread, the same config and data file)
gives the same predictions on the build against torch 2.x as on the libtorch 1.13 build, within TOL:
the same initial weights (libtorch's seeded generator), the same batches and augmentation draws, and
float rounding of other kernels (pip's torch: MKL and oneDNN; Debian's: OpenBLAS) that training
carries along. Both runs must also learn the patterns. Needs both builds.

    FOLDLINE=build-torch2/foldline FOLDLINE_REFERENCE_BUILD=build python3 test_agree.py"""
import os
import sys
import time
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))
import t2  # noqa: E402
from common import TempDirTest, config_text, model_text, write_data_file  # noqa: E402

TOL = 1e-5  # largest |p2 - p1| over every OOF and test probability (docs/gpus.md); measured 1.2e-7


class AgreeWithLibtorch113(TempDirTest):
    def test_predictions_equal_the_libtorch_113_builds(self):
        old = t2.need_ref("foldline")
        labels, fold, _ = write_data_file(self.path("d.h5"))
        aug = ('augment = ( { from_epoch = 1; ops = ( { op = "hflip"; p = 0.5; }, '
               '{ op = "rotate"; degrees = 10.0; p = 0.5; } ); } ); tta = [ "hflip" ];')
        probs = {}
        for name, binary in (("t1", old), ("t2", t2.FOLDLINE)):
            with open(self.path(name + ".cfg"), "w") as f:
                f.write(config_text(self.path("d.h5"), self.path("runs"), name=name,
                                    models=[model_text("m", epochs=2, extra=aug)]))
            t0 = time.time()
            rc, out, err = t2.run([binary, "train", self.path(name + ".cfg")], timeout=300)
            self.assertEqual(rc, 0, out + err)
            print(f"{name}: {binary}: {time.time() - t0:.1f} s")
            probs[name] = []
            for k in (0, 1):
                with h5py.File(self.path("runs", name, "m", "fold%d" % k, "preds.h5")) as f:
                    oof = f["oof/probs"][:]
                    acc = (oof.argmax(1) == labels[f["oof/index"][:]]).mean()
                    self.assertGreater(acc, 0.6, (name, k))
                    probs[name] += [oof, f["test/probs"][:]]
        diff = max(float(np.abs(a - b).max()) for a, b in zip(probs["t1"], probs["t2"]))
        print(f"largest difference of a probability, libtorch 2.x against 1.13: {diff:.2e} (TOL {TOL})")
        self.assertLess(diff, TOL)


if __name__ == "__main__":
    unittest.main(verbosity=2)
