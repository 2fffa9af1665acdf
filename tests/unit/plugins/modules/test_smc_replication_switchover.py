"""A switchover in etcd (roles/zfs_storage/files/smc_ha.py announce_switchover, take_over, withdraw_switchover;
smc_replication.py cmd_unfence), against a real member on 127.0.0.1: the old primary's fence announces the
switchover, the promotion is a CAS from that announcement only, and a rollback withdraws it, so a promotion
that arrives late fails. The fenced old primary turns writable again only while etcd still names it primary at
its own epoch under a fresh lease, or, without HA, while the plan does; anything else changes nothing."""
import json
import types

import pytest

from etcd_local import LocalEtcd  # pylint: disable=import-error
from test_smc_ha import smc_ha  # pylint: disable=import-error

repl = smc_ha.repl
PREFIX = "/smc/"
DS = "tank/projects/p"


@pytest.fixture(name="etcd", scope="module")
def fixture_etcd(tmp_path_factory):
    server = LocalEtcd(tmp_path_factory.mktemp("etcd")).start()
    yield server
    server.stop()


def cfg_for(tmp_path, url=None, me="a", plan_primary=0, plan_epoch=3):
    plan = {"format": 1, "host": me, "hosts": ["a", "b", "c"], "addresses": ["10.88.0.1", "10.88.0.2", "10.88.0.3"],
            "projects": {"p": {"ring": [0, 1, 2], "primary": plan_primary, "epoch": plan_epoch}}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    cfg = {"roots": ["tank/projects"], "replication": {"plan": str(tmp_path / "plan.json")}}
    if url is not None:
        cfg["ha"] = {"enabled": True, "endpoints": [url], "state": str(tmp_path / "run" / "state.json"),
                     "prefix": PREFIX}
    return cfg


@pytest.fixture(name="zfs")
def fixture_zfs(monkeypatch):
    """DS at ``zfs.epoch`` (3), fenced by ``zfs.mark``; make_primary and sync_limits are noted, nothing else
    runs."""
    calls = []
    zfs = types.SimpleNamespace(calls=calls, mark="switchover", epoch=3)
    monkeypatch.setattr(repl, "listing", lambda root, names=None: {DS: {
        "snapshots": [{"name": "smc_1", "guid": 7, "creation": 100, "txg": 5}], "bookmarks": [], "epoch": zfs.epoch,
        "written": 0, "resume_token": None, "readonly": True, "role": "primary"}})
    monkeypatch.setattr(repl, "props", lambda ds, names: {"smc:fenced": zfs.mark})
    monkeypatch.setattr(repl, "make_primary", lambda ds, epoch: calls.append(("make_primary", ds, epoch)))
    monkeypatch.setattr(repl, "sync_limits", lambda cfg, report=None: calls.append(("sync_limits",)))
    return zfs


def etcd_names(etcd, host, epoch, **more):
    client = smc_ha.etcd_v3.Client([etcd.url])
    client.put(PREFIX + "primary/p", json.dumps(dict({"host": host, "epoch": epoch, "lease": 0}, **more)))


def etcd_primary(etcd):
    kvs, _rev = smc_ha.etcd_v3.Client([etcd.url]).range(PREFIX + "primary/p")
    return json.loads(kvs[PREFIX + "primary/p"][0])


def held_lease(cfg, me="a"):
    smc_ha.write_state(cfg["ha"]["state"], {"host": me, "lease": 42, "primary": {}})


def primary_a(tmp_path, etcd, epoch=3, **more):
    """Host a's config, with a fresh lease, while etcd names it primary of p at ``epoch`` (``more``: fields)."""
    cfg = cfg_for(tmp_path, etcd.url)
    held_lease(cfg)
    etcd_names(etcd, "a", epoch, **more)
    return cfg


def unfence(cfg, project="p"):
    report = {}
    repl.cmd_unfence(cfg, types.SimpleNamespace(project=project), report)
    return report


def test_announced_switchover_promotes_once_and_only_to_its_target(tmp_path, etcd):
    old, new = cfg_for(tmp_path / "a", etcd.url), cfg_for(tmp_path / "b", etcd.url, me="b")
    held_lease(old)
    held_lease(new, "b")
    etcd_names(etcd, "a", 3)
    with pytest.raises(smc_ha.HaError, match="no switchover to b at epoch 4 announced"):
        smc_ha.take_over(new, "p", "b", 4)
    assert smc_ha.announce_switchover(old, "p", "a", "b") == {"to": "b", "epoch": 4}
    assert smc_ha.announce_switchover(old, "p", "a", "b") == {"to": "b", "epoch": 4}  # a rerun: the same
    other = cfg_for(tmp_path / "c", etcd.url, me="c")
    with pytest.raises(smc_ha.HaError, match="holds no fresh lease"):
        smc_ha.take_over(other, "p", "c", 4)
    held_lease(other, "c")
    with pytest.raises(smc_ha.HaError, match="no switchover to c at epoch 4"):
        smc_ha.take_over(other, "p", "c", 4)
    assert smc_ha.take_over(new, "p", "b", 4) == "a"
    assert etcd_primary(etcd) == {"host": "b", "epoch": 4, "over": "a", "lease": 42}
    with pytest.raises(smc_ha.HaError, match="no switchover"):
        smc_ha.take_over(new, "p", "b", 4)  # once
    with pytest.raises(smc_ha.HaError, match="etcd has b at epoch 4 as primary of p, not this host .a."):
        smc_ha.announce_switchover(old, "p", "a", "c")


@pytest.mark.parametrize("to", ["a", "-b", "b\n", "../b", "", None])
def test_an_announcement_names_another_host(tmp_path, etcd, to):
    cfg = primary_a(tmp_path, etcd)
    with pytest.raises(smc_ha.HaError, match="to: .* is not another host's name"):
        smc_ha.announce_switchover(cfg, "p", "a", to)
    assert etcd_primary(etcd) == {"host": "a", "epoch": 3, "lease": 0}


# (copy's smc:epoch, etcd's): a project never moved since its seed has no smc:epoch on its copy (0) while
# etcd has epoch 1 (the lab's chaos case found this); the rollback makes it writable at etcd's epoch.
@pytest.mark.parametrize("mine, etcds", [(3, 3), (0, 1)])
def test_a_rollback_withdraws_the_announcement_and_a_late_promotion_fails(tmp_path, etcd, zfs, mine, etcds):
    zfs.epoch = mine
    cfg = primary_a(tmp_path, etcd, etcds, switching={"to": "b", "epoch": etcds + 1})
    assert unfence(cfg) == {"dataset": DS, "epoch": etcds, "unfenced": True}
    assert zfs.calls == [("make_primary", DS, etcds), ("sync_limits",)]
    assert etcd_primary(etcd) == {"host": "a", "epoch": etcds, "lease": 0}
    late = cfg_for(tmp_path / "b", etcd.url, me="b")
    held_lease(late, "b")
    with pytest.raises(smc_ha.HaError, match="no switchover to b at epoch %d announced" % (etcds + 1)):
        smc_ha.take_over(late, "p", "b", etcds + 1)
    assert etcd_primary(etcd)["host"] == "a"


@pytest.mark.parametrize("host, epoch, said", [
    ("b", 4, "etcd has b at epoch 4 as primary of p"),  # the promotion's CAS happened
    ("a", 2, "etcd has a at epoch 2"),  # (an earlier epoch than this copy's: not its own)
])
def test_a_promotion_that_reached_etcd_is_never_rolled_back(tmp_path, etcd, zfs, host, epoch, said):
    cfg = cfg_for(tmp_path, etcd.url)
    held_lease(cfg)
    etcd_names(etcd, host, epoch)
    with pytest.raises(smc_ha.HaError, match=said + ".*nothing changed"):
        unfence(cfg)
    assert zfs.calls == []


def test_without_a_fresh_lease_or_an_answer_from_etcd_nothing_changes(tmp_path, etcd, zfs):
    cfg = cfg_for(tmp_path, etcd.url)
    etcd_names(etcd, "a", 3)
    with pytest.raises(smc_ha.HaError, match="holds no fresh lease"):
        unfence(cfg)
    cfg = cfg_for(tmp_path, "http://127.0.0.1:9")  # nothing listens there
    held_lease(cfg)
    with pytest.raises(smc_ha.HaError, match="etcd did not answer.*whether the switchover happened is unknown"):
        unfence(cfg)
    assert zfs.calls == []


@pytest.mark.parametrize("mark, said", [("lease", "smc:fenced is lease"), ("-", "smc:fenced is unset")])
def test_only_a_switchover_fence_is_undone(tmp_path, etcd, zfs, mark, said):
    cfg = primary_a(tmp_path, etcd)
    zfs.mark = mark
    with pytest.raises(repl.ReplicationError, match="not fenced by a switchover .%s." % said):
        unfence(cfg)
    assert zfs.calls == []


@pytest.mark.parametrize("project", ["../p", "-p", "p\n", "a/b", ""])
def test_hostile_project_names_are_refused(tmp_path, zfs, project):
    with pytest.raises(repl.ReplicationError, match="is not a project id"):
        unfence(cfg_for(tmp_path), project)
    assert zfs.calls == []


def test_without_ha_the_plan_decides(tmp_path, zfs):
    assert unfence(cfg_for(tmp_path))["unfenced"] is True
    for primary, epoch, said in ((1, 4, "b at epoch 4"), (0, 2, "a at epoch 2")):
        zfs.calls.clear()
        with pytest.raises(repl.ReplicationError, match="does not name this host primary of p at epoch 3 or later "
                                                        ".%s." % said):
            unfence(cfg_for(tmp_path, plan_primary=primary, plan_epoch=epoch))
        assert zfs.calls == []


def test_with_ha_a_fence_without_its_target_changes_nothing(tmp_path, etcd, zfs, monkeypatch):
    ran = []
    monkeypatch.setattr(repl, "run", lambda argv, check=True: ran.append(argv))
    cfg = primary_a(tmp_path, etcd)
    with pytest.raises(repl.ReplicationError, match="fence needs --to HOST"):
        repl.cmd_fence(cfg, types.SimpleNamespace(project="p", to=None), {})
    assert ran == [] and etcd_primary(etcd) == {"host": "a", "epoch": 3, "lease": 0}


def test_without_ha_a_new_primary_that_did_not_answer_leaves_the_fence(tmp_path, zfs):
    report = {}
    with pytest.raises(repl.ReplicationError, match="the new primary did not answer: without HA nothing tells"):
        repl.cmd_unfence(cfg_for(tmp_path), types.SimpleNamespace(project="p", unanswered=True), report)
    assert zfs.calls == [] and report == {}


def test_an_announcement_of_another_epoch_is_not_withdrawn(tmp_path, etcd, zfs):
    cfg = primary_a(tmp_path, etcd, switching={"to": "b", "epoch": 7})
    with pytest.raises(smc_ha.HaError, match="nothing changed"):
        unfence(cfg)
    assert zfs.calls == [] and etcd_primary(etcd)["switching"] == {"to": "b", "epoch": 7}
