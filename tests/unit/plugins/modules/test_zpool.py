"""zpool module: signature probing output and import directories."""
from ansible_collections.smc.backend.plugins.modules import zpool


def test_parse_blkid():
    assert zpool.parse_blkid("DEVNAME=/dev/vdd1\nLABEL=old\nUUID=1\nTYPE=zfs_member\n") == "zfs_member (pool old)"
    assert zpool.parse_blkid("DEVNAME=/dev/vdd\nTYPE=ext4\nLABEL=data\n") == "ext4 (label data)"
    assert zpool.parse_blkid("DEVNAME=/dev/vdd\nPTUUID=x\nPTTYPE=gpt\n") is None
    assert zpool.parse_blkid("") is None


def test_import_dirs_keep_order_and_dedupe():
    assert zpool.import_dirs(["/dev/disk/by-id/a", "/var/tmp/x", "/dev/disk/by-id/b"]) == ["/dev/disk/by-id", "/var/tmp"]


def test_argument_spec_matches_documentation():
    import yaml
    doc = yaml.safe_load(zpool.DOCUMENTATION)["options"]
    assert set(doc) == set(zpool.ARGUMENT_SPEC)
    for key, spec in zpool.ARGUMENT_SPEC.items():
        assert doc[key].get("default") == spec.get("default"), key
