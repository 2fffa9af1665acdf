"""smc.backend.project_limits on a fake host (unit dir, cgroup tree, passwd, group, homes under tmp_path; groupadd,
useradd and systemctl recorded): one call converges every project, a second changes nothing, a changed limit
rewrites only its slice with one daemon-reload, check and diff mode, removals only of idle slices, refusals
with nothing changed."""
import contextlib
import io
import json
import os
import re

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import project_limits as pl
from ansible_collections.smc.backend.plugins.modules import project_limits as mod

UUID = "35138062-10a6-5e83-adcd-5f2c13dba365"
CLASSES = {"default": {"memory_max": "128M", "tasks_max": 48}, "member": {"cpu_weight": 300}}


class FakeHost:
    """groupadd/useradd append to the temporary passwd and group; systemctl is recorded."""

    def __init__(self, root):
        self.root, self.calls = root, []

    def __call__(self, _module, args, **_kw):
        args = list(args)
        self.calls.append(args)
        opt = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
        if args[0] == "groupadd":
            with open(self.root / "group", "a", encoding="utf-8") as f:
                f.write("%s:x:%s:\n" % (args[-1], opt["--gid"]))
        elif args[0] == "useradd":
            with open(self.root / "passwd", "a", encoding="utf-8") as f:
                fields = (args[-1], opt["--uid"], opt["--gid"], opt["--comment"], opt["--home-dir"], opt["--shell"])
                f.write("%s:x:%s:%s:%s:%s:%s\n" % fields)
        return 0, "", ""


@pytest.fixture(name="host")
def fixture_host(tmp_path, monkeypatch):
    (tmp_path / "units").mkdir()
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (tmp_path / "meminfo").write_text("MemTotal:        1048576 kB\n")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "group").write_text("root:x:0:\n")
    for pid in ("demo-a", "demo-b", UUID):
        (tmp_path / "projects" / pid).mkdir(parents=True)
    monkeypatch.setattr(mod, "UNIT_DIR", str(tmp_path / "units"))
    monkeypatch.setattr(mod, "CGROUP_ROOT", str(tmp_path / "cgroup"))
    monkeypatch.setattr(mod, "MEMINFO", str(tmp_path / "meminfo"))
    monkeypatch.setattr(mod, "PASSWD", str(tmp_path / "passwd"))
    monkeypatch.setattr(mod, "GROUP", str(tmp_path / "group"))
    fake = FakeHost(tmp_path)

    def run_command(module, args, **kw):
        return fake(module, args, **kw)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    return fake


def run(host, check=False, diff=False, **args):
    args.setdefault("home_base", str(host.root / "projects"))
    args.setdefault("config_path", str(host.root / "smc" / "project-limits.json"))
    args.setdefault("classes", CLASSES)
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=diff)), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            mod.main()
    return json.loads(out.getvalue())


def populate(host, unit, procs=True):
    d = host.root / "cgroup" / "smc_projects.slice" / unit
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.events").write_text("populated %d\nfrozen 0\n" % int(procs))


def units(host):
    return sorted(os.listdir(host.root / "units"))


def test_argument_spec_matches_documentation():
    doc = yaml.safe_load(mod.DOCUMENTATION)["options"]
    assert set(doc) == set(mod.ARGUMENT_SPEC)
    for key, spec in mod.ARGUMENT_SPEC.items():
        assert doc[key].get("default") == spec.get("default"), key
    assert set(doc["projects"]["suboptions"]) == set(mod.ARGUMENT_SPEC["projects"]["options"]) == set(pl.PROJECT_KEYS)


