# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet status of ``playbooks/status.yml``: what each host answered, shaped into one summary (pure).

Inputs are what the playbook read, as plain data: per host its ``dc``, the result of
``zpool list -Hp -o name,health,size,allocated,free`` and of ``smc-zfs-agent status --json`` (command results
with ``rc`` and ``stdout``, or None when the host was not reached), and the answer of Prometheus'
``/api/v1/alerts``. The agent's status is ``{"replication": {dataset: {peer: record}}}`` with the records
``metrics_text.replication_metrics`` takes; a host whose agent prints no such status is reported as having
none yet. ``summarize`` returns JSON-ready data, ``render_text`` the one-screen text of it.
"""

import json

__all__ = ["ZPOOL_FIELDS", "parse_zpool_list", "parse_agent_status", "percentiles", "summarize", "render_text",
           "human_bytes", "human_seconds"]

ZPOOL_FIELDS = ("name", "health", "size", "allocated", "free")
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
NO_AGENT_STATUS = "agent has no replication status yet"


def parse_zpool_list(text):
    """{pool: {health, size_bytes, allocated_bytes, free_bytes, capacity_ratio}} of ``zpool list -Hp -o
    name,health,size,allocated,free``; raises ValueError on a line of another shape."""
    pools = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(ZPOOL_FIELDS) or not all(f.isdigit() for f in fields[2:]):
            raise ValueError("unexpected zpool list line %r (want %s, tab-separated, -p numbers)"
                             % (line, ",".join(ZPOOL_FIELDS)))
        size, alloc, free = (int(f) for f in fields[2:])
        pools[fields[0]] = dict(health=fields[1], size_bytes=size, allocated_bytes=alloc, free_bytes=free,
                                capacity_ratio=round(alloc / float(size), 4) if size else None)
    return pools


def parse_agent_status(text):
    """The replication records of the agent's ``status --json`` output, or None when it has none."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    records = data.get("replication") if isinstance(data, dict) else None
    if not isinstance(records, dict) or not all(isinstance(v, dict) for v in records.values()):
        return None
    return records


