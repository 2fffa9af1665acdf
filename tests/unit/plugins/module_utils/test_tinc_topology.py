"""tinc_topology: bad input, stable addresses, bounded degree, connectivity with any one hub down."""
import ipaddress

import pytest

from ansible_collections.smc.backend.plugins.module_utils import tinc_topology as tt

SUBNET = "10.88.0.0/16"


def _nodes(dcs, per_dc, **extra):
    return [
        dict({"name": f"dc{d}-s{i}", "dc": f"dc{d}", "address": f"10.77.{d}.{i}"}, **extra)
        for d in range(1, dcs + 1)
        for i in range(1, per_dc + 1)
    ]


@pytest.fixture(scope="module")
def big():
    """1,000 nodes in 10 DCs with the defaults (k=3, 2 hubs per DC)."""
    nodes = _nodes(10, 100)
    hubs = tt.select_hubs(nodes)
    return nodes, hubs, tt.connect_to(nodes, hubs)


# ---- bad input: every problem named, before anything else happens ---------------------------------

def _errors(nodes, **kw):
    with pytest.raises(tt.TincTopologyError) as info:
        tt.plan(nodes, kw.pop("subnet", SUBNET), **kw)
    return info.value.errors


def test_duplicate_vpn_addresses_name_both_hosts():
    nodes = _nodes(1, 3)
    nodes[0]["vpn_address"] = nodes[2]["vpn_address"] = "10.88.0.9"
    assert _errors(nodes) == ["hosts dc1-s1 and dc1-s3 have the same vpn_address 10.88.0.9"]


@pytest.mark.parametrize("vpn, words", [
    ("10.99.0.1", "outside the VPN subnet 10.88.0.0/16"),
    ("10.88.0.0", "network or broadcast"),
    ("10.88.255.255", "network or broadcast"),
    ("not-an-ip", "not an IP address"),
])
def test_vpn_address_must_be_a_usable_address_in_the_subnet(vpn, words):
    nodes = _nodes(1, 2)
    nodes[1]["vpn_address"] = vpn
    (error,) = _errors(nodes)
    assert error.startswith("host dc1-s2: vpn_address") and words in error


def test_hub_not_in_inventory():
    assert _errors(_nodes(2, 2), hubs=["dc1-s1", "dc9-s9"]) == [
        "hub dc9-s9 is not a member of the VPN (not in the inventory group or excluded)"
    ]


def test_host_without_reachable_address_or_dc():
    nodes = _nodes(1, 2)
    nodes[0]["address"] = None
    nodes[1]["dc"] = ""
    errors = _errors(nodes)
    assert "host dc1-s1 has no reachable address (set its private address host variable)" in errors
    assert "host dc1-s2 has no data center (dc)" in errors


def test_all_problems_are_reported_together():
    nodes = _nodes(1, 3)
    nodes[0]["vpn_address"] = "10.1.1.1"
    nodes[1]["address"] = ""
    assert len(_errors(nodes, hubs=["ghost"])) == 3


def test_names_that_collide_in_tinc_and_duplicate_hosts():
    nodes = _nodes(1, 1) + [{"name": "dc1_s1", "dc": "dc1", "address": "x"}, _nodes(1, 1)[0]]
    errors = _errors(nodes)
    assert "hosts dc1-s1 and dc1_s1 map to the same tinc name dc1_s1" in errors
    assert "host dc1-s1 is listed twice" in errors


@pytest.mark.parametrize("kw, words", [
    ({"subnet": "10.88.0.1/16"}, "not a network address"),
    ({"subnet": "fd00::/64"}, "must be IPv4"),
    ({"subnet": "10.88.0.0/29"}, "has 6 addresses for 8 hosts"),
    ({"k": 1}, "max_connect (k) must be an integer >= 2"),
    ({"k": 3, "leaf_hubs": 4}, "leaf_hubs (4) cannot exceed max_connect (3)"),
    ({"hubs_per_dc": 0}, "hubs_per_dc must be an integer >= 1"),
])
def test_bad_options(kw, words):
    assert any(words in e for e in _errors(_nodes(2, 4), **kw))


