"""Every response sluice sends is logged once in the access log and counted
once in `stats json`, whichever path decided it: a head that overflows the
input buffer (431), a head that never completes (408), the parser's errors
(400, 414, 431, 505). Counted once means: requests.total and its status class
grow by one, the reader's processed by one, and inline + the writers'
processed by one (each response is finished once, by a reader or a writer).
Both with inline sends and in the strict pipeline (inline_max = 0)."""
import json
import os
import signal
import time

import pytest

import helpers

MAX_HEAD = 1024


@pytest.fixture(params=["inline", "pipeline"])
def server(request, sluice_factory, tmp_path):
    conf = {"server_access_log": str(tmp_path / "access.log"),
            "server_access_log_format": "json",
            "limits_max_header_size": MAX_HEAD,
            "limits_max_request_line": 512,
            "timeouts_header": "1s"}
    if request.param == "pipeline":
        conf["reader_inline_max"] = 0
    srv = sluice_factory(**conf)
    srv.access_log = tmp_path / "access.log"
    return srv


def log_records(server):
    try:
        text = server.access_log.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]


def counts(server):
    st = helpers.stats_json(server.status_socket)
    stages = {s["name"]: s for s in st["stages"]}
    return {"total": st["requests"]["total"], "4xx": st["requests"]["4xx"],
            "2xx": st["requests"]["2xx"], "5xx": st["requests"]["5xx"], "reader": stages["reader"]["processed"],
            "finished": st["requests"]["inline"] + stages["writer"]["processed"]}


def quiet(server):
    """Counters and log once the start-up probes are gone (they send nothing,
    get no response and leave no line)."""
    helpers.wait_until(
        lambda: helpers.stats_json(server.status_socket)["connections"]["current"] == 0,
        timeout=10, what="start-up probes closed")
    return counts(server), len(log_records(server))


def check_once(server, base, nlines, status):
    """Exactly one more response with STATUS: one log line, counted once."""
    helpers.wait_until(lambda: counts(server)["total"] > base["total"]
                       and len(log_records(server)) > nlines, timeout=10,
                       what=f"the {status} counted and logged")
    time.sleep(0.3)  # a second count or line would show now
    now = counts(server)
    delta = {k: now[k] - base[k] for k in now}
    want = {"total": 1, "2xx": 0, "4xx": 0, "5xx": 0, "reader": 1, "finished": 1}
    want[f"{status // 100}xx"] = 1
    assert delta == want, f"{status}: counters moved by {delta}"
    recs = log_records(server)[nlines:]
    assert [r["status"] for r in recs] == [status], recs
    return recs[0]


def test_overflowing_head_431_is_logged_and_counted_once(server):
    base, nlines = quiet(server)
    head = b"GET /one.bin HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * (2 * MAX_HEAD)
    with helpers.RawConn(server.port) as c:
        c.send(head)
        r = c.read_response()
        assert r.status == 431
        assert c.closed_within(5)
    rec = check_once(server, base, nlines, 431)
    assert rec["request"].startswith("GET /one.bin HTTP/1.1")
    # exactly the limit, without the end of the head: the same
    base, nlines = counts(server), len(log_records(server))
    fill = MAX_HEAD - len(b"GET / HTTP/1.1\r\nHost: x\r\nX: ")
    with helpers.RawConn(server.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * fill)
        assert c.read_response().status == 431
    check_once(server, base, nlines, 431)
    server.ensure_serving()


def test_slow_head_408_is_logged_and_counted_once(server):
    base, nlines = quiet(server)
    with helpers.RawConn(server.port) as c:
        c.send(b"GET /one.bin HTTP/1.1\r\nHost: x\r\n")
        r = c.read_response()
        assert r.status == 408
    check_once(server, base, nlines, 408)


@pytest.mark.parametrize("raw,status", [
    (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /one.bin HTTP/1.1\r\nHost: x:80:80\r\n\r\n", 400),
    (b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /one.bin HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
     + b"\r\n", 431),
    (b"GET /one.bin HTTP/2.0\r\nHost: x\r\n\r\n", 505),
], ids=["framing-400", "host-400", "414", "too-many-fields-431", "505"])
def test_parser_errors_are_logged_and_counted_once(server, raw, status):
    base, nlines = quiet(server)
    with helpers.RawConn(server.port) as c:
        c.send(raw)
        assert c.read_response().status == status
    check_once(server, base, nlines, status)


def test_head_spanning_a_reload_that_raises_the_limit(server):
    """A head begun under a smaller max_header_size and completed after a
    reload raised it is served (the buffer grows), and counted once."""
    base, nlines = quiet(server)
    gen = helpers.stats_json(server.status_socket)["generation"]
    fill = b"X-Fill: " + b"c" * 300 + b"\r\n"
    with helpers.RawConn(server.port) as c:
        c.send(b"GET /one.bin HTTP/1.1\r\nHost: x\r\n" + fill)  # ~340 bytes buffered
        server.conf["limits"]["max_header_size"] = 4 * MAX_HEAD
        server.write_conf()
        os.kill(server.pid, signal.SIGHUP)
        helpers.wait_until(
            lambda: helpers.stats_json(server.status_socket)["generation"] > gen,
            timeout=5, what="reload applied")
        c.send(fill * 5 + b"\r\n")  # ~1.9k in all: over the old limit, under the new
        r = c.read_response()
        assert r.status == 200, r
        size, digest = server.root.files["/one.bin"]
        assert helpers.sha256(r.body) == digest
    check_once(server, base, nlines, 200)
