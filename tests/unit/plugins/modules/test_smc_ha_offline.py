"""Promotion without etcd's quorum (roles/zfs_storage/files/smc_ha.py; playbooks/failover.yml's offline path):
the request is refused while etcd answers and on hostile input, the record is written before any copy turns
writable, the HA loop's fence and the sender honour it, and when etcd (a real member on 127.0.0.1) returns the
loop declares the dead hosts and swaps the recorded primary in, or yields to etcd when it moved the project."""
import json
import subprocess

import pytest

from etcd_local import LocalEtcd  # pylint: disable=import-error
from test_smc_ha import smc_ha  # pylint: disable=import-error
from test_smc_ha_failover import leased  # pylint: disable=import-error

PREFIX = "/smc/"
DS = "tank/projects/p"
CLOSED = "http://127.0.0.1:9"  # nothing listens: etcd unreachable (no quorum, as far as this host can tell)


@pytest.fixture(name="etcd")
def fixture_etcd(tmp_path):
    server = LocalEtcd(tmp_path / "etcd").start()
    yield server
    server.stop()


def cfg_for(tmp_path, url=CLOSED, me="b"):
    plan = {"format": 1, "host": me, "hosts": ["a", "b", "c"], "addresses": ["10.88.0.1", "10.88.0.2", "10.88.0.3"],
            "projects": {"p": {"ring": [0, 1, 2], "primary": 0, "epoch": 3},
                         "r": {"ring": [0, 1, 2], "primary": 1, "epoch": 2}}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return {"roots": ["tank/projects"], "replication": {"plan": str(tmp_path / "plan.json")},
            "ha": {"enabled": True, "endpoints": [url], "state": str(tmp_path / "run" / "state.json"),
                   "offline": str(tmp_path / "lib" / "offline.json"), "prefix": PREFIX}}


MOVE = {"project": "p", "from": "a", "to": "b", "epoch": 4, "newest": "smc_1"}


def copy(role="replica", epoch=3):
    return {"snapshots": [{"name": "smc_1", "guid": 7, "creation": 100, "txg": 5}], "bookmarks": [],
            "epoch": epoch, "written": 0, "resume_token": None, "readonly": True, "role": role}


@pytest.fixture(name="zfs")
def fixture_zfs(monkeypatch):
    """The zfs side of smc_replication, recorded: listing finds DS; make_primary and sync_limits are noted."""
    calls = []
    monkeypatch.setattr(smc_ha.repl, "listing", lambda root, names=None: {DS: copy()} if DS in (names or [DS]) else {})
    monkeypatch.setattr(smc_ha.repl, "make_primary", lambda ds, epoch: calls.append(("make_primary", ds, epoch)))
    monkeypatch.setattr(smc_ha.repl, "sync_limits", lambda cfg, report=None: calls.append(("sync_limits",)))
    return calls


@pytest.mark.parametrize("moves, dead, confirm, match", [
    ([MOVE], ["a"], [], "confirm_dead must name every host"),
    ([MOVE], [], [], "name the hosts declared dead"),
    ([MOVE], ["b"], ["b"], "this host .b. is among the hosts declared dead"),
    ([dict(MOVE, project="../x")], ["a"], ["a"], r"moves\[0\].project"),
    ([dict(MOVE, project="-x")], ["a"], ["a"], r"moves\[0\].project"),
    ([dict(MOVE, project="p\n")], ["a"], ["a"], r"moves\[0\].project"),
    ([dict(MOVE, project="a/b")], ["a"], ["a"], r"moves\[0\].project"),
    ([dict(MOVE, to="a")], ["a"], ["a"], r"moves\[0\].to: a is declared dead"),
    ([dict(MOVE, to="-b")], ["a"], ["a"], r"moves\[0\].to"),
    ([dict(MOVE, epoch=True)], ["a"], ["a"], r"moves\[0\].epoch"),
    ([dict(MOVE, epoch=0)], ["a"], ["a"], r"moves\[0\].epoch"),
    ({"p": MOVE}, ["a"], ["a"], "moves must be a list"),
])
def test_bad_requests_change_nothing(tmp_path, zfs, moves, dead, confirm, match):
    cfg = cfg_for(tmp_path)
    with pytest.raises(smc_ha.HaError, match=match) as err:
        smc_ha.cmd_ha_promote_offline(cfg, moves, dead, confirm)
    assert "Nothing was changed" in str(err.value)
    assert zfs == [] and not (tmp_path / "lib" / "offline.json").exists()


def test_refused_while_etcd_answers_here(tmp_path, etcd, zfs):
    with pytest.raises(smc_ha.HaError, match="etcd answers from b"):
        smc_ha.cmd_ha_promote_offline(cfg_for(tmp_path, etcd.url), [MOVE], ["a"], ["a"])
    assert zfs == [] and not (tmp_path / "lib" / "offline.json").exists()


def test_check_validates_and_writes_nothing(tmp_path, zfs):
    report = smc_ha.cmd_ha_promote_offline(cfg_for(tmp_path), [MOVE], ["a"], ["a"], check=True)
    assert report["promoted"] == [{"project": "p", "epoch": 4, "over": "a"}] and report["check"]
    assert zfs == [] and not (tmp_path / "lib" / "offline.json").exists()


def test_the_record_is_durable_before_the_copy_turns_writable(tmp_path, zfs, monkeypatch):
    cfg = cfg_for(tmp_path)
    seen = []
    record = tmp_path / "lib" / "offline.json"
    monkeypatch.setattr(smc_ha.repl, "make_primary",
                        lambda ds, epoch: seen.append((ds, epoch, json.loads(record.read_text()))))
    report = smc_ha.cmd_ha_promote_offline(cfg, [MOVE], ["a"], ["a"])
    assert report["promoted"] == [{"project": "p", "epoch": 4, "over": "a"}]
    assert seen[0][:2] == (DS, 4) and seen[0][2]["promotions"]["p"]["host"] == "b" and seen[0][2]["dead"] == ["a"]


def test_a_host_not_named_records_the_decision_and_promotes_nothing(tmp_path, zfs):
    report = smc_ha.cmd_ha_promote_offline(cfg_for(tmp_path, me="c"), [MOVE], ["a"], ["a"])
    assert report["promoted"] == [] and zfs == []
    assert json.loads((tmp_path / "lib" / "offline.json").read_text())["promotions"]["p"]["host"] == "b"


def test_the_sender_acts_as_the_recorded_primary_and_leaves_the_dead_out(tmp_path, zfs):
    cfg = cfg_for(tmp_path)
    smc_ha.cmd_ha_promote_offline(cfg, [MOVE], ["a"], ["a"])
    ha = smc_ha.ha_config(cfg)
    plan = smc_ha.overlay(json.loads((tmp_path / "plan.json").read_text()), ha)
    assert plan["projects"]["p"]["primary"] == 1 and plan["projects"]["p"]["epoch"] == 4
    assert plan["ha_offline"] == ["p"] and plan["ha_down"] == ["a"] and plan["ha_fresh"] is False
    # on another host the record names nobody it serves: nothing is primary there
    other = smc_ha.overlay(dict(json.loads((tmp_path / "plan.json").read_text()), host="c"), ha)
    assert other["ha_offline"] == [] and other["projects"]["p"]["primary"] != 2


def test_the_fence_leaves_an_offline_promotion_writable(tmp_path, zfs, monkeypatch):
    cfg = cfg_for(tmp_path)
    smc_ha.cmd_ha_promote_offline(cfg, [MOVE], ["a"], ["a"])
    ran = []

    def run(args, check=True):
        ran.append(args)
        out = "tank/projects\toff\n%s\toff\ntank/projects/q\toff\ntank/projects/r\toff\n" % DS \
            if args[:2] == ["zfs", "list"] else ""
        return subprocess.CompletedProcess(args, 0, out, "")
    monkeypatch.setattr(smc_ha.repl, "run", run)
    loop = smc_ha.Loop(cfg, smc_ha.ha_config(cfg), None, None, out=open(tmp_path / "log", "w", encoding="utf-8"))
    loop.primaries = {"p": 4, "r": 2}
    loop.fence("test", processes=False)
    fenced = [a[-1] for a in ran if a[:2] == ["zfs", "set"]]
    assert fenced == ["tank/projects/r", "tank/projects/r"]  # etcd's list first, then the listing's; never p
    # (q, outside the plan, is not touched either)
    assert "kept_offline" in (tmp_path / "log").read_text()


def etcd_with_a_dead_primary(etcd):
    """b and c hold leases; a (gone, no lease) is still named primary of p at epoch 3."""
    client, leases = leased(etcd, ("b", "c"))
    client.put(PREFIX + "primary/p", json.dumps({"host": "a", "epoch": 3, "lease": 12345}))
    return client, leases


def reconcile_once(loop, client):
    kvs, _rev = client.range(PREFIX)
    state = smc_ha.failover.parse_state(kvs, PREFIX)
    return loop.reconcile(loop.plan(), state, {"p": DS}, {DS: {"readonly": False, "role": "primary", "epoch": 4}})


def test_etcd_back_the_loop_declares_the_dead_and_swaps_the_recorded_primary_in(tmp_path, etcd, zfs):
    cfg = cfg_for(tmp_path)
    smc_ha.write_record(smc_ha.ha_config(cfg), smc_ha.failover.merge_record(None, [MOVE], ["a"], 1.0))
    cfg["ha"]["endpoints"] = [etcd.url]
    client, leases = etcd_with_a_dead_primary(etcd)
    ha = smc_ha.ha_config(cfg)
    loop = smc_ha.Loop(cfg, ha, client, client, out=open(tmp_path / "log", "w", encoding="utf-8"))
    assert reconcile_once(loop, client) == {"p"}  # swapped, still held until the loop reads it back
    kvs, _rev = client.range(PREFIX)
    primary = json.loads(kvs[PREFIX + "primary/p"][0])
    assert primary == {"host": "b", "epoch": 4, "over": "a", "lease": leases["b"], "offline": True}
    assert PREFIX + "dead/a" in kvs and PREFIX + "window/a" in kvs
    assert json.loads((tmp_path / "lib" / "offline.json").read_text())["dead"] == []
    # the next pass sees etcd name b at epoch 4: the record is done and gone, its history kept
    assert reconcile_once(loop, client) == set()
    assert not (tmp_path / "lib" / "offline.json").exists()
    history = [json.loads(line) for line in (tmp_path / "lib" / "offline.json.history").read_text().splitlines()]
    assert [(h["project"], h["result"], h["now"], h["now_epoch"]) for h in history] == [("p", "done", "b", 4)]


def test_etcd_moved_the_project_meanwhile_etcd_wins_and_the_recorded_copy_is_demoted(
        tmp_path, etcd, zfs, monkeypatch):
    cfg = cfg_for(tmp_path)
    smc_ha.write_record(smc_ha.ha_config(cfg), smc_ha.failover.merge_record(None, [MOVE], ["a"], 1.0))
    cfg["ha"]["endpoints"] = [etcd.url]
    client, leases = etcd_with_a_dead_primary(etcd)
    client.put(PREFIX + "primary/p", json.dumps({"host": "c", "epoch": 4, "lease": leases["c"]}))
    loop = smc_ha.Loop(cfg, smc_ha.ha_config(cfg), client, client, out=open(tmp_path / "log", "w", encoding="utf-8"))
    demoted = []
    monkeypatch.setattr(loop, "_demote", lambda datasets, state: demoted.append(datasets))
    assert reconcile_once(loop, client) == set()
    assert demoted == [[DS]]
    kvs, _rev = client.range(PREFIX)
    assert json.loads(kvs[PREFIX + "primary/p"][0])["host"] == "c"  # etcd's choice stands
    assert "offline-overruled" in (tmp_path / "log").read_text()


def test_the_survey_reports_each_copy_and_the_last_view_kept_by_a_fence(tmp_path, zfs):
    cfg = cfg_for(tmp_path)
    ha = smc_ha.ha_config(cfg)
    smc_ha.write_state(ha["state"] + ".last", {"primary": {"p": {"host": "a", "epoch": 3}}})
    report = smc_ha.cmd_ha_survey(cfg)
    assert report["etcd"] == "unavailable" and report["host"] == "b"
    assert report["projects"]["p"] == {"newest": {"name": "smc_1", "guid": 7, "creation": 100}, "epoch": 3,
                                       "role": "replica", "readonly": True, "copies": ["a", "b", "c"],
                                       "known": {"host": "a", "epoch": 3}}


def test_a_host_another_loop_declared_leaves_the_record(tmp_path, etcd, zfs):
    cfg = cfg_for(tmp_path)
    smc_ha.write_record(smc_ha.ha_config(cfg), smc_ha.failover.merge_record(None, [], ["a"], 1.0))
    cfg["ha"]["endpoints"] = [etcd.url]
    client, _leases = leased(etcd, ("b",))
    client.put(PREFIX + "dead/a", "{}")
    loop = smc_ha.Loop(cfg, smc_ha.ha_config(cfg), client, client, out=open(tmp_path / "log", "w", encoding="utf-8"))
    assert reconcile_once(loop, client) == set()
    assert not (tmp_path / "lib" / "offline.json").exists()
