"""HTTP semantics beyond plain GET: ranges (single, suffix, open, multipart),
416, If-Range, 412 preconditions, precompressed siblings, Expect, and
robustness: slow and idle clients do not starve others, a file truncated
while it is sent never yields foreign bytes, running out of descriptors is
survived."""
import email.parser
import os
import re
import resource
import socket
import subprocess
import time

import helpers


def get(server, path, headers=None, method="GET"):
    with helpers.RawConn(server.port) as c:
        c.send(helpers.request(method, path, headers=headers, close=True))
        return c.read_response(method=method)


def test_single_suffix_and_open_ranges(sluice, test_root):
    data = test_root.data("/1m.bin")
    size = len(data)
    for spec, lo, hi in [("bytes=0-99", 0, 99), ("bytes=1000-1999", 1000, 1999),
                         ("bytes=-500", size - 500, size - 1),
                         ("bytes=1048000-", 1048000, size - 1),
                         ("bytes=5-999999999", 5, size - 1),
                         ("bytes=-99999999", 0, size - 1)]:
        r = get(sluice, "/1m.bin", {"Range": spec})
        assert r.status == 206, spec
        assert r.header("Content-Range") == f"bytes {lo}-{hi}/{size}", spec
        assert int(r.header("Content-Length")) == hi - lo + 1
        assert r.body == data[lo:hi + 1], spec


def test_multiple_ranges_are_multipart(sluice, test_root):
    data = test_root.data("/1m.bin")
    r = get(sluice, "/1m.bin", {"Range": "bytes=0-9, 100-199,-10"})
    assert r.status == 206
    ctype = r.header("Content-Type")
    m = re.match(r"multipart/byteranges; boundary=(\S+)$", ctype)
    assert m, ctype
    assert int(r.header("Content-Length")) == len(r.body)
    msg = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + r.body)
    parts = msg.get_payload()
    assert len(parts) == 3
    want = [(0, 9), (100, 199), (len(data) - 10, len(data) - 1)]
    for part, (lo, hi) in zip(parts, want):
        assert part["Content-Range"] == f"bytes {lo}-{hi}/{len(data)}"
        assert part.get_payload(decode=True) == data[lo:hi + 1]


