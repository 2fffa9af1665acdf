#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: project_limits
short_description: Every project of this host as its own user, each one it serves in its own systemd slice, in one call
description:
  - Gives each project its own Unix user (uid derived stably from the project id, the same on every host; group of
    the same name and id; home the project's dataset mountpoint) and its own systemd slice
    C(<parent>-<user>.slice) below one parent slice C(<parent>.slice), with the project's CPU, memory, task and
    IO limits from its class and its own overrides. One call converges any number of projects.
  - The parent slice keeps a reserve for the host (sshd, tinc, etcd, the storage agent, all in C(system.slice)) -
    C(MemoryMax) is the host's memory less the C(memory) of O(reserve), and its C(CPUWeight) and C(IOWeight) are below
    C(system.slice)'s 100, so under contention the host's own services get their share.
  - Reads everything first (C(/sys/fs/cgroup/cgroup.controllers), C(/proc/meminfo), C(/etc/passwd),
    C(/etc/group), its own unit files, the slices' C(cgroup.events), the homes) and checks every input; a bad
    input (unknown class, malformed or negative size or percentage, a project id that cannot be a user name, a
    uid or name held by another user) or a cgroup v1 host fails before anything changes, naming the field and
    the fix.
  - Then, only for what differs - C(groupadd) and C(useradd) of missing users, the unit files (written
    atomically), C(/etc/smc/project-limits.json) (what C(smc-project) reads), one C(systemctl daemon-reload)
    (which applies changed limits to running slices at once - no process of a project is restarted), and the
    homes given to their users when root owns them.
  - Every project listed (primary or replica) gets its user, so files keep their owner on every copy. Slices
    are for the projects that run here - with O(active=all) every project of role primary, with
    O(active=mounted) every project whose home is mounted read-write now (whatever role the controller last
    gave it, since the HA loop moves primaries between runs; C(smc-project sync), which the storage agent runs
    after a claim, demotion, fence or switchover, applies the same rule from C(/etc/smc/project-limits.json)).
    A managed slice of a project that no longer runs here is removed when it runs no process; while it does,
    it is kept (RV(slices_kept)) and the next run removes it. Users are never removed (their uid owns the
    project's files, which replicas keep).
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reads the host and reports every user, file, removal and ownership change it would make.
  diff_mode:
    support: full
    description: Before and after text of every unit file and of the configuration, and one entry for users,
      removals and homes.
options:
  primary:
    description: Ids of the projects this host is primary for (e.g. the placement's primary list); each gets
      O(default_class).
    type: list
    elements: str
    default: []
  replica:
    description: Ids of the projects this host holds a replica of; each gets its user (and its slice when
      O(active=mounted) finds it mounted read-write, i.e. promoted since the list was made).
    type: list
    elements: str
    default: []
  active:
    description: Which projects get a slice - V(all) every project of role primary, V(mounted) every project
      whose home is a read-write mount on this host now (see C(/proc/self/mountinfo)).
    type: str
    choices: [all, mounted]
    default: all
  projects:
    description: Projects with their own settings (an id also in O(primary) or O(replica) takes its role from
      there).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Project id - lower-case letters, digits, C(-) and C(_), starting with a letter or digit.
        type: str
        required: true
      role:
        description: V(primary) (a slice with O(active=all)) or V(replica) (its user only, unless O(active=mounted)
          finds it mounted read-write).
        type: str
        choices: [primary, replica]
        default: primary
      class:
        description: One of O(classes); O(default_class) when omitted.
        type: str
      limits:
        description: Limits of this project over its class (same keys as O(classes)); a null value unsets a
          limit of the class.
        type: dict
        default: {}
      uid:
        description: The project's uid (and gid) instead of the derived one, e.g. to settle a collision.
        type: int
      home:
        description: Its home (the dataset's mountpoint) instead of O(home_base)/ID.
        type: str
  classes:
    description:
      - Limits per project class. Keys - C(cpu_weight) (1-10000, CPUWeight), C(cpu_quota) (percent of one CPU,
        V(50%), V(200%)), C(memory_high), C(memory_max) (bytes, V(512M), V(2G), V(infinity) or a percentage of the
        host's memory, V(25%)), C(memory_swap_max) (a size or V(infinity)), C(tasks_max) (a number, a
        percentage or V(infinity)), C(io_weight) (1-10000), C(io_read_bandwidth_max), C(io_write_bandwidth_max)
        (bytes per second on each of O(io_devices), V(20M)).
      - Every project starts from C(cpu_weight=100), C(io_weight=100), C(tasks_max=4096), then its class, then
        its own O(projects[].limits).
    type: dict
    default: {default: {}}
  default_class:
    description: Class of projects that name none.
    type: str
    default: default
  reserve:
    description: What the host keeps back from all projects together - C(memory) (a size or a percentage of the
      host's memory; the parent's MemoryMax is the rest), C(cpu_weight) and C(io_weight) of the parent
      (default 50 each, against 100 for C(system.slice)), optional C(cpu_quota) and C(tasks_max) of the parent.
    type: dict
    default: {memory: 256M, cpu_weight: 50, io_weight: 50}
  io_devices:
    description: Block devices the IO bandwidth limits apply to (the pool's disks).
    type: list
    elements: str
    default: []
  parent:
    description: Name of the parent slice without C(.slice); no C(-), so that it sits below the root.
    type: str
    default: smc_projects
  user_prefix:
    description: Start of every project's user name.
    type: str
    default: p
  uid_min:
    description: Lowest derived uid.
    type: int
    default: 200000
  uid_max:
    description: Highest derived uid.
    type: int
    default: 1999999999
  home_base:
    description: Where the project datasets are mounted; a project's home is C(<home_base>/<id>).
    type: str
    default: /projects
  shell:
    description: Login shell of new project users.
    type: str
    default: /bin/bash
  config_path:
    description: Where the projects' users, uids, homes and slices are written for C(smc-project).
    type: str
    default: /etc/smc/project-limits.json
notes:
  - Debian-family hosts with systemd and the unified cgroup v2 hierarchy.
  - On ZFS most writes reach the disks from ZFS's own threads, outside the writer's cgroup, so IO weights and
    bandwidth limits act on reads and on other filesystems more than on a project's ZFS writes.
seealso:
  - module: smc.backend.zfs_project
"""

EXAMPLES = r"""
- name: Limit every project of this host (one call for all of them); slices where the dataset is writable
  smc.backend.project_limits:
    primary: "{{ zfs_storage_primary }}"
    replica: "{{ zfs_storage_replica }}"
    active: mounted
    classes:
      default: {cpu_weight: 100, memory_high: 384M, memory_max: 512M, memory_swap_max: 0, tasks_max: 512}
      member: {cpu_weight: 300, memory_max: 2G, tasks_max: 2048}
    projects:
      - {id: demo-a, class: member, limits: {cpu_quota: 200%}}
    reserve: {memory: 512M, cpu_weight: 50, io_weight: 50}
    io_devices: [/dev/disk/by-id/virtio-smc-d1, /dev/disk/by-id/virtio-smc-d2]
"""

RETURN = r"""
home_warnings:
  description: Projects whose home is missing, not a directory or owned by someone else (also sent as warnings).
  returned: success
  type: list
  elements: str
summary:
  description: Counts - projects listed, projects that run here (get a slice), users created, slices created, updated, unchanged, removed, kept
    (still running), slices whose running limits changed, homes given to their users.
  returned: always
  type: dict
  sample: {projects: 2, running: 2, users_created: 2, slices_created: 2, slices_updated: 0, slices_unchanged: 0,
           slices_removed: 0, slices_kept: 0, live_changed: 0, homes_chowned: 2}
users_created:
  description: Users created (or that would be).
  returned: always
  type: list
  elements: str
  sample: [pdemo_a]
slices_written:
  description: Unit files written, the parent slice included.
  returned: always
  type: list
  elements: str
  sample: [smc_projects.slice, smc_projects-pdemo_a.slice]
slices_removed:
  description: Unit files of projects no longer listed, removed.
  returned: always
  type: list
  elements: str
slices_kept:
  description: Unit files of projects no longer listed, kept because their slice still runs processes.
  returned: always
  type: list
  elements: str
changes:
  description: Per unit file, the properties that change, C([before, after]) (lists of values; null when absent).
  returned: always
  type: dict
  sample: {"smc_projects-pdemo_a.slice": {"TasksMax": [["48"], ["64"]]}}
live:
  description: Slices running processes whose limits changed; the daemon-reload applied them in place.
  returned: always
  type: list
  elements: str
daemon_reload:
  description: Whether systemd re-read its unit files.
  returned: always
  type: bool
projects:
  description: Project id to its user, uid, slice and home.
  returned: always
  type: dict
  sample: {"demo-a": {"user": "pdemo_a", "uid": 1234567890, "slice": "smc_projects-pdemo_a.slice",
           "home": "/projects/demo-a"}}
"""

import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smc.backend.plugins.module_utils import project_limits as pl
from ansible_collections.smc.backend.plugins.module_utils import system_state as ss

UNIT_DIR = "/etc/systemd/system"
CGROUP_ROOT = "/sys/fs/cgroup"
MEMINFO = "/proc/meminfo"
MOUNTINFO = "/proc/self/mountinfo"
PASSWD = "/etc/passwd"
GROUP = "/etc/group"

ARGUMENT_SPEC = dict(
    primary=dict(type="list", elements="str", default=[]),
    replica=dict(type="list", elements="str", default=[]),
    active=dict(type="str", choices=["all", "mounted"], default="all"),
    projects=dict(type="list", elements="dict", default=[], options=dict(
        id=dict(type="str", required=True), role=dict(type="str", choices=["primary", "replica"], default="primary"),
        limits=dict(type="dict", default={}), uid=dict(type="int"), home=dict(type="str"),
        **{"class": dict(type="str")})),
    classes=dict(type="dict", default={"default": {}}),
    default_class=dict(type="str", default="default"),
    reserve=dict(type="dict", default={"memory": "256M", "cpu_weight": 50, "io_weight": 50}),
    io_devices=dict(type="list", elements="str", default=[]),
    parent=dict(type="str", default="smc_projects"),
    user_prefix=dict(type="str", default="p"),
    uid_min=dict(type="int", default=200000),
    uid_max=dict(type="int", default=1999999999),
    home_base=dict(type="str", default="/projects"),
    shell=dict(type="str", default="/bin/bash"),
    config_path=dict(type="str", default="/etc/smc/project-limits.json"),
)


def read_text(path):
    """The file's text, None when missing; a file that is not UTF-8 stops the call (StateError)."""
    return ss._read_text(path)


class Host:
    """The module's reads and actions on the host (commands through the module, files directly)."""

    def __init__(self, module):
        self.module = module

    def run(self, args):
        rc, out, err = self.module.run_command(args)
        if rc != 0:
            raise pl.LimitsError("%s failed (rc %d): %s" % (" ".join(args), rc, (err or out).strip()[-2000:]))
        return out

    def unit_files(self, parent):
        """{name: text or None} of the files in UNIT_DIR named <parent>.slice or <parent>-*.slice."""
        out = {}
        for name in os.listdir(UNIT_DIR) if os.path.isdir(UNIT_DIR) else []:
            if name.endswith(".slice") and (name == pl.parent_unit(parent) or name.startswith(parent + "-")):
                path = os.path.join(UNIT_DIR, name)
                out[name] = read_text(path) if stat.S_ISREG(os.lstat(path).st_mode) else None
        return out

    def populated(self, parent, names):
        """The slices of ``names`` whose cgroup holds processes now (cgroup.events: populated 1)."""
        out = set()
        for name in names:
            events = read_text(os.path.join(pl.cgroup_dir(parent, name, CGROUP_ROOT), "cgroup.events")) or ""
            if "populated 1" in events.splitlines():
                out.add(name)
        return out

    def write(self, path, text, mode=0o644):
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(prefix=".%s.smc-" % os.path.basename(path), dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8"))
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def plan_homes(projects):
    """([(home, uid, gid)] to give to their users, warnings): only a home directory root owns is given."""
    chown, warnings = [], []
    for pr in projects:
        try:
            st = os.lstat(pr["home"])
        except FileNotFoundError:
            warnings.append("%s: home %s does not exist yet (create the dataset first); the user is made with it "
                            "as home and it is given to the user by a later run" % (pr["id"], pr["home"]))
            continue
        if not stat.S_ISDIR(st.st_mode):
            warnings.append("%s: home %s is not a directory; left as it is" % (pr["id"], pr["home"]))
        elif st.st_uid == 0 and pr["uid"] != 0:
            chown.append((pr["home"], pr["uid"], pr["gid"]))
        elif st.st_uid != pr["uid"]:
            warnings.append("%s: home %s belongs to uid %d, not the project's %d; left as it is" % (
                pr["id"], pr["home"], st.st_uid, pr["uid"]))
    return chown, warnings


def plan(params, host):
    """Everything the call would change, read from the host; raises LimitsError before any change."""
    spec = pl.validate(params)
    pl.check_cgroup2(read_text(os.path.join(CGROUP_ROOT, "cgroup.controllers")), needed=("cpu", "memory", "pids", "io"))
    memory = ss.memory_bytes(read_text(MEMINFO) or "")
    mounts = pl.rw_mounts(read_text(MOUNTINFO)) if spec["active"] == "mounted" else frozenset()
    running = [pr for pr in spec["projects"] if pl.runs_here(spec["active"], pr, mounts)]
    desired = pl.desired_units(spec, memory, mounts)
    existing = host.unit_files(spec["parent"])
    populated = host.populated(spec["parent"], sorted(existing))
    units = pl.plan_units(desired, existing, populated)
    users = pl.plan_users(spec["projects"], pl.parse_passwd(read_text(PASSWD)), pl.parse_passwd(read_text(GROUP)))
    chown, warnings = plan_homes(running)  # (a replica's home is not its dataset: unmounted or read-only)
    config_before, config_after = read_text(params["config_path"]), pl.render_config(spec)
    return dict(spec=spec, units=units, users=users, chown=chown, warnings=warnings, existing=existing, running=running,
                live=sorted(n for n in units["changes"] if n in populated),
                config=(config_before, config_after) if config_before != config_after else None)


def apply(params, p, host):
    """Make the planned changes: users, unit files, configuration, one daemon-reload, homes."""
    for u in p["users"]:
        if not u["group_exists"]:
            host.run(["groupadd", "--system", "--gid", str(u["gid"]), "--", u["user"]])
        host.run(["useradd", "--system", "--uid", str(u["uid"]), "--gid", str(u["gid"]), "--no-create-home",
                  "--home-dir", u["home"], "--shell", params["shell"], "--comment", "smc project %s" % u["id"],
                  "--", u["user"]])
    for name, _before, after in p["units"]["write"]:
        host.write(os.path.join(UNIT_DIR, name), after)
    for name in p["units"]["remove"]:
        os.unlink(os.path.join(UNIT_DIR, name))
    if p["config"]:
        host.write(params["config_path"], p["config"][1])
    if p["units"]["write"] or p["units"]["remove"]:
        host.run(["systemctl", "daemon-reload"])
    for home, uid, gid in p["chown"]:
        os.chown(home, uid, gid)


def summary(p):
    written = [w[0] for w in p["units"]["write"]]
    created = [n for n in written if n not in p["existing"]]
    return dict(projects=len(p["spec"]["projects"]), running=len(p["running"]), users_created=len(p["users"]),
                slices_created=len(created), slices_updated=len(written) - len(created),
                slices_unchanged=len(p["running"]) + 1 - len(written),
                slices_removed=len(p["units"]["remove"]), slices_kept=len(p["units"]["kept"]),
                live_changed=len(p["live"]), homes_chowned=len(p["chown"]))


def diff_of(params, p):
    out = [dict(before_header=os.path.join(UNIT_DIR, name), after_header=os.path.join(UNIT_DIR, name),
                before=before or "", after=after) for name, before, after in p["units"]["write"]]
    out.extend(dict(before_header=os.path.join(UNIT_DIR, name), after_header="%s (removed)" % name,
                    before=p["existing"][name] or "", after="") for name in p["units"]["remove"])
    if p["config"]:
        out.append(dict(before_header=params["config_path"], after_header=params["config_path"],
                        before=p["config"][0] or "", after=p["config"][1]))
    before = ["user %s: absent\n" % u["user"] for u in p["users"]]
    after = ["user %s: uid %d, gid %d, home %s\n" % (u["user"], u["uid"], u["gid"], u["home"]) for u in p["users"]]
    before += ["home %s: owned by root\n" % h for h, _u, _g in p["chown"]]
    after += ["home %s: owned by %d:%d\n" % (h, u, g) for h, u, g in p["chown"]]
    if before:
        out.append(dict(before_header="host state", after_header="host state", before="".join(before),
                        after="".join(after)))
    return out


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    host = Host(module)
    params = dict(module.params)
    try:
        err = ss.check_path("config_path", params["config_path"]) or ss.check_path("shell", params["shell"])
        if err:
            raise pl.LimitsError(err)
        p = plan(params, host)
    except (pl.LimitsError, ss.StateError, OSError) as exc:
        module.fail_json(msg="%s%s" % (exc, "" if "othing was changed" in str(exc) else ". Nothing was changed."))
    for warning in p["warnings"]:
        module.warn(warning)
    units = p["units"]
    result = dict(summary=summary(p), users_created=[u["user"] for u in p["users"]], home_warnings=p["warnings"],
                  slices_written=[w[0] for w in units["write"]], slices_removed=units["remove"],
                  slices_kept=units["kept"], changes=units["changes"], live=p["live"],
                  daemon_reload=bool(units["write"] or units["remove"]),
                  projects={pr["id"]: dict(user=pr["user"], uid=pr["uid"], slice=pr["unit"], home=pr["home"])
                            for pr in p["spec"]["projects"]})
    result["changed"] = bool(p["users"] or units["write"] or units["remove"] or p["config"] or p["chown"])
    if module._diff:
        result["diff"] = diff_of(params, p)
    if not module.check_mode and result["changed"]:
        try:
            apply(params, p, host)
        except (pl.LimitsError, OSError) as exc:
            module.fail_json(msg="%s (the changes before this step were made)" % exc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
