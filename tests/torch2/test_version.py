#!/usr/bin/env python3
"""The build against torch 2.x: `foldline --version` names libtorch 2.x.y, CUDA built with as many
devices as torch itself sees, and the NCCL it loads: the nvidia-nccl wheel's, at its version; the
binary's libtorch module (libfoldline_torch.so, beside it) loads one libc10 (torch's), and the CUDA runtime
and NCCL of torch's wheels (ldd); the executable itself links no libtorch.

    FOLDLINE=build-torch2/foldline FOLDLINE_TORCH_PYTHON=VENV/bin/python python3 test_version.py"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import t2  # noqa: E402

ORACLE = """
import importlib.metadata as md, os, torch, nvidia.nccl as n
print(torch.__version__.split('+')[0]); print(torch.cuda.device_count())
print(md.version('nvidia-nccl-cu13')); print(os.path.dirname(torch.__file__)); print(list(n.__path__)[0])
"""


class Torch2Version(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        t2.need_py2()
        rc, out, err = t2.py2("-c", ORACLE)
        assert rc == 0, err
        cls.torch, devices, cls.nccl, cls.torch_dir, cls.nccl_dir = out.split("\n")[:5]
        cls.devices = int(devices)
        rc, cls.out, err = t2.run([t2.FOLDLINE, "--version"])
        assert rc == 0, err

    def test_libtorch_2_cuda_built_and_the_devices_torch_sees(self):
        n = self.devices
        self.assertIn("libtorch %s (CUDA built, %d device%s visible)\n" % (self.torch, n, "" if n == 1 else "s"),
                      self.out)
        self.assertRegex(self.torch, r"^2\.\d+\.\d+$")

    def test_nccl_is_the_wheel_torch_loads_with_its_version(self):
        lib = os.path.realpath(os.path.join(self.nccl_dir, "lib", "libnccl.so.2"))
        line = re.search(r"^NCCL +(.*)$", self.out, re.M).group(1)
        m = re.fullmatch(r"built in \(NCCL (\d+\.\d+\.\d+) from (.*)\)", line)
        self.assertTrue(m, line)
        self.assertEqual(m.group(1), self.nccl)  # 2.30.7 for nvidia-nccl-cu13 2.30.7
        self.assertEqual(os.path.realpath(m.group(2)), lib)

    def test_one_libc10_and_the_cuda_runtime_and_nccl_of_torchs_wheels(self):
        rc, out, err = t2.run(["ldd", t2.FOLDLINE])
        self.assertEqual(rc, 0, err)
        self.assertNotIn("libc10", out)
        self.assertNotIn("libtorch", out)
        module = os.path.join(os.path.dirname(os.path.realpath(t2.FOLDLINE)), "libfoldline_torch.so")
        rc, out, err = t2.run(["ldd", module])
        self.assertEqual(rc, 0, err)
        libs = dict(re.findall(r"^\s*(\S+) => (\S+)", out, re.M))
        c10 = [name for name in libs if name.startswith("libc10.so")]
        self.assertEqual(c10, ["libc10.so"], out)
        self.assertEqual(os.path.realpath(libs["libc10.so"]),
                         os.path.realpath(os.path.join(self.torch_dir, "lib", "libc10.so")))
        self.assertNotIn("not found", out)
        site = os.path.realpath(os.path.dirname(self.torch_dir))
        for name in ("libcudart.so.13", "libnccl.so.2", "libtorch_cuda.so"):
            self.assertTrue(os.path.realpath(libs[name]).startswith(site + os.sep), (name, libs.get(name)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
