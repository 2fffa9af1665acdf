"""The chaos scenarios' lab (molecule/chaos, molecule/chaos_operator): hosts over direct SSH, VMs paused and
resumed, links cut, etcd members stopped, and the helpers their cases share.

Every case starts from the converged lab (tests/lab/snapshot.py restore converged: VMs and etcd members
together) and a sampler that checks, about once a second on every reachable host, that no project has two
writable copies. A scenario's conftest.py imports the fixtures ``chaos_lab``, ``lab`` and ``case_clock``.
"""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

import etcd_lab
import lab_ssh

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECTS = "tank/projects"
CASE_STARTED = [time.monotonic()]


class Lab:
    def __init__(self, hosts, common):
        self.hosts, self.common = hosts, common
        self.netns = common.get("smc_lab_netns", "smclab")
        self.paused = set()
        self.placed = set()
        self.settling = {}  # host -> until when its fresh-from-a-pause state is not sampled (its first tick)
        etcd_lab.NETNS = self.netns
        etcd_lab.BRIDGE = common.get("smc_lab_bridge", etcd_lab.BRIDGE)

    def __getitem__(self, name):
        return self.hosts[name]

    def restore(self):
        p = subprocess.run([sys.executable, os.path.join(REPO, "tests", "lab", "snapshot.py"), "restore", "converged"],
                           capture_output=True, text=True, check=False, timeout=600)
        assert p.returncode == 0, p.stderr
        for h in self.hosts.values():
            h.forget_connection()
        self.paused, self.settling = set(), {}
        self.placed = set(self.primaries())

    def pause(self, name):
        """The host dies as far as anyone can tell: its VM stops (memory kept), mid-whatever it was doing."""
        subprocess.run(["virsh", "-c", "qemu:///system", "suspend", name], check=True, capture_output=True)
        self.paused.add(name)
        return time.monotonic()

    def resume(self, name):
        """The host comes back as it was (its clock set to now, as NTP would). Frozen past its lease, its old
        primaries are writable until its HA loop's first renewal fails and it fences them: that window is
        measured (returned, in seconds) and not sampled; no writes made in it can leave the host (epoch)."""
        self.settling[name] = float("inf")
        subprocess.run(["virsh", "-c", "qemu:///system", "resume", name], check=True, capture_output=True)
        resumed = time.monotonic()
        self.paused.discard(name)
        self.hosts[name].forget_connection()
        owned = None
        while time.monotonic() - resumed < 120:
            try:
                mine = set(self.writable(name))
                if owned is None:
                    owned = set(p for p, (h, _e) in self.primaries().items() if h == name)
                if all(ds.rsplit("/", 1)[1] in owned for ds in mine):
                    break
            except (AssertionError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.5)
        window = time.monotonic() - resumed
        self.hosts[name].run("date -u -s @%.3f >/dev/null" % time.time(), timeout=120)
        del self.settling[name]
        return window

    def link(self, name, up):
        """Plug / unplug the host's tap on the private bridge (its SSH from here goes another way)."""
        subprocess.run(["ip", "-n", self.netns, "link", "set", self.hosts[name].tap, "up" if up else "down"],
                       check=True, capture_output=True)

    def live(self):
        now = time.monotonic()
        return [n for n in sorted(self.hosts) if n not in self.paused and self.settling.get(n, 0) < now]

    def ha(self, name):
        return lab_ssh.agent(self.hosts[name], "ha-status", timeout=60)

    def primaries(self, via=None):
        """etcd's {project: (host, epoch)}, read from the controller through a member's namespace (``via``:
        read through that host's agent instead, as the host sees it)."""
        if via is not None:
            st = self.ha(via)
            assert st.get("etcd") == "ok", st
            return dict((p, (v["host"], v["epoch"])) for p, v in st["primary"].items())
        out = etcd_lab.ctl("get", "--prefix", "/smc/primary/")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        return dict((k.rsplit("/", 1)[1], (json.loads(v)["host"], json.loads(v)["epoch"]))
                    for k, v in zip(lines[0::2], lines[1::2]))

    def writable_anywhere(self):
        """{host: its writable copies} of the hosts that have any, every host asked at once (one host after
        another, a busy fencing guest's slow answers made the sum look like a slow fence)."""
        found, threads = {}, []

        def one(name):
            copies = self.writable(name)
            if copies:
                found[name] = copies
        for name in self.hosts:
            threads.append(threading.Thread(target=one, args=(name,)))
            threads[-1].start()
        for t in threads:
            t.join()
        return found

    def writable(self, name):
        """The host's writable copies of placed projects (the HA loop's; demo datasets outside the placement
        are not its business)."""
        out = self.hosts[name].out("zfs list -H -o name,readonly -d 1 %s" % PROJECTS, timeout=60)
        return sorted(line.split("\t")[0] for line in out.splitlines()[1:]
                      if line.endswith("\toff") and line.split("\t")[0].rsplit("/", 1)[1] in self.placed)


