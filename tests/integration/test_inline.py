"""Inline send ([reader] inline_max) against the real daemon over loopback.

A reader sends a prepared response itself, instead of handing it to the
writer pool, when sending cannot wait for the disk: responses without a file
body (errors, redirects, 304, HEAD), bodies the cache holds in memory (files
up to [cache] small_file_max, 128k by default, while they fit in [cache]
body_memory), and files of at most
inline_max bytes (1m by default) that are wholly in the page cache, which
the cache asks the kernel with cachestat(2) (Linux 6.5; without it such files
always go to the writers). inline_max = 0 and [writer] optimistic = no turn it
off; it is reloadable live. After 16 pipelined responses in a row on one
connection the reader requeues the connection.

Who sent a response is read from `stats json`: requests.inline counts the
responses a reader sent whole itself, the writer stage's `processed` those a
writer finished, and every response is counted once in one of the two. A
response is counted just after it is sent, so every check first waits until
requests.total has caught up with the client, then asserts exact deltas.

Run: SLUICE_BUILD=build /usr/bin/python3 -m pytest -q tests/integration/test_inline.py
"""

import ctypes
import errno
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

import helpers
from helpers import RawConn, request, sha256

KIB = 1024
SMALL_FILE_MAX = 128 * KIB  # [cache] small_file_max default
INLINE_MAX = 1024 * KIB    # [reader] inline_max default (1m)
PAGE = os.sysconf("SC_PAGESIZE")

# In-memory files of the shared test root (<= small_file_max, not empty).
SMALL = ["/1k.bin", "/one.bin", "/page.html", "/style.css", "/dir00000/class0_1",
         "/dir00000/class0_5", "/dir00000/class0_9", "/dir00000/class1_4",
         "/dir00000/class1_9"]
TINY = [f"/dir00000/class0_{k}" for k in range(1, 10)] + ["/page.html", "/one.bin"]
BIG = "/5m.bin"  # 5 MiB > inline_max (1m): always a writer's
BIG_SIZE = helpers.EXTRA_FILES[BIG.lstrip("/")]
assert BIG_SIZE > INLINE_MAX, "BIG must be larger than the default inline_max"


# --------------------------------------------------------------- cachestat(2)

_libc = ctypes.CDLL(None, use_errno=True)
NR_CACHESTAT = 451  # the same on every architecture


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [("nr_cache", ctypes.c_uint64), ("nr_dirty", ctypes.c_uint64),
                ("nr_writeback", ctypes.c_uint64), ("nr_evicted", ctypes.c_uint64),
                ("nr_recently_evicted", ctypes.c_uint64)]


def cached_pages(path):
    """Pages of the file at PATH in the page cache (cachestat(2)); raises
    OSError (ENOSYS on kernels before 6.5, EPERM under some seccomp filters)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        rng = _Range(0, os.fstat(fd).st_size)
        res = _Stat()
        rc = _libc.syscall(ctypes.c_long(NR_CACHESTAT), ctypes.c_int(fd), ctypes.byref(rng),
                           ctypes.byref(res), ctypes.c_uint(0))
        if rc != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return res.nr_cache
    finally:
        os.close(fd)


def pages(size):
    return (size + PAGE - 1) // PAGE


def _probe_cachestat():
    """None if cachestat(2) works here, else the errno name it fails with."""
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"x")
        f.flush()
        try:
            cached_pages(f.name)
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))
    return None


CACHESTAT_ERROR = _probe_cachestat()
HAVE_CACHESTAT = CACHESTAT_ERROR is None


def evict(path):
    """Drops the (clean) pages of the file at PATH from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def flush_deferred_skb_frees():
    """A socket buffer that held pages sent with sendfile is freed on the CPU
    that allocated it, deferred until that CPU next handles network receive
    work; on an idle machine that can take arbitrarily long, and until then
    the pages cannot be evicted. A short loopback exchange on every CPU runs
    that work."""
    old = os.sched_getaffinity(0)
    try:
        for cpu in sorted(old):
            os.sched_setaffinity(0, {cpu})
            with socket.create_server(("127.0.0.1", 0)) as lsn:
                a = socket.create_connection(lsn.getsockname(), timeout=5)
                b, _ = lsn.accept()
                with a, b:
                    b.settimeout(5)
                    for _ in range(8):
                        a.sendall(b"x" * 64)
                        b.recv(64)
                        b.sendall(b"y" * 64)
                        a.recv(64)
    finally:
        os.sched_setaffinity(0, old)


