"""Admission control ([admission]) against the real daemon over loopback.

What happens to a new connection at [server] max_connections (on_full =
close | refuse | wait), closing idle keep-alive connections to make room
(close_idle), shedding by queue wait (queue_wait_target/queue_wait_interval,
CoDel-like, per reader), the counters in `stats json`, `stats` and
`metrics`, config errors and reload.

Queue waits are made real, not simulated: the daemon is frozen with SIGSTOP
while clients send, so their requests sit in the kernel (receive queue or
listen backlog) with kernel receive timestamps; after SIGCONT the reader
parses them late by at least the freeze.

Every server has its own config; counters are compared with a baseline taken
once the start-up probe connections are gone. Tests that depend on which
connection a reader closes, or on the controller's state (per reader), use
one reader thread.

Run: SLUICE_BUILD=build /usr/bin/python3 -m pytest -q tests/integration/test_admission.py
"""

import glob
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

import helpers
from helpers import SLUICE, RawConn, request, sha256

# No queue-wait shedding in tests about max_connections, whatever the default:
# their statuses must not depend on how slow the machine is.
NO_CODEL = {"admission_queue_wait_target": "0"}


@pytest.fixture
def factory(sluice_factory, monkeypatch):
    """sluice_factory, sure to take admission_KEY=value overrides even with a
    helpers.SECTIONS that does not list [admission] yet."""
    if "admission" not in helpers.SECTIONS:
        monkeypatch.setattr(helpers, "SECTIONS", helpers.SECTIONS + ("admission",))
    return sluice_factory


# --------------------------------------------------------------- status socket


def status(server, cmd):
    """One status-socket command; the reply without its closing empty line."""
    return helpers.status_command(server.status_socket, cmd)


def stats(server):
    return json.loads(status(server, "stats json"))


COUNTERS = ("dropping", "shed_queue_wait", "refused_full", "closed_full", "closed_idle")


def counters(st):
    """The admission counters of a stats json object (the controller's state,
    limit, backlog and the like, left out)."""
    return {k: st["admission"][k] for k in COUNTERS}


def admission_line(server):
    lines = [ln for ln in status(server, "stats").splitlines() if ln.startswith("admission:")]
    assert len(lines) == 1, f"expected one 'admission:' line in stats:\n{lines}"
    return lines[0]


def metrics(server):
    """{'name{labels}': value} of the metrics exposition (comments left out)."""
    out = {}
    for ln in status(server, "metrics").splitlines():
        if ln and not ln.startswith("#"):
            name, value = ln.rsplit(" ", 1)
            out[name] = float(value)
    return out


def accept_queue(port):
    """Connections waiting in the kernel's accept queue of the listener on
    PORT (rx_queue of a LISTEN socket in /proc/net/tcp*)."""
    n, found = 0, False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                n += int(fields[4].split(":")[1], 16)
                found = True
    assert found, f"no listener on port {port} in /proc/net/tcp*"
    return n


def quiet(server):
    """Waits until the start-up probe connections (how many, helpers.Sluice
    does not say) have all been accepted and closed: none left in the accept
    queue and none open, twice in a row. Returns the stats then, with the
    admission counters still at zero."""
    def settled():
        return accept_queue(server.port) == 0 and stats(server)["connections"]["current"] == 0

    helpers.wait_until(lambda: settled() and (time.sleep(0.1) or settled()), timeout=10,
                       what="start-up probes accepted and closed")
    base = stats(server)
    assert counters(base) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                        "closed_full": 0, "closed_idle": 0}, base["admission"]
    return base


def delta(now, base, section, key):
    return now[section][key] - base[section][key]


def counted(server, base, n, timeout=10):
    """Stats once N requests (since BASE) are counted, asserting exactly N: a
    response is counted just after it is sent, so the client may be a moment
    ahead of the counters."""
    helpers.wait_until(lambda: delta(stats(server), base, "requests", "total") >= n,
                       timeout=timeout, what=f"{n} requests counted")
    st = stats(server)
    assert delta(st, base, "requests", "total") == n, st["requests"]
    return st


def wait_current(server, n, timeout=10):
    helpers.wait_until(lambda: stats(server)["connections"]["current"] == n, timeout=timeout,
                       what=f"{n} open connections")


# --------------------------------------------------------------- clients


PARTIAL = b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # the head lacks its end


