"""The lab's etcd: three members, one per DC, each a real etcd process in a network namespace of its own,
wired to the lab's private bridge like a VM (so a DC can be cut off with its storage hosts).

  etcd_lab.py up                 namespaces, veths and members (a new cluster when no data yet); idempotent
  etcd_lab.py down               stop the members (by PID), delete their namespaces and data
  etcd_lab.py stop|start NAME    one member (chaos: lose a member, get it back)
  etcd_lab.py cut|heal NAME      unplug / plug one member's link to the bridge (it keeps running)
  etcd_lab.py save|restore SNAP  copy every member's data aside / back (members stopped meanwhile)
  etcd_lab.py status             JSON: member, address, pid, running, health
  etcd_lab.py ctl ARGS...        etcdctl against the cluster, from a member's namespace

Members are etcd-dc1..etcd-dc3 at <prefix>.201..203 (the guests are .11 and up). Timings are for a loaded
2-core controller running six TCG guests: heartbeat 250 ms, election timeout 2500 ms.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

NETNS = os.environ.get("SMC_LAB_NETNS", "smclab")
BRIDGE = os.environ.get("SMC_LAB_BRIDGE", "smcbr0")
PREFIX = os.environ.get("SMC_LAB_SUBNET_PREFIX", "10.77.0")
DCS = tuple(os.environ.get("SMC_LAB_DCS", "dc1,dc2,dc3").split(","))
HEARTBEAT_MS, ELECTION_MS = 250, 2500


class EtcdLabError(Exception):
    pass


def cache():
    return os.path.join(os.environ.get("SMC_LAB_CACHE") or os.path.expanduser("~/.cache/smc-lab"), "etcd")


def members():
    return [{"name": "etcd-" + dc, "dc": dc, "address": "%s.%d" % (PREFIX, 201 + i), "netns": "smclab-etcd-" + dc,
             "veth": "smce-" + dc} for i, dc in enumerate(DCS)]


def member(name):
    for m in members():
        if name in (m["name"], m["dc"]):
            return m
    raise EtcdLabError("no etcd member %r; members: %s" % (name, ", ".join(m["name"] for m in members())))


def endpoints():
    return ["http://%s:2379" % m["address"] for m in members()]


def sh(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise EtcdLabError("%s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def netns_exists(ns):
    return ns in sh("ip", "netns", "list").stdout.split()


def wire(m):
    """The member's namespace and a veth into the lab's bridge; returns True when it changed something."""
    changed = False
    if not netns_exists(NETNS):
        raise EtcdLabError("the lab's namespace %s does not exist: boot the lab first (make lab-up)" % NETNS)
    if not netns_exists(m["netns"]):
        sh("ip", "netns", "add", m["netns"])
        changed = True
    sh("ip", "-n", m["netns"], "link", "set", "lo", "up")
    if sh("ip", "-n", m["netns"], "link", "show", "eth0", check=False).returncode != 0:
        sh("ip", "-n", NETNS, "link", "del", m["veth"], check=False)
        sh("ip", "-n", NETNS, "link", "add", m["veth"], "type", "veth", "peer", "name", "eth0", "netns", m["netns"])
        sh("ip", "-n", m["netns"], "addr", "add", m["address"] + "/24", "dev", "eth0")
        changed = True
    sh("ip", "-n", m["netns"], "link", "set", "eth0", "up")
    sh("ip", "-n", NETNS, "link", "set", m["veth"], "master", BRIDGE, "up")
    return changed


def paths(m):
    base = os.path.join(cache(), m["name"])
    return {"data": os.path.join(base, "data"), "pid": base + ".pid", "log": base + ".log"}


def pid_of(m):
    """The PID this script started for the member, if that process is still an etcd."""
    try:
        with open(paths(m)["pid"], encoding="utf-8") as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            if b"etcd" not in f.read().split(b"\0")[0]:
                return None
        return pid
    except (OSError, ValueError):
        return None


def start(m):
    if pid_of(m):
        return False
    p = paths(m)
    os.makedirs(os.path.dirname(p["data"]), exist_ok=True)
    cluster = ",".join("%s=http://%s:2380" % (x["name"], x["address"]) for x in members())
    args = ["ip", "netns", "exec", m["netns"], "etcd", "--name", m["name"], "--data-dir", p["data"],
            "--listen-peer-urls", "http://%s:2380" % m["address"],
            "--initial-advertise-peer-urls", "http://%s:2380" % m["address"],
            "--listen-client-urls", "http://%s:2379,http://127.0.0.1:2379" % m["address"],
            "--advertise-client-urls", "http://%s:2379" % m["address"],
            "--initial-cluster", cluster, "--initial-cluster-token", "smc-lab",
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
            "--snapshot-count", "10000", "--quota-backend-bytes", str(512 * 1024 * 1024)]
    with open(p["log"], "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(p["pid"], "w", encoding="utf-8") as f:
        f.write("%d\n" % proc.pid)
    return True


def stop(m, timeout=15):
    pid = pid_of(m)
    if not pid:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_of(m):
        time.sleep(0.1)
    if pid_of(m):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    os.unlink(paths(m)["pid"])
    return True


def ctl(*args, via=None):
    """etcdctl from a member's namespace (the controller's own namespace cannot reach the bridge)."""
    m = member(via) if via else next((x for x in members() if pid_of(x)), members()[0])
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(["ip", "netns", "exec", m["netns"], "etcdctl", "--endpoints", ",".join(endpoints()),
                           "--command-timeout", "5s", "--dial-timeout", "2s"] + list(args),
                          capture_output=True, text=True, env=env, check=False)


def healthy(m):
    p = subprocess.run(["ip", "netns", "exec", m["netns"], "etcdctl", "--endpoints", "http://%s:2379" % m["address"],
                        "--command-timeout", "3s", "endpoint", "health"], capture_output=True, text=True,
                       env=dict(os.environ, ETCDCTL_API="3"), check=False)
    return p.returncode == 0


def wait_healthy(timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(healthy(m) for m in members()):
            return
        time.sleep(0.5)
    raise EtcdLabError("etcd members not healthy after %d s; logs: %s/*.log" % (timeout, cache()))


def up():
    changed = [m["name"] for m in members() if wire(m)]
    changed += [m["name"] for m in members() if start(m)]
    wait_healthy()
    return changed


def down():
    changed = []
    for m in members():
        if stop(m):
            changed.append(m["name"])
        if netns_exists(NETNS):
            sh("ip", "-n", NETNS, "link", "del", m["veth"], check=False)
        if netns_exists(m["netns"]):
            sh("ip", "netns", "del", m["netns"])
            changed.append(m["netns"])
    for m in members():
        shutil.rmtree(os.path.join(cache(), m["name"]), ignore_errors=True)
    return changed


def link(m, state):
    sh("ip", "-n", NETNS, "link", "set", m["veth"], state)


def save(snap):
    """Stop the members, copy their data dirs to snapshots/SNAP, start them again."""
    target = os.path.join(cache(), "snapshots", snap)
    running = [m for m in members() if stop(m)]
    try:
        shutil.rmtree(target, ignore_errors=True)
        for m in members():
            if os.path.isdir(paths(m)["data"]):
                shutil.copytree(paths(m)["data"], os.path.join(target, m["name"]))
    finally:
        for m in running:
            start(m)


def has(snap):
    return all(os.path.isdir(os.path.join(cache(), "snapshots", snap, m["name"])) for m in members())


def stop_all():
    for m in members():
        stop(m)


def restore(snap, wait=True):
    """Members stopped, data back from snapshots/SNAP, members started (their leases get a full TTL again)."""
    source = os.path.join(cache(), "snapshots", snap)
    if not has(snap):
        raise EtcdLabError("no etcd snapshot %r in %s" % (snap, source))
    for m in members():
        stop(m)
        shutil.rmtree(paths(m)["data"], ignore_errors=True)
        shutil.copytree(os.path.join(source, m["name"]), paths(m)["data"])
        wire(m)
        link(m, "up")
    for m in members():
        start(m)
    if wait:
        wait_healthy()


def status():
    return [dict(m, pid=pid_of(m), running=bool(pid_of(m)), healthy=bool(pid_of(m)) and healthy(m)) for m in members()]


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "up":
            changed = up()
            print("changed: " + ", ".join(changed) if changed else "ok: etcd members up at " + ",".join(endpoints()))
        elif cmd == "down":
            changed = down()
            print("changed: " + ", ".join(changed) if changed else "ok")
        elif cmd in ("stop", "start"):
            m = member(rest[0])
            print("changed" if (stop(m) if cmd == "stop" else start(m)) else "ok")
        elif cmd in ("cut", "heal"):
            link(member(rest[0]), "down" if cmd == "cut" else "up")
        elif cmd in ("save", "restore"):
            save(rest[0]) if cmd == "save" else restore(rest[0])
        elif cmd == "status":
            print(json.dumps(status(), indent=1))
        elif cmd == "ctl":
            p = ctl(*rest)
            sys.stdout.write(p.stdout)
            sys.stderr.write(p.stderr)
            return p.returncode
        else:
            sys.stderr.write(__doc__)
            return 2
    except (EtcdLabError, IndexError, OSError) as exc:
        sys.stderr.write("etcd lab: ERROR: %s\n" % exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
