"""project_limits: user names and stable uids, sizes, validation naming the field, collisions, cgroup v2 check,
slice files for the parent and each project, planning of writes, removals and changed properties."""
import itertools
import json

import pytest

from ansible_collections.smc.backend.plugins.module_utils import project_limits as pl

UUID = "35138062-10a6-5e83-adcd-5f2c13dba365"
GIB = 1 << 30


def spec(**kw):
    kw.setdefault("classes", {"default": {}})
    return pl.validate(kw)


# -------------------------------------------------------------------------------------- names and uids
def test_user_names():
    assert pl.user_name("demo-a") == "pdemo_a"
    assert pl.user_name(UUID) == "p3513806210a65e83adcd5f2c13dba36"  # 32 characters: the last hex digit is cut
    assert len(pl.user_name(UUID)) == 32 and len(pl.user_name("x" * 200)) == 32
    assert pl.user_name("demo-a", "prj_") == "prj_demo_a"


def test_uid_is_stable_and_in_range():
    # Pinned: the same on every host and Python version (blake2b, not hash()); a change would re-own files.
    assert pl.derive_uid("demo-a") == 1644619673
    assert pl.derive_uid(UUID) == 1946785641
    for pid in ("a", "b", UUID, "x" * 200):
        assert 200000 <= pl.derive_uid(pid) <= 1999999999
        assert 300000 <= pl.derive_uid(pid, 300000, 400000) <= 400000


def test_spec_of_two_projects():
    s = spec(primary=["demo-a"], projects=[{"id": UUID, "class": "member", "limits": {"cpu_quota": 50}}],
             classes={"default": {"memory_max": "512M"}, "member": {"cpu_weight": 300, "tasks_max": None}})
    a, u = sorted(s["projects"], key=lambda p: p["id"] != "demo-a")
    assert a["user"] == "pdemo_a" and a["uid"] == a["gid"] == 1644619673 and a["home"] == "/projects/demo-a"
    assert a["unit"] == "smc_projects-pdemo_a.slice" and a["klass"] == "default"
    assert a["properties"] == {"cpu_weight": "100", "io_weight": "100", "tasks_max": "4096", "memory_max": "512M"}
    assert u["properties"] == {"cpu_weight": "300", "io_weight": "100", "cpu_quota": "50%"}  # class unset tasks_max


def test_replicas_get_users_and_entries_override_the_primary_list():
    s = spec(primary=["a", "b"], replica=["d"],
             projects=[{"id": "c", "role": "replica"}, {"id": "b", "uid": 123456, "home": "/srv/b"}, {"id": "d", "class": "default"}])
    assert [(p["id"], p["uid"], p["home"], p["role"]) for p in s["projects"]] == [
        ("a", pl.derive_uid("a"), "/projects/a", "primary"), ("b", 123456, "/srv/b", "primary"),
        ("c", pl.derive_uid("c"), "/projects/c", "replica"), ("d", pl.derive_uid("d"), "/projects/d", "replica")]
    # by default only primaries get slices; with the ids that run here, exactly those
    assert sorted(pl.desired_units(s, 4 * GIB)) == ["smc_projects-pa.slice", "smc_projects-pb.slice", "smc_projects.slice"]
    s_mounted = dict(s, active="mounted")
    assert sorted(pl.desired_units(s_mounted, 4 * GIB, {"/projects/c"})) == ["smc_projects-pc.slice", "smc_projects.slice"]


MOUNTINFO = """22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
90 22 0:50 / /projects/a rw,noatime shared:40 - zfs tank/projects/a rw,xattr,noacl
91 22 0:51 / /projects/c ro,noatime shared:41 - zfs tank/projects/c ro,xattr,noacl
92 22 0:52 / /srv/with\\040space rw shared:42 - zfs tank/x rw
93 22 0:53 / /projects/e rw,noatime shared:43 - zfs tank/projects/e rw,xattr,noacl
"""


def test_rw_mounts_and_the_projects_that_run_here():
    mounts = pl.rw_mounts(MOUNTINFO)
    assert mounts == {"/", "/projects/a", "/srv/with space", "/projects/e"}
    s = spec(primary=["a", "b"], replica=["c", "e"])
    # b is the controller's primary but not mounted writable (failed over); c is a read-only replica; e was
    # promoted since the list was made
    assert {p["id"] for p in s["projects"] if pl.runs_here("mounted", p, mounts)} == {"a", "e"}


