"""The tinc mesh on the lab: every host reaches every VPN address, also with one hub down; private keys
stay on their host with mode 0600 and never show in Ansible's output.

Tests never read a private key's text (a test's output could carry it): they compare fingerprints that
the host computes itself.
"""
import base64
import binascii
import hashlib
import json
import os
import re

import pytest
import testinfra
import testinfra.utils.ansible_runner

NET = "smc"
DIR = f"/etc/tinc/{NET}"
# One hub per DC (molecule/tinc/vars/lab.yml): dc1-s1 is a hub, dc1-s2 reaches the rest through another.
HUB_TO_STOP = "dc1-s1"
LOG = os.path.join(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."), "ansible.log")

# Pings every address at once, retrying each for up to $1 seconds; prints the ones that never answer.
PING_ALL = r"""
end=$(( $(date +%s) + {wait} ))
for ip in {ips}; do
  ( until ping -c1 -W2 "$ip" >/dev/null 2>&1; do
      [ "$(date +%s)" -ge "$end" ] && {{ echo "$ip"; exit 0; }}
      sleep 1
    done ) &
done
wait
"""


@pytest.fixture(scope="module", name="lab")
def fixture_lab(pytestconfig):
    """Every lab host by name, for tests that act on several hosts at once."""
    inventory = pytestconfig.option.ansible_inventory
    names = testinfra.utils.ansible_runner.AnsibleRunner(inventory).get_hosts("storage")
    assert len(names) == 6, names
    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}") for name in names}


def _manifest(host):
    return json.loads(host.check_output(f"cat {DIR}/.smc-managed"))["members"]


def _unreachable(host, ips, wait=120):
    out = host.check_output("bash -c %s", PING_ALL.format(wait=wait, ips=" ".join(ips)))
    return sorted(out.split())


def _pubkey_fingerprint(host, path, private=False):
    """sha256 of the DER public key in ``path`` (a private key or a tinc host file), computed on the host."""
    if private:
        cmd = f"openssl rsa -in {path} -RSAPublicKey_out -outform DER 2>/dev/null | sha256sum"
    else:
        cmd = (f"sed -n '/BEGIN RSA PUBLIC KEY/,/END RSA PUBLIC KEY/p' {path} "
               "| openssl rsa -RSAPublicKey_in -RSAPublicKey_out -outform DER 2>/dev/null | sha256sum")
    return host.check_output(cmd).split()[0]


def test_members_have_unique_addresses_in_the_subnet(host):
    members = _manifest(host)
    assert len(members) == 6
    addrs = [m["vpn_address"] for m in members.values()]
    assert len(set(addrs)) == 6 and all(a.startswith("10.88.") for a in addrs)
    me = host.check_output("hostname")
    assert f"inet {members[me]['vpn_address']}/16" in host.check_output(f"ip -4 addr show dev {NET}")


def test_unit_enabled_and_running(host):
    assert host.service(f"tinc@{NET}").is_running
    assert host.service(f"tinc@{NET}").is_enabled
    assert host.service("tinc").is_enabled


def test_connect_to_is_bounded_and_never_everyone(host):
    lines = [ln for ln in host.file(f"{DIR}/tinc.conf").content_string.splitlines() if ln.startswith("ConnectTo")]
    assert 1 <= len(lines) <= 3
    assert "PMTUDiscovery = yes" in host.file(f"{DIR}/hosts/{host.check_output('hostname').replace('-', '_')}").content_string


def test_every_host_pings_every_vpn_address(host):
    ips = [m["vpn_address"] for m in _manifest(host).values()]
    assert _unreachable(host, ips) == []


def test_private_key_mode_0600_and_only_our_own(host):
    key = host.file(f"{DIR}/rsa_key.priv")
    assert key.exists and key.user == "root" and key.mode == 0o600
    # The only private key under /etc/tinc is this host's own.
    holders = host.check_output("grep -rl 'PRIVATE KEY' /etc/tinc || true").split()
    assert holders == [f"{DIR}/rsa_key.priv"]


def test_private_key_matches_only_this_hosts_public_file(host):
    me = host.check_output("hostname").replace("-", "_")
    mine = _pubkey_fingerprint(host, f"{DIR}/rsa_key.priv", private=True)
    files = host.check_output(f"ls {DIR}/hosts").split()
    assert len(files) == 6
    matches = [name for name in files if _pubkey_fingerprint(host, f"{DIR}/hosts/{name}") == mine]
    assert matches == [me]


def test_no_private_key_of_one_host_on_another(lab):
    own = {name: _pubkey_fingerprint(h, f"{DIR}/rsa_key.priv", private=True) for name, h in lab.items()}
    assert len(set(own.values())) == len(lab) == 6


def _private_line_hashes(host):
    """sha256 of each base64 line of the host's private key, computed on the host."""
    out = host.check_output(f"sed '/-----/d' {DIR}/rsa_key.priv | while read -r l; do printf %s \"$l\" | sha256sum; done")
    return {line.split()[0] for line in out.splitlines()}


def test_no_private_key_in_ansible_output(lab):
    with open(LOG, encoding="utf-8", errors="replace") as f:
        text = f.read()
    assert "tinc" in text and "Generate this host's RSA key pair" in text
    assert "PRIVATE KEY" not in text
    secret = set().union(*(_private_line_hashes(h) for h in lab.values()))
    assert len(secret) >= 6 * 20
    tokens = set(re.findall(r"[A-Za-z0-9+/=]{40,}", text))
    assert not {hashlib.sha256(t.encode()).hexdigest() for t in tokens} & secret
    # Base64 in module results (slurp) decodes to public keys only.
    for token in tokens:
        try:
            assert b"PRIVATE KEY" not in base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            continue


def test_all_pairs_still_reach_each_other_with_one_hub_down(lab):
    hosts = lab
    members = _manifest(hosts[HUB_TO_STOP])
    assert members[HUB_TO_STOP]["vpn_address"]
    others = [m["vpn_address"] for name, m in members.items() if name != HUB_TO_STOP]
    hub = hosts[HUB_TO_STOP]
    hub.check_output(f"systemctl stop tinc@{NET}")
    try:
        failures = {name: _unreachable(h, others, wait=120) for name, h in hosts.items() if name != HUB_TO_STOP}
        assert failures == {name: [] for name in failures}
    finally:
        hub.check_output(f"systemctl start tinc@{NET}")
    assert _unreachable(hub, others) == []
