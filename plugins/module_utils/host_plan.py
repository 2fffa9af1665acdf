# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who serves each project now, and the plan file each host's agent works from (pure; ships to hosts).

The ring (placement.py) says where a project *should* live. ``settle`` keeps what is true *now* beside it: the
current primary, the project's epoch (the fencing token, raised by every change of primary) and the copies
the ring no longer wants but that keep their data until their replacement is caught up. A ring change never
flips a primary by itself: the current primary keeps serving while the ring's choice is seeded; only when the
current primary is gone (down or removed) does the role pass, and only to a host that held the project's
data. No such host: ``UnsafeChange`` names the projects and hosts, before anything is written anywhere.

``host_plans`` turns that into one small plan per host: hosts by index, per project the ring (primary first),
the current primary, the epoch and any leaving copies. The agent reads nothing else.
"""

import json

__all__ = ["UnsafeChange", "PlanError", "settle", "switch", "copies", "host_plans", "render_plan", "parse_plan", "targets"]

FORMAT = 1


class UnsafeChange(ValueError):
    """The new ring would make a host without the project's data its writable primary."""


class PlanError(ValueError):
    """A plan or state file of the wrong shape; the message names the file and the key."""


def settle(ring, previous_ring, previous_current, eligible):
    """The current state of every project after a ring change.

    ``ring``/``previous_ring``: {pid: [hosts, primary first]}; ``previous_current``: {pid: {primary, epoch,
    extra}} (only projects that differ from the default: primary = ring[0], epoch 1, no extra copies);
    ``eligible``: hosts that are up (in the inventory and not down). Returns the new ``current`` (same shape,
    defaults left out) and a list of pending moves [{project, from, to}]."""
    current, moves, unsafe = {}, [], []
    for pid, hosts in ring.items():
        before = previous_current.get(pid) or {}
        old = previous_ring.get(pid)
        primary = before.get("primary") or (old[0] if old else None)
        if primary is None:
            continue  # a new project (or one nobody held): it starts on the ring's primary at epoch 1
        epoch = before.get("epoch", 1)
        holders = list(dict.fromkeys(list(old or []) + list(before.get("extra") or []) + [primary]))
        if primary not in eligible:
            heirs = [h for h in hosts if h in holders and h in eligible]
            if not heirs:
                unsafe.append("%s (primary %s is gone; ring %s; data only on %s)"
                              % (pid, primary, ",".join(hosts), ",".join(holders)))
                continue
            primary, epoch = heirs[0], epoch + 1
        extra = [h for h in holders if h not in hosts and h in eligible and h != primary]
        if primary != hosts[0]:
            moves.append({"project": pid, "from": primary, "to": hosts[0]})
        state = {}
        if primary != hosts[0]:
            state["primary"] = primary
        if epoch != 1:
            state["epoch"] = epoch
        if extra:
            state["extra"] = extra
        if state:
            current[pid] = state
    if unsafe:
        raise UnsafeChange("%d project(s) would get a writable primary without their data; nothing was changed. "
                           "Bring a host holding the data back up, or restore the previous inventory: %s"
                           % (len(unsafe), "; ".join(unsafe[:20])))
    return current, moves


def switch(ring, current, pid, to, serving=None):
    """A planned switchover of ``pid`` to ``to`` (a host holding a copy): returns (new current, summary). The
    old primary stays a copy (an extra one when the ring does not want it); the epoch goes up by one.
    ``serving`` ({primary, epoch}: who serves it now, as etcd has it with HA on, after failovers the placement
    did not see) replaces the placement's record first; it must be a host holding a copy."""
    if pid not in ring:
        raise PlanError("switchover.project: %r is not a placed project" % (pid,))
    state = dict(current.get(pid) or {})
    primary, holders = copies(ring[pid], state)
    if serving:
        now, epoch = serving.get("primary"), serving.get("epoch")
        if now not in holders:
            raise PlanError("switchover.serving.primary: %r holds no copy of %s (copies: %s)"
                            % (now, pid, ", ".join(holders)))
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            raise PlanError("switchover.serving.epoch: %r is not an epoch (an integer >= 1)" % (epoch,))
        state = dict(state, epoch=epoch)
        state.pop("primary", None)
        if now != ring[pid][0]:
            state["primary"] = now
        primary = now
    if to not in holders:
        raise PlanError("switchover.to: %s holds no copy of %s (copies: %s); a switchover only moves the primary "
                        "to an existing copy" % (to, pid, ", ".join(holders)))
    epoch = state.get("epoch", 1)
    summary = {"project": pid, "from": primary, "to": to, "epoch_before": epoch,
               "epoch": epoch + 1 if to != primary else epoch}
    if to == primary:
        return current, summary
    extra = [h for h in state.get("extra") or [] if h != to]
    if primary not in ring[pid] and primary not in extra:
        extra.append(primary)
    state = {"epoch": epoch + 1}
    if to != ring[pid][0]:
        state["primary"] = to
    if extra:
        state["extra"] = extra
    out = dict(current)
    out[pid] = state
    return out, summary


