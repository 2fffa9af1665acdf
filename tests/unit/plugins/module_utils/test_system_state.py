"""system_state planning: input checks (hostile names too), dpkg status, blocks as blockinfile writes them,
files and directories on a temporary host, kernel module parameters, units."""
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.smc.backend.plugins.module_utils import system_state as ss

STATUS = """Package: zfsutils-linux
Status: install ok installed
Architecture: amd64

Package: mbuffer
Status: deinstall ok config-files
Architecture: amd64

Package: lz4
Status: hold ok installed
Architecture: amd64
Description: fast
 compression

Package: tinc
Status: install ok half-configured
"""


def spec(**kw):
    return ss.validate(kw)


# ------------------------------------------------------------------------------------------ validation
def test_defaults_normalize():
    s = spec(directories=[{"path": "/etc/smc"}], files=[{"path": "/etc/x", "content": "a\n", "mode": 0o600}])
    assert s["directories"] == [{"path": "/etc/smc", "mode": 0o755}]
    assert s["files"][0]["mode"] == 0o600 and s["files"][0]["secret"] is False


@pytest.mark.parametrize("kw, words", [
    (dict(packages=["-oAPT::x"]), r"packages\[0\]"),
    (dict(packages=["zfs", "zfs"]), r"packages\[1\]: 'zfs' is listed twice"),
    (dict(kernel_modules=["../zfs"]), r"kernel_modules\[0\]"),
    (dict(directories=[{"path": "etc/smc"}]), r"directories\[0\]\.path: 'etc/smc' is not an absolute"),
    (dict(directories=[{"path": "/etc/../root"}]), r"normalized path '/root'"),
    (dict(directories=[{"path": "/etc/smc", "mode": "u+x"}]), r"directories\[0\]\.mode"),
    (dict(files=[{"path": "/etc/a\nb", "content": ""}]), r"files\[0\]\.path: .* newline"),
    (dict(files=[{"path": "/etc/a", "content": None}]), r"files\[0\]\.content"),
    (dict(files=[{"path": "/etc/a", "content": ""}], blocks=[{"path": "/etc/a"}]), "listed twice"),
    (dict(blocks=[{"path": "/etc/hosts", "marker": "# smc"}]), r"blocks\[0\]\.marker"),
    (dict(blocks=[{"path": "/etc/hosts", "remove_lines": ["("]}]), r"remove_lines\[0\]: '\(' is not a regular"),
    (dict(blocks=[{"path": "/etc/hosts", "remove_lines": [".*"]}]), "matches an empty line"),
    (dict(module_parameters=[{"module": "zfs", "values": {"a b": 1}}]), "parameter: 'a b'"),
    (dict(module_parameters=[{"module": "zfs", "values": {"x": "1\n2"}}]), r"values\.x"),
    (dict(module_parameters=[{"module": "zfs", "memory_percent": {"x": 101}}]), r"memory_percent\.x"),
    (dict(module_parameters=[{"module": "zfs", "values": {"x": 1}, "memory_percent": {"x": 1}}]), "in both"),
    (dict(module_parameters=[{"module": "zfs", "conf": "zfs.conf"}]), r"module_parameters\[0\]\.conf"),
    (dict(units=[{"name": "--now"}]), r"units\[0\]\.name"),
    (dict(units=[{"name": "a.service", "state": "running"}]), r"units\[0\]\.state"),
    (dict(units=[{"name": "a.service", "restart_on_change": ["/etc/a"]}]), r"restart_on_change\[0\]"),
])
def test_bad_input_names_the_option(kw, words):
    with pytest.raises(ss.StateError, match=words):
        spec(**kw)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ss.StateError) as err:
        spec(packages=["Bad"], kernel_modules=["-x"], units=[{"name": ".x"}])
    assert str(err.value).count(";") == 2


HOSTILE = st.one_of(
    st.text(min_size=1, max_size=20).map(lambda s: "-" + s),
    st.text(min_size=0, max_size=20).map(lambda s: s + "\n"),
    st.text(min_size=0, max_size=10).map(lambda s: s + "/../" + s),
    st.text(min_size=0, max_size=10).map(lambda s: "a/" + s),
    st.sampled_from(["..", ".", "", "a b", "a\rb", "a\0b"]),
)


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_hostile_names_are_refused_everywhere(name):
    for kw in (dict(packages=[name]), dict(kernel_modules=[name]), dict(units=[{"name": name}]),
               dict(module_parameters=[{"module": name}]), dict(module_parameters=[{"module": "zfs", "values": {name: 1}}])):
        with pytest.raises(ss.StateError):
            spec(**kw)


