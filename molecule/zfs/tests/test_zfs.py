"""ZFS on the lab, light checks on every host: pool tank, ARC bound, timers, demo projects, the agent.
The heavy tests (layouts, bulk datasets, foreign label, import, DST retention, holds) are in
test_zfs_heavy.py and run on dc1-s1 only."""
import json

BYID = "/dev/disk/by-id/virtio-smc-d"
AGENT = "/usr/local/sbin/smc-zfs-agent"


def _me(host):
    return host.check_output("hostname")


def test_tank_is_a_mirror_of_d1_d2_with_sane_defaults(host):
    status = host.check_output("zpool status -P tank")
    assert "mirror-0" in status and BYID + "1" in status and BYID + "2" in status
    props = dict(line.split("\t")[1:3] for line in host.check_output(
        "zfs get -H -o name,property,value compression,atime,xattr,acltype tank").splitlines())
    assert props == {"compression": "lz4", "atime": "off", "xattr": "on", "acltype": "posix"} or props["xattr"] == "sa"


def test_arc_is_bounded(host):
    assert host.file("/sys/module/zfs/parameters/zfs_arc_max").content_string.strip() == "268435456"
    assert "zfs_arc_max=268435456" in host.file("/etc/modprobe.d/zfs.conf").content_string


def test_scrub_timer_enabled(host):
    assert host.service("zfs-scrub-monthly@tank.timer").is_enabled


def test_primary_writable_replicas_readonly(host):
    me = _me(host)
    rows = [line.split("\t") for line in host.check_output(
        "zfs list -H -o name,readonly,smc:role,smc:class -d 1 tank/projects").splitlines()[1:]]
    got = {r[0].rsplit("/", 1)[1]: tuple(r[1:]) for r in rows}
    primary = {"dc1-s1": "demo-a", "dc2-s1": "demo-b", "dc3-s1": "demo-c"}.get(me)
    for pid, cls in (("demo-a", "default"), ("demo-b", "member"), ("demo-c", "trial")):
        want = ("off", "primary") if pid == primary else ("on", "replica")
        assert got[pid] == want + (cls,)


def test_snapdir_visible_for_owners(host):
    assert host.file("/projects/demo-a/.zfs/snapshot").is_directory
    assert ".zfs" in host.check_output("ls -a /projects/demo-a")


def test_agent_installed_and_timer_active(host):
    assert host.file(AGENT).mode == 0o755
    cfg = json.loads(host.file("/etc/smc/agent.json").content_string)
    assert cfg["roots"] == ["tank/projects"] and cfg["prefix"] == "smc"
    assert host.service("smc-zfs-agent.timer").is_enabled
