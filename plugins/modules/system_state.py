#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: system_state
short_description: Packages, directories, files, blocks, kernel modules and parameters, systemd units in one call
description:
  - Brings a host to the stated packages, directories, files, managed blocks, kernel modules, kernel module
    parameters and systemd units in one module run. On a slow host each module run costs seconds, so a role
    makes one call of this per concern instead of one task per file or unit.
  - Reads everything first (the dpkg status database, the files, C(/sys/module), one C(systemctl show) for
    all units) and checks every input; a bad input or a host state it will not touch fails the task before
    anything is changed, and the message names the option and the fix.
  - Acts in this order, each step only for what differs - C(apt-get install) of the missing packages
    (C(apt-get update) first when O(update_cache)), C(modprobe) of the modules not loaded, directories, files
    and blocks (each written atomically through a temporary file in the same directory, symbolic links
    followed), modprobe.d files and running values of kernel module parameters, C(systemctl daemon-reload)
    when a unit file changed, then units (enable, disable, start, stop, restart).
  - Never removes a file, a directory, a package or a unit file. Files that are not listed are never touched.
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reads the host and reports every change it would make; changes nothing.
  diff_mode:
    support: full
    description: Before and after text of every file and block (not of files marked O(files[].secret)), and
      one entry for packages, directories, kernel modules, parameters and units that would change.
