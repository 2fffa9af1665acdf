"""tinc_plan filter: reads host variables, turns topology errors into AnsibleFilterError."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.filter.tinc_plan import FilterModule, tinc_plan

HOSTVARS = {
    "dc1-s1": {"dc": "dc1", "private_ip": "10.77.0.11"},
    "dc1-s2": {"dc": "dc1", "private_ip": "10.77.0.12", "vpn_address": "10.88.1.2"},
    "dc2-s1": {"dc": "dc2", "private_ip": "10.77.0.21"},
}


def test_registered():
    assert FilterModule().filters()["tinc_plan"] is tinc_plan


def test_plan_from_hostvars():
    result = tinc_plan(sorted(HOSTVARS), HOSTVARS, "10.88.0.0/16", hubs_per_dc="1", max_connect="3")
    assert result["hubs"] == ["dc1-s1", "dc2-s1"]
    assert result["nodes"]["dc1-s2"]["vpn_address"] == "10.88.1.2"
    assert result["nodes"]["dc1-s2"]["connect_to"][:2] == ["dc1_s1", "dc2_s1"]


def test_previous_addresses_are_kept():
    result = tinc_plan(["dc1-s1"], HOSTVARS, "10.88.0.0/16", previous={"dc1-s1": "10.88.7.7"})
    assert result["nodes"]["dc1-s1"]["vpn_address"] == "10.88.7.7"


def test_manifests_from_the_hosts_keep_addresses():
    manifests = {
        "dc1-s1": '{"members": {"dc1-s1": {"vpn_address": "10.88.3.3"}, "dc2-s1": {"vpn_address": "10.88.4.4"}}}',
        "dc2-s1": "",
    }
    result = tinc_plan(["dc1-s1", "dc2-s1"], HOSTVARS, "10.88.0.0/16", manifests=manifests)
    assert [result["nodes"][h]["vpn_address"] for h in ("dc1-s1", "dc2-s1")] == ["10.88.3.3", "10.88.4.4"]
    assert result["revoked"] == {"dc1-s1": [], "dc2-s1": []}
    assert tinc_plan(["dc1-s1"], HOSTVARS, "10.88.0.0/16", manifests=manifests)["revoked"]["dc1-s1"] == ["dc2_s1"]


def test_custom_variable_names():
    hv = {"a": {"site": "x", "wan": "192.0.2.1"}}
    result = tinc_plan(["a"], hv, "10.88.0.0/16", dc_var="site", address_var="wan")
    assert result["nodes"]["a"]["address"] == "192.0.2.1"


@pytest.mark.parametrize("members, kw, words", [
    (["dc1-s1", "nope"], {}, "host nope is not in the inventory"),
    ("dc1-s1", {}, "must be a list of host names"),
    (["dc1-s1", "dc2-s1"], {"hubs": ["dc9-s1"]}, "tinc VPN: hub dc9-s1 is not a member"),
    (["dc1-s2"], {"subnet": "10.99.0.0/16"}, "outside the VPN subnet"),
])
def test_errors(members, kw, words):
    subnet = kw.pop("subnet", "10.88.0.0/16")
    with pytest.raises(AnsibleFilterError, match=words):
        tinc_plan(members, HOSTVARS, subnet, **kw)
