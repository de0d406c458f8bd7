#!/usr/bin/env python3
"""Test hosts: a small cluster on this one machine for foldline's multi-host tests.

Each host is a Linux network namespace with its own address on a private /24, its own hostname
(every command entering a host goes through `unshare --uts` and sets it), its own /etc/hosts
(every host's name and address, plus localhost) and an empty resolv.conf. The hosts hang off a
bridge in one more namespace (the "switch"), so the machine's own namespace never gets an
address on the subnet and no packet leaves the namespaces. The hosts share the filesystem.

    import sys; sys.path.insert(0, "<repo>/tests/hosts"); from testhosts import TestHosts
    with TestHosts(n=2, slurm=False) as h:
        h.names, h.addrs, h.subnet            # ['flh<tag>-0', ...], ['10.a.b.11', ...], '10.a.b.0/24'
        h.run(0, ["hostname"], stdout=subprocess.PIPE)      # subprocess.run inside host 0
        h.popen(1, [...])                                   # subprocess.Popen inside host 1
        h.run(0, h.mpirun_argv(2, extra=["--map-by", "node"]) + ["./prog"])
        h.link_bytes(1)                       # (rx, tx) bytes of host 1's eth0
        h.cut(1); h.heal(1)                   # unplug / plug host 1's cable (its port on the switch)
        h.stop_host(1, signal.SIGKILL); h.pids(1)
        # slurm=True: munged (private socket), slurmctld on host 0, one slurmd per host
        h.sbatch(["-N", "2", "job.sh"])       # -> (job id, CompletedProcess) of sbatch --wait on host 0
        h.run(0, ["squeue"], env=h.slurm_env())

mpirun runs inside host 0 and reaches the other hosts through tests/hosts/rsh-agent (Open MPI's
plm_rsh_agent), which enters the target host's namespace instead of ssh-ing to it. As over ssh, what
it starts there (orted, then the ranks) gets a login's environment, not mpirun's: that of the test
process when the hosts were made, less OMPI_*, PMIX_*, SLURM_* and the like (every host's login
environment is the same, as on a cluster whose nodes share one setup). So a variable given to mpirun
alone reaches the other hosts' ranks only with -x, as on a real cluster; a machine-wide one such as
OPENBLAS_CORETYPE reaches every host (without it, OpenBLAS picks other kernels on the other hosts).

Needs root, iproute2 (`ip`), util-linux (unshare, nsenter, setsid); for slurm=True also
slurm-wlm and munge. Without them TestHosts() raises Unavailable, a SystemExit with status 77
(ctest's SKIP_RETURN_CODE); call skip_unless_available() at the start of a test's main.

Clean-up: on leaving the `with` block (an exception too), at exit, on SIGTERM/SIGHUP, every
process in the hosts' namespaces is killed (sweeping `ip netns pids`: orted and ranks may outlive
mpirun after a network fault), the namespaces (with bridge and veths), /etc/netns/<ns> and the
temporary directory are removed and munged is stopped. A watcher process (detached, so it
survives a SIGKILL of the test or of its process tree) does the same when the test process dies
without cleaning up, and every new TestHosts sweeps what runs of dead processes left behind.

By hand (as root):
    /usr/bin/python3 tests/hosts/testhosts.py shell 2 [--slurm]   # hosts up until Enter or Ctrl-C
    /usr/bin/python3 tests/hosts/testhosts.py sweep               # remove every leftover
It prints how to enter each host, e.g. `ip netns exec flh123a-1 unshare --uts sh -c
'hostname flh123a-1; exec bash'`, and the mpirun and SLURM settings.
"""
import atexit
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
RSH_AGENT = os.path.join(HERE, "rsh-agent")
PREFIX = "flh"
SKIP = 77
IFACE = "eth0"  # each host's interface on the subnet
NETNS_DIR = "/var/run/netns"
ETC_NETNS = "/etc/netns"
NAME_RE = re.compile(r"^%s(\d+)([a-z]+)-(sw|\d+)$" % PREFIX)
# Commands entering a host see only its cluster: no SLURM job this test may run in.
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
        "PREEMPTED"}
