"""tls_ca with the real openssl: a CA, keys and requests, signing with the caller's names, what a certificate
lacks, and a real etcd (Debian's etcd-server) that serves only clients with a certificate from that CA."""
import json
import os
import subprocess
import time

import pytest

from ansible_collections.smc.backend.plugins.module_utils import etcd_member, etcd_v3, tls_ca
from etcd_local import LocalEtcd  # pylint: disable=import-error


@pytest.fixture(name="ca")
def fixture_ca(tmp_path):
    pem, created = tls_ca.ensure_ca(str(tmp_path / "ca"), "unit-ca")
    assert created and "BEGIN CERTIFICATE" in pem
    return str(tmp_path / "ca"), pem


def issue(ca, tmp_path, name, sans, usage="server_client"):
    key = str(tmp_path / (name + ".key"))
    tls_ca.make_key(key)
    cert = tls_ca.sign(ca[0], tls_ca.make_csr(key, name), name, sans, usage)
    (tmp_path / (name + ".crt")).write_text(cert)
    return key, cert


def test_the_ca_is_made_once_and_its_key_is_private(ca):
    assert os.stat(os.path.join(ca[0], "ca.key")).st_mode & 0o777 == 0o600
    again, created = tls_ca.ensure_ca(ca[0], "unit-ca")
    assert again == ca[1] and not created


def test_a_ca_dir_holding_half_a_ca_is_refused(ca):
    os.unlink(os.path.join(ca[0], "ca.key"))
    with pytest.raises(tls_ca.TlsError, match="only one of ca.key and ca.crt"):
        tls_ca.ensure_ca(ca[0], "unit-ca")


def test_a_signed_certificate_is_fine_until_key_names_ca_or_time_differ(ca, tmp_path):
    key, cert = issue(ca, tmp_path, "etcd-dc1", ["10.77.0.201", "etcd-dc1"])
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert tls_ca.certificate_problems(cert, key, ca[1], "etcd-dc1", ["etcd-dc1", "10.77.0.201"]) == []
    assert tls_ca.certificate_problems(None, key, ca[1], "etcd-dc1", []) == ["no certificate yet"]
    assert tls_ca.certificate_problems(cert, key, ca[1], "etcd-dc2", ["10.77.0.201", "etcd-dc1"]) == [
        "its subject is CN=etcd-dc1, not CN=etcd-dc2"]
    assert "names" in tls_ca.certificate_problems(cert, key, ca[1], "etcd-dc1", ["10.77.0.9"])[0]
    assert tls_ca.certificate_problems(cert, key, ca[1], "etcd-dc1", ["10.77.0.201", "etcd-dc1"], 900) == [
        "expires within 900 days"]
    other_key = str(tmp_path / "other.key")
    tls_ca.make_key(other_key)
    assert tls_ca.certificate_problems(cert, other_key, ca[1], "etcd-dc1", ["10.77.0.201", "etcd-dc1"]) == [
        "issued for another key"]
    other_ca = tls_ca.ensure_ca(str(tmp_path / "other-ca"), "other")[0]
    assert tls_ca.certificate_problems(cert, key, other_ca, "etcd-dc1", ["10.77.0.201", "etcd-dc1"]) == [
        "not signed by the current CA"]


def test_signing_takes_names_and_usage_from_the_caller_not_the_request(ca, tmp_path):
    key = str(tmp_path / "k")
    tls_ca.make_key(key)
    csr = tls_ca.make_csr(key, "dc1-s2")
    with pytest.raises(tls_ca.TlsError, match="not CN=dc2-s2"):
        tls_ca.sign(ca[0], csr, "dc2-s2", [])
    cert = tls_ca.sign(ca[0], csr, "dc1-s2", [], usage="client")
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=cert, capture_output=True, text=True,
                          check=True).stdout
    assert "TLS Web Client Authentication" in text and "Server Authentication" not in text
    assert "CA:FALSE" in text


@pytest.mark.parametrize("name", ["-x", "a/b", "a..b", "a\nb", "", "a b", "x" * 80])
def test_hostile_names_are_refused_before_openssl_runs(ca, name):
    with pytest.raises(tls_ca.TlsError, match="not a certificate name"):
        tls_ca.sign(ca[0], "-----BEGIN CERTIFICATE REQUEST-----", name, [])
    assert tls_ca.san_error([name]) is not None


def test_etcd_serves_only_clients_with_a_certificate_from_the_ca(ca, tmp_path):
    etcd = LocalEtcd(tmp_path / "data", name="etcd-a")
    member = [{"name": "etcd-a", "address": "127.0.0.1", "dc": "dc1"}]
    key, _cert = issue(ca, tmp_path, "etcd-a", ["127.0.0.1"])
    crt = str(tmp_path / "etcd-a.crt")
    config = etcd_member.member_config("etcd-a", member, {"ca": os.path.join(ca[0], "ca.crt"), "cert": crt, "key": key},
                                       etcd.data_dir, client_port=etcd.client_port, peer_port=etcd.peer_port,
                                       local_client=False, metrics_port=0)
    path = tmp_path / "etcd.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([etcd.binary, "--config-file", str(path)], stdout=subprocess.DEVNULL,
                            stderr=open(str(tmp_path / "etcd.log"), "wb"))
    try:
        url = "https://127.0.0.1:%d" % etcd.client_port
        ckey = issue(ca, tmp_path, "dc1-s1", [], usage="client")[0]
        ccrt = str(tmp_path / "dc1-s1.crt")
        good = etcd_v3.Client([url], timeout=5.0, ca_file=os.path.join(ca[0], "ca.crt"), cert_file=ccrt, key_file=ckey)
        for _attempt in range(100):
            try:
                good.put("/smc/unit", "over tls")
                break
            except etcd_v3.EtcdError:
                time.sleep(0.2)
        assert good.range("/smc/unit")[0]["/smc/unit"][0] == "over tls"
        bare = etcd_v3.Client([url], timeout=3.0, ca_file=os.path.join(ca[0], "ca.crt"))
        with pytest.raises(etcd_v3.Unavailable):
            bare.range("/smc/unit")
        other = tls_ca.ensure_ca(str(tmp_path / "other-ca"), "other")[0]
        okey = str(tmp_path / "o.key")
        tls_ca.make_key(okey)
        (tmp_path / "o.crt").write_text(tls_ca.sign(str(tmp_path / "other-ca"), tls_ca.make_csr(okey, "dc1-s1"),
                                                    "dc1-s1", [], usage="client"))
        stranger = etcd_v3.Client([url], timeout=3.0, ca_file=os.path.join(ca[0], "ca.crt"),
                                  cert_file=str(tmp_path / "o.crt"), key_file=okey)
        with pytest.raises(etcd_v3.Unavailable):
            stranger.range("/smc/unit")
        assert other
    finally:
        proc.terminate()
        proc.wait(timeout=20)
