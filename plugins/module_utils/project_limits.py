# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fair resources per project: Unix users and systemd slices from a project list (standard library only).

Every project this host holds a copy of gets its own user (the same uid on every host); the ones that run
here (its primaries: with ``active: mounted``, those whose dataset is mounted read-write, so the slices follow
an HA failover or a switchover through ``smc-project sync``) each get their own slice under one parent slice:

    <parent>.slice               host reserve: MemoryMax = MemTotal - reserve, lower CPUWeight/IOWeight
    <parent>-<user>.slice        the project's CPUWeight, CPUQuota, MemoryHigh/Max/SwapMax, TasksMax, IO

The parent's name has no '-', so it sits directly below the root cgroup, a sibling of system.slice (where
sshd, tinc, etcd and the storage agent run) and user.slice.

User name: ``<prefix><key>`` cut to 32 characters (useradd's limit), where key is a canonical UUID's 32 hex
digits, or else the id with '-' as '_' (so slice names never need systemd's '\\x2d' escapes). uid (and the
user's group's gid): blake2b of the id into ``[uid_min, uid_max]``, the same on every host, so files on
replicated datasets keep their owner after a failover. Two projects with one name or uid, or a name or uid
held by another user, are refused naming both; ``uid`` of a project overrides the derived one.

Nothing here reads or writes the host: the module ``smc.backend.project_limits`` and the script
``smc-project`` read files, call these functions and act. Every input is checked here first and all
problems are reported at once, each naming the field and the fix.
"""

import hashlib
import json
import re

__all__ = [
    "LimitsError", "LIMIT_KEYS", "PROPERTIES", "BASE_LIMITS", "MARKER", "check_id", "user_name", "derive_uid",
    "parse_size", "limits_properties", "validate", "parse_passwd", "plan_users", "check_cgroup2",
    "parent_unit", "project_unit", "cgroup_dir", "parent_properties", "render_slice", "desired_units",
    "slice_properties", "plan_units", "render_config", "parse_config", "load_config", "project_slice",
    "rw_mounts", "runs_here", "plan_sync", "ACTIVE_MODES",
]

MARKER = "# Managed by smc.backend.project_limits; changes here are overwritten."
USER_MAX = 32
ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,199}")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]{0,15}")
CLASS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
PARENT_RE = re.compile(r"[a-z0-9_]{1,64}")
DEVICE_RE = re.compile(r"/dev/[A-Za-z0-9_.:+@=-]+(?:/[A-Za-z0-9_.:+@=-]+)*")
HOME_RE = re.compile(r"/[A-Za-z0-9_.:+@=-]+(?:/[A-Za-z0-9_.:+@=-]+)*")
SIZE_RE = re.compile(r"([0-9]{1,19})([KMGT]?)", re.IGNORECASE)
PERCENT_RE = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,2}))?%")
QUOTA_RE = re.compile(r"([0-9]{1,6})(?:\.([0-9]{1,2}))?%")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
DEFAULT_UID_RANGE = (200000, 1999999999)
# Never derived: root, nobody, the 16-bit "invalid" uid and 32-bit -1, and systemd's dynamic users' range.
RESERVED_UIDS = (0, 65534, 65535, 4294967295)
DYNAMIC_UIDS = (61184, 65519)

# Option key -> systemd [Slice] property, in the order the unit files list them.
PROPERTIES = (
    ("cpu_weight", "CPUWeight"), ("cpu_quota", "CPUQuota"), ("memory_high", "MemoryHigh"),
    ("memory_max", "MemoryMax"), ("memory_swap_max", "MemorySwapMax"), ("tasks_max", "TasksMax"),
    ("io_weight", "IOWeight"), ("io_read_bandwidth_max", "IOReadBandwidthMax"),
    ("io_write_bandwidth_max", "IOWriteBandwidthMax"),
)
LIMIT_KEYS = tuple(k for k, _p in PROPERTIES)
# What every project gets before its class and its own limits (systemd's own defaults, and a task bound).
BASE_LIMITS = {"cpu_weight": 100, "io_weight": 100, "tasks_max": 4096}
RESERVE_KEYS = ("memory", "cpu_weight", "io_weight", "cpu_quota", "tasks_max")
PROJECT_KEYS = ("id", "role", "class", "limits", "uid", "home")
ACTIVE_MODES = ("all", "mounted")


class LimitsError(ValueError):
    """Bad input or host state; the message names the field and the fix. Raised before any change."""


# ----------------------------------------------------------------------------------------------- names
def check_id(where, pid):
    """Error text for a project id that cannot become a user and slice name, else None."""
    if not isinstance(pid, str) or not pid:
        return "%s: %r is not a project id; give a non-empty string such as 'demo-a' or a UUID" % (where, pid)
    if any(c in pid for c in "\n\r\0/") or pid.startswith("-") or ".." in pid:
        return ("%s: %r has a '/', '..', newline, NUL or a leading '-'; a project id is lower-case letters, "
                "digits, '-' and '_', starting with a letter or digit" % (where, pid))
    if not ID_RE.fullmatch(pid):
        return ("%s: %r cannot be a user name: use lower-case letters, digits, '-' and '_' only (at most 200, "
                "starting with a letter or digit)" % (where, pid))
    return None


def user_name(pid, prefix="p"):
    """The Unix user of a project (a valid id): prefix + UUID hex digits or the id with '_' for '-', <= 32."""
    key = pid.replace("-", "") if UUID_RE.fullmatch(pid) else pid.replace("-", "_")
    return (prefix + key)[:USER_MAX]


def derive_uid(pid, uid_min=DEFAULT_UID_RANGE[0], uid_max=DEFAULT_UID_RANGE[1]):
    """A stable uid for a project id: blake2b into [uid_min, uid_max], the same on every host and Python."""
    digest = hashlib.blake2b(pid.encode("utf-8"), digest_size=8, person=b"smc-project-uid").digest()
    return uid_min + int.from_bytes(digest, "big") % (uid_max - uid_min + 1)


def _uid_error(where, uid):
    if isinstance(uid, bool) or not isinstance(uid, int):
        return "%s: %r is not a whole number" % (where, uid)
    if not 1000 <= uid <= 4294967294 or uid in RESERVED_UIDS or DYNAMIC_UIDS[0] <= uid <= DYNAMIC_UIDS[1]:
        return ("%s: %d is not a uid for a project (1000..4294967294, not 65534/65535 or systemd's dynamic "
                "range %d..%d)" % (where, uid, DYNAMIC_UIDS[0], DYNAMIC_UIDS[1]))
    return None


def _as_int(value):
    """An int from an int or a string of digits (what Jinja may hand over), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        return int(value)
    return None


# ------------------------------------------------------------------------------------------------ sizes
def parse_size(where, value, percent=True, infinity=True, minimum=0):
    """(text for systemd, bytes or None) of a size: bytes, '512M', '2G' (powers of 1024), 'infinity', '50%'.

    Raises LimitsError naming ``where``."""
    if not isinstance(value, bool) and isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise LimitsError("%s: %r is not a size; give bytes or a number with K, M, G or T (e.g. 512M)%s"
                          % (where, value, ", 'infinity' or a percentage such as 50%" if percent else ""))
    if infinity and text.lower() == "infinity":
        return "infinity", None
    found = SIZE_RE.fullmatch(text)
    if found:
        number = int(found.group(1)) * UNITS[found.group(2).upper()]
        if number < minimum:
            raise LimitsError("%s: %r is below the least usable value %s; give a larger size" % (
                where, value, _human(minimum)))
        return found.group(1) + found.group(2).upper(), number
    found = PERCENT_RE.fullmatch(text)
    if found and percent:
        whole, frac = int(found.group(1)), int((found.group(2) or "0").ljust(2, "0"))
        if not 0 < whole * 100 + frac <= 10000:
            raise LimitsError("%s: %r is not a percentage above 0%% and at most 100%%" % (where, value))
        return text, None
    if text.startswith("-"):
        raise LimitsError("%s: %r is negative; give a size of 0 or more" % (where, value))
    raise LimitsError("%s: %r is not a size; give bytes or a whole number with K, M, G or T (e.g. 512M)%s"
                      % (where, value, ", 'infinity' or a percentage such as 50%" if percent else
                         (" or 'infinity'" if infinity else "")))


def _human(number):
    for suffix in ("T", "G", "M", "K"):
        if number and number % UNITS[suffix] == 0:
            return "%d%s" % (number // UNITS[suffix], suffix)
    return str(number)


def _weight(where, value):
    number = _as_int(value)
    if number is None or not 1 <= number <= 10000:
        raise LimitsError("%s: %r is not a weight; give a whole number from 1 to 10000 (100 is systemd's "
                          "default)" % (where, value))
    return str(number)


def _quota(where, value):
    number = _as_int(value)
    text = "%d%%" % number if number is not None else value if isinstance(value, str) else None
    found = QUOTA_RE.fullmatch(text) if isinstance(text, str) else None
    if not found or (int(found.group(1)) == 0 and not int(found.group(2) or 0)):
        raise LimitsError("%s: %r is not a CPU quota; give a percentage of one CPU above 0, such as 50%% or "
                          "200%% (two CPUs)" % (where, value))
    return text


def _tasks(where, value):
    number = _as_int(value)
    if number is not None:
        if number < 1:
            raise LimitsError("%s: %r is not a task limit; give at least 1 task, a percentage or 'infinity'"
                              % (where, value))
        return str(number)
    if isinstance(value, str) and (value == "infinity" or PERCENT_RE.fullmatch(value)):
        return parse_size(where, value)[0]
    raise LimitsError("%s: %r is not a task limit; give a whole number of at least 1, a percentage of the "
                      "kernel's limit such as 10%%, or 'infinity'" % (where, value))


def _limit_value(where, key, value):
    """(systemd text, bytes or None) of one limit; raises LimitsError."""
    if key in ("cpu_weight", "io_weight"):
        return _weight(where, value), None
    if key == "cpu_quota":
        return _quota(where, value), None
    if key == "tasks_max":
        return _tasks(where, value), None
    if key in ("memory_high", "memory_max"):
        return parse_size(where, value, minimum=1 << 20)
    if key == "memory_swap_max":
        return parse_size(where, value, percent=False)
    text, number = parse_size(where, value, percent=False, infinity=False, minimum=1)
    return text, number


def limits_properties(where, limits, errors):
    """{key: systemd text} of one set of limits (None or '' leaves a key unset); problems go to ``errors``."""
    if not isinstance(limits, dict):
        errors.append("%s: %r is not a mapping of limits (%s)" % (where, limits, ", ".join(LIMIT_KEYS)))
        return {}
    out, sizes = {}, {}
    for key in sorted(limits, key=str):
        if key not in LIMIT_KEYS:
            errors.append("%s: unknown limit %r; give one of %s" % (where, key, ", ".join(LIMIT_KEYS)))
            continue
        value = limits[key]
        if value is None or value == "":
            out[key] = None
            continue
        try:
            out[key], sizes[key] = _limit_value("%s.%s" % (where, key), key, value)
        except LimitsError as exc:
            errors.append(str(exc))
    if sizes.get("memory_high") and sizes.get("memory_max") and sizes["memory_high"] > sizes["memory_max"]:
        errors.append("%s: memory_high %s is above memory_max %s; memory_high throttles before memory_max "
                      "kills, so give it a smaller value" % (where, out["memory_high"], out["memory_max"]))
    return out


# ------------------------------------------------------------------------------------------------ input
def _check_settings(p, errors):
    prefix = p.get("user_prefix", "p")
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        errors.append("user_prefix: %r is not a user name prefix; give 1-16 lower-case letters, digits or '_', "
                      "starting with a letter or '_'" % (prefix,))
    uid_min, uid_max = p.get("uid_min", DEFAULT_UID_RANGE[0]), p.get("uid_max", DEFAULT_UID_RANGE[1])
    for name, value in (("uid_min", uid_min), ("uid_max", uid_max)):
        errors.append(_uid_error(name, value))
    if not any(e and e.startswith("uid_m") for e in errors) and uid_max - uid_min < 100000:
        errors.append("uid_min, uid_max: %s..%s holds fewer than 100000 uids; derived uids would collide "
                      "often, give a wider range" % (uid_min, uid_max))
    elif not any(e and e.startswith("uid_m") for e in errors) and uid_min <= DYNAMIC_UIDS[1] and uid_max >= DYNAMIC_UIDS[0]:
        errors.append("uid_min, uid_max: %d..%d overlaps systemd's dynamic users (%d..%d); start above %d"
                      % (uid_min, uid_max, DYNAMIC_UIDS[0], DYNAMIC_UIDS[1], DYNAMIC_UIDS[1]))
    parent = p.get("parent", "smc_projects")
    if not isinstance(parent, str) or not PARENT_RE.fullmatch(parent):
        errors.append("parent: %r is not a top-level slice name; give lower-case letters, digits and '_' (no "
                      "'-', which would nest it below another slice, and no '.slice')" % (parent,))
    home_base = p.get("home_base", "/projects")
    if not isinstance(home_base, str) or not HOME_RE.fullmatch(home_base) or ".." in home_base.split("/"):
        errors.append("home_base: %r is not an absolute path without '..' (e.g. /projects)" % (home_base,))
    devices = p.get("io_devices") or []
    for i, dev in enumerate(devices if isinstance(devices, list) else [devices]):
        if not isinstance(dev, str) or not DEVICE_RE.fullmatch(dev) or ".." in dev.split("/"):
            errors.append("io_devices[%d]: %r is not a device path under /dev (e.g. /dev/disk/by-id/virtio-smc-d1)"
                          % (i, dev))
    return prefix, uid_min, uid_max, parent, home_base, list(devices) if isinstance(devices, list) else []


def _check_reserve(reserve, errors):
    if not isinstance(reserve, dict):
        errors.append("reserve: %r is not a mapping (%s)" % (reserve, ", ".join(RESERVE_KEYS)))
        return {}
    out = {}
    for key in sorted(reserve, key=str):
        value = reserve[key]
        where = "reserve.%s" % key
        try:
            if key not in RESERVE_KEYS:
                raise LimitsError("%s: unknown key; give one of %s" % (where, ", ".join(RESERVE_KEYS)))
            if value is None or value == "":
                continue
            if key == "memory":
                text, number = parse_size(where, value, infinity=False)
                out[key] = (text, number)
            elif key == "tasks_max":
                out[key] = _tasks(where, value)
            elif key == "cpu_quota":
                out[key] = _quota(where, value)
            else:
                out[key] = _weight(where, value)
        except LimitsError as exc:
            errors.append(str(exc))
    return out


def _check_classes(classes, errors):
    if not isinstance(classes, dict) or not classes:
        errors.append("classes: %r is not a mapping of class name to limits; give at least one class, e.g. "
                      "{default: {cpu_weight: 100}}" % (classes,))
        return {}
    out = {}
    for name in sorted(classes, key=str):
        if not isinstance(name, str) or not CLASS_RE.fullmatch(name) or ".." in name:
            errors.append("classes: %r is not a class name (letters, digits, '_', '.', '-')" % (name,))
            continue
        out[name] = limits_properties("classes.%s" % name, classes[name] or {}, errors)
    return out


def _listed(p, key, role, entries, where_of, errors):
    ids = p.get(key) or []
    for i, pid in enumerate(ids if isinstance(ids, list) else [ids]):
        where = "%s[%d]" % (key, i)
        err = check_id(where, pid)
        if err:
            errors.append(err)
        elif pid in where_of:
            errors.append("%s: %r is listed twice (also %s); list it once" % (where, pid, where_of[pid]))
        else:
            entries[pid], where_of[pid] = {"id": pid, "role": role}, where


def _entries(p, errors):
    """{id: entry} of the projects this host holds a copy of, from ``primary``, ``replica`` and ``projects``
    (an entry of ``projects`` adds its settings to the id's listing, or lists it by itself)."""
    entries, where_of = {}, {}
    _listed(p, "primary", "primary", entries, where_of, errors)
    _listed(p, "replica", "replica", entries, where_of, errors)
    for i, entry in enumerate(p.get("projects") or []):
        where = "projects[%d]" % i
        if not isinstance(entry, dict):
            errors.append("%s: %r is not a mapping with an id" % (where, entry))
            continue
        unknown = sorted(set(map(str, entry)) - set(PROJECT_KEYS))
        if unknown:
            errors.append("%s: unknown key(s) %s; give %s" % (where, ", ".join(unknown), ", ".join(PROJECT_KEYS)))
        pid = entry.get("id")
        err = check_id(where + ".id", pid)
        if err:
            errors.append(err)
            continue
        listed = entries.get(pid, {}).get("role")
        role = entry.get("role") or listed or "primary"
        if role not in ("primary", "replica"):
            errors.append("%s.role: %r is not primary or replica" % (where, role))
            continue
        if pid in where_of and where_of[pid].startswith("projects"):
            errors.append("%s: %r is listed twice (also %s); list it once" % (where, pid, where_of[pid]))
            continue
        if listed and role != listed:
            errors.append("%s: %r has role %s but %s lists it as %s; give one" % (
                where, pid, role, where_of[pid], listed))
            continue
        entries[pid], where_of[pid] = dict(entry, id=pid, role=role), where
    return entries, where_of


def validate(p):
    """Check every option and return the normalized spec; raise LimitsError naming every problem at once.

    ``p``: primary and replica (ids of the copies this host holds), active (all|mounted), projects ([{id, role,
    class, limits, uid, home}]), classes ({name: limits}),
    default_class, user_prefix, uid_min, uid_max, parent, home_base, reserve, io_devices. Plain data; nothing
    on the host is looked at. The spec's projects are sorted by id, each with user, uid, gid, home, class,
    unit (slice name) and properties ({key: systemd text})."""
    errors = []
    prefix, uid_min, uid_max, parent, home_base, devices = _check_settings(p, errors)
    reserve = _check_reserve(p.get("reserve") or {}, errors)
    classes = _check_classes(p.get("classes") if "classes" in p else {"default": {}}, errors)
    default_class = p.get("default_class") or "default"
    if classes and (not isinstance(default_class, str) or default_class not in classes):
        errors.append("default_class: %r is not a class of classes (%s); add it or name one of them"
                      % (default_class, ", ".join(sorted(classes))))
    active = p.get("active") or "all"
    if active not in ACTIVE_MODES:
        errors.append("active: %r is not one of %s (all: a slice for every primary listed; mounted: a slice for "
                      "every project whose home is mounted read-write here)" % (active, ", ".join(ACTIVE_MODES)))
    entries, where_of = _entries(p, errors)
    projects = []
    for pid in sorted(entries):
        entry, where = entries[pid], where_of[pid]
        klass = entry.get("class") or default_class
        if not isinstance(klass, str) or klass not in classes:
            errors.append("%s.class: %r is not a known class; give one of %s or add it to classes"
                          % (where, klass, ", ".join(sorted(classes)) or "(none)"))
            continue
        merged = dict(BASE_LIMITS)
        merged.update(classes[klass])
        merged.update(limits_properties(where + ".limits", entry.get("limits") or {}, errors))
        merged = {k: v for k, v in merged.items() if v is not None}
        for key, value in list(merged.items()):  # BASE_LIMITS are given as plain values: normalize them
            if not isinstance(value, str):
                merged[key] = _limit_value(key, key, value)[0]
        if any(k.startswith("io_") and k.endswith("_bandwidth_max") for k in merged) and not devices:
            errors.append("%s: an IO bandwidth limit needs the devices it applies to; give io_devices (the "
                          "pool's disks)" % where)
        uid = entry.get("uid")
        if uid is None and isinstance(uid_min, int) and isinstance(uid_max, int) and uid_min <= uid_max:
            uid = derive_uid(pid, uid_min, uid_max)
            if _uid_error(where, uid):
                errors.append("%s: the uid derived for %r, %d, is reserved; give projects[].uid" % (where, pid, uid))
        elif uid is None:
            uid = 0  # the range is wrong, and reported
        else:
            errors.append(_uid_error(where + ".uid", uid))
        home = entry.get("home") or "%s/%s" % (home_base, pid)
        if not isinstance(home, str) or not HOME_RE.fullmatch(home) or ".." in home.split("/"):
            errors.append("%s.home: %r is not an absolute path without '..' (the project's dataset mountpoint)"
                          % (where, home))
        user = user_name(pid, prefix if isinstance(prefix, str) else "p")
        projects.append(dict(id=pid, user=user, uid=uid, gid=uid, home=home, klass=klass, role=entry["role"],
                             unit=project_unit(parent, user), properties=merged, where=where))
    _check_unique(projects, errors)
    errors = [e for e in errors if e]
    if errors:
        raise LimitsError("; ".join(errors))
    return dict(parent=parent, reserve=reserve, io_devices=devices, projects=projects, user_prefix=prefix,
                active=active)


def _check_unique(projects, errors):
    for field, what, fix in (("user", "user name", "shorten one of the ids"),
                             ("uid", "uid", "give one of them its own projects[].uid")):
        seen = {}
        for pr in projects:
            other = seen.setdefault(pr[field], pr)
            if other is not pr:
                errors.append("%s, %s: projects %r and %r get the same %s %s; %s" % (
                    other["where"], pr["where"], other["id"], pr["id"], what, pr[field], fix))


# ----------------------------------------------------------------------------------------- host: users
def parse_passwd(text):
    """{name: (id, gecos/members)} of /etc/passwd or /etc/group text (name:x:id:...); malformed lines skipped."""
    out = {}
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] and fields[2].isdigit():
            out[fields[0]] = (int(fields[2]), fields[4] if len(fields) > 4 else "")
    return out


def plan_users(projects, passwd, groups):
    """The projects whose user (and group) must be created; raise LimitsError for a name or id held otherwise.

    ``passwd``/``groups``: parse_passwd() of /etc/passwd and /etc/group. A project's user that exists with its
    uid is kept as it is; its group must then exist with the same gid."""
    by_uid = {uid: name for name, (uid, _g) in passwd.items()}
    by_gid = {gid: name for name, (gid, _g) in groups.items()}
    errors, create = [], []
    for pr in projects:
        where, user, uid = pr["where"], pr["user"], pr["uid"]
        if user in passwd:
            if passwd[user][0] != uid:
                errors.append("%s: user %s exists with uid %d, not %d; give projects[].uid: %d to keep it, or "
                              "remove that user" % (where, user, passwd[user][0], uid, passwd[user][0]))
            elif user in groups and groups[user][0] != pr["gid"]:
                errors.append("%s: group %s exists with gid %d, not %d; fix or remove that group" % (
                    where, user, groups[user][0], pr["gid"]))
            continue
        if uid in by_uid:
            errors.append("%s: uid %d of project %r is held by user %s; give projects[].uid another uid, or "
                          "remove that user" % (where, uid, pr["id"], by_uid[uid]))
            continue
        if user in groups and groups[user][0] != pr["gid"]:
            errors.append("%s: group %s exists with gid %d, not %d; remove that group or give projects[].uid: %d"
                          % (where, user, groups[user][0], pr["gid"], groups[user][0]))
            continue
        if user not in groups and pr["gid"] in by_gid:
            errors.append("%s: gid %d of project %r is held by group %s; give projects[].uid another uid"
                          % (where, pr["gid"], pr["id"], by_gid[pr["gid"]]))
            continue
        create.append(dict(pr, group_exists=user in groups))
    if errors:
        raise LimitsError("; ".join(errors))
    return create


def check_cgroup2(controllers_text, needed=("cpu", "memory", "pids")):
    """Refuse a host without the unified cgroup v2 hierarchy or without a needed controller.

    ``controllers_text``: /sys/fs/cgroup/cgroup.controllers, None when that file is missing (cgroup v1 or
    hybrid: /sys/fs/cgroup is then a tmpfs of v1 hierarchies)."""
    if controllers_text is None:
        raise LimitsError("this host has no cgroup v2 unified hierarchy (no /sys/fs/cgroup/cgroup.controllers: "
                          "cgroup v1 or hybrid); per-project limits need cgroup v2. Fix: boot with "
                          "systemd.unified_cgroup_hierarchy=1 (Debian's default since bullseye) and reboot. "
                          "Nothing was changed")
    have = set(controllers_text.split())
    missing = [c for c in needed if c not in have]
    if missing:
        raise LimitsError("cgroup v2 controller(s) %s not available (/sys/fs/cgroup/cgroup.controllers lists %s); "
                          "enable them in the kernel or leave out the limits that need them. Nothing was changed"
                          % (", ".join(missing), " ".join(sorted(have)) or "none"))


# --------------------------------------------------------------------------------------------- rendering
def parent_unit(parent):
    return "%s.slice" % parent


def project_unit(parent, user):
    return "%s-%s.slice" % (parent, user)


def cgroup_dir(parent, unit, root="/sys/fs/cgroup"):
    """The cgroup directory of the parent slice or of one project's slice."""
    if unit == parent_unit(parent):
        return "%s/%s" % (root, unit)
    return "%s/%s/%s" % (root, parent_unit(parent), unit)


def parent_properties(reserve, memory_bytes):
    """[(property, value)] of the parent slice: everything the host keeps back from all projects together."""
    props = [("CPUWeight", reserve.get("cpu_weight", "50"))]
    if reserve.get("cpu_quota"):
        props.append(("CPUQuota", reserve["cpu_quota"]))
    if "memory" in reserve:
        text, number = reserve["memory"]
        if number is None:  # a percentage of the host's memory
            whole, _dot, frac = text.rstrip("%").partition(".")
            number = memory_bytes * (int(whole) * 100 + int(frac.ljust(2, "0") or 0)) // 10000
        if number >= memory_bytes:
            raise LimitsError("reserve.memory: %s is not below the host's memory (%s); give a smaller reserve. "
                              "Nothing was changed" % (text, _human(memory_bytes) if memory_bytes else 0))
        props.append(("MemoryMax", str(memory_bytes - number)))
    if reserve.get("tasks_max"):
        props.append(("TasksMax", reserve["tasks_max"]))
    props.append(("IOWeight", reserve.get("io_weight", "50")))
    return props


def _project_properties(properties, devices):
    props = []
    for key, prop in PROPERTIES:
        if key not in properties:
            continue
        if key.endswith("_bandwidth_max"):
            props.extend((prop, "%s %s" % (dev, properties[key])) for dev in devices)
        else:
            props.append((prop, properties[key]))
    return props


def render_slice(description, props):
    """A slice unit file: the marker line, [Unit] with the description, [Slice] with the properties."""
    lines = [MARKER, "[Unit]", "Description=%s" % description, "", "[Slice]"]
    lines.extend("%s=%s" % kv for kv in props)
    return "\n".join(lines) + "\n"


def project_slice(spec, pr):
    """The unit file text of one project's slice."""
    return render_slice("smc project %s (class %s, user %s)" % (pr["id"], pr["klass"], pr["user"]),
                        _project_properties(pr["properties"], spec["io_devices"]))


def desired_units(spec, memory_bytes, mounts=frozenset()):
    """{unit file name: text} of the parent slice and the slices of the projects that run here (runs_here with
    the spec's mode; ``mounts``: rw_mounts() of the host, used in mode 'mounted')."""
    parent = spec["parent"]
    units = {parent_unit(parent): render_slice(
        "smc.backend projects (all of them; the host keeps the rest)", parent_properties(spec["reserve"], memory_bytes))}
    for pr in spec["projects"]:
        if runs_here(spec.get("active"), pr, mounts):
            units[pr["unit"]] = project_slice(spec, pr)
    return units


def rw_mounts(mountinfo_text):
    """The mount points mounted read-write, from /proc/self/mountinfo text (octal escapes decoded)."""
    out = set()
    for line in (mountinfo_text or "").splitlines():
        fields = line.split(" ")
        if len(fields) > 5 and "rw" in fields[5].split(","):
            out.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return out


def slice_properties(text):
    """{property: [values]} of a unit file's [Slice] section (other sections and comments skipped)."""
    out, section = {}, None
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "Slice" and "=" in line:
            key, _sep, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def plan_units(desired, existing, populated=()):
    """What to change among the unit files of this call.

    ``desired``: {name: text} (desired_units); ``existing``: {name: text or None} of the files there now whose
    names are the parent's or start with '<parent>-' (None: unreadable); ``populated``: names of slices with
    running processes. Returns {write: [(name, before, after)], remove: [name], kept: [name],
    changes: {name: {property: [before, after]}}}. A file we would write that lacks our marker line stops the
    call; a managed file no longer wanted is removed unless its slice still runs processes (then kept, and
    removed by a later run). Files without the marker are never touched."""
    write, changes = [], {}
    for name in sorted(desired):
        before = existing.get(name)
        if name in existing and (before is None or not before.startswith(MARKER + "\n")):
            raise LimitsError("%s exists and was not written by smc.backend.project_limits (no marker line); move "
                              "it away or rename the parent slice. Nothing was changed" % name)
        if before == desired[name]:
            continue
        write.append((name, before, desired[name]))
        old, new = slice_properties(before), slice_properties(desired[name])
        diff = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
        if diff:
            changes[name] = diff
    remove, kept = [], []
    for name in sorted(existing):
        if name in desired or not (existing[name] or "").startswith(MARKER + "\n"):
            continue
        (kept if name in populated else remove).append(name)
    return dict(write=write, remove=remove, kept=kept, changes=changes)


# ------------------------------------------------------------------------------------ smc-project's view
def render_config(spec):
    """The JSON text smc-project reads: parent slice, mode and, per project id this host holds, user, uid, gid,
    home, slice, class, the controller's role and the slice's unit text (for ``smc-project sync``)."""
    return json.dumps({
        "parent": parent_unit(spec["parent"]), "active": spec.get("active", "all"),
        "projects": {pr["id"]: {"user": pr["user"], "uid": pr["uid"], "gid": pr["gid"], "home": pr["home"],
                                "slice": pr["unit"], "class": pr["klass"], "role": pr["role"],
                                "unit_text": project_slice(spec, pr)} for pr in spec["projects"]},
    }, indent=1, sort_keys=True) + "\n"


def runs_here(mode, entry, mounts):
    """Whether a project (a spec project or a configuration entry: both have home and role) may run processes
    on this host now. Mode 'mounted': its home is a read-write mount (a primary's dataset; replicas are
    read-only or unmounted), whatever role the controller last gave it (the HA loop moves primaries between
    runs); mode 'all': the controller's role is primary."""
    if mode == "mounted":
        return entry["home"] in mounts
    return entry.get("role", "primary") == "primary"


def plan_sync(config, mounts, existing, populated=()):
    """What ``smc-project sync`` changes after the primaries moved (an HA claim, a demotion, a fence, a
    switchover): the slices of the projects that run here (runs_here) written, the others stopped (when they
    hold processes) and removed. ``existing``: {name: text or None} as for plan_units; the parent slice and
    files without the marker are left alone. Returns {write: [(name, text)], stop: [name], remove: [name]}."""
    parent = config.get("parent", "")
    want = dict((e["slice"], e["unit_text"]) for e in config["projects"].values()
                if runs_here(config.get("active"), e, mounts) and isinstance(e.get("unit_text"), str))
    write = sorted((n, t) for n, t in want.items() if existing.get(n) != t
                   and (n not in existing or (existing[n] or "").startswith(MARKER + "\n")))
    remove = sorted(n for n, t in existing.items() if n not in want and n != parent
                    and (t or "").startswith(MARKER + "\n"))
    return dict(write=write, stop=[n for n in remove if n in populated], remove=remove)


def parse_config(text, where="config"):
    """The projects mapping of render_config() text, every entry checked; raises LimitsError."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LimitsError("%s: not JSON (%s); run the project_limits role again" % (where, exc)) from None
    projects = data.get("projects") if isinstance(data, dict) else None
    if not isinstance(projects, dict):
        raise LimitsError("%s: no 'projects' mapping; run the project_limits role again" % where)
    for pid, entry in projects.items():
        err = check_id("%s: project" % where, pid)
        ok = isinstance(entry, dict) and isinstance(entry.get("uid"), int) and isinstance(entry.get("gid"), int) \
            and isinstance(entry.get("home"), str) and HOME_RE.fullmatch(entry["home"]) \
            and isinstance(entry.get("slice"), str) and re.fullmatch(r"[a-z0-9_]+-[a-z0-9_]+\.slice", entry["slice"])
        if err or not ok:
            raise LimitsError("%s: entry %r is malformed; run the project_limits role again" % (where, pid))
    return projects


def load_config(text, where="config"):
    """The whole configuration: {parent, active, projects}, the projects checked by parse_config."""
    projects = parse_config(text, where)
    data = json.loads(text)
    return {"parent": data.get("parent", ""), "active": data.get("active", "all"), "projects": projects}
