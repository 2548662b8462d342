"""HTTP behaviour of the real daemon, seen from real clients (curl,
http.client) and from raw sockets where the exact bytes matter: byte-exact
downloads, response headers, HEAD, persistent connections, pipelining,
directories, what is (not) served outside the root, error statuses and the
header and keep-alive timeouts."""

import email.utils
import http.client
import os
import re
import socket
import subprocess
import time
import urllib.parse

import pytest

import helpers
from helpers import RawConn, exchange, request, sha256

FILESET = [f"/dir00000/class{c}_{k}" for c in range(4) for k in range(1, 10)]
EXTRAS = ["/empty.bin", "/one.bin", "/1k.bin", "/1m.bin", "/5m.bin"]
ALL_FILES = FILESET + EXTRAS
PASSWD_MARK = b"root:x:0:0"


def check_body(root, path, body):
    size, digest = root.files[path]
    assert len(body) == size, f"{path}: {len(body)} bytes, expected {size}"
    assert sha256(body) == digest, f"{path}: content differs from the file"


# ------------------------------------------------------------------ the file set tool


def test_fileset_tool_layout_and_determinism(tmp_path, test_root):
    sizes = {}
    for path in FILESET:
        c, k = map(int, re.fullmatch(r"/dir00000/class(\d)_(\d)", path).groups())
        sizes[path] = (102, 1024, 10240, 102400)[c] * k
    assert {p: test_root.files[p][0] for p in FILESET} == sizes
    assert sizes["/dir00000/class3_9"] == 921600
    for p in FILESET:  # the manifest tells the truth about the files
        assert sha256(test_root.data(p)) == test_root.files[p][1]
    # Same seed: identical bytes; another seed: different bytes.
    tool = str(helpers.FILESET_TOOL)
    subprocess.run([tool, "--dirs", "2", "--seed", "42", "--out", str(tmp_path / "a"), "-q"],
                   check=True, timeout=60)
    subprocess.run([tool, "--dirs", "1", "--seed", "43", "--out", str(tmp_path / "b"), "-q"],
                   check=True, timeout=60)
    a = (tmp_path / "a" / "manifest.tsv").read_text().splitlines()
    b = (tmp_path / "b" / "manifest.tsv").read_text().splitlines()
    assert len(a) == 1 + 72 and len(b) == 1 + 36
    assert a[:37] == (test_root.path / "manifest.tsv").read_text().splitlines()
    assert not set(line.split("\t")[2] for line in a[1:37]) & set(
        line.split("\t")[2] for line in b[1:])
    listed = subprocess.run([tool, "--dirs", "2", "--list"], check=True, timeout=30,
                            capture_output=True, text=True).stdout.split()
    assert listed == ["/" + line.split("\t")[0] for line in a[1:]]
    assert not (tmp_path / "fileset").exists()  # --list writes nothing
    help_text = subprocess.run([tool, "--help"], check=True, timeout=30, capture_output=True,
                               text=True).stdout
    for opt in ("--dirs", "--seed", "--out", "--class-files", "--list"):
        assert opt in help_text


# ------------------------------------------------------------------ downloads


@pytest.mark.parametrize("path", ALL_FILES)
def test_download_curl(sluice, tmp_path, path):
    out = tmp_path / "body"
    p = subprocess.run(["curl", "-s", "--max-time", "30", "-o", str(out), "-w",
                        "%{http_code} %{size_download}", sluice.url + path],
                       capture_output=True, text=True, timeout=40)
    assert p.returncode == 0, f"curl failed ({p.returncode}): {p.stderr}"
    code, size = p.stdout.split()
    assert code == "200"
    assert int(size) == sluice.root.files[path][0]
    check_body(sluice.root, path, out.read_bytes() if out.exists() else b"")


def test_download_http_client_one_connection(sluice):
    conn = http.client.HTTPConnection(helpers.HOST, sluice.port, timeout=20)
    try:
        conn.connect()
        first_sock = conn.sock
        for path in ALL_FILES + ALL_FILES[::-1]:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, path
            assert int(resp.getheader("Content-Length")) == len(body)
            check_body(sluice.root, path, body)
            assert not resp.will_close
            assert conn.sock is first_sock, "http.client had to reconnect"
    finally:
        conn.close()


# ------------------------------------------------------------------ headers


@pytest.mark.parametrize("name", sorted(helpers.TYPED_FILES))
def test_content_type(sluice, name):
    r = sluice.get("/" + name)
    assert r.status == 200
    ctype = r.header("Content-Type")
    assert ctype is not None
    assert ctype.split(";")[0].strip().lower() == helpers.TYPED_FILES[name][1]
    check_body(sluice.root, "/" + name, r.body)