def test_a_home_with_a_space_is_refused():
    with pytest.raises(pl.LimitsError, match=r"projects\[0\]\.home"):
        spec(projects=[{"id": "e", "home": "/srv/with space"}])


def test_active_mode_is_checked():
    assert spec(primary=["a"], active="mounted")["active"] == "mounted"
    with pytest.raises(pl.LimitsError, match=r"^active: 'sometimes' is not one of all, mounted"):
        spec(primary=["a"], active="sometimes")


def _config(active="mounted"):
    return pl.load_config(pl.render_config(spec(primary=["a"], replica=["b", "c"], active=active)))


def test_sync_follows_the_writable_mounts():
    cfg = _config()
    assert cfg["active"] == "mounted" and sorted(cfg["projects"]) == ["a", "b", "c"]
    a, b, c = (cfg["projects"][x] for x in "abc")
    assert a["role"] == "primary" and b["role"] == "replica" and a["unit_text"].startswith(pl.MARKER + "\n")
    parent = {"smc_projects.slice": pl.MARKER + "\nparent\n"}
    # b was promoted here (mounted rw), a was demoted (not mounted), an unmanaged file is left alone
    existing = dict(parent, **{a["slice"]: a["unit_text"], "smc_projects-other.slice": "# by hand\n"})
    plan = pl.plan_sync(cfg, {"/projects/b"}, existing, populated={a["slice"]})
    assert plan == {"write": [(b["slice"], b["unit_text"])], "stop": [a["slice"]], "remove": [a["slice"]]}
    # in sync: nothing to do
    now = dict(parent, **{b["slice"]: b["unit_text"]})
    assert pl.plan_sync(cfg, {"/projects/b"}, now) == {"write": [], "stop": [], "remove": []}
    # a changed slice text is rewritten; a file without the marker in a slice's place is never overwritten
    assert pl.plan_sync(cfg, {"/projects/b"}, dict(parent, **{b["slice"]: pl.MARKER + "\nold\n"}))["write"] == [
        (b["slice"], b["unit_text"])]
    assert pl.plan_sync(cfg, {"/projects/b"}, {b["slice"]: "# by hand\n"})["write"] == []


def test_sync_in_mode_all_keeps_the_controllers_roles():
    cfg = _config("all")
    plan = pl.plan_sync(cfg, {"/projects/b", "/projects/c"}, {})
    assert [n for n, _t in plan["write"]] == [cfg["projects"]["a"]["slice"]]


# ------------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("value, text, number", [
    (0, "0", 0), (1048576, "1048576", 1048576), ("512M", "512M", 512 << 20), ("2g", "2G", 2 * GIB),
    ("1T", "1T", 1 << 40), ("4k", "4K", 4096), ("infinity", "infinity", None), ("50%", "50%", None),
    ("12.5%", "12.5%", None), ("100%", "100%", None),
])
def test_sizes(value, text, number):
    assert pl.parse_size("f", value) == (text, number)


@pytest.mark.parametrize("value, words", [
    ("-1G", "negative"), ("1.5G", "not a size"), ("512MB", "not a size"), ("0%", "above 0%"), ("101%", "at most 100%"),
    ("50 %", "not a size"), ("", "not a size"), (None, "not a size"), (True, "not a size"), ([1], "not a size"),
    ("1G\n", "not a size"), ("1P", "not a size"), ("1" * 20, "not a size"),
])
def test_bad_sizes_name_the_field(value, words):
    with pytest.raises(pl.LimitsError, match=r"^classes\.x\.memory_max: .*" + words):
        pl.parse_size("classes.x.memory_max", value)


def test_memory_minimum():
    with pytest.raises(pl.LimitsError, match="least usable value 1M"):
        spec(primary=["a"], classes={"default": {"memory_max": "4K"}})


