"""Replication benchmark: smc-zfs-agent against syncoid and a bare zfs send | ssh, on the lab, in one run.

    .venv/bin/python benchmarks/replication.py                  # 1000 datasets, 1 GiB, primary dc2-s2
    .venv/bin/python benchmarks/replication.py --datasets 300 --big-mib 256 --syncoid-sample 20 --reset

Needs the converged lab (`make lab`) and nobody else on it. Everything goes over the VPN addresses of the
primary's /etc/smc/plan.json. The agent runs from a bench config (/tmp/bench-agent.json: the host's own
/etc/smc/agent.json with its plan and records in /tmp) whose plan lists only the bench datasets, each with
--primary as primary and ring [primary, --targets]. The agent timers of the lab hosts are stopped while it
runs (and started again at the end). In order:

setup  --datasets datasets tank/projects/bench-NNNN on the primary (libzfs_core from one python3 when the guest
       has it, else `zfs create` eight at a time), a small file in each, one `smc-zfs-agent snapshot`, then one
       `replicate` that seeds both targets (full sends). Timed and printed; not a figure.
A      --changed of the datasets get a 64 KiB random file, `snapshot`, then one timed `replicate`. The peer:
       another (disjoint) --changed share changes, `snapshot` the same way, then syncoid (Debian's sanoid
       package, installed where missing) once per dataset and target, for all datasets, one after the other, as
       a cron of syncoid would: --no-sync-snap, root SSH with the primary's replication key (authorized on the
       targets for the run only). Each syncoid run starts an SSH master and asks about ten remote commands, so
       on the TCG lab it costs seconds: the progress line after an untimed warm-up run says how long the timed
       runs will take. --syncoid-sample K runs it on every changed dataset but only on K unchanged ones (to
       every target) and extrapolates the other unchanged ones (the table says so). Both tools must leave every
       target holding the primary's newest snapshot (by GUID) of each dataset they had to send.
B      tank/projects/bench-big with --big-mib MiB of random data, snapshot, a full send by the agent to the
       first target (a plan with that dataset alone), then the peer: `zfs send | ssh root@target zfs receive -u`
       into tank/bench-bare/big. One untimed `zfs send > /dev/null` first, so both read a warmed cache alike.
C      `replicate` with nothing changed (after an untimed cycle that records what syncoid sent): seconds and
       milliseconds per dataset, against syncoid's runs on unchanged datasets in A.

The bench datasets stay: `make lab-reset` (or --reset: tests/lab/snapshot.py restore converged) drops them. A
run refuses to start while bench datasets from an earlier run are on the primary or the targets.
"""
import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.smc.backend.plugins.module_utils import host_plan  # noqa: E402

INVENTORY = os.path.join(ROOT, "inventory", "lab", "hosts.yml")
PARENT = "tank/projects"
AGENT = "/usr/local/sbin/smc-zfs-agent"
REPL_KEY = "/etc/smc/repl/id_ed25519"
REPL_KNOWN_HOSTS = "/etc/smc/repl/known_hosts"
KEY_MARK = "smc-bench-replication"  # the comment of the temporary authorized key: removed by it
BARE = "tank/bench-bare"
BIG = "bench-big"
BENCH = {"config": "/tmp/bench-agent.json", "plan": "/tmp/bench-plan.json", "records": "/tmp/bench-records.json"}
BENCH_BIG = {"config": "/tmp/bench-big-agent.json", "plan": "/tmp/bench-big-plan.json",
             "records": "/tmp/bench-big-records.json"}