def test_fileset_files_have_default_type(sluice):
    r = sluice.get("/dir00000/class1_1")
    assert r.header("Content-Type") == "application/octet-stream"


@pytest.mark.parametrize("path", ["/dir00000/class2_4", "/page.html", "/empty.bin", "/5m.bin"])
def test_entity_headers(sluice, path):
    t0 = time.time()
    r = sluice.get(path)
    t1 = time.time()
    assert r.status == 200
    st = os.stat(sluice.root.path / path.lstrip("/"))
    assert r.headers("Content-Length") == [str(st.st_size)]
    assert r.headers("Last-Modified") == [email.utils.formatdate(st.st_mtime, usegmt=True)]
    assert r.headers("ETag") == [f'"{int(st.st_mtime):x}-{st.st_size:x}"']
    date = r.headers("Date")
    assert len(date) == 1 and re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        r" \d{4} \d\d:\d\d:\d\d GMT", date[0]), date
    when = email.utils.parsedate_to_datetime(date[0]).timestamp()
    assert t0 - 2 <= when <= t1 + 1
    server = r.headers("Server")
    assert len(server) == 1 and server[0].startswith("sluice")
    assert len(r.headers("Content-Type")) == 1


def test_head_has_headers_and_no_body(sluice):
    with RawConn(sluice.port) as c:
        c.send(request("HEAD", "/5m.bin") + request("HEAD", "/dir00000/class3_1") +
               request("GET", "/one.bin"))
        h1 = c.read_response("HEAD")
        # The next response must start right after the head: no body bytes.
        h2 = c.read_response("HEAD")
        g = c.read_response("GET")
    assert h1.status == 200 and h1.header("Content-Length") == str(5 << 20)
    assert h2.status == 200 and h2.header("Content-Length") == "102400"
    assert h1.body == b"" and h2.body == b""
    assert g.status == 200
    check_body(sluice.root, "/one.bin", g.body)
    full = sluice.get("/5m.bin")
    for name in ("ETag", "Last-Modified", "Content-Type", "Content-Length"):
        assert h1.header(name) == full.header(name), name


def test_head_with_curl(sluice):
    p = subprocess.run(["curl", "-s", "-I", "--max-time", "10", sluice.url + "/1m.bin"],
                       capture_output=True, timeout=20)
    assert p.returncode == 0
    assert p.stdout.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: 1048576" in p.stdout


# ------------------------------------------------------------------ persistent connections


def test_http11_connection_stays_open(sluice):
    with RawConn(sluice.port) as c:
        for path in ("/one.bin", "/dir00000/class0_5", "/1k.bin"):
            c.send(request("GET", path))
            r = c.read_response()
            assert r.status == 200
            check_body(sluice.root, path, r.body)
            assert r.header("Connection", "keep-alive").lower() == "keep-alive"
            assert not c.closed_within(0.3), "server closed an HTTP/1.1 connection"


def test_http11_connection_close_closes(sluice):
    r, closed = exchange(sluice.port, request("GET", "/one.bin", close=True), wait_close=3)
    assert r.status == 200
    assert r.header("Connection").lower() == "close"
    assert closed


def test_http10_without_keepalive_closes(sluice):
    r, closed = exchange(sluice.port, request("GET", "/1k.bin", version="HTTP/1.0", host=None),
                         wait_close=3)
    assert r.status == 200
    check_body(sluice.root, "/1k.bin", r.body)
    assert r.header("Connection", "close").lower() == "close"
    assert closed, "HTTP/1.0 without keep-alive must close"


def test_http10_keepalive_stays_open(sluice):
    with RawConn(sluice.port) as c:
        for path in ("/1k.bin", "/dir00000/class2_2", "/one.bin"):
            c.send(request("GET", path, version="HTTP/1.0", host=None,
                           headers={"Connection": "keep-alive"}))
            r = c.read_response()
            assert r.status == 200
            assert r.header("Connection", "").lower() == "keep-alive"
            check_body(sluice.root, path, r.body)
        assert not c.closed_within(0.3)


# ------------------------------------------------------------------ pipelining


def test_pipelining_ten_requests_in_one_write(sluice):
    paths = ["/dir00000/class0_1", "/dir00000/class3_9", "/1m.bin", "/dir00000/class1_5",
             "/empty.bin", "/one.bin", "/dir00000/class2_9", "/page.html", "/5m.bin",
             "/dir00000/class0_9"]
    with RawConn(sluice.port, timeout=30) as c:
        c.send(b"".join(request("GET", p) for p in paths))
        for p in paths:
            r = c.read_response()
            assert r.status == 200, p
            check_body(sluice.root, p, r.body)
        assert not c.closed_within(0.2)


