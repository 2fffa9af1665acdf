# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text exposition (format 0.0.4) of the storage agent's state (pure, standard library only).

Installed on the hosts next to the agent, which calls the builders below once per run and writes their
families with ``write_textfile`` into node-exporter's textfile collector directory. Nothing here runs a
command or reads host state; ``write_textfile`` is the only function that touches the file system.

Cardinality is per host and per peer by default (a thousand hosts carry a million projects): replication is
aggregated per target host, snapshots per retention class; per-dataset series exist only with
``per_dataset=True`` and then under names of their own, so a ``sum()`` over the default series never counts
a dataset twice. Names follow the Prometheus conventions: the unit in the name (``_seconds``, ``_bytes``,
``_ratio``, ``_timestamp_seconds``), ``_total`` on counters only, state sets as one 0/1 series per state.

Metric names (every one also carries the ``instance`` and ``job`` labels of the scrape)::

    smc_replication_datasets{peer,state=ok|failing|pending}       gauge
    smc_replication_lag_seconds{peer}                             gauge, max over the peer's datasets
    smc_replication_last_success_timestamp_seconds{peer}          gauge, oldest of the datasets' last successes
    smc_replication_last_attempt_timestamp_seconds{peer}          gauge, newest attempt
    smc_replication_consecutive_failures{peer}                    gauge, max over the peer's datasets
    smc_replication_bytes_total{peer}                             counter
    smc_replication_errors_total{peer}                            counter
    smc_replication_last_error_info{peer,error}                   gauge (1), newest error of a failing dataset
    smc_replication_dataset_*{dataset,peer}                       per-dataset opt-in (lag, last success, failures)
    smc_snapshots{class}, smc_snapshot_datasets{class}            gauges
    smc_snapshot_datasets_without_snapshot{class}                 gauge
    smc_snapshot_newest_age_seconds{class}                        gauge, max over the class's datasets
    smc_snapshot_period_seconds{class}                            gauge, the class's snapshot period
    smc_snapshot_dataset_*{dataset}                               per-dataset opt-in (count, newest age)
    smc_pool_health{pool,state}                                   state set (online, degraded, ...)
    smc_pool_size_bytes, smc_pool_allocated_bytes, smc_pool_free_bytes, smc_pool_capacity_ratio {pool}
    smc_host_fenced, smc_lease_held, smc_project_epoch_max, smc_lease_expiry_timestamp_seconds
    smc_vpn_peer_reachable{network,peer}, smc_vpn_peers{network,state}   written by roles/tinc's host-up/host-down
    smc_limits_oom_kills_total{class}, smc_limits_tasks_max_hits_total{class}
    smc_placement_missing_copies, smc_placement_unexpected_copies
