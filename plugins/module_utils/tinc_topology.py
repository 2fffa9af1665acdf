# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning for the tinc VPN mesh: validation, stable addresses, hubs, bounded ConnectTo sets.

No Ansible import and no I/O: the ``tinc_plan`` filter and ``benchmarks/tinc_scale.py`` call
:func:`plan`; the unit tests call every stage.

Topology (``k`` = the most outgoing ConnectTo lines any node gets):

* hubs: the configured ones, or the first ``hubs_per_dc`` hosts of each data center in natural name
  order (``dc1-s2`` before ``dc1-s10``), so numbering new hosts upwards never moves a hub;
* every hub connects to the hubs at offsets ``1 = o_1 < ... < o_k`` of a ring over all hubs
  (ordered rank-in-DC first, so ring neighbours sit in different DCs); offset 1 makes the hub graph a
  cycle plus chords, so it stays connected without any one hub; the chords are the set with the
  smallest diameter (searched while small, geometric beyond);
* every other node (a leaf) connects to ``leaf_hubs`` hubs (default 2: one lost hub never cuts it
  off), its own DC's first, picked per leaf by rendezvous hashing so leaves spread over a DC's hubs,
  topped up from other DCs when its DC has too few; its remaining slots go to the next leaves of its
  own DC in natural order (a ring inside the DC).

Addresses: an explicit ``vpn_address`` wins; then the address a node had before (``previous``, read
back from the hosts), so adding or removing a host never renumbers another; a node without either
gets ``sha256(name)`` folded into the subnet, probing upwards past taken addresses.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
import json
import math
import re
from collections import deque

__all__ = [
    "TincTopologyError",
    "address_error",
    "validate_settings",
    "tinc_name",
    "natural_key",
    "validate_nodes",
    "allocate_addresses",
    "parse_manifests",
    "previous_addresses",
    "revoked",
    "select_hubs",
    "hub_offsets",
    "connect_to",
    "plan",
    "graph",
    "bfs_distances",
    "diameter",
    "is_connected",
]

_TINC_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")
# Values that end up in tinc.conf, host files and the manifest: strict, so a newline, a quote or a space
# can never add a directive (``Subnet = 0.0.0.0/0``) to every member's files.
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}\Z")
_DC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_DNS_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_NETWORK_RE = re.compile(r"[A-Za-z0-9_]{1,15}\Z")
# Only what an IP literal is made of: no scope id ('%'), space or newline.
_IP_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")
# Digits and dots only but no IP address (10.0.0.300, 123): not a DNS name either, the resolver would read
# it as a (different) IPv4 address.
_NUMERIC_RE = re.compile(r"[0-9.]+")
SETTINGS = {
    "port": ("an integer from 1 to 65535", lambda v: _whole(v) and 1 <= v <= 65535),
    "mtu": ("an integer from 576 to 65535", lambda v: _whole(v) and 576 <= v <= 65535),
    "compression": ("an integer from 0 to 11", lambda v: _whole(v) and 0 <= v <= 11),
    "max_timeout": ("an integer from 1 to 900 (seconds)", lambda v: _whole(v) and 1 <= v <= 900),
    "mode": ("router, switch or hub", lambda v: v in ("router", "switch", "hub")),
    "address_family": ("ipv4, ipv6 or any", lambda v: v in ("ipv4", "ipv6", "any")),
    "network": ("1-15 letters, digits or '_'", lambda v: isinstance(v, str) and bool(_NETWORK_RE.match(v))),
}


