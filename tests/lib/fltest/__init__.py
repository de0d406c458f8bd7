"""fltest: the Python library of foldline's integration tests.

    fltest.prep   images, CSV layouts and data-file readers of the prep, inspect and vote tests
    fltest.train  a small learnable data file written with h5py, configs and runs of the train tests

ctest puts tests/lib on PYTHONPATH (tests/tests.cmake); to run one test file by hand:
    PYTHONPATH=tests/lib FOLDLINE=build/foldline /usr/bin/python3 tests/train/test_train.py
The binary under test comes from $FOLDLINE, else build/foldline of this repository.
"""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FOLDLINE = os.environ.get("FOLDLINE") or os.path.join(REPO, "build", "foldline")
