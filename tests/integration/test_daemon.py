"""Operating sluice as a daemon: reload under load, graceful stop during a
download, access log accounting and reopening, -d with a pidfile, dropping
privileges, and systemd readiness notifications."""
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import helpers
import pytest


def writer_threads(pid):
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass
    return sorted(n for n in names if n.startswith("writer-"))


def status(server, cmd="stats json"):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(server.status_socket)
    s.sendall(cmd.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data) if cmd == "stats json" else data.decode()


def run_wrk(url, conns, seconds):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", url],
                         capture_output=True, text=True, timeout=seconds + 30,
                         preexec_fn=helpers.raise_nofile)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    m = re.search(r"(\d+) requests in", text)
    assert m, text
    errors = re.search(r"Socket errors: (.*)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return int(m.group(1)), (errors.group(1) if errors else None), \
        (int(non2xx.group(1)) if non2xx else 0), text


def set_key(server, section, key, value):
    server.conf.setdefault(section, {})[key] = value
    server.write_conf()


def test_reload_under_load_changes_threads_without_errors(sluice_factory):
    server = sluice_factory(writer_threads=8)
    result = {}

    def load():
        result["wrk"] = run_wrk(server.url + "/1k.bin", 50, 5)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    set_key(server, "writer", "threads", 3)
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: len(writer_threads(server.pid)) == 3, timeout=5,
                       what="3 writer threads after reload")
    time.sleep(1.0)
    set_key(server, "writer", "threads", 6)
    set_key(server, "limits", "max_requests_per_connection", 0)
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: len(writer_threads(server.pid)) == 6, timeout=5,
                       what="6 writer threads after the second reload")
    t.join(timeout=40)
    requests, errors, non2xx, text = result["wrk"]
    assert requests > 1000, text
    assert errors is None, f"socket errors during reload: {errors}\n{text}"
    assert non2xx == 0, text
    assert writer_threads(server.pid) == [f"writer-{i}" for i in range(6)]
    stats = status(server)
    assert stats["generation"] == 2
    writer = [s for s in stats["stages"] if s["name"] == "writer"][0]
    assert writer["threads"] == 6


def test_broken_reload_keeps_old_config_and_serving(sluice_factory):
    server = sluice_factory(writer_threads=4)
    with open(server.conf_path, "a") as f:
        f.write("[writer]\nthreads = lots\n")
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: "reload failed" in server.log_text(), timeout=5,
                       what="the failed reload in the log")
    log = server.log_text()
    assert re.search(re.escape(str(server.conf_path)) + r":\d+: writer\.threads", log), log
    assert len(writer_threads(server.pid)) == 4
    r = server.get("/1k.bin")
    assert r.status == 200 and len(r.body) == 1024
    stats = status(server)
    assert stats["generation"] == 0
    assert stats["failed_reloads"] == 1


def test_sigterm_lets_a_slow_download_finish(sluice_factory, test_root):
    server = sluice_factory(server_shutdown_timeout="10s")
    want_size, want_digest = test_root.files["/5m.bin"]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.settimeout(10)
    s.connect((server.host, server.port))
    s.sendall(helpers.request("GET", "/5m.bin"))
    data = b""
    sent_term = False
    start = time.monotonic()
    # Read at about 2.5 MB/s: the download takes ~2 s; SIGTERM arrives early.
    while time.monotonic() - start < 30:
        chunk = s.recv(64 * 1024)
        if not chunk:
            break
        data += chunk
        if not sent_term and len(data) > 512 * 1024:
            os.kill(server.pid, signal.SIGTERM)
            sent_term = True
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and len(body) >= want_size:
            break
        time.sleep(0.025)
    s.close()
    assert sent_term
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    assert len(body) == want_size
    assert helpers.sha256(body) == want_digest
    server.proc.wait(timeout=15)
    assert server.proc.returncode == 0, server.log_tail()


def count_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line]


