# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What zfs_project would do, from plain data (pure): the desired projects from the options, the checks of
the parent and the quarantine parent, and the plan against ``zfs list`` rows (create, set, hold back, rename
into the quarantine, destroy there). Bad input raises ProjectError, whose message names the field and the fix,
before the module runs any command.
"""

import re

from ansible_collections.smc.backend.plugins.module_utils.zfs_cli import same_value
from ansible_collections.smc.backend.plugins.module_utils.zfs_names import (
    dataset_name_error, is_below, property_error, same_pool)

__all__ = ["ProjectError", "ID_RE", "QUARANTINE_MARK", "ROLE_KEYS", "CHUNK", "LIST_MAX", "desired_projects",
           "plain_properties", "check_datasets", "quarantine_state", "plan", "hold_back", "quarantine_moves",
           "destroy_targets", "group_sets", "diff_text"]

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}\Z")
# The user property that marks a quarantine parent as made by this module (set when it creates one).
QUARANTINE_MARK = ("smc:role", "quarantine")
ROLE_KEYS = ("readonly", "smc:role")  # what role_changes=false leaves alone on existing datasets
STAMP_RE = r"\d{8}T\d{6}Z"
CHUNK = 500
LIST_MAX = 100
DIFF_MAX = 1000


class ProjectError(ValueError):
    """Bad input; the message names the field and the fix."""


def desired_projects(params):
    """{id: {property: value}} from the options; raises ProjectError naming the field."""
    out = {}
    entries = [(dict(p), "projects[%d]" % i) for i, p in enumerate(params["projects"])]
    entries += [({"id": pid, "role": "primary"}, "primary[%d]" % i) for i, pid in enumerate(params["primary"])]
    entries += [({"id": pid, "role": "replica"}, "replica[%d]" % i) for i, pid in enumerate(params["replica"])]
    common = plain_properties(params["properties"], "properties")
    for entry, where in entries:
        pid = entry["id"]
        if not isinstance(pid, str) or not ID_RE.match(pid):  # ID_RE ends in \Z: no trailing newline
            raise ProjectError("%s: project id %r is not valid: use 1-200 letters, digits, '_', '.', ':' or '-', "
                               "starting with a letter or digit" % (where, pid))
        if pid in out:
            raise ProjectError("%s: project %s is listed twice (in projects, primary or replica): list it once"
                               % (where, pid))
        props = dict(common)
        props.update(plain_properties(entry.get("properties") or {}, where + ".properties"))
        for key in ("quota", "refquota"):
            value = entry.get(key) or params[key]
            if value is not None:
                _check(key, value, where)
                props[key] = value
        role = entry.get("role") or "primary"
        if role not in ("primary", "replica"):
            raise ProjectError("%s.role: %r is not primary or replica" % (where, role))
        props["readonly"] = "on" if role == "replica" else "off"
        props["smc:role"] = role
        props["smc:class"] = _check("smc:class", entry.get("class") or params["class"], where + ".class")
        out[pid] = props
    for field in ("remove", "confirm_destroy"):
        for i, pid in enumerate(params[field]):
            if not isinstance(pid, str) or not ID_RE.match(pid):
                raise ProjectError("%s[%d]: project id %r is not valid: use 1-200 letters, digits, '_', '.', ':' "
                                   "or '-', starting with a letter or digit" % (field, i, pid))
            if pid in out:
                raise ProjectError("%s: project %s is also listed as a project of this host: drop it from one of them"
                                   % (field, pid))
    both = sorted(set(params["remove"]) & set(params["confirm_destroy"]))
    if both:
        raise ProjectError("confirm_destroy: %s is in remove too; quarantine it first and destroy in a later run"
                           % both[0])
    return out


def plain_properties(props, where):
    if not isinstance(props, dict):
        raise ProjectError("%s must be a mapping of property name to value" % where)
    for k, v in props.items():
        _check(k, v, where)
    return {k: str(v) for k, v in props.items()}


def _check(key, value, where):
    err = property_error(key, value, where)
    if err:
        raise ProjectError(err)
    return str(value)


def check_datasets(parent, qparent):
    """Raise ProjectError unless ``parent`` is a dataset below a pool and ``qparent`` a separate dataset of the
    same pool, neither inside the other (the quarantine must never contain or be the projects' parent)."""
    for where, name in (("parent", parent), ("quarantine_parent", qparent)):
        err = dataset_name_error(name, where, min_depth=1)
        if err:
            raise ProjectError(err)
    if not same_pool(parent, qparent):
        raise ProjectError("quarantine_parent %s must be in the pool of parent %s (a rename cannot leave the pool)"
                           % (qparent, parent))
    if is_below(qparent, parent) or is_below(parent, qparent):
        raise ProjectError("quarantine_parent %s and parent %s must not be inside one another" % (qparent, parent))


def quarantine_state(rows, qparent):
    """``absent``, ``ours`` (marked with QUARANTINE_MARK) or ``foreign`` from ``zfs list -d 0`` rows of qparent."""
    row = next((r for r in rows if r.get("name") == qparent), None)
    if row is None:
        return "absent"
    return "ours" if row.get(QUARANTINE_MARK[0]) == QUARANTINE_MARK[1] else "foreign"


def plan(parent, rows, desired):
    """Compare ``zfs list`` rows (dicts with name and properties) of the parent's children with the desired
    {id: props}. Returns (creates {dataset: props}, updates {dataset: {prop: (have, want)}}, unmanaged)."""
    existing = {r["name"]: r for r in rows if r["name"] != parent}
    creates, updates = {}, {}
    for pid, props in desired.items():
        name = "%s/%s" % (parent, pid)
        row = existing.pop(name, None)
        if row is None:
            creates[name] = props
            continue
        diff = {k: (row.get(k, "-"), v) for k, v in props.items() if not same_value(k, v, row.get(k, "-"))}
        if diff:
            updates[name] = diff
    return creates, updates, sorted(existing)


def hold_back(parent, creates, updates, replica_ids, create_replicas, role_changes):
    """Take out of the plan what the options say to leave: replicas not yet seeded (create_replicas=false)
    and role changes of existing datasets (role_changes=false). Changes ``creates`` and ``updates`` in place;
    returns (awaiting_seed, roles_left), both sorted dataset names."""
    awaiting = []
    if not create_replicas:
        seeded = set("%s/%s" % (parent, pid) for pid in replica_ids)
        awaiting = sorted(n for n in creates if n in seeded)
        for name in awaiting:
            del creates[name]
    roles_left = []
    if not role_changes:
        for name in sorted(updates):
            if any(k in updates[name] for k in ROLE_KEYS):
                roles_left.append(name)
                updates[name] = {k: v for k, v in updates[name].items() if k not in ROLE_KEYS}
                if not updates[name]:
                    del updates[name]
    return awaiting, roles_left


def quarantine_moves(parent, qparent, ids, existing, stamp):
    """[(old, new)] renames that quarantine the listed projects that exist (``existing``: dataset names);
    ``stamp`` is the UTC time in STAMP_RE's form."""
    return [("%s/%s" % (parent, pid), "%s/%s-%s" % (qparent, pid, stamp)) for pid in ids
            if "%s/%s" % (parent, pid) in existing]


def destroy_targets(qparent, ids, rows):
    """Sorted quarantined copies of the listed projects, from ``zfs list -d 1`` rows of qparent (with
    smc:role): only names of the form qparent/ID-STAMP that this module marked as quarantined."""
    gone = []
    for pid in ids:
        pattern = re.compile(r"%s/%s-%s\Z" % (re.escape(qparent), re.escape(pid), STAMP_RE))
        gone += sorted(r["name"] for r in rows if pattern.match(r["name"]) and r.get("smc:role") == "quarantined")
    return gone


def group_sets(changes):
    """{dataset: {prop: value}} -> [(sorted prop=value list, [datasets])], each ``zfs set`` naming up to
    CHUNK datasets that need the same values."""
    groups = {}
    for name, props in changes.items():
        groups.setdefault(tuple(sorted("%s=%s" % kv for kv in props.items())), []).append(name)
    out = []
    for assignments, names in sorted(groups.items()):
        names.sort()
        for i in range(0, len(names), CHUNK):
            out.append((list(assignments), names[i:i + CHUNK]))
    return out


def _cut(lines):
    return lines[:DIFF_MAX] + (["... %d more" % (len(lines) - DIFF_MAX)] if len(lines) > DIFF_MAX else [])


def diff_text(creates, updates):
    before, after = [], []
    for name in sorted(creates):
        after.append("%s (new) %s" % (name, " ".join("%s=%s" % kv for kv in sorted(creates[name].items()))))
    for name in sorted(updates):
        before.append("%s %s" % (name, " ".join("%s=%s" % (k, h) for k, (h, _want) in sorted(updates[name].items()))))
        after.append("%s %s" % (name, " ".join("%s=%s" % (k, w) for k, (_have, w) in sorted(updates[name].items()))))
    return "\n".join(_cut(before)) + "\n", "\n".join(_cut(after)) + "\n"
