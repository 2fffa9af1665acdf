"""tls_identity and tls_sign with the real openssl: the key made on the host and never returned, a request
only when needed, check mode changing nothing, a second run changing nothing, hostile input refused."""
import contextlib
import io
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.modules import tls_identity, tls_sign


def run(module, check=False, **args):
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=True)), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(out.getvalue())


@pytest.fixture(name="paths")
def fixture_paths(tmp_path):
    (tmp_path / "pki").mkdir()
    return {"key_path": str(tmp_path / "pki" / "m.key"), "cert_path": str(tmp_path / "pki" / "m.crt"),
            "ca_path": str(tmp_path / "pki" / "ca.crt"), "common_name": "etcd-dc1",
            "subject_alt_names": ["10.77.0.11", "127.0.0.1"]}


def test_check_mode_makes_no_ca_and_signs_nothing(tmp_path):
    r = run(tls_sign, check=True, ca_dir=str(tmp_path / "ca"))
    assert r["changed"] and r["ca_created"] and r["ca_certificate"] == ""
    assert not os.path.exists(str(tmp_path / "ca"))
    r = run(tls_sign, ca_dir=str(tmp_path / "ca"), create_ca=False)
    assert r["failed"] and "restore the CA from backup" in r["msg"]


def test_key_request_certificate_then_nothing_to_do(tmp_path, paths):
    ca = run(tls_sign, ca_dir=str(tmp_path / "ca"))
    assert ca["changed"] and "BEGIN CERTIFICATE" in ca["ca_certificate"] and "PRIVATE" not in json.dumps(ca)
    assert not run(tls_sign, ca_dir=str(tmp_path / "ca"))["changed"]
    first = run(tls_identity, check=True, ca_certificate=ca["ca_certificate"], **paths)
    assert first["changed"] and first["needs_certificate"] and not os.path.exists(paths["key_path"])
    first = run(tls_identity, ca_certificate=ca["ca_certificate"], **paths)
    assert first["changed"] and first["problems"] == ["no certificate yet"] and "BEGIN CERTIFICATE REQUEST" in first["csr"]
    assert os.stat(paths["key_path"]).st_mode & 0o777 == 0o600 and "PRIVATE" not in json.dumps(first)
    signed = run(tls_sign, ca_dir=str(tmp_path / "ca"), csr=first["csr"], common_name="etcd-dc1",
                 subject_alt_names=paths["subject_alt_names"])
    written = run(tls_identity, ca_certificate=ca["ca_certificate"], certificate=signed["certificate"], **paths)
    assert written["changed"] and "csr" not in written
    assert [d["after_header"] for d in written["diff"]] == [paths["cert_path"]]
    again = run(tls_identity, ca_certificate=ca["ca_certificate"], **paths)
    assert not again["changed"] and not again["needs_certificate"] and "csr" not in again
    # Another name asked for: a new request for the same key.
    renamed = run(tls_identity, ca_certificate=ca["ca_certificate"], **dict(paths, subject_alt_names=["10.77.0.12"]))
    assert renamed["needs_certificate"] and "names" in renamed["problems"][0] and not renamed["changed"]


def test_a_certificate_for_another_key_is_refused(tmp_path, paths):
    ca = run(tls_sign, ca_dir=str(tmp_path / "ca"))
    other = dict(paths, key_path=str(tmp_path / "pki" / "other.key"), cert_path=str(tmp_path / "pki" / "other.crt"))
    csr = run(tls_identity, ca_certificate=ca["ca_certificate"], **other)["csr"]
    cert = run(tls_sign, ca_dir=str(tmp_path / "ca"), csr=csr, common_name="etcd-dc1",
               subject_alt_names=paths["subject_alt_names"])["certificate"]
    run(tls_identity, ca_certificate=ca["ca_certificate"], **paths)
    r = run(tls_identity, ca_certificate=ca["ca_certificate"], certificate=cert, **paths)
    assert r["failed"] and "issued for another key" in r["msg"]
    assert not os.path.exists(paths["cert_path"])


@pytest.mark.parametrize("change, words", [
    ({"key_path": "relative/m.key"}, "key_path"), ({"cert_path": "/tmp/../etc/m.crt"}, "cert_path"),
    ({"common_name": "-etcd"}, "common_name"), ({"common_name": "a\nb"}, "common_name"),
    ({"subject_alt_names": ["10.0.0.1,DNS:evil"]}, "subject_alt_names[0]"), ({"renew_days": -1}, "renew_days"),
    ({"group": "no-such-group-here"}, "group"),
])
def test_hostile_input_is_refused_naming_the_field(tmp_path, paths, change, words):
    ca = run(tls_sign, ca_dir=str(tmp_path / "ca"))
    r = run(tls_identity, ca_certificate=ca["ca_certificate"], **dict(paths, **change))
    assert r["failed"] and words in r["msg"], r["msg"]
    assert os.listdir(str(tmp_path / "pki")) == []


def test_a_link_at_the_key_path_is_refused(tmp_path, paths):
    ca = run(tls_sign, ca_dir=str(tmp_path / "ca"))
    os.symlink("/etc/passwd", paths["key_path"])
    r = run(tls_identity, ca_certificate=ca["ca_certificate"], **paths)
    assert r["failed"] and "symbolic link" in r["msg"]


HOSTILE = st.one_of(
    st.sampled_from(["-subj", "a/b", "..", "a..b", "a\nb", "a,DNS:evil", "a b", "", "\u00e9t\u00e9", "x" * 80, "a=b",
                     "CN=x/O=y", "1.2.3.4\n"]),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12).map(lambda t: "h" + t + "\n"))


@settings(max_examples=60, deadline=None)
@given(value=HOSTILE, field=st.sampled_from(["common_name", "san"]))
def test_generated_hostile_names_are_refused_before_any_file_is_written(tmp_path_factory, value, field):
    tmp = tmp_path_factory.mktemp("h")
    (tmp / "pki").mkdir()
    ca = run(tls_sign, ca_dir=str(tmp / "ca"))
    paths = {"key_path": str(tmp / "pki" / "m.key"), "cert_path": str(tmp / "pki" / "m.crt"),
             "ca_path": str(tmp / "pki" / "ca.crt"), "common_name": "etcd-dc1", "subject_alt_names": []}
    if field == "common_name":
        paths["common_name"] = value
    else:
        paths["subject_alt_names"] = [value]
    r = run(tls_identity, ca_certificate=ca["ca_certificate"], **paths)
    assert r["failed"] and ("common_name" in r["msg"] or "subject_alt_names" in r["msg"]), r
    assert os.listdir(str(tmp / "pki")) == []
    signed = run(tls_sign, ca_dir=str(tmp / "ca"), csr="-----BEGIN CERTIFICATE REQUEST-----", common_name=value
                 if field == "common_name" else "etcd-dc1", subject_alt_names=[] if field == "common_name" else [value])
    assert signed["failed"] and "certificate" not in signed
