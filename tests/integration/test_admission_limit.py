"""The adaptive admission limit ([admission] policy = limit, the default): it
starts at 256 open connections; a standing queue inside sluice lowers it, new
connections then wait in the kernel's listen backlog (never accepted, never
a 503), the sessions already admitted are served, and the backlog is sized
to what the acceptor takes in three targets; and it grows back while
connections wait and the readers have time to spare."""

import contextlib
import os
import signal
import subprocess
import socket
import time

import pytest

import helpers
from helpers import RawConn, request
from test_admission import accept_queue, all_stopped, factory, quiet, stats  # noqa: F401 (fixture)

LIMIT = {"admission_queue_wait_target": "50ms", "admission_queue_wait_interval": "100ms",
         "server_max_connections": 1000, "reader_threads": 1}


def listen_backlog(port):
    """The backlog the kernel holds for the listener on PORT (ss: Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out, f"no listener on port {port} in ss"
    return int(out[2])


def keepalive_get(conn, path="/one.bin"):
    conn.send(request("GET", path))
    resp = conn.read_response()
    assert resp.status == 200, resp
    return resp


def freeze(server):
    """SIGSTOP, and wait until every thread has stopped: a reader still
    running when a request arrives would parse it at once, and that one short
    wait would be the interval's least."""
    os.kill(server.pid, signal.SIGSTOP)
    helpers.wait_until(lambda: all_stopped(server.pid), timeout=5, step=0.005,
                       what="every sluice thread stopped")


def stall(server, seconds):
    """Stops the whole server for SECONDS: requests sent meanwhile wait inside
    it (their bytes are in the kernel, timestamped, unread)."""
    try:
        freeze(server)
        time.sleep(seconds)
    finally:
        os.kill(server.pid, signal.SIGCONT)


@contextlib.contextmanager
def sessions(server, n=40):
    """N kept-alive connections, each served one request; closed on exit."""
    conns = [RawConn(server.port) for _ in range(n)]
    try:
        for c in conns:
            keepalive_get(c)
        yield conns
    finally:
        for c in conns:
            c.close()


def assert_nothing_refused(server):
    """No 5xx and no connection closed at max_connections: the limit only
    made clients wait."""
    st = stats(server)
    assert st["requests"]["5xx"] == 0 and st["admission"]["closed_full"] == 0, st


def lower_the_limit(server, conns):
    """Each of CONNS (kept-alive, idle) sends a request while sluice is
    frozen for 400 ms, so each waits that long inside it: a standing queue
    eight times the 50 ms target. Checks every one is still served, then
    waits for the limit to fall to at most half of the connections in use.
    Returns the admission object then."""
    time.sleep(0.5)  # an interval or two of short waits first
    try:
        freeze(server)
        for c in conns:
            c.send(request("GET", "/one.bin"))
        time.sleep(0.4)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    for c in conns:  # every admitted session is still served
        assert c.read_response().status == 200
    seen = []
    end = time.monotonic() + 5
    while not seen or seen[-1]["limit"] > len(conns) // 2:
        assert time.monotonic() < end, f"the limit did not fall: {seen[-3:]}"
        time.sleep(0.02)
        seen.append(stats(server)["admission"])
    return seen[-1]


def test_standing_queue_lowers_limit_and_new_connections_wait_in_backlog(factory):
    # Intervals of 300 ms: the new connection below makes the limit bind, and
    # with idle readers it grows back an eighth per interval, so it would be
    # let in after about six intervals. At 100 ms that left the half-second
    # check below racing the growth on a loaded machine.
    server = factory(**{**LIMIT, "admission_queue_wait_interval": "300ms"})
    quiet(server)
    with sessions(server) as conns:
        assert stats(server)["admission"]["limit"] == 256  # the start, under max_connections
        lower_the_limit(server, conns)  # the 400 ms waits were inside sluice
        adm = stats(server)["admission"]
        assert adm["policy"] == "limit" and adm["limit"] >= 16, adm
        # A new connection now waits in the backlog: not accepted, no reply.
        newc = RawConn(server.port)
        try:
            newc.send(request("GET", "/one.bin"))
            helpers.wait_until(lambda: accept_queue(server.port) == 1, timeout=5,
                               what="the new connection in the accept queue")
            newc.sock.settimeout(0.5)
            with pytest.raises(socket.timeout):
                newc.sock.recv(1)
            assert stats(server)["admission"]["waiting"] == 1
            # Sessions ending free slots: then it is accepted and served.
            for c in conns[:30]:
                c.close()
            newc.sock.settimeout(10)
            assert newc.read_response().status == 200
        finally:
            newc.close()
        assert_nothing_refused(server)


