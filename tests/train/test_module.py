#!/usr/bin/env python3
"""The libtorch module (launch/torch_module.h): train, predict, export and --version load
libfoldline_torch.so from the folder of the executable (or $FOLDLINE_TORCH_MODULE); prep, inspect,
vote, status and --help load no libtorch at all (LD_DEBUG=libs), and keep working when the module is
missing or broken, while the libtorch verbs fail in one line naming the module, with a HINT and exit
status 1.

    FOLDLINE=build/foldline /usr/bin/python3 test_module.py"""
import os
import re
import shutil
import subprocess
import sys
import unittest

from fltest.train import FOLDLINE, TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402

MODULE = os.path.join(os.path.dirname(os.path.realpath(FOLDLINE)), "libfoldline_torch.so")


def run_env(binary, args, env=None, timeout=300):
    e = dict(os.environ)
    e.pop("FOLDLINE_TORCH_MODULE", None)
    e.update(env or {})
    p = subprocess.run([binary] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, env=e)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def loaded_libraries(binary, args, env=None):
    """The shared objects the dynamic linker initialised in a run of binary (LD_DEBUG=libs)."""
    rc, out, err = run_env(binary, args, dict(env or {}, LD_DEBUG="libs"))
    return rc, {os.path.basename(m) for m in re.findall(r"calling init: (\S+)", err)}