options:
  packages:
    description: Debian packages that must be installed (names, optionally C(name:arch)). Installed ones are
      found in C(/var/lib/dpkg/status) without running apt; apt-get runs only for missing ones.
    type: list
    elements: str
    default: []
  update_cache:
    description: Run C(apt-get update) before installing (only when a package is missing).
    type: bool
    default: false
  directories:
    description: Directories that must exist with a mode; missing parents are made with the same mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute, normalized path.
        type: str
        required: true
      mode:
        description: Octal mode, quoted (V("0755")).
        type: raw
        default: "0755"
  files:
    description: Files whose whole text is given. Written when text or mode differ; the owner of an existing
      file is kept, a new file belongs to the user the module runs as.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute, normalized path; its directory must exist or be listed in O(directories).
        type: str
        required: true
      content:
        description: The file's whole text (written as UTF-8, byte for byte).
        type: str
        required: true
      mode:
        description: Octal mode, quoted (V("0644")).
        type: raw
        default: "0644"
      secret:
        description: Leave the text out of the diff. The task's arguments still carry it, so give such a task
          C(no_log) as well.
        type: bool
        default: false
  blocks:
    description: Blocks between marker lines in a file, as M(ansible.builtin.blockinfile) writes them at the
      end of the file (an existing block is replaced where it is, an empty O(blocks[].block) removes it).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file holding the block (absolute, normalized); it must exist unless
          O(blocks[].create) is set. A symbolic link is followed.
        type: str
        required: true
      block:
        description: Text between the markers.
        type: str
        default: ""
      marker:
        description: Marker line; V({mark}) becomes C(BEGIN) and C(END).
        type: str
        default: "# {mark} ANSIBLE MANAGED BLOCK"
      remove_lines:
        description: Regular expressions; a line outside the block that one matches as a whole (line ending
          aside, as with C(re.fullmatch)) is removed. A pattern that matches an empty line is refused.
        type: list
        elements: str
        default: []
      create:
        description: Create the file when it is missing (else that fails the task).
        type: bool
        default: false
  kernel_modules:
    description: Kernel modules that must be loaded (C(modprobe) when C(/sys/module/NAME) is missing).
    type: list
    elements: str
    default: []
  module_parameters:
    description: Kernel module parameters, at boot (an C(options) line in a modprobe.d file) and in the
      running kernel (C(/sys/module/MODULE/parameters/NAME), written when the value differs).
    type: list
    elements: dict
    default: []
    suboptions:
      module:
        description: Kernel module name.
        type: str
        required: true
      values:
        description: Parameter name to value.
        type: dict
        default: {}
      memory_percent:
        description: Parameter name to a percentage of the host's memory (C(MemTotal)); the value is that many
          bytes, rounded down.
        type: dict
        default: {}
      conf:
        description: The modprobe.d file to write (its whole text - O(module_parameters[].comment) and one
          C(options) line); omit to leave boot settings alone.
        type: str
      comment:
        description: First line of O(module_parameters[].conf), after C(# ).
        type: str
        default: ""
      runtime:
        description: Also set the running values. The module must be loaded, or listed in O(kernel_modules).
        type: bool
        default: true
  units:
    description: systemd units; C(systemctl daemon-reload) runs first when a file of this call below a
      systemd unit directory changed.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Unit name, for example C(smc-zfs-agent.timer) or C(zfs-scrub-monthly@tank.timer).
        type: str
        required: true
      enabled:
        description: Enabled at boot (V(true)), disabled (V(false)), or left alone (omitted).
        type: bool
      state:
        description: Running (V(started)), not running (V(stopped)), or left alone (omitted).
        type: str
        choices: [started, stopped]
      restart:
        description: Restart the unit (unless this call starts it or it is to be stopped), for example
          because another task changed its configuration.
        type: bool
        default: false
      restart_on_change:
        description: Paths of this call (files, blocks, conf files) whose change restarts the unit.
        type: list
        elements: str
        default: []
      reload_on_change:
        description:
          - Paths of this call whose change reloads the running unit (C(systemctl reload)) instead, for a
            service that takes new code or configuration without a restart.
          - A restart due as well (O(units[].restart), O(units[].restart_on_change)) wins; a unit that is not
            running is started, not reloaded.
        type: list
        elements: str
        default: []
notes:
  - Debian-family hosts with systemd.
seealso:
  - module: smc.backend.system_info
"""

EXAMPLES = r"""
- name: Install the storage packages, load ZFS now and at boot, name the peers in /etc/hosts
  smc.backend.system_state:
    packages: [zfsutils-linux, mbuffer]
    kernel_modules: [zfs]
    directories:
      - {path: /etc/smc, mode: "0755"}
    files:
      - {path: /etc/modules-load.d/zfs.conf, content: "zfs\n", mode: "0644"}
    blocks:
      - path: /etc/hosts
        marker: "# {mark} smc.backend storage hosts"
        block: "10.77.0.11 dc1-s1\n10.77.0.12 dc1-s2\n"
        remove_lines: ['127\.0\.1\.1\s+dc1-s1\s*']

- name: Bound the ARC to a quarter of the memory, now and at boot; run the monthly scrub timer
  smc.backend.system_state:
    module_parameters:
      - module: zfs
        memory_percent: {zfs_arc_max: 25}
        conf: /etc/modprobe.d/zfs.conf
        comment: "ARC maximum (25% of RAM)"
    units:
      - {name: zfs-scrub-monthly@tank.timer, enabled: true, state: started}
      - {name: zfs-scrub-weekly@tank.timer, enabled: false, state: stopped}

- name: Install a service and its timer, reload systemd, and keep the timer running
  smc.backend.system_state:
    files:
      - {path: /etc/systemd/system/agent.service, content: "[Service]\nExecStart=/usr/local/sbin/agent\n"}
      - {path: /etc/systemd/system/agent.timer, content: "[Timer]\nOnCalendar=hourly\n[Install]\nWantedBy=timers.target\n"}
    units:
      - {name: agent.timer, enabled: true, state: started}
"""

RETURN = r"""
packages:
  description: Packages installed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [mbuffer]
directories:
  description: Directories created or given their mode.
  returned: always
  type: list
  elements: str
  sample: [/etc/smc]
files:
  description: Files and blocks written or given their mode (paths), including modprobe.d files.
  returned: always
  type: list
  elements: str
  sample: [/etc/hosts, /etc/modprobe.d/zfs.conf]
kernel_modules:
  description: Kernel modules loaded.
  returned: always
  type: list
  elements: str
  sample: [zfs]
module_parameters:
  description: Running parameter values set, C(MODULE.NAME) to C([before, after]) (before is null when the
    module was loaded by this call).
  returned: always
  type: dict
  sample: {"zfs.zfs_arc_max": ["0", "268435456"]}
daemon_reload:
  description: Whether systemd re-read its unit files.
  returned: always
  type: bool
units:
  description: Unit name to the actions taken (enable, disable, start, stop, restart, reload).
  returned: always
  type: dict
  sample: {"smc-zfs-agent.timer": ["enable", "start"]}
memory_bytes:
  description: The host's MemTotal in bytes, when O(module_parameters) asked for a memory percentage.
  returned: when read
  type: int
  sample: 1024458752
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smc.backend.plugins.module_utils import system_state as ss

DPKG_STATUS = "/var/lib/dpkg/status"
SYS_MODULE = "/sys/module"
MEMINFO = "/proc/meminfo"
APT_ENV = dict(DEBIAN_FRONTEND="noninteractive", DEBIAN_PRIORITY="critical", LC_ALL="C.UTF-8", LANG="C.UTF-8")
APT_DPKG = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]

