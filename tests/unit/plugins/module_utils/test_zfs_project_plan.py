"""zfs_project_plan: input checks, the plan (one list -> creates/updates), what is held back, quarantined and
destroyed, grouped zfs set; hostile input at every function."""
import pytest

from ansible_collections.smc.backend.plugins.module_utils import zfs_project_plan as zp


def params(**kw):
    base = dict(projects=[], primary=[], replica=[], quota=None, refquota=None, properties={}, remove=[],
                confirm_destroy=[])
    base["class"] = "default"
    base.update(kw)
    return base


def test_desired_roles_and_properties():
    want = zp.desired_projects(params(
        primary=["a"], replica=["b"], quota="10G", properties={"snapdir": "visible"},
        projects=[{"id": "c", "role": "replica", "quota": "1G", "refquota": None, "class": "member",
                   "properties": {"compression": "zstd"}}]))
    assert want["a"] == {"snapdir": "visible", "quota": "10G", "readonly": "off", "smc:role": "primary",
                         "smc:class": "default"}
    assert want["b"]["readonly"] == "on" and want["b"]["smc:role"] == "replica"
    assert want["c"] == {"snapdir": "visible", "compression": "zstd", "quota": "1G", "readonly": "on",
                         "smc:role": "replica", "smc:class": "member"}


@pytest.mark.parametrize("kw, match", [
    (dict(primary=["a"], replica=["a"]), "listed twice"),
    (dict(primary=["../x"]), r"primary\[0\]: project id"),
    (dict(primary=["a"], remove=["a"]), "remove: project a is also listed"),
    (dict(remove=["a"], confirm_destroy=["a"]), "quarantine it first"),
    (dict(properties={"snapdir": None}), "properties.snapdir"),
    (dict(confirm_destroy=["a b"]), "confirm_destroy"),
])
def test_bad_input_names_the_field(kw, match):
    with pytest.raises(zp.ProjectError, match=match):
        zp.desired_projects(params(**kw))


def test_plan_creates_updates_and_reports_unmanaged():
    rows = [
        {"name": "t/p", "readonly": "off", "quota": "0", "smc:role": "-", "smc:class": "-"},
        {"name": "t/p/a", "readonly": "off", "quota": "10737418240", "smc:role": "primary", "smc:class": "default"},
        {"name": "t/p/b", "readonly": "off", "quota": "10737418240", "smc:role": "primary", "smc:class": "default"},
        {"name": "t/p/old", "readonly": "off", "quota": "0", "smc:role": "primary", "smc:class": "default"},
    ]
    want = zp.desired_projects(params(primary=["a", "new"], replica=["b"], quota="10G"))
    creates, updates, unmanaged = zp.plan("t/p", rows, want)
    assert list(creates) == ["t/p/new"]
    assert updates == {"t/p/b": {"readonly": ("off", "on"), "smc:role": ("primary", "replica")}}
    assert unmanaged == ["t/p/old"]


def test_plan_is_empty_when_converged():
    want = zp.desired_projects(params(primary=["p%d" % i for i in range(2000)], quota="1G"))
    rows = [{"name": "t/p"}] + [
        {"name": "t/p/p%d" % i, "readonly": "off", "quota": str(2 ** 30), "smc:role": "primary", "smc:class": "default"}
        for i in range(2000)]
    assert zp.plan("t/p", rows, want) == ({}, {}, [])


def test_group_sets_batches_identical_changes():
    changes = {"t/p/%d" % i: {"readonly": "on", "smc:role": "replica"} for i in range(1200)}
    changes["t/p/x"] = {"quota": "1G"}
    groups = zp.group_sets(changes)
    assert [len(g[1]) for g in groups] == [1, 500, 500, 200]
    assert groups[1][0] == ["readonly=on", "smc:role=replica"]
    assert sum(len(g[1]) for g in groups) == 1201


def test_diff_text_is_capped():
    creates = {"t/p/%05d" % i: {"readonly": "off"} for i in range(1500)}
    before, after = zp.diff_text(creates, {"t/p/a": {"quota": ("0", "1G")}})
    assert before == "t/p/a quota=0\n"
    lines = after.splitlines()
    assert len(lines) == 1001 and lines[-1] == "... 501 more"


# ---- hostile input, at the pure functions (the module's own tests run it end to end with a fake zfs)

