"""roles/project_limits/files/smc-project: the systemd-run command for a project (its slice, uid, gid, home, a
clean environment), only for projects of this host; hostile ids and commands run nothing."""
import importlib.machinery
import importlib.util
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.module_utils import project_limits as pl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SCRIPT = os.path.join(ROOT, "roles", "project_limits", "files", "smc-project")
LIB = os.path.join(ROOT, "plugins", "module_utils")


def load():
    loader = importlib.machinery.SourceFileLoader("smc_project", SCRIPT)
    spec = importlib.util.spec_from_loader("smc_project", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


smc_project = load()


@pytest.fixture(name="config")
def fixture_config(tmp_path):
    spec = pl.validate({"primary": ["demo-a"], "home_base": str(tmp_path)})
    (tmp_path / "demo-a").mkdir()
    path = tmp_path / "project-limits.json"
    path.write_text(pl.render_config(spec))
    return str(path)


class Exec:
    def __init__(self):
        self.calls = []

    def __call__(self, file, argv, env):
        self.calls.append((file, list(argv), dict(env), os.getcwd()))


def main(config, *argv, groups=None):
    execvpe = Exec()
    cwd = os.getcwd()
    try:
        smc_project.main(["--config", config, "--lib", LIB] + list(argv), execvpe=execvpe,
                         setgroups=(groups if groups is not None else []).append)
    finally:
        os.chdir(cwd)
    return execvpe.calls


def test_run_in_the_foreground_is_a_scope_of_the_project_slice(config, monkeypatch):
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    groups = []
    ((file, argv, env, cwd),) = main(config, "run", "demo-a", "--", "sh", "-c", "echo hi", groups=groups)
    uid = pl.derive_uid("demo-a")
    assert groups == [[uid]]  # root's supplementary groups are dropped before the scope starts
    assert file == "systemd-run" and argv == [
        "systemd-run", "--quiet", "--slice=smc_projects-pdemo_a.slice", "--uid=%d" % uid, "--gid=%d" % uid, "--scope",
        "--", "sh", "-c", "echo hi"]
    assert cwd == os.path.join(os.path.dirname(config), "demo-a")
    assert env["HOME"] == cwd and env["USER"] == env["LOGNAME"] == "pdemo_a" and env["LANG"] == "C.UTF-8"
    assert "SSH_AUTH_SOCK" not in env and env["PATH"] == smc_project.PATH


def test_background_is_a_transient_service_in_the_home(config, capsys):
    assert smc_project.main(["--config", config, "--lib", LIB, "--dry-run", "run", "--background", "demo-a", "--",
                             "--weird", "arg"]) == 0
    out = json.loads(capsys.readouterr().out)
    argv = out["argv"]
    assert "--scope" not in argv and "--collect" in argv and argv[-3:] == ["--", "--weird", "arg"]
    assert "--working-directory=%s" % os.path.join(os.path.dirname(config), "demo-a") in argv
    assert [a for a in argv if a.startswith("--unit=smc-project-pdemo_a-") and a.endswith(".service")]


def test_background_prints_its_unit(config, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    groups = []
    ((_file, argv, _env, _cwd),) = main(config, "run", "--background", "demo-a", "--", "sleep", "60", groups=groups)
    unit = capsys.readouterr().out.strip()
    assert "--unit=" + unit in argv and groups == []


def test_stop_info_and_list(config, capsys, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    ((_file, argv, _env, _cwd),) = main(config, "stop", "demo-a")
    assert argv == ["systemctl", "stop", "--", "smc_projects-pdemo_a.slice"]
    smc_project.main(["--config", config, "--lib", LIB, "info", "demo-a"])
    assert json.loads(capsys.readouterr().out)["user"] == "pdemo_a"
    smc_project.main(["--config", config, "--lib", LIB, "list"])
    assert capsys.readouterr().out == "demo-a\n"


@pytest.mark.parametrize("argv, words", [
    (["run", "demo-b", "--", "true"], "'demo-b' has no copy on this host"),
    (["run", "demo-a"], "give the command after '--'"),
    (["run", "demo-a", "--"], "give the command after '--'"),
    (["info", "../etc"], "has a '/'"),
    (["stop", "Demo"], "cannot be a user name"),
])
def test_refusals_run_nothing(config, argv, words, capsys):
    with pytest.raises(SystemExit) as err:
        main(config, *argv)
    assert words in str(err.value.code) + capsys.readouterr().err


def test_not_root_or_no_config_is_refused(config, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit, match="must run as root"):
        main(config, "run", "demo-a", "--", "true")
    with pytest.raises(SystemExit, match="does not exist: this host has no project limits yet"):
        main(str(tmp_path / "none.json"), "run", "demo-a", "--", "true")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="not JSON"):
        main(str(tmp_path / "bad.json"), "info", "demo-a")


@settings(max_examples=100, deadline=None)
@given(pid=st.one_of(st.sampled_from(["-f", "--help", "a\n", "../x", "..", "a/b", "", "A"]),
                     st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)))
def test_hostile_ids_run_nothing(pid):
    if pid == "demo-a":
        return
    spec = pl.validate({"primary": ["demo-a"]})
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "smc-project-hypothesis-%d.json" % os.getpid())
    with open(path, "w", encoding="utf-8") as f:
        f.write(pl.render_config(spec))
    execvpe = Exec()
    try:
        with pytest.raises(SystemExit):
            smc_project.main(["--config", path, "--lib", LIB, "run", pid, "--", "true"], execvpe=execvpe,
                             setgroups=execvpe)
    finally:
        os.unlink(path)
    assert execvpe.calls == []


