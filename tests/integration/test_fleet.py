"""Running as a fleet (issue 16): the HTTP status listener (/metrics for a real
Prometheus, /healthz, /readyz, /status), haproxy's agent check, the drain a
balancer sees, the PROXY protocol, and restarts without a dropped connection,
behind a real haproxy and on one port with SO_REUSEPORT.

Loopback only. Every wait is bounded; every haproxy and prometheus process a
test starts is killed in a finally.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import helpers
from helpers import HOST, RawConn, request

REPO = Path(__file__).resolve().parents[2]
SLUICECTL = helpers.BUILD / "sluicectl"


def fleet_conf(**extra):
    """Config keys for a server with the HTTP status listener and agent check
    on free ports. Returns (conf, status_port, agent_port)."""
    sp, ap = helpers.free_port(), helpers.free_port()
    conf = {"status.listen": f"{HOST}:{sp}", "status.agent_listen": f"{HOST}:{ap}"}
    conf.update(extra)
    return conf, sp, ap


def http(port, path, method="GET", raw=None, timeout=5.0, host=HOST):
    """One request to PORT on a new connection; returns helpers.Response."""
    with RawConn(port, timeout=timeout, host=host) as c:
        c.send(raw if raw is not None else request(method, path, close=True))
        return c.read_response(method)


def agent(port, timeout=5.0):
    """haproxy's agent check: connect, read one line until close."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        data = b""
        for _ in range(100):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return data.decode()


def wrk(url, conns, seconds, extra=()):
    """Runs wrk; returns (requests, socket errors dict, non-2xx/3xx, text)."""
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", *extra, url],
                         capture_output=True, text=True, timeout=seconds + 30,
                         preexec_fn=helpers.raise_nofile)
    assert out.returncode == 0, out.stderr
    m = re.search(r"(\d+) requests in", out.stdout)
    assert m, out.stdout
    errors = {}
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                  out.stdout)
    if e:
        errors = dict(zip(("connect", "read", "write", "timeout"), map(int, e.groups())))
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return int(m.group(1)), errors, int(non.group(1)) if non else 0, out.stdout


def need(tool):
    path = shutil.which(tool)
    assert path, f"{tool} is not installed: run tools/install-deps.sh (make deps)"
    return path


def kill_proc(proc):
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------ the status listener


