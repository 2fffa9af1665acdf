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


@pytest.mark.parametrize("bad", [
    "fe80::1%x\nSubnet = 10.0.0.0\nConnectTo = evil",  # ipaddress takes a scope id of any text
    "fe80::1%eth0", "fd00::1%", "10.77.0.11%1", "10.77.0.300", "123", "1.2.3", "::1 ", " ::1", "fd00::1\n",
    "fd00::g", "[fd00::1]", "10.77.0.11:655"])
def test_scope_ids_and_near_ip_literals_are_refused(bad):
    assert tt.address_error(bad), bad


@pytest.mark.parametrize("good", ["10.77.0.11", "fd00::1", "FD00:0:0::1", "::ffff:10.77.0.11", "::1", "cafe",
                                  "dc1-s1", "dc1-s1.example.com", "s1.dc1", "a" * 63])
def test_ip_literals_and_dns_names_still_pass(good):
    assert tt.address_error(good) is None, good


def test_a_scope_id_with_a_directive_never_reaches_a_plan():
    with pytest.raises(AnsibleFilterError) as exc:
        plan_with(private_ip="fe80::1%x\nSubnet = 10.0.0.0\nConnectTo = evil")
    assert "dc2-s1" in str(exc.value) and "address" in str(exc.value) and "scope" in str(exc.value)
    with pytest.raises(AnsibleFilterError, match="dc2-s1: vpn_address"):
        plan_with(vpn_address="fe80::1%x\nSubnet = 0.0.0.0/0")


@pytest.mark.parametrize("key, value", [
    ("network", "-x"), ("network", "a\\b"), ("network", "x" * 40), ("network", "x" * 16), ("network", "smc\n"),
    ("network", "a b"), ("network", "../etc"), ("network", "a-b"), ("network", ""), ("network", 5),
    ("port", 0), ("port", "0"), ("port", 65536), ("port", "655\n"), ("port", True), ("port", 65.5),
    ("mtu", 575), ("mtu", 65536), ("mtu", "1400 "), ("compression", 12), ("compression", -1),
    ("compression", "9\nSubnet = 0.0.0.0/0"), ("mode", "hub\n"), ("mode", "Router"),
    ("address_family", "ipv4\n"), ("address_family", "inet")])
def test_validate_settings_refuses_naming_the_setting_and_the_rule(key, value):
    with pytest.raises(tt.TincTopologyError) as exc:
        tt.validate_settings({key: value})
    (error,) = exc.value.errors
    assert error.startswith(key + " ") and "must be" in error


def test_validate_settings_reports_every_bad_setting_and_keeps_good_ones():
    with pytest.raises(tt.TincTopologyError) as exc:
        tt.validate_settings({"network": "-x", "port": 0, "mtu": 1400, "colour": "red"})
    assert [e.split()[0] for e in exc.value.errors] == ["unknown", "network", "port"]
    assert tt.validate_settings({"network": "smc_2", "port": "655", "mtu": 65535, "compression": 11, "mode": "switch",
                                 "address_family": "any", "unused": None}) == {
        "network": "smc_2", "port": 655, "mtu": 65535, "compression": 11, "mode": "switch", "address_family": "any"}


def test_the_role_style_call_refuses_a_bad_network_with_no_member():
    """roles/tinc checks its settings with no member before its first host task (see test_role_input_checks)."""
    ok = tinc_plan([], {}, subnet="10.88.0.0/16", settings={"network": "smc", "port": 655})
    assert ok["settings"] == {"network": "smc", "port": 655} and ok["nodes"] == {}
    with pytest.raises(AnsibleFilterError, match="network '-x' must be"):
        tinc_plan([], {}, subnet="10.88.0.0/16", settings={"network": "-x", "port": 655})
