"""Prune N snapshots on a lab host with smc-zfs-agent, then the same number with sanoid under the same policy;
print both times and the ratio (the target is >= 10x).

  python benchmarks/prune.py [--count 10000] [--datasets 100] [--host dc2-s1] [--sanoid-host HOST] [--pool tank]
                             [--sanoid-force-prune] [--sanoid-time-limit SECONDS] [--populate-only]

The hosts must have been converged by site.yml (the agent installed, zed made quiet by the zfs_pool role).
Both tools get the same population: D datasets under <pool>/smc-bench-<tool>, mounted like project datasets
(ZFS keeps a mounted dataset's structures in memory; on an unmounted one, every snapshot it lists or destroys
re-reads them: about 14 ms more per snapshot on a TCG guest, for both tools), each with S snapshots 15 minutes
apart from 2024-01-01T00:00Z, S chosen so that the policy (frequent 4, hourly 24, daily 7, weekly 4,
monthly 3) lets at least N of them go. The agent's snapshots are named smc_<UTC time>; sanoid's are
autosnap_<time>_<type>, where the type is daily at midnight, hourly on the hour and frequently otherwise,
so that sanoid's policy keeps the same newest 4 / 24 / 7. One `zfs snapshot` call per time step makes a
snapshot in every dataset at once (ZFS allows one snapshot per dataset per transaction).

The agent runs with --now just after the newest snapshot. sanoid ages snapshots by their creation time
(now, for all of them), so its age test runs with the clock moved 400 days ahead: a Perl override of time()
for sanoid's prune_snapshots only, nothing preloaded into the zfs processes it starts. sanoid runs as Debian's
sanoid-prune.service runs it (--prune-snapshots --verbose): before each destroy it checks that no zfs
send or receive uses the dataset. --sanoid-force-prune skips that check, sanoid's fastest mode. sanoid gets a
snapshot cache and run directory of its own, empty at the start.

sanoid destroys one snapshot per `zfs destroy` process: under TCG about 0.35 s each, so 10,000 take about an
hour. --sanoid-time-limit stops it after that many seconds; the comparison is then per pruned snapshot
(sanoid's cost is one process per snapshot, so it grows linearly), and the script also prints sanoid's
steady rate between its first and last destroy (its start-up listing left out, in its favour) against the
agent's time for everything, start-up included.
Making the populations takes about 13 minutes on the TCG lab (about 17 snapshots/s): --populate-only makes both
(in parallel when --sanoid-host is another host) and stops; a later run finds them complete and goes straight
to the timed prunes, which run one after the other, never at the same time. The test datasets are destroyed
at the end of a timed run.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))
import retention  # noqa: E402  pylint: disable=wrong-import-position

START = 1704067200  # 2024-01-01T00:00:00Z
STEP = 900
POLICY = {"frequent": 4, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 3}
SANOID_AHEAD = 400 * 86400
SANOID_CONF = """[template_bench]
frequent_period = 15
frequently = 4
hourly = 24
daily = 7
weekly = 4
monthly = 3
yearly = 0
autosnap = no
autoprune = yes

