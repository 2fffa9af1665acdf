"""zfs_project: hostile parents, quarantine parents, ids and properties fail naming the field, before any zfs
command; a quarantine_parent the module did not create is never changed."""
import contextlib
import io
import json
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils.zfs_project_plan import ID_RE
from ansible_collections.smc.backend.plugins.modules import zfs_project as zp

HOSTILE = st.one_of(
    st.sampled_from(["/", "..", ".", "-f", "-r", "a\n", "a\nb", "tank/../x", "tank/./x", "tank//x", "tank/-x",
                     "mirror/p", "c0t0/p", "tank/p\n", "tank/\u00e9", "tank/a b", "", "log/p"]),
    # (NUL bytes never reach the module: AnsibleModule refuses them itself.)
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=20).map(lambda t: "tank/" + t + "\n"),
    st.text(alphabet="/.-\n\u00e9 ", min_size=1, max_size=8))


def run(rows=None, **args):
    """Run the module with a fake zfs; ``rows``: dataset -> property dict it reports. (result, argv calls)."""
    rows = rows or {}
    calls = []

    def fake(_self, argv, data=None, **kwargs):
        argv = list(argv)
        calls.append(argv)
        if argv[:2] == ["zfs", "list"]:
            fields, root = argv[argv.index("-o") + 1].split(","), argv[-1]
            out = ["\t".join([name] + [props.get(f, "-") for f in fields[1:]]) for name, props in sorted(rows.items())
                   if name == root or name.startswith(root + "/")]
            return (0, "\n".join(out) + "\n", "") if out else (1, "", "cannot open '%s': dataset does not exist" % root)
        return 0, "", ""
    out = io.StringIO()
    with mock.patch.object(AnsibleModule, "run_command", fake), patch_module_args(args), \
            contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        zp.main()
    return json.loads(out.getvalue()), calls


@settings(max_examples=60, deadline=None)
@given(value=HOSTILE)
def test_hostile_parent_or_quarantine_parent_runs_nothing(value):
    for field in ("parent", "quarantine_parent"):
        args = dict(parent="tank/projects", primary=["a"], remove=["b"])
        args[field] = value
        res, calls = run(**args)
        if value.strip("/") in ("tank/quarantine", "tank/projects") or (field == "quarantine_parent"
                                                                        and not value.strip("/")):
            continue  # valid, or empty: the default quarantine_parent
        assert res.get("failed") and calls == [], (field, value, res)
        assert field in res["msg"] or "parent" in res["msg"], res["msg"]


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(HOSTILE, st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=5)),
       field=st.sampled_from(["primary", "replica", "remove", "confirm_destroy"]))
def test_hostile_project_ids_run_nothing(value, field):
    if ID_RE.match(value):
        return
    res, calls = run(parent="tank/projects", **{field: [value]})
    assert res.get("failed") and calls == [] and field + "[0]" in res["msg"], res


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["-r", "quota\n", "a=b", "", "Quota", "x y"]) | st.just("compression"),
       value=st.sampled_from(["lz4\nreadonly=on", "a\x00", "x" * 5000, None, True, [1]]) | st.just("lz4"))
def test_hostile_properties_run_nothing(key, value):
    if key == "compression" and value == "lz4":
        return
    for field in ("properties", "parent_properties"):
        res, calls = run(parent="tank/projects", primary=["a"], **{field: {key: value}})
        assert res.get("failed") and calls == [] and field in res["msg"], (field, key, value, res)


@pytest.mark.parametrize("quota", ["10G\nreadonly=off", "-1\x7f"])
def test_hostile_quota_runs_nothing(quota):
    res, calls = run(parent="tank/projects", primary=["a"], quota=quota)
    assert res.get("failed") and calls == [] and "quota" in res["msg"]


@pytest.mark.parametrize("qparent", ["tank", "other/quarantine", "tank/projects/q", "tank/projects", "tank/p"])
def test_quarantine_parent_outside_the_rules_is_refused(qparent):
    res, calls = run(parent="tank/p/x" if qparent == "tank/p" else "tank/projects", remove=["a"],
                     quarantine_parent=qparent)
    assert res.get("failed") and calls == [] and "quarantine_parent" in res["msg"], res


def test_existing_unmarked_quarantine_parent_is_never_changed():
    rows = {"tank/projects": {}, "tank/projects/a": {"readonly": "off"}, "tank/data": {"canmount": "on"}}
    for field in ("remove", "confirm_destroy"):
        res, calls = run(rows=rows, parent="tank/projects", quarantine_parent="tank/data",
                         **{field: ["a"] if field == "remove" else ["z"]})
        assert res.get("failed") and "not created by smc.backend.zfs_project" in res["msg"], res
        assert "Nothing was changed" in res["msg"]
        assert [c for c in calls if c[:2] != ["zfs", "list"]] == [], calls


def test_missing_quarantine_parent_is_created_marked_and_used():
    rows = {"tank/projects": {}, "tank/projects/a": {"readonly": "off"}}
    res, calls = run(rows=rows, parent="tank/projects", remove=["a"])
    assert not res.get("failed"), res
    writes = [c for c in calls if c[:2] != ["zfs", "list"]]
    assert writes[0] == ["zfs", "create", "-p", "-o", "canmount=off", "-o", "smc:role=quarantine", "tank/quarantine"]
    assert writes[1][:3] == ["zfs", "rename", "tank/projects/a"]


def test_marked_quarantine_parent_is_used_and_only_quarantined_copies_destroyed():
    rows = {"tank/projects": {}, "tank/q": {"smc:role": "quarantine"},
            "tank/q/a-20260101T000000Z": {"smc:role": "quarantined"},
            "tank/q/a-20260102T000000Z": {"smc:role": "primary"}}
    res, calls = run(rows=rows, parent="tank/projects", quarantine_parent="tank/q", confirm_destroy=["a"])
    assert res["destroyed"] == ["tank/q/a-20260101T000000Z"], res
    assert [c for c in calls if c[:2] != ["zfs", "list"]] == [["zfs", "destroy", "-r", "tank/q/a-20260101T000000Z"]]


def test_with_role_changes_off_a_lagging_list_never_makes_a_replica_writable():
    """The HA loop moved a's primary away (a is a replica here now) and made b primary here; the controller's
    lists still say the opposite. With role_changes=false nothing flips; the class still converges."""
    rows = {"tank/projects": {"readonly": "off"},
            "tank/projects/a": {"readonly": "on", "smc:role": "replica", "smc:class": "default"},
            "tank/projects/b": {"readonly": "off", "smc:role": "primary", "smc:class": "old"}}
    res, calls = run(rows=rows, parent="tank/projects", primary=["a"], replica=["b"], create_replicas=False,
                     role_changes=False)
    assert not res.get("failed"), res
    assert res["roles_left"] == ["tank/projects/a", "tank/projects/b"], res
    sets = [c for c in calls if c[:2] == ["zfs", "set"]]
    assert sets == [["zfs", "set", "smc:class=default", "tank/projects/b"]], sets
    # by default the lists win (no HA: the controller owns the roles)
    res, calls = run(rows=rows, parent="tank/projects", primary=["a"], replica=["b"], create_replicas=False)
    assert "readonly=off" in [a for c in calls if c[:2] == ["zfs", "set"] for a in c] and res["roles_left"] == []