def hold(server, n):
    """N open connections that are not idle keep-alive: each has sent part of
    its first request head (sent at all, so that a listener with
    TCP_DEFER_ACCEPT hands them over too) and waits to complete it."""
    conns = []
    for _ in range(n):
        c = RawConn(server.port)
        c.send(PARTIAL)
        conns.append(c)
    wait_current(server, n)
    return conns


def complete_ok(conn, server):
    """Completes a held connection's request: 200 with /one.bin."""
    conn.send(b"\r\n")
    r = conn.read_response()
    assert r.status == 200 and sha256(r.body) == server.root.files["/one.bin"][1], r
    return r


def keepalive(server, n, path="/one.bin"):
    """N connections that each had one request answered and stay open, idle;
    opened and served in order, so conns[0] has been idle longest."""
    conns = []
    for _ in range(n):
        c = RawConn(server.port)
        c.send(request("GET", path))
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") != "close", r
        conns.append(c)
        time.sleep(0.05)
    return conns


def close_all(conns):
    for c in conns:
        c.close()


def get_ok(conn, server, path="/one.bin"):
    conn.send(request("GET", path))
    r = conn.read_response()
    assert r.status == 200, r
    assert sha256(r.body) == server.root.files[path][1]
    return r


def silent(conn, seconds):
    """Nothing at all (no byte, no EOF, no reset) arrives for SECONDS."""
    old = conn.sock.gettimeout()
    conn.sock.settimeout(seconds)
    try:
        data = conn.sock.recv(4096)
    except socket.timeout:
        return True
    finally:
        conn.sock.settimeout(old)
    raise AssertionError(f"expected silence, got {data[:200]!r}" if data else
                         "expected silence, got EOF")


def no_response(conn, timeout=10):
    """The server closes CONN (EOF or reset) without sending a single byte."""
    conn.sock.settimeout(timeout)
    got = b""
    try:
        for _ in range(1000):
            data = conn.sock.recv(4096)
            if not data:
                break
            got += data
        else:
            raise AssertionError("connection neither closed nor silent")
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"connection still open after {timeout}s")
    assert got == b"", f"expected no response, got {got[:200]!r}"


def check_503(r, retry_after, head=False):
    assert (r.version, r.status, r.reason) == ("HTTP/1.1", 503, "Service Unavailable"), r
    assert r.headers("Retry-After") == ([] if retry_after is None else [retry_after]), \
        r.headers_list
    assert r.header("Connection") == "close", r.headers_list
    if head:
        assert r.body == b""
    else:
        assert int(r.header("Content-Length")) == len(r.body) > 0
        assert b"503" in r.body


# --------------------------------------------------------------- on_full = refuse


def test_refuse_answers_503_with_retry_after_then_closes(factory):
    server = factory(server_max_connections=2, admission_on_full="refuse",
                     admission_retry_after=7, **NO_CODEL)
    base = quiet(server)
    held = hold(server, 2)
    try:
        with RawConn(server.port) as c:
            c.send(request("GET", "/1k.bin"))
            check_503(c.read_response(), "7")
            assert c.closed_within(5), "refused connection left open after its 503"
        with RawConn(server.port) as c:
            c.send(request("HEAD", "/1k.bin"))
            check_503(c.read_response("HEAD"), "7", head=True)
            assert c.closed_within(5), "refused connection left open after its 503"

        st = counted(server, base, 2)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 2,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "connections", "accepted") == 4, st["connections"]  # 2+2
        assert delta(st, base, "connections", "rejected") == 0
        assert delta(st, base, "requests", "total") == 2
        assert delta(st, base, "requests", "5xx") == 2
        line = admission_line(server)
        assert line.startswith("admission: ok;"), line
        assert re.search(r"\b2 refused with 503\b", line), line
        m = metrics(server)
        assert m['sluice_shed_total{reason="refused_full"}'] == 2
        assert m['sluice_shed_total{reason="closed_full"}'] == 0
        assert m["sluice_admission_dropping"] == 0

        # The held connections were not disturbed: both are served.
        for c in held:
            complete_ok(c, server)
    finally:
        close_all(held)
    # A freed slot serves a new client normally.
    wait_current(server, 0)
    server.ensure_serving()
    st = counted(server, base, 5)
    assert st["admission"]["refused_full"] == 2
    assert delta(st, base, "requests", "2xx") == 3


