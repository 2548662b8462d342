"""sluice-load, the overload-study load generator, against the real daemon
and against tiny fake servers: it agrees with httperf on reply rate, its
counts reconcile with what sluice counted, it classifies failures (timeouts
per file size, wrong Content-Length, refused), it stops by itself, and it
never targets a non-loopback address. tools/sluice-sweep gets a short smoke
run. About 30 s in all.
"""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import helpers
from helpers import HOST

LOAD = helpers.BUILD / "sluice-load"
SWEEP = helpers.REPO / "tools" / "sluice-sweep"
URI = "/dir00000/class1_5"  # 5120 bytes in the standard root
PROGRESS = re.compile(r"^sluice-load: +(\d+)s +offered +\d+/s +replies +\d+/s", re.M)


@pytest.fixture(scope="module")
def load_bin():
    if not os.access(LOAD, os.X_OK):
        pytest.fail(f"{LOAD} not found: build first (make build)", pytrace=False)
    return str(LOAD)


def run_load(load_bin, *args, timeout=60):
    """Runs sluice-load --json; returns (summary dict, stderr text, seconds)."""
    t = time.monotonic()
    p = subprocess.run([load_bin, *map(str, args), "--json"], capture_output=True, text=True,
                       timeout=timeout, preexec_fn=helpers.raise_nofile)
    took = time.monotonic() - t
    assert p.returncode == 0, f"sluice-load exited with {p.returncode}:\n{p.stderr}"
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json prints exactly one line, got:\n{p.stdout}"
    return json.loads(lines[0]), p.stderr, took


def stats_json(path):
    return helpers.stats_json(path)