def test_tinc_names_are_sanitised():
    assert tt.tinc_name("dc1-s1.example") == "dc1_s1_example"


# ---- addresses -------------------------------------------------------------------------------------

def test_addresses_are_unique_usable_and_in_the_subnet(big):
    nodes = big[0]
    addrs = tt.allocate_addresses(nodes, SUBNET)
    net = ipaddress.ip_network(SUBNET)
    values = [ipaddress.ip_address(a) for a in addrs.values()]
    assert len(set(values)) == 1000
    assert all(v in net and v not in (net.network_address, net.broadcast_address) for v in values)


def test_adding_hosts_never_moves_an_existing_address_with_or_without_previous():
    nodes = _nodes(10, 100)
    before = tt.allocate_addresses(nodes, SUBNET)
    # Newcomers whose names sort first and last; with ``previous`` nothing may move at all.
    grown = nodes + [{"name": n, "dc": "dc1", "address": "x"} for n in ("aaa", "dc0-s0", "zzz", "dc10-s101")]
    after = tt.allocate_addresses(grown, SUBNET, previous=before)
    assert {n: after[n] for n in before} == before
    stateless = tt.allocate_addresses(grown, SUBNET)
    moved = [n for n in before if stateless[n] != before[n]]
    assert len(moved) <= 4  # only a hash collision with a newcomer can move a host without state


def test_removing_a_host_keeps_the_others():
    nodes = _nodes(3, 5)
    before = tt.allocate_addresses(nodes, SUBNET)
    after = tt.allocate_addresses(nodes[1:], SUBNET, previous=before)
    assert after == {n: a for n, a in before.items() if n != nodes[0]["name"]}


def test_explicit_address_wins_over_previous_and_the_loser_is_reallocated():
    nodes = _nodes(1, 2)
    before = tt.allocate_addresses(nodes, SUBNET)
    nodes[0]["vpn_address"] = before["dc1-s2"]
    after = tt.allocate_addresses(nodes, SUBNET, previous=before)
    assert after["dc1-s1"] == before["dc1-s2"]
    assert after["dc1-s2"] != before["dc1-s2"]


def test_collisions_probe_deterministically_in_a_tiny_subnet():
    nodes = _nodes(1, 6)
    first = tt.allocate_addresses(nodes, "10.88.0.0/29")
    assert sorted(first.values()) == [f"10.88.0.{i}" for i in range(1, 7)]
    assert tt.allocate_addresses(list(reversed(nodes)), "10.88.0.0/29") == first


def test_previous_outside_the_subnet_is_ignored():
    nodes = _nodes(1, 2)
    after = tt.allocate_addresses(nodes, SUBNET, previous={"dc1-s1": "192.168.0.1", "dc1-s2": "bogus"})
    assert all(a.startswith("10.88.") for a in after.values())


def test_previous_addresses_prefer_a_hosts_own_record():
    manifests = {
        "a": {"members": {"a": {"vpn_address": "10.88.0.1"}, "b": {"vpn_address": "10.88.0.9"}}},
        "b": '{"members": {"b": {"vpn_address": "10.88.0.2"}, "c": {"vpn_address": "10.88.0.3"}}}',
        "c": "not json",
        "d": "",
        "e": {"members": ["junk"]},
    }
    assert tt.previous_addresses(manifests) == {"a": "10.88.0.1", "b": "10.88.0.2", "c": "10.88.0.3"}


def test_revoked_lists_only_recorded_names_no_longer_members():
    manifests = {
        "a": {"members": {"a": {"tinc_name": "a"}, "old-host": {"tinc_name": "old_host"}, "x": {"tinc_name": "../etc"}}},
        "b": "",
    }
    assert tt.revoked(manifests, ["a", "b"]) == {"a": ["old_host"], "b": []}


