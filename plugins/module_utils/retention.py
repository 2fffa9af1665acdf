# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot names and retention (pure, standard library only, Python 3.11+).

Our snapshots are named ``<prefix>_<YYYY-MM-DDTHH:MM:SSZ>``: the time is UTC, taken from the name and never
from local time, so daylight-saving changes and host time zones cannot move a snapshot into another bucket.

Policy: ``{"frequent": 4, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 3, "yearly": 0}`` plus
``frequent_minutes`` (15). For each period, the *earliest* snapshot of each of the N most recent UTC buckets
that contain a snapshot is kept (a grandfather-father-son rotation whose kept snapshots never change once
chosen). Always kept besides: the newest of our snapshots, held snapshots (``userrefs > 0``; holds tagged
``smc-repl-*`` are how replication marks what a replica still needs), snapshots named in ``needed`` (the
replication hook), snapshots dated in the future, and anything whose name does not parse. Snapshots without
our prefix are never considered at all.

The plan is idempotent: pruning to ``keep`` and planning again with the same ``now`` destroys nothing.
"""

import calendar
import re
import time
from collections import namedtuple

__all__ = [
    "PERIODS", "DEFAULT_POLICY", "PolicyError", "Snapshot", "Plan",
    "snapshot_name", "parse_name", "validate_policy", "plan",
]

PERIODS = ("frequent", "hourly", "daily", "weekly", "monthly", "yearly")
DEFAULT_POLICY = {"frequent": 4, "hourly": 24, "daily": 7, "weekly": 4, "monthly": 3, "yearly": 0,
                  "frequent_minutes": 15}
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9.-]{0,31}\Z")
_STAMP_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z\Z")

Snapshot = namedtuple("Snapshot", "name userrefs")
Snapshot.__new__.__defaults__ = (0,)
Snapshot.__doc__ = """One snapshot of one dataset: the part after ``@`` and its hold count (``userrefs``)."""


class PolicyError(ValueError):
    """A policy or prefix that cannot be used; the message names the field and the fix."""


class Plan(namedtuple("Plan", "keep destroy foreign")):
    """``keep``: {name: sorted reasons}; ``destroy``: names oldest first; ``foreign``: names not ours."""


def check_prefix(prefix):
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
        raise PolicyError(
            "prefix %r is not usable: use 1-32 letters, digits, '.' or '-', starting with a letter (e.g. 'smc')"
            % (prefix,))
    return prefix


def snapshot_name(prefix, epoch):
    """Name for a snapshot taken at ``epoch`` seconds (UTC, second resolution)."""
    return "%s_%s" % (check_prefix(prefix), time.strftime(_STAMP, time.gmtime(int(epoch))))


def parse_name(prefix, name):
    """Epoch seconds encoded in one of our names, or None for a name that is not ours or does not parse."""
    head = prefix + "_"
    if not name.startswith(head):
        return None
    m = _STAMP_RE.match(name[len(head):])
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    # Year 0 (or any year before 1970) is not a time we took: unparsed, kept and reported, never a crash.
    if not (1970 <= year and 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        return None
    try:
        if day > calendar.monthrange(year, month)[1]:
            return None
    except (ValueError, OverflowError):
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def validate_policy(policy):
    """Return a complete policy (defaults filled in) or raise PolicyError naming the bad field."""
    if not isinstance(policy, dict):
        raise PolicyError("policy must be a mapping such as {'hourly': 24, 'daily': 7}, got %r" % (policy,))
    unknown = sorted(set(policy) - set(DEFAULT_POLICY))
    if unknown:
        raise PolicyError("policy has unknown key(s) %s: use only %s" % (", ".join(unknown), ", ".join(DEFAULT_POLICY)))
    full = {k: 0 for k in PERIODS}
    full["frequent_minutes"] = DEFAULT_POLICY["frequent_minutes"]
    full.update(policy)
    for key, value in full.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PolicyError("policy.%s must be a whole number >= 0, got %r" % (key, value))
    if not 1 <= full["frequent_minutes"] <= 1440 or 1440 % full["frequent_minutes"]:
        raise PolicyError("policy.frequent_minutes must divide a day (1, 5, 15, 30, 60, ...), got %r"
                          % (full["frequent_minutes"],))
    return full


def _bucket(period, epoch, frequent_minutes):
    if period == "frequent":
        return epoch // (frequent_minutes * 60)
    if period == "hourly":
        return epoch // 3600
    t = time.gmtime(epoch)
    if period == "daily":
        return (t.tm_year, t.tm_yday)
    if period == "weekly":
        # ISO weeks (Monday first) counted from the epoch, which began on a Thursday.
        return (epoch // 86400 + 3) // 7
    if period == "monthly":
        return (t.tm_year, t.tm_mon)
    return t.tm_year


def plan(snapshots, policy, now, prefix="smc", needed=()):
    """Decide which of one dataset's snapshots to keep and which to destroy.

    ``snapshots``: iterable of Snapshot (or (name, userrefs) pairs), names without the dataset part.
    ``needed``: names that something else (replication) still needs. ``now``: epoch seconds.
    """
    check_prefix(prefix)
    policy = validate_policy(policy)
    needed = set(needed)
    keep, foreign, ours = {}, [], []
    for snap in snapshots:
        snap = Snapshot(*snap)
        if not isinstance(snap.name, str):
            foreign.append(str(snap.name))
            continue
        if not isinstance(snap.userrefs, int) or isinstance(snap.userrefs, bool):
            snap = snap._replace(userrefs=1)  # an unreadable hold count counts as held: kept
        if not snap.name.startswith(prefix + "_"):
            foreign.append(snap.name)
            continue
        epoch = parse_name(prefix, snap.name)
        reasons = []
        if epoch is None:
            reasons.append("unparsed")
        elif epoch > now:
            reasons.append("future")
        if snap.userrefs:
            reasons.append("held")
        if snap.name in needed:
            reasons.append("needed")
        if reasons:
            keep[snap.name] = reasons
        if epoch is not None and epoch <= now:
            ours.append((epoch, snap.name))
    ours.sort()
    if ours:
        keep.setdefault(ours[-1][1], []).append("newest")
    for period in PERIODS:
        count = policy[period]
        if not count:
            continue
        first = {}
        for epoch, name in ours:
            first.setdefault(_bucket(period, epoch, policy["frequent_minutes"]), name)
        for bucket in sorted(first, reverse=True)[:count]:
            keep.setdefault(first[bucket], []).append(period)
    destroy = [name for _epoch, name in ours if name not in keep]
    return Plan({k: sorted(v) for k, v in keep.items()}, destroy, sorted(foreign))
