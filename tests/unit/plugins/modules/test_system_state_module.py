"""smc.backend.system_state on a fake host (files under tmp_path, a recorded apt-get/modprobe/systemctl):
converge, second run unchanged, check mode and diff, refusals with nothing changed."""
import contextlib
import io
import json
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smc.backend.plugins.module_utils import system_state as ss
from ansible_collections.smc.backend.plugins.modules import system_state

STANZA = "Package: %s\nStatus: install ok installed\nArchitecture: amd64\n\n"


class FakeHost:
    """The commands the module runs, acting on the temporary host."""

    def __init__(self, root):
        self.root, self.calls = root, []
        self.units = {"zfs-zed": ["loaded", "active", "enabled"], "a.timer": ["not-found", "inactive", ""],
                      "old.timer": ["loaded", "active", "enabled"]}

    def __call__(self, _module, args, **_kw):
        self.calls.append(list(args))
        if args[:2] == ["apt-get", "install"]:
            with open(self.root / "status", "a", encoding="utf-8") as f:
                f.writelines(STANZA % a for a in args if not a.startswith("-") and a not in ("apt-get", "install")
                             and "::" not in a)
        elif args[0] == "modprobe":
            (self.root / "sys" / args[-1]).mkdir()
        elif args[:2] == ["systemctl", "show"]:
            return 0, "\n".join("LoadState=%s\nActiveState=%s\nUnitFileState=%s\n" % tuple(self.units[u])
                                for u in args[4:]), ""
        elif args[:2] == ["systemctl", "daemon-reload"]:
            for u in os.listdir(self.root / "systemd"):
                if self.units.get(u, [""])[0] == "not-found":
                    self.units[u] = ["loaded", "inactive", "disabled"]
        elif args[0] == "systemctl":
            action, unit = args[1], args[-1]
            state = self.units[unit]
            state[2] = {"enable": "enabled", "disable": "disabled"}.get(action, state[2])
            state[1] = {"start": "active", "stop": "inactive", "restart": "active"}.get(action, state[1])
        return 0, "", ""

    def commands(self):
        return [c for c in self.calls if c[:2] != ["systemctl", "show"]]


@pytest.fixture(name="host")
def fixture_host(tmp_path, monkeypatch):
    (tmp_path / "status").write_text(STANZA % "zfsutils-linux")
    (tmp_path / "sys" / "zfs" / "parameters").mkdir(parents=True)
    (tmp_path / "sys" / "zfs" / "parameters" / "zfs_arc_max").write_text("0\n")
    (tmp_path / "meminfo").write_text("MemTotal:        1048576 kB\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 dc1-s1\n")
    (tmp_path / "systemd").mkdir()
    monkeypatch.setattr(system_state, "DPKG_STATUS", str(tmp_path / "status"))
    monkeypatch.setattr(system_state, "SYS_MODULE", str(tmp_path / "sys"))
    monkeypatch.setattr(system_state, "MEMINFO", str(tmp_path / "meminfo"))
    monkeypatch.setattr(ss, "SYSTEMD_DIRS", (str(tmp_path / "systemd") + "/",))
    fake = FakeHost(tmp_path)

    def run_command(module, args, **kw):
        return fake(module, args, **kw)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    return fake


def run(check=False, diff=False, **args):
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=diff)), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            system_state.main()
    return json.loads(out.getvalue())


def everything(root):
    return dict(
        packages=["zfsutils-linux", "mbuffer"],
        kernel_modules=["zfs", "spl"],
        directories=[{"path": str(root / "smc/needed.d"), "mode": "0755"}],
        files=[{"path": str(root / "smc/agent.json"), "content": "{}\n", "mode": "0644"},
               {"path": str(root / "systemd/a.timer"), "content": "[Timer]\n"}],
        blocks=[{"path": str(root / "etc/hosts"), "marker": "# {mark} smc", "block": "10.0.0.1 dc1-s1\n",
                 "remove_lines": [r"127\.0\.1\.1\s+dc1-s1\s*"]}],
        module_parameters=[{"module": "zfs", "memory_percent": {"zfs_arc_max": 25}, "conf": str(root / "etc/zfs.conf"),
                            "comment": "ARC"}],
        units=[{"name": "a.timer", "enabled": True, "state": "started"},
               {"name": "old.timer", "enabled": False, "state": "stopped"},
               {"name": "zfs-zed", "restart_on_change": [str(root / "etc/zfs.conf")]}],
    )


