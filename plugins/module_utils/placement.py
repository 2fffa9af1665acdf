# -*- coding: utf-8 -*-
# Copyright: smc.backend developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failure-domain-aware consistent hashing: which hosts hold each project.

Standard library only; no Ansible import, no I/O.  It ships to hosts and loads by file path.

``place(hosts, projects, replicas_per_dc=2)`` returns ``{project_id: (host, ...)}``:
``replicas_per_dc`` distinct hosts from every data center (DC), the primary first.

Algorithm (per DC, independent of every other DC)
-------------------------------------------------
* Ring: every ``up`` or ``draining`` host of the DC puts ``round(VNODES_PER_WEIGHT * weight)``
  points on a 64-bit ring.  A host's points are the first values of
  ``shake_128(RING_SALT + name)``, so they depend on its name and weight only, never on the
  other hosts.  Points are ordered by (upper 48 bits, host name).
* Grid: a project hashes (``blake2b``, 8 bytes, little endian) to a 64-bit value ``h``;
  its bucket is ``h >> (64 - GRID_BITS)``.  A bucket's replicas in a DC are the first
  ``replicas_per_dc`` distinct eligible hosts met walking the ring clockwise from the
  bucket's start.  Each bucket therefore has one fixed preference order over every possible
  host, whatever the host set is: that is what makes movement minimal.  The table of
  ``2**GRID_BITS`` buckets is built once per call (sort + C-level maps); per project the
  work is one hash and one list index per DC.
* Primary: the project's DCs are ordered by weighted rendezvous hashing over DC names
  (``dc_weights``, default 1 each) on the low 16 bits of ``h``; the first DC with a replica
  is the home DC and its first replica is the primary.  The DC order depends on DC names
  and ``dc_weights`` only, so a host change never moves a primary unless that host is the
  primary or becomes it; when the primary goes, the role passes to the next replica of the
  same DC, which already holds the data.

Host states
-----------
* ``up``: eligible.
* ``down``: absent from the ring while down.  Its slots go to the next host on the ring
  in its DC; when it comes back up it gets back exactly what it had.
* ``draining``: on the ring (as if up) but eligible for a project only if the host holds
  that project in ``previous`` (the placement deployed last time).  So it keeps what it
  holds and receives nothing new; without ``previous`` it receives nothing.

Properties (tested in tests/unit/plugins/module_utils/test_placement.py)
------------------------------------------------------------------------
Deterministic across processes, machines and Python versions (no ``hash()``, no floats in
any ordering except the optional weighted DC order, which uses IEEE basic operations only);
adding, removing, marking down or changing the weight of one host changes only slots that
involve that host, only in its DC; load is proportional to weight.

