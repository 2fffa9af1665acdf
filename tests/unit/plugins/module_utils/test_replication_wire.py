"""replication_wire: many framed streams and messages over one byte stream; cut-off streams detected."""
import io

import pytest

from ansible_collections.smc.backend.plugins.module_utils import replication_wire as w


def test_messages_and_streams_share_one_connection():
    buf = io.BytesIO()
    w.write_message(buf, {"op": "recv", "dataset": "tank/projects/a"})
    payload = bytes(range(256)) * 5000
    assert w.write_frames(buf, io.BytesIO(payload), size=4096) == len(payload)
    w.write_message(buf, {"op": "bye"})
    buf.seek(0)
    assert w.read_message(buf)["dataset"] == "tank/projects/a"
    got = []
    assert w.read_frames(buf, got.append) == len(payload)
    assert b"".join(got) == payload
    assert w.read_message(buf) == {"op": "bye"}
    assert w.read_message(buf) is None


def test_a_stream_cut_off_midway_is_an_error_not_a_short_success():
    buf = io.BytesIO()
    w.write_frames(buf, io.BytesIO(b"x" * 10000), size=1000)
    cut = io.BytesIO(buf.getvalue()[:5500])
    with pytest.raises(w.WireError, match="connection ended"):
        w.read_frames(cut, lambda data: None)


@pytest.mark.parametrize("line", [b"not json\n", b"[1,2]\n", b'{"op": "x"}'])
def test_bad_lines_are_refused(line):
    with pytest.raises(w.WireError):
        w.read_message(io.BytesIO(line))


def test_oversized_frame_is_refused():
    with pytest.raises(w.WireError, match="larger"):
        w.read_frames(io.BytesIO(b"\xff\xff\xff\xff"), lambda data: None)
