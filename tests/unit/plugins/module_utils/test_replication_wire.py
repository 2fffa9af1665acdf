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


class FakeClock:
    """time.monotonic and time.sleep for RateLimit: sleeping moves the clock."""

    def __init__(self):
        self.now, self.slept = 100.0, 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.now += seconds
        self.slept += seconds


def test_rate_limit_passes_every_byte_at_the_rate():
    t, out = FakeClock(), io.BytesIO()
    data = bytes(range(256)) * 4096 * 10  # 10 MiB
    limited = w.RateLimit(out, 1 << 20, clock=t.clock, sleep=t.sleep)
    for i in range(0, len(data), 65536):
        limited.write(data[i:i + 65536])
    assert out.getvalue() == data
    assert 8.9 <= t.slept <= 9.1  # one second of bytes may go at once, the other nine wait


def test_rate_limit_does_not_save_up_a_burst_while_idle():
    t, out = FakeClock(), io.BytesIO()
    limited = w.RateLimit(out, 1000, clock=t.clock, sleep=t.sleep)
    t.now += 3600  # an hour without writes
    limited.write(b"x" * 3000)
    assert 1.9 <= t.slept <= 2.1 and out.getvalue() == b"x" * 3000


def test_frames_through_a_rate_limit_read_back_the_same():
    t, out = FakeClock(), io.BytesIO()
    payload = bytes(range(200)) * 5000
    w.write_frames(w.RateLimit(out, 300000, clock=t.clock, sleep=t.sleep), io.BytesIO(payload), size=4096)
    got = []
    assert w.read_frames(io.BytesIO(out.getvalue()), got.append) == len(payload)
    assert b"".join(got) == payload and t.slept > 2


@pytest.mark.parametrize("rate", [0, -1, 1.5, "10M", True, None])
def test_rate_limit_refuses_a_rate_that_is_not_a_positive_whole_number(rate):
    with pytest.raises(ValueError, match="rate must be a whole number"):
        w.RateLimit(io.BytesIO(), rate)