def test_refuse_past_the_slack_closes(factory):
    """Refused connections hold a descriptor until they have their 503: at
    most max_connections/16 + 16 of them past the limit; beyond that a new
    connection is closed at once, as with on_full = close."""
    server = factory(server_max_connections=2, admission_on_full="refuse", **NO_CODEL)
    base = quiet(server)
    held = hold(server, 2)
    slack = 2 // 16 + 16
    waiting = []
    try:
        for _ in range(slack):  # refused, but their heads never complete
            c = RawConn(server.port)
            c.send(PARTIAL)
            waiting.append(c)
        wait_current(server, 2 + slack)
        with RawConn(server.port) as c:
            c.send(request("GET", "/one.bin"))
            no_response(c)
        for c in waiting[:2]:  # still answered once their heads complete
            c.send(b"\r\n")
            check_503(c.read_response(), "1")
        st = counted(server, base, 2)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 2,
                                   "closed_full": 1, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "connections", "accepted") == 2 + slack
        assert delta(st, base, "connections", "rejected") == 1
    finally:
        close_all(held + waiting)


@pytest.mark.parametrize("conf,expect", [({}, "1"),
                                         ({"admission_retry_after": 0}, None),
                                         ({"admission_retry_after": 86400}, "86400")],
                         ids=["default-1", "zero-no-header", "max"])
def test_refuse_retry_after_value(factory, conf, expect):
    server = factory(server_max_connections=2, admission_on_full="refuse", **conf, **NO_CODEL)
    base = quiet(server)
    held = hold(server, 2)
    try:
        with RawConn(server.port) as c:
            c.send(request("GET", "/one.bin"))
            check_503(c.read_response(), expect)
            assert c.closed_within(5)
    finally:
        close_all(held)
    st = counted(server, base, 1)
    assert st["admission"]["refused_full"] == 1
    assert delta(st, base, "requests", "5xx") == 1


# --------------------------------------------------------------- on_full = close


@pytest.mark.parametrize("conf", [{}, {"admission_on_full": "close"}],
                         ids=["default", "explicit"])
def test_close_drops_new_connection_without_response(factory, conf):
    server = factory(server_max_connections=2, **conf, **NO_CODEL)
    base = quiet(server)
    held = hold(server, 2)
    try:
        for data in (request("GET", "/one.bin"), PARTIAL):
            with RawConn(server.port) as c:  # EOF or reset, not a byte back
                c.send(data)
                no_response(c)
        st = counted(server, base, 0)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 2, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "connections", "rejected") == 2
        assert delta(st, base, "connections", "accepted") == 2, st["connections"]  # held
        assert delta(st, base, "requests", "total") == 0
        assert re.search(r"\b2 closed;", admission_line(server))
        assert metrics(server)['sluice_shed_total{reason="closed_full"}'] == 2
        for c in held:
            complete_ok(c, server)
    finally:
        close_all(held)
    wait_current(server, 0)
    server.ensure_serving()


# --------------------------------------------------------------- on_full = wait


def test_wait_serves_waiting_client_once_a_slot_frees(factory):
    server = factory(server_max_connections=2, admission_on_full="wait", **NO_CODEL)
    base = quiet(server)
    held = hold(server, 2)
    waiting = None
    try:
        waiting = RawConn(server.port, timeout=10)  # completes in the kernel's backlog
        waiting.send(request("GET", "/1k.bin", close=True))
        assert silent(waiting, 0.7), "answered although max_connections are open"
        st = stats(server)
        assert st["connections"]["current"] == 2
        assert delta(st, base, "connections", "accepted") == 2, \
            f"accepted while full: {st['connections']}"

        t0 = time.monotonic()
        held[0].close()
        r = waiting.read_response()
        took = time.monotonic() - t0
        assert r.status == 200 and sha256(r.body) == server.root.files["/1k.bin"][1], r
        assert took < 5, f"waiting client served {took:.2f}s after a slot freed"
        assert waiting.closed_within(5)

        complete_ok(held[1], server)  # the other held connection still works
        st = counted(server, base, 2)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "connections", "accepted") == 3, st["connections"]
        assert delta(st, base, "connections", "rejected") == 0
        assert delta(st, base, "requests", "2xx") == 2
    finally:
        close_all(held)
        if waiting:
            waiting.close()


