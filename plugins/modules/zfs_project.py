#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: zfs_project
short_description: Many project datasets in one call - create, check, quarantine
description:
  - Keeps one dataset per project, C(<parent>/<id>), for any number of projects in a single call. One
    C(zfs list -H -p -r -d 1) reads the state, new datasets are created in one process (libzfs_core through
    ctypes, or one C(sh) running C(zfs create) lines), and property changes are grouped into a few C(zfs set)
    calls that each name many datasets.
  - A primary is writable (C(readonly=off)), a replica C(readonly=on). Every dataset gets the user
    properties C(smc:role) and C(smc:class) (the storage agent's retention class).
  - Removing a project (O(remove)) renames its dataset into O(quarantine_parent) as C(<id>-<UTC time>),
    read-only; nothing is destroyed. Destroying a quarantined copy takes a later call naming the project in
    O(confirm_destroy).
  - Datasets under O(parent) that are not listed are left alone and reported in RV(unmanaged).
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reads the datasets once and reports what would be created, set, quarantined or destroyed.
  diff_mode:
    support: full
    description: Before and after of every changed dataset's managed properties (up to 1000 lines).
options:
  parent:
    description: Parent dataset of the projects, for example V(tank/projects). Created if missing.
    type: str
    required: true
  parent_properties:
    description: Properties of O(parent) (for example C(mountpoint=/projects)), set when created and kept.
    type: dict
    default: {}
  projects:
    description: Projects with their own settings. An id may appear here or in O(primary)/O(replica), once.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Project id (letters, digits, underscore, dot, colon, hyphen). The dataset is C(<parent>/<id>).
        type: str
        required: true
      role:
        description: V(primary) is writable, V(replica) is C(readonly=on).
        type: str
        default: primary
        choices: [primary, replica]
      quota:
        description: Quota (C(10G), V(none)); default O(quota).
        type: str
      refquota:
        description: Refquota; default O(refquota).
        type: str
      class:
        description: Retention class of the storage agent; default O(class).
        type: str
      properties:
        description: More properties for this project, on top of O(properties).
        type: dict
  primary:
    description: Ids of projects this host is primary for (compact form, e.g. from the placement).
    type: list
    elements: str
    default: []
  replica:
    description: Ids of projects this host holds a replica of.
    type: list
    elements: str
    default: []
  create_replicas:
    description:
      - Create the datasets of O(replica) ids that do not exist yet (empty, read-only).
      - Turn off when the storage agent seeds replicas by replication, as role C(zfs_storage) does. Its receiver
        never receives a full stream over an existing dataset, so a replica must first appear by its seed.
        Missing ones are then listed in RV(awaiting_seed); existing ones are still kept read-only.
    type: bool
    default: true
  role_changes:
    description:
      - Change C(readonly) and C(smc:role) of existing datasets to match O(primary) and O(replica).
      - Turn off where another process owns the roles of existing copies - the storage agent's HA loop (role
        C(zfs_storage) with HA on) moves primaries between runs, and a controller's list that lags it must
        never make a second copy writable. Existing datasets whose role differs are then left as they are and
        listed in RV(roles_left); new datasets still get the listed role.
    type: bool
    default: true
  quota:
    description: Default quota of every project; omit to leave quotas alone.
    type: str
  refquota:
    description: Default refquota of every project; omit to leave refquotas alone.
    type: str
  class:
    description: Default retention class (C(smc:class)).
    type: str
    default: default
  properties:
    description: Properties of every project dataset, for example C(snapdir=visible), C(compression=lz4).
    type: dict
    default: {}
  remove:
    description: Project ids to quarantine (rename into O(quarantine_parent), read-only). Never destroys.
    type: list
    elements: str
    default: []
  quarantine_parent:
    description:
      - Where removed projects go; default C(<pool>/quarantine). It must be in the pool of O(parent), and
        neither inside O(parent) nor containing it.
      - The module creates it (C(canmount=off), marked with the user property C(smc:role=quarantine)) and
        uses only a dataset that carries that mark; an existing unmarked dataset is refused and its
        properties are never changed. Only quarantined copies (C(smc:role=quarantined)) in it are destroyed.
    type: str
  confirm_destroy:
    description:
      - Project ids whose quarantined copies are destroyed (C(zfs destroy -r)). Only copies already in
        quarantine; a project listed in O(projects), O(primary), O(replica) or O(remove) is refused.
    type: list
    elements: str
    default: []
  mount:
    description:
      - Mount newly created datasets (they mount at boot anyway when C(canmount=on)). With O(method=lzc)
        only the created datasets that have a mountpoint are mounted (one C(zfs mount) each, in one shell).
    type: bool
    default: true
  method:
    description:
      - How new datasets are created. V(lzc) calls libzfs_core in the module's process (fast, thousands per
        second, several at a time; user properties, sizes and on/off flags are set at creation, other
        properties by grouped C(zfs set)); V(sh) runs C(zfs create) lines through one shell; V(auto) uses
        V(lzc) when it loads.
      - Put properties common to all projects (compression, snapdir) on O(parent_properties) so they are
        inherited, not set on every dataset.
    type: str
    default: auto
    choices: [auto, lzc, sh]
