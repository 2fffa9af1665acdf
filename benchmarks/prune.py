"""Prune N snapshots on a lab host with smc-zfs-agent, then the same with sanoid (equivalent policy); print
both times and the ratio. Runs over ssh using inventory/lab/hosts.yml (host: --host, default dc1-s1).

Snapshots are spread over D datasets (N/D each, 15 minutes apart, old enough that the policy destroys
almost all); each `zfs snapshot` call creates one snapshot in every dataset at once (ZFS allows only one
snapshot per dataset per call). Test datasets live under <pool>/smc-bench and are destroyed at the end.

  python benchmarks/prune.py [--count 10000] [--datasets 100] [--host dc1-s1] [--pool tank]
"""
import argparse
import os
import shlex
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = {"frequent": 4, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 3}
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
process_children_only = yes
"""


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
    sys.exit("host %s is not in inventory/lab/hosts.yml" % name)


def remote(ssh, script, data=None):
    p = subprocess.run(ssh + ["sh -s"], input=script if data is None else data, capture_output=True, text=True,
                       check=False)
    if p.returncode != 0:
        sys.exit("remote step failed (rc=%d): %s\n%s" % (p.returncode, script[:300], p.stderr[-2000:]))
    return p.stdout


def populate(ssh, root, count, datasets):
    per = count // datasets
    names = ["%s/d%03d" % (root, i) for i in range(datasets)]
    start = 1704067200  # 2024-01-01T00:00:00Z
    lines = ["set -e", "zfs create -p %s" % root] + ["zfs create %s" % n for n in names]
    for j in range(per):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + j * 900))
        lines.append("zfs snapshot " + " ".join("%s@smc_%s" % (n, stamp) for n in names))
    remote(ssh, "\n".join(lines) + "\n")
    return per * datasets


def rename_for_sanoid(ssh, root):
    # sanoid only prunes its own names (autosnap_<local time>_<period>): make the same set under its names.
    script = r"""set -e
zfs list -H -t snapshot -o name -r %s | while IFS=@ read ds snap; do
  t=${snap#smc_}; d=${t%%T*}; h=${t#*T}; h=${h%%Z}
  echo "$ds@$snap autosnap_${d}_${h}_frequently"
done > /tmp/smc-bench-renames
while read old new; do zfs rename "$old" "$new"; done < /tmp/smc-bench-renames
""" % shlex.quote(root)
    remote(ssh, script)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--host", default="dc1-s1")
    ap.add_argument("--pool", default="tank")
    args = ap.parse_args()
    ssh = lab_host(args.host)
    root = "%s/smc-bench" % args.pool
    remote(ssh, "zfs destroy -r %s 2>/dev/null; true\n" % root)
    cfg = '{"roots": ["%s"], "classes": {"default": %s}, "lock_dir": "/run/smc/bench-locks", "needed_dir": "/nonexistent"}' % (
        root, str(POLICY).replace("'", '"'))
    remote(ssh, "cat > /tmp/smc-bench-agent.json <<'EOF'\n%s\nEOF\n" % cfg)
    try:
        n = populate(ssh, root, args.count, args.datasets)
        t0 = time.monotonic()
        out = remote(ssh, "SMC_AGENT_LIB=/usr/local/lib/smc-zfs-agent /usr/local/sbin/smc-zfs-agent "
                          "--config /tmp/smc-bench-agent.json --now 2024-06-01T00:00:00Z prune\n")
        agent = time.monotonic() - t0
        print("agent : %d snapshots, %.1f s  %s" % (n, agent, out.strip().splitlines()[-1]))
        remote(ssh, "zfs destroy -r %s\n" % root)
        populate(ssh, root, args.count, args.datasets)
        rename_for_sanoid(ssh, root)
        remote(ssh, "mkdir -p /tmp/smc-bench-sanoid && cat > /tmp/smc-bench-sanoid/sanoid.conf <<'EOF'\n%s\nEOF\n"
               "cp /usr/share/sanoid/sanoid.defaults.conf /tmp/smc-bench-sanoid/ 2>/dev/null || "
               "cp /etc/sanoid/sanoid.defaults.conf /tmp/smc-bench-sanoid/\n" % SANOID_CONF.format(root=root))
        t0 = time.monotonic()
        remote(ssh, "TZ=UTC faketime -f '@2024-06-01 00:00:00' sanoid --configdir /tmp/smc-bench-sanoid "
                    "--prune-snapshots --force-prune --quiet\n")
        sanoid = time.monotonic() - t0
        left = remote(ssh, "zfs list -H -t snapshot -o name -r %s | wc -l\n" % root).strip()
        print("sanoid: %d snapshots, %.1f s  (%s left)" % (n, sanoid, left))
        print("ratio sanoid/agent: %.1fx" % (sanoid / agent if agent else float("inf")))
    finally:
        remote(ssh, "zfs destroy -r %s 2>/dev/null; rm -rf /tmp/smc-bench-*; true\n" % root)


if __name__ == "__main__":
    main()