class Sampler(threading.Thread):
    """Every two seconds or so: every reachable, settled host's writable project datasets; two hosts with the
    same one writable at the same sample is a split brain."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab, self.stop, self.samples, self.violations = lab, threading.Event(), 0, []

    def run(self):
        while not self.stop.is_set():
            seen = {}
            threads = []
            for name in self.lab.live():
                t = threading.Thread(target=self._one, args=(name, seen))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            owners = {}
            for name, datasets in seen.items():
                for ds in datasets:
                    owners.setdefault(ds, []).append(name)
            bad = dict((ds, hs) for ds, hs in owners.items() if len(hs) > 1)
            if bad:
                self.violations.append((time.time(), bad))
            self.samples += 1
            self.stop.wait(2.0)

    def _one(self, name, seen):
        try:
            seen[name] = self.lab.writable(name)
        except (AssertionError, subprocess.TimeoutExpired):
            pass  # unreachable right now (cut off, slow): no sample from it


@pytest.fixture(scope="session", name="chaos_lab")
def fixture_chaos_lab(tmp_path_factory):
    hosts, common = lab_ssh.lab_hosts(tmp_path_factory.mktemp("cp"))
    assert len(hosts) == 6 and common.get("smc_etcd_endpoints"), "the lab needs its 6 hosts and etcd members"
    return Lab(hosts, common)


@pytest.fixture(name="lab")
def fixture_lab(chaos_lab):
    """A restored lab per case, with the split-brain sampler running; asserts no violation at the end."""
    started = time.monotonic()
    chaos_lab.restore()
    print("[chaos] lab restored in %.1f s" % (time.monotonic() - started), flush=True)
    for m in etcd_lab.members():
        etcd_lab.link(m, "up")
    sampler = Sampler(chaos_lab)
    sampler.start()
    chaos_lab.sampler = sampler
    yield chaos_lab
    sampler.stop.set()
    sampler.join(timeout=60)
    for name in list(chaos_lab.paused):
        subprocess.run(["virsh", "-c", "qemu:///system", "resume", name], check=False, capture_output=True)
    for name in chaos_lab.hosts:
        chaos_lab.link(name, True)
    for m in etcd_lab.members():
        etcd_lab.start(m)
        etcd_lab.link(m, "up")
    assert sampler.samples > 0
    if sampler.violations:  # what the hosts' HA loops did (the next case's restore loses it)
        hosts = sorted(set(h for _t, bad in sampler.violations for hs in bad.values() for h in hs))
        logs = "\n".join("--- %s\n%s" % (h, chaos_lab.hosts[h].out(
            "journalctl -u smc-ha --since -10min -o short-iso --no-pager | grep -v '\"kept\": true' | tail -60",
            check=False)) for h in hosts)
        raise AssertionError("two writable copies: %s\n%s" % (sampler.violations[:5], logs))


@pytest.fixture(autouse=True, name="case_clock")
def fixture_case_clock():
    """The clock of say()'s stamps: seconds since the case began (its lab restore included)."""
    CASE_STARTED[0] = time.monotonic()


def say(msg):
    print("[chaos +%.0fs] %s" % (time.monotonic() - CASE_STARTED[0], msg), flush=True)


def plan(host):
    return json.loads(host.out("cat /etc/smc/plan.json"))


def projects_of(lab, primary):
    """Placed projects whose primary (in etcd) is ``primary``."""
    return sorted(p for p, (h, _e) in lab.primaries().items() if h == primary)


def serving_host(lab, prefer="dc2-s2", besides=None):
    """``prefer`` when etcd names it primary of some project, else the host serving the most (failovers since
    the converge can leave a host serving none); never ``besides``."""
    counts = {}
    for host, _epoch in lab.primaries().values():
        if host != besides:
            counts[host] = counts.get(host, 0) + 1
    return prefer if counts.get(prefer) else max(sorted(counts), key=counts.get)


def snapshot_and_send(host):
    """A snapshot and a replicate on ``host``; its replication report. A failed replicate fails the case with
    the sender's HA view (which peers it held alive) and its HA loop's journal, lost with the next restore."""
    lab_ssh.agent(host, "snapshot")
    rc, out, err = host.run("%s replicate" % lab_ssh.AGENT, check=False, timeout=900)
    if rc != 0:
        status = lab_ssh.agent(host, "ha-status", check=False, timeout=60)
        raise AssertionError("%s: smc-zfs-agent replicate rc=%d\n%s\n%s\nHA view: fresh=%s alive=%s\n%s" % (
            host.name, rc, out[-3000:], err[-2000:], status.get("fresh"), (status.get("state") or {}).get("alive"),
            host.out("journalctl -u smc-ha --no-pager -n 40 -o cat", check=False)[-6000:]))
    return json.loads(out)["replication"]


def etcd_primary(pid):
    """etcd's primary of ``pid`` as (host, epoch), read from the controller through a member's namespace."""
    p = etcd_lab.ctl("get", "/smc/primary/" + pid, "--print-value-only")
    doc = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {}
    return doc.get("host"), doc.get("epoch", 0)