def test_pipelining_mixed_methods_and_errors(sluice):
    reqs = [("GET", "/one.bin", 200), ("HEAD", "/1k.bin", 200), ("GET", "/nope", 404),
            ("OPTIONS", "*", 204), ("GET", "/withindex/", 200), ("GET", "/withindex", 301),
            ("GET", "/dir00000/class1_2", 200)]
    with RawConn(sluice.port) as c:
        c.send(b"".join(request(m, p) for m, p, _ in reqs))
        for m, p, status in reqs:
            r = c.read_response(m)
            assert r.status == status, (m, p, r.status)
            if status == 200 and m == "GET":
                path = "/withindex/index.html" if p == "/withindex/" else p
                check_body(sluice.root, path, r.body)


# ------------------------------------------------------------------ paths


def test_missing_file_404_keeps_connection(sluice):
    with RawConn(sluice.port) as c:
        for path in ("/nope", "/dir00000/nope", "/nope/", "/dir00000/class0_1/x"):
            c.send(request("GET", path))
            r = c.read_response()
            assert r.status == 404, path
            assert int(r.header("Content-Length")) == len(r.body)
        c.send(request("GET", "/one.bin"))
        r = c.read_response()
        assert r.status == 200


def test_directory_with_slash_serves_index(sluice):
    r = sluice.get("/withindex/")
    assert r.status == 200
    assert r.body == helpers.INDEX_HTML
    assert r.header("Content-Type").split(";")[0] == "text/html"


@pytest.mark.parametrize("path,location", [("/withindex", "/withindex/"),
                                           ("/noindex", "/noindex/"),
                                           ("/dir00000", "/dir00000/")])
def test_directory_without_slash_redirects(sluice, path, location):
    r = sluice.get(path)
    assert r.status == 301
    assert r.headers("Location") == [location]


def test_directory_redirect_keeps_query(sluice):
    r = sluice.get("/withindex?a=1")
    assert r.status == 301
    assert r.header("Location") == "/withindex/?a=1"


@pytest.mark.parametrize("path", ["/noindex/", "/dir00000/", "/"])
def test_directory_without_index_403(sluice, path):
    r = sluice.get(path)
    assert r.status == 403
    assert b"file.txt" not in r.body and b"class0_1" not in r.body  # no listing


TRAVERSALS = ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/a/..%2f..%2fetc/passwd",
              "/%2e%2e%2fetc%2fpasswd", "/..%5c..%5cetc/passwd", "//etc/passwd",
              "/dir00000/../../etc/passwd", "/./../etc/passwd", "/%2E%2E/etc/passwd",
              "/..", "/dir00000/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd%00.html",
              "/link-outside", "/link-outside-rel", "/linkdir-outside/passwd"]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_leaves_root(sluice, target):
    r = exchange(sluice.port, request("GET", target, close=True))
    assert PASSWD_MARK not in r.body
    assert r.status in (400, 404), f"{target}: {r.status}"


def test_traversal_in_absolute_form(sluice):
    r = exchange(sluice.port, request("GET", f"http://127.0.0.1:{sluice.port}/../../etc/passwd",
                                      close=True))
    assert PASSWD_MARK not in r.body
    assert r.status in (400, 404)