def percentiles(values, quantiles=QUANTILES):
    """Nearest-rank percentiles of ``values`` ({name: value} for each (name, q)) plus ``max``; {} if empty."""
    ordered = sorted(values)
    if not ordered:
        return {}
    out = {name: ordered[max(0, -(-int(q * 1000) * len(ordered) // 1000) - 1)] for name, q in quantiles}
    out["max"] = ordered[-1]
    return out


def _lag(rec, now):
    if isinstance(rec.get("lag_seconds"), (int, float)):
        return float(rec["lag_seconds"])
    if isinstance(rec.get("last_success"), (int, float)) and now is not None:
        return max(0.0, float(now - rec["last_success"]))
    return None


def _replication(records, now):
    copies = [(peer, rec) for peers in records.values() for peer, rec in peers.items() if isinstance(rec, dict)]
    lags = [x for x in (_lag(rec, now) for _peer, rec in copies) if x is not None]
    return dict(copies=len(copies), peers=len({peer for peer, _rec in copies}),
                failing=sum(1 for _peer, rec in copies if (rec.get("consecutive_failures") or 0) > 0),
                never=sum(1 for _peer, rec in copies if rec.get("last_success") is None), lag_seconds=percentiles(lags),
                lags=lags)


def _host(name, raw, now):
    """One host's summary from its raw results."""
    out = dict(name=name, dc=str(raw.get("dc") or "-"), reachable=True, pools={}, pool_error=None,
               replication=None, replication_note=None)
    zpool, agent = raw.get("zpool"), raw.get("agent")
    if not isinstance(zpool, dict) or zpool.get("unreachable"):
        out.update(reachable=False, pool_error="host not reached", replication_note="host not reached")
        return out
    if zpool.get("rc") == 0:
        try:
            out["pools"] = parse_zpool_list(zpool.get("stdout") or "")
        except ValueError as exc:
            out["pool_error"] = str(exc)
    elif str(zpool.get("msg", "")).startswith("Error executing command"):
        out["pool_error"] = "zpool not found (ZFS not installed?)"
    else:
        text = (zpool.get("stderr") or zpool.get("msg") or "").strip()
        out["pool_error"] = text.splitlines()[-1] if text else "zpool list failed (rc %s)" % zpool.get("rc")
    answered = isinstance(agent, dict) and agent.get("rc") == 0
    records = parse_agent_status(agent.get("stdout") or "") if answered else None
    if records is None:
        out["replication_note"] = NO_AGENT_STATUS
    else:
        out["replication"] = _replication(records, now)
    return out


def _alerts(result, monitoring_host):
    if not monitoring_host:
        return dict(source=None, firing=[], error="no monitoring host in the inventory")
    data = (result or {}).get("json") if isinstance(result, dict) else None
    inner = data.get("data") if isinstance(data, dict) else None
    alerts = inner.get("alerts") if isinstance(inner, dict) else None
    if not isinstance(alerts, list):
        msg = (result or {}).get("msg") if isinstance(result, dict) else None
        error = "Prometheus did not answer: %s" % (msg or "no alerts list")
        return dict(source=monitoring_host, firing=[], error=error)
    firing = []
    for a in alerts:
        if not isinstance(a, dict) or a.get("state") != "firing":
            continue
        labels, notes = a.get("labels") or {}, a.get("annotations") or {}
        firing.append(dict(alertname=labels.get("alertname", "?"), severity=labels.get("severity", ""),
                           instance=labels.get("instance", labels.get("peer", "")), summary=notes.get("summary", ""),
                           active_at=a.get("activeAt")))
    order = {"critical": 0, "warning": 1, "info": 2}
    firing.sort(key=lambda f: (order.get(f["severity"], 3), f["alertname"], f["instance"]))
    return dict(source=monitoring_host, firing=firing, error=None)


def _coordination(result, source):
    """etcd as one member sees the cluster: ``result`` the command result of ``smc-etcdctl endpoint status
    --cluster -w json`` and ``endpoint health --cluster -w json``, one JSON line each."""
    if not source:
        return dict(source=None, members=[], healthy=0, leader=None, revision=None, error="no coordination host in the inventory")
    lines = ((result or {}).get("stdout") or "").splitlines() if isinstance(result, dict) else []
    try:
        status, health = (json.loads(line) for line in (lines + ["[]", "[]"])[:2])
    except ValueError:
        status, health = None, None
    if not isinstance(status, list) or not isinstance(health, list) or not (status or health):
        why = (result or {}).get("stderr") or (result or {}).get("msg") if isinstance(result, dict) else None
        return dict(source=source, members=[], healthy=0, leader=None, revision=None,
                    error="etcd did not answer on %s: %s" % (source, (why or "no status").strip()[-200:]))
    healthy = {h.get("endpoint"): bool(h.get("health")) for h in health if isinstance(h, dict)}
    members, leader, revision = [], None, None
    for st in status:
        if not isinstance(st, dict) or not isinstance(st.get("Status"), dict):
            continue
        s, endpoint = st["Status"], st.get("Endpoint")
        is_leader = s.get("leader") == (s.get("header") or {}).get("member_id")
        leader = endpoint if is_leader else leader
        revision = max(revision or 0, int((s.get("header") or {}).get("revision") or 0))
        members.append(dict(endpoint=endpoint, healthy=healthy.get(endpoint, False), leader=is_leader,
                            db_bytes=int(s.get("dbSize") or 0)))
    for endpoint in sorted(set(healthy) - {m["endpoint"] for m in members}):
        members.append(dict(endpoint=endpoint, healthy=healthy[endpoint], leader=False, db_bytes=None))
    members.sort(key=lambda m: m["endpoint"] or "")
    return dict(source=source, members=members, healthy=sum(1 for m in members if m["healthy"]), leader=leader,
                revision=revision, error=None)


def summarize(hosts, alerts=None, monitoring_host=None, now=None, coordination=None, coordination_host=None):
    """The fleet summary: ``hosts`` is {name: {"dc", "zpool", "agent"}} (raw command results), ``alerts`` the
    uri result of Prometheus' /api/v1/alerts, ``monitoring_host`` its name (None: no monitoring host),
    ``coordination`` the etcd status read on ``coordination_host`` (None: no coordination host)."""
    summary_hosts = [_host(name, hosts[name] or {}, now) for name in sorted(hosts)]
    dcs = {}
    for h in summary_hosts:
        dcs.setdefault(h["dc"], []).append(h["name"])
    pools = [dict(host=h["name"], pool=p, **v) for h in summary_hosts for p, v in sorted(h["pools"].items())]
    lags = [x for h in summary_hosts if h["replication"] for x in h["replication"].pop("lags")]
    reporting = [h["replication"] for h in summary_hosts if h["replication"]]
    fullest = max((p for p in pools if p["capacity_ratio"] is not None), key=lambda p: p["capacity_ratio"],
                  default=None)
    return dict(
        hosts=summary_hosts,
        dcs={dc: sorted(names) for dc, names in sorted(dcs.items())},
        unreachable=[h["name"] for h in summary_hosts if not h["reachable"]],
        pools=dict(count=len(pools), unhealthy=[p for p in pools if p["health"] != "ONLINE"], fullest=fullest),
        replication=dict(hosts_reporting=len(reporting), hosts_without_status=len(
            [h for h in summary_hosts if h["replication_note"] == NO_AGENT_STATUS]),
            copies=sum(r["copies"] for r in reporting), failing=sum(r["failing"] for r in reporting),
            never=sum(r["never"] for r in reporting), lag_seconds=percentiles(lags)),
        alerts=_alerts(alerts, monitoring_host),
        coordination=_coordination(coordination, coordination_host),
    )


# ------------------------------------------------------------------------------------------------- text
def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def human_seconds(s):
    s = int(round(s))
    for size, unit, sub, subunit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if s >= size:
            rest = (s % size) // sub
            return "%d%s%s" % (s // size, unit, " %d%s" % (rest, subunit) if rest else "")
    return "%ds" % s


def _lag_text(lag):
    if not lag:
        return "no lag measured"
    return "lag " + " ".join("%s %s" % (k, human_seconds(lag[k])) for k in ("p50", "p90", "p99", "max"))


def _host_line(h):
    if not h["reachable"]:
        return "  %-14s not reached" % h["name"]
    pools = ", ".join("%s %s %s of %s (%d%%)" % (p, v["health"], human_bytes(v["allocated_bytes"]),
                                                 human_bytes(v["size_bytes"]), round(100 * (v["capacity_ratio"] or 0)))
                      for p, v in sorted(h["pools"].items())) or h["pool_error"] or "no pool"
    r = h["replication"]
    repl = h["replication_note"] if r is None else "%d copies to %d peers, %d failing, %s" % (
        r["copies"], r["peers"], r["failing"], _lag_text(r["lag_seconds"]))
    return "  %-14s %s | %s" % (h["name"], pools, repl)


def _pools_line(p):
    health = "all ONLINE"
    if p["unhealthy"]:
        health = "%d not ONLINE (%s)" % (len(p["unhealthy"]), ", ".join(
            "%s/%s %s" % (u["host"], u["pool"], u["health"]) for u in p["unhealthy"]))
    full = p["fullest"]
    fullest = "; fullest %s/%s %d%%" % (full["host"], full["pool"], round(100 * full["capacity_ratio"])) if full else ""
    return "pools: %d, %s%s" % (p["count"], health, fullest)


def _replication_line(r):
    if not r["hosts_reporting"]:
        return "replication: %s (no host reports it)" % NO_AGENT_STATUS
    return "replication: %d copies, %d failing, %d never replicated, %s (%d hosts reporting, %d without status)" % (
        r["copies"], r["failing"], r["never"], _lag_text(r["lag_seconds"]), r["hosts_reporting"],
        r["hosts_without_status"])


def _coordination_line(c):
    if c["error"]:
        return "etcd: %s" % c["error"]
    sick = [m["endpoint"] for m in c["members"] if not m["healthy"]]
    db = max((m["db_bytes"] for m in c["members"] if m["db_bytes"] is not None), default=None)
    return "etcd: %d of %d members healthy%s, leader %s, revision %s%s" % (
        c["healthy"], len(c["members"]), " (not: %s)" % ", ".join(sick) if sick else "", c["leader"] or "none",
        c["revision"], ", db %s" % human_bytes(db) if db is not None else "")


def render_text(summary):
    """The summary as lines for one screen: hosts by DC, pools, replication, alerts firing."""
    hosts = {h["name"]: h for h in summary["hosts"]}
    lines = ["%d storage hosts in %d DCs (%s)%s" % (
        len(hosts), len(summary["dcs"]), ", ".join("%s: %d" % (dc, len(n)) for dc, n in summary["dcs"].items()),
        "; not reached: %s" % ", ".join(summary["unreachable"]) if summary["unreachable"] else "")]
    for dc, names in summary["dcs"].items():
        lines.append("%s:" % dc)
        lines.extend(_host_line(hosts[n]) for n in names)
    lines.append(_pools_line(summary["pools"]))
    lines.append(_replication_line(summary["replication"]))
    c = summary.get("coordination")
    if c:
        lines.append(_coordination_line(c))
    a = summary["alerts"]
    if a["error"]:
        lines.append("alerts: %s" % a["error"])
    else:
        lines.append("alerts firing on %s: %s" % (a["source"], len(a["firing"]) or "none"))
        lines.extend("  %-8s %s %s: %s" % (f["severity"], f["alertname"], f["instance"], f["summary"])
                     for f in a["firing"][:15])
        if len(a["firing"]) > 15:
            lines.append("  ... and %d more" % (len(a["firing"]) - 15))
    return lines