class TorchModule(TempDirTest):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._cls_tmp = tempfile.TemporaryDirectory(prefix="fl-module-")
        d = cls._cls_tmp.name
        cls.data = os.path.join(d, "data.h5")
        write_data_file(cls.data, n_per_class=20, classes=3, folds=2, n_test=12, size=16)
        cls.cfg = os.path.join(d, "run.cfg")
        with open(cls.cfg, "w") as f:
            f.write(config_text(cls.data, os.path.join(d, "runs"), "t",
                                [model_text("m", extra="batch = 16;").replace("batch = 32;", "")]))
        cls.run_dir = os.path.join(d, "runs", "t")
        rc, out, err = run("train", cls.cfg)
        assert rc == 0, err
        # The executable alone, in a folder without its module.
        cls.alone = os.path.join(d, "bin", "foldline")
        os.makedirs(os.path.dirname(cls.alone))
        shutil.copy2(FOLDLINE, cls.alone)

    @classmethod
    def tearDownClass(cls):
        cls._cls_tmp.cleanup()

    def assert_module_error(self, rc, out, err, path, reason):
        self.assertEqual(rc, 1, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("foldline: error: cannot load the libtorch module %s: " % path), err)
        self.assertIn(reason, lines[0])
        self.assertIn("HINT: ", lines[0])

    def test_the_verbs_without_libtorch_load_none_of_it(self):
        for args in (["--help"], ["inspect", self.data, "--quick"], ["vote", self.run_dir],
                     ["status", self.run_dir], ["prep", "--help"]):
            rc, libs = loaded_libraries(FOLDLINE, args)
            self.assertIn(rc, (0, 3), args)  # status: 3 when some job is not done
            torch = sorted(n for n in libs if "torch" in n or n.startswith("libc10"))
            self.assertEqual(torch, [], args)
            self.assertLess(len(libs), 120, (args, sorted(libs)))
        rc, libs = loaded_libraries(FOLDLINE, ["--version"])
        self.assertEqual(rc, 0)
        self.assertIn("libfoldline_torch.so", libs)
        self.assertTrue(any(n.startswith("libc10") for n in libs), sorted(libs))

    def test_without_the_module_the_other_verbs_work_and_train_predict_export_fail_in_one_line(self):
        missing = os.path.join(os.path.dirname(self.alone), "libfoldline_torch.so")
        rc, out, err = run_env(self.alone, ["--help"])
        self.assertEqual((rc, err), (0, ""))
        self.assertIn("usage: foldline VERB", out)
        rc, out, err = run_env(self.alone, ["inspect", self.data, "--quick"])
        self.assertEqual(rc, 0, err)
        self.assertIn("class2", out)
        out_csv = self.path("sub.csv")
        rc, out, err = run_env(self.alone, ["vote", self.run_dir, "--method", "hard", "--out", out_csv])
        self.assertEqual(rc, 0, err)
        with open(out_csv) as f:
            self.assertEqual(len(f.read().splitlines()), 1 + 12)
        rc, out, err = run_env(self.alone, ["status", self.run_dir])
        self.assertEqual(rc, 0, err)
        self.assertIn("done", out)
        for args in (["train", self.cfg], ["predict", self.run_dir, self.data, "--out", self.path("p.csv")],
                     ["export", self.run_dir, self.path("e.pt")], ["train", "--help"]):
            rc, out, err = run_env(self.alone, args)
            self.assert_module_error(rc, out, err, missing, "No such file")
            self.assertEqual(out, "")
        self.assertFalse(os.path.exists(self.path("p.csv")))
        self.assertFalse(os.path.exists(self.path("e.pt")))
        # --version: every other line, then the error.
        rc, out, err = run_env(self.alone, ["--version"])
        self.assert_module_error(rc, out, err, missing, "No such file")
        self.assertIn("libtorch unknown (the libtorch module %s did not load)" % missing, out)
        self.assertRegex(out, r"(?m)^MPI +\S")
        self.assertRegex(out, r"(?m)^HDF5 +\d+\.\d+\.\d+$")

    def test_foldline_torch_module_names_the_module(self):
        # The executable alone finds its module through the variable.
        rc, out, err = run_env(self.alone, ["--version"], {"FOLDLINE_TORCH_MODULE": MODULE})
        self.assertEqual(rc, 0, err)
        rc2, out2, err2 = run("--version")
        self.assertEqual(out, out2)
        self.assertRegex(out, r"(?m)^libtorch \d+\.\d+\.\d+ \(")
        # A file that is no shared object, one that lacks the entry table, and a missing one.
        garbage = self.write("garbage.so", "this is not an ELF file\n" * 20)
        rc, out, err = run_env(FOLDLINE, ["train", self.cfg], {"FOLDLINE_TORCH_MODULE": garbage})
        self.assert_module_error(rc, out, err, garbage, "")
        self.assertRegex(err, r"invalid ELF header|file too short")
        libz = [line.split("=>")[1].split()[0] for line in
                subprocess.run(["ldd", FOLDLINE], stdout=subprocess.PIPE).stdout.decode().splitlines()
                if line.strip().startswith("libz.so")][0]
        rc, out, err = run_env(FOLDLINE, ["predict", self.run_dir, self.data],
                               {"FOLDLINE_TORCH_MODULE": libz})
        self.assert_module_error(rc, out, err, libz, "it has no symbol fl_torch_verbs")
        nowhere = self.path("nowhere", "libfoldline_torch.so")
        rc, out, err = run_env(FOLDLINE, ["export", self.run_dir, self.path("e.pt")],
                               {"FOLDLINE_TORCH_MODULE": nowhere})
        self.assert_module_error(rc, out, err, nowhere, "No such file")
        # vote needs no module, whatever the variable says.
        rc, out, err = run_env(FOLDLINE, ["vote", self.run_dir, "--out", self.path("v.csv")],
                               {"FOLDLINE_TORCH_MODULE": garbage})
        self.assertEqual(rc, 0, err)

    def test_a_link_to_the_executable_finds_the_module_beside_the_real_file(self):
        link = self.path("foldline-link")
        os.symlink(os.path.realpath(FOLDLINE), link)
        rc, out, err = run_env(link, ["predict", self.run_dir, self.data, "--out", self.path("p.csv")])
        self.assertEqual(rc, 0, err)
        with open(self.path("p.csv")) as f:
            rows = f.read().splitlines()
        self.assertEqual(len(rows), 1 + 12)


if __name__ == "__main__":
    unittest.main(verbosity=2)
