"""smc.backend.zedlets on a temporary zedlet directory: apply, idempotence, check mode, refusals."""
import contextlib
import io
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.smc.backend.plugins.modules import zedlets


@pytest.fixture
def zed(tmp_path):
    src, etc = tmp_path / "lib", tmp_path / "etc"
    src.mkdir()
    etc.mkdir()
    for name in ("all-syslog.sh", "history_event-zfs-list-cacher.sh", "statechange-notify.sh"):
        (src / name).write_text("#!/bin/sh\n")
        os.symlink(str(src / name), str(etc / name))
    (etc / "zed.rc").write_text("ZED_SYSLOG_SUBCLASS_EXCLUDE=history_event\n")
    return src, etc


def run(check=False, diff=False, **args):
    out = io.StringIO()
    extra = {"_ansible_check_mode": check, "_ansible_diff": diff}
    with patch_module_args(dict(args, **extra)), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            zedlets.main()
    return json.loads(out.getvalue())


def links(etc):
    return {n: os.readlink(str(etc / n)) for n in sorted(os.listdir(str(etc))) if os.path.islink(str(etc / n))}


def test_quiet_then_unchanged_then_packaged_again(zed):
    src, etc = zed
    args = dict(dir=str(etc), source=str(src), syslog_classes=["statechange", "io"])
    res = run(**args)
    assert res["changed"] and sorted(res["removed"]) == ["all-syslog.sh", "history_event-zfs-list-cacher.sh"]
    assert links(etc) == {"io-syslog.sh": str(src / "all-syslog.sh"),
                          "statechange-notify.sh": str(src / "statechange-notify.sh"),
                          "statechange-syslog.sh": str(src / "all-syslog.sh")}
    assert (etc / "zed.rc").exists()
    assert not run(**args)["changed"]
    back = run(quiet_history=False, **args)
    assert back["changed"] and sorted(back["removed"]) == ["io-syslog.sh", "statechange-syslog.sh"]
    assert set(links(etc)) == {"all-syslog.sh", "history_event-zfs-list-cacher.sh", "statechange-notify.sh"}


def test_check_mode_changes_nothing_and_diffs(zed):
    src, etc = zed
    before = links(etc)
    res = run(check=True, diff=True, dir=str(etc), source=str(src), syslog_classes=["io"])
    assert res["changed"] and links(etc) == before
    assert "all-syslog.sh ->" in res["diff"]["before"] and "io-syslog.sh ->" in res["diff"]["after"]


def test_a_regular_file_stops_the_task_before_any_change(zed):
    src, etc = zed
    os.unlink(str(etc / "all-syslog.sh"))
    (etc / "all-syslog.sh").write_text("#!/bin/sh\nlogger mine\n")
    before = links(etc)
    res = run(dir=str(etc), source=str(src), syslog_classes=["io"])
    assert res["failed"] and "regular file" in res["msg"] and "Nothing was changed" in res["msg"]
    assert links(etc) == before and (etc / "all-syslog.sh").read_text().endswith("mine\n")


@pytest.mark.parametrize("field, value, words", [
    ("source", "/nonexistent", "source: /nonexistent has no all-syslog.sh"),
    ("dir", "/nonexistent", "dir: /nonexistent is not a directory"),
    ("syslog_classes", ["io", "history_event"], r"syslog_classes[1]"),
])
def test_bad_options_name_the_field(zed, field, value, words):
    src, etc = zed
    args = dict(dir=str(etc), source=str(src), syslog_classes=["io"])
    args[field] = value
    res = run(**args)
    assert res["failed"] and words in res["msg"]