[{root}]
use_template = bench
recursive = yes
"""
# sanoid with time() moved ahead inside prune_snapshots only (its age test); the first argument is the offset in
# seconds, the rest are sanoid's. Its snapshot cache keeps the real clock: moved ahead, the cache would look
# expired after every dataset and sanoid would re-list every snapshot each time (a first run did that).
SANOID_AHEAD_PERL = ("BEGIN { my $ahead = shift @ARGV; *CORE::GLOBAL::time = sub () { "
                     "my $in = (caller(1))[3] // ''; CORE::time() + ($in eq 'main::prune_snapshots' ? $ahead : 0) } } "
                     "$| = 1; $0 = '/usr/sbin/sanoid'; do $0; die $@ if $@;")
# Around sanoid on its host: a cache and run directory of its own (a cache left by an earlier run would tell
# sanoid the snapshots were pruned already), a sampler of how many "INFO: pruning" lines its log has every 2 s
# (for its steady-state rate), and an optional time limit. Prints "exit <rc>" (124: timeout stopped sanoid),
# then the samples.
SANOID_RUN = """d=/tmp/smc-bench-sanoid; log=$d.log; : > $log
pruned() { echo "$(date +%%s.%%N) $(grep -c '^INFO: pruning .*@' $log)"; }
( while sleep 2; do pruned; done ) > $d.progress &
sampler=$!
rm -rf $d/cache $d/run; mkdir -p $d/cache $d/run
rc=0; %s perl -e %s %d --configdir $d --cache-dir $d/cache --run-dir $d/run %s >>$log 2>&1 || rc=$?
kill $sampler; pruned >> $d.progress
case $rc in 0|124) ;; *) tail -5 $log >&2; exit $rc;; esac
echo "exit $rc"; cat $d.progress
"""


def steady_rate(progress):
    """Seconds per snapshot between sanoid's first and last sampled destroy (its start-up listing left out)."""
    samples = [(float(t), int(n)) for t, n in (line.split() for line in progress.splitlines() if line.strip())]
    started = [s for s in samples if s[1] > 0]
    if len(started) < 2 or started[-1][1] == started[0][1]:
        return None
    return (started[-1][0] - started[0][0]) / (started[-1][1] - started[0][1])


def lab_host(name):
    with open(os.path.join(ROOT, "inventory", "lab", "hosts.yml"), encoding="utf-8") as f:
        inv = yaml.safe_load(f)
    allvars = inv["all"].get("vars", {})
    for dc in inv["all"]["children"]["storage"]["children"].values():
        if name in dc["hosts"]:
            hv = dict(allvars, **dc["hosts"][name])
            return ["ssh", "-p", str(hv["ansible_port"]), "-i", hv["ansible_ssh_private_key_file"],
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                    "%s@%s" % (hv.get("ansible_user", "root"), hv["ansible_host"])]
    sys.exit("--host: %s is not in inventory/lab/hosts.yml; run `make lab` first or name a lab host" % name)