class TincTopologyError(ValueError):
    """Bad input for the mesh; ``errors`` lists every problem found, one sentence each."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def tinc_name(name):
    """The tinc node name for an inventory name: tinc allows only ``[A-Za-z0-9_]``."""
    return _TINC_NAME_BAD.sub("_", str(name))


def _whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _ip_literal(value):
    """``value`` as an address when it is a plain IPv4 or IPv6 literal, else None.

    ``ipaddress`` alone is not enough: it takes an IPv6 scope id (``fe80::1%eth0``) holding any text, a
    newline and a whole directive (``Subnet = 0.0.0.0/0``) included; tinc has no use for a scope id here.
    """
    if not isinstance(value, str) or not _IP_CHARS_RE.fullmatch(value):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def address_error(value):
    """Why ``value`` cannot be the address other hosts reach a node at (an IP address or a DNS name), or None."""
    if not isinstance(value, str):
        return f"{value!r} is not an IP address or a host name"
    if _ip_literal(value) is not None:
        return None
    if "%" in value:
        return (f"{value!r} is not an IP address or a DNS name: IPv6 scope ids ('%...') are not allowed, "
                "give the address without it")
    if _DNS_RE.fullmatch(value) and not _NUMERIC_RE.fullmatch(value):
        return None
    return (f"{value!r} is not an IP address or a DNS name (an IPv4 or IPv6 address without a scope id, or "
            "letters, digits, '-' and '.', no spaces or newlines)")


def validate_settings(settings):
    """Check the daemon settings that reach tinc.conf and host files (``port``, ``mtu``, ``compression``,
    ``max_timeout``, ``mode``, ``address_family``, ``network``; None means not given). Returns the given ones; raises
    :class:`TincTopologyError` listing every bad one."""
    errors, out = [], {}
    for key, value in sorted(settings.items()):
        if value is None:
            continue
        if key not in SETTINGS:
            errors.append(f"unknown setting {key}: use {', '.join(sorted(SETTINGS))}")
            continue
        rule, ok = SETTINGS[key]
        if isinstance(value, str) and value.isdigit() and key in ("port", "mtu", "compression", "max_timeout"):
            value = int(value)
        if not ok(value):
            errors.append(f"{key} {value!r} must be {rule}")
        out[key] = value
    if errors:
        raise TincTopologyError(errors)
    return out


def natural_key(text):
    """Sort key that orders embedded numbers numerically: ``s2`` before ``s10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part)


def _digest(*parts):
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode("utf-8")).digest()[:8], "big")


def _network(subnet):
    try:
        net = ipaddress.ip_network(str(subnet), strict=True)
    except ValueError as exc:
        raise TincTopologyError([f"VPN subnet {subnet!r} is not a network address with a prefix ({exc})"]) from None
    if net.version != 4 or net.prefixlen > 30:
        raise TincTopologyError([f"VPN subnet {subnet} must be IPv4 with a prefix of /30 or shorter"])
    return net


def _usable(net):
    """First usable address (as int) and how many there are (network and broadcast excluded)."""
    return int(net.network_address) + 1, net.num_addresses - 2