LIST = "/tmp/bench-datasets.txt"
TARGETS = {"A": 20.0, "B": 0.9}
SYNCOID_TOOLS = {"syncoid": "sanoid", "mbuffer": "mbuffer", "lzop": "lzop", "pv": "pv"}
# syncoid's flags for a cron-like run, used when its usage text lists them (Debian bookworm has 2.1.0).
SYNCOID_FLAGS = ("--no-sync-snap", "--no-privilege-elevation", "--quiet")
# Creates the datasets named on stdin with libzfs_core: 16 at once, so that the creations share transaction
# groups (each create waits for one); cffi lets the threads run while they wait.
LZC_CREATE = """
import concurrent.futures, sys, libzfs_core as lzc
names = [n.encode() for n in sys.stdin.read().split()]
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda n: lzc.lzc_exists(n) or lzc.lzc_create(n), names))
"""
CREATE = """set -e
if python3 -c 'import libzfs_core' 2>/dev/null && python3 -c %(lzc)s < %(list)s; then echo libzfs_core
else echo "zfs create (8 at a time)"; fi
zfs list -H -o name -d 1 %(parent)s | grep -vxF -f - %(list)s | xargs -r -n 1 -P 8 zfs create
zfs list -H -o name,mounted $(cat %(list)s) | awk -F'\\t' '$2 == "no" {print $1}' | xargs -r -n 1 -P 4 zfs mount
"""
# One syncoid run per "dataset address" line on stdin; prints "<runs> <failures>", the first failures on stderr.
SYNCOID_LOOP = """n=0; fail=0
while read -r ds addr; do
  n=$((n + 1))
  if ! out=$(%s "$ds" "root@$addr:$ds" 2>&1 </dev/null); then
    fail=$((fail + 1)); [ "$fail" -le 3 ] && printf 'syncoid %%s -> %%s failed: %%s\\n' "$ds" "$addr" "$out" >&2
  fi
done
echo "$n $fail"
"""


class Host:
    """root on one lab VM: every command over one SSH master of its own."""

    def __init__(self, name, address, port, key, control_dir):
        self.name = name
        self.base = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                     "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ControlMaster=auto",
                     "-o", "ControlPersist=600", "-o", "ControlPath=%s/%%C" % control_dir,
                     "-o", "ServerAliveInterval=15", "root@%s" % address]

    def run(self, script, stdin="", check=True):
        """Run a bash script (with stdin after it); returns (rc, stdout, stderr)."""
        p = subprocess.run(self.base + ["bash -c %s" % shlex.quote(script)], input=stdin, capture_output=True,
                           text=True, check=False)
        if check and p.returncode != 0:
            raise SystemExit("%s: rc=%d\n--- script\n%s\n--- stdout\n%s\n--- stderr\n%s" % (
                self.name, p.returncode, script[:1500], p.stdout[-2000:], p.stderr[-3000:]))
        return p.returncode, p.stdout, p.stderr

    def out(self, script, stdin=""):
        return self.run(script, stdin)[1]

    def timed(self, script, stdin=""):
        """(seconds, stdout) of a script that must succeed, timed here (SSH through the warm master included)."""
        start = time.monotonic()
        out = self.out(script, stdin)
        return time.monotonic() - start, out

    def put(self, path, text):
        self.out("cat > %s" % shlex.quote(path), stdin=text)

    def close(self):
        subprocess.run(self.base[:-1] + ["-O", "exit", self.base[-1]], capture_output=True, check=False)


class Progress:
    def __init__(self):
        self.start = time.monotonic()

    def say(self, message):
        print("[%7.1f s] %s" % (time.monotonic() - self.start, message), flush=True)


def lab(control_dir):
    """{name: Host} of the lab's storage hosts, from inventory/lab/hosts.yml."""
    if not os.path.exists(INVENTORY):
        raise SystemExit("%s does not exist: the lab is not up (make lab)" % INVENTORY)
    with open(INVENTORY, encoding="utf-8") as f:
        inv = yaml.safe_load(f)["all"]
    common = inv.get("vars") or {}
    hosts = {}
    for dc in inv["children"]["storage"]["children"].values():
        for name, hv in (dc.get("hosts") or {}).items():
            hv = dict(common, **(hv or {}))
            hosts[name] = Host(name, hv["ansible_host"], hv.get("ansible_port", 22), hv["ansible_ssh_private_key_file"],
                               control_dir)
    return hosts


def dataset(name):
    return "%s/%s" % (PARENT, name)


def agent(host, files, command):
    """(seconds, JSON report) of one smc-zfs-agent command with a bench config; fails on any failure."""
    start = time.monotonic()
    rc, out, err = host.run("%s --config %s %s" % (AGENT, files["config"], command), check=False)
    took = time.monotonic() - start
    lines = out.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if rc != 0 or report.get("replication", {}).get("failed"):
        raise SystemExit("%s: smc-zfs-agent %s rc=%d\n%s\n%s" % (host.name, command, rc, out[-3000:], err[-3000:]))
    return took, report


