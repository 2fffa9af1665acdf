"""etcd_member: the member list's checks, bootstrap / join / running, and each member's config file."""
import pytest

from ansible_collections.smc.backend.plugins.module_utils import etcd_member as em

MEMBERS = [{"name": "etcd-dc%d" % i, "address": "10.77.0.%d" % (200 + i), "dc": "dc%d" % i} for i in (1, 2, 3)]
TLS = {"ca": "/etc/smc-etcd/pki/ca.crt", "cert": "/etc/smc-etcd/pki/member.crt", "key": "/etc/smc-etcd/pki/member.key"}


def test_three_members_pass():
    assert em.members_error(MEMBERS) is None


@pytest.mark.parametrize("change, field", [
    ({"name": "-etcd"}, ".name"), ({"name": "etcd\nx"}, ".name"), ({"name": "../x"}, ".name"),
    ({"name": "Etcd"}, ".name"), ({"address": "etcd.example.org"}, ".address"), ({"address": "10.0.0.1\n"}, ".address"),
    ({"dc": "dc/1"}, ".dc"), ({"dc": ""}, ".dc"), ({"extra": 1}, "unknown keys"),
])
def test_a_bad_member_is_named(change, field):
    bad = [dict(MEMBERS[0], **change)] + MEMBERS[1:]
    error = em.members_error(bad)
    assert error and "coordination_members[0]" in error and field in error, error


def test_duplicates_and_even_counts_are_refused():
    assert "appears twice" in em.members_error(MEMBERS + [dict(MEMBERS[0])])
    assert "appears twice" in em.members_error(MEMBERS[:2] + [dict(MEMBERS[2], address=MEMBERS[0]["address"])])
    assert "odd number" in em.members_error(MEMBERS[:2])
    assert "give a list" in em.members_error([])


def test_timings_are_checked():
    assert em.timings_error({}) is None
    assert "five heartbeats" in em.timings_error({"heartbeat_ms": 1000, "election_ms": 2000})
    assert "positive whole number" in em.timings_error({"snapshot_count": "10"})
    assert "50000" in em.timings_error({"election_ms": 60000})


def test_join_plan():
    assert em.join_plan(MEMBERS, []) == {"mode": "bootstrap", "joining": []}
    assert em.join_plan(MEMBERS, [m["name"] for m in MEMBERS]) == {"mode": "running", "joining": []}
    assert em.join_plan(MEMBERS, ["etcd-dc1", "etcd-dc2"]) == {"mode": "join", "joining": ["etcd-dc3"]}
    with pytest.raises(ValueError, match="one at a time"):
        em.join_plan(MEMBERS, ["etcd-dc1"])


def test_a_bootstrap_config_names_every_member_and_requires_client_certificates():
    c = em.member_config("etcd-dc2", MEMBERS, TLS, "/var/lib/smc-etcd")
    assert c["initial-cluster"] == ("etcd-dc1=https://10.77.0.201:2380,etcd-dc2=https://10.77.0.202:2380,"
                                    "etcd-dc3=https://10.77.0.203:2380")
    assert c["initial-cluster-state"] == "new"
    assert c["listen-client-urls"] == "https://10.77.0.202:2379,https://127.0.0.1:2379"
    assert c["advertise-client-urls"] == "https://10.77.0.202:2379"
    assert c["listen-metrics-urls"] == "http://10.77.0.202:2381"
    for side in ("client-transport-security", "peer-transport-security"):
        assert c[side] == {"cert-file": TLS["cert"], "key-file": TLS["key"], "trusted-ca-file": TLS["ca"],
                           "client-cert-auth": True}
    assert (c["heartbeat-interval"], c["election-timeout"]) == (250, 2500)
    assert c["enable-grpc-gateway"] is True
    assert c["pre-vote"] is True  # a member whose link heals must not depose the leader with a term raised in vain


def test_a_joining_member_lists_the_running_ones_and_itself():
    c = em.member_config("etcd-dc3", MEMBERS, TLS, "/d", state="existing", initial=["etcd-dc1", "etcd-dc3"])
    assert c["initial-cluster"] == "etcd-dc1=https://10.77.0.201:2380,etcd-dc3=https://10.77.0.203:2380"
    assert c["initial-cluster-state"] == "existing"


def test_ipv6_addresses_are_bracketed():
    v6 = [dict(m, address="fd00::%d" % i) for i, m in enumerate(MEMBERS, 1)]
    c = em.member_config("etcd-dc1", v6, TLS, "/d", local_client=False, metrics_port=0)
    assert c["listen-client-urls"] == "https://[fd00::1]:2379" and "listen-metrics-urls" not in c
    assert em.client_urls(v6)[2] == "https://[fd00::3]:2379"


def test_unknown_member_and_state_are_refused():
    with pytest.raises(ValueError, match="not in the member list"):
        em.member_config("etcd-dc9", MEMBERS, TLS, "/d")
    with pytest.raises(ValueError, match="neither"):
        em.member_config("etcd-dc1", MEMBERS, TLS, "/d", state="maybe")
