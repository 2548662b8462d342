"""The SYN filter ([admission] drop_syn_retries, on by default): while the
adaptive limit binds, a BPF socket filter on the listener drops SYNs it has
seen before (a client's retransmission after its first SYN was dropped), so
the backlog's room goes to new clients; and ([admission] gate_syns, on by
default) it lets a new SYN through only while the accept queue has room below
the length the limit's controller chose. When the limit has not bound for a
while, every SYN goes through."""

import json
import os
import random
import select
import socket
import struct
import subprocess
import time

import pytest

import helpers
from helpers import RawConn, request
from lab import budget
from test_admission import accept_queue, factory, quiet, stats  # noqa: F401 (fixture)
from test_admission_limit import (LIMIT, freeze, keepalive_get, listen_backlog, lower_the_limit,
                                  sessions)

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="loading a BPF program and raw sockets need root")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn_segment(port, sport, seq):
    """A bare SYN from 127.0.0.1:SPORT to PORT with initial sequence number
    SEQ, as a client's kernel sends it (again, when it retransmits)."""
    src = dst = socket.inet_aton("127.0.0.1")
    hdr = struct.pack("!HHIIBBHHH", sport, port, seq, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, socket.IPPROTO_TCP, len(hdr))
    return hdr[:16] + struct.pack("!H", checksum(pseudo + hdr)) + hdr[18:]