def remote(ssh, script):
    p = subprocess.run(ssh + ["sh -s"], input=script, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.exit("remote step failed (rc=%d): %s\n%s" % (p.returncode, script[:300], p.stderr[-2000:]))
    return p.stdout


def sanoid_keeps(n):
    """How many of n sanoid-named snapshots sanoid keeps: the newest <policy count> of each type."""
    types = {}
    for i in range(n):
        kind = sanoid_name(START + i * STEP).rsplit("_", 1)[1]
        types[kind] = types.get(kind, 0) + 1
    limit = {"frequently": POLICY["frequent"], "hourly": POLICY["hourly"], "daily": POLICY["daily"]}
    return sum(min(k, limit[t]) for t, k in types.items())


def snapshots_per_dataset(per):
    """Smallest S such that both tools' policies destroy at least ``per`` of S snapshots; with the number
    each keeps (agent, sanoid)."""
    n = per
    while True:
        names = [retention.snapshot_name("smc", START + i * STEP) for i in range(n)]
        plan = retention.plan([(x, 0) for x in names], POLICY, START + n * STEP, prefix="smc")
        kept = (len(plan.keep), sanoid_keeps(n))
        if n - max(kept) >= per:
            return n, kept
        n += per - (n - max(kept))


def sanoid_name(epoch):
    t = time.gmtime(epoch)
    kind = "daily" if (t.tm_hour, t.tm_min) == (0, 0) else "hourly" if t.tm_min == 0 else "frequently"
    return time.strftime("autosnap_%Y-%m-%d_%H:%M:%S_", t) + kind


def populate(ssh, root, datasets, per, namer):
    """Make the population under root, unless a complete one is there already; returns seconds taken."""
    names = ["%s/d%03d" % (root, i) for i in range(datasets)]
    newest = namer(START + (per - 1) * STEP)
    have = remote(ssh, "zfs list -H -t snapshot -o name -r %s 2>/dev/null | sort > /tmp/smc-bench-have; "
                       "wc -l < /tmp/smc-bench-have; grep -c '@%s$' /tmp/smc-bench-have; "
                       "zfs list -H -o mounted -r %s 2>/dev/null | grep -c yes; true\n"
                  % (shlex.quote(root), newest, shlex.quote(root))).split()
    if have == [str(per * datasets), str(datasets), str(datasets + 1)]:
        return 0.0
    lines = ["set -e", "zfs destroy -r %s 2>/dev/null || true" % root,
             "zfs create -p %s" % root] + ["zfs create %s" % n for n in names]
    for j in range(per):
        snap = namer(START + j * STEP)
        lines.append("zfs snapshot " + " ".join("%s@%s" % (n, snap) for n in names))
    t0 = time.monotonic()
    remote(ssh, "\n".join(lines) + "\n")
    return time.monotonic() - t0


def count_snapshots(ssh, root):
    return int(remote(ssh, "zfs list -H -t snapshot -o name -r %s | wc -l\n" % shlex.quote(root)).strip())


def zed_state(ssh):
    out = remote(ssh, "ls /etc/zfs/zed.d/ 2>/dev/null\n").split()
    if "all-syslog.sh" in out or "history_event-zfs-list-cacher.sh" in out:
        return "packaged zedlets (zed forks per snapshot: converge the zfs_pool role first)"
    return "quiet (zfs_pool role)"


def run_timed(ssh, script):
    t0 = time.monotonic()
    out = remote(ssh, script)
    return time.monotonic() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--count", type=int, default=10000, help="snapshots each tool must prune (at least)")
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--host", default="dc2-s1", help="lab host of the agent's run (and sanoid's by default)")
    ap.add_argument("--sanoid-host", help="lab host of sanoid's run (same image and roles)")
    ap.add_argument("--pool", default="tank")
    ap.add_argument("--sanoid-force-prune", action="store_true", help="sanoid skips its send/receive check")
    ap.add_argument("--populate-only", action="store_true", help="make both populations and stop")
    ap.add_argument("--sanoid-time-limit", type=int, default=0,
                    help="stop sanoid after this many seconds (0: let it finish) and compare per pruned snapshot")
    args = ap.parse_args()
    if args.count < 1 or args.datasets < 1 or args.datasets > args.count:
        sys.exit("--count and --datasets must be >= 1, and --datasets <= --count")
    ssh = {"agent": lab_host(args.host), "sanoid": lab_host(args.sanoid_host or args.host)}
    root = {tool: "%s/smc-bench-%s" % (args.pool, tool) for tool in ssh}
    per, kept = snapshots_per_dataset(-(-args.count // args.datasets))
    total = per * args.datasets
    for tool in ssh:
        print("%s on %s, zed: %s" % (tool, args.sanoid_host or args.host if tool == "sanoid" else args.host,
                                     zed_state(ssh[tool])))
    print("population: %d datasets x %d snapshots = %d; the policy keeps %d (agent) / %d (sanoid)"
          % (args.datasets, per, total, kept[0] * args.datasets, kept[1] * args.datasets), flush=True)
    namers = {"agent": lambda e: retention.snapshot_name("smc", e), "sanoid": sanoid_name}
    with ThreadPoolExecutor(max_workers=2) as pool:
        same = ssh["agent"] == ssh["sanoid"]
        if same:
            took = {tool: populate(ssh[tool], root[tool], args.datasets, per, namers[tool]) for tool in ssh}
        else:
            futures = {tool: pool.submit(populate, ssh[tool], root[tool], args.datasets, per, namers[tool])
                       for tool in ssh}
            took = {tool: f.result() for tool, f in futures.items()}
    for tool in ssh:
        print("%s population %s" % (tool, "made in %.0f s" % took[tool] if took[tool] else "found complete"))
    if args.populate_only:
        return
    cfg = ('{"roots": ["%s"], "classes": {"default": %s}, "lock_dir": "/run/smc/bench-locks", '
           '"needed_dir": "/nonexistent"}' % (root["agent"], str(POLICY).replace("'", '"')))
    remote(ssh["agent"], "cat > /tmp/smc-bench-agent.json <<'EOF'\n%s\nEOF\n" % cfg)
    remote(ssh["sanoid"], "mkdir -p /tmp/smc-bench-sanoid && cat > /tmp/smc-bench-sanoid/sanoid.conf <<'EOF'\n%s\nEOF\n"
           "cp /usr/share/sanoid/sanoid.defaults.conf /tmp/smc-bench-sanoid/ 2>/dev/null || "
           "cp /etc/sanoid/sanoid.defaults.conf /tmp/smc-bench-sanoid/\n" % SANOID_CONF.format(root=root["sanoid"]))
    try:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + per * STEP))
        agent, out = run_timed(ssh["agent"], "SMC_AGENT_LIB=/usr/local/lib/smc-zfs-agent /usr/local/sbin/smc-zfs-agent "
                                             "--config /tmp/smc-bench-agent.json --now %s prune\n" % now)
        agent_left = count_snapshots(ssh["agent"], root["agent"])
        report = json.loads(out.strip().splitlines()[-1])
        print("agent : pruned %d in %.1f s (listing and planning %.1f s), %d left, %d kept by holds or marks, "
              "%d failed" % (total - agent_left, agent, report.get("plan_seconds", 0), agent_left,
                             len(report.get("kept", {})), len(report.get("failed", {}))), flush=True)
        flags = "--prune-snapshots --verbose" + (" --force-prune" if args.sanoid_force_prune else "")
        limit = "timeout %d" % args.sanoid_time_limit if args.sanoid_time_limit > 0 else ""
        sanoid, progress = run_timed(ssh["sanoid"], SANOID_RUN % (limit, shlex.quote(SANOID_AHEAD_PERL), SANOID_AHEAD,
                                                                  flags))
        exit_line, progress = progress.split("\n", 1)
        stopped = exit_line == "exit 124"  # timeout stopped sanoid at --sanoid-time-limit
        sanoid_left = count_snapshots(ssh["sanoid"], root["sanoid"])
        print("sanoid: pruned %d in %.1f s, %d left  (sanoid %s%s)" % (
            total - sanoid_left, sanoid, sanoid_left, flags,
            ", stopped at the %d s limit" % args.sanoid_time_limit if stopped else ""))
        if (agent_left, sanoid_left) != (kept[0] * args.datasets, kept[1] * args.datasets) and not stopped:
            print("warning: expected %d (agent) and %d (sanoid) left" % (kept[0] * args.datasets, kept[1] * args.datasets))
        if total - agent_left < args.count or (total - sanoid_left < args.count and not stopped):
            sys.exit("a tool pruned fewer than --count snapshots: the comparison is void")
        if stopped and total - sanoid_left < 100:
            sys.exit("sanoid pruned fewer than 100 snapshots: raise --sanoid-time-limit")
        per_agent = agent / (total - agent_left)
        per_sanoid = sanoid / (total - sanoid_left)
        steady = steady_rate(progress)
        print("per snapshot: agent %.1f ms (all included), sanoid %.1f ms (all included)%s" % (
            per_agent * 1000, per_sanoid * 1000,
            ", sanoid %.1f ms between its first and last destroy" % (steady * 1000) if steady else ""))
        print("ratio sanoid/agent: %.1fx (target >= 10x)" % (per_sanoid / per_agent))
        if steady:
            print("ratio with sanoid's start-up left out: %.1fx" % (steady / per_agent))
    finally:
        for tool in ssh:
            remote(ssh[tool], "zfs destroy -r %s 2>/dev/null; rm -rf /tmp/smc-bench-*; true\n" % root[tool])


if __name__ == "__main__":
    main()
