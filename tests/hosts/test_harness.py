#!/usr/bin/env python3
"""The test-host harness itself (tests/hosts/testhosts.py): two hosts with their own hostnames,
addresses and /etc/hosts; mpirun across them (a tiny MPI program compiled here with mpicc: each
rank on its own host, MPI_COMM_TYPE_SHARED sees two nodes, the payload goes over the veths);
sbatch -N 2 on the hosts' SLURM; unplugging a host; and clean-up on every path (leaving the
`with` block, the test process killed by SIGKILL, leftovers of a dead process).

Skipped (77) when not root or without ip, unshare, mpirun, mpicc, slurm-wlm or munge.
About 30 s.
"""
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import testhosts  # noqa: E402
from testhosts import TestHosts  # noqa: E402

PY = sys.executable
MB = 8  # the payload rank 0 sends rank 1

MPI_PROG = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* Prints its rank, hostname and the number of nodes MPI_COMM_TYPE_SHARED finds; rank 0 sends
   argv[1] MiB to rank 1, which checks every byte. */
int main(int argc, char **argv) {
  int rank, size, nrank, leader, nodes;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &nrank);
  leader = nrank == 0;
  MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  size_t n = (size_t)atol(argv[1]) << 20, good = 0;
  unsigned char *buf = malloc(n);
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(i * 7 + rank);
  if (rank == 0) MPI_Send(buf, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
  if (rank == 1) {
    MPI_Recv(buf, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (size_t i = 0; i < n; i++) good += buf[i] == (unsigned char)(i * 7);
  }
  char host[256];
  gethostname(host, sizeof host);
  printf("rank %d of %d host %s nodes %d good %zu\n", rank, size, host, nodes, good);
  free(buf);
  MPI_Comm_free(&node);
  MPI_Finalize();
  return 0;
}
"""

H = None
TMP = None


def setUpModule():
    global H, TMP
    TMP = tempfile.mkdtemp(prefix="fl-hosts-")
    os.chmod(TMP, 0o755)
    with open(os.path.join(TMP, "prog.c"), "w") as f:
        f.write(MPI_PROG)
    subprocess.run(["mpicc", "-O1", "-o", os.path.join(TMP, "prog"), os.path.join(TMP, "prog.c")], check=True)
    t0 = time.time()
    H = TestHosts(n=2, slurm=True)
    print("hosts_harness: 2 hosts with SLURM up in %.2f s (%s)" % (
        time.time() - t0, ", ".join("%s %.2f s" % kv for kv in H.times.items())), file=sys.stderr)


def tearDownModule():
    global H
    if H is None:
        return
    tag = H.tag
    pids = set()
    for i in range(H.n):
        pids.update(H.pids(i))
    H.close()
    H = None
    shutil.rmtree(TMP, ignore_errors=True)
    left = leftovers(tag) + ["pid %d" % p for p in pids if alive(p)]
    if left:
        raise AssertionError("left after close(): %s" % left)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def leftovers(tag):
    """What of the test hosts `tag` still exists: namespaces, /etc/netns dirs, temporary dirs."""
    pre = "%s%s-" % (testhosts.PREFIX, tag)
    found = []
    for where in (testhosts.NETNS_DIR, testhosts.ETC_NETNS, tempfile.gettempdir()):
        if os.path.isdir(where):
            found += [os.path.join(where, n) for n in os.listdir(where) if n.startswith((pre, "ompi." + pre))]
    return found


def wait_gone(tag, seconds=10):
    end = time.time() + seconds
    while leftovers(tag) and time.time() < end:
        time.sleep(0.1)
    return leftovers(tag)


def text(r):
    return (r.stdout or "") + (r.stderr or "")


class Network(unittest.TestCase):
    def out(self, i, argv):
        r = H.run(i, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, 0, text(r))
        return r.stdout

    def test_each_host_has_its_name_address_and_hosts_file(self):
        net = ipaddress.ip_network(H.subnet)
        self.assertEqual(net.prefixlen, 24)
        self.assertEqual(len(set(H.names)), 2)
        for i in range(2):
            self.assertEqual(self.out(i, ["hostname"]).strip(), H.names[i])
            addrs = json.loads(self.out(i, ["ip", "-j", "addr", "show", testhosts.IFACE]))[0]["addr_info"]
            self.assertIn(H.addrs[i], [a["local"] for a in addrs])
            self.assertIn(ipaddress.ip_address(H.addrs[i]), net)
            for j in range(2):  # every host's name resolves to its address inside every host
                self.assertEqual(self.out(i, ["getent", "hosts", H.names[j]]).split()[0], H.addrs[j])
            self.assertEqual(self.out(i, ["getent", "ahostsv4", "localhost"]).split()[0], "127.0.0.1")
            self.assertNotIn("nameserver", self.out(i, ["cat", "/etc/resolv.conf"]))

    def test_this_machines_namespace_has_no_address_on_the_subnet(self):
        r = subprocess.run(["ip", "-j", "addr"], stdout=subprocess.PIPE, universal_newlines=True, check=True)
        net = ipaddress.ip_network(H.subnet)
        mine = [a["local"] for l in json.loads(r.stdout) for a in l.get("addr_info", [])]
        self.assertFalse([a for a in mine if ipaddress.ip_address(a) in net], mine)

    def test_a_cut_host_is_unreachable_until_healed_and_stop_host_ends_its_processes(self):
        listen = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                  "s.bind(('0.0.0.0',5999));s.listen(8);print('up',flush=True)\n"
                  "while True:\n c,_=s.accept();c.sendall(b'hello');c.close()\n")
        connect = ("import socket,sys\ntry:\n c=socket.create_connection((sys.argv[1],5999),timeout=1.5);"
                   "print(c.recv(5))\nexcept OSError as e:\n print('failed',e);sys.exit(1)\n")
        with TestHosts(n=2) as h:  # hosts of its own: the others keep their SLURM
            p = h.popen(1, [PY, "-c", listen], stdout=subprocess.PIPE)
            self.assertEqual(p.stdout.readline().strip(), b"up")

            def connect_from_0():
                return h.run(0, [PY, "-c", connect, h.names[1]], stdout=subprocess.PIPE, universal_newlines=True,
                             timeout=30)
            r = connect_from_0()
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "b'hello'"))
            h.cut(1)
            r = connect_from_0()
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("failed", r.stdout)
            h.heal(1)
            r = connect_from_0()
            self.assertEqual((r.returncode, r.stdout.strip()), (0, "b'hello'"))
            self.assertEqual(h.pids(1), [p.pid])
            h.stop_host(1, signal.SIGTERM)
            self.assertEqual(p.wait(10), -signal.SIGTERM)
            p.stdout.close()
            self.assertEqual(h.pids(1), [])


class Mpi(unittest.TestCase):
    def test_two_ranks_on_two_hosts_talk_over_the_veths(self):
        before = [H.link_bytes(i) for i in range(2)]
        r = H.run(0, H.mpirun_argv(2, extra=["--map-by", "node"]) + [os.path.join(TMP, "prog"), str(MB)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
        after = [H.link_bytes(i) for i in range(2)]
        self.assertEqual(r.returncode, 0, text(r))
        lines = sorted(l.split() for l in r.stdout.splitlines() if l.startswith("rank "))
        self.assertEqual(len(lines), 2, r.stdout)
        for rank, l in enumerate(lines):
            self.assertEqual(l[1], str(rank))
            self.assertEqual(l[5], H.names[rank], "rank %d runs on host %d" % (rank, rank))
            self.assertEqual(l[7], "2", "MPI_COMM_TYPE_SHARED sees 2 nodes")
        self.assertEqual(lines[1][9], str(MB << 20), "rank 1 got every byte")
        payload = MB << 20
        self.assertGreaterEqual(after[0][1] - before[0][1], payload, "host 0 sent the payload")
        self.assertGreaterEqual(after[1][0] - before[1][0], payload, "host 1 received the payload")

    def test_the_rsh_agent_refuses_a_host_that_is_not_one(self):
        r = H.run(0, [testhosts.RSH_AGENT, "nosuchhost", "true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, 255)
        self.assertIn("rsh-agent: nosuchhost is no test host", r.stderr)
        self.assertIn("HINT:", r.stderr)


class Slurm(unittest.TestCase):
    def test_sbatch_on_two_nodes_runs_srun_on_both(self):
        script = os.path.join(TMP, "job.sh")
        with open(script, "w") as f:
            f.write("#!/bin/bash\necho nodes=$SLURM_JOB_NODELIST\nsrun hostname\n")
        t0 = time.time()
        job, r = H.sbatch(["-N", "2", "-D", TMP, "-o", os.path.join(TMP, "job-%j.out"), script], timeout=120)
        secs = time.time() - t0
        self.assertEqual(r.returncode, 0, text(r) + H.slurm_logs())
        with open(os.path.join(TMP, "job-%s.out" % job)) as f:
            out = f.read()
        self.assertEqual(sorted(out.split()[1:]), sorted(H.names), out)
        self.assertIn("nodes=%s[0-1]" % H.names[0][:-1], out)
        print("hosts_harness: sbatch -N 2 --wait: %.1f s" % secs, file=sys.stderr)


def child_holding_hosts(code):
    """Starts a Python process that makes 2 test hosts and runs `code`; returns (process, tag)."""
    prog = ("import sys,time,subprocess\nsys.path.insert(0,%r)\nfrom testhosts import TestHosts\n"
            "h=TestHosts(n=2)\nprint(h.tag,flush=True)\n%s\n" % (HERE, code))
    p = subprocess.Popen([PY, "-c", prog], stdout=subprocess.PIPE, universal_newlines=True)
    tag = p.stdout.readline().strip()
    return p, tag


class CleanUp(unittest.TestCase):
    def test_leaving_the_with_block_removes_everything_and_kills_stray_processes(self):
        with TestHosts(n=2) as h:
            tag = h.tag
            self.assertTrue(leftovers(tag))
            # A daemon that left its parent: only the sweep of the namespace finds it.
            h.run(1, ["setsid", "-f", "sleep", "300"], check=True)
            # mpirun with a rank on each host: killed, its orted leaves its session dir in /tmp.
            p = h.popen(0, h.mpirun_argv(2, extra=["--map-by", "node"]) + ["sleep", "300"])
            sessions = [os.path.join(tempfile.gettempdir(), "ompi.%s.%d" % (n, os.getuid())) for n in h.names]
            end = time.time() + 30
            while time.time() < end and not (all(map(os.path.isdir, sessions)) and
                                             [comm(q) for q in h.pids(1)].count("sleep") == 2):
                time.sleep(0.1)
            pids = h.pids(0) + h.pids(1)
            self.assertEqual(sorted(comm(q) for q in pids), ["mpirun", "orted", "sleep", "sleep", "sleep"])
        self.assertEqual(leftovers(tag), [])
        self.assertEqual([q for q in pids if alive(q)], [])
        self.assertEqual(p.returncode, -signal.SIGKILL)

    def test_an_exception_in_the_with_block_removes_everything(self):
        with self.assertRaises(ZeroDivisionError):
            with TestHosts(n=1) as h:
                tag = h.tag
                1 / 0
        self.assertEqual(leftovers(tag), [])

    def test_sigterm_to_the_test_process_removes_everything(self):
        p, tag = child_holding_hosts("h.popen(1,['sleep','300'])\ntime.sleep(300)")
        self.assertTrue(leftovers(tag))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), -signal.SIGTERM)
        p.stdout.close()
        self.assertEqual(leftovers(tag), [], "removed before the process ended")

    def test_a_test_process_killed_by_sigkill_leaves_nothing(self):
        p, tag = child_holding_hosts("h.popen(1,['sleep','300'])\ntime.sleep(300)")
        time.sleep(0.3)
        ns = "%s%s-1" % (testhosts.PREFIX, tag)
        pids = testhosts._ns_pids(ns)
        self.assertTrue(pids)
        p.kill()
        p.wait()
        p.stdout.close()
        self.assertEqual(wait_gone(tag), [], "the watcher removes them")
        self.assertEqual([q for q in pids if alive(q)], [])

    def test_leftovers_of_a_dead_process_are_swept_by_the_next_test_hosts(self):
        dead = subprocess.Popen(["true"])
        dead.wait()
        tag = "%dz" % dead.pid
        ns = "%s%s-0" % (testhosts.PREFIX, tag)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        os.makedirs(os.path.join(testhosts.ETC_NETNS, ns))
        os.makedirs(os.path.join(tempfile.gettempdir(), "%s%s-xyz" % (testhosts.PREFIX, tag)))
        stray = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"], start_new_session=True)
        end = time.time() + 5  # (a TestHosts of a concurrent test may sweep them first: as good)
        while testhosts._ns_pids(ns) != [stray.pid] and stray.poll() is None and time.time() < end:
            time.sleep(0.05)
        with TestHosts(n=1):
            self.assertEqual(leftovers(tag), [])
        self.assertEqual(stray.wait(5), -signal.SIGKILL)


def main():
    testhosts.skip_unless_available(slurm=True)
    if not shutil.which("mpicc"):
        print("SKIP: mpicc not installed HINT: apt-get install libopenmpi-dev")
        return testhosts.SKIP
    r = unittest.main(verbosity=2, exit=False)
    return 0 if r.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
