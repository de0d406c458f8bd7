#!/usr/bin/env python3
"""foldline under a real one-node SLURM that this test starts itself: munged, slurmctld and
slurmd from Debian's slurm-wlm and munge, as root, with a generated slurm.conf, state, spool,
logs and the munge key and socket all in a temporary directory, on free TCP ports.

launch/slurm/train.sbatch with srun --mpi=pmix and with mpirun inside the allocation (2 ranks,
predictions bit for bit those of one process), the array form (submit-folds.sh: one fold per
task, then the vote job), a plain `srun -n 2 foldline train` refused, the job's exit status,
and preemption: SIGUSR1 to the batch script reaches the ranks, status 75 requeues the job and
the restarted job completes (with a stand-in for foldline that exits 75 on SIGUSR1).

Skipped (exit 77) when not root, when slurm-wlm or munge is missing, or when a SLURM daemon
already runs on this machine: that one is never touched. Every daemon this test starts is
stopped at the end, on failure too (and dies with the test if it is killed).
Needs $FOLDLINE (tests/tests.cmake sets it); about a minute on 2 cores.
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from common import FOLDLINE, config_text, model_text, run, write_data_file  # noqa: E402

SKIP = 77
SLURM = os.path.join(ROOT, "launch", "slurm")
DAEMONS = ("slurmctld", "slurmd", "slurmstepd", "slurmdbd")
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
        "PREEMPTED"}


def running_slurm_daemons():
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
        except (OSError, ValueError):
            continue
        if comm in DAEMONS:
            found.append("%s (pid %s)" % (comm, pid))
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """preexec_fn: the daemon gets SIGTERM when this test process dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MiniSlurm:
    """A one-node SLURM cluster in a temporary directory."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "slurm")
        os.makedirs(os.path.join(self.dir, "state"))
        os.makedirs(os.path.join(self.dir, "spool"))
        self.host = socket.gethostname().split(".")[0]
        self.cpus = len(os.sched_getaffinity(0))
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.procs = []
        # Commands see only this cluster: no SLURM_* / SBATCH_* of a job this test may run in,
        # and no Open MPI root permission (the scripts must set it themselves).
        self.env = {k: v for k, v in os.environ.items()
                    if not re.match(r"(SLURM|SBATCH|SRUN|SALLOC)_|OMPI_ALLOW_RUN_AS_ROOT", k)}
        self.env["SLURM_CONF"] = self.conf

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def write_conf(self):
        with open("/proc/meminfo") as f:
            mem_mb = int(f.readline().split()[1]) // 1024
        d = self.dir
        conf = f"""# foldline's test cluster (tests/slurm/test_slurm.py)
