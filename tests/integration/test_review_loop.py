"""The reader and detector event loops against the real daemon (issue 14,
items 1, 9 and 11): timeouts still fire on a quiet server after a round that
ran longer than the sweep period, a lingering close keeps its 2 s bound, and
a request trickled byte by byte (head or body) is cut within its header
timeout.

A long round is made real, not simulated: the error log is a named pipe
whose consumer (this test) stops reading, as a stalled log shipper would.
sluice writes its log synchronously, so the thread whose sweep logs the
connections it timed out (log_level = debug) blocks in write(2) until the
test reads again: that sweep round lasts as long as the test wants.

Run: SLUICE_BUILD=build /usr/bin/python3 -m pytest -q tests/integration/test_review_loop.py
"""

import fcntl
import os
import platform
import select
import socket
import threading
import time

import pytest

import helpers
from helpers import RawConn, request

# System call numbers of write(2) and futex(2) (waiting for the log's lock),
# as /proc/PID/task/TID/syscall shows them.
BLOCKED_IN_LOG = {"x86_64": {"1", "202"}, "aarch64": {"64", "98"}}.get(platform.machine())


# --------------------------------------------------------------- the stalled log


class LogPipe:
    """A FIFO for [server] error_log, read by a thread of the test until
    stall(); resume() reads again. Holds what it read."""

    def __init__(self, path):
        self.path = str(path)
        os.mkfifo(self.path)
        # A reader exists before sluice opens the FIFO: its open does not block.
        self.rfd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(self.rfd, fcntl.F_SETPIPE_SZ, 4096)  # the smallest pipe
        self.text = b""
        self.flowing = threading.Event()
        self.flowing.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while not self.done.is_set():
            if not self.flowing.wait(0.05):
                continue
            r, _, _ = select.select([self.rfd], [], [], 0.05)
            if r:
                try:
                    self.text += os.read(self.rfd, 65536)
                except BlockingIOError:
                    pass

    def stall(self):
        """Stops reading and fills the pipe: sluice's next log line blocks."""
        self.flowing.clear()
        time.sleep(0.2)  # the drain thread is out of its read
        wfd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            for _ in range(10000):
                try:
                    os.write(wfd, b"#" * 512)
                except BlockingIOError:
                    break
            else:
                raise AssertionError("the log pipe never filled")
        finally:
            os.close(wfd)

    def resume(self):
        self.flowing.set()

    def close(self):
        self.flowing.set()
        self.done.set()
        self.thread.join(5)
        os.close(self.rfd)


def thread_id(pid, name):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return tid
        except OSError:
            pass
    raise AssertionError(f"no thread {name} in sluice")


def in_log_write(pid, tid):
    """Is the thread blocked writing the log (or waiting for its lock)?"""
    with open(f"/proc/{pid}/task/{tid}/syscall") as f:
        return f.read().split()[0] in BLOCKED_IN_LOG


def open_conns(server):
    return helpers.stats_json(server.status_socket)["connections"]["current"]