def test_wait_with_close_idle_makes_room_from_idle_keepalive(factory):
    server = factory(server_max_connections=2, admission_on_full="wait", reader_threads=1,
                     admission_close_idle=True, **NO_CODEL)
    quiet(server)
    idle = keepalive(server, 2)
    waiting = None
    try:
        time.sleep(0.5)  # readers publish their idle counts each round (<= ~100 ms)
        waiting = RawConn(server.port, timeout=10)
        waiting.send(request("GET", "/one.bin", close=True))
        waiting.sock.settimeout(3)  # keep-alive timeout is 30 s: not what frees the slot
        try:
            r = waiting.read_response()
        except socket.timeout:
            pytest.fail("waiting client not served within 3 s although 2 connections "
                        "were idle keep-alive and close_idle = yes")
        assert r.status == 200
        assert idle[0].closed_within(5), "the longest-idle connection was not closed"
        assert not idle[1].closed_within(0.3)
        assert stats(server)["admission"]["closed_idle"] == 1
    finally:
        close_all(idle)
        if waiting:
            waiting.close()


# --------------------------------------------------------------- close_idle


@pytest.mark.parametrize("on_full", ["refuse", "close"])
def test_close_idle_admits_new_and_closes_longest_idle(factory, on_full):
    # One reader: with several, each closes the longest-idle of its own.
    server = factory(server_max_connections=4, admission_on_full=on_full,
                     admission_close_idle=True, reader_threads=1, **NO_CODEL)
    base = quiet(server)
    idle = keepalive(server, 4)
    try:
        time.sleep(0.5)  # readers publish their idle counts each round (<= ~100 ms)
        with RawConn(server.port) as c:
            c.send(request("GET", "/1k.bin", close=True))
            r = c.read_response()
            assert r.status == 200, f"5th client at max_connections with idle ones: {r}"
            assert sha256(r.body) == server.root.files["/1k.bin"][1]
            assert c.closed_within(5)
        assert idle[0].closed_within(5), "the longest-idle connection was not closed"
        for c in idle[1:]:
            assert not c.closed_within(0.3), "a younger idle connection was closed"
        for c in idle[1:]:
            get_ok(c, server)
        wait_current(server, 3)
        st = counted(server, base, 8)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 1}, st["admission"]
        assert delta(st, base, "connections", "accepted") == 5, st["connections"]
        assert delta(st, base, "connections", "rejected") == 0
        assert delta(st, base, "requests", "5xx") == 0
        assert delta(st, base, "requests", "2xx") == 4 + 1 + 3
        assert re.search(r"\b1 idle closed for room", admission_line(server))
        assert metrics(server)['sluice_shed_total{reason="closed_idle"}'] == 1
    finally:
        close_all(idle)


def test_close_idle_no_refuses_and_keeps_idle_connections(factory):
    server = factory(server_max_connections=4, admission_on_full="refuse",
                     admission_close_idle=False, reader_threads=1, **NO_CODEL)
    base = quiet(server)
    idle = keepalive(server, 4)
    try:
        time.sleep(0.5)
        with RawConn(server.port) as c:
            c.send(request("GET", "/1k.bin"))
            check_503(c.read_response(), "1")
            assert c.closed_within(5)
        for c in idle:
            assert not c.closed_within(0.2), "an idle connection was closed"
        for c in idle:
            get_ok(c, server)
        st = counted(server, base, 9)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 1,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "connections", "accepted") == 5, st["connections"]
        assert delta(st, base, "requests", "5xx") == 1
        assert delta(st, base, "requests", "2xx") == 8
    finally:
        close_all(idle)


def gone(conn):
    """Has the server closed CONN (EOF or reset)? Looks without waiting and
    without consuming anything."""
    r, _, _ = select.select([conn.sock], [], [], 0)
    if not r:
        return False
    try:
        data = conn.sock.recv(1, socket.MSG_PEEK)
    except ConnectionResetError:
        return True
    assert data == b"", f"unexpected bytes from the server: {data!r}"
    return True


def reader_threads(server):
    names = []
    for tid in os.listdir(f"/proc/{server.pid}/task"):
        try:
            with open(f"/proc/{server.pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sorted(n for n in names if n.startswith("reader-"))


class Busy:
    """Keeps the reader of one keep-alive connection awake: pipelined
    requests sent and their responses read by two threads until stop().
    The acceptor prefers an awake reader for new connections."""

    CHUNK = request("GET", "/one.bin") * 500

    def __init__(self, server):
        self.conn = RawConn(server.port)
        self.conn.send(request("GET", "/one.bin"))
        r = self.conn.read_response()
        assert r.status == 200, r
        self.size = len(r.head) + len(r.body)  # every response is this long
        self.sent = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self):
        for _ in range(2000):  # at most 1,000,000 requests
            if self.stopping.is_set():
                break
            self.conn.sock.sendall(self.CHUNK)
            self.sent += 500
        self.stopping.set()

    def _read(self):
        got = 0
        while not (self.stopping.is_set() and got >= self.sent * self.size):
            data = self.conn.sock.recv(1 << 20)
            if not data:
                break
            got += len(data)
        self.got = got

    def stop(self):
        """Stops sending, reads every response; the connection is then idle."""
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)
        assert self.got == self.sent * self.size, (self.got, self.sent, self.size)