"""

import math
import os
import re
import tempfile

__all__ = [
    "MetricsError", "Family", "POOL_STATES", "escape_label_value", "escape_help", "format_value", "render",
    "replication_metrics", "snapshot_metrics", "pool_metrics", "fencing_metrics",
    "limits_metrics", "placement_metrics", "write_textfile",
]

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
KINDS = ("counter", "gauge", "untyped")
POOL_STATES = ("online", "degraded", "faulted", "offline", "unavail", "removed", "suspended", "unknown")
REPLICATION_STATES = ("ok", "failing", "pending")
MAX_ERROR_CHARS = 200
_RECORD_KEYS = ("last_success", "last_attempt", "lag_seconds", "bytes_total", "errors_total", "last_error",
                "consecutive_failures")


class MetricsError(ValueError):
    """Bad input to a builder or a family that cannot be rendered; the message names the key."""


class Family:
    """One metric family: name, type, help text and its samples (label dict, value)."""

    def __init__(self, name, kind, help_text):
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise MetricsError("metric name %r is not [a-zA-Z_:][a-zA-Z0-9_:]*" % (name,))
        if kind not in KINDS:
            raise MetricsError("%s: type %r is not one of %s" % (name, kind, ", ".join(KINDS)))
        if kind == "counter" and not name.endswith("_total"):
            raise MetricsError("%s: a counter's name ends in _total" % name)
        if kind != "counter" and name.endswith("_total"):
            raise MetricsError("%s: only counters end in _total" % name)
        if not isinstance(help_text, str) or not help_text.strip():
            raise MetricsError("%s: give a help text" % name)
        self.name, self.kind, self.help = name, kind, help_text
        self.samples = []
        self._seen = set()

    def add(self, labels, value):
        """Add one sample; ``labels`` maps label names to strings. Returns the family."""
        labels = dict(labels or {})
        for key, val in labels.items():
            if not isinstance(key, str) or not LABEL_RE.match(key) or key.startswith("__"):
                raise MetricsError("%s: label name %r is not [a-zA-Z_][a-zA-Z0-9_]* (not starting with __)"
                                   % (self.name, key))
            if not isinstance(val, str):
                raise MetricsError("%s: label %s must be a string, got %r" % (self.name, key, val))
        key = tuple(sorted(labels.items()))
        if key in self._seen:
            raise MetricsError("%s: two samples with the labels %r" % (self.name, labels))
        self._seen.add(key)
        format_value(value, self.name)
        if self.kind == "counter" and (value < 0 or math.isnan(value)):
            raise MetricsError("%s: a counter cannot be negative or NaN, got %r" % (self.name, value))
        self.samples.append((key, value))
        return self


def escape_label_value(value):
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text):
    """HELP text: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value, where="value"):
    """A sample value in the text format: integers exactly, floats by repr, NaN and +Inf/-Inf spelled out."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    raise MetricsError("%s: a sample value must be a number, got %r" % (where, value))


def render(families):
    """The text exposition of ``families`` (in the given order); families without samples are left out."""
    out, names = [], set()
    for fam in families:
        if fam.name in names:
            raise MetricsError("metric family %s is given twice" % fam.name)
        names.add(fam.name)
        if not fam.samples:
            continue
        out.append("# HELP %s %s\n# TYPE %s %s\n" % (fam.name, escape_help(fam.help), fam.name, fam.kind))
        for labels, value in fam.samples:
            text = ",".join('%s="%s"' % (k, escape_label_value(v)) for k, v in labels)
            out.append("%s%s %s\n" % (fam.name, "{%s}" % text if text else "", format_value(value)))
    return "".join(out)


# -------------------------------------------------------------------------------------------- input checks
def _number(where, value, allow_none=False, integer=False):
    if value is None and allow_none:
        return None
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or math.isnan(value) or math.isinf(value) or value < 0:
        raise MetricsError("%s must be %sa non-negative %s, got %r" % (
            where, "null or " if allow_none else "", "whole number" if integer else "number", value))
    return value


def _mapping(where, value):
    if not isinstance(value, dict):
        raise MetricsError("%s must be a mapping, got %s" % (where, type(value).__name__))
    for key in value:
        if not isinstance(key, str) or not key:
            raise MetricsError("%s: key %r must be a non-empty string" % (where, key))
    return value


def _check_record(where, rec):
    _mapping(where, rec)
    unknown = sorted(set(rec) - set(_RECORD_KEYS))
    if unknown:
        raise MetricsError("%s: unknown keys %s (known: %s)" % (where, ", ".join(unknown), ", ".join(_RECORD_KEYS)))
    for key in ("last_success", "last_attempt", "lag_seconds"):
        _number("%s.%s" % (where, key), rec.get(key), allow_none=True)
    for key in ("bytes_total", "errors_total", "consecutive_failures"):
        _number("%s.%s" % (where, key), rec.get(key, 0), integer=True)
    err = rec.get("last_error")
    if err is not None and not isinstance(err, str):
        raise MetricsError("%s.last_error must be null or a string, got %r" % (where, err))


def _lag(rec, now):
    """The record's lag: as given, else the age of its last success, else None (never replicated)."""
    if rec.get("lag_seconds") is not None:
        return float(rec["lag_seconds"])
    if rec.get("last_success") is not None:
        return max(0.0, float(now - rec["last_success"]))
    return None


def _state(rec):
    if rec.get("consecutive_failures", 0) > 0:
        return "failing"
    return "ok" if rec.get("last_success") is not None else "pending"