_DICT = dict(type="list", elements="dict", default=[])
ARGUMENT_SPEC = dict(
    packages=dict(type="list", elements="str", default=[]),
    update_cache=dict(type="bool", default=False),
    directories=dict(_DICT, options=dict(path=dict(type="str", required=True), mode=dict(type="raw", default="0755"))),
    files=dict(_DICT, options=dict(path=dict(type="str", required=True), content=dict(type="str", required=True),
                                   mode=dict(type="raw", default="0644"), secret=dict(type="bool", default=False))),
    blocks=dict(_DICT, options=dict(
        path=dict(type="str", required=True), block=dict(type="str", default=""),
        marker=dict(type="str", default="# {mark} ANSIBLE MANAGED BLOCK"),
        remove_lines=dict(type="list", elements="str", default=[]), create=dict(type="bool", default=False))),
    kernel_modules=dict(type="list", elements="str", default=[]),
    module_parameters=dict(_DICT, options=dict(
        module=dict(type="str", required=True), values=dict(type="dict", default={}),
        memory_percent=dict(type="dict", default={}), conf=dict(type="str"), comment=dict(type="str", default=""),
        runtime=dict(type="bool", default=True))),
    units=dict(_DICT, options=dict(
        name=dict(type="str", required=True), enabled=dict(type="bool"),
        state=dict(type="str", choices=["started", "stopped"]), restart=dict(type="bool", default=False),
        restart_on_change=dict(type="list", elements="str", default=[]),
        reload_on_change=dict(type="list", elements="str", default=[]))),
)


class Host:
    """The module's reads and actions on the host (commands through the module, files directly)."""

    def __init__(self, module):
        self.module = module

    def run(self, args, env=None):
        rc, out, err = self.module.run_command(args, environ_update=env or {})
        if rc != 0:
            raise ss.StateError("%s failed (rc %d): %s" % (" ".join(args), rc, (err or out).strip()[-2000:]))
        return out

    def installed(self):
        return ss.read_installed(DPKG_STATUS)

    def units(self, names):
        return ss.show_units(self.run, names)

    def memory(self):
        with open(MEMINFO, encoding="ascii") as f:
            return ss.memory_bytes(f.read())

    def write(self, path, text, mode):
        real = os.path.realpath(path)
        fd, tmp = tempfile.mkstemp(prefix=".%s.smc-" % os.path.basename(real), dir=os.path.dirname(real))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8"))
            old = os.umask(0o077)  # a new file is made 0600 by atomic_move, then given its mode
            try:
                self.module.atomic_move(tmp, real)
            finally:
                os.umask(old)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        os.chmod(real, mode)


def plan(spec, host):
    """Everything the call would change, read from the host; raises StateError before any change."""
    missing = [p for p in spec["packages"] if p not in host.installed()] if spec["packages"] else []
    needs_mem = any(m["percents"] for m in spec["module_parameters"])
    mem = host.memory() if needs_mem else None
    kmods = ss.plan_kernel_modules(spec["kernel_modules"], SYS_MODULE)
    texts = ss.plan_texts(spec["files"], spec["blocks"], ss.module_parameter_texts(spec["module_parameters"], mem))
    written = [f["path"] for f in spec["files"]] + [b["path"] for b in spec["blocks"]] + [
        m["conf"] for m in spec["module_parameters"] if m["conf"]]
    dirs = ss.plan_directories(spec["directories"], written)
    params = ss.plan_runtime_parameters(spec["module_parameters"], mem, SYS_MODULE)
    changed_paths = [t["path"] for t in texts]
    names = [u["name"] for u in spec["units"]]
    units = ss.plan_units(spec["units"], host.units(names), changed_paths, packages_pending=bool(missing))
    return dict(missing=missing, mem=mem, kmods=kmods, texts=texts, dirs=dirs, params=params,
                reload=ss.needs_daemon_reload(changed_paths), units=units)


def make_dirs(path, mode):
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for p in reversed(missing):
        os.mkdir(p, mode)
        os.chmod(p, mode)


