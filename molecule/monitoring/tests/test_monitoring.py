"""Monitoring on the lab (scenario monitoring, issue 16): Prometheus and Alertmanager on dc1-s1 scrape the six
node exporters over the VPN (converge.yml). Three faults at once, each on its own host:
- a vdev of dc2-s1's mirror offline: SmcPoolDegraded, and the agent's smc_pool_health says degraded (its
  zedlets rewrite it on the pool's events; the agent's own cycle runs every 15 minutes), online after the repair;
- the agent of dc3-s1 (a replica of every project) stopped: its copies go read-only at once (the unit's
  ExecStopPost), its lease lapses, dc1-s2's next cycle leaves it out and SmcReplicationLagHigh fires for it;
- tinc stopped on dc3-s2: SmcVpnPeerUnreachable (the other hosts' host-down scripts) and SmcHostDown (no scrape
  over the VPN).
Each alert must be firing in Prometheus (HTTP API) and reach the webhook; after the repairs every one of them
must clear there and reach the webhook as resolved; the bytes written on dc1-s2 meanwhile must be on dc3-s1
afterwards. Times from the faults to firing and from the repairs to clear are printed.
"""
import json
import os
import sys
import time
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
import etcd_lab  # noqa: E402 (the lab's tools)
from lab_ssh import agent, checksums, lab_hosts, write_known  # noqa: E402

PROJECTS = "tank/projects"
MONITOR, POOL_HOST, REPLICA, PRIMARY, VPN_HOST = "dc1-s1", "dc2-s1", "dc3-s1", "dc1-s2", "dc3-s2"
SINK = "/var/tmp/smc-webhook.jsonl"
WAIT = 150
# (alertname, labels it must carry) for each fault
EXPECTED = {
    "pool": ("SmcPoolDegraded", {"instance": POOL_HOST, "pool": "tank"}),
    "lag": ("SmcReplicationLagHigh", {"instance": PRIMARY, "peer": REPLICA}),
    "vpn": ("SmcVpnPeerUnreachable", {"peer": VPN_HOST.replace("-", "_")}),
    "down": ("SmcHostDown", {"instance": VPN_HOST}),
}


def say(msg):
    print("[monitoring] " + msg, flush=True)


@pytest.fixture(scope="module", name="lab")
def fixture_lab(tmp_path_factory):
    hosts, common = lab_hosts(tmp_path_factory.mktemp("cp"))
    etcd_lab.NETNS = common.get("smc_lab_netns", "smclab")
    etcd_lab.BRIDGE = common.get("smc_lab_bridge", etcd_lab.BRIDGE)
    return hosts


def api(lab, path):
    """GET Prometheus' HTTP API on the monitoring host; its data."""
    out = lab[MONITOR].out("python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                           "\"http://127.0.0.1:9090%s\", timeout=20).read().decode())'" % path, timeout=60)
    doc = json.loads(out)
    assert doc.get("status") == "success", doc
    return doc["data"]


def firing(lab):
    """[(alertname, labels)] firing in Prometheus now."""
    return [(a["labels"]["alertname"], a["labels"]) for a in api(lab, "/api/v1/alerts")["alerts"]
            if a["state"] == "firing"]


def agent_pool_states(lab):
    """The states smc_pool_health (the agent's textfile on POOL_HOST) gives its pool now: its zedlets rewrite it
    on every pool event, so it must follow the pool without the agent's cycle."""
    query = 'smc_pool_health{instance="%s",pool="tank"} == 1' % POOL_HOST
    return sorted(r["metric"]["state"] for r in api(lab, "/api/v1/query?query=" + urllib.parse.quote(query, safe=""))["result"])


def matches(labels, want):
    return all(labels.get(k) == v for k, v in want.items())


def notified(lab, status):
    """The alert keys whose (alertname, labels) the webhook sink received with ``status``."""
    out = lab[MONITOR].out("cat %s 2>/dev/null || true" % SINK)
    got = [a for line in out.splitlines() for a in json.loads(line)["alerts"]]
    return set(key for key, (name, want) in EXPECTED.items()
               if any(a["status"] == status and a["labels"].get("alertname") == name and matches(a["labels"], want)
                      for a in got))


def wait_for(what, test, timeout=WAIT, every=3):
    deadline = time.monotonic() + timeout
    while True:
        value = test()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def primary_of(pid):
    p = etcd_lab.ctl("get", "/smc/primary/" + pid, "--print-value-only")
    return json.loads(p.stdout)["host"] if p.returncode == 0 and p.stdout.strip() else None


def writable(host):
    """The host's writable copies of placed projects (those its plan lists: demo datasets outside the
    placement, such as demo-c, are not the HA loop's to fence)."""
    placed = json.loads(host.out("cat /etc/smc/plan.json"))["projects"]
    out = host.out("zfs list -H -o name,readonly -d 1 %s" % PROJECTS)
    return [line.split("\t")[0] for line in out.splitlines()[1:]
            if line.endswith("\toff") and line.split("\t")[0].rsplit("/", 1)[1] in placed]