@pytest.mark.parametrize("fmt", ["combined", "json"])
def test_access_log_has_one_line_per_response(sluice_factory, tmp_path, fmt):
    log = tmp_path / f"access-{fmt}.log"
    server = sluice_factory(server_access_log=str(log), server_access_log_format=fmt)
    statuses = []
    conn = helpers.RawConn(server.port)
    for i in range(120):
        path = "/1k.bin" if i % 3 else "/missing-%d" % i
        conn.send(helpers.request("GET", path, headers={"User-Agent": "test/1 \"q\""}))
        r = conn.read_response()
        statuses.append(r.status)
    conn.close()
    bad = helpers.RawConn(server.port)
    bad.send(b"NOT A REQUEST\r\n\r\n")
    statuses.append(bad.read_response().status)
    bad.close()
    wrk_requests, errors, non2xx, text = run_wrk(server.url + "/one.bin", 20, 1)
    assert errors is None, text
    server.stop()
    assert server.returncode == 0
    lines = count_lines(log)
    total = len(statuses) + wrk_requests
    # wrk counts completed responses; requests it had in flight when it
    # stopped may also have been answered and logged.
    assert total <= len(lines) <= total + 20 * 2, (len(lines), total)
    first = lines[:len(statuses)]
    # The bad request came on a second connection after the first closed,
    # but its reader may log it before the first connection's reader logs
    # that connection's last line: lines are in order per connection only.
    # Its line is the one that does not start with a GET.
    get = "GET " if fmt == "combined" else '"request":"GET '
    bad_lines = [line for line in first if get not in line]
    assert len(bad_lines) == 1, bad_lines
    first = [line for line in first if get in line] + bad_lines
    if fmt == "json":
        recs = [json.loads(line) for line in first]
        assert [r["status"] for r in recs] == statuses
        assert recs[1]["request"] == "GET /1k.bin HTTP/1.1"
        assert recs[1]["body_bytes"] == 1024 and recs[1]["bytes"] > 1024
        assert recs[1]["agent"] == "test/1 \"q\""
        assert recs[1]["remote"] == "127.0.0.1"
    else:
        pat = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "([^"]*)" (\d{3}) (\d+) "-" "(.*)"$')
        parsed = [pat.match(line) for line in first]
        assert all(parsed), first[:3]
        assert [int(m.group(2)) for m in parsed] == statuses
        assert parsed[1].group(1) == "GET /1k.bin HTTP/1.1" and parsed[1].group(3) == "1024"
        assert parsed[1].group(4) == 'test/1 \\"q\\"'
        assert parsed[-1].group(1) == "NOT A REQUEST" and parsed[-1].group(2) == "400"


def test_sigusr1_reopens_the_access_log(sluice_factory, tmp_path):
    log = tmp_path / "access.log"
    server = sluice_factory(server_access_log=str(log))
    for _ in range(3):
        assert server.get("/one.bin").status == 200
    helpers.wait_until(lambda: log.exists() and len(count_lines(log)) == 3, timeout=5,
                       what="3 lines in the access log")
    rotated = tmp_path / "access.log.1"
    log.rename(rotated)
    os.kill(server.pid, signal.SIGUSR1)
    helpers.wait_until(lambda: log.exists(), timeout=5, what="the access log reopened")
    for _ in range(2):
        assert server.get("/one.bin").status == 200
    helpers.wait_until(lambda: len(count_lines(log)) == 2, timeout=5,
                       what="2 lines in the new access log")
    assert len(count_lines(rotated)) == 3


def test_daemonize_with_pidfile(sluice_binary, test_root, tmp_path):
    server = helpers.Sluice(tmp_path / "d", test_root, name="d",
                            conf={"server_error_log": str(tmp_path / "d-error.log")})
    cmd = [str(helpers.SLUICE), "-d", "-c", str(server.conf_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=15, cwd=tmp_path,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    pid = int(server.pidfile.read_text())
    try:
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "sluice"
        # Detached: a new session (double fork: not its leader, so it can never
        # acquire a controlling terminal again).
        assert os.getsid(pid) != os.getsid(0)
        assert os.getsid(pid) != pid
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(helpers.request("GET", "/one.bin", close=True))
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=15, cwd=tmp_path,
                               stdin=subprocess.DEVNULL)
        assert again.returncode != 0
        assert "names a running sluice" in (tmp_path / "d-error.log").read_text()
        assert int(server.pidfile.read_text()) == pid, "the live pidfile is left alone"
    finally:
        os.kill(pid, signal.SIGTERM)
    helpers.wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=15,
                       what="the daemon to exit")
    assert not server.pidfile.exists()
    assert not Path(server.status_socket).exists()