def apply(spec, p, host):
    """Make the planned changes; returns the unit actions taken (re-planned after files and reload)."""
    if p["missing"]:
        if spec["update_cache"]:
            host.run(["apt-get", "update", "-q"], APT_ENV)
        host.run(["apt-get", "install", "-y", "-q"] + APT_DPKG + p["missing"], APT_ENV)
        still = [name for name in p["missing"] if name not in host.installed()]
        if still:
            raise ss.StateError("packages: %s not installed after apt-get install (a virtual package? name the "
                                "package that provides it)" % ", ".join(still))
    for name in p["kmods"]:
        host.run(["modprobe", "--", name])
    for path, mode, exists in p["dirs"]:
        if exists:
            os.chmod(path, mode)
        else:
            make_dirs(path, mode)
    for t in p["texts"]:
        if t["before"] != t["after"]:
            host.write(t["path"], t["after"], t["mode"])
        else:
            os.chmod(os.path.realpath(t["path"]), t["mode"])
    for _module, _name, _before, value, path in ss.plan_runtime_parameters(spec["module_parameters"], p["mem"], SYS_MODULE):
        with open(path, "w", encoding="ascii") as f:
            f.write(value + "\n")
    if p["reload"]:
        host.run(["systemctl", "daemon-reload"])
    if not spec["units"]:
        return {}
    names = [u["name"] for u in spec["units"]]
    units = ss.plan_units(spec["units"], host.units(names), [t["path"] for t in p["texts"]])
    for name, actions in units.items():
        for action in actions:
            host.run(["systemctl", action, "--", name])
    return units


def diff_of(p):
    out = []
    for t in p["texts"]:
        before, after = t["before"] or "", t["after"]
        if t["secret"]:
            before, after = "(secret: text not shown)\n", "(secret: text not shown)\n"
            if t["before"] != t["after"]:
                after = "(secret: new text not shown)\n"
        mode_before = "" if t["mode_before"] is None else ", mode %04o" % t["mode_before"]
        out.append(dict(before_header="%s (%s%s)" % (t["path"], t["kind"], mode_before), before=before,
                        after_header="%s (%s, mode %04o)" % (t["path"], t["kind"], t["mode"]), after=after))
    lines_before, lines_after = [], []
    for name in p["missing"]:
        lines_before.append("package %s: not installed\n" % name)
        lines_after.append("package %s: installed\n" % name)
    for name in p["kmods"]:
        lines_before.append("kernel module %s: not loaded\n" % name)
        lines_after.append("kernel module %s: loaded\n" % name)
    for path, mode, exists in p["dirs"]:
        lines_before.append("directory %s: %s\n" % (path, "present" if exists else "absent"))
        lines_after.append("directory %s: mode %04o\n" % (path, mode))
    for module, name, before, after, _path in p["params"]:
        lines_before.append("%s.%s = %s\n" % (module, name, "(module not loaded)" if before is None else before))
        lines_after.append("%s.%s = %s\n" % (module, name, after))
    for name, actions in p["units"].items():
        lines_before.append("unit %s\n" % name)
        lines_after.append("unit %s: %s\n" % (name, ", ".join(actions)))
    if lines_before:
        out.append(dict(before_header="host state", after_header="host state", before="".join(lines_before),
                        after="".join(lines_after)))
    return out


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    host = Host(module)
    try:
        spec = ss.validate(module.params)
        p = plan(spec, host)
    except (ss.StateError, OSError) as exc:
        module.fail_json(msg="%s%s" % (exc, "" if "othing was changed" in str(exc) else ". Nothing was changed."))
    result = dict(packages=p["missing"], directories=[d[0] for d in p["dirs"]], files=[t["path"] for t in p["texts"]],
                  kernel_modules=p["kmods"], daemon_reload=p["reload"], units=p["units"],
                  module_parameters={"%s.%s" % (m, n): [b, a] for m, n, b, a, _path in p["params"]})
    if p["mem"] is not None:
        result["memory_bytes"] = p["mem"]
    result["changed"] = bool(p["missing"] or p["kmods"] or p["dirs"] or p["texts"] or p["params"] or p["units"])
    if module._diff:
        result["diff"] = diff_of(p)
    if not module.check_mode and result["changed"]:
        try:
            result["units"] = apply(spec, p, host)
        except (ss.StateError, OSError) as exc:
            module.fail_json(msg="%s (the changes before this step were made)" % exc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