def validate_nodes(nodes, subnet, hubs=None, k=3, leaf_hubs=2, hubs_per_dc=2):
    """Check every input rule at once; raise :class:`TincTopologyError` listing all problems.

    ``nodes``: list of dicts with ``name``, ``dc``, ``address`` (how other hosts reach it) and an
    optional ``vpn_address``. Returns the parsed subnet.
    """
    errors = []
    try:
        net = _network(subnet)
    except TincTopologyError as exc:
        errors.extend(exc.errors)
        net = None
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        errors.append(f"max_connect (k) must be an integer >= 2 so each node keeps two paths, got {k!r}")
    if not isinstance(leaf_hubs, int) or isinstance(leaf_hubs, bool) or leaf_hubs < 1:
        errors.append(f"leaf_hubs must be an integer >= 1, got {leaf_hubs!r}")
    elif isinstance(k, int) and leaf_hubs > k:
        errors.append(f"leaf_hubs ({leaf_hubs}) cannot exceed max_connect ({k})")
    if not hubs and (not isinstance(hubs_per_dc, int) or isinstance(hubs_per_dc, bool) or hubs_per_dc < 1):
        errors.append(f"hubs_per_dc must be an integer >= 1, got {hubs_per_dc!r}")

    seen_names, seen_tinc, seen_vpn = set(), {}, {}
    for node in nodes:
        name = node.get("name")
        if not name:
            errors.append(f"a node has no name: {node!r}")
            continue
        if not isinstance(name, str) or not _HOST_RE.match(name):
            errors.append(f"host name {name!r} must be 1-253 letters, digits, '_', '.' or '-', starting with a letter "
                          "or digit (it is written into every member's files)")
            continue
        if name in seen_names:
            errors.append(f"host {name} is listed twice")
            continue
        seen_names.add(name)
        tname = tinc_name(name)
        if tname in seen_tinc:
            errors.append(f"hosts {seen_tinc[tname]} and {name} map to the same tinc name {tname}")
        seen_tinc[tname] = name
        dc = node.get("dc")
        if not dc:
            errors.append(f"host {name} has no data center (dc)")
        elif not isinstance(dc, str) or not _DC_RE.match(dc):
            errors.append(f"host {name}: dc {dc!r} must be 1-63 letters, digits, '_', '.' or '-', starting with a "
                          "letter or digit")
        if not node.get("address"):
            errors.append(f"host {name} has no reachable address (set its private address host variable)")
        elif address_error(node["address"]):
            errors.append(f"host {name}: address {address_error(node['address'])}")
        vpn = node.get("vpn_address")
        if vpn in (None, ""):
            continue
        addr = _ip_literal(str(vpn))
        if addr is None:
            errors.append(f"host {name}: vpn_address {vpn!r} is not an IP address (an IPv4 address of the VPN subnet)")
            continue
        if net is not None:
            first, count = _usable(net)
            if addr not in net:
                errors.append(f"host {name}: vpn_address {addr} is outside the VPN subnet {net}")
            elif not first <= int(addr) < first + count:
                errors.append(f"host {name}: vpn_address {addr} is the network or broadcast address of {net}")
        if addr in seen_vpn:
            errors.append(f"hosts {seen_vpn[addr]} and {name} have the same vpn_address {addr}")
        else:
            seen_vpn[addr] = name

    for hub in hubs or ():
        if not isinstance(hub, str) or not _HOST_RE.match(hub):
            errors.append(f"hub {hub!r} is not a host name")
        elif hub not in seen_names:
            errors.append(f"hub {hub} is not a member of the VPN (not in the inventory group or excluded)")
    if net is not None and len(seen_names) > _usable(net)[1]:
        errors.append(f"VPN subnet {net} has {_usable(net)[1]} addresses for {len(seen_names)} hosts")
    if errors:
        raise TincTopologyError(errors)
    return net


def allocate_addresses(nodes, subnet, previous=None):
    """Map node name -> VPN address (str).

    Order of precedence: the node's explicit ``vpn_address``; its ``previous`` address when still
    inside the subnet and not claimed above; else ``sha256(name)`` folded into the usable range and
    probed upwards (wrapping) to the first free address. Stable: a node's address depends only on
    itself unless its hashed slot was already taken, and ``previous`` pins even those.
    """
    net = _network(subnet)
    first, count = _usable(net)
    previous = previous or {}
    taken, result = {}, {}

    def claim(name, value):
        taken[value] = name
        result[name] = str(ipaddress.IPv4Address(value))

    names = sorted((n["name"] for n in nodes), key=natural_key)
    by_name = {n["name"]: n for n in nodes}
    for name in names:
        vpn = by_name[name].get("vpn_address")
        if vpn not in (None, ""):
            claim(name, int(ipaddress.ip_address(str(vpn))))
    for name in names:
        if name in result or not previous.get(name):
            continue
        try:
            value = int(ipaddress.ip_address(str(previous[name])))
        except ValueError:
            continue
        if first <= value < first + count and value not in taken:
            claim(name, value)
    for name in names:
        if name in result:
            continue
        slot = _digest("tinc-vpn", name) % count
        while first + slot in taken:
            slot = (slot + 1) % count
        claim(name, first + slot)
    return result


def parse_manifests(manifests):
    """host -> ``{name: record}`` from host -> manifest (dict or JSON text; anything unreadable is empty)."""
    parsed = {}
    for host, manifest in manifests.items():
        if isinstance(manifest, str):
            try:
                manifest = json.loads(manifest) if manifest.strip() else {}
            except ValueError:
                manifest = {}
        members = manifest.get("members") if isinstance(manifest, dict) else None
        parsed[host] = {k: v for k, v in members.items() if isinstance(v, dict)} if isinstance(members, dict) else {}
    return parsed


