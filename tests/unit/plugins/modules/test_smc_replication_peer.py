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