Limits: a host holds at most one slot of a project, so a host whose weight is a large share of
a small DC gets a little less than its weight (20 hosts, one of weight 2: about 1.95x).  Balance
is limited by the ring (structural sd about 0.71 / sqrt(points per host)) plus the randomness of
the project hashes themselves (sd 1 / sqrt(slots per host)); see benchmarks/placement.py.
"""

import hashlib
import math
import re
import sys
from array import array
from bisect import bisect_left
from itertools import accumulate, repeat

__all__ = [
    "PlacementError",
    "place",
    "validate_hosts",
    "host_roles",
    "diff_placements",
    "load_report",
    "VNODES_PER_WEIGHT",
    "GRID_BITS",
    "STATES",
]

STATES = ("up", "down", "draining")
VNODES_PER_WEIGHT = 2048
# Largest weight of a host or DC: the ring holds VNODES_PER_WEIGHT points per unit of weight (measured: one
# host of weight 100 beside weight-1 hosts takes about 20 s to place, 1000 more than 2 minutes).
MAX_WEIGHT = 100
GRID_BITS = 20
HOME_BITS = 12
MAX_HOSTS_PER_DC = 1 << 16
RING_SALT = b"smc.backend/placement/ring/v1\0"
HOME_SALT = b"smc.backend/placement/home/v1\0"
FULL_TABLE_MIN_PROJECTS = 1 << 15

_U64 = (1 << 64) - 1
_TAG_BITS = 16
_POS_MASK = _U64 ^ ((1 << _TAG_BITS) - 1)
_TAG_MASK = (1 << _TAG_BITS) - 1


class PlacementError(ValueError):
    """Bad input to ``place``: the message names the field and the fix."""


# ---------------------------------------------------------------------------
# validation


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Same pattern as tinc_topology._DC_RE (copied, not imported: this file loads alone by path; a test keeps them equal).
_DC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


def _weight_ok(weight):
    """A number with 0 < weight <= MAX_WEIGHT.  Bounds first: math.isfinite(10**400) raises OverflowError."""
    return _is_number(weight) and 0 < weight <= MAX_WEIGHT and math.isfinite(weight)


def _show(value, limit=40):
    """Short repr for an error message (repr of a huge int can itself raise ValueError)."""
    try:
        text = repr(value)
    except ValueError:
        return "<%s too large to show>" % type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def validate_hosts(hosts):
    """Check and normalise ``hosts``; return a list of ``(name, dc, weight, state)``."""
    if isinstance(hosts, (str, bytes)) or not hasattr(hosts, "__iter__"):
        raise PlacementError("hosts: expected a list of host dicts, got %s" % type(hosts).__name__)
    result = []
    seen = {}
    for i, host in enumerate(hosts):
        where = "hosts[%d]" % i
        if not isinstance(host, dict):
            raise PlacementError("%s: expected a dict with name, dc, weight, state; got %s"
                                 % (where, type(host).__name__))
        name = host.get("name")
        if not isinstance(name, str) or not name:
            raise PlacementError("%s.name: missing or empty; give every host a unique name" % where)
        if not _HOST_RE.match(name):
            raise PlacementError("%s.name: %r is not a host name: use 1-64 letters, digits, '_', '.' or '-', "
                                 "starting with a letter or digit (it names the host's plan file)" % (where, name))
        where = "%s (%s)" % (where, name)
        if name in seen:
            raise PlacementError("%s.name: duplicate host name %r (also hosts[%d]); host names must be unique"
                                 % (where, name, seen[name]))
        seen[name] = i
        dc = host.get("dc")
        if not isinstance(dc, str) or not dc.strip():
            raise PlacementError("%s.dc: missing or empty; set the host var dc to the host's data center"
                                 % where)
        if not _DC_RE.match(dc):
            raise PlacementError("%s.dc: %s is not a data center name: use 1-63 letters, digits, '_', '.' or '-', "
                                 "starting with a letter or digit" % (where, _show(dc)))
        weight = host.get("weight", 1.0)
        if weight is None:
            weight = 1.0
        if not _weight_ok(weight):
            raise PlacementError("%s.weight: %s is not a number > 0 and <= %d; set weight to the host's relative "
                                 "capacity (default 1)" % (where, _show(weight), MAX_WEIGHT))
        state = host.get("state", "up")
        if state is None:
            state = "up"
        if state not in STATES:
            raise PlacementError("%s.state: unknown state %r; use one of %s"
                                 % (where, state, ", ".join(STATES)))
        result.append((name, dc, float(weight), state))
    if not result:
        raise PlacementError("hosts: empty; give at least one host per data center")
    return result


def _check_replicas(replicas_per_dc):
    if not isinstance(replicas_per_dc, int) or isinstance(replicas_per_dc, bool) or replicas_per_dc < 1:
        raise PlacementError("replicas_per_dc: %r is not an integer >= 1; use 1 or more (default 2)"
                             % (replicas_per_dc,))


def _check_dc_weights(dc_weights, dcs):
    if dc_weights is not None and not isinstance(dc_weights, dict):
        raise PlacementError("dc_weights: expected a dict of data center name to weight, got %s"
                             % type(dc_weights).__name__)
    weights = {}
    for dc in dcs:
        weight = (dc_weights or {}).get(dc, 1.0)
        if not _weight_ok(weight):
            raise PlacementError("dc_weights.%s: %s is not a number > 0 and <= %d; use the DC's relative share of "
                                 "primaries (default 1)" % (dc, _show(weight), MAX_WEIGHT))
        weights[dc] = float(weight)
    return weights


# ---------------------------------------------------------------------------
# hashing


def _u64_stream(salt, name, count):
    """``count`` pseudo-random 64-bit ints from shake_128(salt + name), little endian."""
    raw = hashlib.shake_128(salt + name.encode("utf-8")).digest(8 * count)
    values = array("Q")
    if values.itemsize != 8:  # pragma: no cover - every CPython platform has an 8-byte Q
        return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
    values.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values


def vnode_count(weight):
    """Points a host of ``weight`` puts on its DC's ring (at least one)."""
    return max(1, int(VNODES_PER_WEIGHT * weight + 0.5))


