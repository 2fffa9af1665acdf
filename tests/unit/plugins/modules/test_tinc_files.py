"""tinc_files: path checks, change detection, atomic writes (module logic without running Ansible)."""
import os

import pytest

from ansible_collections.smc.backend.plugins.modules import tinc_files as tf


@pytest.mark.parametrize("rel, ok", [
    ("tinc.conf", True), ("tinc-up", True), (".smc-managed", True), ("hosts/dc1_s1", True),
    ("hosts/dc1-s1", False), ("hosts/../x", False), ("../tinc.conf", False), ("/etc/passwd", False),
    ("sub/dir", False), ("hosts/", False),
])
def test_check_relpath(rel, ok):
    assert (tf.check_relpath(rel) is None) is ok


def test_plan_write_and_converge(tmp_path):
    base = str(tmp_path / "net")
    files = {"tinc.conf": "Name = a\n", "tinc-up": "#!/bin/sh\n", "hosts/a": "Subnet = 10.88.0.1/32\n"}
    modes = {"tinc.conf": 0o644, "tinc-up": 0o755, "hosts/a": 0o644}
    to_write, to_remove = tf.plan_changes(base, files, ["hosts/gone"], modes)
    assert to_write == ["hosts/a", "tinc-up", "tinc.conf"] and to_remove == []
    for rel in to_write:
        tf.write_atomic(base, rel, files[rel], modes[rel])
    assert os.stat(os.path.join(base, "tinc-up")).st_mode & 0o777 == 0o755
    assert tf.plan_changes(base, files, [], modes) == ([], [])
    # A changed content, a changed mode, and a revoked host file.
    (tmp_path / "net" / "hosts" / "gone").write_text("old")
    os.chmod(os.path.join(base, "tinc.conf"), 0o600)
    files["hosts/a"] = "Subnet = 10.88.0.2/32\n"
    assert tf.plan_changes(base, files, ["hosts/gone", "hosts/never"], modes) == (["hosts/a", "tinc.conf"], ["hosts/gone"])
    assert not [n for n in os.listdir(os.path.join(base, "hosts")) if n.startswith(".tinc_files.")]


def test_a_file_in_both_files_and_absent_is_kept(tmp_path):
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "a").write_text("x")
    assert tf.plan_changes(str(tmp_path), {"hosts/a": "x"}, ["hosts/a"], {"hosts/a": 0o644})[1] == []