FOREIGN_ENV = re.compile(r"(SLURM|SBATCH|SRUN|SALLOC)_|OMPI_ALLOW_RUN_AS_ROOT")


class Unavailable(SystemExit):
    """The test hosts cannot be made here: exits with status 77 (skipped) unless caught."""

    def __init__(self, reason):
        super().__init__(SKIP)
        self.reason = reason

    def __str__(self):
        return self.reason


def missing(slurm=False):
    """Why test hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "the test hosts are network namespaces: run as root"
    progs = ["ip", "unshare", "nsenter", "setsid", "mpirun"]
    if slurm:
        progs += ["munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol"]
    lack = [p for p in progs if not shutil.which(p)]
    if lack:
        return "%s not installed HINT: apt-get install iproute2 util-linux openmpi-bin%s" % (
            " ".join(lack), " slurm-wlm munge" if slurm else "")
    r = subprocess.run(["unshare", "--uts", "--net", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        return "no namespaces here (unshare --uts --net: %s)" % r.stderr.decode(errors="replace").strip()
    return None


def skip_unless_available(slurm=False):
    why = missing(slurm)
    if why:
        print("SKIP: " + why)
        sys.exit(SKIP)


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       universal_newlines=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def _start_time(pid):
    """The process's start time (clock ticks after boot), or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _ns_pids(ns):
    r = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


def _kill_ns_processes(namespaces, patience=3.0):
    """SIGKILL every process in the namespaces until none is left (a fork may race the sweep)."""
    end = time.time() + patience
    while True:
        pids = [p for ns in namespaces for p in _ns_pids(ns) if p != os.getpid()]
        if not pids:
            return True
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if time.time() > end:
            return False
        time.sleep(0.05)


def _remove(tag):
    """Removes everything of the test hosts `tag`: their processes, namespaces, files."""
    names = sorted(n for n in _netns_names() if NAME_RE.match(n) and "".join(NAME_RE.match(n).group(1, 2)) == tag)
    _kill_ns_processes(names)
    for n in names:
        _ip("netns", "del", n, check=False)
    for n in os.listdir(ETC_NETNS) if os.path.isdir(ETC_NETNS) else []:
        m = NAME_RE.match(n)
        if m and "".join(m.group(1, 2)) == tag:
            shutil.rmtree(os.path.join(ETC_NETNS, n), ignore_errors=True)
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        if d.startswith("%s%s-" % (PREFIX, tag)):
            _stop_root_daemons(os.path.join(tmp, d))
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)
        elif d.startswith("ompi.%s%s-" % (PREFIX, tag)):  # Open MPI's session dirs (ompi.HOST.UID) of
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)  # a killed orted: named after a host


def _stop_root_daemons(d):
    """Kills the daemons outside the namespaces (munged) listed in the directory's owner file."""
    try:
        with open(os.path.join(d, "owner.json")) as f:
            daemons = json.load(f).get("daemons", [])
    except (OSError, ValueError):
        return
    for pid, start in daemons:
        if _start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _netns_names():
    try:
        return os.listdir(NETNS_DIR)
    except OSError:
        return []


def _owner_alive(tag):
    """Whether the process that made the test hosts `tag` still runs."""
    pid = int(re.match(r"\d+", tag).group(0))
    try:
        with open(os.path.join(ETC_NETNS, "%s%s-sw" % (PREFIX, tag), "owner")) as f:
            start = int(f.read().split()[1])
        return _start_time(pid) == start
    except (OSError, ValueError, IndexError):
        return _start_time(pid) is not None


def sweep(everything=False):
    """Removes the test hosts of dead processes (every test host's with everything=True)."""
    tags = set()
    for n in _netns_names() + (os.listdir(ETC_NETNS) if os.path.isdir(ETC_NETNS) else []):
        m = NAME_RE.match(n)
        if m:
            tags.add("".join(m.group(1, 2)))
    for d in os.listdir(tempfile.gettempdir()):
        m = re.match(r"^(?:ompi\.)?%s(\d+[a-z]+)-" % PREFIX, d)
        if m:
            tags.add(m.group(1))
    gone = sorted(t for t in tags if everything or not _owner_alive(t))
    for t in gone:
        _remove(t)
    return gone


