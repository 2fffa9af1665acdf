# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZFS pool layouts (pure): validate a desired layout, build ``zpool create`` arguments, parse
``zpool status -P`` and compare by resolved device path.

A layout is ``Layout(data, log, cache, spares)``: ``data`` and ``log`` are tuples of top-level vdevs
``(kind, devices)`` with kind ``disk`` (one device), ``mirror``, ``raidz1``, ``raidz2`` or ``raidz3``;
``cache`` and ``spares`` are tuples of devices. Device comparison goes through an injected ``realpath``
function, so ``/dev/disk/by-id/virtio-x`` and ``/dev/vdb`` are the same disk, and a whole disk that ZFS
partitioned (``...-part1``, ``/dev/vdb1``) matches the disk it was given as.
"""

import re
from collections import namedtuple

__all__ = ["LayoutError", "Layout", "KINDS", "desired_layout", "create_args", "devices",
           "parse_status", "compare", "device_keys", "format_layout", "partition_of", "status_members", "in_use"]

KINDS = ("stripe", "mirror", "raidz1", "raidz2", "raidz3")
_MIN_DEVICES = {"mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}
_GROUP_RE = re.compile(r"(mirror|raidz[123]|draid\S*|spare|replacing)-\d+\Z")
_SECTIONS = {"logs": "log", "cache": "cache", "spares": "spares", "special": "special", "dedup": "dedup"}
# A partition (any number) of a whole disk: /dev/vdb3, /dev/nvme0n1p2, /dev/nbd0p1, or a by-id link ending in
# -partN.
_PART_RES = (re.compile(r"(/dev/(?:[shv]d[a-z]+|xvd[a-z]+))([1-9]\d*)\Z"),
             re.compile(r"(/dev/(?:nvme\d+n\d+|mmcblk\d+|loop\d+|nbd\d+|rbd\d+|zd\d+|md\d+))p([1-9]\d*)\Z"))
_BYID_PART_RE = re.compile(r"(/.+)-part([1-9]\d*)\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

Layout = namedtuple("Layout", "data log cache spares")


class LayoutError(ValueError):
    """A desired layout that cannot be built; the message names the field and the fix."""


def _vdevs(field, specs):
    out = []
    for i, spec in enumerate(specs or ()):
        where = "%s[%d]" % (field, i)
        if not isinstance(spec, dict):
            raise LayoutError("%s must be a mapping like {type: mirror, disks: [...]}, got %r" % (where, spec))
        kind = spec.get("type", "stripe")
        disks = spec.get("disks") or []
        if kind not in KINDS:
            raise LayoutError("%s.type is %r: use one of %s" % (where, kind, ", ".join(KINDS)))
        if field == "log" and kind.startswith("raidz"):
            raise LayoutError("%s.type is %s: log vdevs can only be stripe or mirror" % (where, kind))
        if not isinstance(disks, list) or not all(_is_path(d) for d in disks):
            raise LayoutError("%s.disks must be a list of absolute device or file paths, got %r" % (where, disks))
        if not disks:
            raise LayoutError("%s.disks is empty: name at least one device" % where)
        if kind == "stripe":
            out.extend(("disk", (d,)) for d in disks)
        elif len(disks) < _MIN_DEVICES[kind]:
            raise LayoutError("%s: %s needs at least %d disks, got %d" % (where, kind, _MIN_DEVICES[kind], len(disks)))
        else:
            out.append((kind, tuple(disks)))
    return tuple(out)


def _is_path(path):
    return isinstance(path, str) and path.startswith("/") and not _CONTROL_RE.search(path)


def _paths(field, paths):
    paths = list(paths or ())
    if not all(_is_path(d) for d in paths):
        raise LayoutError("%s must be a list of absolute device or file paths, got %r" % (field, paths))
    return tuple(paths)


def desired_layout(vdevs, log=None, cache=None, spares=None):
    """Validate module options into a Layout; raise LayoutError naming the field."""
    layout = Layout(_vdevs("vdevs", vdevs), _vdevs("log", log), _paths("cache", cache), _paths("spares", spares))
    if not layout.data:
        raise LayoutError("vdevs is empty: give at least one data vdev, e.g. [{type: mirror, disks: [/dev/a, /dev/b]}]")
    seen = set()
    for dev in devices(layout):
        if dev in seen:
            raise LayoutError("device %s appears twice in the layout: use each device once" % dev)
        seen.add(dev)
    return layout


def devices(layout):
    """Every device of a layout, in order."""
    out = []
    for _kind, devs in layout.data + layout.log:
        out.extend(devs)
    return out + list(layout.cache) + list(layout.spares)


def _vdev_args(vdevs):
    args = []
    for kind, devs in vdevs:
        if kind != "disk":
            args.append(kind)
        args.extend(devs)
    return args


def create_args(layout):
    """The vdev part of ``zpool create``: ``mirror a b log mirror c d cache e spare f``."""
    args = _vdev_args(layout.data)
    if layout.log:
        args += ["log"] + _vdev_args(layout.log)
    if layout.cache:
        args += ["cache"] + list(layout.cache)
    if layout.spares:
        args += ["spare"] + list(layout.spares)
    return args


def parse_status(text, pool):
    """Parse ``zpool status -P <pool>`` into a Layout; special/dedup vdevs are returned under ``data``
    with kinds ``special:<kind>``/``dedup:<kind>`` so that they never match a desired data vdev."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["NAME", "STATE"])
    except StopIteration:
        raise LayoutError("no config section in 'zpool status' output for pool %s" % pool)
    sections = {"data": [], "log": [], "cache": [], "spares": [], "special": [], "dedup": []}
    section, top, group, taken = None, None, None, False
    for line in lines[start + 1:]:
        if not line.strip() or line.startswith("errors:"):
            break
        body = line.lstrip("\t")
        indent = len(body) - len(body.lstrip(" "))
        name = body.split()[0]
        m = _GROUP_RE.match(name)
        if group is not None and indent <= group:
            group = None
        if indent == 0:
            section = "data" if name == pool else _SECTIONS.get(name)
            if section is None:
                raise LayoutError("unknown section %r in 'zpool status' output for pool %s" % (name, pool))
            top = None
        elif section in ("cache", "spares"):
            if indent == 2:
                sections[section].append(name)
        elif indent == 2 and m and m.group(1) not in ("spare", "replacing"):
            top = [m.group(1), []]
            sections[section].append(top)
        elif indent == 2:
            top = ["disk", []]
            sections[section].append(top)
            if m:
                group, taken = indent, False
            else:
                top[1].append(name)
        elif m:
            # A spare-N or replacing-N group: only its first (original) device is part of the layout.
            group, taken = indent, False
        elif top is not None and group is None:
            top[1].append(name)
        elif top is not None and not taken:
            top[1].append(name)
            taken = True
    data = [(k, tuple(d)) for k, d in sections["data"]]
    for extra in ("special", "dedup"):
        data += [("%s:%s" % (extra, k), tuple(d)) for k, d in sections[extra]]
    return Layout(tuple(data), tuple((k, tuple(d)) for k, d in sections["log"]),
                  tuple(sections["cache"]), tuple(sections["spares"]))


