"""The status socket and sluicectl, against the real daemon over loopback.

Covers the protocol (help, stats, stats json, metrics, set, errors, framing),
that the figures reconcile with what real clients saw (requests and bytes,
exactly), that queues are empty at idle, live resizing of the writer pool
while a client downloads, the socket file's life (mode, stale file replaced,
a live owner refused, removed on exit), and sluicectl.

Run: SLUICE_BUILD=build /usr/bin/python3 -m pytest -q tests/integration/test_status.py
SLUICE_BENCH=1 also runs the status-polling overhead benchmark.
"""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SLUICE_BUILD", REPO / "build"))
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
from lab import harness  # noqa: E402  (the daemon as the tools start it)

SLUICE = BUILD / "sluice"
SLUICECTL = BUILD / "sluicectl"

STAGES = ["acceptor", "reader", "detector", "writer"]
FILES = {
    "index.html": b"<html><body>sluice status test</body></html>\n",
    "small.txt": b"0123456789" * 10,
    "mid.bin": bytes(range(256)) * 256,  # 64 KiB
    "big.bin": os.urandom(2 << 20),  # 2 MiB
}


def wait_until(pred, timeout=10.0, step=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Sluice(harness.Sluice):
    """One daemon in a temporary directory, with its own port and status socket."""

    def __init__(self, tmp: Path, writers=10, extra="", sock_name="status.sock", mode=None,
                 optimistic="yes"):
        self.tmp = tmp
        self.root = tmp / "www"
        self.root.mkdir(exist_ok=True)
        for name, data in FILES.items():
            (self.root / name).write_bytes(data)
        port = harness.free_port()
        self.sock = str(tmp / sock_name)
        self.log = tmp / f"sluice-{port}.log"
        mode_line = f"status_socket_mode = {mode}\n" if mode else ""
        self.conf = tmp / f"sluice-{port}.conf"
        self.conf.write_text(
            "[server]\n"
            f"listen = 127.0.0.1:{port}\n"
            f"root = {self.root}\n"
            f"status_socket = {self.sock}\n"
            f"{mode_line}"
            f"pidfile = {tmp / 'sluice.pid'}\n"
            "shutdown_timeout = 5s\n"
            "log_level = info\n"
            f"[writer]\nthreads = {writers}\noptimistic = {optimistic}\n"
            f"[http]\nmime_types = /etc/mime.types\n"
            f"{extra}"
        )
        super().__init__(SLUICE, self.conf, port, self.sock, log_path=self.log, cwd=tmp,
                         error=AssertionError)

    def start(self, wait=True, prefix=()):
        return super().start(wait=wait, prefix=prefix)

    def stop(self):
        return super().stop(timeout=20)

    def cmd(self, line):
        return self.command(line)


@pytest.fixture
def srv(tmp_path):
    s = Sluice(tmp_path).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.log_text()
    assert "ERROR: AddressSanitizer" not in s.log_text()
    assert not os.path.exists(s.sock), "status socket left behind after exit"


# ---------------------------------------------------------------- HTTP clients


class RawClient:
    """A keep-alive HTTP/1.1 client counting every byte it receives."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""
        self.received = 0

    def close(self):
        self.s.close()

    def _fill(self):
        chunk = self.s.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.received += len(chunk)
        self.buf += chunk

    def request(self, path, method="GET", headers=""):
        self.s.sendall(f"{method} {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = 0 if method == "HEAD" or status in (204, 304) else int(hdrs.get("content-length", 0))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body


def run_python_load(port, nthreads=6, per_thread=150):
    """Keep-alive GETs/HEADs over several connections. Returns (responses by
    class, total bytes received)."""
    paths = ["/small.txt", "/mid.bin", "/index.html", "/", "/missing.txt", "/big.bin"]
    results = []
    lock = threading.Lock()

    def worker(k):
        classes = {}
        c = RawClient(port)
        try:
            for i in range(per_thread):
                path = paths[(i + k) % len(paths)]
                if path == "/big.bin" and i % 5:
                    path = "/small.txt"
                method = "HEAD" if i % 7 == 3 else "GET"
                status, _, body = c.request(path, method)
                if method == "GET" and status == 200:
                    want = FILES["index.html" if path == "/" else path[1:]]
                    assert body == want, f"{path}: wrong body"
                cls = f"{status // 100}xx"
                classes[cls] = classes.get(cls, 0) + 1
            _, hdrs, _ = c.request("/small.txt")
            c.request("/small.txt", headers=f"If-None-Match: {hdrs['etag']}\r\n")
            classes["2xx"] = classes.get("2xx", 0) + 1
            classes["3xx"] = classes.get("3xx", 0) + 1
            assert c.buf == b""
        finally:
            c.close()
        with lock:
            results.append((classes, c.received))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
        assert not t.is_alive(), "load thread hung"
    assert len(results) == nthreads, "a load thread failed"
    classes = {}
    total = 0
    for cl, n in results:
        total += n
        for k, v in cl.items():
            classes[k] = classes.get(k, 0) + v
    return classes, total


def run_curl(port):
    """Several URLs over one curl connection. Returns (requests, bytes received)."""
    urls = [f"http://127.0.0.1:{port}/{p}" for p in ("small.txt", "mid.bin", "index.html", "nope")]
    args = ["curl", "-s", "--max-time", "20", "-w", "%{http_code} %{size_header} %{size_download}\\n"]
    for u in urls:
        args += ["-o", "/dev/null", u]  # -o applies to one URL each
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    n = total = 0
    for line in out.strip().splitlines():
        code, hsize, dsize = line.split()
        assert code in ("200", "404"), out
        n += 1
        total += int(hsize) + int(dsize)
    return n, total


def idle_queues_ok(st):
    for s in st["stages"]:
        q = s["queue"]
        if q["depth"] != 0 or q["enqueued"] - q["dequeued"] != 0:
            return False
    return st["connections"]["current"] == 0


def wait_idle(srv):
    """Stats once every queue is empty and no connection is open (bounded)."""
    last = {}

    def check():
        last["st"] = srv.stats()
        return idle_queues_ok(last["st"])

    try:
        wait_until(check, timeout=10, step=0.05, what="idle queues")
    except AssertionError:
        raise AssertionError(f"not idle: {json.dumps(last.get('st'), indent=1)}")
    return last["st"]


def task_names(pid):
    names = []
    for d in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((d / "comm").read_text().strip())
        except OSError:
            pass  # a thread that just exited
    return names


# ---------------------------------------------------------------- protocol


def test_help(srv):
    out = srv.cmd("help")
    for word in ("help", "stats", "stats json", "metrics", "set STAGE.threads N"):
        assert word in out
    assert not out.startswith("error:")


def test_stats_table(srv):
    out = srv.cmd("stats")
    lines = out.splitlines()
    assert lines[0].startswith("sluice 0.1")
    for st in STAGES:
        assert any(ln.split()[0] == st for ln in lines if ln.split()), out
    assert "connections:" in out and "requests:" in out and "cache:" in out
    assert "" not in lines


def test_stats_json_has_every_required_key(srv):
    st = srv.stats()
    for k in ("stages", "connections", "requests", "bytes_sent", "cache", "uptime_s",
              "generation", "queue_kind", "optimistic_write", "failed_reloads", "pid", "version"):
        assert k in st, k
    assert st["version"] == "0.1"
    assert st["pid"] == srv.proc.pid
    assert st["queue_kind"] in ("wfcq", "rculfq")
    assert [s["name"] for s in st["stages"]] == STAGES
    for s in st["stages"]:
        for k in ("threads", "busy", "busy_ns", "processed", "batches", "batch_items",
                  "batch_mean", "batch_max", "queue"):
            assert k in s, (s["name"], k)
        assert 0.0 <= s["busy"] <= 1.0
        q = s["queue"]
        for k in ("depth", "max_depth", "enqueued", "dequeued", "wait_us"):
            assert k in q, (s["name"], k)
        for k in ("p50", "p90", "p99", "max"):
            assert k in q["wait_us"], (s["name"], k)
    assert st["stages"][3]["threads"] == 10
    for k in ("current", "accepted", "closed", "rejected"):
        assert k in st["connections"]
    for k in ("total", "1xx", "2xx", "3xx", "4xx", "5xx"):
        assert k in st["requests"]
    for k in ("entries", "hits", "misses", "evictions", "revalidations", "open_fds"):
        assert k in st["cache"]
    assert st["uptime_s"] >= 0 and st["generation"] == 0


METRIC_LINE = re.compile(r'^(sluice_[a-zA-Z0-9_:]*)(\{[a-zA-Z_]+="[^"\\]*"(,[a-zA-Z_]+="[^"\\]*")*\})? (\S+)$')


def test_metrics_exposition_format(srv):
    out = srv.cmd("metrics")
    helps, types, samples = set(), {}, []
    for ln in out.splitlines():
        assert ln, "empty line inside metrics"
        if ln.startswith("# HELP "):
            helps.add(ln.split()[2])
        elif ln.startswith("# TYPE "):
            _, _, name, typ = ln.split()
            assert typ in ("counter", "gauge", "summary", "histogram", "untyped")
            types[name] = typ
        else:
            assert not ln.startswith("#"), ln
            m = METRIC_LINE.match(ln)
            assert m, f"bad sample line: {ln!r}"
            float(m.group(4))
            samples.append(m.group(1))
    assert helps and set(helps) == set(types)
    for name in helps:
        assert name.startswith("sluice_")
    for name in samples:
        base = re.sub(r"_(sum|count|bucket)$", "", name)
        assert name in types or base in types, f"{name} has no TYPE"
    assert 'sluice_stage_threads{stage="writer"} 10' in out
    for st in STAGES:
        assert f'sluice_queue_depth{{stage="{st}"}}' in out


def test_unknown_and_malformed_commands_keep_the_connection(srv):
    with srv.connect() as c:
        for bad in ("frobnicate", "stats xml", "set writer.threads", "set writer.threads lots",
                    "set nosuch.threads 2", "set writer.colour 2", "help me"):
            r = c.cmd(bad)
            assert r.startswith("error: "), (bad, r)
            assert r.count("\n") == 1
        r = c.cmd("set writer.threads 0")
        assert r.startswith("error: "), r
        r = c.cmd("set reader.threads 5")
        assert r.startswith("error: "), r
        c.send(b"x" * 10000 + b"\n")
        assert c.reply().startswith("error: line too long")
        c.send(b"\x00\xff\x01garbage\r\n")
        assert c.reply().startswith("error: unknown command")
        assert json.loads(c.cmd("stats json"))["version"] == "0.1"
        assert "stats json" in c.cmd("help")


def test_several_commands_in_one_write(srv):
    with srv.connect() as c:
        c.send(b"help\nstats json\nbogus\n\nmetrics\r\nstats\n")
        assert "stats json" in c.reply()
        json.loads(c.reply())
        assert c.reply().startswith("error: unknown command 'bogus'")
        assert c.reply().startswith("# HELP sluice_")
        assert c.reply().startswith("sluice 0.1")
        # quit closes after what came before it
        c.send(b"help\nquit\nhelp\n")
        assert "stats json" in c.reply()
        c.s.settimeout(5)
        rest = b""
        for _ in range(100):
            chunk = c.s.recv(4096)
            if not chunk:
                break
            rest += chunk
        assert rest == b""


def test_many_status_clients_do_not_disturb_serving(srv):
    stop = threading.Event()
    errors = []

    def poller():
        try:
            with srv.connect() as c:
                while not stop.is_set():
                    json.loads(c.cmd("stats json"))
                    c.cmd("metrics")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ps = [threading.Thread(target=poller) for _ in range(20)]
    for p in ps:
        p.start()
    try:
        classes, _ = run_python_load(srv.port, nthreads=4, per_thread=100)
    finally:
        stop.set()
        for p in ps:
            p.join(timeout=30)
    assert not errors, errors
    assert classes.get("5xx", 0) == 0
    # More than 64 at once: the extra ones are told and closed; the rest work.
    conns = []
    try:
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conns.append(s)
            s.connect(srv.sock)  # blocking: waits for backlog room
            s.settimeout(5)
        refused = 0
        for s in conns[64:]:
            data = s.recv(1000)
            if data.startswith(b"error: too many status clients"):
                refused += 1
        assert refused == 6
        conns[0].sendall(b"stats json\n")
        data = b""
        while not data.endswith(b"\n\n"):
            data += conns[0].recv(65536)
        json.loads(data)
    finally:
        for s in conns:
            s.close()


# ---------------------------------------------------------------- truthfulness


def test_figures_reconcile_with_clients(srv):
    before = wait_idle(srv)
    classes, py_bytes = run_python_load(srv.port)
    curl_n, curl_bytes = run_curl(srv.port)
    after = wait_idle(srv)

    py_n = sum(classes.values())
    dreq = after["requests"]["total"] - before["requests"]["total"]
    assert dreq == py_n + curl_n
    # bytes_sent counts every byte written to clients, headers included.
    assert after["bytes_sent"] - before["bytes_sent"] == py_bytes + curl_bytes
    curl_404 = 1
    for cls in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        got = after["requests"][cls] - before["requests"][cls]
        want = classes.get(cls, 0) + (curl_n - curl_404 if cls == "2xx" else 0) + (
            curl_404 if cls == "4xx" else 0)
        assert got == want, (cls, got, want)
    assert after["requests"]["total"] == sum(after["requests"][c] for c in
                                              ("1xx", "2xx", "3xx", "4xx", "5xx"))
    # Connections: 6 python + 1 curl, all closed again.
    assert after["connections"]["accepted"] - before["connections"]["accepted"] == 7
    assert after["connections"]["closed"] == after["connections"]["accepted"]
    # Every response was finished once: by a writer, or inline by the reader
    # (these small files are in memory, so most go inline); readers parsed them.
    w = after["stages"][3]
    assert after["requests"]["inline"] > 0
    assert w["processed"] + after["requests"]["inline"] == after["requests"]["total"]
    r = after["stages"][1]
    assert r["processed"] == after["requests"]["total"]
    a = after["stages"][0]
    assert a["processed"] == after["connections"]["accepted"]
    assert a["queue"]["dequeued"] == after["connections"]["accepted"] + after["connections"]["rejected"]
    for s in after["stages"][1:]:
        assert s["batches"] > 0 or s["name"] == "detector"
        assert s["batch_max"] >= (1 if s["batches"] else 0)
        assert s["queue"]["max_depth"] >= (1 if s["queue"]["enqueued"] else 0)
        qw = s["queue"]["wait_us"]
        assert qw["p50"] <= qw["p90"] <= qw["p99"] <= qw["max"]
    hits_misses = after["cache"]["hits"] + after["cache"]["misses"]
    assert hits_misses > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_figures_reconcile_with_wrk(srv, tmp_path):
    before = wait_idle(srv)
    script = tmp_path / "count.lua"
    script.write_text(
        'done = function(summary, latency, requests)\n'
        '  io.write(string.format("SUMMARY %d %d %d\\n", summary.requests, summary.bytes,\n'
        '    summary.errors.connect + summary.errors.read + summary.errors.write +\n'
        '    summary.errors.status + summary.errors.timeout))\n'
        'end\n'
    )
    conns = 50
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(conns), "-d", "2s", "-s", str(script),
         f"http://127.0.0.1:{srv.port}/mid.bin"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    m = re.search(r"SUMMARY (\d+) (\d+) (\d+)", out)
    assert m, out
    wrk_req, wrk_bytes = int(m.group(1)), int(m.group(2))
    assert wrk_req > 0
    after = wait_idle(srv)
    dreq = after["requests"]["total"] - before["requests"]["total"]
    dbytes = after["bytes_sent"] - before["bytes_sent"]
    # wrk stops at its deadline and drops responses still arriving on its 50
    # connections: the server completed them, wrk did not count them. So the
    # server may be ahead by at most one response per connection.
    per_resp = dbytes / max(dreq, 1)
    assert wrk_req <= dreq <= wrk_req + conns, (wrk_req, dreq)
    assert wrk_bytes <= dbytes <= wrk_bytes + conns * per_resp * 1.01, (wrk_bytes, dbytes)
    assert after["requests"]["2xx"] - before["requests"]["2xx"] == dreq


def test_figures_reconcile_strict_pipeline_rculfq(tmp_path):
    """The other queue kind, and every response through the detector."""
    s = Sluice(tmp_path, optimistic="no", extra="[queue]\nkind = rculfq\n").start()
    try:
        before = wait_idle(s)
        assert before["queue_kind"] == "rculfq" and before["optimistic_write"] is False
        classes, py_bytes = run_python_load(s.port, nthreads=4, per_thread=80)
        after = wait_idle(s)
        n = sum(classes.values())
        assert after["requests"]["total"] - before["requests"]["total"] == n
        assert after["bytes_sent"] - before["bytes_sent"] == py_bytes
        d = after["stages"][2]
        # Strict: every response waited for EPOLLOUT in the detector first.
        assert d["queue"]["enqueued"] - before["stages"][2]["queue"]["enqueued"] >= n
        assert d["processed"] >= n and d["batches"] > 0
    finally:
        assert s.stop() == 0, s.log_text()


def test_queues_empty_at_idle_after_load(srv):
    run_python_load(srv.port, nthreads=8, per_thread=60)
    st = wait_idle(srv)
    for s in st["stages"]:
        q = s["queue"]
        assert q["depth"] == 0 and q["enqueued"] == q["dequeued"], s
    # And it stays that way: a later sample says the same.
    st2 = srv.stats()
    assert idle_queues_ok(st2)
    assert st2["requests"]["total"] == st["requests"]["total"]


def test_busy_is_per_connection_interval(srv):
    with srv.connect() as a, srv.connect() as b:
        json.loads(a.cmd("stats json"))
        run_python_load(srv.port, nthreads=4, per_thread=100)
        during = json.loads(a.cmd("stats json"))
        assert any(s["busy"] > 0 for s in during["stages"])
        assert during["interval_s"] > 0
        time.sleep(0.3)
        idle = json.loads(a.cmd("stats json"))
        # Over a quiet interval the stages were (nearly) idle...
        assert all(s["busy"] < 0.2 for s in idle["stages"]), idle["stages"]
        # ...while B, asking for the first time, covers the whole run.
        whole = json.loads(b.cmd("stats json"))
        assert whole["interval_s"] >= idle["interval_s"]
        assert whole["stages"][3]["busy_ns"] >= during["stages"][3]["busy_ns"]


# ---------------------------------------------------------------- resizing


def writer_threads(pid):
    return sorted(n for n in task_names(pid) if n.startswith("writer-"))


def test_set_writer_threads_live(srv):
    pid = srv.proc.pid
    wait_until(lambda: len(writer_threads(pid)) == 10, timeout=5, what="10 writer threads")
    # The status thread, too, names itself when it first runs (seen under
    # ASan: not yet named when the writers were).
    wait_until(lambda: "status" in task_names(pid), timeout=5, what="the status thread")
    before = wait_idle(srv)

    stop = threading.Event()
    done = {"n": 0}
    errors = []

    def downloader():
        try:
            c = RawClient(srv.port)
            try:
                while not stop.is_set():
                    status, _, body = c.request("/big.bin")
                    assert status == 200 and body == FILES["big.bin"]
                    done["n"] += 1
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=downloader) for _ in range(3)]
    for t in ts:
        t.start()
    try:
        wait_until(lambda: done["n"] >= 3, timeout=20, what="first downloads")
        assert srv.cmd("set writer.threads 3") == "ok writer.threads=3\n"
        # Shrinking joins the threads before the reply: exact at once.
        assert writer_threads(pid) == ["writer-0", "writer-1", "writer-2"]
        assert srv.stats()["stages"][3]["threads"] == 3
        n0 = done["n"]
        wait_until(lambda: done["n"] >= n0 + 3, timeout=20, what="downloads with 3 writers")
        assert srv.cmd("set writer.threads 10") == "ok writer.threads=10\n"
        # A new thread names itself when it first runs: allow it a moment.
        wait_until(lambda: len(writer_threads(pid)) == 10, timeout=5, what="10 writer threads")
        assert srv.stats()["stages"][3]["threads"] == 10
        n1 = done["n"]
        wait_until(lambda: done["n"] >= n1 + 3, timeout=20, what="downloads with 10 writers")
        assert srv.cmd("set acceptor.threads 2") == "ok acceptor.threads=2\n"
        wait_until(lambda: task_names(pid).count("acceptor") == 2, timeout=5,
                   what="2 acceptor threads")
        assert srv.stats()["stages"][0]["threads"] == 2
        assert srv.cmd("set acceptor.threads 1") == "ok acceptor.threads=1\n"
        assert task_names(pid).count("acceptor") == 1
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=60)
    assert not errors, errors
    st = wait_idle(srv)
    assert st["connections"]["accepted"] - before["connections"]["accepted"] == 3
    assert st["connections"]["closed"] == st["connections"]["accepted"]
    assert st["requests"]["total"] - before["requests"]["total"] == done["n"]


# ---------------------------------------------------------------- the socket file


def test_socket_mode_default_0600(srv):
    st = os.stat(srv.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_socket_mode_configurable(tmp_path):
    s = Sluice(tmp_path, mode="0660").start()
    try:
        assert stat.S_IMODE(os.stat(s.sock).st_mode) == 0o660
    finally:
        assert s.stop() == 0
    assert not os.path.exists(s.sock)


def test_second_sluice_on_same_socket_refuses(srv, tmp_path):
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = Sluice(other_dir)
    other.sock = srv.sock  # same status socket, different port
    other.conf.write_text(other.conf.read_text().replace(
        str(other_dir / "status.sock"), srv.sock))
    other.start(wait=False)
    try:
        rc = other.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        other.proc.kill()
        raise
    finally:
        other.logf.close()
    assert rc != 0
    assert "another sluice is running" in other.log_text()
    assert srv.sock in other.log_text()
    # The first one still owns a working socket.
    assert os.path.exists(srv.sock)
    assert srv.stats()["pid"] == srv.proc.pid


def test_stale_socket_file_is_replaced(tmp_path):
    s = Sluice(tmp_path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(s.sock)
    stale.close()  # the file stays, nobody listens: stale
    assert stat.S_ISSOCK(os.stat(s.sock).st_mode)
    s.start()
    try:
        assert s.stats()["pid"] == s.proc.pid
        assert "stale" in s.log_text()
    finally:
        assert s.stop() == 0
    assert not os.path.exists(s.sock)


def test_non_socket_file_is_not_replaced(tmp_path):
    s = Sluice(tmp_path)
    Path(s.sock).write_text("precious")
    s.start(wait=False)
    rc = s.proc.wait(timeout=20)
    s.logf.close()
    assert rc != 0
    assert "not a socket" in s.log_text()
    assert Path(s.sock).read_text() == "precious"


def test_socket_removed_after_kill_is_stale_for_next_start(tmp_path):
    s = Sluice(tmp_path).start()
    s.proc.kill()
    s.proc.wait(timeout=10)
    s.logf.close()
    assert os.path.exists(s.sock)  # SIGKILL leaves it
    s2 = Sluice(tmp_path).start()
    try:
        assert s2.stats()["pid"] == s2.proc.pid
    finally:
        assert s2.stop() == 0
    assert not os.path.exists(s2.sock)


# ---------------------------------------------------------------- sluicectl


def ctl(*args, timeout=30):
    return subprocess.run([str(SLUICECTL), *args], capture_output=True, text=True, timeout=timeout)


def test_sluicectl_commands(srv):
    r = ctl("-s", srv.sock, "stats")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sluice 0.1") and "writer" in r.stdout
    r = ctl("-s", srv.sock, "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == srv.proc.pid
    r = ctl("-s", srv.sock, "metrics")
    assert r.returncode == 0 and r.stdout.startswith("# HELP sluice_")
    r = ctl("-s", srv.sock, "set", "writer.threads", "4")
    assert r.returncode == 0 and r.stdout == "ok writer.threads=4\n", r
    assert len(writer_threads(srv.proc.pid)) == 4  # shrinking joins before replying
    r = ctl("-s", srv.sock, "set", "writer.threads", "nope")
    assert r.returncode == 1 and "error:" in r.stderr and r.stdout == ""
    r = ctl("-s", srv.sock, "set", "writer.threads", "10")
    assert r.returncode == 0
    r = ctl("-s", srv.sock, "help")
    assert r.returncode == 0 and "stats json" in r.stdout


def test_sluicectl_usage_and_connection_errors(tmp_path):
    r = ctl("-s", "/nonexistent/sluice.sock", "stats")
    assert r.returncode == 3
    assert "/nonexistent/sluice.sock" in r.stderr and "No such file or directory" in r.stderr
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    r = ctl("-s", str(stale), "json")
    assert r.returncode == 3 and "Connection refused" in r.stderr and str(stale) in r.stderr
    for args in ([], ["bogus"], ["set", "writer.threads"], ["top", "-n", "0"], ["stats", "extra"]):
        r = ctl("-s", str(stale), *args)
        assert r.returncode == 2, (args, r)
        assert r.stderr


def test_sluicectl_top_piped_is_plain(srv):
    run_python_load(srv.port, nthreads=2, per_thread=30)
    r = ctl("-s", srv.sock, "top", "-n", "2", "-i", "0.3")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    blocks = [b for b in r.stdout.split("\n\n") if b.strip()]
    assert len(blocks) == 2, r.stdout
    for b in blocks:
        assert b.startswith("sluice 0.1")
        for st in STAGES:
            assert re.search(rf"^{st}\s", b, re.M), b
        assert "requests" in b and "WAITp50us" in b and "BUSY%" in b
    # The first block averages since start, so it shows the load's requests.
    m = re.search(r"requests ([0-9.]+)/s  inline ([0-9.]+)%", blocks[0])
    assert m and float(m.group(1)) > 0
    # The load's files are small: the reader sent (nearly) all of them.
    assert 50 < float(m.group(2)) <= 100, blocks[0]


def fake_status_socket(path, replies):
    """A stand-in status socket at PATH that answers each command line of one
    connection with the next of REPLIES (bytes, framing included). Returns the
    serving thread."""
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(str(path))
    lsock.listen(1)
    lsock.settimeout(20)

    def serve():
        with lsock:
            conn, _ = lsock.accept()
            with conn:
                buf = b""
                for reply in replies:
                    while b"\n" not in buf:
                        chunk = conn.recv(4096)
                        if not chunk:
                            return
                        buf += chunk
                    buf = buf.split(b"\n", 1)[1]
                    conn.sendall(reply)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("reply, where", [
    (b'{"uptime_s": 1, "stages": [}\n\n', "line 1, column 28"),
    (b'{"uptime_s": 1,\n "pid": 12 "version": "0.1"}\n\n', "line 2, column"),
    (b'{"uptime_s": 1, "version": "0.1"\n\n', "line 2, column"),
    (b"not json\n\n", "line 1, column"),
])
def test_sluicectl_top_reports_malformed_json_precisely(tmp_path, reply, where):
    sock = tmp_path / "fake.sock"
    t = fake_status_socket(sock, [reply])
    r = ctl("-s", str(sock), "top", "-n", "1")
    t.join(timeout=20)
    assert r.returncode == 1, r
    assert r.stdout == ""
    assert f"sluicectl: {sock}: the server's reply is not valid JSON: " in r.stderr, r.stderr
    assert where in r.stderr, r.stderr


def test_sluicectl_top_survives_odd_but_valid_json(tmp_path):
    """Valid JSON of the wrong shape (no object, wrong types, huge counters)
    draws a frame of zeros and question marks rather than failing."""
    sock = tmp_path / "fake.sock"
    replies = [b'[1, 2]\n\n',
               b'{"uptime_s": "x", "stages": {"a": 1}, "admission": [], '
               b'"requests": {"total": 18446744073709551615}}\n\n']
    t = fake_status_socket(sock, replies)
    r = ctl("-s", str(sock), "top", "-n", "2", "-i", "0.05")
    t.join(timeout=20)
    assert r.returncode == 0, r
    blocks = [b for b in r.stdout.split("\n\n") if b.strip()]
    assert len(blocks) == 2, r.stdout
    assert blocks[0].startswith("sluice ?  pid 0")
    assert "admission ?" in blocks[1]


def test_sluicectl_top_on_a_terminal_redraws(srv):
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(SLUICECTL), [str(SLUICECTL), "-s", srv.sock, "top", "-n", "2", "-i", "0.2"])
    out = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert out.count(b"\x1b[H\x1b[2J") == 2


# ---------------------------------------------------------------- cost


def thread_cpu_s(pid, name):
    """CPU seconds PID's thread called NAME has run (schedstat: nanoseconds;
    else stat's utime + stime in clock ticks)."""
    for d in Path(f"/proc/{pid}/task").iterdir():
        if (d / "comm").read_text().strip() == name:
            try:
                return int((d / "schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    raise AssertionError(f"no thread {name}")


@pytest.mark.skipif(os.environ.get("SLUICE_BENCH") != "1" or shutil.which("wrk") is None,
                    reason="benchmark: set SLUICE_BENCH=1 (needs wrk)")
def test_bench_polling_stats_costs_under_2_percent(tmp_path):
    """Throughput with and without `sluicectl top -i 0.1` (a client asking
    `stats json` ten times a second). With 2+ CPUs, sluice runs on CPU 0 and
    the clients on the others, so the clients' own work does not count
    against the server. Runs alternate (A B A B ...) to cancel drift; the
    median of the paired ratios is compared. Also reports what the status thread
    itself spent. On a machine busy with other work the numbers are noise: run
    it alone (more rounds: SLUICE_BENCH_ROUNDS, longer: SLUICE_BENCH_SECONDS)."""
    ncpu = os.cpu_count() or 1
    pin = shutil.which("taskset") is not None and ncpu >= 2
    srv_pin = ("taskset", "-c", "0") if pin else ()
    cli_pin = ("taskset", "-c", f"1-{ncpu - 1}") if pin else ()
    s = Sluice(tmp_path, writers=8).start(prefix=srv_pin)
    secs = os.environ.get("SLUICE_BENCH_SECONDS", "3")
    rounds = int(os.environ.get("SLUICE_BENCH_ROUNDS", "8"))

    def wrk_rps():
        out = subprocess.run(
            [*cli_pin, "wrk", "-t", "1", "-c", "32", "-d", f"{secs}s",
             f"http://127.0.0.1:{s.port}/small.txt"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))

    def with_poller():
        n = int(float(secs) * 10) + 20  # outlives the wrk run
        poller = subprocess.Popen([*cli_pin, str(SLUICECTL), "-s", s.sock, "top", "-i", "0.1",
                                   "-n", str(n)], stdout=subprocess.DEVNULL)
        try:
            return wrk_rps()
        finally:
            poller.terminate()
            poller.wait(timeout=10)

    try:
        wrk_rps()  # warm up
        base, polled = [], []
        cpu0 = thread_cpu_s(s.proc.pid, "status")
        polls0 = time.monotonic()
        for _ in range(rounds):
            base.append(wrk_rps())
            polled.append(with_poller())
        status_cpu = thread_cpu_s(s.proc.pid, "status") - cpu0
        wall = time.monotonic() - polls0
        polls = s.stats()  # counts nothing itself; just to be sure it still answers
        assert polls["version"] == "0.1"
    finally:
        assert s.stop() == 0, s.log_text()
    mb = sorted(base)[len(base) // 2]
    mp = sorted(polled)[len(polled) // 2]
    # Each polled run against the plain run just before it: drift and other
    # load on the machine hit both halves of a pair alike.
    ratios = sorted(p / b for p, b in zip(polled, base))
    change = 1 - ratios[len(ratios) // 2]
    print(f"\npinned: {pin}; {rounds} rounds of {secs}s each way"
          f"\nwithout polling: {[round(x) for x in base]}"
          f"\nwith polling:    {[round(x) for x in polled]}"
          f"\nmedians {mb:.0f} vs {mp:.0f} req/s; median of paired ratios: "
          f"{100 * change:+.2f}% slower with polling"
          f"\nstatus thread CPU: {1000 * status_cpu:.1f} ms over {wall:.0f}s, about "
          f"{1e6 * status_cpu / (rounds * float(secs) * 10):.0f} us per `stats json` "
          f"({100 * status_cpu / wall:.3f}% of one CPU)")
    assert change < 0.02
