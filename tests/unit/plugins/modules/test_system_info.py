"""smc.backend.system_info: what the tinc role reads in one call (packages, units, its manifest); refusals."""
import contextlib
import io
import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.smc.backend.plugins.modules import system_info

SHOW = ("LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n"
        "LoadState=loaded\nActiveState=reloading\nUnitFileState=enabled\n")


@pytest.fixture(name="calls")
def fixture_calls(tmp_path, monkeypatch):
    (tmp_path / "status").write_text("Package: tinc\nStatus: install ok installed\n\nPackage: openssl\n"
                                     "Status: deinstall ok config-files\n")
    monkeypatch.setattr(system_info, "DPKG_STATUS", str(tmp_path / "status"))
    calls = []

    def fake(_self, args, **_kw):
        calls.append(args)
        return 0, SHOW, ""
    monkeypatch.setattr(AnsibleModule, "run_command", fake)
    return calls


def run(check=False, **args):
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=check)), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            system_info.main()
    return json.loads(out.getvalue())


def test_reads_packages_units_and_files_in_one_command(calls, tmp_path):
    manifest = tmp_path / ".smc-managed"
    manifest.write_text('{"members": {}}\n')
    res = run(check=True, packages=["tinc", "openssl"], units=["tinc", "tinc@smc"],
              files=[str(manifest), str(tmp_path / "missing")])
    assert not res["changed"] and res["missing_packages"] == ["openssl"]
    assert res["units"]["tinc"] == {"load_state": "loaded", "active_state": "active", "unit_file_state": "enabled",
                                    "enabled": True, "active": True}
    assert res["units"]["tinc@smc"]["active"] is True
    assert res["files"] == {str(manifest): '{"members": {}}\n', str(tmp_path / "missing"): None}
    assert calls == [["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--", "tinc", "tinc@smc"]]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=15).map(lambda s: "-" + s), st.text(max_size=15).map(lambda s: s + "\n"),
                 st.text(max_size=8).map(lambda s: s + "/../" + s), st.sampled_from(["", "..", "a/b"])))
def test_hostile_names_and_paths_are_refused(name):
    tries = [dict(packages=[name]), dict(units=[name]), dict(files=[name])]
    if "\n" in name or "/../" in name:
        tries.append(dict(files=["/etc/" + name]))
    for args in tries:
        res = run(**args)
        assert res["failed"], args
