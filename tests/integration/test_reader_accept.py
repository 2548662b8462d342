"""Who accepts: the readers ([acceptor] threads = 0, the default), each
serving what it accepted in the same round, or acceptor threads that hand
connections to the readers; max_connections, the adaptive limit and the SYN
gate either way; switching between the two live; stopping while the readers
accept.

The admission tests of test_admission, test_admission_limit and
test_synfilter that depend on who accepts run here again in the accept mode
that is NOT the default (FACTORY_MODE below), through this module's
`factory` fixture: pytest resolves a fixture where the test is collected.

Run: SLUICE_BUILD=build /usr/bin/python3 -m pytest -q tests/integration/test_reader_accept.py
"""

import os
import signal
import socket
import threading
import time

import pytest

import helpers
from helpers import RawConn, request, sha256, stats_json, wait_until
from test_admission import (  # noqa: F401 (run again here, in the other mode)
    test_close_idle_admits_new_and_closes_longest_idle,
    test_close_idle_with_default_readers_burst_of_new_clients, test_close_drops_new_connection_without_response,
    test_refuse_answers_503_with_retry_after_then_closes, test_refuse_past_the_slack_closes,
    test_wait_serves_waiting_client_once_a_slot_frees,
    test_wait_with_close_idle_makes_room_from_idle_keepalive)
from test_admission_limit import (  # noqa: F401
    test_backlog_shrinks_while_the_limit_binds_and_comes_back,
    test_limit_grows_back_while_connections_wait_and_readers_are_idle,
    test_standing_queue_lowers_limit_and_new_connections_wait_in_backlog)
from test_threads import thread_names

if os.geteuid() == 0:  # the SYN filter needs root (test_synfilter skips otherwise)
    from test_synfilter import (  # noqa: F401
        test_new_syns_are_gated_to_the_accept_queue_target_while_the_limit_binds,
        test_retransmitted_syns_are_dropped_while_the_limit_binds)

# The accept mode the imported tests run in here: the one the defaults do not
# use (the readers accept by default: [acceptor] threads = 0).
FACTORY_MODE = {"acceptor_threads": 1}


@pytest.fixture
def factory(sluice_factory, monkeypatch):
    """sluice_factory in FACTORY_MODE unless a test sets acceptor_threads."""
    if "admission" not in helpers.SECTIONS:
        monkeypatch.setattr(helpers, "SECTIONS", helpers.SECTIONS + ("admission",))

    def make(**conf):
        return sluice_factory(**{**FACTORY_MODE, **conf})
    return make


def get(port, path, close):
    with RawConn(port) as c:
        c.send(request("GET", path, close=close))
        return c.read_response()


def stats(server):
    return stats_json(server.status_socket)


def acceptor_stage(server):
    return next(s for s in stats(server)["stages"] if s["name"] == "acceptor")


def serve_and_check(server, n=60):
    """N new connections (half with Connection: close), and one keep-alive
    connection with N requests: every body right."""
    path = "/dir00000/class1_3"
    want = server.root.files[path][1]
    for i in range(n):
        r = get(server.port, path, close=i % 2 == 0)
        assert r.status == 200 and sha256(r.body) == want
    with RawConn(server.port) as c:
        for _ in range(n):
            c.send(request("GET", path))
            r = c.read_response()
            assert r.status == 200 and sha256(r.body) == want


def test_readers_accept_with_no_acceptor_thread(factory):
    server = factory(acceptor_threads=0, reader_threads=2)
    names = thread_names(server.pid)
    assert names["acceptor"] == 0 and names["reader-0"] == 1 and names["reader-1"] == 1, names
    before = acceptor_stage(server)["processed"]
    serve_and_check(server)
    st = stats(server)
    acc = next(s for s in st["stages"] if s["name"] == "acceptor")
    assert acc["threads"] == 0 and st["config"]["threads"]["acceptor"] == 0, acc
    # Every connection was accepted and counted as the acceptor stage's work.
    assert acc["processed"] - before == 61, acc
    assert st["connections"]["accepted"] == acc["processed"]