@pytest.fixture(name="mounted")
def fixture_mounted(tmp_path, monkeypatch):
    """Mode 'mounted' with demo-a (the controller's primary) and demo-b (its replica); unit dir, cgroup tree
    and mount table under tmp_path; systemctl recorded."""
    spec = pl.validate({"primary": ["demo-a"], "replica": ["demo-b"], "home_base": str(tmp_path), "active": "mounted"})
    for d in ("demo-a", "demo-b", "units", "cgroup"):
        (tmp_path / d).mkdir()
    (tmp_path / "project-limits.json").write_text(pl.render_config(spec))
    calls = []
    monkeypatch.setattr(smc_project, "UNIT_DIR", str(tmp_path / "units"))
    monkeypatch.setattr(smc_project, "CGROUP_ROOT", str(tmp_path / "cgroup"))
    monkeypatch.setattr(smc_project, "MOUNTINFO", str(tmp_path / "mountinfo"))
    monkeypatch.setattr(smc_project.subprocess, "run", lambda argv, check: calls.append(argv))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return tmp_path, calls


def mount(tmp_path, **modes):
    (tmp_path / "mountinfo").write_text("".join("9%d 22 0:5%d / %s/%s %s,noatime - zfs tank/%s %s\n" % (
        i, i, tmp_path, pid.replace("_", "-"), mode, pid, mode) for i, (pid, mode) in enumerate(sorted(modes.items()))))


def test_sync_follows_a_failover_and_back(mounted, capsys):
    tmp_path, calls = mounted
    config = str(tmp_path / "project-limits.json")
    a, b = "smc_projects-pdemo_a.slice", "smc_projects-pdemo_b.slice"
    mount(tmp_path, demo_a="rw", demo_b="ro")
    smc_project.main(["--config", config, "--lib", LIB, "sync"])
    assert json.loads(capsys.readouterr().out) == {"written": [a], "stopped": [], "removed": []}
    assert sorted(os.listdir(tmp_path / "units")) == [a] and calls == [["systemctl", "daemon-reload"]]
    # demo-a is demoted while it runs a process, demo-b is promoted: a's processes stop, its slice goes
    (tmp_path / "cgroup" / "smc_projects.slice" / a).mkdir(parents=True)
    (tmp_path / "cgroup" / "smc_projects.slice" / a / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    mount(tmp_path, demo_a="ro", demo_b="rw")
    calls.clear()
    smc_project.main(["--config", config, "--lib", LIB, "sync"])
    assert json.loads(capsys.readouterr().out) == {"written": [b], "stopped": [a], "removed": [a]}
    assert sorted(os.listdir(tmp_path / "units")) == [b]
    assert calls == [["systemctl", "stop", "--", a], ["systemctl", "daemon-reload"]]
    # nothing changed: no reload
    calls.clear()
    smc_project.main(["--config", config, "--lib", LIB, "sync"])
    assert json.loads(capsys.readouterr().out) == {"written": [], "stopped": [], "removed": []} and calls == []


def test_run_refuses_a_project_not_mounted_writable_here(mounted):
    tmp_path, _calls = mounted
    mount(tmp_path, demo_a="ro", demo_b="rw")
    with pytest.raises(SystemExit, match="'demo-a' is not primary on this host"):
        main(str(tmp_path / "project-limits.json"), "run", "demo-a", "--", "true")
    ((_file, argv, _env, _cwd),) = main(str(tmp_path / "project-limits.json"), "run", "demo-b", "--", "true")
    assert "--slice=smc_projects-pdemo_b.slice" in argv
