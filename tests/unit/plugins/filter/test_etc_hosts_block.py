"""etc_hosts_block (roles/storage_host's /etc/hosts block): every line is a checked IP address and a DNS name; a
hostile private_ip or host name fails naming the host and the field, so no value adds a line to /etc/hosts."""
import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.filter.etc_hosts_block import etc_hosts_block

LAB = {"dc%d-s%d" % (d, s): {"dc": "dc%d" % d, "private_ip": "10.77.0.%d" % (10 + 2 * (d - 1) + s)}
       for d in (1, 2, 3) for s in (1, 2)}
HOSTILE_IPS = ["10.77.0.11\n10.0.0.1 evil", "fe80::1%x\n1.2.3.4 evil", "fe80::1%eth0", "10.77.0.11 ", " 10.77.0.11",
               "10.77.0.300", "dc1-s1", "", None, 10, ["10.77.0.11"], "10.77.0.11/24", "::1\r"]
HOSTILE_NAMES = ["a\nb", "a b", "-a", "a-", "a..b", ".a", "a_b", "x" * 64, "10.1.2.3", "\u00e9", "", "a/b", "a\tb"]


def test_the_lab_block_is_what_the_role_wrote_before():
    block = etc_hosts_block(sorted(LAB), LAB)
    assert block == "".join("%s %s\n" % (LAB[h]["private_ip"], h) for h in sorted(LAB))
    assert etc_hosts_block([], LAB) == ""


def test_hosts_without_a_private_ip_are_left_out_and_ipv6_passes():
    hostvars = dict(LAB, **{"dc1-s1": {"dc": "dc1"}, "dc1-s2": {"private_ip": "fd00::12"}})
    assert etc_hosts_block(["dc1-s1", "dc1-s2", "dc2-s1"], hostvars) == "fd00::12 dc1-s2\n10.77.0.13 dc2-s1\n"
    assert etc_hosts_block(["s1.dc1.example.com"], {"s1.dc1.example.com": {"ip": "10.0.0.1"}}, address_var="ip") \
        == "10.0.0.1 s1.dc1.example.com\n"


@pytest.mark.parametrize("value", HOSTILE_IPS)
def test_a_hostile_private_ip_is_refused_naming_host_field_and_fix(value):
    hostvars = dict(LAB, **{"dc1-s1": {"private_ip": value}})
    with pytest.raises(AnsibleFilterError) as exc:
        etc_hosts_block(sorted(hostvars), hostvars)
    assert str(exc.value).startswith("private_ip of dc1-s1: ")
    assert "is not an IP address; set it to the host's private address" in str(exc.value)
    assert "\n" not in str(exc.value)  # shown escaped: the message is one line


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_host_name_is_refused(name):
    hostvars = dict(LAB, **{name: {"private_ip": "10.77.0.99"}})
    with pytest.raises(AnsibleFilterError, match="host name .* is not a DNS name.*rename the host"):
        etc_hosts_block(sorted(hostvars), hostvars)


def test_every_problem_is_named_at_once_and_shapes_are_checked():
    hostvars = dict(LAB, **{"dc1-s1": {"private_ip": "x"}, "dc2-s2": {"private_ip": "fe80::1%1"}, "a b": {}})
    with pytest.raises(AnsibleFilterError) as exc:
        etc_hosts_block(sorted(hostvars) + ["ghost"], hostvars)
    msg = str(exc.value)
    assert all(part in msg for part in ("private_ip of dc1-s1", "private_ip of dc2-s2", 'host name "a b"',
                                        "host ghost is not in the inventory"))
    for hosts, hv in (("dc1-s1", LAB), ({"dc1-s1": 1}, LAB), (["dc1-s1"], ["dc1-s1"])):
        with pytest.raises(AnsibleFilterError, match="etc_hosts_block"):
            etc_hosts_block(hosts, hv)


@settings(max_examples=100, deadline=None)
@given(value=st.text(min_size=1, max_size=20))
def test_whatever_passes_is_one_line_of_an_ip_and_the_name(value):
    try:
        block = etc_hosts_block(["dc1-s1"], {"dc1-s1": {"private_ip": value}})
    except AnsibleFilterError as exc:
        assert "private_ip of dc1-s1" in str(exc)
        return
    assert block == value + " dc1-s1\n" and block.count("\n") == 1 and " " not in value