def httperf_rate(port, rate, conns):
    """Reply rate from httperf: replies / test-duration (its 'Reply rate'
    line needs 5 s samples, longer than this test runs)."""
    p = subprocess.run(["httperf", "--server", HOST, "--port", str(port), "--uri", URI,
                        "--rate", str(rate), "--num-conns", str(conns), "--num-calls", "1",
                        "--timeout", "5"], capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"httperf failed:\n{out}"
    m = re.search(r"Total: connections (\d+) requests (\d+) replies (\d+) test-duration "
                  r"([\d.]+) s", out)
    assert m, f"no totals in httperf output:\n{out}"
    errors = int(re.search(r"Errors: total (\d+)", out).group(1))
    return int(m.group(3)) / float(m.group(4)), errors, out


def test_open_mode_agrees_with_httperf(load_bin, sluice_factory):
    """Same offered rate, same file: both tools see the same reply rate."""
    if shutil.which("httperf") is None:
        pytest.fail("httperf not installed: run make deps", pytrace=False)
    srv = sluice_factory()
    rate, secs = 300, 4
    ours, _, _ = run_load(load_bin, "--port", srv.port, "--fileset", srv.root.path,
                          "--uri", URI, "--mode", "open", "--rate", rate, "--duration", secs,
                          "--arrivals", "uniform", "--quiet")
    theirs, herrors, hout = httperf_rate(srv.port, rate, rate * secs)
    assert ours["errors"]["total"] == 0, ours["errors"]
    assert herrors == 0, hout
    assert ours["reply_rps"] == pytest.approx(rate, rel=0.05)
    assert theirs == pytest.approx(rate, rel=0.05), hout
    assert ours["reply_rps"] == pytest.approx(theirs, rel=0.05), \
        f"sluice-load {ours['reply_rps']:.1f}/s vs httperf {theirs:.1f}/s"
    assert ours["replies"] == ours["good"] == ours["requests"]
    assert ours["status"]["2xx"] == ours["requests"]
    assert ours["sessions"]["started"] == ours["requests"]
    check_consistent(ours)


def test_sessions_mode_light_load(load_bin, sluice_factory, tmp_path):
    """The paper's partially-open workload at light load: no errors, the
    verification passes, a CSV row and a progress line per second, and the
    replies counted equal sluice's own request count."""
    srv = sluice_factory()
    secs = 4
    csv_path = tmp_path / "load.csv"
    res, err, took = run_load(load_bin, "--port", srv.port, "--fileset", srv.root.path,
                              "--rate", 15, "--duration", secs, "--csv", csv_path)
    assert res["mode"] == "sessions"
    assert res["replies"] > 0 and res["good"] == res["replies"]
    assert res["errors"]["total"] == 0, res["errors"]
    assert res["verification"]["pass"] is True
    assert res["verification"]["judged_sizes"] > 0
    assert res["latency_ms"]["count"] == res["good"]
    assert 0 < res["latency_ms"]["p50"] <= res["latency_ms"]["p99"] <= res["latency_ms"]["max"]
    assert res["totals"]["in_flight_at_exit"] == 0
    assert took < secs + 3
    # The class mix reached every class, and sizes match the manifest (no
    # length_mismatch above).
    names = {s["name"] for s in res["per_size"]}
    assert {"class0_5", "class1_5", "class2_5"} <= names, names

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = [int(r["second"]) for r in rows]
    assert seconds[:secs] == list(range(1, secs + 1)), seconds
    assert sum(int(r["replies"]) for r in rows) == res["totals"]["replies"]
    assert all(int(r["errors"]) == 0 for r in rows)

    ticks = [int(s) for s in PROGRESS.findall(err)]
    assert ticks[:secs] == list(range(1, secs + 1)), err

    status = stats_json(srv.status_socket)
    assert status["requests"]["total"] == res["totals"]["replies"], \
        f"sluice counted {status['requests']['total']}, sluice-load {res['totals']['replies']}"
    assert status["requests"]["2xx"] == res["totals"]["good"]
    # The new measures, against what sluice counted: the window is the whole
    # run (no warm-up), so every reply sluice sent is in the status counts.
    assert res["status"]["2xx"] == status["requests"]["2xx"] == res["good"]
    assert res["status"]["503"] == res["status"]["5xx"] == res["status"]["4xx"] == 0
    assert res["goodput"]["replies"] + res["late"] == res["good"]
    assert res["latency_admitted_ms"]["count"] == res["good"]
    assert res["connect_failures"] == res["resets_after_accept"] == res["client_timeouts"] == 0
    s = res["sessions"]
    assert s["started"] == res["totals"]["sessions"] > 0  # pre-warmed ones started before
    assert s["failed"] == 0 and s["completed"] + s["cut_off"] == s["started"]
    assert res["lag_ms"]["request"]["count"] == res["requests"]
    check_consistent(res)
    assert all(r["goodput"] != "" and r["lag_p99_ms"] != "" for r in rows)
    assert re.search(r"goodput +\d+/s .* lag p99 +[\d.]+ ms", err), err


def test_refuses_non_loopback(load_bin):
    for host in ("192.0.2.1", "10.1.2.3", "2001:db8::1"):
        p = subprocess.run([load_bin, "--server", host, "--port", "80", "--duration", "1"],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (host, p.stderr)
        assert "not a loopback address" in p.stderr, p.stderr
        assert "127.0.0.0/8 or ::1" in p.stderr


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan"])
def test_bad_slo_is_refused(load_bin, value):
    p = subprocess.run([load_bin, "--slo", value, "--duration", "1"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 2, p.stderr
    assert f"--slo: '{value}' is not a number" in p.stderr, p.stderr


def test_timeouts_counted_per_size_and_bounded(load_bin, test_root):
    """A server that accepts and never answers: every request times out, the
    per-size verification fails, and the run ends by duration + timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as lsock:
        lsock.bind((HOST, 0))
        lsock.listen(1024)  # the kernel completes handshakes; nobody reads
        port = lsock.getsockname()[1]
        res, _, took = run_load(load_bin, "--port", port, "--fileset", test_root.path,
                                "--mode", "open", "--rate", 60, "--duration", 1.5,
                                "--timeout", 1, "--verify-min", 1, "--quiet")
    assert res["requests"] > 0
    assert res["errors"]["timeout"] == res["requests"] == res["errors"]["total"]
    # Established (the kernel completed every handshake): client timeouts.
    assert res["client_timeouts"] == res["requests"]
    assert res["connect_failures"] == res["resets_after_accept"] == 0
    assert res["replies"] == 0
    assert res["verification"]["pass"] is False
    assert res["verification"]["max_timeout_pct"] == pytest.approx(100.0)
    assert all(s["timeouts"] == s["requests"] for s in res["per_size"])
    assert took < 1.5 + 1 + 1.0, f"ran {took:.1f} s; bound is duration + timeout"


def test_refused_connections(load_bin, test_root):
    port = helpers.free_port()  # nothing listens there
    res, _, _ = run_load(load_bin, "--port", port, "--fileset", test_root.path, "--mode", "open",
                         "--rate", 50, "--duration", 1, "--quiet")
    assert res["requests"] > 0
    assert res["errors"]["refused"] == res["requests"]
    assert res["connect_failures"] == res["requests"]
    assert res["resets_after_accept"] == res["client_timeouts"] == 0
    assert res["sessions"] == {"started": res["requests"], "completed": 0,
                               "completed_within_slo": 0, "failed": res["requests"],
                               "cut_off": 0}
    # One connect per request, each timed against its due time.
    assert res["lag_ms"]["connect"]["count"] == res["requests"]


class FakeServer(threading.Thread):
    """Answers every request with a fixed reply, keep-alive."""

    def __init__(self, reply):
        super().__init__(daemon=True)
        self.reply = reply
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stopped = threading.Event()

    def serve(self, conn):
        buf = b""
        with conn:
            conn.settimeout(5)
            while not self.stopped.is_set():
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    conn.sendall(self.reply)

    def run(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def stop(self):
        self.stopped.set()
        self.lsock.close()


def test_content_length_checked_against_manifest(load_bin, test_root):
    """A 200 whose Content-Length differs from the manifest size is an error."""
    size = test_root.files[URI][0]
    body = b"x" * (size - 1)
    fake = FakeServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    fake.start()
    try:
        res, _, _ = run_load(load_bin, "--port", fake.port, "--fileset", test_root.path,
                             "--uri", URI, "--mode", "open", "--rate", 40, "--duration", 1,
                             "--quiet")
    finally:
        fake.stop()
    assert res["replies"] == res["requests"] > 0
    assert res["good"] == 0
    assert res["errors"]["length_mismatch"] == res["requests"]


def test_503_counts_as_shed(load_bin, test_root):
    fake = FakeServer(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    fake.start()
    try:
        res, _, _ = run_load(load_bin, "--port", fake.port, "--fileset", test_root.path,
                             "--mode", "open", "--rate", 40, "--duration", 1, "--quiet")
    finally:
        fake.stop()
    assert res["requests"] > 0
    assert res["errors"]["shed_503"] == res["requests"]
    assert res["errors"]["status_5xx"] == 0 and res["good"] == 0


# ------------------------------------------------- measures that cannot flatter
#
# Scripted servers on loopback decide, request by request, what to do and
# count what they did; sluice-load's summary must agree with those counts.


class ScriptServer(threading.Thread):
    """A loopback server that asks SCRIPT(conn_no, req_no) what to do with
    each request: ("reply", label, delay_s, bytes), ("rst", label) (close with
    an RST once the request is read), ("fin", label) (close without a reply)
    or, with act_on_accept, ("rst_now", label) before reading anything.
    counts[label] is incremented once the action is done; served[conn_no]
    lists the labels of that connection's requests."""

    def __init__(self, script, backlog=128, act_on_accept=None):
        super().__init__(daemon=True)
        self.script = script
        self.act_on_accept = act_on_accept
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind((HOST, 0))
        self.lsock.listen(backlog)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.served = {}
        self.conns = 0
        self.threads = []

    def count(self, conn_no, label):
        with self.lock:
            self.counts[label] = self.counts.get(label, 0) + 1
            self.served.setdefault(conn_no, []).append(label)

    @staticmethod
    def reset(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    def serve(self, conn, conn_no):
        buf, req_no = b"", 0
        conn.settimeout(10)
        try:
            if self.act_on_accept:
                action = self.act_on_accept(conn_no)
                if action:
                    self.reset(conn)
                    self.count(conn_no, action[1])
                    return
            while not self.stopped.is_set():
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    action = self.script(conn_no, req_no)
                    req_no += 1
                    if action[0] == "reply":
                        _, label, delay, reply = action
                        if delay:
                            time.sleep(delay)
                        conn.sendall(reply)
                        self.count(conn_no, label)
                    elif action[0] == "rst":
                        self.reset(conn)
                        self.count(conn_no, action[1])
                        return
                    elif action[0] == "fin":
                        conn.shutdown(socket.SHUT_RDWR)
                        self.count(conn_no, action[1])
                        return
        except OSError:
            return
        finally:
            conn.close()

    def run(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                continue
            with self.lock:
                conn_no = self.conns
                self.conns += 1
            t = threading.Thread(target=self.serve, args=(conn, conn_no), daemon=True)
            self.threads.append(t)
            t.start()

    def stop(self):
        """Stops accepting and waits for every connection's thread, so the
        counts are final."""
        self.stopped.set()
        self.join(5)
        self.lsock.close()
        for t in self.threads:
            t.join(10)
        assert not any(t.is_alive() for t in self.threads), "a test-server thread hangs"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def ok_reply(size, status="200 OK"):
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status.encode(), size, b"x" * size)


def check_consistent(res):
    """What must hold in any summary: goodput and late split the admitted
    replies, every window request is accounted for once, the goodput rate is
    its count over its span, or over the window when that is longer (a few
    good replies close together are not a high rate)."""
    st = res["status"]
    assert res["goodput"]["replies"] + res["late"] == res["latency_admitted_ms"]["count"] \
        == res["good"]
    assert sum(st.values()) == res["replies"]
    failures = res["connect_failures"] + res["resets_after_accept"] + res["client_timeouts"]
    assert res["replies"] + failures + res["errors"]["client_limit"] <= res["requests"]
    g = res["goodput"]
    span = max(g["span_s"], res["window_s"])
    if g["replies"] >= 1 and span > 0:
        assert g["rps"] == pytest.approx(g["replies"] / span, rel=1e-3)
        assert g["rps"] <= g["replies"] / res["window_s"] * 1.001
    else:
        assert g["rps"] == 0
    assert g["span_s"] <= res["duration_s"] + res["slo_ms"] / 1000 + 0.1
    s = res["sessions"]
    assert s["completed_within_slo"] <= s["completed"] <= s["started"]
    assert s["completed"] + s["failed"] + s["cut_off"] == s["started"]


OPEN = ("--mode", "open", "--arrivals", "uniform", "--quiet")


@pytest.mark.parametrize("every", [1, 2], ids=["all-late", "every-other-late"])
def test_late_replies_are_not_goodput(load_bin, test_root, every):
    """A server that answers (every EVERY-th request) after a delay longer
    than the deadline: those replies are late, never goodput; the others are
    goodput. Each count equals what the server did."""
    size = test_root.files[URI][0]
    seq = iter(range(1 << 30))
    lock = threading.Lock()

    def script(conn_no, req_no):
        with lock:
            n = next(seq)
        if n % every == 0:
            return ("reply", "slow", 0.8, ok_reply(size))
        return ("reply", "fast", 0, ok_reply(size))

    rate, secs = 20, 2
    with ScriptServer(script) as srv:
        res, err, _ = run_load(load_bin, "--port", srv.port, "--fileset", test_root.path,
                               "--uri", URI, "--rate", rate, "--duration", secs,
                               "--slo", 300, "--timeout", 3, *OPEN)
    slow, fast = srv.counts.get("slow", 0), srv.counts.get("fast", 0)
    # Open loop: the schedule, not the slow server, decides what is due.
    assert res["requests"] == pytest.approx(rate * secs, abs=1)
    assert slow + fast == res["requests"] == res["replies"] == res["good"]
    assert slow >= res["requests"] // every - 1 > 0
    assert res["slo_ms"] == 300
    assert res["late"] == slow
    assert res["goodput"]["replies"] == fast
    assert res["status"] == {"2xx": slow + fast, "3xx": 0, "4xx": 0, "503": 0, "5xx": 0}
    assert res["latency_admitted_ms"]["count"] == slow + fast
    assert res["latency_admitted_ms"]["max"] >= 800
    assert res["sessions"]["started"] == res["requests"]
    assert res["sessions"]["completed"] == slow + fast
    assert res["sessions"]["completed_within_slo"] == fast
    if every == 1:
        assert res["goodput"] == {"replies": 0, "rps": 0, "span_s": 0}
    else:
        # Fast replies come every 2/rate s over the run: their span is close
        # to the duration, and the rate is about half the offered one.
        assert secs - 0.5 < res["goodput"]["span_s"] < secs
        assert res["goodput"]["rps"] == pytest.approx(rate / 2, rel=0.2)
    check_consistent(res)
    assert re.search(rf"goodput +{fast} replies within the 300 ms deadline.*; {slow} late", err), err


def test_status_classes_503_and_retry_after(load_bin, test_root):
    """503 with and without Retry-After, 500, 404, 200 and 304: each status
    class counted as the server sent it; 503 apart from the other 5xx; 304
    is a good reply (goodput); refusals are fast."""
    size = test_root.files[URI][0]
    plan = [("503ra", b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                      b"Content-Length: 0\r\n\r\n"),
            ("503", b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
            ("500", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
            ("404", b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n"),
            ("200", ok_reply(size)),
            ("304", b"HTTP/1.1 304 Not Modified\r\n\r\n")]
    seq = iter(range(1 << 30))
    lock = threading.Lock()

    def script(conn_no, req_no):
        with lock:
            label, reply = plan[next(seq) % len(plan)]
        return ("reply", label, 0, reply)

    with ScriptServer(script) as srv:
        res, err, _ = run_load(load_bin, "--port", srv.port, "--fileset", test_root.path,
                               "--uri", URI, "--rate", 60, "--duration", 1, *OPEN)
    c = {label: srv.counts.get(label, 0) for label, _ in plan}
    assert sum(c.values()) == res["requests"] == res["replies"]
    assert min(c.values()) >= 5, c
    assert res["status"] == {"2xx": c["200"], "3xx": c["304"], "4xx": c["404"],
                             "503": c["503ra"] + c["503"], "5xx": c["500"]}
    assert res["retry_after_503"] == c["503ra"]
    assert res["errors"]["shed_503"] == c["503ra"] + c["503"]
    assert res["shed_latency_ms"]["count"] == c["503ra"] + c["503"]
    assert 0 < res["shed_latency_ms"]["p50"] <= res["shed_latency_ms"]["p99"] \
        <= res["shed_latency_ms"]["max"] < 1000
    assert res["goodput"]["replies"] == c["200"] + c["304"] == res["good"]
    assert res["late"] == 0
    assert res["sessions"]["completed_within_slo"] == c["200"] + c["304"]
    assert res["sessions"]["failed"] == c["503ra"] + c["503"] + c["500"] + c["404"]
    assert res["connect_failures"] == res["resets_after_accept"] == res["client_timeouts"] == 0
    check_consistent(res)
    assert f"of the 503s with Retry-After" in err and "turned away" in err


def test_all_503_is_zero_goodput(load_bin, test_root):
    """Only 503 + Retry-After: goodput 0, every request a counted 503."""
    reply = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
    with ScriptServer(lambda cn, rn: ("reply", "503", 0, reply)) as srv:
        res, _, _ = run_load(load_bin, "--port", srv.port, "--fileset", test_root.path,
                             "--rate", 40, "--duration", 1, *OPEN)
    assert srv.counts["503"] == res["requests"] > 0
    assert res["status"]["503"] == res["retry_after_503"] == srv.counts["503"]
    assert res["goodput"] == {"replies": 0, "rps": 0, "span_s": 0}
    assert res["late"] == 0 and res["good"] == 0
    assert res["sessions"]["completed"] == 0
    check_consistent(res)


def test_resets_after_accept(load_bin, test_root):
    """Accepted, then reset before reading (as on_full = close), reset after
    reading the request, or closed without a reply: all resets after
    accept, none a connect failure; each kind as the server did it."""
    kinds = ("rst_now", "rst", "fin")

    def on_accept(conn_no):
        return ("rst_now", "rst_now") if conn_no % 3 == 0 else None

    def script(conn_no, req_no):
        return ("rst", "rst") if conn_no % 3 == 1 else ("fin", "fin")

    with ScriptServer(script, act_on_accept=on_accept) as srv:
        res, err, _ = run_load(load_bin, "--port", srv.port, "--fileset", test_root.path,
                               "--rate", 60, "--duration", 1, *OPEN)
    c = {k: srv.counts.get(k, 0) for k in kinds}
    assert min(c.values()) >= 10, c
    assert sum(c.values()) == srv.conns == res["requests"]
    assert res["resets_after_accept"] == res["requests"]
    assert res["connect_failures"] == res["client_timeouts"] == 0
    assert res["replies"] == 0 and res["goodput"]["replies"] == 0
    # A reset after the request was read is a reset, a close is an EOF.
    assert res["errors"]["reset"] >= c["rst"]
    assert res["errors"]["closed"] >= c["fin"]
    assert res["errors"]["reset"] + res["errors"]["closed"] == res["requests"]
    check_consistent(res)
    assert f"0 connect failures (never established), {res['requests']} resets after accept" \
        in err, err


def test_connect_timeouts_are_connect_failures(load_bin, test_root):
    """A listener whose accept queue is full (backlog 0, never accepting):
    the kernel drops the SYNs, so the client's --timeout expires before a
    connection exists: connect failures. The connection the queue took is
    established: its timeout is a client timeout."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.bind((HOST, 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        res, _, _ = run_load(load_bin, "--port", port, "--fileset", test_root.path,
                             "--rate", 10, "--duration", 1, "--timeout", 0.4, *OPEN)
        lsock.setblocking(False)
        established = 0
        for _ in range(1000):
            try:
                lsock.accept()[0].close()
            except BlockingIOError:
                break
            established += 1
    finally:
        lsock.close()
    assert 1 <= established < res["requests"]
    assert res["client_timeouts"] == established
    assert res["connect_failures"] == res["requests"] - established
    assert res["errors"]["connect_timeouts"] == res["connect_failures"]
    assert res["resets_after_accept"] == 0
    check_consistent(res)


def test_sessions_completed_within_slo(load_bin, test_root):
    """Three-request sessions, one connection each. The server answers a
    third of the connections at once, delays the second reply of another
    third past the deadline and answers 404 to the second request of the
    rest. Completed sessions are those it served three good replies; within
    the deadline, those it never delayed; a session whose last request
    would be due after the run is cut off, not completed."""
    size = test_root.files[URI][0]

    def script(conn_no, req_no):
        kind = conn_no % 3
        if kind == 1 and req_no == 1:
            return ("reply", "slow", 0.8, ok_reply(size))
        if kind == 2 and req_no == 1:
            return ("reply", "404", 0, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return ("reply", "fast", 0, ok_reply(size))

    with ScriptServer(script) as srv:
        res, err, _ = run_load(load_bin, "--port", srv.port, "--fileset", test_root.path,
                               "--uri", URI, "--mode", "sessions", "--session-len", 3,
                               "--burst-len", 3, "--browser-think", 0, "--user-think", 0,
                               "--prewarm", 0, "--arrivals", "uniform", "--rate", 15,
                               "--duration", 2, "--slo", 300, "--timeout", 3, "--quiet")
    served = srv.served
    ok = [c for c, labels in served.items() if labels == ["fast"] * 3]
    late = [c for c, labels in served.items() if labels == ["fast", "slow", "fast"]]
    failed = [c for c, labels in served.items() if labels == ["fast", "404"]]
    # Cut off: the run ended before the session's next request was due (after
    # a slow reply, or a session that arrived just before the end).
    cut = [c for c, labels in served.items() if len(labels) < 3 and "404" not in labels]
    assert len(ok) + len(late) + len(failed) + len(cut) == srv.conns == len(served), served
    assert min(len(ok), len(late), len(failed)) >= 5, served
    s = res["sessions"]
    assert s["started"] == srv.conns == res["totals"]["sessions"]
    # Open loop: sessions arrive on schedule (15/s for 2 s), slow replies or not.
    assert s["started"] == pytest.approx(15 * 2, abs=1)
    assert s["completed"] == len(ok) + len(late)
    assert s["completed_within_slo"] == len(ok)
    assert s["failed"] == len(failed)
    assert s["cut_off"] == len(cut)
    assert res["late"] == srv.counts["slow"]
    assert res["goodput"]["replies"] == srv.counts["fast"]
    assert res["status"]["4xx"] == srv.counts["404"]
    check_consistent(res)
    assert re.search(rf"sessions +{s['started']} started, {s['completed']} completed, "
                     rf"{s['completed_within_slo']} completed within the deadline", err), err


def test_client_lag_is_measured_and_marks_run_invalid(load_bin, test_root):
    """The client itself stalls (SIGSTOP for 0.5 s): arrivals keep their
    schedule (the same number of requests is due), the stalled ones are
    issued late, so connect and request lag show the stall, the replies
    count from their due time (late), and lag_ok is false. Without the
    stall the same run keeps its schedule."""
    size = test_root.files[URI][0]
    args = ("--uri", URI, "--rate", 100, "--duration", 2, "--timeout", 3, *OPEN)
    with ScriptServer(lambda cn, rn: ("reply", "ok", 0, ok_reply(size))) as srv:
        calm, _, _ = run_load(load_bin, "--port", srv.port, "--fileset", test_root.path,
                              "--slo", 5000, *args)
        before = srv.conns
        p = subprocess.Popen([load_bin, "--port", str(srv.port), "--fileset",
                              str(test_root.path), "--slo", "500", "--json",
                              *map(str, args)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Stall it once its schedule is running (the server has seen load).
            helpers.wait_until(lambda: srv.conns >= before + 20, timeout=10,
                               what="load started")
            p.send_signal(signal.SIGSTOP)
            time.sleep(0.5)
            p.send_signal(signal.SIGCONT)
            out, err = p.communicate(timeout=30)
        finally:
            p.kill()
    assert p.returncode == 0, err
    stalled = json.loads(out)
    assert calm["lag_ok"] is True, calm["lag_ms"]
    for res in (calm, stalled):
        assert res["requests"] == pytest.approx(200, abs=1)
        assert res["lag_ms"]["connect"]["count"] == res["lag_ms"]["request"]["count"] \
            == res["requests"]
        check_consistent(res)
    assert stalled["lag_ok"] is False
    for kind in ("connect", "request"):
        lag = stalled["lag_ms"][kind]
        assert lag["p99"] > 50 and lag["max"] >= 400, stalled["lag_ms"]
    assert stalled["latency_admitted_ms"]["max"] >= 400
    assert "INVALID" in err


def listen_queue(port):
    """Connections in the accept queue of the listener on PORT (rx_queue of
    the LISTEN socket in /proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for row in f.read().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no listener on port {port} in /proc/net/tcp")


def hold_sluice(server, n):
    """N connections sluice has accepted, each with part of a request head,
    once the start-up probes are gone (else a probe could take a slot)."""
    def settled():
        return (listen_queue(server.port) == 0
                and stats_json(server.status_socket)["connections"]["current"] == 0)

    helpers.wait_until(lambda: settled() and (time.sleep(0.1) or settled()), timeout=10,
                       what="start-up probes accepted and closed")
    conns = []
    for _ in range(n):
        c = helpers.RawConn(server.port)
        c.send(b"GET /one.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        conns.append(c)
    helpers.wait_until(lambda: stats_json(server.status_socket)["connections"]["current"] == n,
                       timeout=10, what=f"{n} open connections")
    return conns


@pytest.mark.parametrize("on_full", ["refuse", "close"])
def test_real_sluice_at_max_connections(load_bin, sluice_factory, on_full):
    """The real daemon at max_connections: with on_full = refuse every
    request gets a 503 with Retry-After (as many as sluice refused); with
    on_full = close every connection is reset after accept (as many as
    sluice closed)."""
    srv = sluice_factory(server_max_connections=2, admission_on_full=on_full,
                         admission_queue_wait_target="0")
    held = hold_sluice(srv, 2)
    try:
        base = stats_json(srv.status_socket)["admission"]
        res, _, _ = run_load(load_bin, "--port", srv.port, "--fileset", srv.root.path,
                             "--uri", URI, "--rate", 50, "--duration", 1, "--timeout", 3,
                             *OPEN)
        adm = stats_json(srv.status_socket)["admission"]
    finally:
        for c in held:
            c.close()
    assert res["requests"] > 0
    assert res["goodput"]["replies"] == res["good"] == 0
    if on_full == "refuse":
        assert adm["refused_full"] - base["refused_full"] == res["requests"]
        assert res["status"]["503"] == res["retry_after_503"] == res["requests"]
        assert res["resets_after_accept"] == 0
    else:
        assert adm["closed_full"] - base["closed_full"] == res["requests"]
        assert res["resets_after_accept"] == res["requests"]
        assert res["status"]["503"] == 0
    assert res["connect_failures"] == res["client_timeouts"] == 0
    check_consistent(res)



def test_sweep_smoke(load_bin, test_root, tmp_path):
    """Two tiny steps end to end: CSVs, plots and a summary. sluice keeps up
    with both rates, so the knee is not reached: a FAIL, never a pass."""
    if shutil.which("gnuplot") is None:
        pytest.fail("gnuplot not installed: run make deps", pytrace=False)
    out = tmp_path / "sweep"
    p = subprocess.run(
        ["/usr/bin/python3", str(SWEEP), "--sluice", str(helpers.SLUICE), "--load", load_bin,
         "--fileset", str(test_root.path), "--rates", "50,100", "--duration", "2",
         "--warmup", "0.5", "--timeout", "1", "--gap", "0", "--load-procs", "1",
         "--no-extend", "--out", str(out)],
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 1, p.stdout + p.stderr
    with open(out / "steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    assert [float(r["offered_rps"]) for r in steps] == [50.0, 100.0]
    for r in steps:
        assert int(r["errors"]) == 0, r
        assert r["verify"] == "PASS"
        assert float(r["good_rps"]) > 0
        # Every reply the clients got, sluice counted, and nothing else.
        assert int(r["server_requests"]) == int(r["client_replies"]), r
    with open(out / "stages.csv", newline="") as f:
        stages = list(csv.DictReader(f))
    assert {r["stage"] for r in stages} == {"acceptor", "reader", "detector", "writer"}
    for name in ("sweep.png", "sweep.svg", "server.csv", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "FAIL sluice: knee not reached" in p.stdout
    assert "PASS" not in p.stdout.split("knee:", 1)[1]
