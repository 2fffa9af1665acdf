"""zfs_project: input checks, plan (one list -> creates/updates), grouped zfs set."""
import pytest

from ansible_collections.smc.backend.plugins.modules import zfs_project as zp


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
