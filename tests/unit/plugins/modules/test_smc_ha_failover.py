"""smc-zfs-agent ha-failover (roles/zfs_storage/files/smc_ha.py), what playbooks/failover.yml runs, against a
real etcd on 127.0.0.1: nothing is written without a confirmation naming every host or in check mode; a
declaration writes the host's window (under a lease of the HA TTL) with it, revokes the host's own lease, and
follows the elections until no project is left on a declared host."""
import io
import json
import threading
import time

import pytest

from etcd_local import LocalEtcd  # pylint: disable=import-error
from test_smc_ha import smc_ha, etcd_v3  # pylint: disable=import-error

PREFIX = "/smc/"


@pytest.fixture()
def etcd(tmp_path):
    server = LocalEtcd(tmp_path / "etcd").start()
    yield server
    server.stop()


def cfg_for(tmp_path, etcd):
    return {"roots": ["tank/projects"], "replication": {"plan": str(tmp_path / "no-plan.json")},
            "ha": {"enabled": True, "endpoints": [etcd.url], "state": str(tmp_path / "ha" / "state.json"),
                   "prefix": PREFIX}}


def leased(etcd, hosts):
    """A client of ``etcd``, and {host: lease} of ``hosts``, each holding its host key under a 60 s lease."""
    client = etcd_v3.Client([etcd.url])
    leases = {}
    for host in hosts:
        leases[host] = client.grant(60)
        client.put(PREFIX + "hosts/" + host, "{}", lease=leases[host])
    return client, leases


def lab_state(etcd):
    """Hosts a and b hold leases; a is primary of p and q, b of r."""
    client, leases = leased(etcd, ("a", "b"))
    for pid, host in (("p", "a"), ("q", "a"), ("r", "b")):
        client.put(PREFIX + "primary/" + pid, json.dumps({"host": host, "epoch": 3, "lease": leases[host]}))
    return client, leases


def snapshot_of(client):
    kvs, _rev = client.range(PREFIX)
    return {k: v[0] for k, v in kvs.items()}


def test_check_mode_shows_the_moves_and_writes_nothing(tmp_path, etcd):
    client, leases = lab_state(etcd)
    before = snapshot_of(client)
    report = smc_ha.cmd_ha_failover(cfg_for(tmp_path, etcd), ["a"], [], check=True, out=io.StringIO())  # no confirmation needed
    assert report["moves"] == [{"project": "p", "host": "a", "epoch": 3}, {"project": "q", "host": "a", "epoch": 3}]
    assert report["declared"] == ["a"] and report["check"] is True
    assert snapshot_of(client) == before and client.keepalive(leases["a"]) > 0


@pytest.mark.parametrize("dead, confirm, revive, match", [
    (["a"], [], [], "confirm_dead must name every host declared dead \\(missing a\\)"),
    (["a", "b"], ["a"], [], "missing b"),
    (["a\nSubnet"], ["a\nSubnet"], [], "dead: 'a\\\\nSubnet' is not a host name"),
    (["-a"], ["-a"], [], "dead: '-a' is not a host name"),
    (["a"], ["a"], ["a"], "both declared dead and revived"),
    (["zz"], ["zz"], [], "etcd knows no host zz"),
    ([], [], ["../x"], "revive: '../x' is not a host name"),
])
def test_bad_requests_change_nothing(tmp_path, etcd, dead, confirm, revive, match):
    client, leases = lab_state(etcd)
    before = snapshot_of(client)
    with pytest.raises(smc_ha.HaError, match=match):
        smc_ha.cmd_ha_failover(cfg_for(tmp_path, etcd), dead, confirm, revive, out=io.StringIO())
    assert snapshot_of(client) == before and client.keepalive(leases["a"]) > 0


def test_the_host_running_it_cannot_declare_itself_dead():
    assert "run the failover from a live host" in smc_ha.failover_errors(["a"], ["a"], [], "a")[0]


def test_unreachable_etcd_is_an_error_that_changed_nothing(tmp_path):
    cfg = {"roots": ["tank/projects"], "replication": {"plan": str(tmp_path / "no-plan.json")},
           "ha": {"enabled": True, "endpoints": ["http://127.0.0.1:9"], "state": str(tmp_path / "s.json"),
                  "prefix": PREFIX}}
    with pytest.raises(smc_ha.HaError, match="without quorum no failover can be forced"):
        smc_ha.cmd_ha_failover(cfg, ["a"], ["a"], out=io.StringIO())