def partition_of(path, realpath):
    """``(whole disk, partition number)`` when ``path`` is a partition of a disk (any number), else None."""
    resolved = realpath(path)
    for part_re in _PART_RES:
        m = part_re.match(resolved)
        if m:
            return m.group(1), int(m.group(2))
    m = _BYID_PART_RE.match(path)
    if m:
        return realpath(m.group(1)), int(m.group(2))
    return None


def device_keys(path, realpath):
    """Names under which a device reported by ZFS may have been given (to compare layouts): its resolved
    path, and for a whole disk that ZFS partitioned (partition 1) the disk itself."""
    keys = {realpath(path)}
    part = partition_of(path, realpath)
    if part and part[1] == 1:
        keys.add(part[0])
    return keys


def status_members(status_text):
    """``zpool status -P`` of every imported pool -> [(device, pool)] of every device in a layout."""
    members = []
    for chunk in re.split(r"(?m)^\s*pool: ", status_text or "")[1:]:
        pool = chunk.split("\n", 1)[0].strip()
        try:
            layout = parse_status(chunk, pool)
        except LayoutError:
            continue
        members.extend((dev, pool) for dev in devices(layout))
    return members


def in_use(wanted, members, realpath):
    """{device: pool} of the ``wanted`` devices that an imported pool uses: the device itself, the whole disk
    of a member partition (any partition, not only the first), or a partition of a member whole disk."""
    by_path, whole = {}, {}
    for dev, pool in members:
        by_path.setdefault(realpath(dev), pool)
        part = partition_of(dev, realpath)
        if part:
            by_path.setdefault(part[0], pool)
        else:
            whole.setdefault(realpath(dev), pool)
    used = {}
    for dev in wanted:
        part = partition_of(dev, realpath)
        pool = by_path.get(realpath(dev)) or (whole.get(part[0]) if part else None)
        if pool:
            used[dev] = pool
    return used


def _match_devices(want, have, realpath):
    if len(want) != len(have):
        return False
    pool = [device_keys(h, realpath) for h in have]
    for w in want:
        key = realpath(w)
        hit = next((i for i, keys in enumerate(pool) if key in keys), None)
        if hit is None:
            return False
        pool.pop(hit)
    return True


def _compare_vdevs(field, want, have, realpath):
    have, diffs = list(have), []
    for kind, devs in want:
        hit = next((i for i, (k, d) in enumerate(have) if k == kind and _match_devices(devs, d, realpath)), None)
        if hit is None:
            diffs.append("%s: %s %s is not in the pool" % (field, kind, " ".join(devs)))
        else:
            have.pop(hit)
    diffs += ["%s: %s %s is in the pool but not in the desired layout" % (field, k, " ".join(d)) for k, d in have]
    return diffs


def _compare_devices(field, want, have, realpath):
    have, diffs = list(have), []
    for dev in want:
        key = realpath(dev)
        hit = next((i for i, h in enumerate(have) if key in device_keys(h, realpath)), None)
        if hit is None:
            diffs.append("%s: %s is not in the pool" % (field, dev))
        else:
            have.pop(hit)
    return diffs + ["%s: %s is in the pool but not in the desired layout" % (field, h) for h in have]


def compare(desired, current, realpath):
    """Differences between a desired and a current Layout, as sentences; empty when they match."""
    return (_compare_vdevs("vdevs", desired.data, current.data, realpath)
            + _compare_vdevs("log", desired.log, current.log, realpath)
            + _compare_devices("cache", desired.cache, current.cache, realpath)
            + _compare_devices("spares", desired.spares, current.spares, realpath))


def format_layout(layout):
    """A Layout as the text of a diff: one line per top-level vdev."""
    out = ["%s %s" % (k, " ".join(d)) for k, d in layout.data]
    out += ["log %s %s" % (k, " ".join(d)) for k, d in layout.log]
    out += ["cache %s" % d for d in layout.cache] + ["spare %s" % d for d in layout.spares]
    return "\n".join(out) + "\n"