def test_one_call_converges_every_project_then_nothing_to_do(host):
    res = run(host, primary=["demo-a", UUID],
              projects=[{"id": "demo-b", "class": "member"}, {"id": "demo-c", "role": "replica"}])
    assert res["changed"] and res["summary"] == {
        "projects": 4, "running": 3, "users_created": 4, "slices_created": 4, "slices_updated": 0, "slices_unchanged": 0,
        "slices_removed": 0, "slices_kept": 0, "live_changed": 0, "homes_chowned": 3 if os.geteuid() == 0 else 0}
    a = res["projects"]["demo-a"]
    assert a == {"user": "pdemo_a", "uid": pl.derive_uid("demo-a"), "slice": "smc_projects-pdemo_a.slice",
                 "home": str(host.root / "projects" / "demo-a")}
    assert units(host) == ["smc_projects-p3513806210a65e83adcd5f2c13dba36.slice", "smc_projects-pdemo_a.slice",
                           "smc_projects-pdemo_b.slice", "smc_projects.slice"]
    assert "MemoryMax=805306368\n" in (host.root / "units" / "smc_projects.slice").read_text()  # 1 GiB - 256M
    assert "TasksMax=48\n" in (host.root / "units" / "smc_projects-pdemo_a.slice").read_text()
    assert ["groupadd", "--system", "--gid", str(a["uid"]), "--", "pdemo_a"] in host.calls
    assert ["useradd", "--system", "--uid", str(a["uid"]), "--gid", str(a["uid"]), "--no-create-home", "--home-dir",
            a["home"], "--shell", "/bin/bash", "--comment", "smc project demo-a", "--", "pdemo_a"] in host.calls
    assert host.calls.count(["systemctl", "daemon-reload"]) == 1 and host.calls[-1] == ["systemctl", "daemon-reload"]
    config = pl.parse_config((host.root / "smc" / "project-limits.json").read_text())
    # the replica gets its user (its files keep their owner when it is promoted) and an entry, not a slice
    assert sorted(config) == sorted(["demo-a", "demo-b", "demo-c", UUID]) and config["demo-c"]["role"] == "replica"
    if os.geteuid() == 0:
        assert os.stat(a["home"]).st_uid == a["uid"]
    host.calls.clear()
    again = run(host, primary=["demo-a", UUID],
                projects=[{"id": "demo-b", "class": "member"}, {"id": "demo-c", "role": "replica"}])
    assert not again["changed"] and host.calls == [] and again["summary"]["slices_unchanged"] == 4


def test_mode_mounted_gives_slices_where_the_home_is_mounted_read_write(host, monkeypatch):
    homes = host.root / "projects"
    info = host.root / "mountinfo"
    info.write_text("22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw\n"
                    "90 22 0:50 / %s/demo-b rw,noatime - zfs tank/projects/demo-b rw\n"
                    "91 22 0:51 / %s/demo-a ro,noatime - zfs tank/projects/demo-a ro\n" % (homes, homes))
    monkeypatch.setattr(mod, "MOUNTINFO", str(info))
    # the controller still names demo-a primary, but the HA loop moved it: demo-b (a replica in the list) runs here
    res = run(host, primary=["demo-a"], replica=["demo-b"], active="mounted")
    assert res["summary"]["running"] == 1 and units(host) == ["smc_projects-pdemo_b.slice", "smc_projects.slice"]
    assert sorted(res["projects"]) == ["demo-a", "demo-b"] and len(res["users_created"]) == 2
    config = pl.load_config((host.root / "smc" / "project-limits.json").read_text())
    assert config["active"] == "mounted"
    # demo-a comes back writable and demo-b goes: the next run follows (demo-b's slice idle, so removed)
    info.write_text("91 22 0:51 / %s/demo-a rw,noatime - zfs tank/projects/demo-a rw\n" % homes)
    res = run(host, primary=["demo-a"], replica=["demo-b"], active="mounted")
    assert units(host) == ["smc_projects-pdemo_a.slice", "smc_projects.slice"] and res["slices_removed"] == [
        "smc_projects-pdemo_b.slice"]


def test_a_changed_limit_rewrites_its_slices_and_applies_live_with_one_reload(host):
    run(host, primary=["demo-a", "demo-b"])
    populate(host, "smc_projects-pdemo_a.slice")
    host.calls.clear()
    classes = dict(CLASSES, default={"memory_max": "128M", "tasks_max": 64})
    res = run(host, primary=["demo-a", "demo-b"], classes=classes)
    assert res["changed"] and res["slices_written"] == ["smc_projects-pdemo_a.slice", "smc_projects-pdemo_b.slice"]
    assert res["changes"]["smc_projects-pdemo_a.slice"] == {"TasksMax": [["48"], ["64"]]}
    assert res["live"] == ["smc_projects-pdemo_a.slice"] and res["summary"]["slices_updated"] == 2
    assert host.calls == [["systemctl", "daemon-reload"]]  # no user made, nothing restarted or stopped