# ------------------------------------------------------------------------------------------- replication
def _replication_families():
    return dict(
        datasets=Family("smc_replication_datasets", "gauge",
                        "Datasets replicated to the peer, by state (ok, failing: a failure since the last "
                        "success, pending: never replicated yet)."),
        lag=Family("smc_replication_lag_seconds", "gauge",
                   "Largest replication lag among the datasets replicated to the peer."),
        success=Family("smc_replication_last_success_timestamp_seconds", "gauge",
                       "Oldest last successful replication among the peer's datasets (Unix time)."),
        attempt=Family("smc_replication_last_attempt_timestamp_seconds", "gauge",
                       "Newest replication attempt to the peer (Unix time)."),
        failures=Family("smc_replication_consecutive_failures", "gauge",
                        "Most consecutive failed cycles of any dataset replicated to the peer."),
        bytes=Family("smc_replication_bytes_total", "counter", "Bytes sent to the peer."),
        errors=Family("smc_replication_errors_total", "counter", "Failed sends to the peer."),
        error=Family("smc_replication_last_error_info", "gauge",
                     "The newest error of a dataset failing to replicate to the peer (truncated)."),
    )


def replication_metrics(records, now, per_dataset=False):
    """Families for ``records``: {dataset: {peer: {last_success, last_attempt, lag_seconds, bytes_total,
    errors_total, last_error, consecutive_failures}}}, aggregated per peer; per dataset too when asked."""
    _mapping("replication records", records)
    _number("now", now)
    peers = {}
    for ds in sorted(records):
        _mapping("replication records[%r]" % ds, records[ds])
        for peer in sorted(records[ds]):
            rec = records[ds][peer]
            _check_record("replication records[%r][%r]" % (ds, peer), rec)
            peers.setdefault(peer, []).append((ds, rec))
    fam = _replication_families()
    for peer in sorted(peers):
        recs = [r for _ds, r in peers[peer]]
        label = {"peer": peer}
        for state in REPLICATION_STATES:
            fam["datasets"].add({"peer": peer, "state": state}, sum(1 for r in recs if _state(r) == state))
        lags = [x for x in (_lag(r, now) for r in recs) if x is not None]
        if lags:
            fam["lag"].add(label, max(lags))
        successes = [r["last_success"] for r in recs if r.get("last_success") is not None]
        if successes:
            fam["success"].add(label, min(successes))
        attempts = [r["last_attempt"] for r in recs if r.get("last_attempt") is not None]
        if attempts:
            fam["attempt"].add(label, max(attempts))
        fam["failures"].add(label, max(r.get("consecutive_failures", 0) for r in recs))
        fam["bytes"].add(label, sum(r.get("bytes_total", 0) for r in recs))
        fam["errors"].add(label, sum(r.get("errors_total", 0) for r in recs))
        failing = [r for r in recs if _state(r) == "failing" and r.get("last_error")]
        if failing:
            newest = max(failing, key=lambda r: r.get("last_attempt") or 0)
            text = " ".join(newest["last_error"].split())[:MAX_ERROR_CHARS]
            fam["error"].add({"peer": peer, "error": text}, 1)
    families = list(fam.values())
    if per_dataset:
        families += _replication_per_dataset(peers, now)
    return families


def _replication_per_dataset(peers, now):
    lag = Family("smc_replication_dataset_lag_seconds", "gauge", "Replication lag of the dataset to the peer.")
    success = Family("smc_replication_dataset_last_success_timestamp_seconds", "gauge",
                     "Last successful replication of the dataset to the peer (Unix time).")
    failures = Family("smc_replication_dataset_consecutive_failures", "gauge",
                      "Consecutive failed cycles of the dataset to the peer.")
    for peer in sorted(peers):
        for ds, rec in peers[peer]:
            labels = {"dataset": ds, "peer": peer}
            if _lag(rec, now) is not None:
                lag.add(labels, _lag(rec, now))
            if rec.get("last_success") is not None:
                success.add(labels, rec["last_success"])
            failures.add(labels, rec.get("consecutive_failures", 0))
    return [lag, success, failures]


