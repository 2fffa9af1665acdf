"""tinc_files: hostile file names, modes, contents and symbolic links are refused before anything is written;
the private key is never written, removed, read or shown."""
import contextlib
import io
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings, strategies as st

from ansible_collections.smc.backend.plugins.modules import tinc_files as tf

PRIV = "-----BEGIN RSA PRIVATE KEY-----\nMIIsecret\n-----END RSA PRIVATE KEY-----\n"
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=12)
HOSTILE_NAMES = st.one_of(
    st.sampled_from(["rsa_key.priv", "hosts/rsa_key.priv", "../rsa_key.priv", "/etc/passwd", "..", ".", "", "hosts/",
                     "hosts/a/b", "hosts/../rsa_key.priv", "hosts/a\n", "tinc.conf\n", "rsa_key.pub", "x",
                     "hosts/a-b", "hosts/\u00e9", "-f", "sub/tinc.conf", "tinc.conf/"]),
    TEXT.map(lambda t: "hosts/" + t + "/"), TEXT.filter(lambda t: tf.check_relpath(t) is not None))


def run(base, **args):
    out = io.StringIO()
    with patch_module_args(dict(path=str(base), **args)), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        tf.main()
    return json.loads(out.getvalue())


def snapshot(base):
    return sorted((os.path.relpath(os.path.join(d, f), base), open(os.path.join(d, f), "rb").read())
                  for d, _dirs, files in os.walk(base) for f in files)


@pytest.fixture
def netdir(tmp_path):
    base = tmp_path / "smc"
    (base / "hosts").mkdir(parents=True)
    (base / "rsa_key.priv").write_text(PRIV)
    (base / "tinc.conf").write_text("Name = a\n")
    return base


@settings(max_examples=80, deadline=None)
@given(rel=HOSTILE_NAMES, where=st.sampled_from(["files", "absent", "executables"]))
def test_hostile_names_are_refused_and_nothing_changes(tmp_path_factory, rel, where):
    base = tmp_path_factory.mktemp("net")
    (base / "rsa_key.priv").write_text(PRIV)
    before = snapshot(base)
    args = {"files": {rel: "Name = x\n"}} if where == "files" else {where: [rel]}
    if where == "executables":
        args["files"] = {"tinc-up": "#!/bin/sh\n"}
    res = run(base, _ansible_diff=True, **args)
    assert res.get("failed") and "Nothing was changed" in res["msg"], (rel, res)
    assert "MIIsecret" not in json.dumps(res) and snapshot(base) == before


@settings(max_examples=60, deadline=None)
@given(mode=st.one_of(st.sampled_from(["0777", "0666", "4755", "2755", "1644", "0622", "0400", "0044", "644\n",
                                       "-1", "", "0x1a4", "99999", "rwx"]), TEXT))
def test_insane_modes_are_refused(tmp_path_factory, mode):
    if tf.parse_mode(mode) is not None:
        return
    base = tmp_path_factory.mktemp("net")
    res = run(base, files={"tinc.conf": "Name = a\n"}, mode=mode)
    assert res.get("failed") and "mode" in res["msg"] and not (base / "tinc.conf").exists(), res


@pytest.mark.parametrize("mode, ok", [("0644", True), ("644", True), ("0600", True), ("0640", True), ("0755", True),
                                      ("0664", False), ("0200", False)])
def test_sane_modes(mode, ok):
    assert (tf.parse_mode(mode) is not None) is ok


@settings(max_examples=60, deadline=None)
@given(value=st.sampled_from(["10.77.0.11\nSubnet = 0.0.0.0/0 x", "a\rb", "x\x1bc", "\x7f"]) | TEXT.map(
    lambda t: "Subnet = 10.88.0.1/32\n" + t + " " + t))
def test_injected_lines_in_config_files_are_refused(tmp_path_factory, value):
    if tf.check_content("hosts/a", "Address = " + value + "\n") is None:
        return  # the text happened to form only well-formed lines
    base = tmp_path_factory.mktemp("net")
    for rel in ("tinc.conf", "hosts/a"):
        res = run(base, files={rel: "# managed\nAddress = " + value + "\n"})
        assert res.get("failed") and rel in res["msg"] and not (base / rel).exists(), res


def test_private_key_content_is_never_written_or_echoed(netdir):
    res = run(netdir, files={"hosts/a": "Subnet = 10.88.0.1/32\n" + PRIV}, _ansible_diff=True)
    assert res.get("failed") and "private key" in res["msg"] and "MIIsecret" not in json.dumps(res)
    assert not (netdir / "hosts" / "a").exists()


@pytest.mark.parametrize("link", ["tinc.conf", "hosts/a", "hosts", "."])
def test_symbolic_links_are_never_followed(netdir, tmp_path, link):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "x").write_text("outside\n")
    if link == ".":
        base = tmp_path / "linked"
        base.symlink_to(netdir)
    else:
        base = netdir
        path = netdir / link
        if path.is_dir():
            os.rmdir(path)
        elif path.exists():
            path.unlink()
        path.symlink_to(target if link == "hosts" else netdir / "rsa_key.priv")
    before = snapshot(netdir), snapshot(target)
    for args in ({"files": {"tinc.conf": "Name = b\n", "hosts/a": "Subnet = 10.88.0.2/32\n"}},
                 {"absent": ["hosts/a", "tinc.conf"]}):
        res = run(base, _ansible_diff=True, **args)
        assert res.get("failed") and "symbolic link" in res["msg"], (link, res)
        assert "MIIsecret" not in json.dumps(res)
    assert (snapshot(netdir), snapshot(target)) == before


def test_lab_files_still_pass(netdir):
    files = {"tinc.conf": "# Managed\nName = dc1_s1\nInterface = smc\nConnectTo = dc2_s1\n",
             "tinc-up": "#!/bin/sh\nip link set dev \"$INTERFACE\" up\n", ".smc-managed": '{"members": {}}\n',
             "hosts/dc1_s1": ("# Managed by Ansible (smc.backend.tinc): dc1-s1 (dc1, hub).\nAddress = 10.77.0.11 655\n"
                              "Port = 655\nSubnet = 10.88.1.1/32\n-----BEGIN RSA PUBLIC KEY-----\nMIIBCgKCAQEAx+/=\n"
                              "-----END RSA PUBLIC KEY-----\n")}
    res = run(netdir, files=files, executables=["tinc-up"], _ansible_diff=True)
    assert res["changed"] and not res.get("failed"), res
    assert (netdir / "rsa_key.priv").read_text() == PRIV and "MIIsecret" not in json.dumps(res)