def idle_on_one_reader(server, n):
    """N idle keep-alive connections, all held by one reader, the other
    readers holding none. New connections go to the reader with the fewest,
    except that an awake one is preferred: one connection kept busy (Busy)
    keeps its reader awake while new ones are tried; those another reader
    takes are closed (connections.per_reader in `stats json` tells which
    reader took each). Oldest first."""
    busy = Busy(server)
    mine = []
    try:
        per = stats(server)["connections"]["per_reader"]
        assert sum(per) == 1, per
        reader = per.index(1)
        for _ in range(100):
            if len(mine) == n - 1:
                break
            before = stats(server)["connections"]["per_reader"]
            c = keepalive(server, 1)[0]
            after = stats(server)["connections"]["per_reader"]
            took = [i for i, (a, b) in enumerate(zip(before, after)) if b == a + 1]
            assert len(took) == 1, (before, after)
            if took[0] == reader:
                mine.append(c)
            else:
                c.close()
                helpers.wait_until(lambda: stats(server)["connections"]["per_reader"] == before,
                                   timeout=5, what="a connection on another reader closed")
        assert len(mine) == n - 1, "new connections never went to the busy reader"
    finally:
        busy.stop()
    per = stats(server)["connections"]["per_reader"]
    assert per[reader] == n and sum(per) == n, per
    return [busy.conn] + mine


@pytest.mark.parametrize("on_full", ["wait", "refuse", "close"])
def test_close_idle_with_default_readers_closes_one_per_new_client(factory, on_full):
    """close_idle with the default reader count (one per CPU; two or more
    here). max_connections = 4 idle keep-alive connections, all on one
    reader; then four new clients come one by one and each stays open (and
    idle, after its response). Each must be served, and exactly one
    connection closed for it: a reader with no idle connection (the first
    new client goes to it: it holds the fewest) must not drop the request
    (none closed), and two readers must not both close one for the same
    request (two closed)."""
    server = factory(server_max_connections=4, admission_on_full=on_full,
                     admission_close_idle=True, **NO_CODEL)
    if len(reader_threads(server)) < 2:
        pytest.skip("one CPU: the default is one reader")
    quiet(server)
    conns = idle_on_one_reader(server, 4)
    base = stats(server)
    try:
        for i in range(1, 5):
            time.sleep(0.5)  # readers publish their idle counts each round (<= ~100 ms)
            c = RawConn(server.port)
            conns.append(c)
            c.send(request("GET", "/1k.bin"))
            c.sock.settimeout(5)
            r = c.read_response()
            assert r.status == 200, f"client {i} at max_connections with idle ones: {r}"
            helpers.wait_until(lambda: sum(map(gone, conns)) >= i, timeout=5,
                               what=f"{i} idle connections closed for {i} new clients")
            time.sleep(0.3)  # a second close for the same client would come now
            closed = [k for k, x in enumerate(conns) if gone(x)]
            assert len(closed) == i, \
                f"{len(closed)} connections closed for {i} new clients: {closed}"
            st = stats(server)
            assert delta(st, base, "admission", "closed_idle") == i, st["admission"]
            assert st["connections"]["current"] == 4, st["connections"]
        st = stats(server)
        assert delta(st, base, "connections", "accepted") == 4, st["connections"]
        assert delta(st, base, "connections", "rejected") == 0, st["connections"]
        assert delta(st, base, "requests", "2xx") == 4
        assert st["admission"]["refused_full"] == 0
        for c in conns:  # the ones still open still work
            if not gone(c):
                get_ok(c, server)
    finally:
        close_all(conns)


