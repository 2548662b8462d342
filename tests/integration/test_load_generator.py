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


def test_refuses_non_loopback(load_bin):
    for host in ("192.0.2.1", "10.1.2.3", "2001:db8::1"):
        p = subprocess.run([load_bin, "--server", host, "--port", "80", "--duration", "1"],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (host, p.stderr)
        assert "not a loopback address" in p.stderr, p.stderr
        assert "127.0.0.0/8 or ::1" in p.stderr


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


def test_sweep_smoke(load_bin, test_root, tmp_path):
    """Two tiny steps end to end: CSVs, plots and a summary."""
    if shutil.which("gnuplot") is None:
        pytest.fail("gnuplot not installed: run make deps", pytrace=False)
    out = tmp_path / "sweep"
    p = subprocess.run(
        ["/usr/bin/python3", str(SWEEP), "--sluice", str(helpers.SLUICE), "--load", load_bin,
         "--fileset", str(test_root.path), "--rates", "50,100", "--duration", "2",
         "--warmup", "0.5", "--timeout", "1", "--gap", "0", "--load-procs", "1",
         "--no-extend", "--out", str(out)],
        capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr
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
    assert "peak goodput" in p.stdout
