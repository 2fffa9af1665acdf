# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication session's framing: many datasets over one SSH connection (pure; ships to hosts).

A session is a sequence of messages on one byte stream each way. A message is one line of JSON (an object,
UTF-8, at most ``MAX_LINE`` bytes). A message with ``"stream": true`` is followed by the ZFS send stream in
frames: a 4-byte big-endian length, then that many bytes; a zero length ends the stream. A sender that dies
midway leaves a stream without its end frame: the receiver sees EOF and reports the receive as cut off (ZFS
keeps the resume token). Framing keeps the connection usable for the next dataset without knowing a stream's
size in advance.
"""

import json
import struct
import time

__all__ = ["WireError", "write_message", "read_message", "write_frames", "read_frames", "RateLimit", "MAX_LINE",
           "FRAME"]

MAX_LINE = 1 << 20
FRAME = 1 << 20
_LEN = struct.Struct(">I")


class WireError(Exception):
    """The peer broke the protocol or the connection ended."""


def write_message(out, message):
    data = json.dumps(message, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(data) >= MAX_LINE:
        raise WireError("message of %d bytes exceeds %d" % (len(data), MAX_LINE))
    out.write(data + b"\n")
    out.flush()


def read_message(inp):
    """The next message, or None at a clean end of the connection."""
    line = inp.readline(MAX_LINE + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise WireError("message line cut off or longer than %d bytes" % MAX_LINE)
    try:
        message = json.loads(line.decode("utf-8"))
    except ValueError as exc:
        raise WireError("message is not JSON: %s" % exc)
    if not isinstance(message, dict):
        raise WireError("message is not a JSON object")
    return message


def write_frames(out, source, size=FRAME):
    """Copy ``source`` (a binary file) to ``out`` in frames and end the stream. Returns the bytes copied."""
    total = 0
    while True:
        chunk = source.read(size)
        if not chunk:
            break
        out.write(_LEN.pack(len(chunk)))
        out.write(chunk)
        total += len(chunk)
    out.write(_LEN.pack(0))
    out.flush()
    return total


def read_frames(inp, sink):
    """Copy one framed stream from ``inp`` to ``sink`` (a callable taking bytes). Returns the bytes copied;
    raises WireError when the connection ends before the end frame."""
    total = 0
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            raise WireError("connection ended inside a stream after %d bytes" % total)
        (length,) = _LEN.unpack(head)
        if length == 0:
            return total
        if length > 16 * FRAME:
            raise WireError("frame of %d bytes is larger than allowed" % length)
        data = inp.read(length)
        if len(data) < length:
            raise WireError("connection ended inside a frame after %d bytes" % (total + len(data)))
        sink(data)
        total += length


class RateLimit:
    """A writer that hands bytes to ``out`` at ``rate`` bytes per second on average (a token bucket that holds
    at most one second of bytes, so an idle connection does not save up a burst): the bandwidth limit of one
    peer's connection (replication.bwlimit). ``clock`` and ``sleep`` are time.monotonic and time.sleep."""

    def __init__(self, out, rate, clock=time.monotonic, sleep=time.sleep):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
            raise ValueError("rate must be a whole number of bytes per second above 0, got %r" % (rate,))
        self.out, self.rate, self.clock, self.sleep = out, rate, clock, sleep
        self.tokens, self.last = float(rate), clock()

    def write(self, data):
        view = memoryview(data)
        while len(view):
            now = self.clock()
            self.tokens = min(float(self.rate), self.tokens + (now - self.last) * self.rate)
            self.last = now
            want = min(len(view), self.rate)
            if self.tokens + 0.5 < want:  # (less than a byte short is float rounding: go on)
                self.sleep(max((want - self.tokens) / self.rate, 0.001))
                continue
            self.out.write(view[:want])
            self.tokens -= want
            view = view[want:]
        return len(data)

    def flush(self):
        self.out.flush()

    def close(self):
        self.out.close()