def test_limit_grows_back_while_connections_wait_and_readers_are_idle(factory):
    server = factory(**LIMIT)
    quiet(server)
    with sessions(server) as conns:
        low = lower_the_limit(server, conns)["limit"]
        # The 40 stay open and idle; 20 more clients come. They wait, the
        # readers have nothing to do: the limit grows until all are in, and
        # each is served, none refused.
        extra = [RawConn(server.port) for _ in range(20)]
        try:
            for c in extra:
                c.send(request("GET", "/one.bin"))
            for c in extra:
                c.sock.settimeout(10)
                assert c.read_response().status == 200
            adm = stats(server)["admission"]
            assert adm["limit"] >= 60 > low and adm["waiting"] == 0, adm
            assert adm["admitted"] == 60, adm
        finally:
            for c in extra:
                c.close()
        assert_nothing_refused(server)


def test_a_burst_past_the_limit_with_time_to_spare_is_let_in_not_shed(factory):
    """More clients at once than the limit admits while sluice has time for
    them (readers idle, every request served at once): the limit is behind
    the load, not sluice past what it serves in time. It grows and lets them
    all in; nothing is shed: the backlog stays as configured and, with the
    SYN filter, no SYN is turned away."""
    server = factory(server_backlog=1024, **LIMIT)
    quiet(server)
    assert stats(server)["admission"]["limit"] == 256
    conns, seen = [], []
    try:
        for _ in range(3):  # 200, then 400 and 600 open: past the 256 at start
            wave = [RawConn(server.port) for _ in range(200)]
            conns += wave
            for c in wave:
                c.send(request("GET", "/one.bin"))
            for c in wave:
                assert c.read_response().status == 200
            for _ in range(3):
                seen.append((listen_backlog(server.port), stats(server)["admission"]))
                time.sleep(0.1)
        adm = seen[-1][1]
        assert adm["admitted"] == 600 and adm["limit"] >= 600, adm
        for backlog, adm in seen:
            assert backlog == 1024 and adm["backlog"] == 1024, (backlog, adm)
            assert not adm["syn_shedding"] and adm["syns_gated"] == 0, adm
            assert adm["syn_retries_dropped"] == 0, adm
    finally:
        for c in conns:
            c.close()
    assert_nothing_refused(server)


def test_backlog_shrinks_while_the_limit_binds_and_comes_back(factory):
    server = factory(server_backlog=1024, **LIMIT)
    quiet(server)
    assert listen_backlog(server.port) == 1024
    with sessions(server) as conns:
        lower_the_limit(server, conns)
        # Connections held back: the limit binds, and the backlog shrinks to
        # what the acceptor takes in about 150 ms (the floor, here).
        extra = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
        try:
            for s in extra:
                s.sendall(request("GET", "/one.bin"))
            helpers.wait_until(lambda: listen_backlog(server.port) < 1024, timeout=5,
                               what="the backlog shrinking")
            b = listen_backlog(server.port)
            assert b == stats(server)["admission"]["backlog"] and b >= 64, b
        finally:
            for s in extra:
                s.close()
        for c in conns:
            c.close()
        # Load gone, nothing held back: the configured backlog again.
        helpers.wait_until(lambda: listen_backlog(server.port) == 1024, timeout=5,
                           what="the backlog back at its configured size")


def test_codel_policy_keeps_503_shedding_and_limit_stays_at_max(factory):
    server = factory(admission_policy="codel", **LIMIT)
    quiet(server)
    with sessions(server, 20):
        time.sleep(0.3)
        stall(server, 0.3)
        adm = stats(server)["admission"]
        assert adm["policy"] == "codel" and adm["limit"] == 1000, adm