def test_every_node_exporter_is_scraped_over_the_vpn_with_the_agent_and_tinc_metrics(lab):
    ups = api(lab, "/api/v1/query?query=up%7Bjob%3D%22node%22%7D")["result"]
    assert sorted(r["metric"]["instance"] for r in ups if r["value"][1] == "1") == sorted(lab), ups
    peers = api(lab, "/api/v1/query?query=smc_vpn_peers%7Bstate%3D%22reachable%22%7D")["result"]
    assert sorted((r["metric"]["instance"], r["value"][1]) for r in peers) == [(h, "5") for h in sorted(lab)]
    pools = api(lab, "/api/v1/query?query=node_zfs_zpool_state%7Bstate%3D%22online%22%7D")["result"]
    assert sorted(r["metric"]["instance"] for r in pools if r["value"][1] == "1") == sorted(lab), pools
    assert api(lab, "/api/v1/query?query=smc_pool_capacity_ratio")["result"], "no agent metrics scraped"
    assert not [a for a in firing(lab) if a[0] in [n for n, _w in EXPECTED.values()]], firing(lab)


def test_faults_fire_reach_the_webhook_and_clear_after_repair(lab):
    pid = sorted(p for p in json.loads(lab[PRIMARY].out("cat /etc/smc/plan.json"))["projects"]
                 if primary_of(p) == PRIMARY)[0]
    ds = "%s/%s" % (PROJECTS, pid)
    disk = lab[POOL_HOST].out("zpool list -H -v -P tank | awk '$1 ~ /^\\// {print $1}' | tail -1").strip()
    assert disk.startswith("/dev/"), disk

    # the faults, at once
    start = time.monotonic()
    lab[POOL_HOST].run("zpool offline tank %s" % disk)
    lab[REPLICA].run("systemctl stop smc-zfs-agent.timer smc-ha.service")
    lab[VPN_HOST].run("systemctl stop tinc@smc")
    assert wait_for("fenced", lambda: not writable(lab[REPLICA]), timeout=20, every=1), \
        "%s keeps writable copies after its HA loop stopped: %s" % (REPLICA, writable(lab[REPLICA]))
    # dc1-s2 keeps serving: its users write, its next cycle leaves the replica without a lease out
    want = checksums(lab[PRIMARY], ds)

    def cycle():
        """New bytes, a snapshot, a send: the replica left out lacks the newest snapshot, and the lag gauge
        (written by the sender's cycle) grows with every cycle. rc 1 while the VPN peer holds its lease but
        cannot be reached: that failure is what its alerts need; a failure for any other peer is a bug."""
        want["f-mon"] = write_known(lab[PRIMARY], ds, "f-mon", 1)
        agent(lab[PRIMARY], "snapshot")
        report = agent(lab[PRIMARY], "replicate", check=False, timeout=600)["replication"]
        others = {p: s["errors"] for p, s in report["peers"].items() if s.get("errors") and p != VPN_HOST}
        assert not others and not report["errors"], (others, report["errors"])
        return report

    assert wait_for("lease lapsed", lambda: REPLICA in cycle().get("skipped_down", {}), timeout=90, every=5), \
        "%s still sent to %s" % (PRIMARY, REPLICA)

    def all_firing():
        now = firing(lab)
        got = set(k for k, (name, want_labels) in EXPECTED.items()
                  if any(n == name and matches(labels, want_labels) for n, labels in now))
        if "lag" not in got:
            cycle()
        return got == set(EXPECTED)
    assert wait_for("firing", all_firing), "not firing: %s; firing: %s" % (EXPECTED, firing(lab))
    fired = time.monotonic() - start
    assert wait_for("webhook", lambda: notified(lab, "firing") == set(EXPECTED), timeout=60), notified(lab, "firing")
    assert wait_for("agent's pool health", lambda: agent_pool_states(lab) == ["degraded"], timeout=60), \
        "smc_pool_health of %s: %s" % (POOL_HOST, agent_pool_states(lab))
    say("faults -> all %d alerts firing in Prometheus %.0f s, at the webhook %.0f s"
        % (len(EXPECTED), fired, time.monotonic() - start))

    # the repairs
    repaired = time.monotonic()
    lab[POOL_HOST].run("zpool online tank %s" % disk)
    lab[VPN_HOST].run("systemctl start tinc@smc")
    lab[REPLICA].run("systemctl start smc-ha.service smc-zfs-agent.timer")

    def sent_to_replica():
        agent(lab[PRIMARY], "snapshot")
        # (tinc needs a few seconds to reach its peers again: a failed cycle is retried)
        report = agent(lab[PRIMARY], "replicate", check=False, timeout=600)["replication"]
        return report["failed"] == 0 and REPLICA not in report.get("skipped_down", {})
    assert wait_for("replica back", sent_to_replica, timeout=120, every=5), "%s never took %s back" % (PRIMARY, REPLICA)

    def none_firing():
        now = firing(lab)
        return not [k for k, (name, want_labels) in EXPECTED.items()
                    if any(n == name and matches(labels, want_labels) for n, labels in now)]
    assert wait_for("clear", none_firing), "still firing: %s; smc_pool_health of %s: %s" % (
        firing(lab), POOL_HOST, agent_pool_states(lab))
    assert agent_pool_states(lab) == ["online"], agent_pool_states(lab)
    cleared = time.monotonic() - repaired
    assert wait_for("resolved", lambda: notified(lab, "resolved") == set(EXPECTED), timeout=60), \
        notified(lab, "resolved")
    say("repairs -> all clear in Prometheus %.0f s, resolved at the webhook %.0f s"
        % (cleared, time.monotonic() - repaired))
    # data first: what dc1-s2's users wrote while the replica was out is on the replica, byte for byte
    assert checksums(lab[REPLICA], ds) == want
    assert lab[POOL_HOST].out("zpool list -H -o health tank").strip() == "ONLINE"
