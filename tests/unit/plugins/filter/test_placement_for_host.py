"""placement_for_host filter."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.smc.backend.plugins.filter.placement_for_host import FilterModule, placement_for_host

PLACEMENT = {"p1": ["a", "b", "c"], "p2": ["b", "a", "d"], "p3": ["c", "d", "e"]}


def test_primary_and_replica_lists():
    assert placement_for_host(PLACEMENT, "a") == {"primary": ["p1"], "replica": ["p2"]}
    assert placement_for_host(PLACEMENT, "e") == {"primary": [], "replica": ["p3"]}
    assert placement_for_host(PLACEMENT, "zz") == {"primary": [], "replica": []}


def test_accepts_the_module_file_format():
    assert placement_for_host({"format": 1, "placement": PLACEMENT}, "b") == {"primary": ["p2"], "replica": ["p1"]}


@pytest.mark.parametrize("value, host", [([1], "a"), (PLACEMENT, ""), ({"p": "a"}, "a")])
def test_bad_input(value, host):
    with pytest.raises(AnsibleFilterError, match="placement_for_host"):
        placement_for_host(value, host)


def test_registered():
    assert FilterModule().filters()["placement_for_host"] is placement_for_host
