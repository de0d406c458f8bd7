#!/usr/bin/python3
"""A failed or interrupted `foldline prep` never leaves a file at OUT.

One listed image is a named pipe, so prep blocks reading it once it is writing (its temporary file
`.<OUT basename>.tmp.XXXXXX` exists in OUT's directory). Then SIGTERM / SIGINT: the process must die
of that signal, with no OUT and no temporary file left behind.
"""

import os
import signal
import subprocess
import sys
import time

from fltest import prep as common  # noqa: E402

WAIT_TMP_S = 20


class InterruptTest(common.TempDirCase):

    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.tmp, "src")
        # 3 classes x 8 rows of 32x32 PNGs; the pipe is listed late in train.csv
        self.lay = common.simple_layout(self.src, [8, 8, 8], size=32, seed=21, n_test=4)
        self.fifo_path = self.lay.train[-3][1]
        f = self.lay.train_file(self.fifo_path)
        os.unlink(f)
        os.mkfifo(f)
        self.outdir = os.path.join(self.tmp, "out")
        os.mkdir(self.outdir)
        self.out = os.path.join(self.outdir, "data.h5")
        self.proc = None
        self.log = open(os.path.join(self.tmp, "prep.log"), "w+b")

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        super().tearDown()

    def temporaries(self):
        return sorted(n for n in os.listdir(self.outdir) if n.startswith(".data.h5.tmp."))

    def start_and_wait_for_temporary(self, *opts):
        self.proc = subprocess.Popen([common.FOLDLINE, "prep", self.src, self.out, "--size", "16", *opts],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_TMP_S
        while time.monotonic() < deadline:
            if self.temporaries():
                break
            if self.proc.poll() is not None:
                self.log.seek(0)
                self.fail("prep exited (%d) before blocking on the pipe: %s"
                          % (self.proc.returncode, self.log.read().decode(errors="replace")))
            time.sleep(0.05)
        self.assertTrue(self.temporaries(), "no .data.h5.tmp.* in %s after %d s: %s"
                        % (self.outdir, WAIT_TMP_S, os.listdir(self.outdir)))
        time.sleep(0.3)  # let it reach the pipe
        self.assertIsNone(self.proc.poll(), "prep did not block on the named pipe")

    def interrupt(self, sig):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.fail("prep still running 15 s after signal %d" % sig)
        self.log.seek(0)
        return rc, self.log.read().decode(errors="replace")

    def check_interrupted(self, sig, keep=None):
        self.start_and_wait_for_temporary(*(["--force"] if keep else []))
        rc, log = self.interrupt(sig)
        self.assertEqual(rc, -sig, "exit status %s, expected death by signal %d; output: %s" % (rc, sig, log))
        self.assertEqual(self.temporaries(), [], "temporary file left behind")
        if keep is None:
            self.assertFalse(os.path.lexists(self.out), "OUT exists after an interrupted prep")
            self.assertEqual(os.listdir(self.outdir), [])
        else:
            with open(self.out, "rb") as f:
                self.assertEqual(f.read(), keep, "--force replaced OUT although prep was interrupted")
            self.assertEqual(os.listdir(self.outdir), ["data.h5"])

    def test_sigterm_leaves_no_file(self):
        self.check_interrupted(signal.SIGTERM)

    def test_sigint_leaves_no_file(self):
        self.check_interrupted(signal.SIGINT)

    def test_sigterm_with_force_keeps_existing_out(self):
        old = b"the previous data file\n"
        with open(self.out, "wb") as f:
            f.write(old)
        self.check_interrupted(signal.SIGTERM, keep=old)

    def test_failure_while_writing_leaves_no_file(self):
        # the pipe becomes a corrupt image: prep fails after it started writing
        os.unlink(self.lay.train_file(self.fifo_path))
        with open(self.lay.train_file(self.fifo_path), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        res = common.prep(self.src, self.out, "--size", "16")
        self.assertEqual(res.rc, 1, res.stdout + res.stderr)
        self.assertIn(self.fifo_path, res.stderr)
        self.assertEqual(os.listdir(self.outdir), [])


if __name__ == "__main__":
    common.main()