@pytest.mark.parametrize("on_full", ["wait", "refuse", "close"])
def test_close_idle_with_default_readers_burst_of_new_clients(factory, on_full):
    """Default readers: three new clients at once while max_connections = 6
    connections are idle, spread over the readers. Exactly three idle ones
    are closed, whichever readers hold them (before the fix each reader
    closed as many as the count was over the limit: six)."""
    server = factory(server_max_connections=6, admission_on_full=on_full,
                     admission_close_idle=True, **NO_CODEL)
    if len(reader_threads(server)) < 2:
        pytest.skip("one CPU: the default is one reader")
    quiet(server)
    idle = keepalive(server, 6)
    new = []
    try:
        time.sleep(0.5)
        # All three reach the kernel while sluice is frozen, so the acceptor
        # takes them in one burst and the readers look at once.
        os.kill(server.pid, signal.SIGSTOP)
        try:
            helpers.wait_until(lambda: all_stopped(server.pid), timeout=5, step=0.005,
                               what="every sluice thread stopped")
            for _ in range(3):
                c = RawConn(server.port)
                c.send(request("GET", "/1k.bin"))
                new.append(c)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        for c in new:
            assert c.read_response().status == 200
        helpers.wait_until(lambda: sum(map(gone, idle)) >= 3, timeout=5,
                           what="3 idle connections closed for 3 new clients")
        time.sleep(0.5)
        assert sum(map(gone, idle)) == 3
        assert not any(map(gone, new))
        st = stats(server)
        assert st["admission"]["closed_idle"] == 3, st["admission"]
        assert st["connections"]["current"] == 6, st["connections"]
    finally:
        close_all(idle + new)


# --------------------------------------------------------------- queue wait (CoDel)


def all_stopped(pid):
    states = []
    for path in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            with open(path) as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            pass  # a thread that just left
    return bool(states) and all(s in ("T", "t") for s in states)


def frozen(server, seconds, old=(), new=0, path="/one.bin"):
    """Freezes the daemon, sends one request on each of OLD (keep-alive
    connections) and on NEW new connections, keeps it frozen SECONDS, thaws
    it. Each request waits >= SECONDS in the kernel. Returns the connections
    (OLD first) and their responses."""
    os.kill(server.pid, signal.SIGSTOP)
    conns = list(old)
    try:
        helpers.wait_until(lambda: all_stopped(server.pid), timeout=5, step=0.005,
                           what="every sluice thread stopped")
        for _ in range(new):
            conns.append(RawConn(server.port))  # lands in the listen backlog
        for c in conns:
            c.send(request("GET", path))
        time.sleep(seconds)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    return conns, [c.read_response() for c in conns]


FREEZE = 0.3  # T < FREEZE <= T + I for every interval used below


def start_dropping(server, ka0, ka1, interval):
    """Makes a fresh reader (target 50 ms) drop without shedding anything:
    two freezes of FREEZE, each with a request on a kept connection, the
    second just over an interval after the first (and well under two, which
    would count as a quiet spell). The interval the second closes saw only a
    wait above target: the reader drops; both requests, on established
    connections and under target + interval, are served."""
    time.sleep(interval - FREEZE + 0.1)
    _, (r1,) = frozen(server, FREEZE, old=[ka0])
    assert r1.status == 200, f"wait under target + interval on a kept connection: {r1}"
    time.sleep(interval - FREEZE + 0.1)
    _, (r2,) = frozen(server, FREEZE, old=[ka1])
    assert r2.status == 200, f"wait under target + interval on a kept connection: {r2}"
    assert stats(server)["admission"]["dropping"] is True, \
        "not dropping after a whole interval of waits above target"


