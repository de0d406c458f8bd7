"""Shared by tests/torch2/test_*.py: the build against torch 2.x (tools/torch2.sh) and what it
is compared with. The tests run under Debian's /usr/bin/python3 (numpy, h5py); torch 2.x and timm
run in the virtual environment's Python ($FOLDLINE_TORCH_PYTHON) as subprocesses.

    FOLDLINE, SCRIPT_MODEL      this build's foldline and tests/unit/script_model
    FOLDLINE_TORCH_PYTHON       the venv's python (torch 2.x, timm)
    FOLDLINE_REFERENCE_BUILD    the libtorch 1.13 build folder (build/)

A test exits 77 (skipped) when what it needs is not there."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXPORT = os.path.join(ROOT, "launch", "export_timm.py")
ORACLE = os.path.join(HERE, "timm_oracle.py")
FOLDLINE = os.environ.get("FOLDLINE", "")
SCRIPT_MODEL = os.environ.get("SCRIPT_MODEL", "")
PY2 = os.environ.get("FOLDLINE_TORCH_PYTHON", "")
REF = os.environ.get("FOLDLINE_REFERENCE_BUILD", "")
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # script_model.c's


def skip(why):
    print(f"skipped: {why}")
    sys.exit(77)


def need_py2():
    if not PY2 or not os.access(PY2, os.X_OK):
        skip("no FOLDLINE_TORCH_PYTHON (tools/torch2.sh's virtual environment)")


def need_ref(name="foldline"):
    path = os.path.join(REF, name) if REF else ""
    if not path or not os.access(path, os.X_OK):
        skip(f"no {name} in FOLDLINE_REFERENCE_BUILD={REF!r} (the libtorch 1.13 build)")
    return path


def py2(*args, timeout=1500):
    """Runs the venv's python with args: (returncode, stdout, stderr)."""
    p = subprocess.run([PY2] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def run(cmd, timeout=1500, cwd=None, env=None):
    p = subprocess.run([str(a) for a in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                       stdin=subprocess.DEVNULL, env=env)
    return p.returncode, p.stdout, p.stderr


def script_model(binary, path, ch, size, steps=0, ckpt="-", timeout=1500):
    """tests/unit/script_model on a module: (dim, features as a flat list of 2*dim floats)."""
    rc, out, err = run([binary, path, ch, size, 1, 1.0, steps, ckpt], timeout=timeout)
    lines = out.split("\n")
    if rc != 0 or not lines[0].startswith("dim "):
        raise AssertionError(f"script_model failed ({rc}): {out}{err}")
    dim = int(lines[0].split()[1])
    return dim, [float(v) for v in lines[2:2 + 2 * dim]]


def rel_diff(got, want):
    """max |got - want| / max |want|."""
    import numpy as np
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
