"""zpool_plan: signature probes (failing closed), option checks, which devices are refused, the create
command, the retry decision after a late udev, and the directories searched for an exported pool."""
import pytest

from ansible_collections.smc.backend.plugins.module_utils import zpool_layout as zl
from ansible_collections.smc.backend.plugins.module_utils import zpool_plan as zp


def test_parse_blkid():
    assert zp.parse_blkid("DEVNAME=/dev/vdd1\nLABEL=old\nUUID=1\nTYPE=zfs_member\n") == "zfs_member (pool old)"
    assert zp.parse_blkid("DEVNAME=/dev/vdd\nTYPE=ext4\nLABEL=data\n") == "ext4 (label data)"
    assert zp.parse_blkid("DEVNAME=/dev/vdd\nPTUUID=x\nPTTYPE=gpt\n") is None
    assert zp.parse_blkid("") is None


def test_import_dirs_keep_order_and_dedupe():
    assert zp.import_dirs(["/dev/disk/by-id/a", "/var/tmp/x", "/dev/disk/by-id/b"]) == ["/dev/disk/by-id", "/var/tmp"]


def test_probe_signatures_on_a_blank_disk_is_empty():
    calls = []

    def run(args):
        calls.append(args)
        return (0, "/dev/vdf\n", "") if args[0] == "lsblk" else (2, "", "")
    assert zp.probe_signatures(run, "/dev/vdf", False) == []
    assert [c[0] for c in calls] == ["lsblk", "blkid"]


def test_probe_signatures_fails_closed_when_lsblk_fails():
    sigs = zp.probe_signatures(lambda args: (32, "", "lsblk: /dev/vdf: not a block device"), "/dev/vdf", False)
    assert sigs and "lsblk failed" in sigs[0]


def test_partitions_are_a_signature_even_when_the_disk_itself_probes_empty():
    def run(args):
        return (0, "/dev/vdg\n/dev/vdg1\n", "") if args[0] == "lsblk" else (2, "", "")
    assert zp.probe_signatures(run, "/dev/vdg", False) == ["partition table unknown with 1 partition(s) /dev/vdg1"]


def options(**kw):
    p = dict(name="tank", properties={}, filesystem_properties={}, ashift=None, force_disks=[], import_dirs=None)
    p.update(kw)
    return p


@pytest.mark.parametrize("kw,field", [
    (dict(name="-f"), "name"), (dict(name="tank\n"), "name"), (dict(name="mirror"), "name"),
    (dict(properties={"ashift\n": "12"}), "properties"), (dict(filesystem_properties={"-o": "x"}), "filesystem_properties"),
    (dict(ashift=8), "ashift"), (dict(ashift=17), "ashift"), (dict(force_disks=["vdb"]), "force_disks"),
    (dict(force_disks=["/dev/vdb\n"]), "force_disks"), (dict(import_dirs=["/dev/\x1b[2J"]), "import_dirs")])
def test_check_options_names_the_field(kw, field):
    err = zp.check_options(options(**kw))
    assert err and err.startswith(field), err


def test_check_options_accepts_the_lab_pool():
    assert zp.check_options(options(ashift=12, force_disks=["/dev/disk/by-id/virtio-smc-d1"])) is None


def test_refused_lists_devices_with_signatures_unless_forced():
    found = {"/dev/a": ["ext4"], "/dev/b": ["zfs_member (pool old)"]}
    real = {"/dev/a": "/dev/vda", "/dev/b": "/dev/vdb"}.get
    assert zp.refused(found, {"/dev/vdb"}, real) == {"/dev/a": ["ext4"]}
    assert zp.refused(found, set(), real) == found


def test_create_command_orders_options_before_the_name_and_layout():
    layout = zl.desired_layout([{"type": "mirror", "disks": ["/dev/a", "/dev/b"]}])
    args = zp.create_command(options(ashift=12, properties={"autotrim": "on"},
                                     filesystem_properties={"compression": "lz4"}), layout, force=True)
    assert args[:3] == ["zpool", "create", "-f"]
    assert args[3:9] == ["-o", "ashift=12", "-o", "autotrim=on", "-O", "compression=lz4"]
    assert args[9] == "tank" and args[10:] == zl.create_args(layout)


def test_a_create_is_retried_only_when_udev_was_late_and_attempts_are_left():
    late = "cannot label 'vde': failed to detect device partitions on '/dev/vde1': 19"
    assert zp.may_retry_create(late, 1) and zp.may_retry_create(late, zp.CREATE_ATTEMPTS - 1)
    assert not zp.may_retry_create(late, zp.CREATE_ATTEMPTS)
    assert not zp.may_retry_create("cannot create 'tank': pool already exists", 1)


def test_after_a_failed_create_only_the_fresh_label_is_expected():
    now = {"/dev/a": ["partition table gpt with 2 partition(s) /dev/a1 /dev/a9"],
           "/dev/b": ["zfs_member (pool old) on /dev/b1", "partition table gpt with 2 partition(s) /dev/b1 /dev/b9"],
           "/dev/c": ["ext4"]}
    assert zp.foreign_after_failed_create(now, {"/dev/c"}, lambda p: p) == {"/dev/b": ["zfs_member (pool old) on /dev/b1"]}
    assert zp.foreign_after_failed_create({"/dev/a": ["partition table gpt with 1 partition(s) /dev/a1\nx"]},
                                          set(), lambda p: p)