ClusterName=foldlinetest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket,cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={max(mem_mb * 9 // 10, 1)} State=UNKNOWN
PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        # cred_expire=5: a requeued job may start 6 s later instead of 121; sched_interval=1: a
        # job whose begin time passed starts within a second instead of a minute.
        with open(self.conf, "w") as f:
            f.write(conf)

    def daemon(self, name, *cmd):
        log = open(self.path(name + ".out"), "wb")
        p = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=self.env, preexec_fn=die_with_parent, start_new_session=True)
        log.close()
        self.procs.append((name, p))
        return p

    def start(self):
        self.write_conf()
        key = self.path("munge.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(self.dir, 0o755)
        self.daemon("munged", "munged", "--foreground", "--force", "--socket=" + self.path("munge.socket"),
                    "--key-file=" + key, "--pid-file=" + self.path("munged.pid"),
                    "--log-file=" + self.path("munged.log"), "--seed-file=" + self.path("munged.seed"))
        self.wait_for(lambda: os.path.exists(self.path("munge.socket")), 10, "munged's socket")
        self.daemon("slurmctld", "slurmctld", "-D", "-f", self.conf)
        self.wait_for(lambda: self.cmd("scontrol", "ping").returncode == 0, 20, "slurmctld answering")
        self.daemon("slurmd", "slurmd", "-D", "-f", self.conf, "-N", self.host)
        self.wait_for(lambda: self.cmd("sinfo", "-h", "-o", "%T", "-n", self.host).stdout.strip() == "idle", 30,
                      "the node idle")

    def wait_for(self, ready, seconds, what):
        end = time.time() + seconds
        while time.time() < end:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with status %s:\n%s" % (name, p.returncode, self.logs()))
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError("no %s after %d s:\n%s" % (what, seconds, self.logs()))

    def logs(self):
        out = []
        for name in ("munged.out", "slurmctld.out", "slurmd.out"):
            try:
                with open(self.path(name), errors="replace") as f:
                    out.append("---- %s\n%s" % (name, "".join(f.readlines()[-15:])))
            except OSError:
                pass
        return "\n".join(out)

    def cmd(self, *args, env=None, timeout=120):
        return subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=dict(self.env, **(env or {})), timeout=timeout,
                              universal_newlines=True, errors="replace")

    def job_states(self, job_id):
        """{job id: (state, restarts, exit code)} of a job, or of every task of an array job."""
        r = self.cmd("scontrol", "-o", "show", "job", job_id)
        states = {}
        for line in r.stdout.splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            states[f["JobId"]] = (f["JobState"], int(f.get("Restarts", 0)), f.get("ExitCode"))
        return states

    def wait_jobs(self, *job_ids, seconds=120):
        end = time.time() + seconds
        while time.time() < end:
            states = {}
            for j in job_ids:
                states.update(self.job_states(j))
            if states and all(s[0] in DONE for s in states.values()):
                return states
            time.sleep(0.25)
        raise AssertionError("jobs %s not done after %d s: %s\n%s" % (job_ids, seconds, states, self.logs()))

    def stop(self):
        if any(p.poll() is None for n, p in self.procs if n == "slurmctld"):
            ids = self.cmd("squeue", "-h", "-o", "%A", timeout=20).stdout.split()
            if ids:
                self.cmd("scancel", *ids, timeout=20)
                end = time.time() + 15
                while time.time() < end and self.cmd("squeue", "-h", timeout=20).stdout.strip():
                    time.sleep(0.2)
        for name, p in reversed(self.procs):  # slurmd, slurmctld, then munged
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []


CLUSTER = None
TMP = None


def setUpModule():
    global CLUSTER, TMP
    TMP = tempfile.mkdtemp(prefix="fl-slurm-")
    CLUSTER = MiniSlurm(TMP)
    CLUSTER.start()


def tearDownModule():
    global TMP
    if CLUSTER:
        CLUSTER.stop()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)
        TMP = None


def read_preds(path):
    with h5py.File(path) as f:
        return [f["oof/index"][:], f["oof/probs"][:], f["test/probs"][:]]


STUB = """#!/bin/bash
# A stand-in for foldline: the first run waits for SIGUSR1, then exits 75 (checkpointed, to be
# resumed); a restarted job's run exits 0.
d=%s
rank=${OMPI_COMM_WORLD_RANK:-${SLURM_PROCID:-0}}  # under mpirun SLURM_PROCID is its daemon's
if [[ ${SLURM_RESTART_COUNT:-0} == 0 ]]; then
  trap 'echo "rank $rank got SIGUSR1" >> "$d/signals"; exit 75' USR1
  touch "$d/ready.$rank"
  for i in $(seq 1200); do sleep 0.1; done
  exit 1
fi
echo "rank $rank resumed: $*"
"""