# ---- hubs and ConnectTo ----------------------------------------------------------------------------

def test_automatic_hubs_are_the_first_per_dc_in_natural_order():
    nodes = [{"name": f"dc1-s{i}", "dc": "dc1", "address": "x"} for i in (10, 2, 1, 11)]
    assert tt.select_hubs(nodes, hubs_per_dc=2) == ["dc1-s1", "dc1-s2"]
    assert tt.select_hubs(nodes, hubs=["dc1-s11", "dc1-s10"]) == ["dc1-s10", "dc1-s11"]


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_outgoing_connections_are_bounded_by_k(k):
    nodes = _nodes(10, 100)
    links = tt.connect_to(nodes, tt.select_hubs(nodes), k=k, leaf_hubs=2)
    assert max(len(t) for t in links.values()) <= k
    assert all(name not in targets and len(set(targets)) == len(targets) for name, targets in links.items())


def test_leaves_use_two_hubs_of_their_own_dc_and_hubs_use_only_hubs(big):
    nodes, hubs, links = big
    dc_of = {n["name"]: n["dc"] for n in nodes}
    for name, targets in links.items():
        if name in hubs:
            assert set(targets) <= set(hubs)
        else:
            assert [dc_of[t] for t in targets[:2]] == [dc_of[name]] * 2 and set(targets[:2]) <= set(hubs)
            assert all(dc_of[t] == dc_of[name] for t in targets)


def test_leaves_borrow_hubs_from_other_dcs_when_theirs_are_few():
    nodes = _nodes(3, 3)
    links = tt.connect_to(nodes, tt.select_hubs(nodes, hubs_per_dc=1), k=3, leaf_hubs=2)
    assert links["dc2-s2"][0] == "dc2-s1" and links["dc2-s2"][1] in ("dc1-s1", "dc3-s1")


def test_plan_output_shape():
    result = tt.plan(_nodes(3, 2), SUBNET, hubs_per_dc=1)
    assert result["hubs"] == ["dc1-s1", "dc2-s1", "dc3-s1"] and result["prefixlen"] == 16
    node = result["nodes"]["dc1-s2"]
    assert node["tinc_name"] == "dc1_s2" and not node["hub"] and node["dc"] == "dc1"
    assert node["connect_to"][0] == "dc1_s1" and node["address"] == "10.77.1.2"


def test_the_1000_node_mesh_is_connected_with_a_small_diameter(big):
    links = big[2]
    adj = tt.graph(links)
    assert len(adj) == 1000 and tt.is_connected(adj)
    assert tt.diameter(adj) <= 5


def test_losing_any_single_hub_keeps_the_1000_node_mesh_connected(big):
    hubs, links = big[1], big[2]
    assert len(hubs) == 20
    for hub in hubs:
        assert tt.is_connected(tt.graph(links, down=[hub])), hub


def test_losing_any_single_node_keeps_a_small_mesh_connected():
    for dcs, per, hpd in [(3, 2, 2), (3, 2, 1), (3, 4, 1), (1, 5, 2), (5, 7, 2)]:
        nodes = _nodes(dcs, per)
        links = tt.connect_to(nodes, tt.select_hubs(nodes, hubs_per_dc=hpd))
        for down in links:
            assert tt.is_connected(tt.graph(links, down=[down])), (dcs, per, hpd, down)


def test_hub_offsets_always_include_the_ring():
    for count in range(2, 41):
        for k in (2, 3, 4):
            offsets = tt.hub_offsets(count, k)
            assert offsets[0] == 1 and len(offsets) <= k and max(offsets) <= count // 2
    assert tt.hub_offsets(1, 3) == ()
    big = tt.hub_offsets(2000, 3)
    assert big[0] == 1 and len(big) == 3


def test_diameter_of_a_disconnected_graph_is_none():
    assert tt.diameter({"a": {"b"}, "b": {"a"}, "c": set()}) is None
    assert tt.is_connected({})
