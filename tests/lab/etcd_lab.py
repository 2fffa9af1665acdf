"""The lab's etcd: three members, one per DC, each a real etcd process in a network namespace of its own,
wired to the lab's private bridge like a VM (so a DC can be cut off with its storage hosts).

  etcd_lab.py up                 namespaces, veths and members (a new cluster when no data yet); idempotent
  etcd_lab.py down               stop the members (by PID), delete their namespaces and data
  etcd_lab.py stop|start NAME    one member (chaos: lose a member, get it back)
  etcd_lab.py cut|heal NAME      unplug / plug one member's link to the bridge (it keeps running)
  etcd_lab.py save|restore SNAP  copy every member's data aside / back (members stopped meanwhile)
  etcd_lab.py status             JSON: member, address, pid, running, health
  etcd_lab.py ctl ARGS...        etcdctl against the cluster, from a member's namespace

Members are etcd-dc1..etcd-dc3 at <prefix>.201..203 (the guests are .11 and up). Each runs from the config
file role coordination writes (plugins/module_utils/etcd_member.py): TLS between members and for clients,
client certificates required, from the lab's CA in <cache>/etcd/ca (the inventory's smc_ca_dir, which also
signs the agents' client certificates). Timings are the role's defaults, for a loaded 2-core controller
running six TCG guests: heartbeat 250 ms, election timeout 2500 ms. Snapshot 'blank' is an empty cluster.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [os.path.join(_REPO, "plugins", "module_utils"), os.path.join(_REPO, "tests")]
import etcd_member  # noqa: E402 (the collection's own, as role coordination uses it)
import local_commands  # noqa: E402
import tls_ca  # noqa: E402

tls_ca.use(local_commands.run)

NETNS = os.environ.get("SMC_LAB_NETNS", "smclab")
BRIDGE = os.environ.get("SMC_LAB_BRIDGE", "smcbr0")
PREFIX = os.environ.get("SMC_LAB_SUBNET_PREFIX", "10.77.0")
DCS = tuple(os.environ.get("SMC_LAB_DCS", "dc1,dc2,dc3").split(","))
TIMINGS = {"heartbeat_ms": 250, "election_ms": 2500, "quota_backend_bytes": 512 * 1024 * 1024}
EMPTY = "blank"
CUT = set()  # names of the members whose link to the bridge link() took down


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
    return etcd_member.client_urls(members())


def ca_dir():
    return os.path.join(cache(), "ca")


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
    # data-tls: a data directory of the members' earlier plain-HTTP cluster is never reused.
    return {"data": os.path.join(base, "data-tls"), "pid": base + ".pid", "log": base + ".log",
            "config": base + ".json", "ca": os.path.join(ca_dir(), "ca.crt"), "cert": base + ".crt",
            "key": base + ".key"}


def tls_args(m):
    p = paths(m)
    return ["--cacert", p["ca"], "--cert", p["cert"], "--key", p["key"]]


def certify(m):
    """The member's key and a certificate from the lab's CA (made once; again when names or CA changed)."""
    p = paths(m)
    os.makedirs(os.path.dirname(p["key"]), exist_ok=True)
    ca_pem, _created = tls_ca.ensure_ca(ca_dir(), "smc-lab-ca")
    if not os.path.exists(p["key"]):
        tls_ca.make_key(p["key"])
    sans = [m["address"], "127.0.0.1", "localhost"]
    current = open(p["cert"], encoding="ascii").read() if os.path.exists(p["cert"]) else None
    if tls_ca.certificate_problems(current, p["key"], ca_pem, m["name"], sans):
        with open(p["cert"], "w", encoding="ascii") as f:
            f.write(tls_ca.sign(ca_dir(), tls_ca.make_csr(p["key"], m["name"]), m["name"], sans))


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


def from_config(pid):
    """Whether the running member was started from its config file (a member of the earlier plain-HTTP lab,
    started with flags, is replaced)."""
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return b"--config-file" in f.read().split(b"\0")


def config_text(m):
    """The member's config file as role coordination's writer makes it now."""
    p = paths(m)
    listed = [{"name": x["name"], "address": x["address"], "dc": x["dc"]} for x in members()]
    config = etcd_member.member_config(m["name"], listed, {k: p[k] for k in ("ca", "cert", "key")}, p["data"],
                                       "new", "smc-lab", TIMINGS, metrics_port=0)
    return json.dumps(config, indent=1, sort_keys=True)


def running_config(p):
    try:
        with open(p["config"], encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def start(m):
    """Start the member from its config file; False when it already runs from that very file (a member of the
    earlier plain-HTTP lab, started with flags, or one whose file the writer changed since, is restarted)."""
    p = paths(m)
    text = config_text(m)
    pid = pid_of(m)
    if pid and from_config(pid) and running_config(p) == text:
        return False
    if pid:
        stop(m)
    os.makedirs(os.path.dirname(p["data"]), exist_ok=True)
    certify(m)
    with open(p["config"], "w", encoding="utf-8") as f:
        f.write(text)
    args = ["ip", "netns", "exec", m["netns"], "etcd", "--config-file", p["config"]]
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
    """etcdctl from a member's namespace (the controller's own namespace cannot reach the bridge): ``via``'s,
    else that of a running member still on the bridge (a cut one reaches no other)."""
    m = member(via) if via else next((x for x in members() if pid_of(x) and x["name"] not in CUT), members()[0])
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(["ip", "netns", "exec", m["netns"], "etcdctl", "--endpoints", ",".join(endpoints()),
                           "--command-timeout", "5s", "--dial-timeout", "2s"] + tls_args(m) + list(args),
                          capture_output=True, text=True, env=env, check=False)


def healthy(m):
    p = subprocess.run(["ip", "netns", "exec", m["netns"], "etcdctl", "--endpoints", etcd_member.client_urls([m])[0],
                        "--command-timeout", "3s", "endpoint", "health"] + tls_args(m), capture_output=True, text=True,
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
    (CUT.add if state == "down" else CUT.discard)(m["name"])


def save(snap):
    """Stop the members, copy their data dirs to snapshots/SNAP, start them again."""
    target = snapshot_dir(snap)
    running = [m for m in members() if stop(m)]
    try:
        shutil.rmtree(target, ignore_errors=True)
        for m in members():
            if os.path.isdir(paths(m)["data"]):
                shutil.copytree(paths(m)["data"], os.path.join(target, m["name"]))
    finally:
        for m in running:
            start(m)


def snapshot_dir(snap):
    return os.path.join(cache(), "snapshots-tls", snap)


def has(snap):
    """Whether snapshot SNAP can be restored ('blank', an empty cluster, always can)."""
    return snap == EMPTY or all(os.path.isdir(os.path.join(snapshot_dir(snap), m["name"])) for m in members())


def stop_all():
    for m in members():
        stop(m)


def restore(snap, wait=True):
    """Members stopped, data back from snapshots/SNAP (none saved of 'blank': an empty cluster), members
    started (their leases get a full TTL again)."""
    source = snapshot_dir(snap)
    if not has(snap):
        raise EtcdLabError("no etcd snapshot %r in %s" % (snap, source))
    empty = not os.path.isdir(os.path.join(source, members()[0]["name"]))
    for m in members():
        stop(m)
        shutil.rmtree(paths(m)["data"], ignore_errors=True)
        if not empty:
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