def send_syn(port, sport, seq):
    """Sends syn_segment(PORT, SPORT, SEQ). No socket of ours owns SPORT, so a
    SYN-ACK that comes back is answered with a reset."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as s:
        s.sendto(syn_segment(port, sport, seq), ("127.0.0.1", 0))


def syn_counts(server):
    adm = stats(server)["admission"]
    return adm["syns"], adm["syn_retries"], adm["syn_retries_dropped"]


def a_syn_and_its_retransmission(port):
    sport, seq = random.randint(20000, 30000), random.getrandbits(32)
    send_syn(port, sport, seq)
    time.sleep(0.05)
    send_syn(port, sport, seq)


def test_filter_is_on_by_default_and_lets_every_syn_through_while_the_limit_does_not_bind(
        factory):
    server = factory(**LIMIT)
    quiet(server)
    adm = stats(server)["admission"]
    assert adm["syn_filter"] is True and adm["syn_shedding"] is False, adm
    assert stats(server)["config"]["admission"]["drop_syn_retries"] is True
    syns, retries, dropped = syn_counts(server)
    a_syn_and_its_retransmission(server.port)
    # A fresh SYN with a new sequence number on the same port is a new client.
    send_syn(server.port, 31000, 1)
    send_syn(server.port, 31000, 2)
    helpers.wait_until(lambda: syn_counts(server)[0] == syns + 4, timeout=5,
                       what="the filter counting four SYNs")
    assert syn_counts(server) == (syns + 4, retries + 1, dropped)
    # And the server still serves.
    with RawConn(server.port) as c:
        keepalive_get(c)


def test_retransmitted_syns_are_dropped_while_the_limit_binds(factory):
    # Without the gate, so that the kernel's own refusal at a full backlog
    # drops the first SYN (the gate would drop it sooner: the next test).
    server = factory(**LIMIT, admission_gate_syns="no")
    quiet(server)
    with sessions(server) as conns:
        lower_the_limit(server, conns)
        # Twenty more clients than the limit admits: they wait in the backlog
        # and the limit binds.
        extra = [RawConn(server.port) for _ in range(20)]
        fill, probe = [], None
        try:
            for c in extra:
                c.send(request("GET", "/one.bin"))
            helpers.wait_until(lambda: stats(server)["admission"]["syn_shedding"], timeout=5,
                               what="the filter shedding while the limit binds")
            syns, retries, dropped = syn_counts(server)
            # Frozen, the acceptor cannot turn shedding off, and nothing is
            # accepted: fill the backlog, then a client's first SYN finds it
            # full and the kernel drops it; the retransmission a second later
            # is the filter's to drop.
            freeze(server)
            try:
                a_syn_and_its_retransmission(server.port)
                full = listen_backlog(server.port) + 1
                for _ in range(200):
                    if accept_queue(server.port) >= full:
                        break
                    s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
                    fill.append(s)
                    s.sendall(request("GET", "/one.bin"))
                    time.sleep(0.01)  # the request makes it a queued connection
                assert accept_queue(server.port) >= full
                probe = socket.socket()
                probe.setblocking(False)
                assert probe.connect_ex(("127.0.0.1", server.port)) != 0
                time.sleep(1.6)  # past the first retransmission (1 s)
                _, w, _ = select.select([], [probe], [], 0)
                assert not w, "a client whose SYN was retransmitted got in"
            finally:
                os.kill(server.pid, 18)  # SIGCONT
            s1, r1, d1 = syn_counts(server)
            # Our pair: one retransmission, dropped; the probe: at least its
            # first retransmission, dropped.
            assert r1 - retries >= 2 and d1 - dropped >= 2, (syns, retries, dropped, s1, r1, d1)
            assert d1 - dropped <= r1 - retries
        finally:
            for c in extra:
                c.close()
            for s in fill:
                s.close()
    # The load gone, the limit stops binding; the probe's next retransmission
    # (3 s after its first SYN) gets in and it is served.
    helpers.wait_until(lambda: not stats(server)["admission"]["syn_shedding"], timeout=5,
                       what="shedding off once nothing waits")
    try:
        _, w, _ = select.select([], [probe], [], 10)
        assert w and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        probe.setblocking(True)
        probe.settimeout(10)
        probe.sendall(request("GET", "/one.bin"))
        assert probe.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        probe.close()
    syns, retries, dropped = syn_counts(server)
    a_syn_and_its_retransmission(server.port)
    helpers.wait_until(lambda: syn_counts(server)[1] == retries + 1, timeout=5,
                       what="the retransmission counted")
    assert syn_counts(server)[2] == dropped, "a retransmission dropped with no limit binding"


def test_drop_syn_retries_off_loads_no_filter(factory):
    server = factory(admission_drop_syn_retries="no", **LIMIT)
    quiet(server)
    adm = stats(server)["admission"]
    assert adm["syn_filter"] is False and adm["syns"] == 0, adm
    assert stats(server)["config"]["admission"]["drop_syn_retries"] is False
    a_syn_and_its_retransmission(server.port)
    assert stats(server)["admission"]["syns"] == 0


def connect_all(port, n, wait):
    """N non-blocking connects to PORT at once; after WAIT seconds, the
    sockets whose handshake completed and the rest."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    time.sleep(wait)
    _, w, _ = select.select([], socks, [], 0)
    up = [s for s in socks if s in w and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
    return up, [s for s in socks if s not in up]


def test_new_syns_are_gated_to_the_accept_queue_target_while_the_limit_binds(factory):
    server = factory(**LIMIT)
    quiet(server)
    assert stats(server)["config"]["admission"]["gate_syns"] is True
    with sessions(server) as conns:
        lower_the_limit(server, conns)
        # More clients than the limit admits: they wait and the limit binds.
        extra = [RawConn(server.port) for _ in range(20)]
        up, down = [], []
        try:
            for c in extra:
                c.send(request("GET", "/one.bin"))
            helpers.wait_until(lambda: stats(server)["admission"]["syn_gating"], timeout=5,
                               what="the gate closing while the limit binds")
            adm = stats(server)["admission"]
            target = adm["queue_target"]
            assert 0 < target <= adm["backlog"] // 2, adm
            gated = adm["syns_gated"]
            # Frozen, nothing is accepted and the gate is not refilled: of
            # many new clients, only as many as the queue had room for get a
            # handshake; the kernel's backlog never fills.
            n = target + 60
            freeze(server)
            try:
                up, down = connect_all(server.port, n, 0.5)
                for s in up:
                    s.sendall(request("GET", "/one.bin"))
                time.sleep(0.1)
                queued = accept_queue(server.port)
                assert len(up) <= target and len(down) >= 60, (len(up), target)
                assert queued <= target < listen_backlog(server.port), (queued, target)
            finally:
                os.kill(server.pid, 18)  # SIGCONT
            # Every client turned away was counted, and none twice (their
            # kernels retransmit only after a second: those count as retries).
            assert stats(server)["admission"]["syns_gated"] - gated == len(down)
        finally:
            for c in extra:
                c.close()
            for s in up + down:
                s.close()
    # The load gone, the gate opens and a new client is served at once.
    helpers.wait_until(lambda: not stats(server)["admission"]["syn_gating"], timeout=10,
                       what="the gate opening once nothing waits")
    with RawConn(server.port) as c:
        keepalive_get(c)


def test_filter_remembers_tens_of_thousands_of_syns(factory):
    """The filter's memory of SYNs (4-way buckets, 2 MiB) holds what a
    second of heavy overload sends: 30,000 distinct SYNs, then each one again,
    and the retransmissions are known for what they are (a forgotten one is
    taken for a new client). Nothing binds here, so every SYN goes through
    and is counted."""
    server = factory(**LIMIT)
    quiet(server)
    n = 30000
    rng = random.Random(7)
    syns = [(rng.randint(1024, 65535), rng.getrandbits(32)) for _ in range(n)]
    s0, r0, d0 = syn_counts(server)
    segments = [syn_segment(server.port, sport, seq) for sport, seq in syns]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP) as s:
        for _ in range(2):
            for seg in segments:
                s.sendto(seg, ("127.0.0.1", 0))
    helpers.wait_until(lambda: syn_counts(server)[0] >= s0 + 2 * n, timeout=10,
                       what=f"the filter counting {2 * n} SYNs")
    syns_seen, retries, dropped = syn_counts(server)
    # Two random ports may collide with a sequence number too: not in 30,000.
    assert syns_seen - s0 == 2 * n
    known = retries - r0
    assert known >= 0.995 * n, f"{n - known} of {n} retransmissions taken for new SYNs"
    assert known <= n, "a first SYN taken for a retransmission"
    assert dropped == d0, "dropped with no limit binding"


