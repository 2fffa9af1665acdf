# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage agent's host metrics: pools, snapshots, fencing and lease, placement drift, project limits.

Installed next to smc-zfs-agent with metrics_text, retention, host_plan and smc_ha (standard library only,
Python 3.11+). The small ``read_*`` and ``*_inputs`` functions read host state and return the input of
metrics_text's builders; ``write_host_metrics`` writes their families to ``smc-host.prom`` in the directory of
the replication textfile (``replication.metrics_textfile``), atomically (metrics_text.write_textfile). The
agent calls it after every ``snapshot`` and ``run`` (what the timer runs) and for ``smc-zfs-agent metrics``.
Cost per call: one ``zpool list``, one ``zfs list`` of the roots' children, one listing of their snapshot
names (the agent's read-only channel program with destroy_method ``program``), two small JSON files and two
cgroup files per project slice.

Each probe stands alone: one that fails (a command error, an unreadable file, input a builder refuses) leaves
its families out, is printed on stderr and is 1 in ``smc_metrics_probe_failed{probe}`` (0 for the others);
the rest is written all the same. Nothing to read (no plan, no limits config) is not a failure: the families
are left out.

What the values mean:

- pools: every imported pool, as ``zpool list -Hp`` shows it; a size zpool shows as ``-`` is left out.
- snapshots: the datasets the agent snapshots (children of the roots, not replicas, not smc:snapshot=off) per
  retention class (a class not in the config counts as the default class, as for pruning). Count and newest
  come from the names of our snapshots (``<prefix>_<UTC time>``), no property of a snapshot is read. A
  dataset unchanged since its newest snapshot (``written`` 0: the agent skips it by design) counts as
  snapshotted now, so the age is how long a dataset's data has gone without a snapshot and an idle project
  never looks stale. A class's period is its finest kept period: frequent_minutes when ``frequent`` > 0,
  else an hour, a day, a week, 31 days or 366 days (the first count above 0).
- fencing: ``smc_host_fenced`` is 1 when a copy here carries smc:fenced=lease (the HA loop's mark; a
  switchover's smc:fenced=switchover is planned and not counted). ``smc_lease_held`` is 1 when HA is on and
  the HA loop's state file (ha.state, /run/smc/ha/state.json) is fresh (smc_ha.read_state: confirmed within
  fence_after) and names a lease; absent, stale or unreadable is 0 (the loop is down, fenced, or etcd does
  not answer). With HA off the family is left out: there is no lease to hold, and SmcLeaseLost must not fire
  on such hosts. ``smc_project_epoch_max`` is the highest smc:epoch of the copies here. No lease expiry is
  exported: the state file records when etcd last confirmed the state, not when the lease was renewed.
- placement: the host plan (``replication.plan``) against the children of the first root: missing = projects
  of the plan whose dataset ``<root>/<id>`` is absent, unexpected = children the plan does not list
  (quarantined copies live elsewhere). No plan: left out.
- limits: per class of /etc/smc/project-limits.json, the sum over its projects' slices of ``oom_kill`` in
  memory.events and ``max`` in pids.events. A slice that does not exist here counts 0; the kernel's counts
  start again when a slice is recreated (after a failover), which Prometheus' increase() takes as a reset.
- VPN peers: not here. tinc runs role tinc's host-up/host-down on every change of a peer, and they write
  smc-vpn-<network>.prom into the same directory at once (tinc 1.0 has no state another process can read).
"""

import json
import os
import re
import subprocess
import sys

import host_plan
import metrics_text
import retention

TEXTFILE = "smc-host.prom"
FENCED_PROP = "smc:fenced"
EPOCH_PROP = "smc:epoch"
LIMITS_CONFIG = "/etc/smc/project-limits.json"  # role project_limits (smc_replication.LIMITS_CONFIG)
CGROUP_ROOT = "/sys/fs/cgroup"
PROBES = ("pools", "datasets", "snapshots", "fencing", "placement", "limits")
COARSER_PERIODS = (("hourly", 3600), ("daily", 86400), ("weekly", 7 * 86400), ("monthly", 31 * 86400),
                   ("yearly", 366 * 86400))
SLICE_RE = re.compile(r"[a-z0-9_]+-[a-z0-9_]+\.slice\Z")
PARENT_RE = re.compile(r"[a-z0-9_]+\.slice\Z")


class ProbeError(Exception):
    """A probe could not read what it needs; the message says what."""


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ProbeError("%s: %s" % (argv[0], exc)) from None


def _fields(line, count, what):
    fields = line.split("\t")
    if len(fields) != count:
        raise ProbeError("%s: a line of %d fields, expected %d: %r" % (what, len(fields), count, line[:200]))
    return fields


def _int(text):
    return int(text) if text.isdigit() else None


# ----------------------------------------------------------------------------------------------- reading
def read_pools():
    """{pool: {health, size_bytes, allocated_bytes, free_bytes}} of every imported pool (pool_metrics' input)."""
    p = _run(["zpool", "list", "-H", "-p", "-o", "name,health,size,alloc,free"])
    if p.returncode != 0:
        raise ProbeError("zpool list failed (rc=%d): %s" % (p.returncode, p.stderr.strip()[:500]))
    out = {}
    for line in p.stdout.splitlines():
        if line.strip():
            name, health, size, alloc, free = _fields(line, 5, "zpool list")
            rec = {"health": health}
            for key, text in (("size_bytes", size), ("allocated_bytes", alloc), ("free_bytes", free)):
                if _int(text) is not None:
                    rec[key] = _int(text)
            out[name] = rec
    return out


def read_datasets(cfg):
    """{dataset: {written, class, role, snapshot, fenced, epoch}} of the roots' children, in one ``zfs list``
    (a root that does not exist has none). ``written`` and ``epoch`` are None when zfs shows ``-``; the class is
    the agent's (config ``datasets``, else the class property, else the default; one not in ``classes`` is the
    default class)."""
    cols = "name,written,%s,smc:role,smc:snapshot,%s,%s" % (cfg["class_property"], FENCED_PROP, EPOCH_PROP)
    p = _run(["zfs", "list", "-H", "-p", "-t", "filesystem", "-d", "1", "-o", cols] + list(cfg["roots"]))
    if p.returncode != 0 and any("does not exist" not in line for line in p.stderr.splitlines() if line.strip()):
        raise ProbeError("zfs list %s failed (rc=%d): %s" % (" ".join(cfg["roots"]), p.returncode,
                                                             p.stderr.strip()[:500]))
    out = {}
    for line in p.stdout.splitlines():
        name, written, cls, role, switch, fenced, epoch = _fields(line, 7, "zfs list")
        if name in cfg["roots"]:
            continue
        cls = cfg["datasets"].get(name) or (cls if cls not in ("-", "") else cfg["default_class"])
        out[name] = {"written": _int(written), "class": cls if cls in cfg["classes"] else cfg["default_class"],
                     "role": role, "snapshot": switch, "fenced": fenced, "epoch": _int(epoch)}
    return out


def list_snapshot_names(names):
    """[(dataset, snapshot)] of the datasets named, by ``zfs list -t snapshot -d 1`` (the agent passes its
    channel program instead when it may use one: the same names, many times faster)."""
    if not names:
        return []
    p = _run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1"] + sorted(names))
    if p.returncode != 0 and any("does not exist" not in line for line in p.stderr.splitlines() if line.strip()):
        raise ProbeError("zfs list -t snapshot failed (rc=%d): %s" % (p.returncode, p.stderr.strip()[:500]))
    return [tuple(line.split("@", 1)) for line in p.stdout.splitlines() if "@" in line]


# --------------------------------------------------------------------------------------- builder inputs
def class_periods(cfg):
    """{class: seconds}: how often each class must have a snapshot (its finest kept period)."""
    out = {}
    for name, policy in cfg["classes"].items():
        full = retention.validate_policy(policy)
        periods = (("frequent", full["frequent_minutes"] * 60),) + COARSER_PERIODS
        out[name] = next((sec for key, sec in periods if full[key] > 0), full["frequent_minutes"] * 60)
    return out


def snapshotted(info):
    """The datasets of read_datasets' ``info`` the agent snapshots (as cmd_snapshot: not replicas, not off)."""
    return {ds: rec for ds, rec in info.items() if rec["role"] != "replica" and rec["snapshot"] != "off"}


def snapshot_inputs(cfg, info, listing, now):
    """snapshot_metrics' datasets from read_datasets' ``info`` and ``listing`` (rows starting (dataset,
    snapshot name)); see the module docstring for what counts."""
    mine = snapshotted(info)
    out = {ds: {"count": 0, "newest": None, "class": rec["class"]} for ds, rec in mine.items()}
    for row in listing:
        taken = retention.parse_name(cfg["prefix"], row[1]) if row[0] in out else None
        if taken is not None:
            rec = out[row[0]]
            rec["count"] += 1
            rec["newest"] = taken if rec["newest"] is None else max(rec["newest"], taken)
    for ds, rec in out.items():
        if rec["newest"] is not None and mine[ds]["written"] == 0:
            rec["newest"] = max(rec["newest"], now)
    return out


def fencing_inputs(cfg, info, now):
    """(fenced, lease_held, epochs) for fencing_metrics; lease_held is None when HA is off."""
    fenced = any(rec["fenced"] == "lease" for rec in info.values())
    epochs = {ds: rec["epoch"] for ds, rec in info.items() if rec["epoch"] is not None}
    held = None
    if (cfg.get("ha") or {}).get("enabled"):
        # next to this file; imported only with HA on (it brings etcd_v3 and failover)
        import smc_ha  # pylint: disable=import-outside-toplevel
        doc = smc_ha.read_state(smc_ha.ha_config(cfg), now)
        held = bool(isinstance(doc, dict) and doc.get("lease"))
    return fenced, held, epochs


def placement_inputs(cfg, info):
    """(missing, unexpected) copies of the host plan, or None without a plan."""
    path = cfg["replication"]["plan"]
    try:
        with open(path, encoding="utf-8") as f:
            plan = host_plan.parse_plan(f.read(), path)
    except FileNotFoundError:
        return None
    parent = cfg["roots"][0]
    planned = {"%s/%s" % (parent, pid) for pid in plan["projects"]}
    present = {ds for ds in info if ds.rsplit("/", 1)[0] == parent}
    return len(planned - present), len(present - planned)


def _event(path, key):
    """The count ``key`` of a cgroup events file (``name value`` lines); 0 when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, _sep, value = line.strip().partition(" ")
                if name == key:
                    return int(value)
    except FileNotFoundError:
        pass
    return 0


def limits_inputs(config=LIMITS_CONFIG, cgroup_root=CGROUP_ROOT):
    """limits_metrics' {class: {oom_kills, tasks_max_hits}} from the project slices, or None without a config."""
    try:
        with open(config, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    parent = data.get("parent") if isinstance(data, dict) else None
    projects = data.get("projects") if isinstance(data, dict) else None
    if not isinstance(parent, str) or not PARENT_RE.match(parent) or not isinstance(projects, dict):
        raise ProbeError("%s: expected a parent slice name and a projects mapping" % config)
    out = {}
    for pid in sorted(projects):
        entry = projects[pid]
        unit = entry.get("slice") if isinstance(entry, dict) else None
        if not isinstance(unit, str) or not SLICE_RE.match(unit):
            raise ProbeError("%s: projects.%s has no slice name" % (config, json.dumps(pid)))
        rec = out.setdefault(str(entry.get("class") or "default"), {"oom_kills": 0, "tasks_max_hits": 0})
        where = os.path.join(cgroup_root, parent, unit)
        rec["oom_kills"] += _event(os.path.join(where, "memory.events"), "oom_kill")
        rec["tasks_max_hits"] += _event(os.path.join(where, "pids.events"), "max")
    return out


# ---------------------------------------------------------------------------------------------- the file
def host_families(cfg, now, list_names=None, limits_config=None, cgroup_root=None):
    """(families, {probe: error}) of this host. ``list_names``: a function of a list of dataset names returning
    rows that start (dataset, snapshot name), default list_snapshot_names; ``limits_config`` and ``cgroup_root``
    default to LIMITS_CONFIG and CGROUP_ROOT."""
    families, failed = [], {}

    def probe(name, fn):
        """fn()'s value; None, the error recorded, when it raised anything at all: a probe never stops the others."""
        try:
            return fn()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            failed[name] = ("%s: %s" % (type(exc).__name__, exc))[:500]
            print("smc-zfs-agent: metrics: %s: %s" % (name, failed[name]), file=sys.stderr)
            return None

    families += probe("pools", lambda: metrics_text.pool_metrics(read_pools())) or []
    info = probe("datasets", lambda: read_datasets(cfg))
    if info is None:
        failed.update((name, "no dataset listing") for name in ("snapshots", "fencing", "placement"))
    else:
        families += probe("snapshots", lambda: _snapshot_families(cfg, info, now, list_names)) or []
        families += probe("fencing", lambda: _fencing_families(cfg, info, now)) or []
        families += probe("placement", lambda: _optional(metrics_text.placement_metrics,
                                                         placement_inputs(cfg, info))) or []
    families += probe("limits", lambda: _optional(metrics_text.limits_metrics,
                                                  limits_inputs(limits_config or LIMITS_CONFIG,
                                                                cgroup_root or CGROUP_ROOT))) or []
    errors = metrics_text.Family("smc_metrics_probe_failed", "gauge",
                                 "1 when the agent could not read this part of the host state this run.")
    for name in PROBES:
        errors.add({"probe": name}, 1 if name in failed else 0)
    return families + [errors], failed


def _snapshot_families(cfg, info, now, list_names):
    names = sorted(snapshotted(info))
    listing = (list_names or list_snapshot_names)(names) if names else []
    return metrics_text.snapshot_metrics(snapshot_inputs(cfg, info, listing, now), now, class_periods(cfg))


def _fencing_families(cfg, info, now):
    fenced, held, epochs = fencing_inputs(cfg, info, now)
    families = metrics_text.fencing_metrics(fenced, bool(held), epochs)
    return [f for f in families if held is not None or f.name != "smc_lease_held"]


def _optional(builder, inputs):
    """The builder's families, or none when there was nothing to read (None)."""
    if inputs is None:
        return []
    return builder(*inputs) if isinstance(inputs, tuple) else builder(inputs)


def textfile_path(cfg):
    """smc-host.prom beside the replication textfile."""
    return os.path.join(os.path.dirname(cfg["replication"]["metrics_textfile"]), TEXTFILE)


def write_host_metrics(cfg, now, list_names=None, limits_config=None, cgroup_root=None):
    """Write this host's families to textfile_path(cfg) when its directory exists (node exporter installed);
    never raises. Arguments as for host_families. Returns {path, written, failed: {probe: error}} (and
    ``error`` when the file was not written)."""
    path = textfile_path(cfg)
    report = {"path": path, "written": False, "failed": {}}
    if not os.path.isdir(os.path.dirname(path)):
        report["error"] = "no textfile directory %s (node exporter not installed)" % os.path.dirname(path)
        return report
    families, report["failed"] = host_families(cfg, now, list_names, limits_config, cgroup_root)
    try:
        metrics_text.write_textfile(path, families)
        report["written"] = True
    except (metrics_text.MetricsError, OSError) as exc:
        report["error"] = "%s: %s" % (path, exc)
        print("smc-zfs-agent: metrics: %s" % report["error"], file=sys.stderr)
    return report