def _log_unit(value):
    """Natural log of ``value`` in (0, 1] with IEEE basic operations only (same on every machine)."""
    mantissa, exponent = math.frexp(value)  # exact; mantissa in [0.5, 1)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    s2 = s * s
    term = s
    total = 0.0
    for k in range(1, 40, 2):
        total += term / k
        term *= s2
    return 2.0 * total + exponent * 0.6931471805599453


# ---------------------------------------------------------------------------
# per-DC table


class _DcTable(object):
    """One DC's ring and its bucket -> replicas lookup.

    ``table[b]`` is the replica tuple of bucket ``b``.  With ``full`` it is a list of
    ``2**GRID_BITS`` tuples built at C speed (worth it for many projects); otherwise each
    lookup bisects the ring.  Both give the same answer (tested).
    """

    def __init__(self, members, replicas, full):
        # members: [(name, weight, state)] sorted by name: the up and draining hosts of the DC
        self.names = [m[0] for m in members]
        self.draining = frozenset(m[0] for m in members if m[2] == "draining")
        self.replicas = replicas
        keys = []
        for idx, (name, weight, _state) in enumerate(members):
            keys.extend([(x & _POS_MASK) | idx for x in _u64_stream(RING_SALT, name, vnode_count(weight))])
        keys.sort()
        self.keys = keys
        names = self.names
        self.ring = [names[k & _TAG_MASK] for k in keys]  # host name at each ring position
        self.succ = self._successors()
        self.succ.append(self.succ[0] if self.succ else ())  # past the last point: wrap to point 0
        self.table = self._full_table() if full else self

    def __getitem__(self, bucket):
        return self.succ[self.start(bucket)]

    def start(self, bucket):
        """Index of the first ring point at or after the start of ``bucket``."""
        return bisect_left(self.keys, bucket << (64 - GRID_BITS))

    def _full_table(self):
        shift = 64 - GRID_BITS
        # bucket -> points up to and including it (later points overwrite: keys are sorted)
        upto = dict(zip([k >> shift for k in self.keys], range(1, len(self.keys) + 1)))
        # starts[b] = points before bucket b = upto of the last occupied bucket below b
        starts = accumulate(map(upto.get, range(-1, (1 << GRID_BITS) - 1), repeat(0)), max)
        return list(map(self.succ.__getitem__, starts))

    def _successors(self):
        """For every ring position, the first ``replicas`` distinct hosts from there."""
        ring = self.ring
        if not ring:
            return []
        width = min(self.replicas, len(self.names))
        succ = list(zip(*[ring[k:] + ring[:k] for k in range(width)]))
        if width == 2:
            bad = [j for j, t in enumerate(succ) if t[0] == t[1]]
        elif width > 2:
            bad = [j for j, t in enumerate(succ) if len(set(t)) != width]
        else:
            bad = []
        for j in bad:
            succ[j] = self.walk(j)
        return succ

    def walk(self, start, held=None):
        """First distinct eligible hosts from ring position ``start`` (draining: only if in ``held``)."""
        names, ring = self.names, self.ring
        count = len(ring)
        drain = self.draining if held is not None else frozenset()
        wanted = min(self.replicas, len(names) - len(drain - (held or frozenset())))
        found = []
        for step in range(count):
            if len(found) >= wanted:
                break
            name = ring[(start + step) % count]
            if name not in found and (name not in drain or name in held):
                found.append(name)
        return tuple(found)


def _home_orders(dcs, dc_weights):
    """For each of the 2**HOME_BITS home buckets, the DCs ordered by weighted rendezvous.

    Equal weights: highest 64-bit score first.  Otherwise the lowest ``-ln(u) / weight``
    first (``u`` in (0, 1]), computed with ``_log_unit`` so every machine agrees.
    Ties go to the DC name.
    """
    size = 1 << HOME_BITS
    streams = [_u64_stream(HOME_SALT, dc, size) for dc in dcs]
    equal = len(set(dc_weights.values())) <= 1
    scale = 1.0 / 18446744073709551616.0
    memo = {}
    orders = []
    for hb in range(size):
        if equal:
            ranked = sorted((-streams[i][hb], dc) for i, dc in enumerate(dcs))
        else:
            ranked = sorted((-_log_unit((streams[i][hb] + 1) * scale) / dc_weights[dc], dc)
                            for i, dc in enumerate(dcs))
        order = tuple(dc for _score, dc in ranked)
        orders.append(memo.setdefault(order, order))
    return orders


# ---------------------------------------------------------------------------
# place