HOSTILE_PATHS = st.one_of(
    st.text(max_size=20).filter(lambda s: not s.startswith("/")),
    st.text(max_size=10).map(lambda s: "/etc/" + s + "\n"),
    st.text(max_size=10).map(lambda s: "/etc/" + s + "/../x"),
    st.text(max_size=10).map(lambda s: "/etc//" + s),
    st.text(max_size=10).map(lambda s: "/etc/" + s + "/"),
)


@settings(max_examples=300, deadline=None)
@given(HOSTILE_PATHS)
def test_hostile_paths_are_refused(path):
    for kw in (dict(files=[{"path": path, "content": ""}]), dict(directories=[{"path": path}]),
               dict(blocks=[{"path": path}]), dict(module_parameters=[{"module": "zfs", "conf": path}])):
        with pytest.raises(ss.StateError):
            spec(**kw)


# ----------------------------------------------------------------------------------------------- reads
def test_installed_packages_from_dpkg_status():
    got = ss.installed_packages(STATUS)
    assert {"zfsutils-linux", "zfsutils-linux:amd64", "lz4"} <= got
    assert "mbuffer" not in got and "tinc" not in got


def test_memory_bytes():
    assert ss.memory_bytes("MemTotal:        1000448 kB\nMemFree: 1 kB\n") == 1000448 * 1024
    with pytest.raises(ss.StateError, match="MemTotal"):
        ss.memory_bytes("MemFree: 1 kB\n")


def test_parse_units_keeps_the_order_asked():
    text = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\nUnitFileState=\nLoadState=not-found\nActiveState=inactive\n"
    got = ss.parse_units(text, ["tinc", "tinc@smc"])
    assert ss.unit_enabled(got["tinc"]) and ss.unit_active(got["tinc"])
    assert got["tinc@smc"]["LoadState"] == "not-found" and not ss.unit_active(got["tinc@smc"])
    with pytest.raises(ss.StateError, match="answered for 2 units instead of 3"):
        ss.parse_units(text, ["a", "b", "c"])


def test_show_units_runs_one_command():
    calls = []

    def run(argv):
        calls.append(argv)
        return "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n"
    assert ss.show_units(run, ["x.timer"])["x.timer"]["ActiveState"] == "active"
    assert calls == [["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--", "x.timer"]]
    assert ss.show_units(run, []) == {} and len(calls) == 1


# ---------------------------------------------------------------------------------------------- blocks
HOSTS = "127.0.0.1 localhost\n127.0.1.1 dc1-s1\n::1 ip6-localhost\n"
MARK = "# {mark} smc.backend storage hosts"
OWN = [re.compile(r"127\.0\.1\.1\s+dc1\-s1\s*")]


def test_block_appended_and_own_name_line_dropped():
    out = ss.render_block(HOSTS, MARK, "10.77.0.11 dc1-s1\n10.77.0.12 dc1-s2\n", OWN)
    assert out == ("127.0.0.1 localhost\n::1 ip6-localhost\n# BEGIN smc.backend storage hosts\n"
                   "10.77.0.11 dc1-s1\n10.77.0.12 dc1-s2\n# END smc.backend storage hosts\n")
    assert ss.render_block(out, MARK, "10.77.0.11 dc1-s1\n10.77.0.12 dc1-s2\n", OWN) == out


def test_block_replaced_in_place_and_removed_when_empty():
    text = "a\n# BEGIN smc.backend storage hosts\nold\n# END smc.backend storage hosts\nz\n"
    assert ss.render_block(text, MARK, "new") == "a\n# BEGIN smc.backend storage hosts\nnew\n# END smc.backend storage hosts\nz\n"
    assert ss.render_block(text, MARK, "") == "a\nz\n"


def test_block_after_a_last_line_without_newline_and_in_a_new_file():
    assert ss.render_block("a", MARK, "b\n") == "a\n# BEGIN smc.backend storage hosts\nb\n# END smc.backend storage hosts\n"
    assert ss.render_block(None, MARK, "b") == "# BEGIN smc.backend storage hosts\nb\n# END smc.backend storage hosts\n"


def test_lines_only_partly_matching_are_kept():
    text = "127.0.1.1 dc1-s1 extra\n127.0.1.1 dc1-s10\n"
    assert ss.render_block(text, MARK, "", OWN) == text


