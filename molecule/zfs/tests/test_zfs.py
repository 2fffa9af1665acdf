"""ZFS on the lab. Every host: pool tank, demo projects, agent installed and scheduled. dc1-s1 only (heavy):
the layout matrix, 10,000 datasets, a refused foreign disk, retention across DST under faketime, holds."""
import json

import pytest
from testinfra.modules.ansible import AnsibleException

HEAVY = "dc1-s1"
BYID = "/dev/disk/by-id/virtio-smc-d"
AGENT = "/usr/local/sbin/smc-zfs-agent"


def _me(host):
    return host.check_output("hostname")


@pytest.fixture
def heavy(host):
    if _me(host) != HEAVY:
        pytest.skip("heavy tests run on %s only" % HEAVY)
    return host


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


def test_every_layout_pool_exists_and_matches(heavy):
    kinds = {"smct_stripe": None, "smct_mirror": "mirror-0", "smct_raidz1": "raidz1-0",
             "smct_raidz2": "raidz2-0", "smct_raidz3": "raidz3-0", "smct_aux": "mirror-0"}
    for pool, kind in kinds.items():
        status = heavy.check_output("zpool status -P %s" % pool)
        assert kind is None or kind in status
    aux = heavy.check_output("zpool status -P smct_aux")
    for section in ("logs", "cache", "spares"):
        assert "\t%s" % section in aux


def test_ten_thousand_datasets(heavy):
    count = heavy.check_output("zfs list -H -o name -d 1 smct_bulk/projects | wc -l")
    assert int(count) == 10001
    assert heavy.check_output("zfs get -H -o value quota smct_bulk/projects/p9999") == "1G"


def _zpool(host, **args):
    try:
        return host.ansible("smc.backend.zpool", json.dumps(args), check=False, become=True)
    except AnsibleException as exc:
        return exc.result


def test_foreign_label_is_refused_unless_forced(heavy):
    disk = BYID + "3"
    heavy.check_output("zpool create -f smcforeign %s && zpool export smcforeign" % disk)
    try:
        res = _zpool(heavy, name="smct_d3", vdevs=[{"type": "stripe", "disks": [disk]}])
        assert res.get("failed") and "zfs_member (pool smcforeign)" in res["msg"] and disk in res["msg"]
        assert heavy.run("zpool list smct_d3").rc != 0
        assert "smcforeign" in heavy.check_output("zpool import")
        res = _zpool(heavy, name="smct_d3", vdevs=[{"type": "stripe", "disks": [disk]}], force_disks=[disk])
        assert res["changed"] and not res.get("failed")
        res = _zpool(heavy, name="smct_d3", vdevs=[{"type": "stripe", "disks": [disk]}], force_disks=[disk])
        assert not res["changed"]
        res = _zpool(heavy, name="smct_d3", vdevs=[{"type": "mirror", "disks": [disk, BYID + "4"]}])
        assert res.get("failed") and "never removes" in res["msg"]
    finally:
        heavy.run("zpool destroy smct_d3; zpool labelclear -f %s-part1; wipefs -a -q %s" % (disk, disk))


def test_exported_pool_is_imported_not_recreated(heavy):
    heavy.check_output("zpool export smct_mirror")
    spec = dict(name="smct_mirror", vdevs=[{"type": "mirror", "disks": [
        "/var/tmp/smc-zfs-test/smct_mirror-f1.img", "/var/tmp/smc-zfs-test/smct_mirror-f2.img"]}],
        filesystem_properties={"compression": "lz4", "atime": "off", "xattr": "sa", "acltype": "posix",
                               "mountpoint": "none"})
    res = _zpool(heavy, **spec)
    assert res["actions"][0] == "import" and heavy.run("zpool list smct_mirror").rc == 0


AGENT_ENV = "SMC_AGENT_LIB=/usr/local/lib/smc-zfs-agent TZ=Europe/Berlin"
CFG = '{"roots": ["smct_raidz1/p"], "classes": {"default": {"frequent": 4, "hourly": 3, "daily": 2}}}'


def test_retention_across_dst_with_faketime_and_holds(heavy):
    """Snapshots every 15 minutes around the end of CEST (2024-10-27 01:00 UTC, local 03:00 -> 02:00),
    taken by the agent under faketime; then a prune with TZ=Europe/Berlin keeps exactly frequent 4 +
    hourly 3 + daily 2 (+ the held one)."""
    heavy.check_output("zfs create -o mountpoint=/var/tmp/smc-zfs-test/p smct_raidz1/p && "
                       "zfs create smct_raidz1/p/dst && echo '%s' > /var/tmp/smc-zfs-test/agent.json" % CFG)
    times = ["2024-10-26 23:30:00", "2024-10-27 00:00:00", "2024-10-27 00:30:00", "2024-10-27 00:45:00",
             "2024-10-27 01:00:00", "2024-10-27 01:15:00", "2024-10-27 01:30:00", "2024-10-27 01:45:00",
             "2024-10-27 02:00:00"]
    for t in times:
        heavy.check_output("date >> /var/tmp/smc-zfs-test/p/dst/f && sync && "
                           "%s faketime -f '@%s' %s --config /var/tmp/smc-zfs-test/agent.json snapshot"
                           % (AGENT_ENV.replace("TZ=Europe/Berlin", "TZ=UTC"), t, AGENT))
    names = heavy.check_output("zfs list -H -t snapshot -o name -s name smct_raidz1/p/dst").split()
    stamps = [n.split("@")[1] for n in names]
    assert stamps == ["smc_%sZ" % t.replace(" ", "T") for t in times]
    heavy.check_output("zfs hold smc-repl-test smct_raidz1/p/dst@smc_2024-10-26T23:30:00Z")
    heavy.check_output("%s %s --config /var/tmp/smc-zfs-test/agent.json --now 2024-10-27T02:05:00Z prune"
                       % (AGENT_ENV, AGENT))
    kept = [n.split("@")[1] for n in heavy.check_output(
        "zfs list -H -t snapshot -o name -s name smct_raidz1/p/dst").split()]
    assert kept == ["smc_2024-10-26T23:30:00Z",  # held (also daily 10-26)
                    "smc_2024-10-27T00:00:00Z",  # daily 10-27, hourly 00
                    "smc_2024-10-27T01:00:00Z",  # hourly 01
                    "smc_2024-10-27T01:15:00Z", "smc_2024-10-27T01:30:00Z", "smc_2024-10-27T01:45:00Z",  # frequent
                    "smc_2024-10-27T02:00:00Z"]  # frequent, hourly 02, newest
    # The agent ran with TZ=Europe/Berlin (local 02:xx happens twice that night): nothing moves.
    out = heavy.check_output("%s %s --config /var/tmp/smc-zfs-test/agent.json --now 2024-10-27T02:05:00Z "
                             "prune --dry-run" % (AGENT_ENV, AGENT))
    assert json.loads(out.splitlines()[-1])["would_destroy"] == 0
