"""The status sampler of sluice-sweep (issue 12, item 6). Every status reply
ends with an empty line; a reader that stops at the first "\\n" takes that
empty line for the next reply, fails every other sample and reconnects."""

import json
import os
import socket
import threading

import pytest

from lab import status


class FakeStatus(threading.Thread):
    """A status socket that answers `stats json` like sluice: one JSON line,
    then an empty line. Counts connections and requests."""

    def __init__(self, path, chunk=None):
        super().__init__(daemon=True)
        self.path = path
        self.chunk = chunk  # send replies in pieces of this many bytes
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(path)
        self.lsock.listen(8)
        self.lsock.settimeout(5)
        self.connections = 0
        self.requests = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        with c:
            c.settimeout(5)
            while not self.done.is_set():
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line != b"stats json":
                        continue
                    self.requests += 1
                    reply = json.dumps({"n": self.requests, "uptime_s": 1.0}).encode() + b"\n\n"
                    step = self.chunk or len(reply)
                    for i in range(0, len(reply), step):
                        c.sendall(reply[i:i + step])

    def close(self):
        self.done.set()
        self.lsock.close()


@pytest.fixture
def fake(tmp_path):
    f = FakeStatus(str(tmp_path / "s.sock"))
    f.start()
    yield f
    f.close()


def test_sampler_gets_every_sample_on_one_connection(sweep, fake):
    s = sweep.StatusSampler(fake.path)
    try:
        got = [s.sample() for _ in range(6)]
    finally:
        if s.sock:
            s.sock.close()
    assert all(g is not None for g in got), got
    assert [g["n"] for g in got] == [1, 2, 3, 4, 5, 6]
    assert fake.connections == 1
    assert s.failures == 0
    assert len(s.samples) == 6


def test_read_reply_splits_on_the_empty_line():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(2)
        b.sendall(b'{"x":1}\n\n{"x":2}\n\n{"x"')
        r1, rest = status.read_reply(a)
        r2, rest = status.read_reply(a, rest)
        assert (json.loads(r1), json.loads(r2)) == ({"x": 1}, {"x": 2})
        b.sendall(b':3}\n')
        b.sendall(b'\n')
        r3, rest = status.read_reply(a, rest)
        assert json.loads(r3) == {"x": 3} and rest == b""


def test_read_reply_multi_line_and_closed_socket():
    a, b = socket.socketpair()
    with a:
        a.settimeout(2)
        b.sendall(b"line one\nline two\n\npartial")
        r, rest = status.read_reply(a)
        assert r == b"line one\nline two" and rest == b"partial"
        b.close()
        with pytest.raises(OSError):
            status.read_reply(a, rest)


def test_sampler_with_replies_in_pieces(sweep, tmp_path):
    f = FakeStatus(str(tmp_path / "p.sock"), chunk=3)
    f.start()
    s = sweep.StatusSampler(f.path)
    try:
        got = [s.sample() for _ in range(4)]
    finally:
        if s.sock:
            s.sock.close()
        f.close()
    assert [g["n"] for g in got] == [1, 2, 3, 4]
    assert f.connections == 1
