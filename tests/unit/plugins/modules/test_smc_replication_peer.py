"""smc_replication.Peer (roles/zfs_storage/files): one connection per target, through replication.bwlimit's
rate limit when one is set; here the connection is a local process that answers like the receiver."""
import sys

import pytest

# test_smc_ha puts the agent's files on sys.path
import test_smc_ha  # noqa: F401  pylint: disable=import-error,unused-import
import smc_replication  # noqa: E402  pylint: disable=import-error,wrong-import-position
import replication_wire  # noqa: E402  pylint: disable=import-error,wrong-import-position

# Answers the hello, then every message with ok, and counts the framed bytes it got.
RECEIVER = r"""
import json, struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
got = 0
while True:
    line = inp.readline()
    if not line:
        break
    msg = json.loads(line)
    if msg.get("op") == "bye":
        break
    if msg.get("op") == "data":
        while True:
            (n,) = struct.unpack(">I", inp.read(4))
            if not n:
                break
            got += len(inp.read(n))
        continue
    out.write((json.dumps({"ok": True, "got": got}) + "\n").encode())
    out.flush()
"""


def peer(bwlimit):
    cfg = {"replication": {"ssh_key": "/x", "known_hosts": "/x", "connect_timeout": 5, "user": "smc-recv",
                           "command": [sys.executable, "-c", RECEIVER], "bwlimit": bwlimit}}
    return smc_replication.Peer(cfg, "a", "b", "127.0.0.1")


@pytest.mark.parametrize("bwlimit", [0, 200000])
def test_a_peer_sends_everything_through_its_rate_limit_when_one_is_set(bwlimit, tmp_path):
    p = peer(bwlimit)
    try:
        assert isinstance(p.out, replication_wire.RateLimit) is bool(bwlimit)
        if bwlimit:
            assert p.out.rate == bwlimit
        src = tmp_path / "stream"
        src.write_bytes(b"z" * 300000)
        with open(src, "rb") as f:
            assert p.send(f, op="data") == 300000
        assert p.call(op="state")["got"] == 300000
    finally:
        p.close()


def repl(tmp_path, persist):
    return {"ssh_key": "/etc/smc/repl/id_ed25519", "known_hosts": "/etc/smc/repl/known_hosts", "connect_timeout": 60,
            "user": "smc-recv", "persist": persist, "control_dir": str(tmp_path / "ssh")}


def test_with_persist_sessions_share_a_master_connection_in_a_private_directory(tmp_path):
    args = smc_replication.ssh_command(repl(tmp_path, 60), "10.0.0.2")
    assert args[-3:] == ["smc-recv", "10.0.0.2", "receive"] and args[-4] == "-l"
    assert "ControlMaster=auto" in args and "ControlPersist=60" in args
    assert "ControlPath=%s/%%C" % (tmp_path / "ssh") in args
    assert (tmp_path / "ssh").stat().st_mode & 0o777 == 0o700
    assert "StrictHostKeyChecking=yes" in args and "ServerAliveCountMax=3" in args


def test_without_persist_every_session_is_a_connection_of_its_own(tmp_path):
    args = smc_replication.ssh_command(repl(tmp_path, 0), "10.0.0.2")
    assert not any(a.startswith("Control") for a in args)
    assert not (tmp_path / "ssh").exists()


def test_a_control_directory_left_open_to_others_is_closed_again(tmp_path):
    (tmp_path / "ssh").mkdir(mode=0o755)
    smc_replication.ssh_command(repl(tmp_path, 30), "10.0.0.2")
    assert (tmp_path / "ssh").stat().st_mode & 0o777 == 0o700