def test_check_mode_changes_nothing_and_diff_shows_everything(host):
    res = run(host, check=True, diff=True, primary=["demo-a"])
    assert res["changed"] and res["users_created"] == ["pdemo_a"] and res["daemon_reload"]
    assert host.calls == [] and units(host) == [] and not (host.root / "smc").exists()
    headers = [d["after_header"] for d in res["diff"]]
    assert headers[:2] == [str(host.root / "units" / n) for n in ("smc_projects-pdemo_a.slice", "smc_projects.slice")]
    assert headers[2].endswith("project-limits.json") and headers[3] == "host state"
    assert "user pdemo_a: uid %d" % pl.derive_uid("demo-a") in res["diff"][3]["after"]


def test_slices_of_projects_gone_are_removed_only_when_idle(host):
    run(host, primary=["demo-a", "demo-b", UUID])
    populate(host, "smc_projects-pdemo_b.slice")
    populate(host, "smc_projects-pdemo_a.slice", procs=False)
    res = run(host, primary=[UUID])
    assert res["slices_removed"] == ["smc_projects-pdemo_a.slice"] and res["slices_kept"] == ["smc_projects-pdemo_b.slice"]
    assert "smc_projects-pdemo_a.slice" not in units(host) and "smc_projects-pdemo_b.slice" in units(host)
    assert "pdemo_a:" in (host.root / "passwd").read_text()  # users stay: their uid owns the project's files
    populate(host, "smc_projects-pdemo_b.slice", procs=False)
    assert run(host, primary=[UUID])["slices_removed"] == ["smc_projects-pdemo_b.slice"]


def test_a_cgroup_v1_host_is_refused_before_anything(host):
    os.unlink(host.root / "cgroup" / "cgroup.controllers")
    res = run(host, primary=["demo-a"])
    assert res["failed"] and "no cgroup v2 unified hierarchy" in res["msg"] and "Nothing was changed" in res["msg"]
    assert host.calls == [] and units(host) == []


@pytest.mark.parametrize("setup, args, words", [
    (lambda r: (r / "units" / "smc_projects-pdemo_a.slice").write_text("[Slice]\n"), {},
     "smc_projects-pdemo_a.slice exists and was not written by"),
    (lambda r: (r / "passwd").write_text("root:x:0:0::/:/bin/sh\nother:x:%d:1::/:/bin/sh\n" % pl.derive_uid("demo-a")),
     {}, r"is held by user other"),
    (lambda r: (r / "passwd").write_text("root:x:0:0::/:/bin/sh\npdemo_a:x:4242:4242::/:/bin/sh\n"), {},
     r"user pdemo_a exists with uid 4242, not \d+; give projects\[\]\.uid: 4242"),
    (None, {"reserve": {"memory": "1G"}}, r"reserve\.memory: 1G is not below the host's memory"),
    (None, {"projects": [{"id": "demo-b", "class": "gold"}]}, r"projects\[0\]\.class: 'gold' is not a known class"),
    (None, {"classes": {"default": {"memory_max": "-5M"}}}, r"classes\.default\.memory_max: '-5M' is negative"),
    (None, {"config_path": "etc/x.json"}, "config_path: 'etc/x.json' is not an absolute path"),
])
def test_refusals_change_nothing(host, setup, args, words):
    if setup:
        setup(host.root)
    before = sorted(os.listdir(host.root / "units"))
    res = run(host, **dict(dict(primary=["demo-a"]), **args))
    assert res["failed"] and re.search(words, res["msg"]), res["msg"]
    assert host.calls == [] and units(host) == before and not (host.root / "smc").exists()


def test_a_missing_home_is_a_warning_and_the_user_still_made(host):
    res = run(host, primary=["demo-z"])
    assert res["changed"] and res["users_created"] == ["pdemo_z"] and res["summary"]["homes_chowned"] == 0
    # Ansible de-duplicates warnings per process (pytest -n shares one): the result's own list is checked
    assert "home %s does not exist yet" % (host.root / "projects" / "demo-z") in json.dumps(res["home_warnings"]), res


HOSTILE = st.one_of(
    st.sampled_from(["..", ".", "-f", "--help", "a\n", "a\nb", "a/b", "../x", "A", "a b", "\u00e9", "a" * 201, ""]),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=12))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE, field=st.sampled_from(["primary", "projects"]))
def test_hostile_project_ids_change_nothing(host, value, field):
    if pl.check_id("x", value) is None:
        return
    arg = [value] if field == "primary" else [{"id": value}]
    res = run(host, **{field: arg})
    assert res.get("failed") and host.calls == [] and units(host) == [], res
    assert (field + "[0]") in res["msg"], res["msg"]