@pytest.mark.skipif(not os.access(helpers.BUILD / "sluice-load", os.X_OK),
                    reason="sluice-load not built")
def test_shedding_holds_while_the_gate_turns_syns_away(sluice_binary, test_root, tmp_path):
    """Under real overload (sluice at 0.1 CPU, a new connection per request at
    several times what it serves), the gate keeps the accept queue at its
    target and turns the other new SYNs away. Shedding (retransmitted SYNs
    dropped) must hold from the first binding to the end of the load: the
    accept queue's length alone reads short whenever a reader has just
    drained it, and in a lapse the retransmissions of the SYNs turned away a
    second before get in, to be answered more than a second late."""
    try:
        cg = budget.Cgroup(f"sluice-test-gate-{os.getpid()}", budget.Budget(cpus=0.1))
    except budget.BudgetError as e:
        pytest.skip(f"no cpu cgroup controller: {e}")
    # The shipped target (the tests' default of 1 s would make the accept
    # queue itself hold clients past a second).
    server = helpers.Sluice(tmp_path / "g", test_root, name="g",
                            conf={"admission_queue_wait_target": "50ms"})
    # About twice what sluice serves at 0.1 CPU: 4,000-5,000/s (ThreadSanitizer
    # about 2,200/s, so half the rate there; 10,000/s would fill the 4,096
    # backlog within the controller's first interval, a second's work).
    tsan = "SLUICE_TSAN:BOOL=ON" in (helpers.BUILD / "CMakeCache.txt").read_text()
    rate = "5000" if tsan else "10000"
    mon, load = [], None
    try:
        server.start(preexec_fn=cg.preexec)
        load = subprocess.Popen(
            [str(helpers.BUILD / "sluice-load"), "--server", "127.0.0.1", "--port",
             str(server.port), "--mode", "open", "--uri", "/dir00000/class1_5", "--rate", rate,
             "--duration", "5", "--timeout", "2", "--slo", "500", "--json", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=helpers.raise_nofile)
        t0 = time.monotonic()
        while load.poll() is None and time.monotonic() - t0 < 15:
            adm = stats(server)["admission"]
            mon.append((time.monotonic() - t0, adm["syn_shedding"], adm["syns_gated"],
                        {k: adm.get(k) for k in ("limit", "admitted", "waiting", "backlog",
                                                 "wait_ms", "readers_idle",
                                                 "syn_retries_dropped")}))
            time.sleep(0.05)
        out, err = load.communicate(timeout=15)
        assert load.returncode == 0, err
        summary = json.loads(out)
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        server.stop()
        cg.remove()
    gated = mon[-1][2] - mon[0][2]
    assert gated > 1000, f"the gate turned only {gated} SYNs away: no overload? {summary}"
    on = [t for t, shed, _, _ in mon if shed]
    assert on and on[0] < 3, f"shedding never started early: {mon[:40]}"
    lapses = [(t, g) for t, shed, g, _ in mon if on[0] < t < 4.8 and not shed]
    assert not lapses, f"shedding lapsed while the load went on: {lapses}"
    lat = summary["latency_admitted_ms"]
    trace = [(round(t, 2), shed, d) for t, shed, _, d in mon[::4]]
    assert lat["p99"] < 1000, (f"retransmitted SYNs were let in: admitted p99 {lat}; "
                               f"{summary}; admission every 0.2 s: {trace}")


@pytest.mark.parametrize("mem, table", [("96M", 1 << 20), ("256M", 2 << 20)])
def test_the_table_of_syns_seen_is_a_sixty_fourth_of_the_memory_cgroup(tmp_path, mem, table):
    """The table is kernel memory charged to sluice's memory cgroup, which the
    page cache then lacks: at most 1/64 of the limit, 2 MiB at most."""
    with helpers.sluice_in_memory_cgroup(tmp_path, mem, "synmem") as server:
        adm = helpers.stats_json(server.status_socket)["admission"]
        assert adm["syn_filter"] is True and adm["syn_memory"] == table, adm
        prom = helpers.status_command(server.status_socket, "metrics")
        assert f"sluice_admission_syn_memory_bytes {table}\n" in prom
        assert f"{table // 1024} KiB of kernel memory remember {table // 32 * 4} SYNs" in \
            server.log_text()
        # and the filter still tells a retransmission from a new SYN
        _, retries, _ = syn_counts(server)
        a_syn_and_its_retransmission(server.port)
        helpers.wait_until(lambda: syn_counts(server)[1] == retries + 1, timeout=5,
                           what="the retransmission seen")
