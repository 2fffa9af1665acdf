"""zpool: hostile pool names, properties and paths fail naming the field before any command; a disk whose
partition 2 or 3 (not only 1) belongs to an imported pool is refused even with force_disks."""
import contextlib
import io
import json
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import zpool_layout as zl
from ansible_collections.smc.backend.plugins.module_utils.zfs_names import pool_name_error
from ansible_collections.smc.backend.plugins.modules import zpool

TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
HOSTILE_NAMES = st.one_of(
    st.sampled_from(["-f", "-o", "..", ".", "/", "tank/x", "tank\n", "tank\nx", "mirror", "mirror0", "raidz1",
                     "draid", "spare", "log", "cache", "c0d1", "1tank", "_t", "t\u00e9", "t a", "", "a" * 256]),
    TEXT.map(lambda t: "-" + t), TEXT.map(lambda t: "t" + t + "\n"), TEXT.filter(pool_name_error))
DISK = "/dev/disk/by-id/virtio-smc-d3"
REAL = {DISK: "/dev/vdd", DISK + "-part1": "/dev/vdd1", DISK + "-part3": "/dev/vdd3"}
STATUS_P3 = ("  pool: live\n state: ONLINE\nconfig:\n\n\tNAME  STATE  READ WRITE CKSUM\n\tlive  ONLINE 0 0 0\n"
             "\t  /dev/disk/by-id/virtio-smc-d3-part3  ONLINE 0 0 0\n\nerrors: No known data errors\n")


def run(status="no pools available\n", **args):
    calls = []

    def fake(_self, argv, data=None, **kwargs):
        argv = list(argv)
        calls.append(argv)
        if argv == ["zpool", "status", "-P"]:
            return 0, status, ""
        if argv[:2] == ["zpool", "list"]:
            return 0, "live\n", ""
        return (2, "", "") if argv[0] == "blkid" else (0, "", "")
    out = io.StringIO()
    with mock.patch.object(AnsibleModule, "run_command", fake), patch_module_args(args), \
            mock.patch.object(zpool.os.path, "exists", lambda p: True), \
            mock.patch.object(zpool.os.path, "isfile", lambda p: False), \
            mock.patch.object(zpool.os.path, "realpath", lambda p: REAL.get(p, p)), \
            contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        zpool.main()
    return json.loads(out.getvalue()), calls


@settings(max_examples=80, deadline=None)
@given(name=HOSTILE_NAMES)
def test_hostile_pool_name_reaches_no_command(name):
    res, calls = run(name=name, vdevs=[{"type": "stripe", "disks": [DISK]}])
    assert res.get("failed") and calls == [] and "name" in res["msg"], (name, res)
    assert "Nothing was changed" in res["msg"]


@pytest.mark.parametrize("name", ["tank", "smct_d4", "bulk", "smct_raidz1", "a.b:c-d_1", "cache2", "logs"])
def test_lab_pool_names_pass(name):
    assert pool_name_error(name) is None


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["-f", "ashift\n", "a=b", "", "Comp", "x y", ":x"]) | st.just("comment"),
       value=st.sampled_from(["x\nfeature@a=enabled", "a\x7f", "v" * 5000, None, [1]]) | st.just("ok"),
       field=st.sampled_from(["properties", "filesystem_properties"]))
def test_hostile_properties_reach_no_command(key, value, field):
    if key == "comment" and value == "ok":
        return
    res, calls = run(name="tank", vdevs=[{"type": "stripe", "disks": [DISK]}], **{field: {key: value}})
    assert res.get("failed") and calls == [] and field in res["msg"], (key, value, res)


@pytest.mark.parametrize("field, value", [("force_disks", ["rel"]), ("force_disks", ["/dev/x\n-f"]),
                                          ("import_dirs", ["-d"]), ("ashift", 99), ("ashift", -1)])
def test_hostile_paths_and_numbers_reach_no_command(field, value):
    res, calls = run(name="tank", vdevs=[{"type": "stripe", "disks": [DISK]}], **{field: value})
    assert res.get("failed") and calls == [] and field in res["msg"], res


@pytest.mark.parametrize("disks", [["rel"], ["/dev/vdb\n"], ["-f"]])
def test_hostile_devices_reach_no_command(disks):
    res, calls = run(name="tank", vdevs=[{"type": "stripe", "disks": disks}])
    assert res.get("failed") and calls == [] and "vdevs[0].disks" in res["msg"], res


@pytest.mark.parametrize("force", [[], [DISK]])
def test_disk_whose_third_partition_is_in_a_live_pool_is_refused(force):
    res, calls = run(status=STATUS_P3, name="newpool", vdevs=[{"type": "stripe", "disks": [DISK]}], force_disks=force)
    assert res.get("failed") and "in use by the imported pool live" in res["msg"], res
    assert not [c for c in calls if c[:2] == ["zpool", "create"]]


WHOLE_DISKS = ["/dev/vdb", "/dev/sdc", "/dev/nvme0n1", "/dev/xvdf", "/dev/nbd0", "/dev/nbd12",
               "/dev/loop3", "/dev/rbd1", "/dev/zd16", "/dev/md2"]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 128), whole=st.sampled_from(WHOLE_DISKS))
def test_every_partition_links_to_its_disk(n, whole):
    part = "%s%s%d" % (whole, "p" if whole[-1].isdigit() else "", n)
    members = [(part, "live")]
    assert zl.in_use([whole, part], members, lambda p: p) == {whole: "live", part: "live"}
    # A sibling partition of a used one is free; a partition of a disk used whole is not.
    sibling = "%s%s%d" % (whole, "p" if whole[-1].isdigit() else "", n + 1)
    assert zl.in_use([sibling], members, lambda p: p) == {}
    assert zl.in_use([part], [(whole, "w")], lambda p: p) == {part: "w"}
