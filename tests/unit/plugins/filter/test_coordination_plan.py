"""coordination_plan: members from host variables, bootstrap / join / running, kept initial-cluster settings,
and bad inventories refused naming the field."""
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.filter.coordination_plan import coordination_plan

HOSTS = ["e1", "e2", "e3"]
HOSTVARS = {h: {"private_ip": "10.77.0.%d" % (200 + i), "dc": "dc%d" % i} for i, h in enumerate(HOSTS, 1)}
TLS = {"ca": "/etc/smc-etcd/pki/ca.crt", "cert": "/etc/smc-etcd/pki/member.crt", "key": "/etc/smc-etcd/pki/member.key"}


def plan(**kw):
    hostvars = kw.pop("hostvars", HOSTVARS)
    return coordination_plan(kw.pop("hosts", HOSTS), hostvars, TLS, "/var/lib/smc-etcd", **kw)


def test_a_new_cluster_starts_every_member_as_new():
    p = plan()
    assert p["mode"] == "bootstrap" and p["joining"] == []
    assert p["endpoints"] == ["https://10.77.0.201:2379", "https://10.77.0.202:2379", "https://10.77.0.203:2379"]
    assert {c["initial-cluster-state"] for c in p["configs"].values()} == {"new"}
    assert p["configs"]["e2"]["name"] == "e2"
    assert p["members"][1] == {"name": "e2", "address": "10.77.0.202", "dc": "dc2", "host": "e2"}


def test_one_new_member_joins_and_the_others_keep_their_files():
    before = plan()["configs"]
    previous = {h: json.dumps(before[h]) for h in ("e1", "e2")}
    p = plan(with_data={"e1": True, "e2": True, "e3": False}, previous=previous)
    assert p["mode"] == "join" and p["joining"] == ["e3"]
    assert p["configs"]["e3"]["initial-cluster"] == "e1=https://10.77.0.201:2380,e2=https://10.77.0.202:2380,e3=https://10.77.0.203:2380"
    assert p["configs"]["e3"]["initial-cluster-state"] == "existing"
    # The running members' files stay as they were: no restart of every member for one join.
    assert p["configs"]["e1"] == before["e1"] and p["configs"]["e2"] == before["e2"]


def test_a_member_name_from_its_host_variable():
    hostvars = {h: dict(v, coordination_member_name="etcd-" + v["dc"]) for h, v in HOSTVARS.items()}
    p = plan(hostvars=hostvars)
    assert [m["name"] for m in p["members"]] == ["etcd-dc1", "etcd-dc2", "etcd-dc3"]
    assert p["configs"]["e1"]["name"] == "etcd-dc1"


def test_two_new_members_beside_a_running_one_are_refused():
    with pytest.raises(AnsibleFilterError, match="one at a time"):
        plan(with_data={"e1": True})


@pytest.mark.parametrize("host, var, value, field", [
    ("e1", "private_ip", "etcd-1.example.org", "address"),
    ("e2", "private_ip", "10.77.0.202\nx", "address"),
    ("e2", "coordination_member_name", "-e2", "name"),
    ("e2", "coordination_member_name", "e2/../x", "name"),
    ("e3", "dc", "dc 3", "dc"),
    ("e3", "dc", None, "dc"),
])
def test_a_bad_host_variable_is_named(host, var, value, field):
    hostvars = {h: dict(v) for h, v in HOSTVARS.items()}
    hostvars[host][var] = value
    with pytest.raises(AnsibleFilterError) as err:
        plan(hostvars=hostvars)
    assert "[%d].%s" % (HOSTS.index(host), field) in str(err.value), str(err.value)


def test_even_counts_timings_tokens_and_an_empty_group_are_refused():
    with pytest.raises(AnsibleFilterError, match="odd number"):
        plan(hosts=HOSTS[:2])
    with pytest.raises(AnsibleFilterError, match="no hosts"):
        plan(hosts=[])
    with pytest.raises(AnsibleFilterError, match="coordination_election_ms"):
        plan(timings={"heartbeat_ms": 1000, "election_ms": 1000})
    with pytest.raises(AnsibleFilterError, match="coordination_cluster_token"):
        plan(cluster_token="a\nb")