# -------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kw, words", [
    (dict(primary=["Demo"]), r"primary\[0\]: 'Demo' cannot be a user name"),
    (dict(primary=["a/b"]), r"primary\[0\]: 'a/b' has a '/'"),
    (dict(primary=[".."]), r"primary\[0\]: '\.\.' has a '/', '\.\.'"),
    (dict(primary=["a\n"]), r"primary\[0\]: 'a\\n' has"),
    (dict(primary=["-rf"]), r"leading '-'"),
    (dict(primary=[""]), r"primary\[0\]: '' is not a project id"),
    (dict(primary=["a", "a"]), r"primary\[1\]: 'a' is listed twice \(also primary\[0\]\)"),
    (dict(primary=["a"], projects=[{"id": "a", "role": "replica"}]), r"projects\[0\]: 'a' has role replica"),
    (dict(projects=[{"id": "a"}, {"id": "a"}]), r"projects\[1\]: 'a' is listed twice"),
    (dict(projects=[{"id": "a", "quota": "1G"}]), r"projects\[0\]: unknown key\(s\) quota"),
    (dict(projects=[{"id": "a", "class": "gold"}]), r"projects\[0\]\.class: 'gold' is not a known class; give one of default"),
    (dict(projects=[{"id": "a", "limits": {"cpu_weight": 0}}]), r"projects\[0\]\.limits\.cpu_weight: 0 is not a weight"),
    (dict(projects=[{"id": "a", "limits": {"cpu_wieght": 5}}]), r"projects\[0\]\.limits: unknown limit 'cpu_wieght'"),
    (dict(projects=[{"id": "a", "limits": {"cpu_quota": "-5%"}}]), r"cpu_quota: '-5%' is not a CPU quota"),
    (dict(projects=[{"id": "a", "limits": {"tasks_max": -1}}]), r"tasks_max: -1 is not a task limit"),
    (dict(projects=[{"id": "a", "limits": {"tasks_max": "lots"}}]), r"tasks_max: 'lots' is not a task limit"),
    (dict(projects=[{"id": "a", "limits": {"memory_swap_max": "10%"}}]), r"memory_swap_max: '10%' is not a size"),
    (dict(projects=[{"id": "a", "limits": {"io_read_bandwidth_max": "10M"}}]), r"projects\[0\]: an IO bandwidth limit needs"),
    (dict(projects=[{"id": "a", "limits": {"memory_high": "2G", "memory_max": "1G"}}]), "memory_high 2G is above memory_max 1G"),
    (dict(projects=[{"id": "a", "uid": 0}]), r"projects\[0\]\.uid: 0 is not a uid"),
    (dict(projects=[{"id": "a", "uid": 65534}]), r"projects\[0\]\.uid: 65534"),
    (dict(projects=[{"id": "a", "home": "/projects/../etc"}]), r"projects\[0\]\.home"),
    (dict(primary=["a"], classes={"default": {"memory_max": "1Q"}}), r"classes\.default\.memory_max: '1Q'"),
    (dict(primary=["a"], classes={}), r"classes: \{\} is not a mapping"),
    (dict(primary=["a"], classes={"x": {}}), r"default_class: 'default' is not a class"),
    (dict(primary=["a"], classes={"a b": {}}), r"classes: 'a b' is not a class name"),
    (dict(user_prefix="1p"), r"user_prefix: '1p'"),
    (dict(user_prefix="p-"), r"user_prefix: 'p-'"),
    (dict(uid_min=200000, uid_max=200100), "fewer than 100000 uids"),
    (dict(uid_min=60000, uid_max=700000), "overlaps systemd's dynamic users"),
    (dict(uid_min="x"), r"uid_min: 'x' is not a whole number"),
    (dict(parent="smc-projects"), r"parent: 'smc-projects' is not a top-level slice name"),
    (dict(parent="x.slice"), r"parent: 'x\.slice'"),
    (dict(home_base="projects"), r"home_base: 'projects'"),
    (dict(io_devices=["/dev/../etc/passwd"]), r"io_devices\[0\]"),
    (dict(io_devices=["/etc/passwd"]), r"io_devices\[0\]: '/etc/passwd' is not a device path"),
    (dict(reserve={"memory": "-1G"}), r"reserve\.memory: '-1G' is negative"),
    (dict(reserve={"cpu": 5}), r"reserve\.cpu: unknown key"),
    (dict(reserve={"cpu_weight": 20000}), r"reserve\.cpu_weight: 20000 is not a weight"),
])
def test_bad_input_names_the_field_and_the_fix(kw, words):
    with pytest.raises(pl.LimitsError, match=words):
        spec(**kw)


def test_every_problem_is_reported_at_once():
    with pytest.raises(pl.LimitsError) as err:
        spec(primary=["A", "b/c"], projects=[{"id": "d", "class": "gold"}], parent="a-b")
    for field in ("primary[0]: 'A'", "primary[1]: 'b/c'", "projects[0].class", "parent: 'a-b'"):
        assert field in str(err.value)