# ---------------------------------------------------------------------------------- files, directories
def test_plan_texts_on_a_temporary_host(tmp_path):
    same, other, hosts = tmp_path / "same", tmp_path / "other", tmp_path / "hosts"
    same.write_text("zfs\n")
    os.chmod(same, 0o644)
    other.write_text("old\n")
    os.chmod(other, 0o600)
    hosts.write_text(HOSTS)
    s = spec(files=[{"path": str(same), "content": "zfs\n"}, {"path": str(other), "content": "old\n"},
                    {"path": str(tmp_path / "new"), "content": "n\n", "mode": "0755"}],
             blocks=[{"path": str(hosts), "marker": MARK, "block": "10.0.0.1 a\n"}])
    plan = {t["path"]: t for t in ss.plan_texts(s["files"], s["blocks"])}
    assert set(plan) == {str(other), str(tmp_path / "new"), str(hosts)}
    assert plan[str(other)]["before"] == plan[str(other)]["after"] and plan[str(other)]["mode_before"] == 0o600
    assert plan[str(tmp_path / "new")]["before"] is None and plan[str(tmp_path / "new")]["mode"] == 0o755
    assert plan[str(hosts)]["after"].endswith("10.0.0.1 a\n# END smc.backend storage hosts\n")


def test_plan_texts_refuses_a_directory_or_a_missing_block_file(tmp_path):
    s = spec(files=[{"path": str(tmp_path), "content": ""}])
    with pytest.raises(ss.StateError, match="is a directory"):
        ss.plan_texts(s["files"], [])
    s = spec(blocks=[{"path": str(tmp_path / "nope")}])
    with pytest.raises(ss.StateError, match="create: true"):
        ss.plan_texts([], s["blocks"])


def test_non_utf8_file_is_left_alone(tmp_path):
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    s = spec(files=[{"path": str(tmp_path / "bin"), "content": ""}])
    with pytest.raises(ss.StateError, match="not UTF-8"):
        ss.plan_texts(s["files"], [])


def test_plan_directories(tmp_path):
    (tmp_path / "ok").mkdir(mode=0o755)
    os.chmod(tmp_path / "ok", 0o755)
    (tmp_path / "loose").mkdir()
    os.chmod(tmp_path / "loose", 0o777)
    (tmp_path / "file").write_text("")
    dirs = spec(directories=[{"path": str(tmp_path / n)} for n in ("ok", "loose", "a/b")])["directories"]
    assert ss.plan_directories(dirs, [str(tmp_path / "a/b/f")]) == [
        (str(tmp_path / "loose"), 0o755, True), (str(tmp_path / "a/b"), 0o755, False)]
    with pytest.raises(ss.StateError, match="not a directory"):
        ss.plan_directories(spec(directories=[{"path": str(tmp_path / "file")}])["directories"], [])
    with pytest.raises(ss.StateError, match="list it under directories"):
        ss.plan_directories([], [str(tmp_path / "missing/f")])


# ------------------------------------------------------------------------------- modules and parameters
@pytest.fixture(name="sysmod")
def fixture_sysmod(tmp_path):
    params = tmp_path / "zfs" / "parameters"
    params.mkdir(parents=True)
    (params / "zfs_arc_max").write_text("0\n")
    return tmp_path


def test_kernel_modules_not_loaded(sysmod):
    assert ss.plan_kernel_modules(["zfs", "nf-conntrack"], str(sysmod)) == ["nf-conntrack"]


def test_parameter_conf_and_runtime(sysmod):
    mp = spec(module_parameters=[{"module": "zfs", "memory_percent": {"zfs_arc_max": 25}, "conf": "/etc/modprobe.d/zfs.conf",
                                  "comment": "ARC"}])["module_parameters"]
    mem = 1024 ** 3
    assert ss.module_parameter_texts(mp, mem) == [dict(path="/etc/modprobe.d/zfs.conf", mode=0o644, secret=False,
                                                       content="# ARC\noptions zfs zfs_arc_max=268435456\n")]
    path = str(sysmod / "zfs/parameters/zfs_arc_max")
    assert ss.plan_runtime_parameters(mp, mem, str(sysmod)) == [("zfs", "zfs_arc_max", "0", "268435456", path)]
    (sysmod / "zfs/parameters/zfs_arc_max").write_text("268435456\n")
    assert ss.plan_runtime_parameters(mp, mem, str(sysmod)) == []


