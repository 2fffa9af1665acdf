#!/usr/bin/python
# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: zpool
short_description: Create or import a ZFS pool safely and keep its properties
description:
  - Makes sure the pool O(name) is imported with the layout given in O(vdevs), O(log), O(cache) and
    O(spares), and that its pool properties and root-dataset properties have the given values.
  - An exported pool with exactly that name is imported (C(zpool import)) before creating anything.
  - A new pool is created only on devices that carry no signature (no other pool's label, no filesystem,
    no RAID or LVM member, no partition table with partitions) on the device or any of its partitions
    (a whole disk that another pool used shows only C(PTTYPE=gpt); that pool's label is on partition 1).
    A device with a signature, or one that C(blkid) cannot probe cleanly, is refused unless it is named in
    O(force_disks).
  - A device that belongs to an imported pool is always refused, O(force_disks) or not; so is a whole disk
    any of whose partitions (not only the first) belongs to one, and a partition of a disk an imported pool
    uses whole.
  - The module never destroys a pool, never removes, detaches or replaces a vdev. When the imported pool's
    layout differs from the desired one (devices compared by resolved path, so C(/dev/disk/by-id/...) and
    C(/dev/vdb) are the same disk, and a whole disk matches the C(-part1) partition ZFS made on it), it
    fails listing the differences (or warns, O(layout_mismatch=warn)) and changes nothing.
  - Pool names are matched exactly, never as substrings.
  - Before creating it waits for udev to settle. C(zpool create) labels a whole disk and then waits 30 s for
    udev to make the new partition's node; on a loaded host that wait can run out after the label was
    written. The module then waits for udev again and retries with C(-f) (up to 3 attempts, each a warning),
    but only when every device it may not force carries nothing but that fresh partition table with empty
    partitions; otherwise it fails naming what the devices carry.
author: smc.backend developers (@smc-backend)
attributes:
  check_mode:
    support: full
    description: Reads the pool, probes the devices and reports what would be created, imported or set.
  diff_mode:
    support: full
    description: Returns the pool state, layout and managed properties before and after.
options:
  name:
    description:
      - Pool name, checked before any command runs (ZFS rules) - it starts with a letter and has only letters,
        digits, C(_), C(.), C(:) and C(-); it is not and does not begin with C(mirror), C(raidz), C(draid) or
        C(spare), is not C(log), C(cache), C(special) or C(dedup), and does not begin with C(c) and a digit.
    type: str
    required: true
  vdevs:
    description:
      - Data vdevs. Each is a O(vdevs[].type) and its O(vdevs[].disks); type V(stripe) makes every disk its
        own top-level vdev.
    type: list
    elements: dict
    required: true
    suboptions:
      type:
        description: Vdev type.
        type: str
        default: stripe
        choices: [stripe, mirror, raidz1, raidz2, raidz3]
      disks:
        description: Absolute device (or file) paths; prefer C(/dev/disk/by-id/...).
        type: list
        elements: str
        required: true
  log:
    description: Separate intent-log (SLOG) vdevs, same shape as O(vdevs) (V(stripe) or V(mirror)).
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description: Vdev type.
        type: str
        default: stripe
        choices: [stripe, mirror]
      disks:
        description: Absolute device (or file) paths.
        type: list
        elements: str
        required: true
  cache:
    description: L2ARC cache devices.
    type: list
    elements: str
    default: []
  spares:
    description: Hot spare devices.
    type: list
    elements: str
    default: []
  ashift:
    description: Sector size exponent used when the pool is created (V(12) = 4 KiB). V(0) lets ZFS pick.
    type: int
    default: 12
  properties:
    description: Pool properties (C(zpool set)), for example C(autotrim=on). Set at creation and kept.
    type: dict
    default: {}
  filesystem_properties:
    description: Properties of the pool's root dataset (C(zfs set)); inherited by every dataset below.
    type: dict
    default: {compression: lz4, atime: 'off', xattr: sa, acltype: posix}
  force_disks:
    description:
      - Devices that may be overwritten although they carry a signature (another pool's label, a
        filesystem). Each must be named explicitly; compared by resolved path. Use with care.
    type: list
    elements: str
    default: []
  import_dirs:
    description:
      - Directories searched for an exported pool. Default is the directories of the desired devices
        (for example C(/dev/disk/by-id)), so the imported pool keeps those paths.
    type: list
    elements: str
  layout_mismatch:
    description: What to do when the imported pool's layout differs from the desired one.
    type: str
    default: fail
    choices: [fail, warn]
notes:
  - Needs C(zpool), C(zfs) and C(blkid) (util-linux) on the host; C(lsblk) to probe partitions of disks.
"""

EXAMPLES = r"""
- name: Mirror the first two data disks into pool tank
  smc.backend.zpool:
    name: tank
    vdevs:
      - type: mirror
        disks: [/dev/disk/by-id/virtio-smc-d1, /dev/disk/by-id/virtio-smc-d2]

- name: RAID-Z2 with a mirrored log, a cache disk and a spare
  smc.backend.zpool:
    name: bulk
    vdevs:
      - type: raidz2
        disks: [/dev/disk/by-id/ata-a, /dev/disk/by-id/ata-b, /dev/disk/by-id/ata-c, /dev/disk/by-id/ata-d]
    log:
      - type: mirror
        disks: [/dev/disk/by-id/nvme-log0, /dev/disk/by-id/nvme-log1]
    cache: [/dev/disk/by-id/nvme-cache0]
    spares: [/dev/disk/by-id/ata-e]
    properties:
      autotrim: "on"

- name: Re-use a disk that still carries an old pool's label (named explicitly)
  smc.backend.zpool:
    name: tank
    vdevs:
      - disks: [/dev/disk/by-id/virtio-smc-d3]
    force_disks: [/dev/disk/by-id/virtio-smc-d3]
"""

RETURN = r"""
actions:
  description: What was done (or would be in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["create", "set filesystem_properties"]
layout:
  description: The pool's layout as C(zpool status -P) reports it, one top-level vdev per line.
  returned: when the pool is imported
  type: str
  sample: "mirror /dev/disk/by-id/virtio-smc-d1-part1 /dev/disk/by-id/virtio-smc-d2-part1\n"
layout_differences:
  description: Differences between the desired and the actual layout (nothing is ever removed).
  returned: always
  type: list
  elements: str
signatures:
  description: Signatures found on the desired devices of a pool to be created, by device.
  returned: when the pool is created or refused
  type: dict
  sample: {"/dev/disk/by-id/virtio-smc-d3": ["zfs_member (pool old) on /dev/vdd1",
                                             "partition table gpt with 2 partition(s) /dev/vdd1 /dev/vdd9"]}
create_attempts:
  description: How many times C(zpool create) ran (more than 1 when udev was late with the partition nodes of
    the label it wrote, see the description); 0 in check mode.
  returned: when the pool was created (or would have been)
  type: int
  sample: 1
in_use:
  description: Desired devices that belong to an imported pool, by device (the pool is then never created).
  returned: when the pool is refused for that reason
  type: dict
  sample: {"/dev/disk/by-id/virtio-smc-d1": "tank"}
commands:
  description: The commands that changed something (or would have).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smc.backend.plugins.module_utils.zfs_cli import ZfsCli, ZfsError, same_value
from ansible_collections.smc.backend.plugins.module_utils import zpool_layout as zl
from ansible_collections.smc.backend.plugins.module_utils.zpool_plan import (
    CREATE_ATTEMPTS, UDEV_SETTLE_SECONDS, check_options, create_command, foreign_after_failed_create, format_props,
    import_dirs, may_retry_create, probe_signatures, refused)

VDEV_SPEC = dict(type=dict(type="str", default="stripe", choices=list(zl.KINDS)),
                 disks=dict(type="list", elements="str", required=True))
LOG_SPEC = dict(type=dict(type="str", default="stripe", choices=["stripe", "mirror"]),
                disks=dict(type="list", elements="str", required=True))
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    vdevs=dict(type="list", elements="dict", required=True, options=VDEV_SPEC),
    log=dict(type="list", elements="dict", default=[], options=LOG_SPEC),
    cache=dict(type="list", elements="str", default=[]),
    spares=dict(type="list", elements="str", default=[]),
    ashift=dict(type="int", default=12),
    properties=dict(type="dict", default={}),
    filesystem_properties=dict(type="dict", default={"compression": "lz4", "atime": "off", "xattr": "sa",
                                                     "acltype": "posix"}),
    force_disks=dict(type="list", elements="str", default=[]),
    import_dirs=dict(type="list", elements="str"),
    layout_mismatch=dict(type="str", default="fail", choices=["fail", "warn"]),
)


class PoolManager:
    """Reads and converges one pool through ZfsCli; all decisions before any write."""

    def __init__(self, module, cli):
        self.m, self.cli, self.p = module, cli, module.params
        self.actions, self.commands, self.warnings = [], [], []
        self.attempts = 0

    def write(self, args, action):
        self.actions.append(action)
        self.commands.append(" ".join(args))
        if not self.m.check_mode:
            self.cli.run(args)

    def settle_udev(self):
        """Wait for udev's queue (not in check mode); a failure only means no wait."""
        if not self.m.check_mode:
            self.cli.run(["udevadm", "settle", "--timeout=%d" % UDEV_SETTLE_SECONDS], check=False)

    def signatures(self, devices):
        found = {}
        for dev in devices:
            if not os.path.exists(dev):
                self.m.fail_json(msg="device %s does not exist: fix the path in vdevs/log/cache/spares "
                                     "(for a file vdev, create the file first, e.g. truncate -s 1G %s)" % (dev, dev))
            sigs = probe_signatures(lambda args: self.cli.run(args, check=False), dev, os.path.isfile(dev))
            if sigs:
                found[dev] = sigs
        return found

    def in_use(self, devices):
        """{device: pool} of the desired devices that belong to an imported (active) pool."""
        members = zl.status_members(self.cli.run(["zpool", "status", "-P"])[1])
        return zl.in_use(devices, members, os.path.realpath)

    def create(self, layout):
        used = self.in_use(zl.devices(layout))
        if used:
            self.m.fail_json(
                msg="refusing to create pool %s: %s. Nothing was changed. force_disks cannot override this: "
                    "a device of an imported pool is never reused." % (self.p["name"], "; ".join(
                        "%s is in use by the imported pool %s" % (d, p) for d, p in sorted(used.items()))),
                in_use=used, actions=[], commands=[], layout_differences=[])
        found = self.signatures(zl.devices(layout))
        forced = {os.path.realpath(d) for d in self.p["force_disks"]}
        refused_now = refused(found, forced)
        if refused_now:
            self.m.fail_json(
                msg="refusing to create pool %s: %s. Nothing was changed. If that data may be destroyed, name each "
                    "such device in force_disks." % (self.p["name"], "; ".join(
                        "%s carries %s" % (d, ", ".join(s)) for d, s in sorted(refused_now.items()))),
                signatures=found, actions=[], commands=[], layout_differences=[])
        args = create_command(self.p, layout, force=bool(found))
        self.settle_udev()
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                self.attempts = 0 if self.m.check_mode else attempt
                self.write(args, "create")
                break
            except ZfsError as exc:
                if not may_retry_create(str(exc), attempt):
                    raise
                self.relabel_check(zl.devices(layout), forced, exc)
                self.warnings.append("zpool create failed because udev had not made the partition nodes of the "
                                     "label it wrote within ZFS's 30 s (a host under load); it ran again with -f "
                                     "after udevadm settle, on devices that carry only that new label: %s" % exc)
                if "-f" not in args:
                    args.insert(2, "-f")
        return found

    def relabel_check(self, devices, forced, exc):
        """After a create that labelled the disks but failed waiting for udev: fail unless every device is
        one this run was allowed to write (blank before, or forced) and now carries nothing but a partition
        table whose partitions have no signature (the label the failed create wrote)."""
        self.settle_udev()
        now = self.signatures(devices)
        foreign = foreign_after_failed_create(now, forced)
        if foreign:
            self.m.fail_json(
                msg="zpool create of %s failed (%s) and left devices that carry more than the label it wrote: %s. "
                    "Not retried; inspect them (blkid -p, lsblk) and run again, naming a device in force_disks only "
                    "if its data may be destroyed." % (self.p["name"], exc, "; ".join(
                        "%s carries %s" % (d, ", ".join(s)) for d, s in sorted(foreign.items()))),
                signatures=now, actions=self.actions, commands=self.commands, layout_differences=[])

    def set_props(self, kind, want, get):
        have = get(sorted(want)) if want else {}
        diff = {k: str(v) for k, v in want.items() if not same_value(k, v, have.get(k, "-"))}
        if diff:
            tool = "zpool" if kind == "properties" else "zfs"
            if tool == "zpool":
                for k, v in sorted(diff.items()):
                    self.write(["zpool", "set", "%s=%s" % (k, v), self.p["name"]], "set properties")
            else:
                self.write(["zfs", "set"] + ["%s=%s" % kv for kv in sorted(diff.items())] + [self.p["name"]],
                           "set filesystem_properties")
        return {k: have.get(k, "-") for k in want}, dict({k: have.get(k, "-") for k in want}, **diff)


def run_module():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    name = p["name"]
    err = check_options(p)
    if err:
        module.fail_json(msg="%s. Nothing was changed." % err, actions=[], commands=[])
    try:
        layout = zl.desired_layout(p["vdevs"], p["log"], p["cache"], p["spares"])
    except zl.LayoutError as exc:
        module.fail_json(msg="invalid layout for pool %s: %s. Nothing was changed." % (name, exc))
    cli = ZfsCli(module.run_command)
    mgr = PoolManager(module, cli)
    result = dict(changed=False, actions=mgr.actions, commands=mgr.commands, layout_differences=[])
    before = dict(state="absent")
    try:
        imported = name in cli.pools()
        if not imported:
            candidates = [c for c in cli.importable(p["import_dirs"] or import_dirs(zl.devices(layout)))
                          if c["name"] == name]
            if len(candidates) > 1:
                module.fail_json(msg="several exported pools are named %s (ids %s): import the right one by hand "
                                     "(zpool import <id>) and run again" % (name, ", ".join(c["id"] for c in candidates)))
            if candidates:
                before["state"] = "exported"
                dirs = p["import_dirs"] or import_dirs(zl.devices(layout))
                mgr.write(["zpool", "import"] + [a for d in dirs for a in ("-d", d)] + [name], "import")
                imported = not module.check_mode
            else:
                result["signatures"] = mgr.create(layout)
                result["create_attempts"] = mgr.attempts
        else:
            before["state"] = "present"
        after = dict(state="present")
        if imported:
            current = zl.parse_status(cli.pool_status(name), name)
            diffs = zl.compare(layout, current, os.path.realpath)
            result["layout"] = zl.format_layout(current)
            result["layout_differences"] = diffs
            if before["state"] == "present":
                before["layout"] = result["layout"]
            after["layout"] = result["layout"]
            if diffs:
                text = ("pool %s does not have the desired layout (this module never removes or replaces vdevs): %s"
                        % (name, "; ".join(diffs)))
                if p["layout_mismatch"] == "fail":
                    module.fail_json(msg=text + ". Nothing else was changed. Fix vdevs/log/cache/spares to match the "
                                     "pool, change the pool by hand, or set layout_mismatch=warn.", **result)
                mgr.warnings.append(text)
            for key, get in (("properties", lambda k: cli.pool_get(name, k)),
                             ("filesystem_properties", lambda k: cli.get(name, k))):
                old, new = mgr.set_props(key, p[key], get)
                if before["state"] == "present":
                    before[key] = format_props(old)
                after[key] = format_props(new)
        else:
            after["layout"] = zl.format_layout(layout)
            for key in ("properties", "filesystem_properties"):
                after[key] = format_props(p[key])
    except ZfsError as exc:
        module.fail_json(msg=str(exc), **result)
    result["changed"] = bool(mgr.actions)
    result["diff"] = dict(before=before, after=after)
    for w in mgr.warnings:
        module.warn(w)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
