"""fleet_status: the summary playbooks/status.yml prints, from what the hosts answered."""
import json

import pytest

from ansible_collections.smc.backend.plugins.module_utils import fleet_status as fs

NOW = 1_700_000_000
ZPOOL = "tank\tONLINE\t8589934592\t2147483648\t6442450944\nbig\tDEGRADED\t1000\t950\t50\n"


def ok(stdout):
    return {"rc": 0, "stdout": stdout, "stderr": ""}


def agent(records):
    return ok(json.dumps({"replication": records}))


def rec(lag=None, last_success=NOW - 60, failures=0):
    return {"lag_seconds": lag, "last_success": last_success, "consecutive_failures": failures}


HOSTS = {
    "dc1-s1": {"dc": "dc1", "zpool": ok(ZPOOL), "agent": agent({
        "tank/projects/p1": {"dc2-s1": rec(30.0), "dc3-s1": rec(None, NOW - 7200, 4)},
        "tank/projects/p2": {"dc2-s1": rec(None, None)}})},
    "dc1-s2": {"dc": "dc1", "zpool": ok("tank\tONLINE\t100\t10\t90\n"),
               "agent": {"rc": 2, "stdout": "", "stderr": "smc-zfs-agent: error: argument cmd: invalid choice: 'status'"}},
    "dc2-s1": {"dc": "dc2", "zpool": {"unreachable": True, "msg": "ssh: timed out"}, "agent": None},
    "dc3-s1": {"dc": "dc3", "zpool": {"rc": 2, "msg": "Error executing command.", "stdout": "", "stderr": ""},
               "agent": {"rc": 2, "msg": "Error executing command."}},
}
PROM = {"status": 200, "json": {"status": "success", "data": {"alerts": [
    {"labels": {"alertname": "SmcPoolFull", "instance": "dc1-s1", "severity": "warning"},
     "annotations": {"summary": "Pool big on dc1-s1 is 95% full"}, "state": "firing", "activeAt": "t1"},
    {"labels": {"alertname": "SmcPoolDegraded", "instance": "dc1-s1", "severity": "critical"},
     "annotations": {"summary": "Pool big on dc1-s1 is degraded"}, "state": "firing", "activeAt": "t0"},
    {"labels": {"alertname": "SmcHostDown", "instance": "dc2-s1", "severity": "critical"}, "state": "pending"},
]}}}


def test_zpool_list_is_parsed_with_exact_sizes():
    pools = fs.parse_zpool_list(ZPOOL)
    assert pools["tank"] == {"health": "ONLINE", "size_bytes": 8589934592, "allocated_bytes": 2147483648,
                             "free_bytes": 6442450944, "capacity_ratio": 0.25}
    assert pools["big"]["capacity_ratio"] == 0.95
    assert fs.parse_zpool_list("") == {}


@pytest.mark.parametrize("text", ["tank ONLINE 1 2 3\n", "tank\tONLINE\t8G\t1G\t7G\n", "tank\tONLINE\t1\t2\n"])
def test_zpool_lines_of_another_shape_are_refused(text):
    with pytest.raises(ValueError, match="unexpected zpool list line"):
        fs.parse_zpool_list(text)


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"snapshots": {}}', '{"replication": {"d": 3}}'])
def test_an_agent_without_replication_status_has_none(text):
    assert fs.parse_agent_status(text) is None


@pytest.mark.parametrize("values, expected", [
    ([], {}), ([5], {"p50": 5, "p90": 5, "p99": 5, "max": 5}),
    (list(range(1, 101)), {"p50": 50, "p90": 90, "p99": 99, "max": 100}),
    ([3, 1, 2], {"p50": 2, "p90": 3, "p99": 3, "max": 3}),
])
def test_nearest_rank_percentiles(values, expected):
    assert fs.percentiles(values) == expected


def test_summary_of_hosts_by_dc_pools_replication_and_alerts():
    s = fs.summarize(HOSTS, alerts=PROM, monitoring_host="mon-1", now=NOW)
    assert s["dcs"] == {"dc1": ["dc1-s1", "dc1-s2"], "dc2": ["dc2-s1"], "dc3": ["dc3-s1"]}
    assert s["unreachable"] == ["dc2-s1"]
    assert [(p["host"], p["pool"]) for p in s["pools"]["unhealthy"]] == [("dc1-s1", "big")]
    assert s["pools"]["fullest"]["pool"] == "big" and s["pools"]["count"] == 3
    hosts = {h["name"]: h for h in s["hosts"]}
    assert hosts["dc1-s1"]["replication"] == {"copies": 3, "peers": 2, "failing": 1, "never": 1,
                                              "lag_seconds": {"p50": 30.0, "p90": 7200.0, "p99": 7200.0, "max": 7200.0}}
    assert hosts["dc1-s2"]["replication_note"] == fs.NO_AGENT_STATUS
    assert hosts["dc3-s1"]["pool_error"] == "zpool not found (ZFS not installed?)"
    assert s["replication"]["hosts_without_status"] == 2 and s["replication"]["copies"] == 3
    assert [f["alertname"] for f in s["alerts"]["firing"]] == ["SmcPoolDegraded", "SmcPoolFull"]
    json.dumps(s)  # JSON-ready