def write_bench_config(host, files, plan):
    """The host's agent config with the bench plan and records (and a metrics file of its own in /tmp)."""
    cfg = json.loads(host.out("cat /etc/smc/agent.json"))
    repl = dict(cfg.get("replication") or {}, enabled=True, plan=files["plan"], records=files["records"],
                metrics_textfile="/tmp/bench-replication.prom")
    cfg["replication"] = repl
    text = host_plan.render_plan(plan)
    host_plan.parse_plan(text, files["plan"])  # what the agent will accept
    host.put(files["plan"], text)
    host.put(files["config"], json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    host.out("rm -f %s" % files["records"])


def bench_plan(base, primary, targets, pids):
    """A plan (format 1) for the primary: base's hosts and addresses, pids with ring [primary] + targets."""
    index = dict((h, i) for i, h in enumerate(base["hosts"]))
    entry = {"ring": [index[h] for h in [primary] + targets], "primary": index[primary], "epoch": 1}
    return {"format": host_plan.FORMAT, "host": primary, "hosts": base["hosts"], "addresses": base["addresses"],
            "projects": dict((pid, dict(entry)) for pid in pids)}


def lines(items):
    return "".join(item + "\n" for item in items)


def snapshots(host, datasets):
    """{dataset: [(createtxg, guid)]} of the datasets' snapshots on host (absent datasets left out)."""
    out = host.out("xargs -r zfs list -H -p -t snapshot -o name,guid,createtxg -d 1 2>/dev/null; true",
                   stdin=lines(datasets))
    found = {}
    for line in out.splitlines():
        name, guid, txg = line.split("\t")
        found.setdefault(name.split("@", 1)[0], []).append((int(txg), guid))
    return found


def check_caught_up(primary, copies, datasets, label):
    """Every (host, copy dataset) in copies holds the primary's newest snapshot of its dataset, by GUID.
    ``copies``: [(host, {dataset on the primary: dataset on that host})]."""
    newest = dict((ds, max(snaps)[1]) for ds, snaps in snapshots(primary, datasets).items())
    for host, names in copies:
        have = snapshots(host, [names[ds] for ds in datasets])
        lacking = [ds for ds in datasets if newest.get(ds) not in [g for _t, g in have.get(names[ds], [])]]
        if lacking:
            raise SystemExit("%s: %s lacks the primary's newest snapshot (by GUID) of %d of %d datasets, e.g. %s: "
                             "the comparison is void" % (label, host.name, len(lacking), len(datasets), lacking[0]))


def same_names(datasets):
    return dict((ds, ds) for ds in datasets)


def write_files(host, datasets, name, size):
    """A file ``name`` of ``size`` random bytes (0: a one-line text) in each dataset's mountpoint."""
    fill = 'head -c %d /dev/urandom > "$mp/%s"' % (size, name) if size else 'echo bench > "$mp/%s"' % name
    host.out("set -e -o pipefail; xargs zfs list -H -o mountpoint | while read -r mp; do %s; done" % fill,
             stdin=lines(datasets))


def refuse_leftovers(hosts, datasets):
    for host in hosts:
        found = host.out("xargs zfs list -H -o name 2>/dev/null; true", stdin=lines(datasets + [BARE])).split()
        if found:
            raise SystemExit("%s still has %s (and %d more) from an earlier run: make lab-reset (or --reset) first"
                             % (host.name, found[0], len(found) - 1))


def stop_timers(hosts):
    """Stop the agent timer on every host (and wait for a running cycle); the names of those that were on."""
    active = []
    for host in hosts:
        rc = host.run("systemctl is-active -q smc-zfs-agent.timer", check=False)[0]
        if rc == 0:
            active.append(host.name)
        host.out("systemctl stop smc-zfs-agent.timer; while systemctl is-active -q smc-zfs-agent.service; "
                 "do sleep 1; done")
    return active


class Syncoid:
    """syncoid on the primary, root SSH to the targets with the primary's replication key for the run only."""

    def __init__(self, primary, targets, addresses):
        self.primary, self.targets, self.addresses = primary, targets, addresses
        self.options, self.flags, self.command = [], [], None

    def install(self):
        """The packages of the missing tools on the primary and targets (apt-get update only if needed)."""
        for host in [self.primary] + self.targets:
            missing = [pkg for tool, pkg in sorted(SYNCOID_TOOLS.items())
                       if host.run("command -v %s" % tool, check=False)[0] != 0]
            if missing:
                pkgs = " ".join(missing)
                rc, _out, err = host.run("export DEBIAN_FRONTEND=noninteractive; apt-get install -y %s || "
                                         "{ apt-get update && apt-get install -y %s; }" % (pkgs, pkgs), check=False)
                if rc != 0 and host.run("command -v syncoid", check=False)[0] != 0:
                    raise SystemExit("%s: cannot install %s: %s" % (host.name, pkgs, err.strip()[-800:]))
                if rc != 0:
                    print("  warning: %s: apt-get install %s failed; syncoid goes on without them" % (host.name, pkgs))

    def authorize(self):
        pub = self.primary.out("cat %s.pub" % REPL_KEY).split()
        line = "%s %s %s" % (pub[0], pub[1], KEY_MARK)
        for host in self.targets:
            host.out("install -d -m 0700 /root/.ssh; f=/root/.ssh/authorized_keys; "
                     "grep -qxF %s $f 2>/dev/null || echo %s >> $f" % (shlex.quote(line), shlex.quote(line)))

    def deauthorize(self):
        for host in self.targets:
            host.run("sed -i '/ %s$/d' /root/.ssh/authorized_keys" % KEY_MARK, check=False)

    def ssh_options(self):
        """-o options for root SSH from the primary: the replication known_hosts when it knows every target."""
        known = all(self.primary.run("ssh-keygen -F %s -f %s" % (self.addresses[t.name], REPL_KNOWN_HOSTS),
                                     check=False)[0] == 0 for t in self.targets)
        hostkeys = (["UserKnownHostsFile=%s" % REPL_KNOWN_HOSTS, "StrictHostKeyChecking=yes"] if known
                    else ["UserKnownHostsFile=/dev/null", "StrictHostKeyChecking=no"])
        return ["BatchMode=yes", "IdentitiesOnly=yes", "LogLevel=ERROR"] + hostkeys

    def ssh(self, target):
        """The primary's ssh command line to root on a target (the bare send's; syncoid gets the same options)."""
        options = [word for o in self.options for word in ("-o", o)]
        return " ".join(["ssh", "-i", REPL_KEY] + options + ["root@%s" % self.addresses[target.name]])

    def prepare(self):
        """Build syncoid's command from its usage text on the guest; check root SSH to every target."""
        usage = self.primary.out("syncoid --help 2>&1; true")
        version = self.primary.out("syncoid --version 2>&1 | head -n 1; true").strip()
        for needed in ("--sshkey", "--sshoption", "--no-sync-snap"):
            if needed not in usage:
                raise SystemExit("syncoid (%s) has no %s; its usage:\n%s" % (version, needed, usage[:3000]))
        self.options = self.ssh_options()
        self.flags = [f for f in SYNCOID_FLAGS if f in usage]
        self.command = (["syncoid"] + self.flags + ["--sshkey=%s" % REPL_KEY]
                        + ["--sshoption=%s" % o for o in self.options])
        for target in self.targets:
            rc, _out, err = self.primary.run("%s true" % self.ssh(target), check=False)
            if rc != 0:
                raise SystemExit("root SSH from %s to %s failed: %s" % (self.primary.name, target.name, err.strip()))
        return version

    def run(self, datasets):
        """(seconds, runs) of syncoid once per dataset per target, sequentially; fails when any run failed."""
        pairs = "".join("%s %s\n" % (dataset(name), self.addresses[t.name]) for name in datasets
                        for t in self.targets)
        start = time.monotonic()
        _rc, out, err = self.primary.run(SYNCOID_LOOP % shlex.join(self.command), stdin=pairs)
        took = time.monotonic() - start
        runs, failed = (int(x) for x in out.split()[-2:])
        if failed:
            raise SystemExit("syncoid: %d of %d runs failed; the first:\n%s" % (failed, runs, err.strip()[-3000:]))
        return took, runs


def setup(p, primary, targets, names, base):
    """Datasets, a file each, one snapshot, the seed to both targets: the setup's seconds by step."""
    took = {}
    primary.put(LIST, lines(dataset(n) for n in names))
    p.say("setup: creating %d datasets on %s" % (len(names), primary.name))
    took["create"], method = primary.timed(CREATE % {"lzc": shlex.quote(LZC_CREATE), "list": LIST, "parent": PARENT})
    start = time.monotonic()
    write_files(primary, [dataset(n) for n in names], "seed", 0)
    took["files"] = time.monotonic() - start
    p.say("setup: created and mounted in %.1f s (%s), a file each in %.1f s"
          % (took["create"], method.strip().splitlines()[0], took["files"]))
    write_bench_config(primary, BENCH, bench_plan(base, primary.name, [t.name for t in targets], names))
    took["snapshot"] = agent(primary, BENCH, "snapshot")[0]
    p.say("setup: snapshot in %.1f s; seeding %s (full sends)" % (took["snapshot"], ", ".join(t.name for t in targets)))
    took["seed"], report = agent(primary, BENCH, "replicate")
    sent = sum(peer["sent"] for peer in report["replication"]["peers"].values())
    p.say("setup: seed of %d copies in %.1f s (%.0f ms a copy)"
          % (sent, took["seed"], 1000 * took["seed"] / max(sent, 1)))
    check_caught_up(primary, [(t, same_names([dataset(n) for n in names])) for t in targets],
                    [dataset(n) for n in names], "seed")
    return took


def change(p, primary, names, label, tag):
    """A 64 KiB random file in each dataset, then the agent's snapshot (of exactly those)."""
    datasets = [dataset(n) for n in names]
    write_files(primary, datasets, "change-" + tag, 65536)
    took, report = agent(primary, BENCH, "snapshot")
    p.say("%s: %d datasets changed, snapshot of %d in %.1f s" % (label, len(names), report["snapshotted"], took))
    return datasets


def figure_a(p, args, primary, targets, syncoid, names):
    rng = random.Random(args.seed)
    count = max(1, int(round(len(names) * args.changed)))
    ours_set = sorted(rng.sample(names, count))
    rest = sorted(set(names) - set(ours_set))
    peer_set = sorted(rng.sample(rest, count))
    copies = [(t, same_names([dataset(n) for n in names])) for t in targets]

    changed = change(p, primary, ours_set, "A ours", "ours")
    ours, report = agent(primary, BENCH, "replicate")
    kinds = dict((target, peer["kinds"]) for target, peer in sorted(report["replication"]["peers"].items()))
    check_caught_up(primary, copies, changed, "A ours")
    p.say("A ours: one replicate cycle in %.2f s (agent's own count %.2f s; per target %s)"
          % (ours, report["seconds"], kinds))

    changed = change(p, primary, peer_set, "A syncoid", "syncoid")
    unchanged = sorted(set(names) - set(peer_set))
    sample = sorted(rng.sample(unchanged, min(args.syncoid_sample, len(unchanged)))) if args.syncoid_sample \
        else unchanged
    warm, warm_runs = syncoid.run(sample[:1])  # fails fast on a broken setup, and warms the tool's files
    todo = (len(peer_set) + len(sample)) * len(targets)
    p.say("A syncoid: syncoid %s; untimed warm-up on one unchanged dataset: %.1f s a run; %d runs to time, "
          "about %.0f min" % (" ".join(syncoid.flags), warm / warm_runs, todo, todo * warm / warm_runs / 60))
    busy, busy_runs = syncoid.run(peer_set)
    check_caught_up(primary, copies, changed, "A syncoid")
    idle, idle_runs = syncoid.run(sample)
    idle_all = idle * len(unchanged) / float(len(sample))
    p.say("A syncoid: %d runs on changed datasets %.1f s (%.2f s a run), %d on unchanged %.1f s (%.2f s a run)%s"
          % (busy_runs, busy, busy / busy_runs, idle_runs, idle, idle / idle_runs,
             "; %d unchanged datasets extrapolated from %d: %.0f s" % (len(unchanged), len(sample), idle_all)
             if len(sample) < len(unchanged) else ""))
    return {"changed": count, "ours_s": ours, "ours_agent_s": report["seconds"], "syncoid_s": busy + idle_all,
            "syncoid_changed_s": busy, "syncoid_unchanged_s": idle_all, "syncoid_runs_timed": busy_runs + idle_runs,
            "syncoid_unchanged_sampled": len(sample), "syncoid_unchanged_per_run_s": idle / idle_runs,
            "extrapolated": len(sample) < len(unchanged), "ratio": (busy + idle_all) / ours}


def room(host, need_mib):
    free = int(host.out("zpool list -H -p -o free tank").strip()) / 1048576.0
    if free < need_mib:
        raise SystemExit("%s: tank has %.0f MiB free, figure B needs about %.0f: lower --big-mib"
                         % (host.name, free, need_mib))


def figure_b(p, args, primary, target, syncoid, base):
    room(primary, args.big_mib * 1.1 + 64)
    room(target, args.big_mib * 2.2 + 64)
    big = dataset(BIG)
    start = time.monotonic()
    primary.out("zfs create %s" % big)
    write_files(primary, [big], "data", args.big_mib * 1048576)
    primary.out("zpool sync tank")
    took = time.monotonic() - start
    write_bench_config(primary, BENCH_BIG, bench_plan(base, primary.name, [target.name], [BIG]))
    agent(primary, BENCH_BIG, "snapshot")
    snap = primary.out("zfs list -H -t snapshot -o name -s createtxg -d 1 %s | tail -n 1" % big).strip()
    local, _out = primary.timed("zfs send %s > /dev/null" % snap)
    p.say("B: %s with %d MiB of random data written in %.1f s; untimed local send to /dev/null %.1f s (%.0f MiB/s)"
          % (big, args.big_mib, took, local, args.big_mib / local))
    ours, report = agent(primary, BENCH_BIG, "replicate")
    kinds = report["replication"]["peers"][target.name]["kinds"]
    p.say("B ours: full send to %s in %.1f s (%.1f MiB/s; %s)" % (target.name, ours, args.big_mib / ours, kinds))
    target.out("zfs list -H -o name %s >/dev/null 2>&1 || zfs create -o canmount=off %s" % (BARE, BARE))
    bare, _out = primary.timed("set -o pipefail; zfs send %s | %s zfs receive -u %s/big"
                               % (snap, syncoid.ssh(target), BARE))
    p.say("B bare: zfs send | ssh | zfs receive -u in %.1f s (%.1f MiB/s)" % (bare, args.big_mib / bare))
    check_caught_up(primary, [(target, {big: big}), (target, {big: BARE + "/big"})], [big], "B")
    return {"mib": args.big_mib, "ours_s": ours, "bare_s": bare, "ours_mib_s": args.big_mib / ours,
            "bare_mib_s": args.big_mib / bare, "local_send_mib_s": args.big_mib / local, "ratio": bare / ours}


def figure_c(p, primary, names, targets, a):
    catch_up, _report = agent(primary, BENCH, "replicate")
    p.say("C: untimed cycle that records syncoid's sends: %.1f s" % catch_up)
    took, report = agent(primary, BENCH, "replicate")
    idle = report["replication"].get("idle")
    if idle != len(names) * len(targets) or report["replication"].get("peers"):
        print("  warning: expected %d idle pairs and no session, got idle=%s peers=%s"
              % (len(names) * len(targets), idle, sorted(report["replication"].get("peers") or {})))
    peer = a["syncoid_unchanged_per_run_s"] * len(targets) * len(names)
    p.say("C ours: cycle with nothing changed in %.2f s (%.2f ms a dataset; agent's own count %.2f s)"
          % (took, 1000 * took / len(names), report["seconds"]))
    return {"ours_s": took, "ours_ms_per_dataset": 1000 * took / len(names), "syncoid_s": peer,
            "syncoid_ms_per_dataset": 1000 * peer / len(names), "ratio": peer / took}


def table(args, targets, got):
    a, b, c = got.get("A"), got.get("B"), got.get("C")
    n, t = args.datasets, len(targets)
    rows = []
    if a:
        rows.append(("A: cycle, %d of %d datasets changed, %d targets" % (a["changed"], n, t), "%.1f s" % a["ours_s"],
                     "syncoid %.0f s%s" % (a["syncoid_s"], " (extrapolated)" if a["extrapolated"] else ""),
                     a["ratio"], TARGETS["A"]))
    if b:
        rows.append(("B: full send of %d MiB to 1 target" % b["mib"], "%.1f MiB/s" % b["ours_mib_s"],
                     "bare send+receive %.1f MiB/s" % b["bare_mib_s"], b["ratio"], TARGETS["B"]))
    if c:
        rows.append(("C: cycle, nothing changed, %d datasets" % n,
                     "%.2f s (%.1f ms/dataset)" % (c["ours_s"], c["ours_ms_per_dataset"]),
                     "syncoid %.0f s (%.0f ms/dataset)" % (c["syncoid_s"], c["syncoid_ms_per_dataset"]),
                     c["ratio"], None))
    if not rows:
        print("\nno figure measured")
        return
    print("\n| measure | ours | peer | ratio | target |")
    print("|---|---|---|---|---|")
    for name, ours, peer, ratio, target in rows:
        goal = "-" if target is None else ">= %gx %s" % (target, "met" if ratio >= target else "MISSED")
        print("| %s | %s | %s | %.2fx | %s |" % (name, ours, peer, ratio, goal))
    print("ratios: A and C peer time / ours, B ours rate / peer rate (same lab, same run)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--primary", default="dc2-s2")
    parser.add_argument("--targets", default="dc1-s1,dc3-s1", help="the replicas, comma-separated (B uses the first)")
    parser.add_argument("--changed", type=float, default=0.05, help="share of the datasets changed in A, per tool")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of figure B's dataset")
    parser.add_argument("--syncoid-sample", type=int, default=0, metavar="K",
                        help="time syncoid on K unchanged datasets per target and extrapolate (0: all of them)")
    parser.add_argument("--seed", type=int, default=1, help="which datasets change (random.Random seed)")
    parser.add_argument("--json", metavar="FILE", help="save the figures")
    parser.add_argument("--reset", action="store_true",
                        help="restore the lab's 'converged' snapshot at the end (drops the bench datasets)")
    args = parser.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    if not 1 <= args.datasets <= 9999 or not 0 < args.changed <= 0.5 or args.big_mib < 1 or args.syncoid_sample < 0:
        parser.error("--datasets 1..9999, --changed in (0, 0.5], --big-mib >= 1, --syncoid-sample >= 0")
    if args.primary in args.targets or not args.targets:
        parser.error("--targets must name hosts other than --primary")
    return args


def main(argv=None):
    args = parse_args(argv)
    control = tempfile.mkdtemp(prefix="smc-bench-ssh-")
    hosts = lab(control)
    unknown = [h for h in [args.primary] + args.targets if h not in hosts]
    if unknown:
        raise SystemExit("not lab hosts: %s (the lab has %s)" % (", ".join(unknown), ", ".join(sorted(hosts))))
    primary, targets = hosts[args.primary], [hosts[t] for t in args.targets]
    names = ["bench-%04d" % i for i in range(1, args.datasets + 1)]
    p = Progress()
    base = json.loads(primary.out("cat /etc/smc/plan.json"))
    addresses = dict(zip(base["hosts"], base["addresses"]))
    if set(args.targets + [args.primary]) - set(addresses):
        raise SystemExit("%s's plan knows only %s" % (args.primary, ", ".join(sorted(addresses))))
    print("replication benchmark: %d datasets on %s, targets %s over the VPN (%s), %.0f%% changed per tool, %d MiB"
          % (args.datasets, args.primary, ", ".join(args.targets), ", ".join(addresses[t] for t in args.targets),
             100 * args.changed, args.big_mib), flush=True)
    refuse_leftovers([primary] + targets, [dataset(n) for n in names + [BIG]])
    syncoid = Syncoid(primary, targets, addresses)
    got, active = {"datasets": args.datasets, "primary": args.primary, "targets": args.targets}, []
    try:
        active = stop_timers(hosts.values())
        p.say("agent timers stopped on %d hosts (on before: %s)" % (len(hosts), ", ".join(active) or "none"))
        syncoid.install()
        syncoid.authorize()
        got["syncoid_version"] = syncoid.prepare()
        p.say("%s ready on %s; root SSH to %s works" % (got["syncoid_version"], args.primary, ", ".join(args.targets)))
        got["setup_s"] = setup(p, primary, targets, names, base)
        got["A"] = figure_a(p, args, primary, targets, syncoid, names)
        got["B"] = figure_b(p, args, primary, targets[0], syncoid, base)
        got["C"] = figure_c(p, primary, names, targets, got["A"])
    finally:
        syncoid.deauthorize()
        for name in active:
            hosts[name].run("systemctl start smc-zfs-agent.timer", check=False)
        p.say("temporary root key removed from %s; agent timers started again on %s"
              % (", ".join(args.targets), ", ".join(active) or "none"))
        for host in hosts.values():
            host.close()
        if args.reset:
            p.say("restoring the lab's 'converged' snapshot")
            subprocess.run([sys.executable, os.path.join("tests", "lab", "snapshot.py"), "restore", "converged"],
                           cwd=ROOT, check=False)
        else:
            p.say("the bench datasets stay on the lab: make lab-reset drops them")
        report(args, targets, got)  # what was measured, also when a step failed
    return 0


def report(args, targets, got):
    table(args, targets, got)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(got, f, indent=1, sort_keys=True)
        print("figures saved to %s" % args.json)


if __name__ == "__main__":
    sys.exit(main())