class Slurm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = os.path.join(TMP, "work")
        os.makedirs(cls.tmp)
        cls.data = os.path.join(cls.tmp, "data.h5")
        write_data_file(cls.data, n_per_class=30, classes=3, folds=2, n_test=20, size=16)
        cls.ref = cls.config(cls, "ref")
        rc, out, err = run("train", cls.ref)  # one process: the reference predictions
        assert rc == 0, err

    def config(self, name):
        p = os.path.join(self.tmp, name + ".cfg")
        with open(p, "w") as f:
            f.write(config_text(self.data, os.path.join(self.tmp, "runs"), name, [model_text("m", epochs=1)]))
        return p

    def run_dir(self, name):
        return os.path.join(self.tmp, "runs", name)

    def out(self, name):
        return os.path.join(self.tmp, name + ".out")

    def read(self, path):
        with open(path, errors="replace") as f:
            return f.read()

    def sbatch(self, *args, env=None):
        r = CLUSTER.cmd("sbatch", "--parsable", "-D", self.tmp, *args, env=dict({"FOLDLINE": FOLDLINE}, **(env or {})))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip().split(";")[0]

    def assert_predictions_of_one_process(self, name):
        for k in (0, 1):
            ref = read_preds(os.path.join(self.run_dir("ref"), "m", "fold%d" % k, "preds.h5"))
            got = read_preds(os.path.join(self.run_dir(name), "m", "fold%d" % k, "preds.h5"))
            for x, y in zip(ref, got):
                self.assertTrue(np.array_equal(x, y), (name, k))
        with open(os.path.join(self.run_dir("ref"), "ensemble", "submission.csv"), "rb") as f:
            ref_sub = f.read()
        with open(os.path.join(self.run_dir(name), "ensemble", "submission.csv"), "rb") as f:
            self.assertEqual(f.read(), ref_sub)

    def train_sbatch(self, name, env=None):
        """sbatch -N 1 -n 2 --wait train.sbatch: returns the job's output."""
        cfg = self.config(name)
        r = CLUSTER.cmd("sbatch", "-N", "1", "-n", "2", "--ntasks-per-node=2", "--cpus-per-task=1", "--wait",
                        "-D", self.tmp, "-o", self.out(name), os.path.join(SLURM, "train.sbatch"), cfg,
                        env=dict({"FOLDLINE": FOLDLINE}, **(env or {})))
        out = self.read(self.out(name))
        self.assertEqual(r.returncode, 0, r.stderr + out + CLUSTER.logs())
        self.assertIn("train: 2 ranks on 1 host in 2 groups of 1", out)
        self.assertIn("train.sbatch: foldline exited with status 0", out)
        self.assertIn("--set run.threads=1", out)  # --cpus-per-task
        self.assert_predictions_of_one_process(name)
        return out

    def test_train_sbatch_starts_two_ranks_with_srun_pmix(self):
        out = self.train_sbatch("pmix")
        self.assertIn("2 rank(s) on %s: srun --mpi=pmix" % CLUSTER.host, out)

    def test_train_sbatch_starts_two_ranks_with_mpirun_inside_the_allocation(self):
        out = self.train_sbatch("mpirun", env={"FOLDLINE_LAUNCHER": "mpirun"})
        self.assertIn("2 rank(s) on %s: mpirun -np 2" % CLUSTER.host, out)

    def test_the_array_form_trains_one_fold_per_task_then_votes(self):
        cfg = self.config("array")
        r = CLUSTER.cmd(os.path.join(SLURM, "submit-folds.sh"), cfg,
                        env={"FOLDS": "0-1", "FOLDLINE": FOLDLINE,
                             "SBATCH_OPTS": "--ntasks-per-node=1 --cpus-per-task=1 -D %s -o %s/%%x-%%j.out" %
                                            (self.tmp, self.tmp)})
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.fullmatch(r"folds: job (\d+) \(array 0-1: .*\)\nvote:  job (\d+) \(after every fold succeeded: .*\)\n",
                         r.stdout)
        self.assertTrue(m, r.stdout)
        states = CLUSTER.wait_jobs(m.group(1), m.group(2))
        self.assertEqual(len(states), 3, states)  # two array tasks and the vote
        self.assertTrue(all(s[0] == "COMPLETED" for s in states.values()), states)
        folds = []
        for j in states:  # an array task's output is named after its own job id (%j)
            if j != m.group(2):
                out = self.read(os.path.join(self.tmp, "foldline-folds-%s.out" % j))
                k = int(re.search(r"\(array task (\d)\)", out).group(1))
                self.assertIn("train %s --fold %d --set run.threads=1" % (cfg, k), out)
                self.assertIn("1 model x fold %d (--fold; the run has 2) = 1 job" % k, out)
                folds.append(k)
        self.assertEqual(sorted(folds), [0, 1])
        vote = self.read(os.path.join(self.tmp, "foldline-vote-%s.out" % m.group(2)))
        self.assertIn("[m fold 0] complete (preds.h5 exists), skipped", vote)
        self.assertIn("submission: `%s/ensemble/submission.csv`" % self.run_dir("array"), vote)
        self.assert_predictions_of_one_process("array")

    def test_train_and_folds_sbatch_share_their_launch_code(self):
        marker = "# ---- foldline launch:"
        bodies = []
        for name in ("train.sbatch", "folds.sbatch"):
            text = self.read(os.path.join(SLURM, name))
            self.assertIn(marker, text, name)
            bodies.append(text[text.index(marker):])
        self.assertEqual(bodies[0], bodies[1], "edit both scripts below the marker line alike")

    def test_plain_srun_without_pmi_is_refused_once_with_a_hint(self):
        # MpiDefault=none: srun starts 2 separate processes; Open MPI alone would fail in
        # MPI_Init, foldline stops before it with its own message, printed by task 0 only.
        cfg = self.config("plain")
        r = CLUSTER.cmd("srun", "-n", "2", "-D", self.tmp, FOLDLINE, "train", cfg)
        self.assertEqual(r.returncode, 2, r.stderr)
        errors = [l for l in r.stderr.splitlines() if l.startswith("foldline: error:")]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertIn("srun started 2 tasks without PMI", errors[0])
        self.assertIn("HINT: srun --mpi=pmix", errors[0])
        self.assertFalse(os.path.exists(self.run_dir("plain")))

    def test_the_job_exits_with_foldlines_status(self):
        cfg = self.config("bad")
        r = CLUSTER.cmd("sbatch", "-n", "1", "--ntasks-per-node=1", "--cpus-per-task=1", "--wait", "-D", self.tmp,
                        "-o", self.out("bad"), os.path.join(SLURM, "train.sbatch"), cfg, "--fold", "7",
                        env={"FOLDLINE": FOLDLINE})
        self.assertTrue(os.path.exists(self.out("bad")), r.stderr)
        out = self.read(self.out("bad"))
        self.assertEqual(r.returncode, 2, out)  # sbatch --wait: the job's exit status
        self.assertIn("--fold 7 is not one of the run's folds", out)
        self.assertIn("train.sbatch: foldline exited with status 2", out)

    def test_sigusr1_reaches_the_ranks_and_status_75_requeues_the_job_with_srun(self):
        self.preemption_case("preempt-srun", "srun")

    def test_sigusr1_reaches_the_ranks_and_status_75_requeues_the_job_with_mpirun(self):
        self.preemption_case("preempt-mpirun", "mpirun")

    def test_real_foldline_preempted_by_sigusr1_is_requeued_and_resumes_to_the_same_predictions(self):
        slow = [model_text("m", epochs=6).replace("batch = 32", "batch = 2")]
        def cfg(name):
            p = os.path.join(self.tmp, name + ".cfg")
            with open(p, "w") as f:
                f.write(config_text(self.data, os.path.join(self.tmp, "runs"), name, slow))
            return p
        rc, out, err = run("train", cfg("slow-ref"))
        self.assertEqual(rc, 0, err)
        name = "preempt-real"
        job = self.sbatch("-n", "2", "--ntasks-per-node=2", "--cpus-per-task=1", "-o", self.out(name),
                          os.path.join(SLURM, "train.sbatch"), cfg(name))
        end = time.time() + 90
        while "epoch 1/6" not in (self.read(self.out(name)) if os.path.exists(self.out(name)) else ""):
            self.assertLess(time.time(), end, CLUSTER.logs())
            time.sleep(0.05)
        r = CLUSTER.cmd("scancel", "--batch", "--signal=USR1", job)
        self.assertEqual(r.returncode, 0, r.stderr)
        states = CLUSTER.wait_jobs(job, seconds=150)
        out = self.read(self.out(name))
        self.assertEqual(states[job][:2], ("COMPLETED", 1), out)
        self.assertRegex(out, r"job m fold \d: stopped by SIGUSR1 at epoch \d step \d+")
        self.assertIn("foldline stopped to be resumed (status 75): scontrol requeue %s" % job, out)
        self.assertIn("resumed from last.pt", out)
        for k in (0, 1):
            ref = read_preds(os.path.join(self.run_dir("slow-ref"), "m", "fold%d" % k, "preds.h5"))
            got = read_preds(os.path.join(self.run_dir(name), "m", "fold%d" % k, "preds.h5"))
            for x, y in zip(ref, got):
                self.assertTrue(np.array_equal(x, y), k)

    def preemption_case(self, name, launcher):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        stub = os.path.join(d, "foldline")
        with open(stub, "w") as f:
            f.write(STUB % d)
        os.chmod(stub, 0o755)
        job = self.sbatch("-n", "2", "--ntasks-per-node=2", "--cpus-per-task=1", "-o", self.out(name),
                          os.path.join(SLURM, "train.sbatch"), "x.cfg",
                          env={"FOLDLINE": stub, "FOLDLINE_LAUNCHER": launcher})
        end = time.time() + 60
        while not all(os.path.exists(os.path.join(d, "ready.%d" % r)) for r in (0, 1)):
            self.assertLess(time.time(), end, self.read(self.out(name)) if os.path.exists(self.out(name))
                            else CLUSTER.logs())
            time.sleep(0.1)
        r = CLUSTER.cmd("scancel", "--batch", "--signal=USR1", job)  # as --signal=B:USR1@120 would
        self.assertEqual(r.returncode, 0, r.stderr)
        states = CLUSTER.wait_jobs(job, seconds=90)
        out = self.read(self.out(name))
        self.assertEqual(states[job][:2], ("COMPLETED", 1), out)
        self.assertIn("restart 0: 2 rank(s) on %s: %s" % (CLUSTER.host, launcher), out)
        self.assertEqual(sorted(self.read(os.path.join(d, "signals")).splitlines()),
                         ["rank 0 got SIGUSR1", "rank 1 got SIGUSR1"])
        self.assertIn("train.sbatch: got SIGUSR1: passing SIGUSR1 to the ranks", out)
        self.assertIn("foldline stopped to be resumed (status 75): scontrol requeue %s" % job, out)
        self.assertIn("restart 1: 2 rank(s)", out)
        self.assertIn("rank 0 resumed: train x.cfg", out)
        self.assertIn("train.sbatch: foldline exited with status 0", out)


def main():
    if os.geteuid() != 0:
        print("SKIP: the test cluster's daemons run as root (SlurmUser=root); run as root")
        return SKIP
    missing = [p for p in ("munged", "slurmctld", "slurmd", "sbatch", "srun") if not shutil.which(p)]
    if missing:
        print("SKIP: %s not installed HINT: apt-get install slurm-wlm munge (tools/deps.sh with "
              "FOLDLINE_WITH_TESTS=1)" % " ".join(missing))
        return SKIP
    running = running_slurm_daemons()
    if running:
        print("SKIP: a SLURM already runs on this machine (%s); this test starts its own and never touches "
              "another" % ", ".join(running))
        return SKIP
    # ctest's timeout or Ctrl-C: stop the daemons on the way out (unittest would catch SystemExit).
    def interrupted(signum, frame):
        print("interrupted by signal %d: stopping the test cluster" % signum, file=sys.stderr)
        tearDownModule()
        os._exit(1)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, interrupted)
    try:
        r = unittest.main(verbosity=2, exit=False)
    finally:
        tearDownModule()  # again, in case setUpModule failed half-way
    return 0 if r.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
