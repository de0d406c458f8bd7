#!/usr/bin/env python3
"""Progress lines of `foldline train` and `foldline prep`: in a pipe (a log) one plain line every
run.progress_s seconds with job, epoch, step/steps, images/s, loss, accuracy and ETAs, never a flood;
on a terminal (a pty) one line rewritten in place; the run's ETA in the header and after each job."""
import os
import pty
import re
import select
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FOLDLINE, TempDirTest, config_text, model_text, run, write_data_file  # noqa: E402



def simple_layout(*args, **kw):
    """tests/prep/common.py's competition layout (a module of the same name as ours)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "prep_common", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "prep", "common.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.simple_layout(*args, **kw)

LINE = re.compile(r"^\[m fold (\d)\] epoch (\d+)/(\d+) step (\d+)/(\d+) \| (\d+) img/s \| loss ([\d.]+) acc ([\d.]+) "
                  r"\| ETA epoch (\S+), job (\S+)$")


class Progress(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=300, size=24)

    def config(self, progress_s, epochs=3):
        m = model_text("m", epochs).replace("batch = 32", "batch = 8")
        text = config_text(self.data, self.path("runs"), "p", [m])
        return self.write("p.cfg", text.replace("threads = 1;", "threads = 1; progress_s = %g;" % progress_s))

    def test_a_log_gets_one_plain_line_per_interval_never_a_flood(self):
        interval = 0.15
        p = subprocess.Popen([FOLDLINE, "train", self.config(interval, epochs=5)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        lines = []  # (arrival time, text)
        with p.stdout:
            for raw in p.stdout:
                lines.append((time.monotonic(), raw.decode()))
        self.assertEqual(p.wait(), 0, "".join(t for _, t in lines))
        text = "".join(t for _, t in lines)
        self.assertNotIn("\r", text)
        self.assertNotIn("\033", text)
        prog = [(t, LINE.match(s.rstrip("\n"))) for t, s in lines if " step " in s and "| ETA" in s]
        self.assertTrue(all(m for _, m in prog), text)
        self.assertGreaterEqual(len(prog), 6, text)
        first, last = lines[0][0], lines[-1][0]
        self.assertLessEqual(len(prog), (last - first) / interval + 2, text)  # never a flood
        for (t0, m0), (t1, m1) in zip(prog, prog[1:]):  # consecutive lines of one job: an interval apart
            if m0.group(1) == m1.group(1):
                self.assertGreater(t1 - t0, interval * 0.6, text)
        for _, m in prog:
            step, steps = int(m.group(4)), int(m.group(5))
            self.assertTrue(0 < step <= steps and steps == 57, m.group(0))  # 450 rows / batch 8
            self.assertGreater(int(m.group(6)), 0)
            self.assertTrue(0 <= float(m.group(8)) <= 1)
            self.assertNotEqual(m.group(10), "?")
        self.assertEqual({m.group(1) for _, m in prog}, {"0", "1"})
        # the run's ETA: in the header and after each job
        self.assertIn("train: run ETA unknown until an epoch of each model is measured: 0 of 2 jobs done", text)
        self.assertRegex(text, r"\[m fold 0\] done in \S+; run ETA \d+\S*: 1 of 2 jobs done, 0 running, 1 to run")
        self.assertRegex(text, r"\[m fold 1\] done in \S+; run ETA 0s: 2 of 2 jobs done")

    def test_progress_s_0_prints_no_progress_line(self):
        rc, out, err = run("train", self.config(0, epochs=1))
        self.assertEqual(rc, 0, err)
        self.assertNotIn("| ETA epoch", out)

    def test_a_terminal_gets_one_line_rewritten_in_place(self):
        master, slave = pty.openpty()
        p = subprocess.Popen([FOLDLINE, "train", self.config(0.1, epochs=3)], stdout=slave, stderr=slave,
                             stdin=subprocess.DEVNULL)
        os.close(slave)
        out = b""
        while True:
            r, _, _ = select.select([master], [], [], 1.0)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        os.close(master)
        self.assertEqual(p.wait(), 0, out)
        text = out.decode()
        rewrites = re.findall(r"\r(\[m fold \d\] epoch \d+/3 step \d+/\d+ [^\r\n\033]*)\033\[K", text)
        self.assertGreaterEqual(len(rewrites), 3, text)
        for r in rewrites:
            self.assertTrue(LINE.match(r), r)
        # the progress lines never end in a newline; an ordinary line first clears them
        self.assertNotRegex(text, r"\| ETA epoch \S+, job \S+\033\[K\r?\n")
        self.assertRegex(text, r"\033\[K\r\033\[K\[m fold 0\] epoch 1/3 lr")


class PrepProgress(TempDirTest):
    def test_prep_prints_progress_lines_at_the_interval(self):
        src = self.path("src")
        simple_layout(src, [500, 500], size=128, n_test=10)
        rc, out, err = run("prep", src, self.path("d.h5"), "--size", "64", "--threads", "1", "--progress", "0.02")
        self.assertEqual(rc, 0, err)
        prog = re.findall(r"^prep: (\d+)/1010 images \((\d+)%\) \| (\d+) images/s \| ETA (\S+)$", out, re.M)
        self.assertGreaterEqual(len(prog), 2, out)
        done = [int(d) for d, _, _, _ in prog]
        self.assertEqual(done, sorted(done))
        rc, out, err = run("prep", src, self.path("e.h5"), "--size", "64", "--progress", "0")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("images (", out)
        rc, out, err = run("prep", src, self.path("f.h5"), "--progress", "soon")
        self.assertEqual(rc, 2)
        self.assertIn("--progress 'soon'", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