def evict_fully(path, timeout=5.0):
    """Evicts the file at PATH until cachestat says it is no longer wholly in
    the page cache (what sluice asks). Pages a socket buffer still holds
    cannot be dropped: this flushes deferred socket buffer frees between
    tries. Any page gone is enough (on this 6.18 kernel the 8 pages of one
    large folio sometimes stay)."""
    want = pages(os.path.getsize(path))

    def gone():
        evict(path)
        if cached_pages(path) < want:
            return True
        flush_deferred_skb_frees()
        evict(path)
        return cached_pages(path) < want

    helpers.wait_until(gone, timeout=timeout, step=0.02,
                       what=f"{path} evicted from the page cache")


def write_synced(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def make_resident(path):
    """Reads the file at PATH so that the page cache holds all of it, and
    checks that it does (where cachestat tells)."""
    data = Path(path).read_bytes()
    if HAVE_CACHESTAT:
        assert cached_pages(path) == pages(len(data)), f"{path} not wholly in the page cache"
    return data


def blob(tag, size):
    return hashlib.shake_128(tag.encode()).digest(size)


# --------------------------------------------------------------- counters


def stats(server):
    return helpers.stats_json(server.status_socket)


def writer_stage(st):
    w = [s for s in st["stages"] if s["name"] == "writer"]
    assert len(w) == 1, [s["name"] for s in st["stages"]]
    return w[0]


def reader_stage(st):
    r = [s for s in st["stages"] if s["name"] == "reader"]
    assert len(r) == 1, [s["name"] for s in st["stages"]]
    return r[0]


class Counts:
    """requests.total, requests.inline and the writers' processed of a
    stats sample."""

    def __init__(self, st):
        self.st = st
        self.total = st["requests"]["total"]
        self.inline = st["requests"]["inline"]
        self.writer = writer_stage(st)["processed"]
        self.reader_enqueued = reader_stage(st)["queue"]["enqueued"]

    def __sub__(self, base):
        return {"total": self.total - base.total, "inline": self.inline - base.inline,
                "writer": self.writer - base.writer}


def snapshot(server):
    return Counts(stats(server))


def counted(server, base, n, timeout=10):
    """The counter deltas since BASE once N responses are counted, asserting
    exactly N, and that each was counted once: inline or by a writer."""
    helpers.wait_until(lambda: snapshot(server).total - base.total >= n, timeout=timeout,
                       what=f"{n} responses counted")
    time.sleep(0.05)  # a response too many would show now
    now = snapshot(server)
    d = now - base
    assert d["total"] == n, f"expected {n} responses counted, got {d}"
    assert d["inline"] + d["writer"] == n, (
        f"every response is counted once, inline or by a writer: {d}")
    return d, now


def quiet(server):
    """Counters once the start-up probe connections are gone (they send
    nothing and get no response)."""
    helpers.wait_until(lambda: stats(server)["connections"]["current"] == 0, timeout=10,
                       what="start-up probes closed")
    return snapshot(server)


# --------------------------------------------------------------- clients


def check_body(root, path, body):
    size, digest = root.files[path]
    assert len(body) == size, f"{path}: {len(body)} bytes, expected {size}"
    assert sha256(body) == digest, f"{path}: body differs from the file"


def get_all(conn, paths, root):
    """GETs PATHS one after another on the keep-alive CONN; checks bodies."""
    for p in paths:
        conn.send(request("GET", p))
        r = conn.read_response()
        assert r.status == 200, f"GET {p}: {r.status} {r.reason}"
        check_body(root, p, r.body)


def get_data(conn, path, data):
    conn.send(request("GET", path))
    r = conn.read_response()
    assert r.status == 200, f"GET {path}: {r.status} {r.reason}"
    assert len(r.body) == len(data), f"GET {path}: {len(r.body)} bytes, expected {len(data)}"
    assert sha256(r.body) == sha256(data), f"GET {path}: body differs from the file"
    return r


def reload(server, section, key, value, step=0.02):
    gen = stats(server)["generation"]
    server.conf.setdefault(section, {})[key] = value
    server.write_conf()
    os.kill(server.pid, signal.SIGHUP)
    helpers.wait_until(lambda: stats(server)["generation"] == gen + 1, timeout=10,
                       step=step, what="the reload")
    st = stats(server)
    assert st["failed_reloads"] == 0, st.get("last_reload")


# --------------------------------------------------------------- in-memory bodies


def test_small_files_are_sent_inline(sluice_factory, test_root):
    server = sluice_factory(name="small")
    base = quiet(server)
    paths = SMALL * 3  # misses first, then cache hits
    assert all(0 < test_root.files[p][0] <= SMALL_FILE_MAX for p in paths)
    with RawConn(server.port) as c:
        get_all(c, paths, test_root)
    d, _ = counted(server, base, len(paths))
    assert d == {"total": len(paths), "inline": len(paths), "writer": 0}, d


def test_heads_errors_and_redirects_are_sent_inline(sluice_factory, test_root):
    """No file body at all (and HEAD of a file of any size): inline."""
    server = sluice_factory(name="heads")
    base = quiet(server)
    etag = server.get(BIG).header("ETag")
    reqs = [
        ("HEAD", BIG, None, 200),
        ("HEAD", "/dir00000/class3_9", None, 200),
        ("GET", "/no-such-file", None, 404),
        ("GET", BIG, {"If-None-Match": etag}, 304),
        ("GET", "/withindex", None, 301),
        ("GET", "/noindex/", None, 403),
        ("GET", "/empty.bin", None, 200),
        ("GET", BIG, {"Range": "bytes=6000000-"}, 416),  # starts past the 5 MiB
        ("OPTIONS", "*", None, 204),
        ("DELETE", "/1k.bin", None, 405),
    ]
    with RawConn(server.port) as c:
        for method, path, headers, want in reqs:
            c.send(request(method, path, headers=headers))
            r = c.read_response(method)
            assert r.status == want, f"{method} {path}: {r.status}, expected {want}"
    d, _ = counted(server, base, 1 + len(reqs))
    # The first GET of the 5 MiB file (> inline_max) was a writer's.
    assert d == {"total": 1 + len(reqs), "inline": len(reqs), "writer": 1}, d


# --------------------------------------------------------------- off: identical bytes


DATE = re.compile(rb"\r\nDate: [^\r\n]*")
BOUNDARY = re.compile(rb"sluice[0-9a-f]{16}")


def normalized(r):
    """Head without its Date line, and body; multipart boundaries (made of
    the time) replaced by a fixed string of the same length."""
    head, n = DATE.subn(b"", r.head)
    assert n == 1, f"expected one Date header in {r.head!r}"
    return BOUNDARY.sub(b"sluice" + b"B" * 16, head), BOUNDARY.sub(b"sluice" + b"B" * 16, r.body)


def comparison_requests(etag_small, etag_big):
    return [
        ("GET", "/1k.bin", None),
        ("GET", "/dir00000/class0_3", None),
        ("GET", BIG, None),
        ("GET", "/dir00000/class2_5", None),  # 50 KiB, page cache
        ("GET", "/no-such-file", None),
        ("GET", "/1k.bin", {"If-None-Match": etag_small}),
        ("GET", BIG, {"If-None-Match": etag_big}),
        ("HEAD", "/1k.bin", None),
        ("HEAD", BIG, None),
        ("GET", "/1k.bin", {"Range": "bytes=10-99"}),
        ("GET", BIG, {"Range": "bytes=1000-2999"}),
        ("GET", BIG, {"Range": "bytes=-500"}),
        ("GET", "/1k.bin", {"Range": "bytes=0-9,100-199,1000-"}),
        ("GET", BIG, {"Range": "bytes=0-99,2500000-2500099,5242000-"}),
        ("GET", "/1k.bin", {"Range": "bytes=5000-6000"}),
        ("GET", "/withindex", None),
        ("OPTIONS", "*", None),
    ]


def run_requests(server, reqs):
    out = []
    with RawConn(server.port, timeout=20) as c:
        for method, path, headers in reqs:
            c.send(request(method, path, headers=headers))
            out.append(c.read_response(method))
        c.send(request("GET", "/1k.bin", close=True))
        out.append(c.read_response())
        assert c.closed_within(5), "Connection: close left the connection open"
    return out


def test_inline_off_gives_identical_bytes_through_the_writers(sluice_factory, test_root):
    on = sluice_factory(name="on")
    off = sluice_factory(name="off", reader_inline_max="0")
    base_on, base_off = quiet(on), quiet(off)
    etag_small = on.get("/1k.bin").header("ETag")
    etag_big = on.get(BIG).header("ETag")
    assert etag_small and etag_big
    _, base_on = counted(on, base_on, 2)
    reqs = comparison_requests(etag_small, etag_big)
    # The 50 KiB file goes inline only while wholly in the page cache; the
    # machine may have reclaimed it since the root was made (DAMON reclaim
    # runs on the development VM): read it back in just before.
    make_resident(test_root.path / "dir00000" / "class2_5")
    got_on = run_requests(on, reqs)
    got_off = run_requests(off, reqs)
    want_status = [200, 200, 200, 200, 404, 304, 304, 200, 200, 206, 206, 206, 206, 206, 416,
                   301, 204, 200]
    assert [r.status for r in got_on] == want_status
    labels = [f"{m} {p} {h or ''}" for m, p, h in reqs] + ["GET /1k.bin (close)"]
    for label, a, b in zip(labels, got_on, got_off):
        assert normalized(a) == normalized(b), (
            f"{label}: inline and writer responses differ:\n{a.head!r}\n{b.head!r}")
    check_body(test_root, "/1k.bin", got_on[0].body)
    check_body(test_root, BIG, got_on[2].body)
    check_body(test_root, "/dir00000/class2_5", got_on[3].body)
    assert got_on[9].body == test_root.data("/1k.bin")[10:100]
    assert got_on[10].body == test_root.data(BIG)[1000:3000]
    assert got_on[11].body == test_root.data(BIG)[-500:]
    big = test_root.data(BIG)
    assert len(big) == BIG_SIZE == 5242880
    assert len(got_on[13].body) > 300 and big[2500000:2500100] in got_on[13].body
    assert big[:100] in got_on[13].body and big[5242000:] in got_on[13].body

    n = len(reqs) + 1
    d, _ = counted(off, base_off, n)
    assert d == {"total": n, "inline": 0, "writer": n}, d
    # On the default server only file bodies of the 5 MiB file (> inline_max)
    # went to a writer (GET, two single ranges, one multipart), and the 50 KiB
    # file where cachestat cannot tell that it is in the page cache.
    big_bodies = 4 if HAVE_CACHESTAT else 5
    d, _ = counted(on, base_on, n)
    assert d == {"total": n, "inline": n - big_bodies, "writer": big_bodies}, d


# --------------------------------------------------------------- page cache


def test_default_inline_max_is_one_mebibyte(sluice_factory, tmp_path):
    """With the shipped default (1m): a page-cached file of exactly 1 MiB is
    sent inline, one byte more goes to a writer. The test asks for 100 bytes
    of each (the decision is by file size), so a full socket cannot send
    either response on by way of the detector."""
    root = tmp_path / "www"
    root.mkdir()
    files = {"at.bin": blob("at1m", INLINE_MAX), "over.bin": blob("over1m", INLINE_MAX + 1)}
    for name, data in files.items():
        (root / name).write_bytes(data)
        make_resident(root / name)
    server = sluice_factory(root=root, name="default1m")
    base = quiet(server)
    with RawConn(server.port) as c:
        for name, want in (("over.bin", {"total": 1, "inline": 0, "writer": 1}),
                           ("at.bin", {"total": 1, "inline": 1, "writer": 0}
                            if HAVE_CACHESTAT else {"total": 1, "inline": 0, "writer": 1})):
            c.send(request("GET", "/" + name, headers={"Range": "bytes=1000-1099"}))
            r = c.read_response()
            assert r.status == 206 and r.body == files[name][1000:1100], (name, r.status)
            d, base = counted(server, base, 1)
            assert d == want, f"{name} ({len(files[name])} bytes): {d}"


def test_file_over_inline_max_goes_to_a_writer(sluice_factory, tmp_path):
    limit = 64 * KIB
    root = tmp_path / "www"
    root.mkdir()
    files = {"at-limit.bin": blob("at", limit), "over-limit.bin": blob("over", limit + 1),
             "big.bin": blob("big", 200 * KIB)}
    for name, data in files.items():
        (root / name).write_bytes(data)
        make_resident(root / name)
    server = sluice_factory(root=root, name="limit", reader_inline_max="64k")
    base = quiet(server)
    with RawConn(server.port) as c:
        get_data(c, "/big.bin", files["big.bin"])
        d, base = counted(server, base, 1)
        assert d == {"total": 1, "inline": 0, "writer": 1}, f"200 KiB file: {d}"
        get_data(c, "/over-limit.bin", files["over-limit.bin"])
        d, base = counted(server, base, 1)
        assert d == {"total": 1, "inline": 0, "writer": 1}, f"inline_max + 1 bytes: {d}"
        get_data(c, "/at-limit.bin", files["at-limit.bin"])
        d, base = counted(server, base, 1)
        if HAVE_CACHESTAT:
            assert d == {"total": 1, "inline": 1, "writer": 0}, (
                f"a file of exactly inline_max bytes in the page cache: {d}")
        else:
            assert d == {"total": 1, "inline": 0, "writer": 1}, (
                f"without cachestat ({CACHESTAT_ERROR}) a file not held in memory: {d}")
        # Served again (cache hits): the same decisions.
        get_data(c, "/big.bin", files["big.bin"])
        get_data(c, "/at-limit.bin", files["at-limit.bin"])
        d, _ = counted(server, base, 2)
        assert d["writer"] == (1 if HAVE_CACHESTAT else 2), d


def _evicting_candidates(tmp_path):
    yield tmp_path
    for parent in ("/var/tmp", str(helpers.BUILD)):
        if os.path.isdir(parent) and os.access(parent, os.W_OK):
            yield Path(tempfile.mkdtemp(prefix="sluice-inline-", dir=parent))


@pytest.fixture
def evicting_root(tmp_path):
    """A document root on a file system whose page cache pages can be
    dropped with POSIX_FADV_DONTNEED (tmpfs keeps them): the test's own tmp
    dir, else /var/tmp, else the build tree. Removed afterwards."""
    if not HAVE_CACHESTAT:
        pytest.skip(f"cachestat(2) unavailable ({CACHESTAT_ERROR})")
    made = []
    try:
        for cand in _evicting_candidates(tmp_path):
            if cand != tmp_path:
                made.append(cand)
            probe = cand / "evict-probe.bin"
            write_synced(probe, blob("probe", 100 * KIB))
            evict(probe)
            left = cached_pages(probe)
            probe.unlink()
            if left == 0:
                root = cand / "pc-www"
                root.mkdir()
                yield root
                return
        pytest.skip("no writable file system here drops page cache pages on "
                    "POSIX_FADV_DONTNEED (tmpfs?): cannot make a file non-resident")
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


def test_file_in_page_cache_goes_inline_only_once_resident(sluice_factory, evicting_root):
    size = 200 * KIB
    assert SMALL_FILE_MAX < size < INLINE_MAX
    path = evicting_root / "f200k.bin"
    data = blob("f200k", size)
    server = sluice_factory(root=evicting_root, name="pagecache", cache_validity="60s")
    base = quiet(server)
    write_synced(path, data)
    evict_fully(path)
    with RawConn(server.port) as c:
        get_data(c, "/f200k.bin", data)
        d, base = counted(server, base, 1)
        assert d == {"total": 1, "inline": 0, "writer": 1}, (
            f"a file not in the page cache must go to a writer: {d}")
        assert cached_pages(path) == pages(size), "the writer's read did not cache the file"
        get_data(c, "/f200k.bin", data)
        d, base = counted(server, base, 1)
        assert d == {"total": 1, "inline": 1, "writer": 0}, (
            f"a file wholly in the page cache must go inline: {d}")
        # The yes is remembered for the validity period (60 s): evicted again,
        # the file still goes inline, and is read from disk by the reader.
        evict_fully(path)
        get_data(c, "/f200k.bin", data)
        d, _ = counted(server, base, 1)
        assert d == {"total": 1, "inline": 1, "writer": 0}, (
            f"a remembered yes within the validity period: {d}")


def test_no_answer_is_asked_again(sluice_factory, evicting_root):
    """A no is not remembered: evicted, served by a writer, served by a
    writer again after another eviction, then inline once resident."""
    size = 240 * KIB
    assert SMALL_FILE_MAX < size <= INLINE_MAX
    path = evicting_root / "f240k.bin"
    data = blob("f240k", size)
    server = sluice_factory(root=evicting_root, name="askagain", cache_validity="60s")
    base = quiet(server)
    write_synced(path, data)
    with RawConn(server.port) as c:
        for i in range(2):
            evict_fully(path)
            get_data(c, "/f240k.bin", data)
            d, base = counted(server, base, 1)
            assert d == {"total": 1, "inline": 0, "writer": 1}, f"evicted, round {i}: {d}"
        get_data(c, "/f240k.bin", data)
        d, _ = counted(server, base, 1)
        assert d == {"total": 1, "inline": 1, "writer": 0}, f"resident now: {d}"


@pytest.mark.skipif(HAVE_CACHESTAT, reason="cachestat(2) works on this kernel "
                    "(covered by the page cache tests)")
def test_without_cachestat_files_not_in_memory_go_to_writers(sluice_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    data = blob("nocs", 100 * KIB)
    (root / "f.bin").write_bytes(data)
    (root / "f.bin").read_bytes()  # in the page cache, but nobody can tell
    server = sluice_factory(root=root, name="nocs", cache_validity="60s")
    base = quiet(server)
    with RawConn(server.port) as c:
        for _ in range(3):
            get_data(c, "/f.bin", data)
    d, _ = counted(server, base, 3)
    assert d == {"total": 3, "inline": 0, "writer": 3}, d


# --------------------------------------------------------------- pipelining


def test_forty_pipelined_small_requests_in_order(sluice_factory, test_root):
    server = sluice_factory(name="pipe40", reader_threads=1)
    base = quiet(server)
    paths = [TINY[i % len(TINY)] for i in range(40)]
    with RawConn(server.port, rcvbuf=1 << 20) as c:
        get_all(c, ["/one.bin"], test_root)  # the connection now waits in epoll
        d, base = counted(server, base, 1)
        c.send(b"".join(request("GET", p) for p in paths))  # one segment
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, f"response {i} ({p}): {r.status}"
            check_body(test_root, p, r.body)
        c.sock.settimeout(0.3)
        try:
            extra = c.sock.recv(100)
        except OSError:
            extra = b""
        assert extra == b"", f"bytes after the 40th response: {extra!r}"
    d, now = counted(server, base, 40)
    assert d == {"total": 40, "inline": 40, "writer": 0}, d
    # 16 in a row, then the connection goes to the back of the reader's
    # queue: twice for 40 requests read at once (16 + 16 + 8).
    assert now.reader_enqueued - base.reader_enqueued == 2, (
        f"reader queue enqueued {now.reader_enqueued - base.reader_enqueued} times")


def test_pipelined_burst_larger_than_the_read_buffer(sluice_factory, test_root):
    """500 pipelined GETs (more than the 16 KiB a read takes at once), sent
    as one burst on a kept-alive connection that already waits in the epoll
    set: the reader must keep reading what a full read left in the socket
    (an edge-triggered registration reports no second edge for it)."""
    server = sluice_factory(name="pipe500", reader_threads=1)
    base = quiet(server)
    paths = [TINY[i % len(TINY)] for i in range(500)]
    burst = b"".join(request("GET", p) for p in paths)
    assert len(burst) > 16 * KIB
    with RawConn(server.port, rcvbuf=1 << 20, timeout=30) as c:
        get_all(c, ["/one.bin"], test_root)  # waiting in epoll, socket drained
        c.send(burst)
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, f"response {i} ({p}): {r.status}"
            check_body(test_root, p, r.body)
        # Still usable afterwards, one request at a time.
        get_all(c, ["/one.bin", TINY[0]], test_root)
    d, _ = counted(server, base, 503)
    assert d["total"] == 503 and d["inline"] + d["writer"] == 503, d


def test_pipelined_requests_ending_exactly_at_a_full_read(sluice_factory, test_root):
    """Requests padded to exactly 2 KiB: a 16 KiB read holds exactly 8, so
    the buffer runs empty right after a response while the socket still
    holds the rest of the burst. The reader must read on (the last read was
    full, so no new edge will come) rather than wait in epoll."""
    server = sluice_factory(name="exact2k", reader_threads=1, limits_max_header_size="16k")
    base = quiet(server)

    def padded(path):
        head = request("GET", path, headers={"X-Pad": ""})
        pad = 2048 - len(head)
        assert pad > 0
        return request("GET", path, headers={"X-Pad": "p" * pad})

    paths = [TINY[i % len(TINY)] for i in range(40)]
    reqs = [padded(p) for p in paths]
    assert all(len(r) == 2048 for r in reqs)
    with RawConn(server.port, rcvbuf=1 << 20, timeout=10) as c:
        get_all(c, ["/one.bin"], test_root)
        c.send(b"".join(reqs))
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, f"response {i} ({p}): {r.status}"
            check_body(test_root, p, r.body)
    d, _ = counted(server, base, 41)
    assert d["total"] == 41, d


def test_pipelined_mix_with_a_large_file_keeps_order(sluice_factory, test_root):
    server = sluice_factory(name="pipemix")
    base = quiet(server)
    paths = ["/1k.bin", BIG, "/page.html", "/dir00000/class0_2", BIG, "/one.bin",
             "/dir00000/class2_3", "/dir00000/class1_1", BIG, "/style.css"]
    paths = paths * 3
    n_big = paths.count(BIG)
    with RawConn(server.port, timeout=30) as c:
        c.send(b"".join(request("GET", p) for p in paths))
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, f"response {i} ({p}): {r.status}"
            check_body(test_root, p, r.body)
    d, _ = counted(server, base, len(paths))
    # The 5 MiB bodies (> inline_max) are the writers'; the rest may go
    # inline or, after a full socket (EAGAIN), by way of the detector to a
    # writer.
    assert d["writer"] >= n_big and d["inline"] <= len(paths) - n_big, d
    assert d["inline"] > 0, d


@pytest.mark.parametrize("readers", [1, 2])
def test_full_pipeline_keeps_alive_and_pipelines(sluice_factory, test_root, readers):
    """inline_max = 0: every response goes through the writers and the
    reader's registrations are one-shot, re-armed per request. Keep-alive
    one at a time, then a pipelined burst larger than a read, all answered
    in order, none inline."""
    server = sluice_factory(name=f"fullpipe{readers}", reader_inline_max="0",
                            reader_threads=readers)
    base = quiet(server)
    paths = [TINY[i % len(TINY)] for i in range(300)] + [BIG, "/1k.bin"]
    with RawConn(server.port, rcvbuf=1 << 20, timeout=30) as c:
        get_all(c, SMALL + [BIG], test_root)
        c.send(b"".join(request("GET", p) for p in paths))
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status == 200, f"response {i} ({p}): {r.status}"
            check_body(test_root, p, r.body)
        get_all(c, SMALL, test_root)
    n = 2 * len(SMALL) + 1 + len(paths)
    d, _ = counted(server, base, n)
    assert d == {"total": n, "inline": 0, "writer": n}, d


# --------------------------------------------------------------- switched off


def test_strict_pipeline_never_sends_inline(sluice_factory, test_root):
    server = sluice_factory(name="strict", writer_optimistic="no")
    base = quiet(server)
    with RawConn(server.port) as c:
        get_all(c, SMALL + ["/dir00000/class2_2"], test_root)
        for method, path, want in (("HEAD", "/1k.bin", 200), ("GET", "/nope", 404)):
            c.send(request(method, path))
            assert c.read_response(method).status == want
    n = len(SMALL) + 3
    d, now = counted(server, base, n)
    assert d == {"total": n, "inline": 0, "writer": n}, d
    assert now.st["optimistic_write"] is False


def test_live_reload_turns_inline_off_and_on(sluice_factory, test_root):
    server = sluice_factory(name="reload", reader_threads=1)
    base = quiet(server)
    paths = SMALL
    n = len(paths)
    with RawConn(server.port) as c:
        get_all(c, paths, test_root)
        d, base = counted(server, base, n)
        assert d == {"total": n, "inline": n, "writer": 0}, f"default config (1m): {d}"

        reload(server, "reader", "inline_max", "0")
        # A new connection first: the reader takes it at the start of a round,
        # after loading inline_max. (The kept-alive connection's very next
        # request is the subject of the next test.)
        with RawConn(server.port) as c2:
            get_all(c2, paths, test_root)
        d, base = counted(server, base, n)
        assert d == {"total": n, "inline": 0, "writer": n}, f"after inline_max = 0: {d}"
        get_all(c, paths, test_root)  # the kept-alive one
        d, base = counted(server, base, n)
        assert d == {"total": n, "inline": 0, "writer": n}, f"after inline_max = 0: {d}"

        # On again with an explicit value other than the default (1m).
        reload(server, "reader", "inline_max", "256k")
        with RawConn(server.port) as c2:
            get_all(c2, paths, test_root)
        d, base = counted(server, base, n)
        assert d == {"total": n, "inline": n, "writer": 0}, f"after inline_max = 256k: {d}"
        get_all(c, paths, test_root)
        d, _ = counted(server, base, n)
        assert d == {"total": n, "inline": n, "writer": 0}, f"after inline_max = 256k: {d}"


def test_reload_applies_to_the_next_request_of_a_kept_alive_connection(
        sluice_factory, test_root):
    """Once a reload is done (`generation` counted it), the very next request
    obeys the new inline_max, also on a keep-alive connection that waited in
    the reader's epoll set through the reload. Switched off (from the
    default, 1m, the first time) and on again with an explicit 256k a few
    times, each time with the next request at once."""
    server = sluice_factory(name="reload_next", reader_threads=1)
    base = quiet(server)
    stale = []
    with RawConn(server.port) as c:
        get_all(c, ["/1k.bin"], test_root)
        d, base = counted(server, base, 1)
        assert d["inline"] == 1, d
        before = "1m"  # the default
        for after in ["0", "256k"] * 3:
            reload(server, "reader", "inline_max", after, step=0.002)
            get_all(c, ["/1k.bin"], test_root)
            d, base = counted(server, base, 1)
            if d["inline"] != (0 if after == "0" else 1):
                stale.append(f"{before} -> {after}: {d}")
            before = after
    assert not stale, ("the first request after a reload was sent as if inline_max had "
                       "its old value: " + "; ".join(stale))


# --------------------------------------------------------------- status socket


def test_stats_text_and_metrics_report_inline(sluice_factory, test_root):
    server = sluice_factory(name="report")
    base = quiet(server)
    with RawConn(server.port) as c:
        get_all(c, SMALL + [BIG], test_root)
    n = len(SMALL) + 1
    d, now = counted(server, base, n)
    assert d == {"total": n, "inline": len(SMALL), "writer": 1}, d
    inline = now.inline
    assert inline == len(SMALL)
    text = helpers.status_command(server.status_socket, "stats")
    m = re.search(r"^requests: (\d+) \(.*\), (\d+) sent inline by a reader$", text, re.M)
    assert m, f"no 'sent inline by a reader' on the requests line:\n{text}"
    assert (int(m.group(1)), int(m.group(2))) == (now.total, inline), m.group(0)
    metrics = helpers.status_command(server.status_socket, "metrics")
    vals = re.findall(r"^sluice_requests_inline_total (\d+)$", metrics, re.M)
    assert vals == [str(inline)], f"sluice_requests_inline_total: {vals}"
    assert "# TYPE sluice_requests_inline_total counter" in metrics
    assert stats(server)["requests"]["inline"] == inline