def test_user_name_collisions_name_both_projects():
    with pytest.raises(pl.LimitsError, match=r"primary\[0\], primary\[1\]: projects 'a-b' and 'a_b' get the same "
                                             r"user name pa_b; shorten"):
        spec(primary=["a-b", "a_b"])
    long_a, long_b = "x" * 40 + "a", "x" * 40 + "b"
    with pytest.raises(pl.LimitsError, match="same user name"):
        spec(primary=[long_a, long_b])


def test_uid_collisions_name_both_projects_and_an_override_settles_them():
    seen = {}
    for n in itertools.count():
        uid = pl.derive_uid("p%d" % n, 200000, 300000)
        if uid in seen:
            first, second = seen[uid], "p%d" % n
            break
        seen[uid] = "p%d" % n
    with pytest.raises(pl.LimitsError, match=r"projects %r and %r get the same uid %d; give one of them its own "
                                             r"projects\[\]\.uid" % tuple(sorted([first, second]) + [uid])):
        spec(primary=[first, second], uid_min=200000, uid_max=300000)
    s = spec(primary=[first], projects=[{"id": second, "uid": 250000}], uid_min=200000, uid_max=300000)
    assert sorted(p["uid"] for p in s["projects"]) == sorted([uid, 250000])


# ------------------------------------------------------------------------------------------------- users
PASSWD = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\nbroken line\n"


def test_plan_users():
    s = spec(primary=["a", "b", "c"])
    a, b, c = s["projects"]
    passwd = pl.parse_passwd(PASSWD + "pb:x:%d:%d:smc project b:/projects/b:/bin/bash\n" % (b["uid"], b["uid"]))
    groups = pl.parse_passwd("root:x:0:\npb:x:%d:\npc:x:%d:\n" % (b["uid"], c["uid"]))
    create = pl.plan_users(s["projects"], passwd, groups)
    assert [(u["user"], u["group_exists"]) for u in create] == [("pa", False), ("pc", True)]


@pytest.mark.parametrize("passwd, groups, words", [
    ("pa:x:5000:5000::/:/bin/sh\n", "", r"primary\[0\]: user pa exists with uid 5000, not \d+; give projects\[\]\.uid: 5000"),
    ("other:x:{uid}:{uid}::/:/bin/sh\n", "", r"uid \d+ of project 'a' is held by user other"),
    ("", "pa:x:5000:\n", "group pa exists with gid 5000"),
    ("", "other:x:{uid}:\n", r"gid \d+ of project 'a' is held by group other"),
    ("pa:x:{uid}:{uid}::/:/bin/sh\n", "pa:x:7:\n", "group pa exists with gid 7"),
])
def test_plan_users_refuses_names_and_ids_held_otherwise(passwd, groups, words):
    s = spec(primary=["a"])
    uid = s["projects"][0]["uid"]
    with pytest.raises(pl.LimitsError, match=words):
        pl.plan_users(s["projects"], pl.parse_passwd(passwd.format(uid=uid)), pl.parse_passwd(groups.format(uid=uid)))


# ------------------------------------------------------------------------------------------------ cgroup
def test_cgroup_v1_is_refused_clearly():
    with pytest.raises(pl.LimitsError, match="no cgroup v2 unified hierarchy .* systemd.unified_cgroup_hierarchy=1"):
        pl.check_cgroup2(None)
    with pytest.raises(pl.LimitsError, match=r"controller\(s\) io not available"):
        pl.check_cgroup2("cpuset cpu memory pids\n", needed=("cpu", "memory", "pids", "io"))
    pl.check_cgroup2("cpuset cpu io memory hugetlb pids rdma misc\n", needed=("cpu", "memory", "pids", "io"))


# --------------------------------------------------------------------------------------------- rendering
def lab_spec():
    return spec(primary=["demo-a"], projects=[{"id": "demo-b", "class": "member"}], io_devices=["/dev/vdb", "/dev/vdc"],
                classes={"default": {"memory_high": "96M", "memory_max": "128M", "memory_swap_max": 0, "tasks_max": 64},
                         "member": {"cpu_weight": 300, "cpu_quota": "80%", "io_write_bandwidth_max": "20M"}},
                reserve={"memory": "25%", "cpu_weight": 40})