def test_queue_wait_sheds_new_connections_and_long_waits(factory):
    """T = 50 ms, I = 1 s. Once an interval saw only waits above T, the reader
    drops (start_dropping). While dropping: a request that waited more than
    T + I is shed on an established connection, a new connection's first
    request is shed even if it did not wait, and an established connection's
    quick request is served. An interval with a quick request ends it."""
    T, I = 0.05, 1.0
    server = factory(admission_policy="codel",
                     admission_queue_wait_target="50ms", admission_queue_wait_interval="1s",
                     admission_retry_after=3, reader_threads=1)
    base = quiet(server)
    ka = keepalive(server, 4)
    others = []
    try:
        start_dropping(server, ka[0], ka[1], I)

        # Dropping now. A long wait (> T + I) on a kept connection and a new
        # connection's first request are both shed: 503 + Retry-After, closed.
        conns, (r3, r4) = frozen(server, I + T + 0.3, old=[ka[2]], new=1)
        others += conns[1:]
        check_503(r3, "3")
        check_503(r4, "3")
        # Quick ones right after (well within the interval): a new connection
        # is still turned away, a kept one is served.
        n1 = RawConn(server.port)
        others.append(n1)
        n1.send(request("GET", "/one.bin"))
        check_503(n1.read_response(), "3")
        get_ok(ka[3], server)
        for c in (ka[2], conns[1], n1):
            assert c.closed_within(5), "a shed connection was left open"

        st = counted(server, base, 10)
        assert counters(st) == {"dropping": True, "shed_queue_wait": 3, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "requests", "5xx") == 3
        line = admission_line(server)
        assert line.startswith("admission: DROPPING;"), line
        assert re.search(r"\bshed 3 \(queue wait\)", line), line
        m = metrics(server)
        assert m["sluice_admission_dropping"] == 1
        assert m['sluice_shed_total{reason="queue_wait"}'] == 3
        assert m['sluice_shed_total{reason="refused_full"}'] == 0

        # An interval whose quickest request was under the target ends it.
        time.sleep(I + 0.1)
        server.ensure_serving()
        st = counted(server, base, 11)
        assert st["admission"]["dropping"] is False
        assert st["admission"]["shed_queue_wait"] == 3
        assert metrics(server)["sluice_admission_dropping"] == 0
        assert delta(st, base, "requests", "2xx") == 4 + 2 + 1 + 1
        assert delta(st, base, "requests", "5xx") == 3
    finally:
        close_all(ka + others)


def test_queue_wait_one_slow_request_alone_does_not_drop(factory):
    """The first request a reader sees, and the first after a quiet spell
    (more than an interval after the last interval ended), start a fresh
    interval: however long they waited, no standing queue is inferred from
    them, nor from the burst that arrives with them."""
    server = factory(admission_policy="codel",
                     admission_queue_wait_target="50ms", admission_queue_wait_interval="300ms",
                     reader_threads=1)
    base = quiet(server)
    conns = []
    try:
        conns, rs = frozen(server, 0.5, new=1)
        assert [r.status for r in rs] == [200]
        time.sleep(0.3)  # + the 0.5 s freeze: more than two intervals
        conns, rs = frozen(server, 0.5, old=conns, new=1)
        assert [r.status for r in rs] == [200, 200]
        st = counted(server, base, 3)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
    finally:
        close_all(conns)


def test_queue_wait_quiet_spell_ends_dropping(factory):
    """No request for more than an interval after the last one: the next
    new connection is not shed, and the reader no longer drops."""
    I = 0.5
    server = factory(admission_policy="codel",
                     admission_queue_wait_target="50ms", admission_queue_wait_interval="500ms",
                     reader_threads=1)
    base = quiet(server)
    ka = keepalive(server, 2)
    try:
        start_dropping(server, ka[0], ka[1], I)
        time.sleep(3 * I)
        server.ensure_serving()
        st = counted(server, base, 2 + 2 + 1)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
    finally:
        close_all(ka)


def test_queue_wait_dropping_gauge_clears_when_quiet(factory):
    I = 0.5
    server = factory(admission_policy="codel",
                     admission_queue_wait_target="50ms", admission_queue_wait_interval="500ms",
                     reader_threads=1)
    quiet(server)
    ka = keepalive(server, 2)
    try:
        start_dropping(server, ka[0], ka[1], I)
        time.sleep(3 * I)
        assert stats(server)["admission"]["dropping"] is False, \
            f"still reported dropping after {3 * I}s without a request"
        assert metrics(server)["sluice_admission_dropping"] == 0
    finally:
        close_all(ka)


def test_queue_wait_slow_client_is_not_queueing(factory):
    """The wait counts from a request's last bytes: a client that trickles its
    head (0.3 s between its halves, far above the 50 ms target, over many
    100 ms intervals) is served and does not make the reader drop."""
    server = factory(admission_policy="codel",
                     admission_queue_wait_target="50ms", admission_queue_wait_interval="100ms",
                     reader_threads=1)
    base = quiet(server)
    conns = []
    try:
        ka = RawConn(server.port)
        conns.append(ka)
        for i in range(4):
            c = RawConn(server.port) if i % 2 == 0 else ka  # new and kept connections
            if c is not ka:
                conns.append(c)
            req = request("GET", "/one.bin")
            c.send(req[:9])
            time.sleep(0.3)
            c.send(req[9:])
            r = c.read_response()
            assert r.status == 200, f"trickled request {i}: {r}"
        st = counted(server, base, 4)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
    finally:
        close_all(conns)