def test_unsatisfiable_and_ignored_ranges(sluice, test_root):
    size = len(test_root.data("/1k.bin"))
    r = get(sluice, "/1k.bin", {"Range": "bytes=5000-6000"})
    assert r.status == 416
    assert r.header("Content-Range") == f"bytes */{size}"
    # malformed, other units, reversed, overlapping, too many: whole file
    for spec in ["bytes=abc", "items=0-5", "bytes=9-5", "bytes=0-10,5-20",
                 "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(20))]:
        r = get(sluice, "/1k.bin", {"Range": spec})
        assert r.status == 200, spec
        assert len(r.body) == size


def test_if_range(sluice, test_root):
    head = get(sluice, "/1k.bin", method="HEAD")
    etag, lm = head.header("ETag"), head.header("Last-Modified")
    data = test_root.data("/1k.bin")
    assert get(sluice, "/1k.bin", {"Range": "bytes=0-9", "If-Range": etag}).body == data[:10]
    assert get(sluice, "/1k.bin", {"Range": "bytes=0-9", "If-Range": lm}).status == 206
    r = get(sluice, "/1k.bin", {"Range": "bytes=0-9", "If-Range": '"other"'})
    assert r.status == 200 and r.body == data


def test_preconditions(sluice):
    head = get(sluice, "/1k.bin", method="HEAD")
    etag, lm = head.header("ETag"), head.header("Last-Modified")
    assert get(sluice, "/1k.bin", {"If-Match": '"nope"'}).status == 412
    assert get(sluice, "/1k.bin", {"If-Match": etag}).status == 200
    assert get(sluice, "/1k.bin", {"If-Match": "*"}).status == 200
    assert get(sluice, "/1k.bin", {"If-Match": "W/" + etag}).status == 412  # strong only
    assert get(sluice, "/1k.bin",
               {"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}).status == 412
    assert get(sluice, "/1k.bin", {"If-Unmodified-Since": lm}).status == 200
    r = get(sluice, "/1k.bin", {"If-None-Match": f'"x", W/{etag}'})
    assert r.status == 304 and r.body == b"" and r.header("ETag") == etag
    assert get(sluice, "/1k.bin", {"If-None-Match": "*"}).status == 304
    # If-None-Match wins over If-Modified-Since
    assert get(sluice, "/1k.bin", {"If-None-Match": '"x"', "If-Modified-Since": lm}).status == 200
    assert get(sluice, "/1k.bin",
               {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}).status == 200


def test_options_star_and_allow(sluice):
    with helpers.RawConn(sluice.port) as c:
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 204 and "GET" in r.header("Allow")
        c.send(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 400


def test_precompressed_siblings(sluice_factory, fresh_root):
    (fresh_root.path / "app.js").write_bytes(b"console.log('plain');\n" * 50)
    (fresh_root.path / "app.js.gz").write_bytes(b"GZ" * 10)
    (fresh_root.path / "app.js.br").write_bytes(b"BR" * 7)
    server = sluice_factory(root=fresh_root, http_precompressed=True)
    r = get(server, "/app.js", {"Accept-Encoding": "gzip, br"})
    assert r.header("Content-Encoding") == "br" and r.body == b"BR" * 7
    assert r.header("Vary") == "Accept-Encoding"
    assert r.header("Content-Type") in ("text/javascript", "application/javascript")
    r = get(server, "/app.js", {"Accept-Encoding": "gzip;q=0.8, br;q=0"})
    assert r.header("Content-Encoding") == "gzip" and r.body == b"GZ" * 10
    r = get(server, "/app.js", {"Accept-Encoding": "identity"})
    assert r.header("Content-Encoding") is None and r.body.startswith(b"console")
    assert r.header("Vary") == "Accept-Encoding"
    r = get(server, "/app.js")
    assert r.header("Content-Encoding") is None


def test_precompressed_off_by_default(sluice_factory, fresh_root):
    (fresh_root.path / "a.css").write_bytes(b"body{}\n")
    (fresh_root.path / "a.css.gz").write_bytes(b"GZ")
    server = sluice_factory(root=fresh_root)
    r = get(server, "/a.css", {"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") is None and r.body == b"body{}\n"


def test_get_with_expect_100_continue_is_answered_and_closed(sluice):
    with helpers.RawConn(sluice.port) as c:
        c.send(b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.header("Connection") == "close"


def test_slow_and_idle_clients_do_not_starve_others(sluice_factory):
    server = sluice_factory(timeouts_header="2s", timeouts_keepalive="30s")
    idle = []
    try:
        for i in range(600):
            s = socket.create_connection((server.host, server.port), timeout=5)
            if i % 2:
                s.sendall(b"GET /one.bin HTTP/1.1\r\nHost: x\r\n")  # never finishes
            idle.append(s)
        t0 = time.monotonic()
        for _ in range(50):
            r = server.get("/1k.bin")
            assert r.status == 200 and len(r.body) == 1024
        assert time.monotonic() - t0 < 10
        # the slowloris half is answered 408 (or closed) after the header timeout
        half = [s for i, s in enumerate(idle) if i % 2]
        time.sleep(2.5)
        answered = 0
        for s in half[:50]:
            s.settimeout(3)
            data = s.recv(200)
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:60]
            answered += 1
        assert answered == 50
    finally:
        for s in idle:
            s.close()


def test_truncated_file_never_sends_foreign_bytes(sluice_factory, fresh_root):
    path = fresh_root.path / "shrinking.bin"
    original = os.urandom(8 << 20)
    path.write_bytes(original)
    server = sluice_factory(root=fresh_root)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.settimeout(10)
    s.connect((server.host, server.port))
    s.sendall(helpers.request("GET", "/shrinking.bin"))
    data = s.recv(65536)
    os.truncate(path, 1 << 20)  # shrink while the response is being sent
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    else:
        raise AssertionError("connection neither finished nor closed")
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert int(re.search(rb"Content-Length: (\d+)", head).group(1)) == len(original)
    assert len(body) < len(original), "a short body must end in a close"
    new_size = 1 << 20
    assert body[:new_size] == original[:len(body[:new_size])]
    # sendfile is zero-copy: bytes already queued in the socket still refer to
    # the page cache, which the kernel zeroes past the new end of file. So past
    # it, a byte is the file's old byte or zero, never a byte from elsewhere.
    tail, old = body[new_size:], original[new_size:new_size + len(body) - new_size]
    for i in range(0, len(tail), 4096):
        a, b = tail[i:i + 4096], old[i:i + 4096]
        if a != b:
            assert all(x == y or x == 0 for x, y in zip(a, b)), f"foreign bytes near {new_size + i}"
    assert server.get("/1k.bin").status == 200


def test_running_out_of_descriptors_is_survived(sluice_factory, tmp_path):
    # sluice lowers max_connections to fit the open-file limit with the
    # cache's descriptors counted at their bound; descriptors still run out
    # when cached files fill what connections leave, which is what this
    # test does (and silent connections must reach accept(): defer_accept off).
    server = sluice_factory(server_defer_accept="no", cache_max_entries=200)
    server.stop()
    # Restart it with a low descriptor limit: a few dozen connections fill it.
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    logf = open(server.log_path, "ab")
    proc = subprocess.Popen([str(helpers.SLUICE), "-c", str(server.conf_path)],
                            stdout=logf, stderr=subprocess.STDOUT, preexec_fn=low_nofile)
    try:
        helpers.wait_until(lambda: helpers.harness.accepts(server.port), timeout=10,
                           what="sluice up")
        held = []
        keeper = helpers.RawConn(server.port)
        keeper.send(helpers.request("GET", "/one.bin"))
        assert keeper.read_response().status == 200
        # Cached files take descriptors too: 36 of them here.
        for cls in range(4):
            for i in range(1, 10):
                keeper.send(helpers.request("GET", f"/dir00000/class{cls}_{i}"))
                assert keeper.read_response().status in (200, 503)
        for _ in range(100):
            try:
                held.append(socket.create_connection((server.host, server.port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        # an established connection is still served while accept() fails
        keeper.send(helpers.request("GET", "/one.bin"))
        assert keeper.read_response().status == 200
        # a file that needs a new descriptor now: 503, try again later
        keeper.send(helpers.request("GET", "/1k.bin"))
        r = keeper.read_response()
        assert r.status in (200, 503), r
        if r.status == 503:
            assert r.header("Retry-After") is not None
        for s in held:
            s.close()
        keeper.close()
        time.sleep(0.5)
        helpers.wait_until(lambda: _get_ok(server.port), timeout=10,
                           what="serving new connections again")
        log = open(server.log_path, encoding="utf-8", errors="replace").read()
        assert "pausing accepts" in log
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        logf.close()


def _get_ok(port):
    try:
        with helpers.RawConn(port, timeout=2) as c:
            c.send(helpers.request("GET", "/one.bin", close=True))
            return c.read_response().status == 200
    except (OSError, helpers.ConnectionClosed):
        return False