# --------------------------------------------------------------------------------------------- snapshots
def snapshot_metrics(datasets, now, periods=None, per_dataset=False):
    """Families for ``datasets``: {dataset: {"count": int, "newest": unix_ts_or_None, "class": str}}
    ("class" defaults to ``default``), aggregated per class; ``periods`` is {class: snapshot period seconds}."""
    _mapping("snapshot datasets", datasets)
    _number("now", now)
    periods = _mapping("snapshot periods", periods or {})
    for cls, sec in periods.items():
        _number("snapshot periods[%r]" % cls, sec)
    count = Family("smc_snapshots", "gauge", "Snapshots of our prefix, per retention class.")
    dsets = Family("smc_snapshot_datasets", "gauge", "Datasets the agent snapshots, per retention class.")
    without = Family("smc_snapshot_datasets_without_snapshot", "gauge",
                     "Datasets with no snapshot of our prefix, per retention class.")
    age = Family("smc_snapshot_newest_age_seconds", "gauge",
                 "Age of the newest snapshot of the stalest dataset of the class.")
    period = Family("smc_snapshot_period_seconds", "gauge", "How often the class is snapshotted.")
    classes = {}
    for ds in sorted(datasets):
        rec = _mapping("snapshot datasets[%r]" % ds, datasets[ds])
        where = "snapshot datasets[%r]" % ds
        unknown = sorted(set(rec) - {"count", "newest", "class"})
        if unknown:
            raise MetricsError("%s: unknown keys %s (known: count, newest, class)" % (where, ", ".join(unknown)))
        _number(where + ".count", rec.get("count", 0), integer=True)
        _number(where + ".newest", rec.get("newest"), allow_none=True)
        cls = rec.get("class", "default")
        if not isinstance(cls, str) or not cls:
            raise MetricsError("%s.class must be a non-empty string, got %r" % (where, cls))
        classes.setdefault(cls, []).append((ds, rec))
    for cls in sorted(classes):
        recs = [r for _ds, r in classes[cls]]
        label = {"class": cls}
        count.add(label, sum(r.get("count", 0) for r in recs))
        dsets.add(label, len(recs))
        without.add(label, sum(1 for r in recs if r.get("newest") is None))
        ages = [max(0.0, float(now - r["newest"])) for r in recs if r.get("newest") is not None]
        if ages:
            age.add(label, max(ages))
    for cls in sorted(periods):
        period.add({"class": cls}, periods[cls])
    families = [count, dsets, without, age, period]
    if per_dataset:
        ds_count = Family("smc_snapshot_dataset_snapshots", "gauge", "Snapshots of our prefix of the dataset.")
        ds_age = Family("smc_snapshot_dataset_newest_age_seconds", "gauge", "Age of the dataset's newest snapshot.")
        for cls in sorted(classes):
            for ds, rec in classes[cls]:
                ds_count.add({"dataset": ds}, rec.get("count", 0))
                if rec.get("newest") is not None:
                    ds_age.add({"dataset": ds}, max(0.0, float(now - rec["newest"])))
        families += [ds_count, ds_age]
    return families


# ------------------------------------------------------------------------------------------------- pools
def pool_metrics(pools):
    """Families for ``pools``: {pool: {"health": "ONLINE", "size_bytes": int, "allocated_bytes": int,
    "free_bytes": int}}; health is a state set, a health outside POOL_STATES counts as ``unknown``."""
    _mapping("pools", pools)
    health = Family("smc_pool_health", "gauge", "Pool health as a state set: 1 for the current state.")
    size = Family("smc_pool_size_bytes", "gauge", "Pool size.")
    alloc = Family("smc_pool_allocated_bytes", "gauge", "Space allocated in the pool.")
    free = Family("smc_pool_free_bytes", "gauge", "Free space in the pool.")
    ratio = Family("smc_pool_capacity_ratio", "gauge", "Allocated over size (0 to 1).")
    for name in sorted(pools):
        rec = _mapping("pools[%r]" % name, pools[name])
        where = "pools[%r]" % name
        unknown = sorted(set(rec) - {"health", "size_bytes", "allocated_bytes", "free_bytes"})
        if unknown:
            raise MetricsError("%s: unknown keys %s" % (where, ", ".join(unknown)))
        state = str(rec.get("health", "unknown")).lower()
        state = state if state in POOL_STATES else "unknown"
        for s in POOL_STATES:
            health.add({"pool": name, "state": s}, 1 if s == state else 0)
        label = {"pool": name}
        for fam, key in ((size, "size_bytes"), (alloc, "allocated_bytes"), (free, "free_bytes")):
            if rec.get(key) is not None:
                fam.add(label, _number("%s.%s" % (where, key), rec[key], integer=True))
        if rec.get("size_bytes") and rec.get("allocated_bytes") is not None:
            ratio.add(label, rec["allocated_bytes"] / float(rec["size_bytes"]))
    return [health, size, alloc, free, ratio]


