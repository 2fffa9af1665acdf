"""Pool layouts: validation, create arguments, 'zpool status -P' parsing, comparison by resolved path."""
import pytest

from ansible_collections.smc.backend.plugins.module_utils import zpool_layout as zl

BYID = "/dev/disk/by-id/virtio-smc-d"
LINKS = {BYID + "%d" % i: "/dev/vd%s" % c for i, c in zip(range(1, 5), "bcde")}
LINKS.update({BYID + "%d-part1" % i: "/dev/vd%s1" % c for i, c in zip(range(1, 5), "bcde")})
LINKS.update({BYID + "%d-part9" % i: "/dev/vd%s9" % c for i, c in zip(range(1, 5), "bcde")})


def realpath(p):
    return LINKS.get(p, p)


STATUS = """  pool: tank
 state: ONLINE
config:

\tNAME                                    STATE     READ WRITE CKSUM
\ttank                                    ONLINE       0     0     0
\t  mirror-0                              ONLINE       0     0     0
\t    /dev/disk/by-id/virtio-smc-d1-part1  ONLINE       0     0     0
\t    /dev/disk/by-id/virtio-smc-d2-part1  ONLINE       0     0     0
\tlogs\t
\t  /var/tmp/log0                         ONLINE       0     0     0
\tcache
\t  /dev/disk/by-id/virtio-smc-d3-part1    ONLINE       0     0     0
\tspares
\t  /var/tmp/spare0                       AVAIL

errors: No known data errors
"""

RAIDZ_WITH_SPARE_IN_USE = """  pool: t2
 state: DEGRADED
config:

\tNAME                 STATE     READ WRITE CKSUM
\tt2                   DEGRADED     0     0     0
\t  raidz2-0           DEGRADED     0     0     0
\t    /var/tmp/f1      ONLINE       0     0     0
\t    spare-1          DEGRADED     0     0     0
\t      /var/tmp/f2    FAULTED      0     0     0
\t      /var/tmp/s1    ONLINE       0     0     0
\t    /var/tmp/f3      ONLINE       0     0     0
\t  /var/tmp/f4        ONLINE       0     0     0
\tspares
\t  /var/tmp/s1        INUSE     currently in use

errors: No known data errors
"""


def test_desired_layout_expands_stripes_and_validates():
    lay = zl.desired_layout([{"type": "stripe", "disks": ["/a", "/b"]}, {"type": "mirror", "disks": ["/c", "/d"]}],
                            log=[{"type": "mirror", "disks": ["/e", "/f"]}], cache=["/g"], spares=["/h"])
    assert lay.data == (("disk", ("/a",)), ("disk", ("/b",)), ("mirror", ("/c", "/d")))
    assert zl.create_args(lay) == ["/a", "/b", "mirror", "/c", "/d", "log", "mirror", "/e", "/f",
                                   "cache", "/g", "spare", "/h"]


@pytest.mark.parametrize("vdevs, kw, field", [
    ([], {}, "vdevs is empty"),
    ([{"type": "raid5", "disks": ["/a"]}], {}, r"vdevs\[0\].type"),
    ([{"type": "raidz2", "disks": ["/a", "/b"]}], {}, "raidz2 needs at least 3"),
    ([{"type": "mirror", "disks": ["/a"]}], {}, "mirror needs at least 2"),
    ([{"type": "stripe", "disks": ["sdb"]}], {}, "absolute"),
    ([{"type": "stripe", "disks": ["/a"]}], {"log": [{"type": "raidz1", "disks": ["/b", "/c"]}]}, "log vdevs"),
    ([{"type": "stripe", "disks": ["/a"]}], {"cache": ["/a"]}, "appears twice"),
    ([{"type": "stripe", "disks": []}], {}, "empty"),
    (["/a"], {}, "mapping"),
])
def test_bad_layouts_name_the_field(vdevs, kw, field):
    with pytest.raises(zl.LayoutError, match=field):
        zl.desired_layout(vdevs, **kw)


def test_parse_status_sections():
    lay = zl.parse_status(STATUS, "tank")
    assert lay.data == (("mirror", (BYID + "1-part1", BYID + "2-part1")),)
    assert lay.log == (("disk", ("/var/tmp/log0",)),)
    assert lay.cache == (BYID + "3-part1",)
    assert lay.spares == ("/var/tmp/spare0",)


def test_parse_status_takes_the_original_device_of_an_active_spare():
    lay = zl.parse_status(RAIDZ_WITH_SPARE_IN_USE, "t2")
    assert lay.data == (("raidz2", ("/var/tmp/f1", "/var/tmp/f2", "/var/tmp/f3")), ("disk", ("/var/tmp/f4",)))
    assert lay.spares == ("/var/tmp/s1",)


def test_parse_status_without_config_fails():
    with pytest.raises(zl.LayoutError, match="no config"):
        zl.parse_status("cannot open 'x': no such pool\n", "x")


def test_compare_matches_whole_disks_by_resolved_path_in_any_order():
    want = zl.desired_layout([{"type": "mirror", "disks": ["/dev/vdc", BYID + "1"]}], log=[{"disks": ["/var/tmp/log0"]}],
                             cache=["/dev/vdd"], spares=["/var/tmp/spare0"])
    assert zl.compare(want, zl.parse_status(STATUS, "tank"), realpath) == []


def test_compare_reports_missing_and_unexpected_vdevs():
    want = zl.desired_layout([{"type": "mirror", "disks": [BYID + "1", BYID + "4"]}])
    diffs = zl.compare(want, zl.parse_status(STATUS, "tank"), realpath)
    assert "vdevs: mirror %s1 %s4 is not in the pool" % (BYID, BYID) in diffs
    assert any("is in the pool but not in the desired layout" in d and "mirror" in d for d in diffs)
    assert "log: disk /var/tmp/log0 is in the pool but not in the desired layout" in diffs
    assert "cache: %s3-part1 is in the pool but not in the desired layout" % BYID in diffs


def test_other_partition_of_the_same_disk_does_not_match():
    assert "/dev/vdb" in zl.device_keys(BYID + "1-part1", realpath)
    assert "/dev/vdb" not in zl.device_keys(BYID + "1-part9", realpath)
    assert zl.device_keys("/dev/nvme0n1p1", realpath) == {"/dev/nvme0n1p1", "/dev/nvme0n1"}


def test_kind_matters():
    want = zl.desired_layout([{"type": "raidz1", "disks": [BYID + "1", BYID + "2"]}])
    assert zl.compare(want, zl.parse_status(STATUS, "tank"), realpath)[0].startswith("vdevs: raidz1")


def test_format_layout():
    lay = zl.parse_status(STATUS, "tank")
    assert zl.format_layout(lay).splitlines()[0] == "mirror %s1-part1 %s2-part1" % (BYID, BYID)