def test_a_declaration_opens_a_window_revokes_the_lease_and_follows_the_election(tmp_path, etcd):
    client, leases = lab_state(etcd)
    cfg = cfg_for(tmp_path, etcd)
    ttl = smc_ha.ha_config(cfg)["lease_ttl"]

    def elect_b():  # what the HA loops do once the window closed (here: at once, for p and q)
        deadline = time.monotonic() + 10
        while PREFIX + "dead/a" not in snapshot_of(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        kvs, _rev = client.range(PREFIX + "primary/")
        for pid in ("p", "q"):
            _value, revision, _lease = kvs[PREFIX + "primary/" + pid]
            time.sleep(0.3)
            assert client.swap(PREFIX + "primary/" + pid, json.dumps({"host": "b", "epoch": 4}), revision)
    thread = threading.Thread(target=elect_b)
    thread.start()
    out = io.StringIO()
    report = smc_ha.cmd_ha_failover(cfg, ["a"], ["a"], wait=15, out=out)
    thread.join(10)
    kvs, _rev = client.range(PREFIX)
    assert json.loads(kvs[PREFIX + "dead/a"][0])["by"] == "failover.yml" and kvs[PREFIX + "dead/a"][2] == 0
    window_lease = kvs[PREFIX + "window/a"][2]
    left = int(client.call("lease/timetolive", {"ID": str(window_lease)})["TTL"])
    assert 0 < left <= ttl
    assert PREFIX + "hosts/a" not in kvs and client.keepalive(leases["a"]) == 0  # revoked: it fences itself
    assert client.keepalive(leases["b"]) > 0
    moved = [(m["project"], m["from"], m["to"], m["epoch"]) for m in report["moved"]]
    assert moved == [("p", "a", "b", 4), ("q", "a", "b", 4)]
    assert report["left"] == [] and '"moved"' in out.getvalue()
    # a second run finds it declared already and changes nothing more
    again = smc_ha.cmd_ha_failover(cfg, ["a"], ["a"], out=io.StringIO())
    assert again["declared"] == [] and again["already_dead"] == ["a"] and again["moves"] == []


def test_projects_not_elected_within_the_wait_are_reported_left(tmp_path, etcd):
    lab_state(etcd)
    report = smc_ha.cmd_ha_failover(cfg_for(tmp_path, etcd), ["b"], ["b"], wait=1.5, out=io.StringIO())
    assert report["moved"] == [] and report["left"] == ["r"]


def test_revive_ends_the_declaration(tmp_path, etcd):
    client, _leases = lab_state(etcd)
    cfg = cfg_for(tmp_path, etcd)
    smc_ha.cmd_ha_failover(cfg, ["a"], ["a"], out=io.StringIO())
    assert smc_ha.cmd_ha_status(cfg)["dead"] == ["a"]  # ha-status names the declared hosts
    report = smc_ha.cmd_ha_failover(cfg, revive=["a"], out=io.StringIO())
    assert report["revived"] == ["a"] and PREFIX + "dead/a" not in snapshot_of(client)
    assert smc_ha.cmd_ha_status(cfg)["dead"] == []


def test_the_agent_command_prints_one_json_report_and_progress_on_stderr(tmp_path, etcd, capsys):
    from test_smc_zfs_agent import load_agent, run_agent  # pylint: disable=import-error,import-outside-toplevel
    lab_state(etcd)
    ha = dict(cfg_for(tmp_path, etcd)["ha"])
    argv = ["ha-failover", "--dead", "a", "--confirm-dead", "a"]
    assert run_agent(load_agent(), tmp_path, argv, {"ha": ha}) == 0  # not elected yet, but no --wait: rc 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # the whole of stdout is the report (the playbook reads it)
    assert report["declared"] == ["a"] and report["left"] == ["p", "q"]
    assert '"declared": "a"' in captured.err
    assert run_agent(load_agent(), tmp_path, argv + ["--wait", "1"], {"ha": ha}) == 1  # still not elected
    assert json.loads(capsys.readouterr().out)["left"] == ["p", "q"]