"""

EXAMPLES = r"""
- name: Project datasets of this host, from the placement
  smc.backend.zfs_project:
    parent: tank/projects
    parent_properties:
      mountpoint: /projects
    primary: "{{ placement_roles.primary }}"
    replica: "{{ placement_roles.replica }}"
    quota: 10G
    properties:
      snapdir: visible

- name: One project with its own quota and retention class
  smc.backend.zfs_project:
    parent: tank/projects
    projects:
      - id: 6f1c2d0e-1b7a-4c55-9a10-3f1f0c1e2d3a
        role: primary
        quota: 50G
        class: member

- name: Quarantine a project that left this host
  smc.backend.zfs_project:
    parent: tank/projects
    remove: [6f1c2d0e-1b7a-4c55-9a10-3f1f0c1e2d3a]

- name: Destroy its quarantined copies (a human decision)
  smc.backend.zfs_project:
    parent: tank/projects
    confirm_destroy: [6f1c2d0e-1b7a-4c55-9a10-3f1f0c1e2d3a]
"""

RETURN = r"""
roles_left:
  description: Existing datasets whose C(readonly)/C(smc:role) differ from the lists, left as they are because
    O(role_changes=false) (at most 100 listed).
  returned: always
  type: list
  elements: str
awaiting_seed:
  description: Replica datasets not created because replication seeds them (O(create_replicas=false)).
  returned: always
  type: list
  elements: str
created:
  description: Datasets created (at most 100 listed; see RV(counts)).
  returned: always
  type: list
  elements: str
updated:
  description: Datasets whose properties were set, with the new values (at most 100 listed).
  returned: always
  type: dict
quarantined:
  description: Old name -> quarantine name of removed projects.
  returned: always
  type: dict
destroyed:
  description: Quarantined datasets destroyed.
  returned: always
  type: list
  elements: str
unmanaged:
  description: Datasets under the parent that no option names (at most 100 listed).
  returned: always
  type: list
  elements: str
counts:
  description: Numbers of projects, existing, created, updated, quarantined, destroyed, unmanaged datasets and
    commands run.
  returned: always
  type: dict
  sample: {"projects": 10000, "existing": 0, "created": 10000, "updated": 0, "commands": 14}
method:
  description: Creation method used (V(lzc) or V(sh)); V(none) when nothing was created.
  returned: always
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smc.backend.plugins.module_utils.zfs_cli import Lzc, ZfsCli, ZfsError, same_value
from ansible_collections.smc.backend.plugins.module_utils.zfs_project_plan import (
    LIST_MAX, QUARANTINE_MARK, ProjectError, check_datasets, desired_projects, destroy_targets, diff_text,
    group_sets, hold_back, plain_properties, plan, quarantine_moves, quarantine_state)