def test_alerts_without_a_monitoring_host_or_an_answer():
    assert fs.summarize({}, None, None)["alerts"]["error"] == "no monitoring host in the inventory"
    failed = fs.summarize({}, {"status": -1, "msg": "Connection refused"}, "mon-1")["alerts"]
    assert failed["error"] == "Prometheus did not answer: Connection refused" and failed["firing"] == []


def test_text_fits_one_screen_and_says_what_is_missing():
    lines = fs.render_text(fs.summarize(HOSTS, alerts=PROM, monitoring_host="mon-1", now=NOW))
    text = "\n".join(lines)
    assert lines[0] == "4 storage hosts in 3 DCs (dc1: 2, dc2: 1, dc3: 1); not reached: dc2-s1"
    assert ("  dc1-s1         big DEGRADED 950 B of 1000 B (95%), tank ONLINE 2.0 GiB of 8.0 GiB (25%) | "
            "3 copies to 2 peers, 1 failing, lag p50 30s p90 2h p99 2h max 2h") in lines
    assert "dc1-s2         tank ONLINE 10 B of 100 B (10%) | agent has no replication status yet" in text
    assert "pools: 3, 1 not ONLINE (dc1-s1/big DEGRADED); fullest dc1-s1/big 95%" in lines
    assert "  critical SmcPoolDegraded dc1-s1: Pool big on dc1-s1 is degraded" in lines
    assert len(lines) <= 24 and all(len(line) <= 160 for line in lines)
    empty = fs.render_text(fs.summarize({"a": {"dc": "x", "zpool": ok(""), "agent": None}}))
    assert "replication: agent has no replication status yet (no host reports it)" in empty


def test_many_alerts_are_cut_at_fifteen():
    alerts = {"json": {"data": {"alerts": [{"labels": {"alertname": "A%02d" % i}, "state": "firing"}
                                           for i in range(20)]}}}
    lines = fs.render_text(fs.summarize({}, alerts, "mon-1"))
    assert lines[-1] == "  ... and 5 more"


@pytest.mark.parametrize("n, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (2 ** 50 * 3, "3.0 PiB")])
def test_human_bytes(n, text):
    assert fs.human_bytes(n) == text


@pytest.mark.parametrize("s, text", [(0, "0s"), (59.6, "1m"), (61, "1m 1s"), (3600, "1h"), (4000, "1h 6m"),
                                     (90000, "1d 1h")])
def test_human_seconds(s, text):
    assert fs.human_seconds(s) == text


# What smc-etcdctl printed on a lab member (2026-12-07): endpoint status, then endpoint health, one line each.
ETCD_STATUS = ('[{"Endpoint":"https://10.77.0.202:2379","Status":{"header":{"cluster_id":1853278024169007370,'
               '"member_id":814224772227262605,"revision":31,"raft_term":5},"version":"3.4.23","dbSize":36864,'
               '"leader":814224772227262605,"raftIndex":50}},{"Endpoint":"https://10.77.0.201:2379","Status":'
               '{"header":{"cluster_id":1853278024169007370,"member_id":4029906267628516354,"revision":31,'
               '"raft_term":5},"version":"3.4.23","dbSize":36864,"leader":814224772227262605,"raftIndex":50}}]')
ETCD_HEALTH = ('[{"endpoint":"https://10.77.0.203:2379","health":false,"took":"5s","error":"context deadline exceeded"},'
               '{"endpoint":"https://10.77.0.201:2379","health":true,"took":"27.6ms"},'
               '{"endpoint":"https://10.77.0.202:2379","health":true,"took":"33.7ms"}]')


def test_etcd_members_leader_and_the_one_down():
    s = fs.summarize(HOSTS, now=NOW, coordination=ok(ETCD_STATUS + "\n" + ETCD_HEALTH + "\n"),
                     coordination_host="dc1-e1")
    c = s["coordination"]
    assert c["error"] is None and c["healthy"] == 2 and c["revision"] == 31
    assert c["leader"] == "https://10.77.0.202:2379"
    assert [(m["endpoint"], m["healthy"], m["leader"]) for m in c["members"]] == [
        ("https://10.77.0.201:2379", True, False), ("https://10.77.0.202:2379", True, True),
        ("https://10.77.0.203:2379", False, False)]
    line = [x for x in fs.render_text(s) if x.startswith("etcd:")]
    assert line == ["etcd: 2 of 3 members healthy (not: https://10.77.0.203:2379), leader https://10.77.0.202:2379, "
                    "revision 31, db 36.0 KiB"]


@pytest.mark.parametrize("result, host, words", [
    (None, None, "no coordination host in the inventory"),
    ({"unreachable": True, "msg": "ssh: timed out"}, "dc1-e1", "etcd did not answer on dc1-e1: ssh: timed out"),
    (ok("[]\n[]\n"), "dc1-e1", "etcd did not answer on dc1-e1"),
    (ok("Error: context deadline exceeded\n"), "dc1-e1", "etcd did not answer on dc1-e1"),
])
def test_etcd_without_a_host_or_an_answer(result, host, words):
    c = fs.summarize(HOSTS, now=NOW, coordination=result, coordination_host=host)["coordination"]
    assert c["members"] == [] and words in c["error"]