def place(hosts, projects, replicas_per_dc=2, allow_degraded=False, previous=None, dc_weights=None):
    """Return ``{project_id: (host, ...)}``: ``replicas_per_dc`` hosts of every DC, primary first.

    ``hosts``: list of ``{"name", "dc", "weight" (1.0), "state" ("up"|"down"|"draining")}``.
    ``projects``: iterable of unique non-empty strings.
    ``allow_degraded``: a DC with fewer eligible hosts than ``replicas_per_dc`` gives what it
    has instead of raising.  ``previous``: ``{project_id: [host, ...]}`` deployed last time
    (only draining hosts look at it).  ``dc_weights``: ``{dc: weight}`` share of primaries.
    Raises ``PlacementError`` on bad input.
    """
    _check_replicas(replicas_per_dc)
    checked = validate_hosts(hosts)
    by_dc = {}
    for name, dc, weight, state in checked:
        by_dc.setdefault(dc, []).append((name, weight, state))
    dcs = sorted(by_dc)
    for dc in dcs:
        members = by_dc[dc]
        up = sum(1 for m in members if m[2] == "up")
        if up < replicas_per_dc and not allow_degraded:
            raise PlacementError(
                "dc %r: %d eligible (up) host(s) for replicas_per_dc=%d; add or bring up hosts in %r, "
                "lower replicas_per_dc, or set allow_degraded: true" % (dc, up, replicas_per_dc, dc))
        if len(members) > MAX_HOSTS_PER_DC:
            raise PlacementError("dc %r: more than %d hosts; split it into several DCs" % (dc, MAX_HOSTS_PER_DC))
    weights = _check_dc_weights(dc_weights, dcs)
    projects = list(projects)

    full = len(projects) >= FULL_TABLE_MIN_PROJECTS
    tables = {}
    for dc in dcs:
        members = sorted(m for m in by_dc[dc] if m[2] != "down")
        tables[dc] = _DcTable(members, replicas_per_dc, full)
    orders = _home_orders(dcs, weights)
    order_tables = {}
    home = [order_tables.setdefault(order, tuple(tables[dc].table for dc in order)) for order in orders]
    out = _assign(projects, home, len(dcs))
    if len(out) != len(projects):
        seen = set()
        for pid in projects:
            if pid in seen:
                raise PlacementError("projects: duplicate project id %r; list every project once" % (pid,))
            seen.add(pid)
    if any(t.draining for t in tables.values()):
        _fix_draining(out, previous or {}, orders, tables)
    return out


def project_hash(pid):
    """The 64-bit hash of a project id (bucket: top GRID_BITS bits; home DC: low HOME_BITS bits)."""
    return int.from_bytes(hashlib.blake2b(pid.encode("utf-8"), digest_size=8).digest(), "little")


def _assign(projects, home, ndcs):
    out = {}
    b2b = hashlib.blake2b
    frombytes = int.from_bytes
    shift = 64 - GRID_BITS
    hmask = (1 << HOME_BITS) - 1
    try:
        if ndcs == 3:
            for pid in projects:
                h = frombytes(b2b(pid.encode("utf-8"), digest_size=8).digest(), "little")
                t1, t2, t3 = home[h & hmask]
                b = h >> shift
                out[pid] = t1[b] + t2[b] + t3[b]
        elif ndcs == 2:
            for pid in projects:
                h = frombytes(b2b(pid.encode("utf-8"), digest_size=8).digest(), "little")
                t1, t2 = home[h & hmask]
                b = h >> shift
                out[pid] = t1[b] + t2[b]
        else:
            for pid in projects:
                h = frombytes(b2b(pid.encode("utf-8"), digest_size=8).digest(), "little")
                b = h >> shift
                out[pid] = sum((t[b] for t in home[h & hmask]), ())
    except AttributeError:
        bad = next(p for p in projects if not isinstance(p, str))
        raise PlacementError("projects: %r is not a string; project ids are strings (e.g. UUIDs)" % (bad,))
    if "" in out:
        raise PlacementError("projects: empty project id; remove empty lines from the project list")
    return out


def _fix_draining(out, previous, orders, tables):
    """Redo the projects whose answer names a draining host that they do not hold in ``previous``."""
    shift = 64 - GRID_BITS
    hmask = (1 << HOME_BITS) - 1
    draining = frozenset().union(*(t.draining for t in tables.values()))
    for pid, hosts in out.items():
        if draining.isdisjoint(hosts):
            continue
        held = frozenset(previous.get(pid) or ())
        if held.issuperset(draining.intersection(hosts)):
            continue
        h = project_hash(pid)
        bucket = h >> shift
        result = ()
        for dc in orders[h & hmask]:
            table = tables[dc]
            if table.draining.isdisjoint(table.table[bucket]):
                result += table.table[bucket]
            else:
                result += table.walk(table.start(bucket) % max(1, len(table.ring)), held)
        out[pid] = result