PROJECT_SPEC = dict(
    id=dict(type="str", required=True),
    role=dict(type="str", default="primary", choices=["primary", "replica"]),
    quota=dict(type="str"),
    refquota=dict(type="str"),
    properties=dict(type="dict"),
    **{"class": dict(type="str")}
)
ARGUMENT_SPEC = dict(
    parent=dict(type="str", required=True),
    parent_properties=dict(type="dict", default={}),
    projects=dict(type="list", elements="dict", default=[], options=PROJECT_SPEC),
    primary=dict(type="list", elements="str", default=[]),
    replica=dict(type="list", elements="str", default=[]),
    create_replicas=dict(type="bool", default=True),
    role_changes=dict(type="bool", default=True),
    quota=dict(type="str"),
    refquota=dict(type="str"),
    properties=dict(type="dict", default={}),
    remove=dict(type="list", elements="str", default=[]),
    quarantine_parent=dict(type="str"),
    confirm_destroy=dict(type="list", elements="str", default=[]),
    mount=dict(type="bool", default=True),
    method=dict(type="str", default="auto", choices=["auto", "lzc", "sh"]),
    **{"class": dict(type="str", default="default")}
)


class Projects:
    def __init__(self, module, cli):
        self.m, self.cli, self.p = module, cli, module.params
        self.changed = False

    def fail(self, msg, **extra):
        self.m.fail_json(msg=msg, commands=self.cli.commands, **extra)

    def write(self, args):
        self.changed = True
        if not self.m.check_mode:
            self.cli.run(args)

    def ensure_parent(self, parent, props):
        rows = self.cli.list(parent, sorted(props), depth=0)
        if not rows:
            args = ["zfs", "create", "-p"]
            for k, v in sorted(props.items()):
                args += ["-o", "%s=%s" % (k, v)]
            self.write(args + [parent])
            return
        diff = {k: v for k, v in props.items() if not same_value(k, v, rows[0].get(k, "-"))}
        if diff:
            self.write(["zfs", "set"] + ["%s=%s" % kv for kv in sorted(diff.items())] + [parent])

    def create(self, creates):
        method = self.p["method"]
        lzc = Lzc.load() if method in ("auto", "lzc") else None
        if method == "lzc" and lzc is None:
            self.fail("method=lzc but libzfs_core could not be loaded: install libzfs_core (zfsutils-linux) "
                      "or use method=sh")
        used = "lzc" if lzc else "sh"
        if self.m.check_mode or not creates:
            return used
        names = sorted(creates)
        if lzc:
            split = {n: Lzc.split_props(creates[n]) for n in names}
            errors = lzc.create_many({n: split[n][0] for n in names})
            if errors:
                first = sorted(errors.items())[:5]
                self.fail("could not create %d of %d dataset(s) with libzfs_core, e.g. %s" % (
                    len(errors), len(names), ", ".join("%s (errno %d)" % e for e in first)))
            for assignments, chunk in group_sets({n: split[n][1] for n in names if split[n][1]}):
                self.cli.run(["zfs", "set"] + assignments + chunk)
            if self.p["mount"]:
                self.mount(names)
        else:
            cmds = []
            for name in names:
                args = ["zfs", "create"] + ([] if self.p["mount"] else ["-u"])
                for k, v in sorted(creates[name].items()):
                    args += ["-o", "%s=%s" % (k, v)]
                cmds.append(args + [name])
            self._script(cmds)
        return used

    def mount(self, names):
        """Mount the datasets just created (only those, never C(zfs mount -a)) that have a mountpoint."""
        wanted = set(names)
        rows = self.cli.list(self.p["parent"], ["canmount", "mountpoint", "mounted"], depth=1)
        self._script([["zfs", "mount", r["name"]] for r in rows if r["name"] in wanted and r["canmount"] == "on"
                      and r["mountpoint"].startswith("/") and r["mounted"] == "no"])

    def _script(self, cmds):
        failed = self.cli.script(cmds)
        if failed:
            self.fail("%d command(s) failed, e.g. '%s' (rc=%d): %s" % (
                len(failed), " ".join(failed[0][0]), failed[0][1], failed[0][2][-500:]))

    def ensure_quarantine(self, qparent, create):
        """Check that qparent is ours (never change a dataset we did not create); create it when ``create``.
        Returns whether it exists (or would, in check mode)."""
        state = quarantine_state(self.cli.list(qparent, [QUARANTINE_MARK[0]], depth=0), qparent)
        if state == "foreign":
            self.fail("quarantine_parent %s exists but was not created by smc.backend.zfs_project (it lacks %s=%s): "
                      "refusing to rename projects into it or destroy anything in it. Choose another "
                      "quarantine_parent, or mark this one if it really is a quarantine: zfs set %s=%s %s. "
                      "Nothing was changed." % ((qparent,) + QUARANTINE_MARK * 2 + (qparent,)))
        if state == "absent" and create:
            self.write(["zfs", "create", "-p", "-o", "canmount=off", "-o", "%s=%s" % QUARANTINE_MARK, qparent])
            return True
        return state == "ours"

    def quarantine(self, parent, qparent, ids, existing):
        moved = {}
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moves = quarantine_moves(parent, qparent, ids, existing, stamp)
        if moves:
            self.ensure_quarantine(qparent, create=True)
        for old, new in moves:
            self.write(["zfs", "rename", old, new])
            self.write(["zfs", "set", "readonly=on", "smc:role=quarantined", "smc:quarantined=%s" % stamp,
                        "smc:origin=%s" % old, new])
            moved[old] = new
        return moved

    def destroy(self, qparent, ids):
        if not self.ensure_quarantine(qparent, create=False):
            return []
        gone = destroy_targets(qparent, ids, self.cli.list(qparent, ["smc:role"], depth=1))
        for name in gone:
            self.write(["zfs", "destroy", "-r", name])
        return gone