_LIVE = []
_COUNT = [0]
_HANDLERS = {}


def _cleanup_all():
    for h in list(_LIVE):
        h.close()


def _on_signal(signum, frame):
    _cleanup_all()
    prev = _HANDLERS.get(signum)
    if callable(prev):
        prev(signum, frame)
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_handlers():
    if _HANDLERS:
        return
    atexit.register(_cleanup_all)
    for s in (signal.SIGTERM, signal.SIGHUP):
        prev = signal.getsignal(s)
        if prev is not signal.SIG_IGN:
            _HANDLERS[s] = prev
            signal.signal(s, _on_signal)


def _die_with_parent():
    """preexec_fn: the daemon gets SIGTERM when the process that started it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TestHosts:
    """n hosts on one bridge; see the module's docstring."""

    def __init__(self, n=2, slurm=False, cpus=None):
        why = missing(slurm)
        if why:
            print("SKIP: " + why)
            raise Unavailable(why)
        _install_handlers()
        sweep()
        _COUNT[0] += 1
        self.tag = "%d%s" % (os.getpid(), "".join(chr(97 + int(c)) for c in str(_COUNT[0] - 1)))
        self.n = n
        self.names = ["%s%s-%d" % (PREFIX, self.tag, i) for i in range(n)]
        self.switch = "%s%s-sw" % (PREFIX, self.tag)
        h = zlib.crc32(("%s:%f" % (self.tag, time.time())).encode())
        self.net = "10.%d.%d" % (64 + h % 128, (h >> 8) % 256)  # only inside the namespaces
        self.subnet = self.net + ".0/24"
        self.addrs = ["%s.%d" % (self.net, 11 + i) for i in range(n)]
        self.cpus = cpus or len(os.sched_getaffinity(0))
        self.slurm = slurm
        self.dir = None
        self._popens = []
        self._daemons = []  # (name, Popen)
        self._root_daemons = []
        self.times = {}
        _LIVE.append(self)
        t0 = time.time()
        try:
            self.dir = tempfile.mkdtemp(prefix="%s%s-" % (PREFIX, self.tag))
            os.chmod(self.dir, 0o755)
            self._write_owner()
            self._write_login_env()
            self._watch()
            self._network()
            self.times["network"] = time.time() - t0
            if slurm:
                t1 = time.time()
                self._start_slurm()
                self.times["slurm"] = time.time() - t1
        except BaseException:
            self.close()
            raise

    # ---- set-up
    def _write_owner(self):
        with open(os.path.join(self.dir, "owner.json"), "w") as f:
            json.dump({"pid": os.getpid(), "start": _start_time(os.getpid()),
                       "daemons": [[p, _start_time(p)] for p in self._root_daemons]}, f)

    def _write_login_env(self):
        """The environment of a login on every host (the rsh agent's): this process's, less what
        belongs to a launcher or a job (OMPI_*, PMIX_*, SLURM_*, ...), which no login carries."""
        self.login_env = os.path.join(self.dir, "login.env")
        with open(self.login_env + ".tmp", "wb") as f:
            for k, v in os.environ.items():
                if not re.match(r"(OMPI|PMIX|OPAL|ORTE|PRTE|HYDRA|PMI)_", k) and not FOREIGN_ENV.match(k):
                    f.write(os.fsencode(k) + b"=" + os.fsencode(v) + b"\0")
        os.rename(self.login_env + ".tmp", self.login_env)

    def _watch(self):
        """A detached watcher: when this process ends (even by SIGKILL), it removes these hosts."""
        r, w = os.pipe()
        subprocess.run(["setsid", "-f", sys.executable, os.path.abspath(__file__), "_watch", self.tag, str(r)],
                       pass_fds=(r,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        os.close(r)
        self._watch_fd = w  # never written; its end tells the watcher

    def _network(self):
        os.makedirs(os.path.join(ETC_NETNS, self.switch), exist_ok=True)
        with open(os.path.join(ETC_NETNS, self.switch, "owner"), "w") as f:
            f.write("%d %d\n" % (os.getpid(), _start_time(os.getpid())))
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n" + "".join(
            "%s %s\n" % (a, n) for a, n in zip(self.addrs, self.names))
        for i, (name, addr) in enumerate(zip(self.names, self.addrs)):
            etc = os.path.join(ETC_NETNS, name)
            os.makedirs(etc, exist_ok=True)
            for fname, text in (("hosts", hosts), ("resolv.conf", "# test host %s: no name server\n" % name)):
                with open(os.path.join(etc, fname + ".tmp"), "w") as f:
                    f.write(text)
                os.rename(os.path.join(etc, fname + ".tmp"), os.path.join(etc, fname))
            _ip("netns", "add", name)
            _ip("-n", self.switch, "link", "add", "h%d" % i, "type", "veth", "peer", "name", IFACE, "netns", name)
            _ip("-n", self.switch, "link", "set", "h%d" % i, "master", "br0", "up")
            _ip("-n", name, "addr", "add", addr + "/24", "dev", IFACE)
            _ip("-n", name, "link", "set", IFACE, "up")
            _ip("-n", name, "link", "set", "lo", "up")

    # ---- commands inside a host
    def argv(self, i, argv):
        """argv run inside host i: its network namespace, /etc/hosts and resolv.conf, hostname."""
        return ["ip", "netns", "exec", self.names[i], "unshare", "--uts", "--", "/bin/sh", "-c",
                'hostname "$0" && exec "$@"', self.names[i]] + [str(a) for a in argv]

    def daemon_argv(self, i, argv):
        """argv inside host i for a daemon that needs this machine's /sys (slurmd's cgroups): nsenter
        into the network namespace and bind-mount /etc/hosts and resolv.conf in a mount namespace of
        its own, where `ip netns exec` would mount a fresh /sys without /sys/fs/cgroup."""
        etc = os.path.join(ETC_NETNS, self.names[i])
        return ["nsenter", "--net=%s/%s" % (NETNS_DIR, self.names[i]), "unshare", "--uts", "--mount", "--", "/bin/sh",
                "-c", 'mount --bind "$1/hosts" /etc/hosts && mount --bind "$1/resolv.conf" /etc/resolv.conf && '
                      'hostname "$0" && shift && exec "$@"', self.names[i], etc] + [str(a) for a in argv]

    def run(self, i, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.argv(i, argv), **kw)

    def popen(self, i, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.argv(i, argv), **kw)
        self._popens.append(p)
        return p

    def mpirun_argv(self, np, hosts=None, extra=()):
        hosts = list(range(self.n)) if hosts is None else list(hosts)
        slots = -(-np // len(hosts))
        return ["mpirun", "--allow-run-as-root", "-np", str(np),
                "--host", ",".join("%s:%d" % (self.names[i], slots) for i in hosts),
                "--mca", "plm_rsh_agent", "%s --login-env=%s" % (RSH_AGENT, self.login_env),
                "--mca", "plm_rsh_no_tree_spawn", "1",
                "--mca", "btl", "tcp,self,vader", "--mca", "btl_tcp_if_include", self.subnet,
                "--mca", "oob_tcp_if_include", self.subnet] + list(extra)

    def link_bytes(self, i):
        r = _ip("-n", self.names[i], "-j", "-s", "link", "show", IFACE)
        st = json.loads(r.stdout)[0]["stats64"]
        return st["rx"]["bytes"], st["tx"]["bytes"]

    def cut(self, i):
        """Unplugs host i: its port on the switch goes down (the host keeps its address and routes)."""
        _ip("-n", self.switch, "link", "set", "h%d" % i, "down")

    def heal(self, i):
        _ip("-n", self.switch, "link", "set", "h%d" % i, "up")

    def pids(self, i):
        return [p for p in _ns_pids(self.names[i]) if p != os.getpid()]

    def stop_host(self, i, sig=signal.SIGKILL):
        for p in self.pids(i):
            try:
                os.kill(p, sig)
            except OSError:
                pass

    # ---- SLURM
    def spath(self, *p):
        return os.path.join(self.dir, "slurm", *p)

    def slurm_env(self, env=None):
        e = {k: v for k, v in os.environ.items() if not FOREIGN_ENV.match(k)}
        e["SLURM_CONF"] = self.spath("slurm.conf")
        e.update(env or {})
        return e

    def _write_slurm_conf(self):
        with open("/proc/meminfo") as f:
            mem_mb = int(f.readline().split()[1]) // 1024
        d = self.spath()
        nodes = "".join("NodeName=%s NodeAddr=%s CPUs=%d RealMemory=%d State=UNKNOWN\n" % (
            n, a, self.cpus, max(mem_mb * 9 // 10, 1)) for n, a in zip(self.names, self.addrs))
        # The daemons' ports are fixed: every TestHosts has namespaces, so ports, of its own.
        # Per node: spool, pid file, log and TmpFS (the nodes share one filesystem; PMIx's and
        # the jobs' files would collide in one /tmp). cred_expire=5: a requeued job may start 6 s
        # later instead of 121; sched_interval=1: a job whose begin time passed starts within a
        # second. JobRequeue=0: a job is requeued only when submitted with --requeue (a node
        # failure must end an `sbatch --wait`, not requeue it).
        conf = f"""# foldline's test hosts (tests/hosts/testhosts.py)
ClusterName={PREFIX}{self.tag}
SlurmctldHost={self.names[0]}({self.addrs[0]})
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket,cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.%n.log
TmpFS={d}/tmp/%n
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
JobRequeue=0
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
{nodes}PartitionName=test Nodes={",".join(self.names)} Default=YES MaxTime=INFINITE State=UP
"""
        with open(self.spath("slurm.conf.tmp"), "w") as f:
            f.write(conf)
        os.rename(self.spath("slurm.conf.tmp"), self.spath("slurm.conf"))

    def _daemon(self, name, argv):
        log = open(self.spath(name + ".out"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=self.slurm_env(), preexec_fn=_die_with_parent, start_new_session=True)
        log.close()
        self._daemons.append((name, p))
        return p

    def _start_slurm(self):
        for sub in ["state"] + ["spool/" + n for n in self.names] + ["tmp/" + n for n in self.names]:
            os.makedirs(self.spath(sub))
        os.chmod(self.spath(), 0o755)
        self._write_slurm_conf()
        key = self.spath("munge.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(1024))
        # One munged for all hosts: its socket is a file, which every namespace reaches.
        p = self._daemon("munged", ["munged", "--foreground", "--force", "--socket=" + self.spath("munge.socket"),
                                    "--key-file=" + key, "--pid-file=" + self.spath("munged.pid"),
                                    "--log-file=" + self.spath("munged.log"),
                                    "--seed-file=" + self.spath("munged.seed")])
        self._root_daemons.append(p.pid)
        self._write_owner()
        self._wait_for(lambda: os.path.exists(self.spath("munge.socket")), 10, "munged's socket")
        self._daemon("slurmctld", self.daemon_argv(0, ["slurmctld", "-D", "-f", self.spath("slurm.conf")]))
        self._wait_for(lambda: self.slurm_cmd("scontrol", "ping").returncode == 0, 20, "slurmctld answering")
        for i, n in enumerate(self.names):
            self._daemon("slurmd." + n, self.daemon_argv(i, ["slurmd", "-D", "-f", self.spath("slurm.conf"), "-N", n]))
        self._wait_for(lambda: self.slurm_cmd("sinfo", "-h", "-o", "%T").stdout.split() == ["idle"], 30,
                       "every node idle")

    def _wait_for(self, ready, seconds, what):
        end = time.time() + seconds
        while time.time() < end:
            for name, p in self._daemons:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with status %s:\n%s" % (name, p.returncode, self.slurm_logs()))
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError("no %s after %d s:\n%s" % (what, seconds, self.slurm_logs()))

    def slurm_logs(self, lines=15):
        out = []
        for name in ["munged.out", "munged.log", "slurmctld.out", "slurmctld.log"] + [
                "slurmd.%s.%s" % (n, x) for n in self.names for x in ("out", "log")]:
            try:
                with open(self.spath(name), errors="replace") as f:
                    out.append("---- %s\n%s" % (name, "".join(f.readlines()[-lines:])))
            except OSError:
                pass
        return "\n".join(out)

    def slurm_cmd(self, *args, env=None, timeout=120):
        """A SLURM command (squeue, scontrol, ...) on host 0: CompletedProcess with text output."""
        return self.run(0, [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        env=self.slurm_env(env), timeout=timeout, universal_newlines=True, errors="replace")

    def sbatch(self, argv, env=None, wait=True, timeout=300):
        """sbatch --parsable [--wait] ARGV on host 0: (job id, CompletedProcess)."""
        r = self.slurm_cmd("sbatch", "--parsable", *((["--wait"] if wait else []) + list(argv)), env=env,
                           timeout=timeout)
        m = re.match(r"(\d+)", r.stdout.strip())
        return (m.group(1) if m else None), r

    def job_states(self, job):
        """{job id: (state, restarts, exit code)} of a job, or of every task of an array job."""
        states = {}
        for line in self.slurm_cmd("scontrol", "-o", "show", "job", job, timeout=30).stdout.splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" in f:
                states[f["JobId"]] = (f["JobState"], int(f.get("Restarts", 0)), f.get("ExitCode"))
        return states

    def wait_jobs(self, *jobs, seconds=120):
        """Polls until every job (every task of an array) has ended: their job_states."""
        end = time.time() + seconds
        states = {}
        while time.time() < end:
            states = {}
            for j in jobs:
                states.update(self.job_states(j))
            if states and all(s[0] in DONE for s in states.values()):
                return states
            time.sleep(0.2)
        raise AssertionError("jobs %s not done after %d s: %s\n%s" % (jobs, seconds, states, self.slurm_logs()))

    # ---- clean-up
    def close(self):
        if self not in _LIVE:
            return
        _LIVE.remove(self)
        for p in self._popens:  # reaps what the sweep killed
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        names = [n for n in self.names + [self.switch] if n in _netns_names()]
        _kill_ns_processes(names)
        for name, p in reversed(self._daemons):  # those outside: munged
            if p.poll() is None:
                p.kill()
        for p in self._popens + [p for _, p in self._daemons]:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _remove(self.tag)
        if getattr(self, "_watch_fd", None) is not None:
            os.close(self._watch_fd)
            self._watch_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def describe(self):
        lines = ["%d test hosts on %s (switch namespace %s):" % (self.n, self.subnet, self.switch)]
        for i, (n, a) in enumerate(zip(self.names, self.addrs)):
            lines.append("  host %d: %s %s   enter: ip netns exec %s unshare --uts sh -c 'hostname %s; exec bash'"
                         % (i, n, a, n, n))
        lines.append("  mpirun (on host 0): " + shlex.join(self.mpirun_argv(self.n)) + " PROGRAM")
        if self.slurm:
            lines.append("  SLURM: export SLURM_CONF=%s (sbatch, squeue, ... on host 0)" % self.spath("slurm.conf"))
        return "\n".join(lines)


def _watch_main(tag, fd):
    """The watcher: waits for the end of the test process (its pipe's end), then removes its hosts."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(fd)
    while os.read(fd, 1):
        pass
    _remove(tag)


def main(argv):
    if len(argv) == 4 and argv[1] == "_watch":
        _watch_main(argv[2], argv[3])
        return 0
    if len(argv) >= 2 and argv[1] == "sweep":
        if missing():
            print("SKIP: " + missing())
            return SKIP
        print("removed: %s" % (" ".join(sweep(everything=True)) or "nothing"))
        return 0
    if len(argv) >= 2 and argv[1] == "shell":
        n = int(argv[2]) if len(argv) > 2 else 2
        with TestHosts(n=n, slurm="--slurm" in argv) as h:
            print(h.describe())
            print("up in %s; Enter or Ctrl-C removes them" % ", ".join("%s %.2f s" % kv for kv in h.times.items()))
            try:
                sys.stdin.readline()
            except KeyboardInterrupt:
                pass
        return 0
    print("usage: %s shell [N] [--slurm] | sweep" % argv[0], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