def test_daemon_reports_startup_failure(sluice_binary, test_root, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    server = helpers.Sluice(tmp_path / "f", test_root, name="f",
                            conf={"server_listen": f"127.0.0.1:{port}",
                                  "server_error_log": str(tmp_path / "f-error.log")})
    r = subprocess.run([str(helpers.SLUICE), "-d", "-c", str(server.conf_path)],
                       capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    busy.close()
    assert r.returncode == 1
    assert "server.listen" in (tmp_path / "f-error.log").read_text()
    assert not server.pidfile.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_drops_privileges_to_configured_user(sluice_factory):
    nobody = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="sluice-user-"))
    root.chmod(0o755)
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "hello.txt").chmod(0o644)
    (root / "secret.txt").write_bytes(b"secret\n")
    (root / "secret.txt").chmod(0o600)
    server = sluice_factory(root=root, server_user="nobody")
    r = server.get("/hello.txt")  # answered only once privileges are dropped
    assert r.status == 200 and r.body == b"hello\n"
    assert server.get("/secret.txt").status == 403
    for task in Path(f"/proc/{server.pid}/task").iterdir():
        lines = (task / "status").read_text().splitlines()
        uid = [line for line in lines if line.startswith("Uid:")][0].split()[1:]
        assert all(int(u) == nobody.pw_uid for u in uid), (task.name, uid)


def test_systemd_notifications(sluice_binary, test_root, tmp_path):
    path = str(tmp_path / "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(10)
    server = helpers.Sluice(tmp_path / "n", test_root, name="n")
    env = dict(os.environ, NOTIFY_SOCKET=path)
    logf = open(server.log_path, "ab")
    proc = subprocess.Popen([str(helpers.SLUICE), "-c", str(server.conf_path)], env=env,
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        msg = ns.recv(4096).decode()
        assert "READY=1" in msg and f"MAINPID={proc.pid}" in msg, msg
        proc.send_signal(signal.SIGHUP)
        msgs = ns.recv(4096).decode() + ns.recv(4096).decode()
        assert "RELOADING=1" in msgs and "READY=1" in msgs, msgs
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in ns.recv(4096).decode()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logf.close()
        ns.close()


def long_target(n):
    return "/" + "a" * (n - 1)


def test_failed_reload_changes_no_setting(sluice_factory, tmp_path):
    """A reload whose last step fails (the access log's directory is missing)
    leaves every setting as it was: limits, timeouts, cache sizes, thread
    counts, admission, log level and both logs. Read back live from `stats
    json` and the logs; then the same file with a good access log applies all
    of it, so the check reads live values and not just the old file."""
    server = sluice_factory(writer_threads=2, acceptor_threads=1,
                            limits_max_request_line="8k", limits_max_header_size="16k",
                            limits_max_requests_per_connection=0,
                            timeouts_keepalive="30s", cache_max_entries=500,
                            cache_validity="1s", reader_inline_max="1m",
                            admission_retry_after=1, server_log_level="info",
                            queue_batch=64)
    before = status(server)
    assert before["config"]["threads"]["writer"] == 2
    r = helpers.exchange(server.port, helpers.request("GET", long_target(1500)))
    assert r.status == 404, r  # an 1.5k request line is within the limit

    new_elog = tmp_path / "new-error.log"
    changes = {
        ("writer", "threads"): 5, ("acceptor", "threads"): 2,
        ("limits", "max_request_line"): "1k", ("limits", "max_header_size"): "4k",
        ("limits", "max_requests_per_connection"): 7,
        ("timeouts", "keepalive"): "9s", ("timeouts", "header"): "3s",
        ("cache", "max_entries"): 77, ("cache", "validity"): "3s",
        ("reader", "inline_max"): "4k", ("admission", "retry_after"): 9,
        ("queue", "batch"): 16, ("server", "log_level"): "debug",
        ("server", "error_log"): str(new_elog),
    }
    for (section, key), value in changes.items():
        server.conf.setdefault(section, {})[key] = value
    # Last: the step that fails.
    server.conf["server"]["access_log"] = str(tmp_path / "no-such-dir" / "access.log")
    server.write_conf()
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: "reload failed" in server.log_text(), timeout=10,
                       what="the failed reload in the (old) error log")
    log = server.log_text()
    assert re.search(re.escape(str(server.conf_path)) + r":\d+: server\.access_log", log), log
    after = status(server)
    assert after["failed_reloads"] == 1 and after["generation"] == 0
    assert after["config"] == before["config"], (before["config"], after["config"])
    assert not new_elog.exists(), "the new error log was opened by a reload that failed"
    assert len(writer_threads(server.pid)) == 2
    # The hot path still uses the old limits.
    r = helpers.exchange(server.port, helpers.request("GET", long_target(1500)))
    assert r.status == 404, r

    # Now only the access log is fixed: everything above applies.
    server.conf["server"]["access_log"] = str(tmp_path / "access.log")
    server.write_conf()
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: status(server)["generation"] == 1, timeout=10,
                       what="the good reload")
    cfg = status(server)["config"]
    assert cfg["threads"] == {"acceptor": 2, "reader": before["config"]["threads"]["reader"],
                              "detector": 1, "writer": 5}, cfg
    assert cfg["limits"]["max_request_line"] == 1024
    assert cfg["limits"]["max_header_size"] == 4096
    assert cfg["limits"]["max_requests_per_connection"] == 7
    assert cfg["timeouts_ns"]["keepalive"] == 9 * 10**9
    assert cfg["timeouts_ns"]["header"] == 3 * 10**9
    assert cfg["cache"]["max_entries"] == 77 and cfg["cache"]["validity_ns"] == 3 * 10**9
    assert cfg["inline_max"] == 4096 and cfg["queue_batch"] == 16
    assert cfg["admission"]["retry_after"] == 9
    assert cfg["log_level"] == 4 and cfg["error_log"] == str(new_elog)
    assert cfg["access_log"] == str(tmp_path / "access.log")
    helpers.wait_until(lambda: len(writer_threads(server.pid)) == 5, timeout=5,
                       what="5 writer threads")
    r = helpers.exchange(server.port, helpers.request("GET", long_target(1500)))
    assert r.status == 414, r
    helpers.wait_until(lambda: new_elog.exists() and "reloaded" in new_elog.read_text(),
                       timeout=5, what="the new error log in use")


