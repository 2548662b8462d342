"""Precompressed siblings ([http] precompressed): the representation is chosen
before the preconditions, so If-None-Match, If-Match, If-Modified-Since,
If-Unmodified-Since and If-Range are evaluated against the .gz/.br bytes that
are sent, and a 304 carries the ETag and Vary a 200 would have had. Every
answer is the same whether readers send responses inline or not."""
import gzip
import os
import subprocess

import pytest

import helpers

PLAIN = b"console.log('plain text that compresses well');\n" * 400
GZ = gzip.compress(PLAIN, mtime=0)
BR = b"BR-bytes" * 9
OLD = 1_000_000_000   # plain file's mtime (2001)
NEW = 1_500_000_000   # the siblings' mtime (2017): built later
IMF_OLD = "Sun, 09 Sep 2001 01:46:40 GMT"   # == OLD


def _root(fresh_root):
    p = fresh_root.path
    (p / "app.js").write_bytes(PLAIN)
    (p / "app.js.gz").write_bytes(GZ)
    (p / "app.js.br").write_bytes(BR)
    (p / "only.txt").write_bytes(b"no sibling\n")
    os.utime(p / "app.js", (OLD, OLD))
    os.utime(p / "app.js.gz", (NEW, NEW))
    os.utime(p / "app.js.br", (NEW, NEW))
    return fresh_root


def get(server, path, headers=None, method="GET"):
    with helpers.RawConn(server.port) as c:
        c.send(helpers.request(method, path, headers=headers, close=True))
        return c.read_response(method=method)


def _etags(server):
    plain = get(server, "/app.js", method="HEAD")
    gz = get(server, "/app.js", {"Accept-Encoding": "gzip"}, method="HEAD")
    br = get(server, "/app.js", {"Accept-Encoding": "br"}, method="HEAD")
    assert plain.header("Content-Encoding") is None
    assert gz.header("Content-Encoding") == "gzip"
    assert br.header("Content-Encoding") == "br"
    tags = plain.header("ETag"), gz.header("ETag"), br.header("ETag")
    assert len(set(tags)) == 3, tags
    return tags


@pytest.fixture(params=["inline", "pipeline"])
def server(request, sluice_factory, fresh_root):
    conf = {"http_precompressed": True}
    if request.param == "pipeline":
        conf["reader_inline_max"] = 0
    return sluice_factory(root=_root(fresh_root), **conf)


def test_revalidating_compressed_gets_304_with_vary(server):
    _, gz_tag, br_tag = _etags(server)
    for method in ("GET", "HEAD"):
        r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-None-Match": gz_tag},
                method=method)
        assert r.status == 304, (method, r)
        assert r.header("ETag") == gz_tag
        assert r.header("Vary") == "Accept-Encoding"
        assert r.header("Content-Length") is None and r.body == b""
        r = get(server, "/app.js", {"Accept-Encoding": "br, gzip", "If-None-Match": br_tag},
                method=method)
        assert r.status == 304 and r.header("ETag") == br_tag, (method, r)
    # weak comparison, in a list
    r = get(server, "/app.js", {"Accept-Encoding": "gzip",
                                "If-None-Match": f'"x", W/{gz_tag}'})
    assert r.status == 304 and r.header("Vary") == "Accept-Encoding"
    # the sibling's own Last-Modified revalidates it too
    r = get(server, "/app.js", {"Accept-Encoding": "gzip"})
    lm = r.header("Last-Modified")
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-Modified-Since": lm})
    assert r.status == 304 and r.header("ETag") == gz_tag
    assert r.header("Vary") == "Accept-Encoding"


def test_plain_304_also_carries_vary(server):
    plain_tag, _, _ = _etags(server)
    r = get(server, "/app.js", {"If-None-Match": plain_tag})
    assert r.status == 304 and r.header("ETag") == plain_tag
    assert r.header("Vary") == "Accept-Encoding"
    r = get(server, "/only.txt", method="HEAD")
    r = get(server, "/only.txt", {"Accept-Encoding": "gzip",
                                  "If-None-Match": r.header("ETag")})
    assert r.status == 304 and r.header("Vary") == "Accept-Encoding"


def test_other_representations_tag_does_not_match(server):
    plain_tag, gz_tag, _ = _etags(server)
    # the plain file's ETag does not validate the gzip bytes: 200 gzip
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-None-Match": plain_tag})
    assert r.status == 200 and r.header("Content-Encoding") == "gzip"
    assert r.body == GZ and r.header("ETag") == gz_tag
    # nor the gzip ETag the plain file
    r = get(server, "/app.js", {"If-None-Match": gz_tag})
    assert r.status == 200 and r.header("Content-Encoding") is None and r.body == PLAIN
    # the plain file's Last-Modified is older than the sibling: 200 gzip
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-Modified-Since": IMF_OLD})
    assert r.status == 200 and r.body == GZ