def closed_by(conn, deadline):
    """Reads CONN until the server closes it (EOF or reset), accepting a 408
    first, or until DEADLINE (time.monotonic()). Returns the close time or
    None."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        conn.sock.settimeout(left)
        try:
            data = conn.sock.recv(4096)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return time.monotonic()
        if not data:
            return time.monotonic()
        assert data.startswith(b"HTTP/1.1 408") or conn.buf, data[:200]
        conn.buf += data


@pytest.fixture
def log_pipe(tmp_path):
    if BLOCKED_IN_LOG is None:
        pytest.skip(f"system call numbers not known for {platform.machine()}")
    pipe = LogPipe(tmp_path / "error.fifo")
    yield pipe
    pipe.close()


def stalled_server(sluice_factory, log_pipe, **conf):
    return sluice_factory(server_error_log=log_pipe.path, server_log_level="debug", **conf)


# --------------------------------------------------------------- item 1: reader


@pytest.mark.parametrize("victim", ["header", "keepalive"])
def test_reader_timeouts_fire_after_a_long_round(sluice_factory, log_pipe, victim):
    """A's header timeout ends a sweep blocked on the log for 0.5 s (a round
    five times the 100 ms sweep period). After it the server is quiet: B, a
    slow head or an idle keep-alive connection whose timeout is 1.5 s later,
    must still be closed on time. Before the fix the reader computed a
    negative epoll_wait timeout after such a round and slept until the next
    event: B stayed open."""
    server = stalled_server(sluice_factory, log_pipe, reader_threads=1,
                            timeouts_header="3s", timeouts_keepalive="3s")
    reader = thread_id(server.pid, "reader-0")
    a = RawConn(server.port)
    b = RawConn(server.port)
    try:
        a.send(b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never completed
        t_a = time.monotonic()
        time.sleep(1.5)
        if victim == "header":
            b.send(b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        else:
            b.send(request("GET", "/one.bin"))
            assert b.read_response().status == 200
        t_b = time.monotonic()
        log_pipe.stall()
        assert closed_by(a, t_a + 8), "A was not timed out"
        helpers.wait_until(lambda: in_log_write(server.pid, reader), timeout=5, step=0.01,
                           what="the reader blocked on the stalled error log")
        time.sleep(0.5)
        assert time.monotonic() < t_b + 3, "too slow a machine: B is due already"
        log_pipe.resume()
        closed = closed_by(b, t_b + 7)
        assert closed is not None, \
            f"{victim} timeout (3 s) did not fire within 7 s after a long reader round"
        assert closed - t_b >= 2.8, f"B closed {closed - t_b:.2f}s after it began"
        assert b"timed out: 0 keep-alive, 1 request" in log_pipe.text, log_pipe.text[-2000:]
    finally:
        log_pipe.resume()
        a.close()
        b.close()
        server.check_clean_exit()  # while the log is read: shutdown logs too


# --------------------------------------------------------------- item 1: detector


def stuck_download(server):
    """A connection whose 5 MiB response fills its socket: the client never
    reads, so it waits in the detector until the send timeout."""
    c = RawConn(server.port, rcvbuf=4096)
    c.send(request("GET", "/5m.bin"))
    return c


def test_detector_send_timeout_fires_after_a_long_round(sluice_factory, log_pipe):
    """The detector logs each send timeout: A's blocks its sweep 0.6 s (more
    than twice its 250 ms period). B's send timeout, 1.5 s after A's, must
    still fire on the quiet server."""
    server = stalled_server(sluice_factory, log_pipe, timeouts_send="3s")
    detector = thread_id(server.pid, "detector")
    a = stuck_download(server)
    t_a = time.monotonic()
    b = None
    try:
        time.sleep(1.5)
        b = stuck_download(server)
        t_b = time.monotonic()
        time.sleep(0.2)  # B's response fills its socket
        log_pipe.stall()
        helpers.wait_until(lambda: in_log_write(server.pid, detector), timeout=5, step=0.01,
                           what="the detector blocked on the stalled error log")
        assert time.monotonic() - t_a >= 2.8
        time.sleep(0.6)
        assert time.monotonic() < t_b + 3, "too slow a machine: B is due already"
        log_pipe.resume()
        # Not read from (reading would let the response go on): the server
        # side is counted. A is closed at once, B at its own timeout.
        helpers.wait_until(lambda: open_conns(server) <= 1, timeout=5,
                           what="A closed by its send timeout")
        helpers.wait_until(lambda: open_conns(server) == 0, timeout=max(0.1, t_b + 7 - time.monotonic()),
                           what="B closed by its send timeout (3 s) after a long detector round")
        assert time.monotonic() - t_b >= 2.8
        for c in (a, b):  # what the sockets hold, then EOF
            c.sock.settimeout(5)
            got = 0
            try:
                for _ in range(10000):
                    data = c.sock.recv(1 << 20)
                    if not data:
                        break
                    got += len(data)
            except ConnectionResetError:
                pass
            assert got < 5 << 20, "the whole response was sent"
        assert b"send timeout: closing fd" in log_pipe.text
    finally:
        log_pipe.resume()
        a.close()
        if b:
            b.close()
        server.check_clean_exit()


# --------------------------------------------------------------- item 9: linger


def lingering(server):
    """A connection whose response (400) closes it: sluice shuts its side
    (the client reads EOF) and lingers, reading what the client still sends,
    until EOF or 2 s. Returns it and the time its response arrived."""
    c = RawConn(server.port)
    c.send(b"BAD REQUEST LINE\r\n\r\n")
    r = c.read_response()
    assert r.status == 400 and r.header("Connection") == "close", r
    return c, time.monotonic()


def quiet(server):
    """Waits until the start-up probe connections are gone."""
    helpers.wait_until(lambda: open_conns(server) == 0, timeout=10,
                       what="start-up probes closed")


def test_lingering_close_keeps_its_bound_when_the_client_sends(sluice_factory):
    """A lingers from t=0 (to be closed by t=2 s); B from t=1.0. A sends a
    byte at t=1.2: sluice reads it, and A waits for input again with its
    deadline of t=2. Before the fix A went behind B in the lingering list,
    whose sweep stops at the first connection not yet due: A was closed with
    B, at t=3. The client cannot see the close (our side was shut at once),
    so the server's count of open connections tells."""
    server = sluice_factory(reader_threads=1)
    quiet(server)
    for attempt in range(3):  # again if the machine was too slow for the timeline
        a, t_a = lingering(server)
        b = None
        try:
            time.sleep(max(0, t_a + 1.0 - time.monotonic()))
            b, t_b = lingering(server)
            time.sleep(max(0, t_a + 1.2 - time.monotonic()))
            a.send(b"x")
            n, late = open_conns(server), time.monotonic() - t_a
            if late > 1.8:
                continue
            assert n == 2, f"{n} open {late:.2f}s after A's lingering began"
            helpers.wait_until(lambda: open_conns(server) <= 1,
                               timeout=max(0.1, t_a + 2.6 - time.monotonic()), step=0.01,
                               what="A's lingering close within its 2 s bound (+0.6 s)")
            if time.monotonic() - t_b > 1.9:
                continue  # B may be due: cannot tell which one closed
            assert open_conns(server) == 1, "B's lingering close ended early"
            helpers.wait_until(lambda: open_conns(server) == 0, timeout=5,
                               what="B's lingering close")
            assert time.monotonic() - t_b > 1.8
            return
        finally:
            a.close()
            if b:
                b.close()
            helpers.wait_until(lambda: open_conns(server) == 0, timeout=5,
                               what="both closed")
    pytest.fail("three attempts, each too slow for the timeline")