def copies(hosts, state):
    """(current primary, every host holding a copy: primary first, then the ring, then leaving copies)."""
    primary = state.get("primary") or hosts[0]
    out = list(dict.fromkeys([primary] + list(hosts) + list(state.get("extra") or [])))
    return primary, out


def host_plans(ring, current, addresses):
    """{host: plan dict} for every host that holds a copy. ``addresses``: {host: VPN address}."""
    names = sorted(addresses)
    index = dict((h, i) for i, h in enumerate(names))
    plans = dict((h, {}) for h in names)
    for pid in sorted(ring):
        state = current.get(pid) or {}
        primary, holders = copies(ring[pid], state)
        entry = {"ring": [index[h] for h in ring[pid]], "primary": index[primary], "epoch": state.get("epoch", 1)}
        extra = [index[h] for h in state.get("extra") or []]
        if extra:
            entry["extra"] = extra
        for host in holders:
            plans[host][pid] = entry
    return dict((h, {"format": FORMAT, "host": h, "hosts": names,
                     "addresses": [addresses[n] for n in names], "projects": plans[h]}) for h in names)


def render_plan(plan):
    """Stable text: one project a line (diffs stay readable, the file stays small)."""
    head = dict((k, v) for k, v in plan.items() if k != "projects")
    lines = [json.dumps(head, sort_keys=True)[:-1] + ', "projects": {']
    items = sorted(plan["projects"].items())
    for i, (pid, entry) in enumerate(items):
        lines.append("%s: %s%s" % (json.dumps(pid), json.dumps(entry, sort_keys=True),
                                   "," if i + 1 < len(items) else ""))
    return "\n".join(lines) + "\n}}\n"


def parse_plan(text, path="plan"):
    """The agent's side: a validated plan, every error naming the file and the key."""
    try:
        plan = json.loads(text)
    except ValueError as exc:
        raise PlanError("%s is not JSON (%s)" % (path, exc))
    if not isinstance(plan, dict) or plan.get("format") != FORMAT:
        raise PlanError("%s: expected a plan object with format %d" % (path, FORMAT))
    names, addresses = plan.get("hosts"), plan.get("addresses")
    if not isinstance(names, list) or not isinstance(addresses, list) or len(names) != len(addresses) \
            or not all(isinstance(x, str) and x for x in names + addresses):
        raise PlanError("%s: hosts and addresses must be lists of names of the same length" % path)
    if plan.get("host") not in names:
        raise PlanError("%s: host %r is not in hosts" % (path, plan.get("host")))
    projects = plan.get("projects")
    if not isinstance(projects, dict):
        raise PlanError("%s: projects must be an object" % path)
    count = len(names)
    for pid, entry in projects.items():
        ok = isinstance(entry, dict) and isinstance(entry.get("ring"), list) and entry["ring"] \
            and all(_index(i, count) for i in entry["ring"] + list(entry.get("extra") or [])) \
            and _index(entry.get("primary"), count) \
            and isinstance(entry.get("epoch"), int) and not isinstance(entry["epoch"], bool) and entry["epoch"] >= 1
        if not ok:
            raise PlanError("%s: projects.%s must have ring (host indexes), primary (an index) and epoch >= 1"
                            % (path, json.dumps(pid)))
    return plan


def _index(value, count):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count


def targets(plan, pid):
    """(role, primary host, [target hosts]) of one project in a parsed plan."""
    names = plan["hosts"]
    entry = plan["projects"][pid]
    primary = names[entry["primary"]]
    holders = list(dict.fromkeys([primary] + [names[i] for i in entry["ring"]]
                                 + [names[i] for i in entry.get("extra") or []]))
    role = "primary" if primary == plan["host"] else "replica"
    return role, primary, [h for h in holders if h != primary]