def test_failed_reload_of_the_error_log_changes_nothing(sluice_factory, tmp_path):
    """The error log's own failure: nothing else of the file applies either."""
    server = sluice_factory(writer_threads=3)
    before = status(server)
    server.conf.setdefault("writer", {})["threads"] = 1
    server.conf.setdefault("timeouts", {})["keepalive"] = "2s"
    server.conf["server"]["error_log"] = str(tmp_path / "missing" / "e.log")
    server.write_conf()
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: "reload failed" in server.log_text(), timeout=10,
                       what="the failed reload")
    assert re.search(re.escape(str(server.conf_path)) + r":\d+: server\.error_log",
                     server.log_text())
    after = status(server)
    assert after["config"] == before["config"]
    assert len(writer_threads(server.pid)) == 3


def test_resizing_writers_keeps_totals_and_bounds_the_registry(sluice_factory):
    """`set writer.threads N` up and down many times: every exited writer's
    counters are kept (totals only grow, and count every request), and the
    stats registry holds one block per live thread plus one retired block
    instead of one per thread ever started."""
    server = sluice_factory(writer_threads=2, reader_threads=1, reader_inline_max=0)
    sock = server.status_socket
    base = helpers.stats_json(sock)
    blocks0 = base["stats_blocks"]
    sent = 0
    last_writer = next(s for s in base["stages"] if s["name"] == "writer")["processed"]
    rounds = 40
    for i in range(rounds):
        for n in (8, 1):
            reply = helpers.status_command(sock, f"set writer.threads {n}")
            assert reply.startswith(f"ok writer.threads={n}"), reply
            r = server.get("/1k.bin")
            assert r.status == 200
            sent += 1
        st = helpers.stats_json(sock)
        w = next(s for s in st["stages"] if s["name"] == "writer")
        # A writer counts a response just after sending it: never fewer than
        # before (an exited writer's counts stay), at most one behind.
        assert w["processed"] >= last_writer, (i, w["processed"], last_writer)
        last_writer = w["processed"]

    def totals():
        st = helpers.stats_json(sock)
        w = next(s for s in st["stages"] if s["name"] == "writer")
        return (st["requests"]["total"] - base["requests"]["total"],
                st["requests"]["2xx"] - base["requests"]["2xx"],
                w["processed"] - next(s for s in base["stages"]
                                      if s["name"] == "writer")["processed"])
    helpers.wait_until(lambda: totals() == (sent, sent, sent), timeout=10,
                       what=f"{sent} requests counted")
    st = helpers.stats_json(sock)
    # One writer now against two at the start, after 80 resizes that started
    # 280 writer threads: the registry follows the live threads.
    assert st["stats_blocks"] <= blocks0, (blocks0, st["stats_blocks"])
    assert st["config"]["threads"]["writer"] == 1
