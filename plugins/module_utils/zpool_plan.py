# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What zpool decides before and around a write (pure, plain data): the options' first problem, the
signatures a candidate device carries (through a ``run`` callable, failing closed), which devices are refused,
the ``zpool create`` command line, whether a failed create may run again, and where to look for an exported
pool. The module keeps argument handling and I/O.
"""

import os
import re

from ansible_collections.smc.backend.plugins.module_utils import zpool_layout as zl
from ansible_collections.smc.backend.plugins.module_utils.zfs_names import pool_name_error, properties_error

__all__ = ["UDEV_SETTLE_SECONDS", "CREATE_ATTEMPTS", "parse_blkid", "parse_partition_table", "probe_signatures",
           "check_options", "import_dirs", "format_props", "refused", "create_command", "may_retry_create",
           "foreign_after_failed_create"]

# zpool create partitions a whole disk, then waits up to 30 s for udev to make the partition's node; under
# load (TCG guests booting, a busy udev queue) that wait can run out although the label was written.
UDEV_LATE = re.compile(r"failed to detect device partitions|the kernel failed to rescan the partition table|"
                       r"cannot resolve path '[^']*-part1'")
FRESH_LABEL = re.compile(r"partition table gpt with \d+ partition\(s\)[ /A-Za-z0-9_.:-]*\Z")
UDEV_SETTLE_SECONDS = 120
CREATE_ATTEMPTS = 3


def parse_blkid(out):
    """``blkid -p -o export`` -> a description of the signature, or None when there is none."""
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    kind = values.get("TYPE")
    if not kind:
        return None
    label = values.get("LABEL")
    if kind == "zfs_member" and label:
        return "zfs_member (pool %s)" % label
    return "%s (label %s)" % (kind, label) if label else kind


def parse_partition_table(out):
    """``blkid -p -o export`` of a whole disk -> its partition table type (``gpt``, ``dos``), or None."""
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return values.get("PTTYPE") or None


def probe_signatures(run, dev, is_file):
    """Signatures on ``dev`` and on every partition of it, as sentences; fails closed.

    ``run(args) -> (rc, out, err)``. A whole disk that ZFS (or anything else) partitioned shows only
    ``PTTYPE=gpt`` itself: the other pool's label is on partition 1, so every partition ``lsblk`` lists is
    probed too, and a partition table that has partitions is a signature of its own. ``blkid -p`` exits 2
    when it finds nothing; any other failure (ambivalent signatures, unreadable device, failing ``lsblk``)
    is reported as a signature, so the device is refused rather than overwritten."""
    sigs, parts, table = [], [], None
    if not is_file:
        rc, out, err = run(["lsblk", "-n", "-l", "-p", "-o", "PATH", dev])
        if rc != 0:
            return ["unknown contents (lsblk failed, rc=%s: %s)" % (rc, (err or out).strip())]
        parts = [p for p in out.split() if p not in (dev, os.path.realpath(dev))]
    for target in [dev] + parts:
        rc, out, err = run(["blkid", "-p", "-o", "export", target])
        where = "" if target == dev else " on %s" % target
        if rc == 2:
            continue
        if rc != 0:
            sigs.append("unknown or ambivalent signature%s (blkid -p rc=%s: %s)" % (where, rc, (err or out).strip()))
            continue
        sig = parse_blkid(out)
        if sig:
            sigs.append(sig + where)
        if target == dev:
            table = parse_partition_table(out)
    if parts:
        sigs.append("partition table %s with %d partition(s) %s" % (table or "unknown", len(parts), " ".join(parts)))
    return sigs


def check_options(p):
    """The first problem with the pool name, properties or paths (before any command runs), or None."""
    err = pool_name_error(p["name"], "name")
    for key in ("properties", "filesystem_properties"):
        err = err or properties_error(p[key], key)
    if p["ashift"] is not None and not (p["ashift"] == 0 or 9 <= p["ashift"] <= 16):
        err = err or "ashift: %r must be 0 (let ZFS choose) or 9 to 16" % p["ashift"]
    for key in ("force_disks", "import_dirs"):
        bad = [d for d in p[key] or () if not (d.startswith("/") and not re.search(r"[\x00-\x1f\x7f]", d))]
        err = err or (bad and "%s: %r is not an absolute path (without newlines or control characters)"
                      % (key, bad[0]))
    return err or None


def import_dirs(devices):
    """Directories to search for an exported pool: those of the desired devices, in order."""
    dirs = []
    for dev in devices:
        d = os.path.dirname(dev)
        if d not in dirs:
            dirs.append(d)
    return dirs


def format_props(values):
    return "".join("%s=%s\n" % (k, values[k]) for k in sorted(values))


def refused(found, forced, realpath=None):
    """{device: signatures} of the devices with signatures that ``force_disks`` (``forced``: real paths) does
    not name: a create must not touch them. ``realpath`` resolves a device path (default os.path.realpath)."""
    realpath = realpath or os.path.realpath
    return {d: s for d, s in found.items() if realpath(d) not in forced}


def create_command(p, layout, force):
    """The argv of ``zpool create`` for the options ``p`` and the parsed layout; ``-f`` when ``force``."""
    args = ["zpool", "create"] + (["-f"] if force else [])
    if p["ashift"]:
        args += ["-o", "ashift=%d" % p["ashift"]]
    for k, v in sorted(p["properties"].items()):
        args += ["-o", "%s=%s" % (k, v)]
    for k, v in sorted(p["filesystem_properties"].items()):
        args += ["-O", "%s=%s" % (k, v)]
    return args + [p["name"]] + zl.create_args(layout)


def may_retry_create(error_text, attempt):
    """Whether a failed ``zpool create`` may run again: only when udev was late with the partition nodes of
    the label it wrote, and attempts are left."""
    return attempt < CREATE_ATTEMPTS and bool(UDEV_LATE.search(error_text))


def foreign_after_failed_create(now, forced, realpath=None):
    """{device: signatures} that a failed create cannot have written: anything but a fresh GPT label whose
    partitions carry no signature, on a device not forced. Non-empty: do not retry."""
    realpath = realpath or os.path.realpath
    foreign = {d: [s for s in sigs if not FRESH_LABEL.match(s)] for d, sigs in now.items() if realpath(d) not in forced}
    return {d: s for d, s in foreign.items() if s}