def test_status_listener_endpoints_and_promtool(sluice_factory):
    conf, sp, ap = fleet_conf()
    server = sluice_factory(**conf)
    for _ in range(5):
        assert server.get("/1k.bin").status == 200

    r = http(sp, "/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    assert "# TYPE sluice_queue_wait_seconds histogram" in text
    assert "# TYPE sluice_response_seconds histogram" in text
    assert re.search(r'^sluice_queue_wait_seconds_bucket\{stage="writer",le="\+Inf"\} \d+$',
                     text, re.M)
    m = re.search(r"^sluice_response_seconds_count (\d+)$", text, re.M)
    assert m and int(m.group(1)) >= 5, text
    # Bounded labels: nothing per path or per client.
    assert "1k.bin" not in text and "127.0.0.1" not in text
    check = subprocess.run([need("promtool"), "check", "metrics"], input=r.body,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert check.stdout.strip() == b"" and check.stderr.strip() == b"", \
        f"promtool reports problems:\n{check.stdout.decode()}{check.stderr.decode()}"

    r = http(sp, "/healthz")
    assert (r.status, r.body) == (200, b"ok: every stage makes progress\n")
    r = http(sp, "/readyz")
    assert (r.status, r.body) == (200, b"ready\n")
    r = http(sp, "/status")
    assert r.status == 200 and r.header("Content-Type") == "application/json"
    doc = json.loads(r.body)
    assert doc["requests"]["total"] >= 5 and doc["draining"] is False
    assert [s["name"] for s in doc["stages"]] == ["acceptor", "reader", "detector", "writer"]
    assert doc["proxy"] == {"bad": 0, "untrusted": 0}
    r = http(sp, "/metrics", method="HEAD")
    assert r.status == 200 and int(r.header("Content-Length")) > 1000 and r.body == b""

    assert agent(ap) == "ready up 100%\n"


def test_status_listener_bad_paths_methods_and_limits(sluice_factory):
    conf, sp, _ = fleet_conf()
    sluice_factory(**conf)
    for path in ("/", "/metrics/", "/metricsx", "/METRICS", "/../metrics", "/healthz/x"):
        r = http(sp, path)
        assert r.status == 404, path
        assert r.header("Connection") == "close"
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "BREW"):
        r = http(sp, "/metrics", method=method)
        assert r.status == 405 and r.header("Allow") == "GET, HEAD", method
    for raw in (b"GET /metrics\r\n\r\n", b"get /metrics HTTP/1.1\r\n\r\n",
                b"GET metrics HTTP/1.1\r\n\r\n", b"GET /metrics HTTP/2.0\r\n\r\n",
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"):
        assert http(sp, None, raw=raw).status == 400, raw
    r = http(sp, None, raw=b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n")
    assert r.status == 431

    # Its own connection limit: 16 clients that send nothing hold every slot,
    # the 17th is told 503; its own timeout (5 s) then closes the silent ones.
    idle = [RawConn(sp, timeout=10) for _ in range(16)]
    try:
        time.sleep(0.3)
        r = http(sp, "/metrics")
        assert r.status == 503
        t0 = time.monotonic()
        assert idle[0].closed_within(8.0), "a silent client is closed by the timeout"
        assert time.monotonic() - t0 < 8.0
        assert all(c.closed_within(1.0) for c in idle[1:])
    finally:
        for c in idle:
            c.close()
    assert http(sp, "/healthz").status == 200


def test_config_errors_name_the_key(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    cases = [
        ("[server]\nproxy_protocol_from = 10.0.0.0/33\n", 2,
         "server.proxy_protocol_from: '10.0.0.0/33' is not an address or network"),
        ("[server]\nproxy_protocol = yes\nproxy_protocol_from =\n", 3,
         "server.proxy_protocol_from: empty"),
        ("[status]\nlisten = 127.0.0.1\n", 2, "status.listen: '127.0.0.1' is not HOST:PORT"),
        ("[status]\nagent_listen = localhost:http\n", 2,
         "status.agent_listen: 'localhost:http' is not HOST:PORT"),
        ("[status]\nready_shed_level = 101\n", 2, "status.ready_shed_level: 101 is out of range"),
        ("[server]\ndrain_delay = soon\n", 2, "server.drain_delay: 'soon' is not a duration"),
    ]
    for text, line, msg in cases:
        conf = tmp_path / "c.conf"
        conf.write_text(f"[server]\nroot = {root}\n" + text)
        want_line = line + 2
        out = subprocess.run([str(helpers.SLUICE), "-t", "-c", str(conf)], capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 1, (text, out.stdout)
        assert f"{conf}:{want_line}: {msg}" in out.stderr, (text, out.stderr)


# ------------------------------------------------------------------- the drain


def drain_check(server, sp, ap, start_drain):
    """Starts a drain with START_DRAIN() and checks what a balancer sees."""
    keep = RawConn(server.port)
    keep.send(request("GET", "/one.bin"))
    assert keep.read_response().header("Connection") != "close"
    t0 = time.monotonic()
    start_drain()
    helpers.wait_until(lambda: http(sp, "/readyz").status == 503, timeout=2,
                       what="/readyz 503 once draining")
    assert http(sp, "/readyz").body == b"draining\n"
    assert agent(ap) == "drain\n"
    assert http(sp, "/healthz").status == 200, "draining is not unhealthy"
    assert json.loads(http(sp, "/status").body)["draining"] is True
    # Serving goes on during drain_delay, keep-alive included.
    assert server.get("/1k.bin").status == 200
    keep.send(request("GET", "/one.bin"))
    r = keep.read_response()
    assert r.status == 200 and r.header("Connection") != "close"
    assert time.monotonic() - t0 < 1.5, "the checks above ran within the delay"
    # Then the listener closes and the process exits.
    server.proc.wait(timeout=15)
    assert server.proc.returncode == 0
    assert time.monotonic() - t0 >= 2.0, "the listener stayed open for drain_delay"
    keep.close()
    with pytest.raises(OSError):
        socket.create_connection((HOST, server.port), timeout=1).close()


def test_sigterm_drain_fails_readiness_then_closes(sluice_factory):
    conf, sp, ap = fleet_conf(server_drain_delay="2s")
    server = sluice_factory(**conf)
    drain_check(server, sp, ap, lambda: os.kill(server.pid, signal.SIGTERM))
    assert "draining: not ready; the listener closes in 2.000s" in server.log_text()


def test_sluicectl_drain_runs_the_same_sequence(sluice_factory):
    conf, sp, ap = fleet_conf(server_drain_delay="2s")
    server = sluice_factory(**conf)

    def drain():
        out = subprocess.run([str(SLUICECTL), "-s", server.status_socket, "drain"],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0 and "ok draining" in out.stdout, out.stdout + out.stderr

    drain_check(server, sp, ap, drain)


def test_responses_carry_connection_close_after_the_delay(sluice_factory):
    """After drain_delay a request on a kept-alive connection gets its
    response with Connection: close, never a closed connection (the
    keep-alive race: an idle connection is closed only after 1 s idle),
    and the process exits."""
    conf, sp, _ = fleet_conf(server_drain_delay="0.5s", timeouts_keepalive="30s")
    server = sluice_factory(**conf)
    # Eight busy clients, a request each every 200 ms at different phases, so
    # whenever the listener closes some client is between two requests.
    conns = [RawConn(server.port) for _ in range(8)]
    for c in conns:
        c.send(request("GET", "/one.bin"))
        assert c.read_response().status == 200
    # A slow request keeps the server from exiting: a head sent in two parts.
    slow = RawConn(server.port)
    slow.send(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    closed = set()
    for _ in range(60):
        for i, c in enumerate(conns):
            if i in closed:
                continue
            c.send(request("GET", "/one.bin"))
            r = c.read_response()  # ConnectionClosed here is the failure
            assert r.status == 200
            if r.header("Connection") == "close":
                assert time.monotonic() - t0 >= 0.5
                closed.add(i)
            time.sleep(0.025)
        if len(closed) == len(conns):
            break
    assert len(closed) == len(conns)
    for c in conns:
        assert c.closed_within(3.0)
        c.close()
    slow.send(b"\r\n")
    r = slow.read_response()
    assert r.status == 200 and r.header("Connection") == "close"
    server.proc.wait(timeout=15)
    slow.close()


# ------------------------------------------------------------------ PROXY protocol


def proxy_v2(src, sport, dst="127.0.0.1", dport=80, command=0x21):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x11]) + struct.pack("!H", len(body)) + body


def access_lines(server):
    path = Path(server.conf["server"]["access_log"])
    return path.read_text().splitlines() if path.exists() else []


def test_proxy_protocol_v1_v2_and_bad_headers(sluice_factory, tmp_path):
    log = tmp_path / "access.log"
    server = sluice_factory(server_proxy_protocol=True, server_proxy_protocol_from="127.0.0.1",
                            server_access_log=str(log), timeouts_header="1s")
    # v1, then a second request on the same connection: one header per connection.
    with RawConn(server.port) as c:
        c.send(b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 80\r\n" + request("GET", "/one.bin"))
        assert c.read_response().status == 200
        c.send(request("GET", "/1k.bin", close=True))
        assert c.read_response().status == 200
    # v2, split in two writes in the middle of the header.
    with RawConn(server.port) as c:
        h = proxy_v2("198.51.100.7", 50000)
        c.send(h[:10])
        time.sleep(0.1)
        c.send(h[10:] + request("GET", "/one.bin", close=True))
        assert c.read_response().status == 200
    # v2 LOCAL (haproxy's own checks): the connection's address stays.
    with RawConn(server.port) as c:
        c.send(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00" + request("GET", "/one.bin", close=True))
        assert c.read_response().status == 200
    helpers.wait_until(lambda: len(access_lines(server)) >= 4, timeout=5, what="4 log lines")
    clients = [line.split(" ", 1)[0] for line in access_lines(server)]
    assert clients == ["192.0.2.10", "192.0.2.10", "198.51.100.7", "127.0.0.1"], clients

    # Bad headers: no response, the connection closed, the close counted.
    bad = [b"GET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n",
           b"PROXY TCP4 192.0.2.300 127.0.0.1 1 80\r\n" + request("GET", "/one.bin"),
           b"PROXY TCP4 192.0.2.1 127.0.0.1 1 80\n" + request("GET", "/one.bin"),
           b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n",
           b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12),
           # TCP4 with 8 address bytes where 12 are needed
           b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x08" + bytes(8) + request("GET", "/one.bin")]
    for data in bad:
        with RawConn(server.port) as c:
            c.send(data)
            assert c.closed_within(3.0), data
    # An incomplete header: closed at the header timeout, without a 408.
    with RawConn(server.port) as c:
        c.send(b"PROXY TCP4 192.0.2.1")
        assert c.closed_within(4.0)
    doc = helpers.stats_json(server.status_socket)
    assert doc["proxy"]["bad"] == len(bad) + 1, doc["proxy"]  # + the incomplete one
    assert doc["proxy"]["untrusted"] == 0
    assert len(access_lines(server)) == 4, "nothing logged for the bad ones"


def test_proxy_protocol_from_an_untrusted_source(sluice_factory):
    server = sluice_factory(server_proxy_protocol=True,
                            server_proxy_protocol_from="127.0.0.2/32, ::1")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind(("127.0.0.3", 0))  # loopback, but not in the list
        s.connect((HOST, server.port))
        s.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 1234 80\r\n" + request("GET", "/one.bin"))
        assert s.recv(100) == b"", "no response to an untrusted PROXY header"
    except ConnectionResetError:
        pass
    finally:
        s.close()
    # From the trusted address it works.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind(("127.0.0.2", 0))
        s.connect((HOST, server.port))
        s.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 1234 80\r\n" +
                  request("GET", "/one.bin", close=True))
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        s.close()
    doc = helpers.stats_json(server.status_socket)
    assert doc["proxy"] == {"bad": 0, "untrusted": 1}
    assert re.search(r'^sluice_proxy_rejected_total\{reason="untrusted"\} 1$',
                     helpers.status_command(server.status_socket, "metrics"), re.M)


# ------------------------------------------------------------------ Prometheus


def test_prometheus_scrapes_and_reads_back_the_requests(sluice_factory, tmp_path):
    prom_bin = need("prometheus")
    conf, sp, _ = fleet_conf()
    server = sluice_factory(**conf)
    n = 37
    for i in range(n):
        assert server.get("/1k.bin" if i % 2 else "/one.bin").status == 200
    prom_port = helpers.free_port()
    cfg = tmp_path / "prometheus.yml"
    # contrib/prometheus.yml, pointed at this test's instance and scraping fast.
    text = (REPO / "contrib" / "prometheus.yml").read_text()
    text = text.replace("scrape_interval: 15s", "scrape_interval: 1s")
    text = re.sub(r'targets: \[.*\]', f'targets: ["{HOST}:{sp}"]', text)
    shutil.copy(REPO / "contrib" / "sluice-alerts.yml", tmp_path / "sluice-alerts.yml")
    cfg.write_text(text)
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([prom_bin, f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address={HOST}:{prom_port}"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def query(expr):
        url = f"http://{HOST}:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                doc = json.load(r)
        except OSError:
            return None
        res = doc.get("data", {}).get("result", [])
        return float(res[0]["value"][1]) if res else None

    try:
        got = helpers.wait_until(lambda: query("sluice_requests_total"), timeout=30,
                                 step=0.5, what="prometheus to scrape sluice")
        assert got == n
        assert query('sluice_responses_total{class="2xx"}') == n
        assert query("sluice_response_seconds_count") == n
        # The histogram works in PromQL.
        q = query("histogram_quantile(0.5, sluice_response_seconds_bucket)")
        assert q is not None and 0 < q < 1.1
        assert query('up{job="sluice"}') == 1
    finally:
        kill_proc(proc)
        log.close()


# ------------------------------------------------------------------ haproxy


def haproxy_config(tmp_path, backends, front_port, stats_sock, source=None, balance=None):
    """contrib/haproxy.cfg with this test's ports: BACKENDS is a list of
    (port, status_port, agent_port). SOURCE: the address haproxy connects from."""
    text = (REPO / "contrib" / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:8080", f"bind {HOST}:{front_port}")
    text = text.replace("/run/haproxy-sluice.sock", str(stats_sock))
    text = text.replace("bind 127.0.0.1:8404", f"bind {HOST}:{helpers.free_port()}")
    text = text.replace("log stderr format raw local0 warning", "")
    text = text.replace("log global\n", "")
    text = text.replace("inter 500ms", "inter 200ms").replace("agent-inter 500ms",
                                                              "agent-inter 200ms")
    if balance:
        text = text.replace("balance leastconn", f"balance {balance}")
    if source:
        text = text.replace("default-server check", f"default-server source {source} check")
    for i, (port, sp, ap) in enumerate(backends, 1):
        text = text.replace(f"127.0.0.1:808{i} port 918{i} agent-port 928{i}",
                            f"127.0.0.1:{port} port {sp} agent-port {ap}")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    return cfg


def haproxy_stat(sock):
    """`show stat` over haproxy's stats socket: {server name: row dict}."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
        u.settimeout(3)
        u.connect(str(sock))
        u.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = u.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.decode().splitlines()
    head = lines[0].lstrip("# ").split(",")
    rows = {}
    for line in lines[1:]:
        if line:
            row = dict(zip(head, line.split(",")))
            if row["pxname"] == "sluice" and row["svname"] not in ("BACKEND", "FRONTEND"):
                rows[row["svname"]] = row
    return rows


class Fleet:
    """Three sluice instances behind a real haproxy (contrib/haproxy.cfg)."""

    def __init__(self, sluice_factory, tmp_path, balance=None, **conf):
        self.servers, self.backends = [], []
        for i in range(3):
            c, sp, ap = fleet_conf(server_proxy_protocol=True,
                                   server_proxy_protocol_from="127.0.0.2",
                                   server_drain_delay="1s",
                                   server_access_log=str(tmp_path / f"access{i}.log"), **conf)
            s = sluice_factory(name=f"s{i}", **c)
            self.servers.append(s)
            self.backends.append((s.port, sp, ap))
        self.port = helpers.free_port()
        self.sock = tmp_path / "haproxy.sock"
        cfg = haproxy_config(tmp_path, self.backends, self.port, self.sock, source="127.0.0.2",
                             balance=balance)
        self.log = open(tmp_path / "haproxy.log", "wb")
        self.proc = subprocess.Popen([need("haproxy"), "-db", "-f", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            helpers.wait_until(lambda: self.proc.poll() is not None or self.all_up(),
                               timeout=10, what="haproxy to see three instances UP")
            assert self.proc.poll() is None, (tmp_path / "haproxy.log").read_text()
        except BaseException:
            print(self.stat())
            self.close()
            raise

    def stat(self):
        try:
            return haproxy_stat(self.sock)
        except OSError:
            return {}

    def all_up(self):
        rows = self.stat()
        return len(rows) == 3 and all(r["status"] == "UP" for r in rows.values())

    def close(self):
        kill_proc(self.proc)
        self.log.close()


def test_haproxy_rolling_restart_under_load(sluice_factory, tmp_path):
    fleet = Fleet(sluice_factory, tmp_path)
    try:
        url = f"http://{HOST}:{fleet.port}/1k.bin"
        assert http(fleet.port, "/1k.bin").status == 200
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("wrk", wrk(url, 16, 14)))
        t.start()
        time.sleep(1.5)
        # One instance after another: drain (readiness fails, haproxy moves
        # the load away), exit, start again on the same ports.
        for i, s in enumerate(fleet.servers):
            rows = fleet.stat()
            assert rows[f"s{i + 1}"]["status"] == "UP", rows
            os.kill(s.pid, signal.SIGTERM)
            helpers.wait_until(lambda: fleet.stat()[f"s{i + 1}"]["status"] != "UP",
                               timeout=3, step=0.05,
                               what=f"haproxy to see s{i + 1} draining")
            assert s.proc.wait(timeout=15) == 0
            s.close_log()
            s.start()
            helpers.wait_until(fleet.all_up, timeout=5, what=f"s{i + 1} UP again")
            time.sleep(0.8)
        t.join(timeout=60)
        requests, errors, non2xx, text = result["wrk"]
        assert requests > 100, text
        assert not any(errors.values()), f"client errors during the rolling restart:\n{text}"
        assert non2xx == 0, text
        # Every instance served, and its access log shows the real client
        # (127.0.0.1, wrk) rather than haproxy's address (127.0.0.2).
        for i in range(3):
            lines = (tmp_path / f"access{i}.log").read_text().splitlines()
            assert len(lines) > 10, f"instance {i} served {len(lines)} requests"
            others = [ln for ln in lines if not ln.startswith("127.0.0.1 ")]
            assert not others, others[:3]
    finally:
        fleet.close()


def cpu_cgroup():
    """A cgroup v1 or v2 cpu controller root we can create groups in, or None."""
    for root, v2 in (("/sys/fs/cgroup", True), ("/sys/fs/cgroup/cpu", False),
                     ("/sys/fs/cgroup/cpu,cpuacct", False)):
        p = Path(root)
        if v2 and (p / "cgroup.controllers").exists():
            if "cpu" in (p / "cgroup.controllers").read_text().split() and \
                    os.access(p, os.W_OK):
                return p, True
        elif not v2 and (p / "cpu.cfs_quota_us").exists() and os.access(p, os.W_OK):
            return p, False
    return None


def test_haproxy_gives_an_instance_on_a_small_cpu_budget_a_smaller_share(sluice_factory,
                                                                        tmp_path):
    """One instance confined to 1% of a CPU is over its capacity (queue wait
    above a 5 ms target, connections held back by its admission limit), its
    agent weight drops, and haproxy sends it a smaller share."""
    found = cpu_cgroup()
    if found is None:
        pytest.skip("no writable cgroup cpu controller on this machine")
    root, v2 = found
    # Round robin: haproxy itself would send fewer requests to a slow
    # instance under leastconn; this way only the agent weight can.
    fleet = Fleet(sluice_factory, tmp_path, balance="roundrobin",
                  admission_queue_wait_target="5ms",
                  admission_queue_wait_interval="50ms", reader_threads=1, writer_threads=1)
    group = root / f"sluice-fleet-test-{os.getpid()}"
    moved = []
    try:
        if v2 and "cpu" not in (root / "cgroup.subtree_control").read_text().split():
            pytest.skip("the cpu controller is not enabled for child groups")
        group.mkdir()
        if v2:
            (group / "cpu.max").write_text("1000 100000\n")
        else:
            (group / "cpu.cfs_period_us").write_text("100000\n")
            (group / "cpu.cfs_quota_us").write_text("1000\n")
        slow = fleet.servers[0]
        (group / "cgroup.procs").write_text(f"{slow.pid}\n")  # every thread of it
        moved.append(slow)
        url = f"http://{HOST}:{fleet.port}/1k.bin"
        weights = []

        def watch():
            end = time.monotonic() + 8
            while time.monotonic() < end:
                try:
                    weights.append(agent(fleet.backends[0][2], timeout=2))
                except OSError:
                    pass
                time.sleep(0.2)

        w = threading.Thread(target=watch)
        w.start()
        requests, errors, non2xx, text = wrk(url, 64, 8)
        w.join(timeout=20)
        rows = fleet.stat()
        served = [int(rows[f"s{i + 1}"]["stot"]) for i in range(3)]
        low = [int(m.group(1)) for a in weights if (m := re.match(r"ready up (\d+)%", a))]
        assert low and min(low) < 100, f"agent weights seen: {weights}"
        assert served[0] < min(served[1:]), f"sessions per instance: {served}"
    finally:
        try:
            for server in moved:
                # Back to the parent group first: the test confines the
                # instance to weigh it, not to time its drain on 1% of a CPU
                # (under ThreadSanitizer that takes longer than stop() waits).
                try:
                    (root / "cgroup.procs").write_text(f"{server.pid}\n")
                except OSError:
                    pass
                server.stop()
        finally:  # the group goes even when a stop fails
            if group.exists():
                for _ in range(50):
                    try:
                        group.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)
            fleet.close()


# ------------------------------------------------------------------ SO_REUSEPORT


def test_reuseport_restart_under_load_drops_nothing(sluice_factory, tmp_path):
    sysctl = Path("/proc/sys/net/ipv4/tcp_migrate_req")
    old = sysctl.read_text().strip() if sysctl.exists() else None
    if old is None:
        pytest.skip("kernel without net.ipv4.tcp_migrate_req (Linux < 5.14)")
    port = helpers.free_port()
    common = {"server_listen": f"{HOST}:{port}", "server_reuseport": True,
              "server_drain_delay": "0.5s"}
    try:
        sysctl.write_text("1\n")
        a = sluice_factory(name="old", **common)
        assert "tcp_migrate_req" not in a.log_text()
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "wrk", wrk(f"http://{HOST}:{port}/1k.bin", 16, 6)))
        t.start()
        time.sleep(1.5)
        b = sluice_factory(name="new", **common)  # the same port, while A serves
        time.sleep(1.0)
        os.kill(a.pid, signal.SIGTERM)
        assert a.proc.wait(timeout=15) == 0
        t.join(timeout=40)
        requests, errors, non2xx, text = result["wrk"]
        assert not any(errors.values()), f"client errors during the restart:\n{text}"
        assert non2xx == 0 and requests > 100, text
        assert helpers.stats_json(b.status_socket)["requests"]["total"] > 0
        # Without a second instance's SO_REUSEPORT the port is taken.
        c = helpers.Sluice(tmp_path / "plain", helpers.Root(a.root_path),
                           conf={"server_listen": f"{HOST}:{port}"}, name="plain")
        with pytest.raises(AssertionError, match="cannot listen"):
            c.start(timeout=5)
    finally:
        sysctl.write_text(old + "\n")