def test_if_match_uses_the_compressed_tag(server):
    plain_tag, gz_tag, _ = _etags(server)
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-Match": gz_tag})
    assert r.status == 200 and r.header("Content-Encoding") == "gzip" and r.body == GZ
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-Match": plain_tag})
    assert r.status == 412
    assert r.header("Vary") == "Accept-Encoding"
    r = get(server, "/app.js", {"If-Match": plain_tag})
    assert r.status == 200 and r.body == PLAIN
    # If-Unmodified-Since the plain file's date: the sibling is newer
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "If-Unmodified-Since": IMF_OLD})
    assert r.status == 412
    r = get(server, "/app.js", {"If-Unmodified-Since": IMF_OLD})
    assert r.status == 200 and r.body == PLAIN


def test_range_and_if_range_on_compressed(server):
    plain_tag, gz_tag, _ = _etags(server)
    n = len(GZ)
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert r.status == 206, r
    assert r.header("Content-Encoding") == "gzip"
    assert r.header("Content-Range") == f"bytes 0-9/{n}"
    assert r.header("ETag") == gz_tag and r.header("Vary") == "Accept-Encoding"
    assert r.body == GZ[:10]
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=-5",
                                "If-Range": gz_tag})
    assert r.status == 206 and r.body == GZ[-5:]
    # If-Range with the other representation's tag: the whole gzip body
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-9",
                                "If-Range": plain_tag})
    assert r.status == 200 and r.body == GZ and r.header("Content-Encoding") == "gzip"
    # a date If-Range compares with the sibling's Last-Modified
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-9",
                                "If-Range": IMF_OLD})
    assert r.status == 200 and r.body == GZ
    # several ranges: multipart over the gzip bytes
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": "bytes=0-1,4-5"})
    assert r.status == 206 and r.header("Content-Encoding") == "gzip"
    assert r.header("Content-Type").startswith("multipart/byteranges")
    assert GZ[0:2] in r.body and f"bytes 4-5/{n}".encode() in r.body
    # beyond the gzip length (but inside the plain one): 416 with its length
    r = get(server, "/app.js", {"Accept-Encoding": "gzip", "Range": f"bytes={n + 10}-"})
    assert r.status == 416 and r.header("Content-Range") == f"bytes */{n}"
    # HEAD of a compressed representation
    r = get(server, "/app.js", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert r.status == 200 and int(r.header("Content-Length")) == n
    assert r.header("ETag") == gz_tag and r.header("Vary") == "Accept-Encoding"


def test_curl_revalidates_compressed(server):
    _, gz_tag, _ = _etags(server)
    p = subprocess.run(["curl", "-s", "--max-time", "20", "-D", "-", "-o", "/dev/null",
                        "-H", "Accept-Encoding: gzip", "-H", f"If-None-Match: {gz_tag}",
                        f"{server.url}/app.js"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    head = p.stdout.lower()
    assert head.startswith("http/1.1 304"), p.stdout
    assert "vary: accept-encoding" in head and f"etag: {gz_tag}".lower() in head
    # and curl's own decoding of the gzip 200 gives the plain text back
    p = subprocess.run(["curl", "-s", "--max-time", "20", "--compressed",
                        "-H", "Accept-Encoding: gzip",
                        f"{server.url}/app.js"], capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stdout == PLAIN


def _answers(server):
    """A fixed set of requests; each answer without its Date."""
    plain_tag, gz_tag, _ = _etags(server)
    cases = [
        ("GET", {"Accept-Encoding": "gzip", "If-None-Match": gz_tag}),
        ("HEAD", {"Accept-Encoding": "gzip", "If-None-Match": gz_tag}),
        ("GET", {"Accept-Encoding": "gzip", "If-None-Match": plain_tag}),
        ("GET", {"Accept-Encoding": "gzip", "If-Match": gz_tag}),
        ("GET", {"Accept-Encoding": "gzip", "If-Match": plain_tag}),
        ("GET", {"Accept-Encoding": "gzip", "Range": "bytes=3-20", "If-Range": gz_tag}),
        ("GET", {"Accept-Encoding": "gzip", "Range": "bytes=3-20", "If-Range": plain_tag}),
        ("HEAD", {"Accept-Encoding": "br"}),
        ("GET", {"If-None-Match": plain_tag}),
        ("GET", {}),
    ]
    out = []
    for method, headers in cases:
        r = get(server, "/app.js", headers, method=method)
        out.append((method, sorted(headers.items()), r.status,
                    [(n, v) for n, v in r.headers_list if n.lower() != "date"], r.body))
    return out


def test_inline_and_pipeline_answer_alike(sluice_factory, fresh_root):
    root = _root(fresh_root)
    a = sluice_factory(root=root, http_precompressed=True)
    b = sluice_factory(root=root, http_precompressed=True, reader_inline_max=0)
    assert _answers(a) == _answers(b)