def test_queue_wait_off_never_sheds(factory):
    """queue_wait_target = 0: requests that waited 0.6 s, twice, are served."""
    server = factory(admission_policy="codel",
                     admission_queue_wait_target="0", admission_queue_wait_interval="10ms",
                     reader_threads=1)
    base = quiet(server)
    ka = keepalive(server, 1)
    conns = []
    try:
        for _ in range(2):
            conns, rs = frozen(server, 0.6, old=ka, new=1)
            assert [r.status for r in rs] == [200, 200]
            conns[1].close()
        st = counted(server, base, 5)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 0,
                                   "closed_full": 0, "closed_idle": 0}, st["admission"]
        assert delta(st, base, "requests", "5xx") == 0
    finally:
        close_all(ka + conns)


# --------------------------------------------------------------- config


def run_check(conf, cwd):
    return subprocess.run([str(SLUICE), "-t", "-c", str(conf)], cwd=str(cwd),
                          capture_output=True, text=True, timeout=15)


@pytest.fixture
def workdir(tmp_path, sluice_binary):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>hi</p>\n")
    return tmp_path


def test_check_accepts_every_admission_key(workdir):
    conf = workdir / "good.conf"
    conf.write_text("[server]\nroot = www\n\n[admission]\nqueue_wait_target = 50ms\n"
                    "queue_wait_interval = 100ms\nretry_after = 0\non_full = wait\n"
                    "close_idle = no\npolicy = codel\n")
    p = run_check(conf, workdir)
    assert p.returncode == 0, p.stderr
    for action in ("close", "refuse", "wait"):
        conf.write_text(f"[admission]\non_full = {action}\n")
        p = run_check(conf, workdir)
        assert p.returncode == 0, (action, p.stderr)


BROKEN = {  # name -> (line in [admission], key named in the message)
    "on-full-bogus": ("on_full = bogus", "admission.on_full"),
    "on-full-case": ("on_full = Refuse", "admission.on_full"),
    "on-full-empty": ("on_full =", "admission.on_full"),
    "close-idle-maybe": ("close_idle = maybe", "admission.close_idle"),
    "retry-after-negative": ("retry_after = -1", "admission.retry_after"),
    "retry-after-too-big": ("retry_after = 86401", "admission.retry_after"),
    "retry-after-word": ("retry_after = soon", "admission.retry_after"),
    "interval-zero": ("queue_wait_interval = 0", "admission.queue_wait_interval"),
    "target-too-big": ("queue_wait_target = 61s", "admission.queue_wait_target"),
    "target-word": ("queue_wait_target = fast", "admission.queue_wait_target"),
    "unknown-key": ("colour = blue", "admission.colour"),
    "policy-bogus": ("policy = lifo", "admission.policy"),
    "policy-empty": ("policy =", "admission.policy"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_rejects_broken_admission_config(workdir, name):
    text, key = BROKEN[name]
    conf = workdir / f"{name}.conf"
    conf.write_text(f"[server]\nroot = www\n\n[admission]\n{text}\n")  # line 5
    p = run_check(conf, workdir)
    assert p.returncode != 0, f"{name}: accepted\n{p.stdout}{p.stderr}"
    assert f"{conf}:5:" in p.stderr, p.stderr
    assert key in p.stderr, p.stderr
    assert p.stderr.count("\n") <= 2, f"one message, not a dump: {p.stderr!r}"


def test_reload_switches_on_full_action(factory):
    server = factory(server_max_connections=2, reader_threads=1, **NO_CODEL)
    base = quiet(server)
    held = hold(server, 2)
    try:
        with RawConn(server.port) as c:
            c.send(request("GET", "/one.bin"))
            no_response(c)
        assert stats(server)["admission"]["closed_full"] == 1

        server.conf.setdefault("admission", {}).update(on_full="refuse", retry_after=5)
        server.write_conf()
        os.kill(server.pid, signal.SIGHUP)
        helpers.wait_until(lambda: stats(server)["generation"] == base["generation"] + 1,
                           timeout=10, what="the reload")
        assert stats(server)["failed_reloads"] == base["failed_reloads"]
        with RawConn(server.port) as c:
            c.send(request("GET", "/one.bin"))
            check_503(c.read_response(), "5")
            assert c.closed_within(5)
        st = counted(server, base, 1)
        assert counters(st) == {"dropping": False, "shed_queue_wait": 0, "refused_full": 1,
                                   "closed_full": 1, "closed_idle": 0}, st["admission"]
        for c in held:
            complete_ok(c, server)
    finally:
        close_all(held)