def previous_addresses(manifests):
    """Merge what the hosts remember into name -> VPN address for :func:`allocate_addresses`.

    ``manifests``: host name -> that host's manifest ``{"members": {name: {"vpn_address": ...}}}``
    (or its JSON text). A host's record of itself wins; for a host that lost its own record
    (reinstalled), the first other host's record in natural order is used.
    """
    parsed = parse_manifests(manifests)
    result = {}
    for host in sorted(parsed, key=natural_key):
        for name, record in parsed[host].items():
            if record.get("vpn_address"):
                result.setdefault(name, record["vpn_address"])
    for host, members in parsed.items():
        if members.get(host, {}).get("vpn_address"):
            result[host] = members[host]["vpn_address"]
    return result


def revoked(manifests, members):
    """host -> sorted tinc names it recorded as members that are members no more (files to remove).

    Only names from the host's own manifest: the role never removes a host file it did not write.
    """
    current = {tinc_name(m) for m in members}
    out = {}
    for host, known in parse_manifests(manifests).items():
        names = {record.get("tinc_name") or tinc_name(name) for name, record in known.items()}
        out[host] = sorted((n for n in names - current if not _TINC_NAME_BAD.search(n)), key=natural_key)
    return out


def select_hubs(nodes, hubs=None, hubs_per_dc=2):
    """Configured hubs as given (sorted), else the first ``hubs_per_dc`` nodes of each DC."""
    if hubs:
        return sorted(set(hubs), key=natural_key)
    chosen = []
    for dc in sorted({n["dc"] for n in nodes}, key=natural_key):
        members = sorted((n["name"] for n in nodes if n["dc"] == dc), key=natural_key)
        chosen.extend(members[:hubs_per_dc])
    return sorted(chosen, key=natural_key)


def _hub_ring(hubs, dc_of):
    """Hubs ordered rank-within-DC first, then DC: ring neighbours are in different DCs."""
    rank, seen = {}, {}
    for hub in sorted(hubs, key=natural_key):
        dc = dc_of[hub]
        rank[hub] = seen.get(dc, 0)
        seen[dc] = rank[hub] + 1
    return sorted(hubs, key=lambda h: (rank[h], natural_key(dc_of[h]), natural_key(h)))


def _circulant_eccentricity(count, offsets):
    """Hops from hub 0 to the farthest hub of the ring with chords ``offsets`` (all hubs alike)."""
    dist = {0: 0}
    frontier = [0]
    while frontier:
        nxt = []
        for node in frontier:
            for offset in offsets:
                for peer in ((node + offset) % count, (node - offset) % count):
                    if peer not in dist:
                        dist[peer] = dist[node] + 1
                        nxt.append(peer)
        frontier = nxt
    return max(dist.values())


@functools.lru_cache(maxsize=256)
def hub_offsets(count, k, budget=200000):
    """Up to ``k`` distinct ring offsets in ``1..count//2``; 1 is always one (the ring itself).

    A ring with chords is vertex-transitive, so one BFS gives its diameter: when trying every
    candidate set costs at most ``budget`` steps (sets x hubs x offsets), the first set in
    lexicographic order with the smallest diameter wins; beyond that, the offsets are the powers
    ``1, b, b**2, ...`` of ``b = count ** (1/k)`` (a mixed-radix walk: about ``k*b/2`` hops). Either way the result depends only on ``count`` and ``k``.
    """
    half = count // 2
    if half < 1:
        return ()
    if half <= k:
        return tuple(range(1, half + 1))
    if math.comb(half - 1, k - 1) * count * k <= budget:
        best = None
        for rest in itertools.combinations(range(2, half + 1), k - 1):
            offsets = (1,) + rest
            ecc = _circulant_eccentricity(count, offsets)
            if best is None or ecc < best[0]:
                best = (ecc, offsets)
        return best[1]
    base = max(2, round(count ** (1.0 / k)))
    offsets = []
    for j in range(k):
        offset = min(base**j, half)
        while offset in offsets and offset < half:
            offset += 1
        offsets.append(offset)
    return tuple(sorted(set(offsets)))