def test_parameter_of_a_module_not_loaded(sysmod):
    mp = spec(module_parameters=[{"module": "spl", "values": {"x": 1}}])["module_parameters"]
    with pytest.raises(ss.StateError, match="spl is not loaded"):
        ss.plan_runtime_parameters(mp, None, str(sysmod))
    mp = spec(kernel_modules=["spl"], module_parameters=[{"module": "spl", "values": {"x": 1}}])["module_parameters"]
    assert ss.plan_runtime_parameters(mp, None, str(sysmod))[0][2] is None
    mp = spec(module_parameters=[{"module": "zfs", "values": {"nope": 1}}])["module_parameters"]
    with pytest.raises(ss.StateError, match="no parameter nope"):
        ss.plan_runtime_parameters(mp, None, str(sysmod))


# ----------------------------------------------------------------------------------------------- units
def state(load="loaded", active="inactive", file_state="disabled"):
    return {"LoadState": load, "ActiveState": active, "UnitFileState": file_state}


def test_units_planned_from_their_state():
    units = spec(units=[{"name": "on.timer", "enabled": True, "state": "started"},
                        {"name": "off.timer", "enabled": False, "state": "stopped"},
                        {"name": "gone.timer", "enabled": False, "state": "stopped"},
                        {"name": "zfs-zed", "restart": True},
                        {"name": "done.timer", "enabled": True, "state": "started"}])["units"]
    got = ss.plan_units(units, {"on.timer": state(), "off.timer": state(active="active", file_state="enabled"),
                                "gone.timer": state(load="not-found", file_state=""),
                                "zfs-zed": state(active="active", file_state="enabled"),
                                "done.timer": state(active="active", file_state="enabled")})
    assert got == {"on.timer": ["enable", "start"], "off.timer": ["disable", "stop"], "zfs-zed": ["restart"]}


def test_restart_on_change_only_when_the_file_changed():
    units = spec(files=[{"path": "/etc/a.conf", "content": ""}],
                 units=[{"name": "a.service", "restart_on_change": ["/etc/a.conf"]}])["units"]
    running = {"a.service": state(active="active", file_state="enabled")}
    assert ss.plan_units(units, running, []) == {}
    assert ss.plan_units(units, running, ["/etc/a.conf"]) == {"a.service": ["restart"]}


def test_reload_on_change_reloads_a_running_unit_unless_a_restart_is_due():
    units = spec(files=[{"path": "/etc/a.py", "content": ""}, {"path": "/etc/a.conf", "content": ""}],
                 units=[{"name": "a.service", "reload_on_change": ["/etc/a.py"], "restart_on_change": ["/etc/a.conf"]}]
                 )["units"]
    running = {"a.service": state(active="active", file_state="enabled")}
    assert ss.plan_units(units, running, []) == {}
    assert ss.plan_units(units, running, ["/etc/a.py"]) == {"a.service": ["reload"]}
    assert ss.plan_units(units, running, ["/etc/a.py", "/etc/a.conf"]) == {"a.service": ["restart"]}
    stopped = {"a.service": state(active="inactive", file_state="enabled")}
    assert ss.plan_units(units, stopped, ["/etc/a.py"]) == {}  # (no state asked: nothing to reload)
    with pytest.raises(ss.StateError, match=r"units\[0\].reload_on_change\[0\]: '/etc/b' is not a path"):
        spec(units=[{"name": "a.service", "reload_on_change": ["/etc/b"]}])


def test_units_that_cannot_be_started_stop_the_call():
    units = spec(units=[{"name": "x.timer", "enabled": True}])["units"]
    with pytest.raises(ss.StateError, match="x.timer is not installed"):
        ss.plan_units(units, {"x.timer": state(load="not-found", file_state="")})
    with pytest.raises(ss.StateError, match="x.timer is masked"):
        ss.plan_units(units, {"x.timer": state(load="masked", file_state="masked")})
    assert ss.plan_units(units, {"x.timer": state(load="not-found")}, ["/etc/systemd/system/x.timer"]) == {
        "x.timer": ["enable"]}
    assert ss.plan_units(units, {"x.timer": state(load="not-found")}, packages_pending=True) == {"x.timer": ["enable"]}


def test_daemon_reload_only_for_unit_files():
    assert ss.needs_daemon_reload(["/etc/hosts", "/etc/systemd/system/a.timer"])
    assert not ss.needs_daemon_reload(["/etc/hosts", "/etc/systemd/system.conf"])