def test_connections_spread_over_the_readers_that_accept(factory):
    """Both readers accept, 200 clients at once: each reader ends up holding
    some, none more than the other's count plus half as many again plus 64
    (a reader past that leaves accepting to the other), and per_reader
    counts every one."""
    server = factory(acceptor_threads=0, reader_threads=2)
    conns = []
    try:
        for _ in range(200):
            c = RawConn(server.port)
            c.send(request("GET", "/dir00000/class0_1"))
            conns.append(c)
        for c in conns:
            assert c.read_response().status == 200
        per = stats(server)["connections"]["per_reader"]
        assert sum(per) == 200, per
        least = min(per)
        assert least > 0 and max(per) <= least + least // 2 + 64 + 1, per
    finally:
        for c in conns:
            c.close()


def test_switching_live_between_acceptor_threads_and_readers(factory):
    """`set acceptor.threads 0` hands accepting to the readers, `set
    acceptor.threads 2` takes it back; clients connecting all the while are
    all served (none refused, none left unanswered)."""
    server = factory(acceptor_threads=1, reader_threads=2)
    path = "/dir00000/class0_5"
    want = server.root.files[path][1]
    stop = threading.Event()
    errors, done = [], [0]

    def client():
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            try:
                r = get(server.port, path, close=True)
                if r.status != 200 or sha256(r.body) != want:
                    errors.append(r.status)
                done[0] += 1
            except OSError as e:
                errors.append(repr(e))

    ts = [threading.Thread(target=client) for _ in range(2)]
    for t in ts:
        t.start()
    try:
        for n in (0, 2, 0, 1):
            seen = done[0]
            assert helpers.status_command(server.status_socket,
                                          f"set acceptor.threads {n}") == \
                f"ok acceptor.threads={n}\n"
            wait_until(lambda: thread_names(server.pid)["acceptor"] == n, timeout=5,
                       what=f"{n} acceptor threads")
            wait_until(lambda: done[0] >= seen + 50, timeout=20,
                       what=f"50 more connections with {n} acceptor threads")
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=70)
    assert not errors, errors[:5]
    assert stats(server)["config"]["threads"]["acceptor"] == 1


def test_reload_to_no_acceptor_thread(factory):
    server = factory(acceptor_threads=1)
    server.conf["acceptor"]["threads"] = 0
    server.write_conf()
    os.kill(server.pid, signal.SIGHUP)
    wait_until(lambda: stats(server)["generation"] == 1, timeout=10, what="the reload")
    wait_until(lambda: thread_names(server.pid)["acceptor"] == 0, timeout=5,
               what="no acceptor thread after the reload")
    serve_and_check(server, 20)
    assert stats(server)["config"]["threads"]["acceptor"] == 0


def test_negative_acceptor_threads_is_rejected(factory):
    server = factory(acceptor_threads=0)
    r = helpers.status_command(server.status_socket, "set acceptor.threads 257")
    assert r.startswith("error:") and "between 0 and 256" in r, r
    r = helpers.status_command(server.status_socket, "set acceptor.threads 0")
    assert r == "ok acceptor.threads=0\n", r
    r = helpers.status_command(server.status_socket, "set writer.threads 0")
    assert r.startswith("error:") and "between 1 and 256" in r, r


def test_stop_while_the_readers_accept_under_load(factory):
    """SIGTERM while clients keep connecting: sluice stops in time and
    cleanly (the factory checks the exit and the sanitizer logs), the port is
    closed afterwards, and no client got a wrong answer: each got a whole
    200, or a refused or reset connection."""
    server = factory(acceptor_threads=0, reader_threads=2)
    path = "/dir00000/class0_1"
    want = server.root.files[path][1]
    bad, ok = [], [0]
    stop = threading.Event()

    def client():
        end = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < end:
            try:
                r = get(server.port, path, close=True)
            except OSError:
                continue  # refused or reset once stopping: allowed
            except helpers.ConnectionClosed as e:
                if "before a full response head" not in str(e):
                    bad.append(str(e))  # a body cut short: never
                continue
            if r.status != 200 or sha256(r.body) != want:
                bad.append(r.status)
            ok[0] += 1

    ts = [threading.Thread(target=client) for _ in range(4)]
    for t in ts:
        t.start()
    try:
        wait_until(lambda: ok[0] >= 200, timeout=20, what="200 served")
        t0 = time.monotonic()
        assert server.stop(timeout=15) == 0
        assert time.monotonic() - t0 < 10
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=40)
    assert not bad, bad[:5]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