def test_converge_then_nothing_to_do(host):
    root = host.root
    res = run(**everything(root))
    assert res["changed"] and res["packages"] == ["mbuffer"] and res["kernel_modules"] == ["spl"]
    assert res["daemon_reload"] and res["memory_bytes"] == 1024 ** 3
    assert res["units"] == {"a.timer": ["enable", "start"], "old.timer": ["disable", "stop"], "zfs-zed": ["restart"]}
    assert res["module_parameters"] == {"zfs.zfs_arc_max": ["0", "268435456"]}
    assert (root / "smc/agent.json").read_text() == "{}\n" and oct(os.stat(root / "smc/agent.json").st_mode)[-3:] == "644"
    assert oct(os.stat(root / "smc").st_mode)[-3:] == "755"
    assert (root / "etc/hosts").read_text() == "127.0.0.1 localhost\n# BEGIN smc\n10.0.0.1 dc1-s1\n# END smc\n"
    assert (root / "etc/zfs.conf").read_text() == "# ARC\noptions zfs zfs_arc_max=268435456\n"
    assert (root / "sys/zfs/parameters/zfs_arc_max").read_text() == "268435456\n"
    cmds = host.commands()
    assert cmds[0][:2] == ["apt-get", "install"] and cmds[0][-1] == "mbuffer"
    assert cmds.index(["systemctl", "daemon-reload"]) < cmds.index(["systemctl", "enable", "--", "a.timer"])
    host.calls.clear()
    again = run(**everything(root))
    assert not again["changed"] and host.commands() == []
    assert [c[:2] for c in host.calls] == [["systemctl", "show"]]


def test_check_mode_changes_nothing_and_reports_everything(host):
    root = host.root
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    res = run(check=True, diff=True, **everything(root))
    assert res["changed"] and res["packages"] == ["mbuffer"] and "a.timer" in res["units"]
    assert host.commands() == [] and {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert not (root / "smc").exists()
    heads = [d["after_header"] for d in res["diff"]]
    assert "%s (block, mode 0644)" % (root / "etc/hosts") in heads and "host state" in heads
    hosts = [d for d in res["diff"] if d["after_header"].startswith(str(root / "etc/hosts"))][0]
    assert "127.0.1.1 dc1-s1" in hosts["before"] and "10.0.0.1 dc1-s1" in hosts["after"]
    state = res["diff"][-1]
    assert "package mbuffer: installed" in state["after"] and "zfs.zfs_arc_max = 268435456" in state["after"]


def test_secret_file_text_never_in_the_diff(host):
    path = str(host.root / "etc/key")
    res = run(diff=True, files=[{"path": path, "content": "s3cr3t\n", "mode": "0600", "secret": True}])
    assert res["changed"] and "s3cr3t" not in json.dumps(res["diff"])
    assert oct(os.stat(path).st_mode)[-3:] == "600"


def test_mode_alone_is_fixed(host):
    path = host.root / "etc/hosts"
    os.chmod(path, 0o600)
    text = path.read_text()
    res = run(diff=True, files=[{"path": str(path), "content": text, "mode": "0644"}])
    assert res["changed"] and res["files"] == [str(path)] and oct(os.stat(path).st_mode)[-3:] == "644"
    assert res["diff"][0]["before_header"].endswith("mode 0600)")


def test_a_symlinked_file_is_written_through_the_link(host):
    target = host.root / "etc/real"
    target.write_text("old\n")
    os.symlink(target, host.root / "etc/link")
    run(files=[{"path": str(host.root / "etc/link"), "content": "new\n"}])
    assert os.path.islink(host.root / "etc/link") and target.read_text() == "new\n"


@pytest.mark.parametrize("change, words", [
    (lambda a, r: a["files"].append({"path": "relative", "content": ""}), "files[2].path: 'relative'"),
    (lambda a, r: a["packages"].append("-oDebug=1"), "packages[2]"),
    (lambda a, r: a["units"].append({"name": "../../x"}), "units[3].name"),
    (lambda a, r: a["units"].append({"name": "masked.timer", "state": "started"}), "masked.timer is masked"),
    (lambda a, r: a["files"].append({"path": str(r / "nodir/f"), "content": ""}), "list it under directories"),
    (lambda a, r: a["module_parameters"].append({"module": "zfs", "values": {"nope": 1}}), "no parameter nope"),
])
def test_any_bad_input_fails_before_any_change(host, change, words):
    host.units["masked.timer"] = ["masked", "inactive", "masked"]
    root = host.root
    args = everything(root)
    change(args, root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    res = run(**args)
    assert res["failed"] and words in res["msg"] and "Nothing was changed" in res["msg"]
    assert host.commands() == [] and not (root / "smc").exists()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_files_not_listed_are_never_touched(host):
    (host.root / "smc").mkdir()
    (host.root / "smc/placement.json").write_text("{}\n")
    run(directories=[{"path": str(host.root / "smc"), "mode": "0750"}],
        files=[{"path": str(host.root / "smc/agent.json"), "content": "{}\n"}])
    assert sorted(os.listdir(host.root / "smc")) == ["agent.json", "placement.json"]
    assert oct(os.stat(host.root / "smc").st_mode)[-3:] == "750"


def test_argument_spec_matches_documentation():
    import yaml
    doc = yaml.safe_load(system_state.DOCUMENTATION)["options"]
    assert set(doc) == set(system_state.ARGUMENT_SPEC)
    for name, spec in system_state.ARGUMENT_SPEC.items():
        assert doc[name]["type"] == spec["type"], name
        assert set(doc[name].get("suboptions", {})) == set(spec.get("options", {})), name
