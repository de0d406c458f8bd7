#!/usr/bin/env python3
"""`foldline status RUN_DIR`: every model x fold of a real run is shown as done, running, stopped,
failed or pending, from the run directory alone, with exit status 0 (all done), 3 (not all) or 2
(error); it writes nothing, and a running job's status.txt heartbeat names its host, pid and epoch."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from common import FOLDLINE, TempDirTest, config_text, model_text, read_metrics, run, write_data_file  # noqa: E402

STOPPED = 75


def model(name="m", epochs=2, batch=16):
    return model_text(name, epochs).replace("batch = 32", "batch = %d" % batch)


def read(path):
    with open(path) as f:
        return f.read()


def snapshot(root):
    """Every path under root with its size and mtime (ns)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def rows(out):
    """{(model, fold): (state, detail)} of status's table."""
    table = {}
    for line in out.splitlines()[1:]:
        m = re.match(r"^(\S+)\s+(\d+)\s+(done|running|stopped|failed|pending)\s*(.*)$", line)
        if m:
            table[(m.group(1), int(m.group(2)))] = (m.group(3), m.group(4))
    return table


class Status(TempDirTest):
    def setUp(self):
        super().setUp()
        self.data = self.path("data.h5")
        write_data_file(self.data, n_per_class=200, size=24)

    def config(self, name, models, progress_s=0.2, extra_run="", long_epochs=False):
        """long_epochs: a data file whose epochs last seconds, so that status.txt's heartbeat (at least
        1 s apart) is written mid-epoch, whatever the machine's speed."""
        data = self.data
        if long_epochs:
            data = self.path("big.h5")
            if not os.path.exists(data):
                write_data_file(data, n_per_class=2500, size=24)
        text = config_text(data, self.path("runs"), name, models)
        text = text.replace("threads = 1;", "threads = 1; progress_s = %g; %s" % (progress_s, extra_run))
        return self.write(name + ".cfg", text)

    def status(self, name):
        return run("status", self.path("runs", name))

    def start(self, cfg, env=None):
        self.out = open(self.path("out.txt"), "w")
        p = subprocess.Popen([FOLDLINE, "train", cfg], stdout=self.out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env)
        self.addCleanup(self.out.close)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def wait_running(self, p, name, fold=0, min_step=1):
        """Until status.txt of <name>/m/fold<fold> says running at a step >= min_step."""
        path = self.path("runs", name, "m", "fold%d" % fold, "status.txt")
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            try:
                kv = dict(line.split(" ", 1) for line in read(path).splitlines()[1:] if " " in line)
                if kv.get("state") == "running" and kv.get("phase") == "train" and int(kv["step"]) >= min_step:
                    return kv
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        self.fail("no running heartbeat in %s" % path)

    def test_finished_run_is_all_done_with_best_metrics_exit_0_and_status_writes_nothing(self):
        rc, out, err = run("train", self.config("fin", [model("a"), model("b")]))
        self.assertEqual(rc, 0, err)
        before = snapshot(self.path("runs"))
        rc, out, err = self.status("fin")
        self.assertEqual(rc, 0, out + err)
        table = rows(out)
        self.assertEqual(set(table), {("a", 0), ("a", 1), ("b", 0), ("b", 1)})
        for (name, k), (state, detail) in table.items():
            self.assertEqual(state, "done")
            metrics = read_metrics(self.path("runs", "fin", name, "fold%d" % k, "metrics.csv"))
            best = max(metrics, key=lambda r: float(r["val_acc"]))  # the first epoch of the highest val acc
            self.assertIn("best val acc %.4f (epoch %d)" % (float(best["val_acc"]), int(best["epoch"]) + 1), detail)
        self.assertIn("4 jobs: 4 done, 0 running, 0 stopped, 0 failed, 0 pending; complete", out)
        self.assertEqual(snapshot(self.path("runs")), before)

    def test_fold_run_leaves_the_other_folds_pending_exit_3(self):
        rc, out, err = run("train", self.config("half", [model()]), "--fold", "0")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.status("half")
        self.assertEqual(rc, 3, out + err)
        table = rows(out)
        self.assertEqual(table[("m", 0)][0], "done")
        self.assertEqual(table[("m", 1)], ("pending", ""))
        self.assertIn("1 done, 0 running, 0 stopped, 0 failed, 1 pending; ETA ", out)
        self.assertNotIn("ETA ?", out)  # fold 0's epochs give the model's speed

    def test_running_job_shows_host_pid_epoch_step_heartbeat_then_sigterm_makes_it_stopped_and_resumable(self):
        cfg = self.config("live", [model(epochs=40)], long_epochs=True)
        p = self.start(cfg)
        kv = self.wait_running(p, "live", min_step=3)
        before = snapshot(self.path("runs"))
        rc, out, err = self.status("live")
        self.assertEqual(rc, 3, out + err)
        state, detail = rows(out)[("m", 0)]
        self.assertEqual(state, "running", out)
        self.assertIn("host %s pid %d rank 0" % (socket.gethostname(), p.pid), detail)
        m = re.search(r"epoch (\d+)/40 step (\d+)/(\d+) \| (\d+) img/s \| heartbeat (\d+) s ago \| ETA (\S+)", detail)
        self.assertTrue(m, detail)
        self.assertGreater(int(m.group(4)), 0)
        self.assertLessEqual(int(m.group(5)), 5)
        self.assertNotEqual(m.group(6), "?")
        self.assertEqual(rows(out)[("m", 1)][0], "pending")
        # status took no lock and wrote nothing: whatever changed, the trainer changed (its own files)
        after = snapshot(self.path("runs"))
        self.assertEqual(set(after) - set(before) - {k for k in after if ".tmp" in k or "tfevents" in k
                                                     or k.endswith(("status.txt", ".pt", "metrics.csv"))}, set())
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=120), STOPPED)
        stop = re.search(r"stopped by SIGTERM at epoch (\d+) step (\d+)", read(self.path("out.txt")))
        self.assertTrue(stop)
        before = snapshot(self.path("runs"))
        rc, out, err = self.status("live")
        self.assertEqual(snapshot(self.path("runs")), before)  # nothing written, not even a lock
        self.assertEqual(rc, 3)
        state, detail = rows(out)[("m", 0)]
        self.assertEqual(state, "stopped", out)
        self.assertIn("resumable from last.pt at epoch %s/40 step %s" % (stop.group(1), stop.group(2)), detail)
        self.assertIn("0 running, 1 stopped, 0 failed, 1 pending", out)

    def test_killed_job_is_not_shown_running(self):
        cfg = self.config("kill", [model(epochs=40)], extra_run="checkpoint_minutes = 0.001;", long_epochs=True)
        p = self.start(cfg)
        self.wait_running(p, "kill", min_step=3)
        time.sleep(0.5)  # a timed checkpoint (every 0.06 s) has been written
        p.kill()
        p.wait()
        rc, out, err = self.status("kill")
        self.assertEqual(rc, 3)
        state, detail = rows(out)[("m", 0)]
        self.assertEqual(state, "stopped", out)
        self.assertIn("resumable from last.pt at epoch", detail)
        self.assertIn("pid %d: no heartbeat" % p.pid, detail)
        self.assertIn("the process is gone", detail)

    def test_failed_job_shows_its_error_line(self):
        env = dict(os.environ, FOLDLINE_FAULT_NONFINITE="1:2")
        cfg = self.config("bad", [model()])
        p = subprocess.run([FOLDLINE, "train", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           stdin=subprocess.DEVNULL, timeout=300)
        self.assertEqual(p.returncode, 1)
        error = [line for line in p.stderr.decode().splitlines() if "error:" in line][0]
        rc, out, err = self.status("bad")
        self.assertEqual(rc, 3)
        state, detail = rows(out)[("m", 0)]
        self.assertEqual(state, "failed", out)
        self.assertIn("the training loss is not finite at epoch 1 step 2", detail)
        self.assertTrue(error.endswith(detail), (error, detail))
        self.assertIn("1 failed, 1 pending", out)

    def test_errors_exit_2(self):
        rc, out, err = run("status", self.path("nowhere"))
        self.assertEqual(rc, 2)
        self.assertIn("does not exist", err)
        rc, out, err = run("status", self.tmp)  # a folder that is not a run
        self.assertEqual(rc, 2)
        self.assertIn("run.cfg", err)
        self.assertEqual(err.count("\n"), 1)
        rc, out, err = run("status", self.tmp, "--watch", "0")
        self.assertEqual(rc, 2)

    def test_watch_redraws_until_done(self):
        cfg = self.config("w", [model(epochs=3)], long_epochs=True)
        p = self.start(cfg)
        self.wait_running(p, "w")
        rc, out, err = run("status", self.path("runs", "w"), "--watch", "1", timeout=300)
        self.assertEqual(p.wait(timeout=300), 0)
        self.assertEqual(rc, 0, out + err)
        self.assertGreaterEqual(out.count("foldline status "), 2)
        self.assertTrue(out.rstrip().endswith("complete"), out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