# ------------------------------------------------------------------------------------ fencing and leases
def fencing_metrics(fenced, lease_held, epochs=None, lease_expiry=None):
    """Families for this host's fencing state: ``fenced`` and ``lease_held`` (bools), ``epochs`` {dataset:
    epoch} (only the maximum is exported), ``lease_expiry`` the lease's expiry (Unix time) or None."""
    for where, value in (("fenced", fenced), ("lease_held", lease_held)):
        if not isinstance(value, bool):
            raise MetricsError("%s must be true or false, got %r" % (where, value))
    epochs = _mapping("epochs", epochs or {})
    for ds, epoch in epochs.items():
        _number("epochs[%r]" % ds, epoch, integer=True)
    _number("lease_expiry", lease_expiry, allow_none=True)
    families = [
        Family("smc_host_fenced", "gauge", "1 when this host fenced itself (primaries read-only).").add({}, fenced),
        Family("smc_lease_held", "gauge", "1 when this host holds its lease in etcd.").add({}, lease_held),
        Family("smc_project_epoch_max", "gauge", "Highest epoch (fencing token) among this host's copies."),
        Family("smc_lease_expiry_timestamp_seconds", "gauge", "When this host's lease expires (Unix time)."),
    ]
    if epochs:
        families[2].add({}, max(epochs.values()))
    if lease_expiry is not None:
        families[3].add({}, lease_expiry)
    return families


# ------------------------------------------------------------------------------------------------ limits
def limits_metrics(classes):
    """Families for ``classes``: {class: {"oom_kills": int, "tasks_max_hits": int}}, counts since boot."""
    _mapping("limits classes", classes)
    oom = Family("smc_limits_oom_kills_total", "counter",
                 "Processes of projects of the class killed by the OOM killer.")
    tasks = Family("smc_limits_tasks_max_hits_total", "counter",
                   "Forks of projects of the class refused by TasksMax.")
    for cls in sorted(classes):
        rec = _mapping("limits classes[%r]" % cls, classes[cls])
        unknown = sorted(set(rec) - {"oom_kills", "tasks_max_hits"})
        if unknown:
            raise MetricsError("limits classes[%r]: unknown keys %s" % (cls, ", ".join(unknown)))
        oom.add({"class": cls}, _number("limits classes[%r].oom_kills" % cls, rec.get("oom_kills", 0), integer=True))
        tasks.add({"class": cls}, _number("limits classes[%r].tasks_max_hits" % cls, rec.get("tasks_max_hits", 0),
                                          integer=True))
    return [oom, tasks]


# --------------------------------------------------------------------------------------------- placement
def placement_metrics(missing_copies, unexpected_copies=0):
    """Families for placement drift: copies the host plan expects that the host lacks, and copies it holds
    that the plan does not list (kept until a human or a move quarantines them)."""
    return [
        Family("smc_placement_missing_copies", "gauge", "Copies this host's plan expects that it lacks.").add(
            {}, _number("missing_copies", missing_copies, integer=True)),
        Family("smc_placement_unexpected_copies", "gauge", "Copies this host holds that its plan does not list.").add(
            {}, _number("unexpected_copies", unexpected_copies, integer=True)),
    ]


# ---------------------------------------------------------------------------------------------- the file
def write_textfile(path, families_or_text):
    """Write the exposition atomically for node-exporter's textfile collector: a temporary file in the same
    directory (not ending in .prom, so the collector never reads it half written), fsync, mode 0644, rename.
    Written on every call, so the file's mtime tells how fresh the metrics are."""
    if not isinstance(path, str) or not os.path.isabs(path) or not path.endswith(".prom"):
        raise MetricsError("textfile path must be absolute and end in .prom, got %r" % (path,))
    text = families_or_text if isinstance(families_or_text, str) else render(families_or_text)
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
