"""Zedlet link layout: quiet (per-class syslog) and packaged, and what is never touched."""
import pytest

from ansible_collections.smc.backend.plugins.module_utils.zedlets import ZedletError, plan, wanted_links

SRC = "/usr/lib/zfs-linux/zed.d"
PACKAGED = {"all-syslog.sh": SRC + "/all-syslog.sh", "history_event-zfs-list-cacher.sh":
            SRC + "/history_event-zfs-list-cacher.sh", "statechange-notify.sh": SRC + "/statechange-notify.sh",
            "zed.rc": None, "zed-functions.sh": None}


def test_quiet_layout_from_the_packaged_one():
    create, remove = plan(PACKAGED, SRC, True, ["statechange", "scrub_finish"])
    assert create == {"statechange-syslog.sh": SRC + "/all-syslog.sh", "scrub_finish-syslog.sh": SRC + "/all-syslog.sh"}
    assert remove == ["all-syslog.sh", "history_event-zfs-list-cacher.sh"]


def test_quiet_layout_applied_is_stable():
    state = {k: v for k, v in PACKAGED.items() if k not in ("all-syslog.sh", "history_event-zfs-list-cacher.sh")}
    state.update(wanted_links(SRC, True, ["statechange"]))
    assert plan(state, SRC, True, ["statechange"]) == ({}, [])


def test_dropping_a_class_removes_only_its_link():
    state = dict(wanted_links(SRC, True, ["statechange", "io"]), **{"io-custom.sh": "/opt/x", "mine-syslog.sh": "/opt/y"})
    create, remove = plan(state, SRC, True, ["statechange"])
    assert create == {} and remove == ["io-syslog.sh"]


def test_packaged_layout_restores_links_and_drops_class_links():
    state = wanted_links(SRC, True, ["statechange"])
    create, remove = plan(state, SRC, False, ["statechange"])
    assert create == {"all-syslog.sh": SRC + "/all-syslog.sh",
                      "history_event-zfs-list-cacher.sh": SRC + "/history_event-zfs-list-cacher.sh"}
    assert remove == ["statechange-syslog.sh"]


def test_a_link_pointing_elsewhere_is_repointed():
    create, _remove = plan({"io-syslog.sh": "/old/all-syslog.sh"}, SRC, True, ["io"])
    assert create == {"io-syslog.sh": SRC + "/all-syslog.sh"}


@pytest.mark.parametrize("state, quiet, words", [
    ({"all-syslog.sh": None}, True, "all-syslog.sh is a regular file"),
    ({"io-syslog.sh": None}, True, "io-syslog.sh is a regular file where the link"),
    ({"all-syslog.sh": None}, False, "all-syslog.sh is a regular file where the link"),
])
def test_regular_files_are_never_replaced(state, quiet, words):
    with pytest.raises(ZedletError, match=words):
        plan(state, SRC, quiet, ["io"])


@pytest.mark.parametrize("bad", ["history_event", "all", "Bad", "x/y", "", 3])
def test_bad_class_names_name_the_field(bad):
    with pytest.raises(ZedletError, match=r"syslog_classes\[1\]"):
        wanted_links(SRC, True, ["io", bad])
