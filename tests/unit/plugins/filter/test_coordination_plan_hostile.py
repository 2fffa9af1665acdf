"""coordination_plan against generated hostile host variables: every one is refused naming the field, never
reaches a member's config file."""
import re

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import assume, given, settings, strategies as st

from ansible_collections.smc.backend.plugins.filter.coordination_plan import coordination_plan

HOSTS = ["e1", "e2", "e3"]
TLS = {"ca": "/etc/smc-etcd/pki/ca.crt", "cert": "/etc/smc-etcd/pki/member.crt", "key": "/etc/smc-etcd/pki/member.key"}
INJECT = st.one_of(
    st.sampled_from(["x\ninitial-cluster-state: new", "e1\n", "a b", "-f", "..", "/", "a/b", "\"q", "'", "\u00e9",
                     "", "10.0.0.1,e9=https://evil:2380", "10.0.0.1\n", "0x0a000001", "10.0.0.256", None, 7, [], {}]),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=10).map(lambda t: "e" + t + "\n"))
FIELD = {"private_ip": "address", "dc": "dc", "coordination_member_name": "name"}
VALID = {"private_ip": r"[0-9]{1,3}(\.[0-9]{1,3}){3}", "dc": r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}",
         "coordination_member_name": r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"}


def hostvars():
    return {h: {"private_ip": "10.77.0.%d" % (200 + i), "dc": "dc%d" % i} for i, h in enumerate(HOSTS, 1)}


@settings(max_examples=150, deadline=None)
@given(value=INJECT, var=st.sampled_from(sorted(FIELD)), host=st.sampled_from(HOSTS))
def test_a_hostile_host_variable_is_refused_naming_its_field(value, var, host):
    hv = hostvars()
    hv[host][var] = value
    # (a well-formed value is not hostile; an empty or absent name falls back to the inventory name)
    assume(not (isinstance(value, str) and re.fullmatch(VALID[var], value)))
    assume(not (var == "coordination_member_name" and value in ("", None, 7, [], {})))
    with pytest.raises(AnsibleFilterError) as err:
        coordination_plan(HOSTS, hv, TLS, "/var/lib/smc-etcd")
    assert "[%d].%s" % (HOSTS.index(host), FIELD[var]) in str(err.value), str(err.value)


@settings(max_examples=60, deadline=None)
@given(token=INJECT)
def test_a_hostile_cluster_token_is_refused(token):
    assume(not (isinstance(token, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", token)))
    with pytest.raises(AnsibleFilterError, match="coordination_cluster_token"):
        coordination_plan(HOSTS, hostvars(), TLS, "/var/lib/smc-etcd", cluster_token=token)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["heartbeat_ms", "election_ms", "snapshot_count", "quota_backend_bytes", "compaction_hours"]),
       value=st.one_of(st.integers(-10 ** 12, 0), st.text(max_size=5), st.booleans(), st.none(), st.floats()))
def test_hostile_timings_are_refused_naming_the_setting(key, value):
    with pytest.raises(AnsibleFilterError, match="coordination_" + key):
        coordination_plan(HOSTS, hostvars(), TLS, "/var/lib/smc-etcd", timings={key: value})