def test_symlink_outside_root_404_with_curl(sluice):
    p = subprocess.run(["curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                        sluice.url + "/link-outside"], capture_output=True, text=True,
                       timeout=20)
    assert p.stdout == "404"


def test_dot_segments_inside_root_are_resolved(sluice):
    r = sluice.get("/dir00000/../dir00000/./class0_2")
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class0_2", r.body)


def test_symlink_inside_root_served(sluice):
    r = sluice.get("/link-inside")
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class1_1", r.body)


def test_absolute_form_request_target(sluice):
    target = f"http://127.0.0.1:{sluice.port}/dir00000/class0_3"
    r = sluice.get(target)
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class0_3", r.body)


def test_query_string_ignored(sluice):
    r = sluice.get("/dir00000/class0_1?x=1&y=%2F..")
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class0_1", r.body)


def test_percent_encoded_utf8_name(sluice):
    path = "/" + helpers.UTF8_NAME
    r = sluice.get(urllib.parse.quote(path))
    assert r.status == 200
    check_body(sluice.root, path, r.body)
    conn = http.client.HTTPConnection(helpers.HOST, sluice.port, timeout=10)
    try:
        conn.request("GET", urllib.parse.quote(path))
        resp = conn.getresponse()
        assert resp.status == 200
        check_body(sluice.root, path, resp.read())
    finally:
        conn.close()


def test_dot_file_served(sluice):
    r = sluice.get("/.hidden")
    assert r.status == 200
    check_body(sluice.root, "/.hidden", r.body)


def test_unreadable_file_403(sluice):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop root from reading")
    r = sluice.get("/unreadable.txt")
    assert r.status == 403
    assert b"secret" not in r.body


# ------------------------------------------------------------------ errors


def test_unknown_method_501(sluice):
    r = exchange(sluice.port, request("BREW", "/one.bin"))
    assert r.status == 501


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_known_method_405_with_allow(sluice, method):
    r = exchange(sluice.port, request(method, "/one.bin", headers={"Content-Length": "0"}))
    assert r.status == 405
    allow = [m.strip() for m in r.header("Allow", "").split(",")]
    assert sorted(allow) == ["GET", "HEAD", "OPTIONS"]
    sluice.ensure_serving()


@pytest.mark.parametrize("target", ["*", "/one.bin"])
def test_options_204_with_allow(sluice, target):
    with RawConn(sluice.port) as c:
        c.send(request("OPTIONS", target) + request("GET", "/one.bin"))
        r = c.read_response("OPTIONS")
        assert r.status == 204
        allow = [m.strip() for m in r.header("Allow", "").split(",")]
        assert sorted(allow) == ["GET", "HEAD", "OPTIONS"]
        assert r.header("Content-Length", "0") == "0"
        g = c.read_response()  # the 204 had no body: the next response follows
        assert g.status == 200
        check_body(sluice.root, "/one.bin", g.body)


BIG_HEADERS = "".join(f"X-Filler-{i}: {'v' * 990}\r\n" for i in range(20))  # ~20 KiB
MANY_HEADERS = "".join(f"X-H{i}: {i}\r\n" for i in range(100))  # + Host = 101

# name -> (raw request, expected status)
CLOSING_ERRORS = {
    "http2": (b"GET /one.bin HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "http3": (b"GET /one.bin HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    "garbage-line": (b"HELLO\r\n\r\n", 400),
    "garbage-binary": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) +
                       b"\r\n\r\n", 400),
    "no-version": (b"GET /one.bin\r\nHost: x\r\n\r\n", 400),
    "lowercase-version": (b"GET /one.bin http/1.1\r\nHost: x\r\n\r\n", 400),
    "missing-host-11": (b"GET /one.bin HTTP/1.1\r\n\r\n", 400),
    "two-hosts": (b"GET /one.bin HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "request-line-9k": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "headers-20k": (("GET /one.bin HTTP/1.1\r\nHost: x\r\n" + BIG_HEADERS + "\r\n").encode(),
                    431),
    "101-headers": (("GET /one.bin HTTP/1.1\r\nHost: x\r\n" + MANY_HEADERS + "\r\n").encode(),
                    431),
    "cl-and-te": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te-and-cl": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 3\r\n\r\n0\r\n\r\n", 400),
    "two-content-lengths": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                            b"Content-Length: 4\r\n\r\nabcd", 400),
    "content-length-list": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n"
                            b"\r\nabcd", 400),
    "content-length-negative": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: -1"
                                b"\r\n\r\n", 400),
    "content-length-hex": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10"
                           b"\r\n\r\n", 400),
    "obs-fold": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n", 400),
    "bare-cr": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "bare-cr-request-line": (b"GET /one.bin\rX HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "nul-in-header": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "nul-in-target": (b"GET /one\x00.bin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "space-before-colon": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
    "no-colon": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nX-A b\r\n\r\n", 400),
    "encoded-slash": (b"GET /dir00000%2fclass0_1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "encoded-nul": (b"GET /one.bin%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad-escape": (b"GET /one%zz.bin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "relative-target": (b"GET one.bin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "transfer-encoding": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                          b"\r\n\r\n0\r\n\r\n", 501),
    "body-too-large": (b"GET /one.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000"
                       b"\r\n\r\n", 413),
    # RFC 9112 3.2: Host = uri-host [":" port], checked for structure
    "host-letter-in-port": (b"GET /one.bin HTTP/1.1\r\nHost: x:8o\r\n\r\n", 400),
    "host-two-ports": (b"GET /one.bin HTTP/1.1\r\nHost: x:80:80\r\n\r\n", 400),
    "host-open-bracket": (b"GET /one.bin HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    "host-no-name": (b"GET /one.bin HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    "host-bad-ipv6": (b"GET /one.bin HTTP/1.1\r\nHost: [1::2::3]:80\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", sorted(CLOSING_ERRORS))
def test_error_closes_and_server_survives(sluice, name):
    raw, status = CLOSING_ERRORS[name]
    r, closed = exchange(sluice.port, raw, wait_close=3)
    assert r.status == status, f"{name}: got {r.status} {r.reason}"
    assert r.header("Connection", "close").lower() == "close"
    assert closed, f"{name}: the connection stayed open after {status}"
    assert int(r.header("Content-Length")) == len(r.body)
    sluice.ensure_serving()


def test_exactly_max_headers_accepted(sluice):
    extra = "".join(f"X-H{i}: {i}\r\n" for i in range(99))  # + Host = 100
    r = exchange(sluice.port, ("GET /one.bin HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n").encode())
    assert r.status == 200
    check_body(sluice.root, "/one.bin", r.body)


@pytest.mark.parametrize("host", ["example.com", "example.com:8080", "x:", "192.0.2.1:80",
                                  "[::1]", "[::1]:8080", "[fe80::1%25eth0]:80", "[v1.x]",
                                  "a%41b"])
def test_well_formed_hosts_accepted(sluice, host):
    r = exchange(sluice.port, f"GET /one.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert r.status == 200, host
    check_body(sluice.root, "/one.bin", r.body)


def test_http10_without_host_is_fine(sluice):
    r = exchange(sluice.port, b"GET /one.bin HTTP/1.0\r\n\r\n")
    assert r.status == 200
    check_body(sluice.root, "/one.bin", r.body)


def test_bare_lf_line_ends_accepted(sluice):
    r = exchange(sluice.port, b"GET /1k.bin HTTP/1.1\nHost: x\n\n")
    assert r.status == 200
    check_body(sluice.root, "/1k.bin", r.body)


def test_error_then_server_still_serves_many(sluice):
    for raw, _ in CLOSING_ERRORS.values():
        with RawConn(sluice.port) as c:
            c.send(raw)
    with RawConn(sluice.port) as c:
        c.send(request("GET", "/dir00000/class2_1"))
        r = c.read_response()
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class2_1", r.body)


# ------------------------------------------------------------------ conditional requests


def test_if_none_match_304(sluice):
    etag = sluice.get("/dir00000/class1_3").header("ETag")
    with RawConn(sluice.port) as c:
        c.send(request("GET", "/dir00000/class1_3", headers={"If-None-Match": etag}) +
               request("GET", "/dir00000/class1_3", headers={"If-None-Match": '"x", ' + etag}) +
               request("GET", "/dir00000/class1_3", headers={"If-None-Match": '"other"'}) +
               request("GET", "/one.bin"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        r4 = c.read_response()
    assert r1.status == 304 and r1.body == b""
    assert r1.header("ETag") == etag
    assert r2.status == 304
    assert r3.status == 200
    check_body(sluice.root, "/dir00000/class1_3", r3.body)
    assert r4.status == 200  # nothing of a 304 body leaked into the stream
    check_body(sluice.root, "/one.bin", r4.body)


def test_if_modified_since_304(sluice):
    lm = sluice.get("/dir00000/class2_3").header("Last-Modified")
    old = email.utils.formatdate(0, usegmt=True)
    with RawConn(sluice.port) as c:
        c.send(request("GET", "/dir00000/class2_3", headers={"If-Modified-Since": lm}) +
               request("GET", "/dir00000/class2_3", headers={"If-Modified-Since": old}) +
               request("GET", "/one.bin"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert r1.status == 304 and r1.body == b""
    assert r1.header("Last-Modified") == lm
    assert r2.status == 200
    check_body(sluice.root, "/dir00000/class2_3", r2.body)
    assert r3.status == 200
    check_body(sluice.root, "/one.bin", r3.body)


def test_head_if_none_match_304(sluice):
    etag = sluice.get("/1k.bin").header("ETag")
    with RawConn(sluice.port) as c:
        c.send(request("HEAD", "/1k.bin", headers={"If-None-Match": etag}) +
               request("GET", "/one.bin"))
        assert c.read_response("HEAD").status == 304
        r = c.read_response()
    assert r.status == 200
    check_body(sluice.root, "/one.bin", r.body)


# ------------------------------------------------------------------ request bodies


def test_get_with_body_discarded_pipelined(sluice):
    with RawConn(sluice.port) as c:
        c.send(request("GET", "/one.bin", headers={"Content-Length": "5"}) + b"hello" +
               request("GET", "/dir00000/class0_4"))
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200
    check_body(sluice.root, "/one.bin", r1.body)
    assert r2.status == 200
    check_body(sluice.root, "/dir00000/class0_4", r2.body)


def test_get_with_body_arriving_later(sluice):
    body = b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n" * 100  # body, not a request
    with RawConn(sluice.port) as c:
        c.send(request("GET", "/1k.bin", headers={"Content-Length": str(len(body))}))
        r1 = c.read_response()
        time.sleep(0.2)
        c.send(body[:1000])
        time.sleep(0.1)
        c.send(body[1000:] + request("GET", "/dir00000/class1_9"))
        r2 = c.read_response()
    assert r1.status == 200
    check_body(sluice.root, "/1k.bin", r1.body)
    assert r2.status == 200, "the body was parsed as a request"
    check_body(sluice.root, "/dir00000/class1_9", r2.body)


# ------------------------------------------------------------------ timeouts


@pytest.fixture
def fast_timeouts(sluice_factory):
    return sluice_factory(timeouts_header="1s", timeouts_keepalive="1s")


def test_header_timeout_partial_request(fast_timeouts):
    with RawConn(fast_timeouts.port, timeout=8) as c:
        c.send(b"GET /one.bin HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        try:
            r = c.read_response()
        except (helpers.ConnectionClosed, ConnectionResetError):
            r = None
        elapsed = time.monotonic() - t0
    assert r is None or r.status == 408, r
    assert 0.8 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s, header timeout is 1s"


def test_header_timeout_not_reset_by_trickle(fast_timeouts):
    """A slow-loris client sending a byte every 250 ms is still cut off."""
    data = b"GET /one.bin HTTP/1.1\r\nX-Slow: " + b"a" * 100
    with RawConn(fast_timeouts.port, timeout=8) as c:
        t0 = time.monotonic()
        cut = None
        for byte in data:
            if time.monotonic() - t0 > 6:
                break
            try:
                c.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - t0
                break
            c.sock.settimeout(0.25)
            try:
                got = c.sock.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                got = b""
            cut = time.monotonic() - t0
            assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:100]
            break
    assert cut is not None, "the trickling client was never cut off"
    assert 0.8 <= cut <= 4.0, f"cut off after {cut:.2f}s, header timeout is 1s"


def test_silent_connection_closed(fast_timeouts):
    with RawConn(fast_timeouts.port, timeout=8) as c:
        t0 = time.monotonic()
        assert c.closed_within(5.0), "a connection that never sent a byte was kept open"
        elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 4.0, elapsed


def test_idle_keepalive_closed(fast_timeouts):
    with RawConn(fast_timeouts.port, timeout=8) as c:
        c.send(request("GET", "/one.bin"))
        r = c.read_response()
        assert r.status == 200
        t0 = time.monotonic()
        assert c.closed_within(5.0), "idle keep-alive connection was never closed"
        elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s, keepalive timeout is 1s"
    fast_timeouts.ensure_serving()


def test_active_keepalive_connection_outlives_timeout(fast_timeouts):
    """Requests every 0.4 s for 2.5 s on one connection: never idle for 1 s."""
    with RawConn(fast_timeouts.port, timeout=8) as c:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            c.send(request("GET", "/one.bin"))
            r = c.read_response()
            assert r.status == 200
            time.sleep(0.4)


# ------------------------------------------------------------------ more framing and limits


def test_deep_pipeline_beyond_input_buffer(sluice):
    """400 pipelined requests (~30 KiB, more than the 16 KiB input buffer) in
    one write: every one answered, in order."""
    paths = [FILESET[i % 9] for i in range(400)]  # class 0: small bodies
    with RawConn(sluice.port, timeout=20) as c:
        c.send(b"".join(request("GET", p) for p in paths))
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, (i, p, r.status)
            check_body(sluice.root, p, r.body)


def test_pipeline_error_after_good_requests(sluice):
    """Responses before a malformed request are all delivered, then its 400,
    then the connection closes; nothing after it is answered."""
    with RawConn(sluice.port) as c:
        c.send(request("GET", "/one.bin") + request("GET", "/dir00000/class0_7") +
               b"GET /x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n" + request("GET", "/1k.bin"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
        assert c.closed_within(3)
    assert r1.status == 200 and r2.status == 200
    check_body(sluice.root, "/one.bin", r1.body)
    check_body(sluice.root, "/dir00000/class0_7", r2.body)
    assert r3.status == 400


def test_large_discarded_body_then_next_request(sluice):
    body = os.urandom(300 * 1024)  # bigger than the input buffer, under max_body_discard
    with RawConn(sluice.port, timeout=20) as c:
        c.send(request("GET", "/dir00000/class1_1", headers={"Content-Length": str(len(body))}) +
               body + request("GET", "/dir00000/class1_2"))
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200 and r2.status == 200
    check_body(sluice.root, "/dir00000/class1_1", r1.body)
    check_body(sluice.root, "/dir00000/class1_2", r2.body)


def test_head_of_errors_has_no_body(sluice):
    with RawConn(sluice.port) as c:
        c.send(request("HEAD", "/nope") + request("HEAD", "/withindex") +
               request("HEAD", "/noindex/") + request("GET", "/one.bin"))
        statuses = [c.read_response("HEAD").status for _ in range(3)]
        r = c.read_response()
    assert statuses == [404, 301, 403]
    assert r.status == 200
    check_body(sluice.root, "/one.bin", r.body)


def test_methods_are_case_sensitive(sluice):
    r = exchange(sluice.port, request("get", "/one.bin"))
    assert r.status == 501


def test_range_is_ignored_or_exact(sluice):
    """No Range support is documented: the answer is the whole file (200) or,
    if ever supported, exactly the requested bytes (206)."""
    r = sluice.get("/1k.bin", headers={"Range": "bytes=10-19"})
    data = sluice.root.data("/1k.bin")
    if r.status == 206:
        assert r.body == data[10:20]
    else:
        assert r.status == 200
        check_body(sluice.root, "/1k.bin", r.body)


def test_encoded_dot_segments_inside_root(sluice):
    r = sluice.get("/dir00000/%2e%2e/dir00000/%2E/class0_6")
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class0_6", r.body)


def test_max_requests_per_connection(sluice_factory):
    server = sluice_factory(limits_max_requests_per_connection=3)
    with RawConn(server.port) as c:
        c.send(b"".join(request("GET", "/one.bin") for _ in range(5)))
        rs = [c.read_response() for _ in range(3)]
        assert c.closed_within(3), "the connection outlived max_requests_per_connection"
    assert [r.status for r in rs] == [200, 200, 200]
    assert [r.header("Connection").lower() for r in rs] == ["keep-alive", "keep-alive", "close"]
    server.ensure_serving()


def test_max_connections(sluice_factory):
    """[admission] on_full = close (the default) without close_idle: a
    connection past the limit is closed at once, the others are untouched.
    test_admission.py covers refuse, wait and close_idle."""
    server = sluice_factory(server_max_connections=4, admission_close_idle="no")
    time.sleep(0.5)  # the fixture's readiness probe held a slot until its close was seen
    held = [RawConn(server.port) for _ in range(4)]
    try:
        for c in held:  # all four are accepted and served
            c.send(request("GET", "/one.bin"))
            assert c.read_response().status == 200
        with RawConn(server.port) as extra:
            # It sends its request: with [server] defer_accept (the default)
            # the kernel hands sluice a connection only once it has one.
            extra.send(request("GET", "/one.bin"))
            assert extra.closed_within(3), "a fifth connection was kept over max_connections"
        held.pop().close()
        time.sleep(0.3)
        server.ensure_serving()
        for c in held:  # the others are untouched
            c.send(request("GET", "/1k.bin"))
            r = c.read_response()
            assert r.status == 200
            check_body(server.root, "/1k.bin", r.body)
    finally:
        for c in held:
            c.close()


def _accepted(server):
    """connections.accepted from `stats json`."""
    return helpers.stats_json(server.status_socket)["connections"]["accepted"]


@pytest.mark.parametrize("defer", ["yes", "no"])
def test_defer_accept(sluice_factory, defer):
    """[server] defer_accept = yes: the kernel hands sluice a connection only
    once its first bytes arrived, so a silent one is not accepted (it costs
    sluice nothing) while one that sends is served at once; = no: accepted at
    once."""
    server = sluice_factory(server_defer_accept=defer)
    time.sleep(0.5)  # the readiness probe's connection is counted and gone
    base = _accepted(server)
    with RawConn(server.port) as silent:
        time.sleep(0.5)
        assert _accepted(server) - base == (0 if defer == "yes" else 1)
        with RawConn(server.port) as talker:
            talker.send(request("GET", "/one.bin"))
            assert talker.read_response().status == 200
        assert _accepted(server) - base == (1 if defer == "yes" else 2)
        silent.send(request("GET", "/one.bin"))
        assert silent.read_response().status == 200
        assert _accepted(server) - base == 2


def test_send_timeout_disconnects_stalled_reader(sluice_factory):
    """A client that requests 5 MiB and reads nothing is disconnected after
    [timeouts] send (1 s) without progress."""
    server = sluice_factory(timeouts_send="1s")
    with RawConn(server.port, timeout=10, rcvbuf=4096) as c:
        c.send(request("GET", "/5m.bin"))
        time.sleep(3.0)
        got = 0
        closed = False
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            try:
                data = c.sock.recv(1 << 20)
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            got += len(data)
        assert closed, "a stalled client was not disconnected"
        assert got < (5 << 20), "the whole file was sent to a client that read nothing"
    server.ensure_serving()


def test_request_sent_byte_by_byte(sluice):
    data = request("GET", "/dir00000/class0_8")
    with RawConn(sluice.port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.003)
        r = c.read_response()
    assert r.status == 200
    check_body(sluice.root, "/dir00000/class0_8", r.body)


def test_redirect_location_is_percent_encoded(sluice):
    quoted = urllib.parse.quote("/" + helpers.SPACE_DIR)
    r = sluice.get(quoted)
    assert r.status == 301
    assert r.header("Location") == quoted + "/"
    r = sluice.get(r.header("Location"))
    assert r.status == 200 and r.body == helpers.INDEX_HTML


def test_symlinked_directory_inside_root(sluice):
    r = sluice.get("/linkdir-inside/")
    assert r.status == 200 and r.body == helpers.INDEX_HTML


def test_symlink_loop_404(sluice):
    assert sluice.get("/loop").status == 404
    sluice.ensure_serving()


@pytest.mark.parametrize("name", ["fifo", "unix.sock", "null-device"])
def test_not_a_regular_file_403(sluice, name):
    """README: only regular files are served; devices, FIFOs and sockets 403."""
    if not os.path.lexists(sluice.root.path / name):
        pytest.skip(f"could not create {name} here")
    r = sluice.get("/" + name)
    assert r.status == 403, f"/{name}: {r.status} {r.reason}"
    sluice.ensure_serving()


@pytest.mark.parametrize("split", [
    (b"GET /one.bin HTTP/1.1\r", b"\nHost: x\r\n\r\n"),
    (b"GET /one.bin HTTP/1.1\r\nHost: x\r", b"\n\r\n"),
    (b"GET /one.bin HTTP/1.1\r\nHost: x\r\n\r", b"\n"),
    (b"GET /one.bin HTTP/1.1\r\nHost: x\r\n", b"\r\n"),
], ids=["request-line", "header", "empty-line", "before-empty-line"])
def test_request_split_between_cr_and_lf(sluice, split):
    """TCP may deliver a CRLF in two segments; a CR that is the last byte
    received so far is not a bare CR."""
    with RawConn(sluice.port) as c:
        c.send(split[0])
        time.sleep(0.15)
        c.send(split[1])
        r = c.read_response()
    assert r.status == 200, f"{split[0]!r} | {split[1]!r}: {r.status} {r.reason}"
    check_body(sluice.root, "/one.bin", r.body)


def test_header_timeout_second_request_on_keepalive(fast_timeouts):
    """The header timeout also bounds a partial request after a complete one."""
    with RawConn(fast_timeouts.port, timeout=8) as c:
        c.send(request("GET", "/one.bin"))
        assert c.read_response().status == 200
        time.sleep(0.5)  # idle for a while, under the keep-alive timeout
        c.send(b"GET /1k.bin HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        try:
            r = c.read_response()
        except (helpers.ConnectionClosed, ConnectionResetError):
            r = None
        elapsed = time.monotonic() - t0
    assert r is None or r.status == 408, r
    assert 0.8 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s, header timeout is 1s"


def test_body_that_never_arrives_is_timed_out(fast_timeouts):
    with RawConn(fast_timeouts.port, timeout=8) as c:
        c.send(request("GET", "/one.bin", headers={"Content-Length": "100"}) + b"only ten!!")
        r = c.read_response()
        assert r.status == 200
        t0 = time.monotonic()
        assert c.closed_within(5.0), "a connection waiting for a body was kept forever"
        elapsed = time.monotonic() - t0
    assert elapsed <= 4.0, elapsed


@pytest.mark.parametrize("case", ["connection-close", "http10", "max-requests"])
def test_closing_response_survives_late_client_bytes(sluice, sluice_factory, case):
    """README: after a response that closes the connection, sluice shuts down
    its sending side and drains what the client still sends, so the client
    reads the whole response instead of a reset. Here the client sends more
    bytes (a pipelined request) while a 5 MiB closing response is in flight."""
    server = sluice
    if case == "max-requests":
        server = sluice_factory(limits_max_requests_per_connection=3)
    with RawConn(server.port, timeout=20, rcvbuf=65536) as c:
        if case == "connection-close":
            c.send(request("GET", "/5m.bin", close=True))
        elif case == "http10":
            c.send(request("GET", "/5m.bin", version="HTTP/1.0", host=None))
        else:
            c.send(request("GET", "/one.bin") + request("GET", "/one.bin"))
            c.read_response()
            c.read_response()
            c.send(request("GET", "/5m.bin"))  # the third: answered, then close
        time.sleep(0.2)  # the response is being sent now
        c.send(request("GET", "/one.bin"))  # a client that does not know yet
        time.sleep(0.3)
        try:
            r = c.read_response()
        except ConnectionResetError:
            pytest.fail("the closing response was destroyed by a reset: the connection was "
                        "closed with unread client bytes instead of being drained")
        assert r.status == 200
        assert r.header("Connection").lower() == "close"
        check_body(server.root, "/5m.bin", r.body)
        assert c.closed_within(3)