def test_slice_files():
    units = pl.desired_units(lab_spec(), GIB)
    assert sorted(units) == ["smc_projects-pdemo_a.slice", "smc_projects-pdemo_b.slice", "smc_projects.slice"]
    assert units["smc_projects.slice"].endswith("[Slice]\nCPUWeight=40\nMemoryMax=805306368\nIOWeight=50\n")
    assert units["smc_projects-pdemo_a.slice"] == (
        pl.MARKER + "\n[Unit]\nDescription=smc project demo-a (class default, user pdemo_a)\n\n[Slice]\n"
        "CPUWeight=100\nMemoryHigh=96M\nMemoryMax=128M\nMemorySwapMax=0\nTasksMax=64\nIOWeight=100\n")
    assert pl.slice_properties(units["smc_projects-pdemo_b.slice"]) == {
        "CPUWeight": ["300"], "CPUQuota": ["80%"], "TasksMax": ["4096"], "IOWeight": ["100"],
        "IOWriteBandwidthMax": ["/dev/vdb 20M", "/dev/vdc 20M"]}


def test_reserve_at_or_above_the_memory_is_refused():
    s = spec(primary=["a"], reserve={"memory": "1G"})
    with pytest.raises(pl.LimitsError, match=r"reserve\.memory: 1G is not below the host's memory \(1G\)"):
        pl.desired_units(s, GIB)
    assert "MemoryMax=%d" % (2 * GIB) in pl.desired_units(s, 3 * GIB)["smc_projects.slice"]


def test_plan_writes_removes_keeps_and_reports_changed_properties():
    desired = pl.desired_units(lab_spec(), GIB)
    old_a = desired["smc_projects-pdemo_a.slice"].replace("TasksMax=64", "TasksMax=48")
    existing = {"smc_projects.slice": desired["smc_projects.slice"], "smc_projects-pdemo_a.slice": old_a,
                "smc_projects-pgone.slice": pl.MARKER + "\n[Slice]\nCPUWeight=5\n",
                "smc_projects-prunning.slice": pl.MARKER + "\n[Slice]\n",
                "smc_projects-pmine.slice": "[Slice]\nCPUWeight=1\n", "smc_projects-plink.slice": None}
    p = pl.plan_units(desired, existing, populated={"smc_projects-prunning.slice", "smc_projects-pdemo_a.slice"})
    assert [w[0] for w in p["write"]] == ["smc_projects-pdemo_a.slice", "smc_projects-pdemo_b.slice"]
    assert p["write"][0][1] == old_a and p["write"][1][1] is None
    assert p["changes"]["smc_projects-pdemo_a.slice"] == {"TasksMax": [["48"], ["64"]]}
    assert p["remove"] == ["smc_projects-pgone.slice"] and p["kept"] == ["smc_projects-prunning.slice"]
    assert pl.plan_units(desired, dict(desired)) == dict(write=[], remove=[], kept=[], changes={})


def test_a_file_we_did_not_write_is_never_overwritten():
    desired = pl.desired_units(lab_spec(), GIB)
    for before in ("[Slice]\nCPUWeight=1\n", None):
        with pytest.raises(pl.LimitsError, match="smc_projects-pdemo_a.slice exists and was not written by"):
            pl.plan_units(desired, {"smc_projects-pdemo_a.slice": before})


def test_config_round_trip_and_cgroup_paths():
    s = lab_spec()
    projects = pl.parse_config(pl.render_config(s))
    text = projects["demo-a"].pop("unit_text")
    assert projects["demo-a"] == {"user": "pdemo_a", "uid": 1644619673, "gid": 1644619673, "home": "/projects/demo-a",
                                  "slice": "smc_projects-pdemo_a.slice", "class": "default", "role": "primary"}
    assert text == pl.desired_units(s, 4 * GIB)["smc_projects-pdemo_a.slice"]
    assert pl.cgroup_dir("smc_projects", "smc_projects-pdemo_a.slice") == \
        "/sys/fs/cgroup/smc_projects.slice/smc_projects-pdemo_a.slice"
    assert pl.cgroup_dir("smc_projects", "smc_projects.slice") == "/sys/fs/cgroup/smc_projects.slice"


@pytest.mark.parametrize("text", [
    "nope", "[]", '{"projects": []}', '{"projects": {"A": {}}}',
    json.dumps({"projects": {"a": {"uid": 1, "gid": 1, "home": "/x", "slice": "../../x.slice"}}}),
    json.dumps({"projects": {"a": {"uid": "1", "gid": 1, "home": "/x", "slice": "s-a.slice"}}}),
])
def test_a_malformed_config_is_refused(text):
    with pytest.raises(pl.LimitsError, match="run the project_limits role again"):
        pl.parse_config(text)