# ---------------------------------------------------------------------------
# views of a placement


def host_roles(placement, host=None):
    """``{host: {"primary": [pid], "replica": [pid]}}`` (replica: holds a copy, not primary).

    With ``host``, just that host's entry (empty lists if it holds nothing).
    """
    if host is not None:
        primary, replica = [], []
        for pid, hosts in placement.items():
            if hosts and hosts[0] == host:
                primary.append(pid)
            elif host in hosts:
                replica.append(pid)
        return {"primary": sorted(primary), "replica": sorted(replica)}
    roles = {}
    for pid, hosts in placement.items():
        for i, name in enumerate(hosts):
            entry = roles.get(name)
            if entry is None:
                entry = roles[name] = {"primary": [], "replica": []}
            entry["primary" if i == 0 else "replica"].append(pid)
    for entry in roles.values():
        entry["primary"].sort()
        entry["replica"].sort()
    return roles


def diff_placements(old, new, host_dc=None):
    """Slot moves between two placements.

    Returns ``{"moves": [{"project", "from", "to"}], "primary_changes": [{"project", "from", "to"}],
    "added_projects": [...], "removed_projects": [...], "slots_moved": int}``.  A move pairs a
    host that lost a project with one that gained it, in the same DC when ``host_dc`` knows
    both; ``from`` or ``to`` is ``None`` where a slot appeared or vanished.
    """
    host_dc = host_dc or {}
    moves, primary_changes = [], []
    added = sorted(p for p in new if p not in old)
    removed = sorted(p for p in old if p not in new)
    for pid in sorted(p for p in new if p in old):
        before, after = tuple(old[pid]), tuple(new[pid])
        if before == after:
            continue
        if before and after and before[0] != after[0]:
            primary_changes.append({"project": pid, "from": before[0], "to": after[0]})
        lost = [h for h in before if h not in after]
        gained = [h for h in after if h not in before]
        for src in list(lost):
            dst = next((g for g in gained if host_dc.get(g) is not None and host_dc.get(g) == host_dc.get(src)),
                       None)
            if dst is not None:
                moves.append({"project": pid, "from": src, "to": dst})
                lost.remove(src)
                gained.remove(dst)
        for i in range(max(len(lost), len(gained))):
            moves.append({"project": pid, "from": lost[i] if i < len(lost) else None,
                          "to": gained[i] if i < len(gained) else None})
    return {"moves": moves, "primary_changes": primary_changes, "added_projects": added,
            "removed_projects": removed, "slots_moved": len(moves)}


def load_report(placement, hosts):
    """Per host: slots, primaries, weight, load per weight vs the DC mean; per DC: max/mean."""
    checked = validate_hosts(hosts)
    slots = dict((h[0], 0) for h in checked)
    primaries = dict((h[0], 0) for h in checked)
    for hosts_of in placement.values():
        for i, name in enumerate(hosts_of):
            slots[name] = slots.get(name, 0) + 1
            if i == 0:
                primaries[name] = primaries.get(name, 0) + 1
    per_host, per_dc = {}, {}
    for name, dc, weight, state in checked:
        per_dc.setdefault(dc, []).append((name, weight, state))
    for dc, members in sorted(per_dc.items()):
        up = [m for m in members if m[2] == "up"]
        up_weight = sum(m[1] for m in up) or 1.0
        up_slots = sum(slots[m[0]] for m in up)
        total_s = sum(slots[m[0]] for m in members)
        ratios = []
        for name, weight, state in members:
            # draining and down hosts are expected to hold nothing new: their share is the up hosts'
            expected = up_slots * weight / up_weight if state == "up" else 0.0
            ratio = slots[name] / expected if expected else 0.0
            if state == "up":
                ratios.append(ratio)
            per_host[name] = {"dc": dc, "state": state, "weight": weight, "slots": slots[name],
                              "primary": primaries[name], "expected_slots": round(expected, 1),
                              "load_vs_weight": round(ratio, 4)}
        per_dc[dc] = {"hosts": len(members), "slots": total_s,
                      "max_over_mean": round(max(ratios), 4) if ratios else 0.0,
                      "min_over_mean": round(min(ratios), 4) if ratios else 0.0}
    return {"hosts": per_host, "dcs": per_dc}
