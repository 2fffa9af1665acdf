"""tests/lab/etcd_lab.py: etcdctl goes through a member still on the lab's bridge."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
import etcd_lab  # noqa: E402  pylint: disable=import-error,wrong-import-position

MEMBERS = [{"name": "etcd-%s" % dc, "dc": dc, "netns": "smclab-etcd-%s" % dc, "veth": "ve-%s" % dc} for dc in
           ("dc1", "dc2", "dc3")]


@pytest.fixture(name="calls")
def fixture_calls(monkeypatch):
    """The commands etcd_lab would run, none of them run: no test touches the real lab's members."""
    calls = []
    monkeypatch.setattr(etcd_lab, "members", lambda: MEMBERS)
    monkeypatch.setattr(etcd_lab, "pid_of", lambda m: 100)
    monkeypatch.setattr(etcd_lab, "endpoints", lambda: ["https://10.77.0.20%d:2379" % i for i in (1, 2, 3)])
    monkeypatch.setattr(etcd_lab, "tls_args", lambda m: [])
    monkeypatch.setattr(etcd_lab, "sh", lambda *args: calls.append(list(args)))
    monkeypatch.setattr(etcd_lab, "CUT", set())
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(list(args)) or
                        subprocess.CompletedProcess(args, 0, "", ""))
    return calls


def test_etcdctl_runs_from_the_first_running_member(calls):
    etcd_lab.ctl("get", "k")
    assert calls[-1][:4] == ["ip", "netns", "exec", "smclab-etcd-dc1"]


def test_a_member_cut_off_the_bridge_is_not_the_way_to_the_others_until_its_link_is_back(calls):
    etcd_lab.link(etcd_lab.member("dc1"), "down")
    etcd_lab.ctl("get", "k")
    assert calls[-1][:4] == ["ip", "netns", "exec", "smclab-etcd-dc2"]
    etcd_lab.link(etcd_lab.member("dc1"), "up")
    etcd_lab.ctl("get", "k")
    assert calls[-1][:4] == ["ip", "netns", "exec", "smclab-etcd-dc1"]


def test_via_names_the_member_whatever_its_link(calls):
    etcd_lab.link(etcd_lab.member("dc3"), "down")
    etcd_lab.ctl("get", "k", via="dc3")
    assert calls[-1][:4] == ["ip", "netns", "exec", "smclab-etcd-dc3"]