def run_module():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    parent = p["parent"].strip("/")
    qparent = (p["quarantine_parent"] or parent.split("/")[0] + "/quarantine").strip("/")
    try:
        check_datasets(parent, qparent)
        desired = desired_projects(p)
        plain_properties(p["parent_properties"], "parent_properties")
    except ProjectError as exc:
        module.fail_json(msg="%s. Nothing was changed." % exc)
    cli = ZfsCli(module.run_command)
    work = Projects(module, cli)
    keys = sorted({k for props in desired.values() for k in props})
    try:
        if p["remove"] or p["confirm_destroy"]:
            work.ensure_quarantine(qparent, create=False)  # a foreign quarantine_parent fails before any change
        work.ensure_parent(parent, p["parent_properties"])
        rows = cli.list(parent, keys or ["readonly"], depth=1)
        creates, updates, unmanaged = plan(parent, rows, desired)
        awaiting, roles_left = hold_back(parent, creates, updates, p["replica"], p["create_replicas"],
                                         p["role_changes"])
        existing = {r["name"] for r in rows}
        quarantined = work.quarantine(parent, qparent, p["remove"], existing)
        unmanaged = [n for n in unmanaged if n not in quarantined]
        destroyed = work.destroy(qparent, p["confirm_destroy"]) if p["confirm_destroy"] else []
        method = work.create(creates) if creates else "none"
        sets = {name: {k: w for k, (_have, w) in diff.items()} for name, diff in updates.items()}
        for assignments, chunk in group_sets(sets):
            work.write(["zfs", "set"] + assignments + chunk)
    except ZfsError as exc:
        module.fail_json(msg=str(exc), commands=cli.commands)
    before, after = diff_text(creates, updates)
    for old, new in quarantined.items():
        before += "%s\n" % old
        after += "%s (quarantined)\n" % new
    before += "".join("%s\n" % n for n in destroyed)
    module.exit_json(
        changed=bool(work.changed or creates or updates),
        created=sorted(creates)[:LIST_MAX],
        updated={n: {k: w for k, (_have, w) in d.items()} for n, d in sorted(updates.items())[:LIST_MAX]},
        quarantined=quarantined, destroyed=destroyed, unmanaged=unmanaged[:LIST_MAX], method=method,
        awaiting_seed=awaiting[:LIST_MAX], roles_left=roles_left[:LIST_MAX],
        counts=dict(projects=len(desired), existing=len(rows) - 1 if rows else 0, created=len(creates),
                    updated=len(updates), quarantined=len(quarantined), destroyed=len(destroyed),
                    awaiting_seed=len(awaiting),
                    unmanaged=len(unmanaged), commands=cli.commands),
        diff=dict(before=before, after=after),
    )


def main():
    run_module()


if __name__ == "__main__":
    main()
