"""fleet_status and fleet_status_text filters."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.filter.fleet_status import FilterModule, fleet_status
from ansible_collections.smc.backend.plugins.filter.fleet_status_text import FilterModule as TextFilters
from ansible_collections.smc.backend.plugins.filter.fleet_status_text import fleet_status_text

HOSTVARS = {"a": {"dc": "dc1", "status_zpool": {"rc": 0, "stdout": "tank\tONLINE\t100\t50\t50\n"},
                  "status_agent": {"rc": 0, "stdout": '{"replication": {"d": {"b": {"lag_seconds": 5}}}}'}},
            "b": {"dc": "dc2"}}


def test_summary_from_hostvars():
    s = fleet_status(["a", "b"], HOSTVARS, now="1700000000")
    assert s["dcs"] == {"dc1": ["a"], "dc2": ["b"]}
    assert s["unreachable"] == ["b"]
    assert s["replication"]["lag_seconds"]["max"] == 5.0
    assert fleet_status_text(s)[0] == "2 storage hosts in 2 DCs (dc1: 1, dc2: 1); not reached: b"


@pytest.mark.parametrize("hosts, hostvars, now, match", [
    ("a", HOSTVARS, None, "list of host names"), (["zz"], HOSTVARS, None, "not in hostvars"),
    (["a"], HOSTVARS, "soon", "Unix time"),
])
def test_bad_input(hosts, hostvars, now, match):
    with pytest.raises(AnsibleFilterError, match=match):
        fleet_status(hosts, hostvars, now=now)


def test_text_needs_a_summary():
    with pytest.raises(AnsibleFilterError, match="summary of smc.backend.fleet_status"):
        fleet_status_text({"hosts": []})


def test_registered():
    assert FilterModule().filters()["fleet_status"] is fleet_status
    assert TextFilters().filters()["fleet_status_text"] is fleet_status_text