def test_lingering_close_of_a_silent_client_lasts_its_bound(sluice_factory):
    server = sluice_factory(reader_threads=1)
    quiet(server)
    a, t_a = lingering(server)
    with a:
        assert open_conns(server) == 1
        helpers.wait_until(lambda: open_conns(server) == 0, timeout=5, step=0.01,
                           what="the lingering close")
        took = time.monotonic() - t_a
    assert 1.8 < took < 2.9, f"a silent lingering client was closed after {took:.2f}s"


# --------------------------------------------------------------- item 11: trickling


BODY_HEAD = (b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Length: 100000\r\n\r\n")


def trickle(socks, started, pace, until, payload=None):
    """Sends one byte every PACE seconds on each socket of SOCKS (byte i of
    PAYLOAD, or b"x") until the server closes it or time.monotonic() passes
    UNTIL. The server may send a response first (already read for bodies; a
    408 for heads). Returns {sock: seconds from STARTED[sock] to its close,
    or None}."""
    closed = {s: None for s in socks}
    sent = {s: 0 for s in socks}
    nxt = time.monotonic()
    while time.monotonic() < until and any(v is None for v in closed.values()):
        open_ = [s for s in socks if closed[s] is None]
        if time.monotonic() >= nxt:
            for s in open_:
                data = payload[sent[s]:sent[s] + 1] if payload else b"x"
                if not data:
                    continue
                try:
                    s.send(data)
                    sent[s] += 1
                except (BrokenPipeError, ConnectionResetError):
                    closed[s] = time.monotonic() - started[s]
            nxt += pace
        r, _, _ = select.select([s for s in open_ if closed[s] is None], [], [], 0.02)
        for s in r:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                closed[s] = time.monotonic() - started[s]
            else:
                assert data.startswith(b"HTTP/1.1 408"), data[:200]
    return closed


def connect(server):
    c = RawConn(server.port, timeout=5)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one byte, one segment
    return c


def read_response(c):
    r = c.read_response()
    assert not c.buf, c.buf[:200]
    return r


def test_trickled_body_is_cut_within_the_header_timeout(sluice_factory):
    """20 clients each send a head with Content-Length: 100000, get their
    response, and then trickle the body at 1 byte per 0.2 s. Every byte used
    to restart the header timeout (the discarded body left the buffer empty,
    which read as "idle"): they were never cut. Now the body counts against
    the request's header timeout (1 s)."""
    server = sluice_factory(timeouts_header="1s", timeouts_keepalive="5s")
    conns, started = [], {}
    try:
        for _ in range(20):
            c = connect(server)
            conns.append(c)
            c.send(BODY_HEAD)
            r = read_response(c)
            assert r.status == 200, r
            started[c.sock] = time.monotonic()
        socks = [c.sock for c in conns]
        closed = trickle(socks, started, 0.2, time.monotonic() + 8)
        late = {i: closed[s] for i, s in enumerate(socks) if closed[s] is None or closed[s] > 3}
        assert not late, f"trickling clients not cut within 3 s (header = 1s): {late}"
        assert all(closed[s] > 0.7 for s in socks), sorted(closed.values())
    finally:
        for c in conns:
            c.close()
    server.ensure_serving()


def test_trickled_head_is_cut_within_the_header_timeout(sluice_factory):
    """The slow-head defence stays: 20 heads trickled byte by byte from the
    connection's start are cut (408 or close) about 1 s in."""
    server = sluice_factory(timeouts_header="1s", timeouts_keepalive="5s")
    head = b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    conns, started = [], {}
    try:
        for _ in range(20):
            c = connect(server)
            conns.append(c)
            started[c.sock] = time.monotonic()
        socks = [c.sock for c in conns]
        closed = trickle(socks, started, 0.2, time.monotonic() + 8, payload=head)
        late = {i: closed[s] for i, s in enumerate(socks) if closed[s] is None or closed[s] > 3}
        assert not late, f"trickled heads not cut within 3 s (header = 1s): {late}"
        assert all(closed[s] > 0.7 for s in socks), sorted(closed.values())
    finally:
        for c in conns:
            c.close()
    server.ensure_serving()


def test_trickled_head_then_body_share_one_timeout(sluice_factory):
    """Head trickled for 1.6 s, then its body: one bound for the whole
    request (2 s from the first byte), not one for the head and a fresh one
    for the body."""
    server = sluice_factory(timeouts_header="2s", timeouts_keepalive="5s")
    c = connect(server)
    with c:
        t0 = time.monotonic()
        # The head minus its last byte, 1.6 s in eight steps.
        head = BODY_HEAD
        step = len(head) // 8
        for i in range(8):
            c.send(head[i * step:(i + 1) * step] if i < 7 else head[7 * step:-1])
            time.sleep(0.2)
        c.send(head[-1:])
        r = read_response(c)
        assert r.status == 200, r
        closed = trickle([c.sock], {c.sock: t0}, 0.2, t0 + 8)[c.sock]
        assert closed is not None, "head + trickled body never cut"
        assert 1.8 < closed < 3.3, f"cut {closed:.2f}s after the first byte; header = 2s"


def test_a_whole_body_sent_at_once_is_served_and_kept_alive(sluice_factory):
    """What the bound must not cut: a body that comes in time is dropped, the
    connection serves its next request and is then idle until keep-alive."""
    server = sluice_factory(timeouts_header="1s", timeouts_keepalive="3s")
    with RawConn(server.port) as c:
        c.send(b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n")
        assert c.read_response().status == 200
        for _ in range(5):  # the body in 0.5 s, well within the 1 s bound
            time.sleep(0.1)
            c.send(b"b" * 1000)
        c.send(request("GET", "/1k.bin"))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 1024
        t = time.monotonic()
        assert not c.closed_within(1.5), "idle connection cut by the header timeout"
        assert c.closed_within(4), "idle connection kept past keep-alive"
        assert time.monotonic() - t > 2
