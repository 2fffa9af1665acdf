"""tinc_plan / tinc_topology: hostile names, data centers, addresses and settings fail naming the host and the
field, so no newline or quote ever reaches tinc.conf, a host file or the manifest."""
import ipaddress

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.filter.tinc_plan import tinc_plan
from ansible_collections.smc.backend.plugins.module_utils import tinc_topology as tt

INJECT = st.one_of(
    st.sampled_from(["x\nSubnet = 0.0.0.0/0", "dc1\n", "a b", "-f", "..", "/", "a/b", "\"q", "'", "\u00e9", "",
                     "dc1\rConnectTo = evil", "#", "=", "a=b"]),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=10).map(lambda t: "d" + t + "\n"))
LAB = {"dc%d-s%d" % (d, s): {"dc": "dc%d" % d, "private_ip": "10.77.0.%d" % (10 + 2 * (d - 1) + s)}
       for d in (1, 2, 3) for s in (1, 2)}


def plan_with(**changes):
    hostvars = {name: dict(hv) for name, hv in LAB.items()}
    for key, value in changes.items():
        hostvars["dc2-s1"][key] = value
    return tinc_plan(sorted(hostvars), hostvars, "10.88.0.0/16")


def test_the_lab_passes():
    result = tinc_plan(sorted(LAB), LAB, "10.88.0.0/16", settings={"port": 655, "mtu": "1400", "mode": "router"})
    assert result["settings"] == {"mode": "router", "mtu": 1400, "port": 655}
    assert all(ipaddress.ip_address(n["vpn_address"]) in ipaddress.ip_network("10.88.0.0/16")
               for n in result["nodes"].values())


@settings(max_examples=80, deadline=None)
@given(value=INJECT, field=st.sampled_from(["dc", "private_ip", "vpn_address"]))
def test_hostile_host_values_are_refused_naming_host_and_field(value, field):
    if (field == "dc" and tt._DC_RE.match(value)) or (field == "vpn_address" and value == ""):
        return  # a valid data center; an empty vpn_address means none (the address is allocated)
    with pytest.raises(AnsibleFilterError) as exc:
        plan_with(**{field: value})
    msg = str(exc.value)
    assert "dc2-s1" in msg and {"dc": "dc", "private_ip": "address", "vpn_address": "vpn_address"}[field] in msg


@settings(max_examples=60, deadline=None)
@given(name=INJECT)
def test_hostile_host_names_are_refused(name):
    hostvars = dict(LAB, **{name: {"dc": "dc1", "private_ip": "10.77.0.99"}})
    with pytest.raises(AnsibleFilterError, match="host name|has no name"):
        tinc_plan(sorted(hostvars), hostvars, "10.88.0.0/16")


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(sorted(tt.SETTINGS)),
       value=st.one_of(INJECT, st.integers(-10 ** 12, -1), st.integers(65536, 10 ** 30), st.booleans(), st.none()))
def test_hostile_settings_are_refused_naming_the_setting(key, value):
    if value is None:
        return
    with pytest.raises(AnsibleFilterError, match=key):
        tinc_plan(sorted(LAB), LAB, "10.88.0.0/16", settings={key: value})


@pytest.mark.parametrize("subnet", ["10.88.0.0/16\nSubnet = 0.0.0.0/0", "10.88.0.0/16 ", "-f", "10.88.0.1/16"])
def test_hostile_subnets_are_refused(subnet):
    with pytest.raises(AnsibleFilterError, match="subnet"):
        tinc_plan(sorted(LAB), LAB, subnet)


@pytest.mark.parametrize("kw, match", [(dict(hubs="dc1-s1"), "hubs"), (dict(hubs=["x\ny"]), "hub"),
                                       (dict(previous=["a"]), "previous"), (dict(manifests="x"), "manifests"),
                                       (dict(settings="port=1"), "settings"), (dict(max_connect=10 ** 9), None)])
def test_wrong_shapes_are_refused_without_a_traceback(kw, match):
    if match is None:  # a huge k is bounded by the hub count, not refused: it must still finish quickly
        assert tinc_plan(sorted(LAB), LAB, "10.88.0.0/16", **kw)["nodes"]
        return
    with pytest.raises(AnsibleFilterError, match=match):
        tinc_plan(sorted(LAB), LAB, "10.88.0.0/16", **kw)


def test_addresses_are_ip_or_dns_names():
    assert tt.address_error("10.77.0.11") is None and tt.address_error("host-1.example.com") is None
    assert tt.address_error("fd00::1") is None
    for bad in ["10.77.0.11\n", "a..b", "-a", "a b", 10, None, "x" * 300]:
        assert tt.address_error(bad), bad