BAD_DATASETS = ["/", "..", ".", "-f", "a\n", "tank", "tank/../x", "tank/./x", "tank//x", "tank/-x", "tank/p\n",
                "tank/\u00e9", "tank/a b", "mirror/p", "log/p"]


@pytest.mark.parametrize("value", BAD_DATASETS)
@pytest.mark.parametrize("field", ["parent", "quarantine_parent"])
def test_check_datasets_refuses_hostile_names_naming_the_field(field, value):
    names = dict(parent="tank/projects", quarantine_parent="tank/quarantine")
    names[field] = value
    with pytest.raises(zp.ProjectError, match=field if value != "tank" else "parent"):
        zp.check_datasets(names["parent"], names["quarantine_parent"])


@pytest.mark.parametrize("parent,qparent,match", [
    ("tank/projects", "other/quarantine", "in the pool of parent"),
    ("tank/projects", "tank/projects/q", "inside one another"),
    ("tank/projects/x", "tank/projects", "inside one another")])
def test_check_datasets_keeps_the_quarantine_beside_the_projects(parent, qparent, match):
    with pytest.raises(zp.ProjectError, match=match):
        zp.check_datasets(parent, qparent)


@pytest.mark.parametrize("pid", ["..", ".", "-r", "a/b", "a\n", "a b", "\u00e9", "", "x" * 201, 7, None])
@pytest.mark.parametrize("field", ["primary", "replica", "remove", "confirm_destroy"])
def test_desired_projects_refuses_hostile_ids_naming_the_entry(field, pid):
    with pytest.raises(zp.ProjectError, match=r"%s\[0\]" % field):
        zp.desired_projects(params(**{field: [pid]}))


def test_quarantine_state_trusts_only_its_own_mark():
    assert zp.quarantine_state([], "tank/quarantine") == "absent"
    assert zp.quarantine_state([{"name": "tank/quarantine", "smc:role": "-"}], "tank/quarantine") == "foreign"
    assert zp.quarantine_state([{"name": "tank/quarantine", "smc:role": "primary"}], "tank/quarantine") == "foreign"
    assert zp.quarantine_state([{"name": "tank/quarantine", "smc:role": "quarantine"}], "tank/quarantine") == "ours"


def test_quarantine_moves_only_projects_that_exist():
    moves = zp.quarantine_moves("t/p", "t/q", ["a", "gone"], {"t/p/a", "t/p/b"}, "20261206T010203Z")
    assert moves == [("t/p/a", "t/q/a-20261206T010203Z")]


def test_destroy_targets_only_quarantined_copies_of_the_named_project():
    rows = [{"name": "t/q/a-20261206T010203Z", "smc:role": "quarantined"},
            {"name": "t/q/a-20261207T010203Z", "smc:role": "quarantined"},
            {"name": "t/q/a-b-20261206T010203Z", "smc:role": "quarantined"},  # project a-b, not a
            {"name": "t/q/a-20261206T010203Z/child", "smc:role": "quarantined"},
            {"name": "t/q/a-20261206T010203Zx", "smc:role": "quarantined"},
            {"name": "t/q/a-20261208T010203Z", "smc:role": "primary"},  # not marked by the quarantine
            {"name": "t/qx/a-20261206T010203Z", "smc:role": "quarantined"}]
    assert zp.destroy_targets("t/q", ["a"], rows) == ["t/q/a-20261206T010203Z", "t/q/a-20261207T010203Z"]
    assert zp.destroy_targets("t/q", ["a.b"], [{"name": "t/q/aXb-20261206T010203Z", "smc:role": "quarantined"}]) == []


def test_hold_back_leaves_unseeded_replicas_and_role_changes():
    creates = {"t/p/r": {"readonly": "on"}, "t/p/n": {"readonly": "off"}}
    updates = {"t/p/x": {"readonly": ("off", "on"), "smc:role": ("primary", "replica")},
               "t/p/y": {"readonly": ("off", "on"), "quota": ("1G", "2G")}}
    awaiting, roles_left = zp.hold_back("t/p", creates, updates, ["r"], create_replicas=False, role_changes=False)
    assert awaiting == ["t/p/r"] and sorted(creates) == ["t/p/n"]
    assert roles_left == ["t/p/x", "t/p/y"] and updates == {"t/p/y": {"quota": ("1G", "2G")}}