def connect_to(nodes, hubs, k=3, leaf_hubs=2):
    """Map node name -> ordered list of node names it opens meta-connections to (<= k each)."""
    dc_of = {n["name"]: n["dc"] for n in nodes}
    hub_set = set(hubs)
    ring = _hub_ring(hubs, dc_of)
    count = len(ring)
    result = {}
    for index, hub in enumerate(ring):
        targets = []
        for offset in hub_offsets(count, k):
            # An offset of exactly half the ring joins the same pair from both ends: open it once.
            if 2 * offset == count and index >= offset:
                continue
            targets.append(ring[(index + offset) % count])
        result[hub] = targets

    leaves_by_dc = {}
    for name in sorted(dc_of, key=natural_key):
        if name not in hub_set:
            leaves_by_dc.setdefault(dc_of[name], []).append(name)
    for dc, leaves in leaves_by_dc.items():
        for index, leaf in enumerate(leaves):
            own = sorted((h for h in hubs if dc_of[h] == dc), key=lambda h: -_digest(leaf, h))
            other = sorted((h for h in hubs if dc_of[h] != dc), key=lambda h: -_digest(leaf, h))
            targets = (own + other)[:leaf_hubs]
            for step in range(1, len(leaves)):
                if len(targets) >= k:
                    break
                targets.append(leaves[(index + step) % len(leaves)])
            result[leaf] = targets
    return result


def plan(nodes, subnet, hubs=None, k=3, leaf_hubs=2, hubs_per_dc=2, previous=None):
    """Validate, allocate, pick hubs and connections; the role's single entry point.

    Returns ``{"subnet", "prefixlen", "hubs": [names], "nodes": {name: {"name", "tinc_name", "dc",
    "address", "vpn_address", "hub", "connect_to": [tinc names]}}}``.
    """
    net = validate_nodes(nodes, subnet, hubs=hubs, k=k, leaf_hubs=leaf_hubs, hubs_per_dc=hubs_per_dc)
    addresses = allocate_addresses(nodes, subnet, previous=previous)
    chosen = select_hubs(nodes, hubs=hubs, hubs_per_dc=hubs_per_dc)
    links = connect_to(nodes, chosen, k=k, leaf_hubs=leaf_hubs)
    hub_set = set(chosen)
    out = {}
    for node in sorted(nodes, key=lambda n: natural_key(n["name"])):
        name = node["name"]
        out[name] = {
            "name": name,
            "tinc_name": tinc_name(name),
            "dc": node["dc"],
            "address": node["address"],
            "vpn_address": addresses[name],
            "hub": name in hub_set,
            "connect_to": [tinc_name(t) for t in links.get(name, [])],
        }
    return {"subnet": str(net), "prefixlen": net.prefixlen, "hubs": chosen, "nodes": out}


def graph(links, down=()):
    """Undirected adjacency (sets) of the meta-connection graph, leaving out the ``down`` nodes."""
    down = set(down)
    adj = {name: set() for name in links if name not in down}
    for name, targets in links.items():
        if name in down:
            continue
        for target in targets:
            if target not in down and target != name:
                adj[name].add(target)
                adj.setdefault(target, set()).add(name)
    return adj


def bfs_distances(adj, start):
    """Hop counts from ``start`` to every node it reaches."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in adj[node]:
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    return dist


def is_connected(adj):
    """True when every node reaches every other (an empty graph counts as connected)."""
    if not adj:
        return True
    return len(bfs_distances(adj, next(iter(adj)))) == len(adj)


def diameter(adj):
    """Longest shortest path in hops; ``None`` when the graph is disconnected."""
    best = 0
    for start in adj:
        dist = bfs_distances(adj, start)
        if len(dist) != len(adj):
            return None
        best = max(best, *dist.values())
    return best
