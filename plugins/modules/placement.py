#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: placement
short_description: Compute which hosts hold each project (failure-domain-aware consistent hashing)
version_added: 0.1.0
description:
  - Places every project on O(replicas_per_dc) distinct hosts in every data center, primary first, with the
    pure engine in C(plugins/module_utils/placement.py); see its docstring for the algorithm and the exact
    meaning of the host states C(up), C(down) and C(draining).
  - Runs on the controller (C(localhost)); it never talks to the storage hosts.
  - Compares the result with the placement deployed last time (O(previous_path)) and reports which project
    slots move from which host to which.
  - Writes the new placement to O(dest) as JSON, atomically, only when it differs and not in check mode.
    Without O(dest) it changes nothing and only reports.
options:
  hosts:
    description:
      - The storage hosts, usually built from the inventory group C(storage).
      - Each item has C(name) and C(dc), optional C(weight) (default 1, relative capacity, at most 100) and C(state)
        (C(up), C(down) or C(draining); default C(up)).
    type: list
    elements: dict
    required: true
  projects:
    description: Project ids. Mutually exclusive with O(projects_file).
    type: list
    elements: str
  projects_file:
    description:
      - File with the project ids on the controller, one id a line (blank lines and C(#) comments ignored),
        or JSON (a list of ids, an object with a C(projects) list, or a placement file this module wrote).
    type: path
  replicas_per_dc:
    description: Replicas of every project in each data center.
    type: int
    default: 2
  allow_degraded:
    description: Give a data center with fewer eligible hosts than O(replicas_per_dc) what it has, instead of failing.
    type: bool
    default: false
  dc_weights:
    description: Data center name to its relative share of primaries (default 1 each).
    type: dict
    default: {}
  previous_path:
    description:
      - The placement deployed last time (a file written by this module, or a JSON object of project id to
        host list). A missing file means there is none (first deployment).
      - Draining hosts keep only what they hold in it.
    type: path
  dest:
    description: Where to write the new placement JSON. Often the same file as O(previous_path).
    type: path
  return_placement:
    description:
      - Return RV(placement) and RV(per_host) in the result. Turn off for very large project lists and read
        O(dest) instead.
    type: bool
    default: true
  max_moves_listed:
    description: At most this many moves in RV(moves.list) and in the diff; the counts are always complete.
    type: int
    default: 200
  addresses:
    description:
      - Host name to the address its peers replicate to (its VPN address). With O(plans_dir), every host that
        holds a copy must have one; a host without one here (or with an empty one) keeps the address of the
        plans already in O(plans_dir).
    type: dict
    default: {}
  switchover:
    description:
      - Move the primary of one project to a host holding a copy of it (C(project), C(to)); the epoch goes up by
        one. Run it after the old primary is fenced and the new one caught up (C(playbooks/switchover.yml) does
        the whole sequence); this option only records the new primary and rewrites the plans.
    type: dict
    suboptions:
      project:
        description: The project id.
        type: str
        required: true
      to:
        description: The host that becomes primary.
        type: str
        required: true
      serving:
        description:
          - Who serves the project now, as etcd has it with HA on (failovers move primaries without this
            file). Replaces the placement's record of the project's primary and epoch before the switchover.
        type: dict
        suboptions:
          primary:
            description: The host etcd names primary (it must hold a copy).
            type: str
            required: true
          epoch:
            description: Its epoch in etcd.
            type: int
            required: true
  plans_dir:
    description:
      - Write one plan per host here, C(<host>.json), the only input of that host's agent (who holds each of its
        projects, the current primary, the epoch, the ring's layout). Files of hosts that hold nothing are
        written too (an empty plan), so a host that lost its share learns it.
    type: path
attributes:
  check_mode:
    support: full
    description: Computes and reports everything; writes nothing.
  diff_mode:
    support: full
    description: Shows the placement file before and after, with the moved slots.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller (or any POSIX host); it never talks to storage hosts.
author:
  - smc.backend developers (@smc-backend)
"""

EXAMPLES = r"""
- name: Compute the placement and write it for the roles
  smc.backend.placement:
    hosts: "{{ placement_hosts }}"
    projects_file: /srv/smc/projects.txt
    previous_path: /srv/smc/placement.json
    dest: /srv/smc/placement.json
  delegate_to: localhost
  run_once: true
  register: placement

- name: Report only (writes nothing)
  smc.backend.placement:
    hosts:
      - {name: st-a1, dc: a}
      - {name: st-a2, dc: a, weight: 2}
      - {name: st-b1, dc: b}
      - {name: st-b2, dc: b, state: draining}
      - {name: st-b3, dc: b}
    projects: [p1, p2, p3]
    previous_path: /srv/smc/placement.json
"""

RETURN = r"""
placement:
  description: Project id to its hosts, primary first (only with O(return_placement)).
  returned: success and O(return_placement)
  type: dict
  sample: {"p1": ["st-a2", "st-a1", "st-b3", "st-b1"]}
per_host:
  description: Host to the projects it is primary for and the projects it holds a replica of (not primary).
  returned: success and O(return_placement)
  type: dict
  sample: {"st-a2": {"primary": ["p1"], "replica": []}}
report:
  description: Load per host against its weight and, per data center, the max/mean and min/mean of load per weight.
  returned: success
  type: dict
  sample:
    hosts: {"st-a1": {"dc": "a", "state": "up", "weight": 1.0, "slots": 3, "primary": 1,
            "expected_slots": 2.0, "load_vs_weight": 1.5}}
    dcs: {"a": {"hosts": 2, "slots": 6, "max_over_mean": 1.5, "min_over_mean": 0.75}}
moves:
  description: What changed against O(previous_path).
  returned: success
  type: dict
  contains:
    slots_moved:
      description: Project slots that move from one host to another (or appear or vanish).
      type: int
    projects_changed:
      description: Projects whose host list changed.
      type: int
    primary_changes:
      description: Projects whose primary changed.
      type: int
    added_projects:
      description: Projects that were not in the previous placement.
      type: int
    removed_projects:
      description: Projects of the previous placement that are gone.
      type: int
    per_host:
      description: Host to the slots it gains (C(in)) and loses (C(out)).
      type: dict
    list:
      description: The first O(max_moves_listed) moves, each C(project), C(from), C(to).
      type: list
      elements: dict
  sample: {"slots_moved": 1, "projects_changed": 1, "primary_changes": 0, "added_projects": 0,
           "removed_projects": 0, "per_host": {"st-b2": {"in": 0, "out": 1}, "st-b3": {"in": 1, "out": 0}},
           "list": [{"project": "p2", "from": "st-b2", "to": "st-b3"}]}
pending_moves:
  description:
    - Projects whose current primary is not the ring's choice (a ring change keeps the current primary serving
      until the ring's choice is seeded and a switchover moves it). At most O(max_moves_listed) listed.
  returned: success
  type: dict
  sample: {"count": 1, "list": [{"project": "p2", "from": "st-a1", "to": "st-a3"}]}
switchover:
  description: The switchover recorded (C(project), C(from), C(to), C(epoch_before), C(epoch)).
  returned: when O(switchover) is set
  type: dict
plans:
  description: Host to the plan file written for it (or that would be, in check mode).
  returned: when O(plans_dir) is set
  type: dict
previous_found:
  description: Whether O(previous_path) existed.
  returned: success
  type: bool
dest:
  description: The file written (or that would be written in check mode).
  returned: when O(dest) is set
  type: str
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.smc.backend.plugins.module_utils.host_plan import (
    PlanError, UnsafeChange, copies, host_plans, parse_plan, render_plan, settle, switch)
from ansible_collections.smc.backend.plugins.module_utils.placement import (
    PlacementError, diff_placements, load_report, place)

FORMAT_VERSION = 2

ARGUMENT_SPEC = dict(
    hosts=dict(type="list", elements="dict", required=True),
    projects=dict(type="list", elements="str"),
    projects_file=dict(type="path"),
    replicas_per_dc=dict(type="int", default=2),
    allow_degraded=dict(type="bool", default=False),
    dc_weights=dict(type="dict", default={}),
    previous_path=dict(type="path"),
    dest=dict(type="path"),
    return_placement=dict(type="bool", default=True),
    max_moves_listed=dict(type="int", default=200),
    addresses=dict(type="dict", default={}),
    plans_dir=dict(type="path"),
    switchover=dict(type="dict", options=dict(project=dict(type="str", required=True),
                                              to=dict(type="str", required=True),
                                              serving=dict(type="dict", options=dict(
                                                  primary=dict(type="str", required=True),
                                                  epoch=dict(type="int", required=True))))),
)


def parse_projects(text):
    """Project ids from a file's text: JSON (list or {"projects": [...]}) or one id a line."""
    stripped = text.strip()
    if stripped.startswith("[") or stripped.startswith("{"):
        data = json.loads(stripped)
        if isinstance(data, dict) and isinstance(data.get("placement"), dict):
            data = sorted(data["placement"])  # this module's own file: its projects
        elif isinstance(data, dict):
            data = data.get("projects")
        if not isinstance(data, list):
            raise PlacementError("projects_file: JSON must be a list of ids or an object with a 'projects' list")
        return [str(p) if isinstance(p, (int, float)) else p for p in data]
    ids = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line)
    return ids


def parse_previous(text, path="previous_path"):
    """A deployed placement from JSON: this module's file format or a bare {project: [hosts]}. Every
    error names the file and the key."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise PlacementError("previous_path %s is not JSON (%s); fix or remove the file" % (path, exc))
    if isinstance(data, dict) and "placement" in data:
        data = data["placement"]
        if not isinstance(data, dict):
            raise PlacementError("previous_path %s: key 'placement' must be an object of project id to host list, "
                                 "got %s" % (path, type(data).__name__))
    if not isinstance(data, dict):
        raise PlacementError("previous_path %s: expected a JSON object of project id to host list, got %s"
                             % (path, type(data).__name__))
    out = {}
    for pid, hosts in data.items():
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise PlacementError("previous_path %s: key %s must be a list of host names, got %s"
                                 % (path, json.dumps(pid), json.dumps(hosts)[:200]))
        out[pid] = tuple(hosts)
    return out


def parse_current(text, path="previous_path"):
    """The ``current`` part of this module's file: {project: {primary, epoch, extra}} where it differs from the
    ring. Every error names the file and the key."""
    data = json.loads(text) if text.strip() else {}
    current = data.get("current", {}) if isinstance(data, dict) else {}
    if not isinstance(current, dict):
        raise PlacementError("previous_path %s: key 'current' must be an object" % path)
    for pid, state in current.items():
        ok = isinstance(state, dict) and set(state) <= {"primary", "epoch", "extra"} \
            and isinstance(state.get("primary", ""), str) \
            and isinstance(state.get("epoch", 1), int) and not isinstance(state.get("epoch", 1), bool) \
            and state.get("epoch", 1) >= 1 \
            and isinstance(state.get("extra", []), list) and all(isinstance(h, str) for h in state.get("extra", []))
        if not ok:
            raise PlacementError("previous_path %s: current.%s must be {primary: host, epoch: int >= 1, extra: "
                                 "[hosts]}, got %s" % (path, json.dumps(pid), json.dumps(state)[:200]))
    return current


def render(placement, replicas_per_dc, current=None):
    """The file this module writes: stable JSON (sorted keys), one project a line; ``current`` holds the
    projects whose primary, epoch or copies differ from the ring."""
    lines = ['{"format": %d, "replicas_per_dc": %d, "current": %s, "placement": {'
             % (FORMAT_VERSION, replicas_per_dc, json.dumps(current or {}, sort_keys=True))]
    items = sorted(placement.items())
    for i, (pid, hosts) in enumerate(items):
        lines.append("  %s: %s%s" % (json.dumps(pid), json.dumps(list(hosts)), "," if i + 1 < len(items) else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def addresses_from_plans(plans_dir, hosts, read_file):
    """The addresses recorded in the plans written last time (so a switchover keeps them without the VPN
    role's facts)."""
    for host in hosts:
        text = read_file(os.path.join(plans_dir, "%s.json" % host.get("name")))
        if text:
            try:
                plan = parse_plan(text, os.path.join(plans_dir, "%s.json" % host.get("name")))
            except PlanError as exc:
                raise PlacementError(str(exc))
            return dict(zip(plan["hosts"], plan["addresses"]))
    raise PlacementError("addresses: not given and no plan in %s to take them from; run deploy_placement.yml "
                         "(site.yml) first" % plans_dir)


def roles_by_host(ring, current):
    """Host to the projects it is primary for now and those it holds a replica of (a copy that is not primary)."""
    out = {}
    for pid, hosts in ring.items():
        primary, holders = copies(hosts, current.get(pid) or {})
        for host in holders:
            out.setdefault(host, {"primary": [], "replica": []})["primary" if host == primary else "replica"].append(pid)
    return out


def summarize_moves(diff, limit):
    per_host = {}
    for move in diff["moves"]:
        for key, side in (("from", "out"), ("to", "in")):
            if move[key] is not None:
                per_host.setdefault(move[key], {"in": 0, "out": 0})[side] += 1
    return {
        "slots_moved": diff["slots_moved"],
        "projects_changed": len(set(m["project"] for m in diff["moves"]) | set(
            c["project"] for c in diff["primary_changes"])),
        "primary_changes": len(diff["primary_changes"]),
        "added_projects": len(diff["added_projects"]),
        "removed_projects": len(diff["removed_projects"]),
        "per_host": per_host,
        "list": diff["moves"][:max(0, limit)],
    }


def diff_text(report, moves, listed):
    """A readable side of the diff: per-host load, then the listed moves."""
    lines = ["%s dc=%s state=%s weight=%g slots=%d primary=%d" % (
        name, h["dc"], h["state"], h["weight"], h["slots"], h["primary"])
        for name, h in sorted(report["hosts"].items())]
    lines.extend("move %s: %s -> %s" % (m["project"], m["from"], m["to"]) for m in listed)
    if moves > len(listed):
        lines.append("... %d more moves" % (moves - len(listed)))
    return "\n".join(lines) + "\n"


def compute(params, read_file):
    """Everything but I/O on ``dest``: returns (result, new file text).  ``read_file(path)`` -> text or None."""
    projects = params.get("projects")
    if params.get("projects_file"):
        if projects:
            raise PlacementError("projects, projects_file: give one of them, not both")
        text = read_file(params["projects_file"])
        if text is None:
            raise PlacementError("projects_file: %s does not exist; give an existing file of project ids"
                                 % params["projects_file"])
        try:
            projects = parse_projects(text)
        except json.JSONDecodeError as exc:
            raise PlacementError("projects_file %s is not valid JSON (%s)" % (params["projects_file"], exc))
    if projects is None:
        raise PlacementError("projects: give projects or projects_file")
    previous, prev_current, found = {}, {}, False
    if params.get("previous_path"):
        text = read_file(params["previous_path"])
        if text is not None:
            previous, found = parse_previous(text, params["previous_path"]), True
            prev_current = parse_current(text, params["previous_path"])
    hosts = params["hosts"]
    replicas = params["replicas_per_dc"]
    new = place(hosts, projects, replicas_per_dc=replicas, allow_degraded=params["allow_degraded"],
                previous=previous, dc_weights=params.get("dc_weights") or None)
    host_dc = dict((h.get("name"), h.get("dc")) for h in hosts)
    diff = diff_placements(previous, new, host_dc)
    report = load_report(new, hosts)
    moves = summarize_moves(diff, params["max_moves_listed"])
    eligible = set(h.get("name") for h in hosts if (h.get("state") or "up") != "down")
    ring = dict((pid, list(hosts_of)) for pid, hosts_of in new.items())
    try:
        current, pending = settle(ring, dict((k, list(v)) for k, v in previous.items()), prev_current, eligible)
    except UnsafeChange as exc:
        raise PlacementError(str(exc))
    if params.get("switchover"):
        try:
            current, summary = switch(ring, current, params["switchover"]["project"], params["switchover"]["to"],
                                      params["switchover"].get("serving"))
        except PlanError as exc:
            raise PlacementError(str(exc))
        pending = [m for m in pending if m["project"] != summary["project"]]
        if summary["to"] != ring[summary["project"]][0]:
            pending.append({"project": summary["project"], "from": summary["to"], "to": ring[summary["project"]][0]})
    result = {"report": report, "moves": moves, "previous_found": found,
              "pending_moves": {"count": len(pending), "list": pending[:max(0, params["max_moves_listed"])]}}
    if params.get("switchover"):
        result["switchover"] = summary
    if params["return_placement"]:
        result["placement"] = ring
        result["per_host"] = roles_by_host(ring, current)
    result["plan_texts"] = {}
    if params.get("plans_dir") and not all(params.get("addresses", {}).get(h.get("name")) for h in hosts):
        given = dict((k, v) for k, v in (params.get("addresses") or {}).items() if v)
        try:
            known = addresses_from_plans(params["plans_dir"], hosts, read_file)
        except PlacementError:
            known = {}
        params = dict(params, addresses=dict(known, **given))
    if params.get("plans_dir"):
        holders = roles_by_host(ring, current)
        missing = sorted(h for h in holders if h not in params["addresses"])
        if missing:
            raise PlacementError("addresses: no address for %s (each host holding a copy needs the address its "
                                 "peers replicate to: run the VPN role first, or set the host variable "
                                 "zfs_storage_replication_address)" % ", ".join(missing[:10]))
        names = sorted(set(params["addresses"]) | set(h.get("name") for h in hosts))
        plans = host_plans(ring, current, dict((h, params["addresses"].get(h, "")) for h in names))
        result["plan_texts"] = dict((h, render_plan(plan)) for h, plan in plans.items() if h in params["addresses"])
    before_report = load_report(previous, [dict(h, state=h.get("state") or "up") for h in hosts]) \
        if found else {"hosts": {}}
    result["diff"] = {
        "before": diff_text(before_report, 0, []) if found else "",
        "after": diff_text(report, diff["slots_moved"], moves["list"]),
        "before_header": params.get("previous_path") or "(no previous placement)",
        "after_header": params.get("dest") or "(new placement)",
    }
    return result, render(new, replicas, current)


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read()


def _write(module, path, text):
    fd, tmp = tempfile.mkstemp(prefix=".placement.", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    module.atomic_move(tmp, path)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("projects", "projects_file")],
                           required_one_of=[("projects", "projects_file")], supports_check_mode=True)
    try:
        result, text = compute(module.params, _read)
    except (PlacementError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    dest = module.params.get("dest")
    changed = False
    if dest:
        result["dest"] = dest
        changed = _read(dest) != text
        if changed and not module.check_mode:
            _write(module, dest, text)
    texts = result.pop("plan_texts")
    if module.params.get("plans_dir"):
        result["plans"] = {}
        for host, text in sorted(texts.items()):
            path = os.path.join(module.params["plans_dir"], "%s.json" % host)
            result["plans"][host] = path
            if _read(path) != text:
                changed = True
                if not module.check_mode:
                    os.makedirs(module.params["plans_dir"], exist_ok=True)
                    _write(module, path, text)
    if not module._diff:
        result.pop("diff")
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
