"""The fd/header cache against a changing file system ([cache] validity and
negative_validity = 1 s): changed, replaced, deleted and created files are
noticed within the validity period plus a margin, a response is always one
whole version of a file (never old headers with new bytes, never a mix), and
a download in progress is not disturbed by the file being replaced."""

import hashlib
import mmap
import os
import threading
import time

import pytest

import helpers
from helpers import ConnectionClosed, RawConn, request, sha256, stats_json

VALIDITY = 1.0
POLL_FOR = 3.0  # validity + margin
POLL_STEP = 0.05


def blob(tag, size):
    return hashlib.shake_128(tag.encode()).digest(size)


@pytest.fixture
def server(sluice_factory, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "static.txt").write_bytes(b"never changes\n")
    return sluice_factory(root=root, cache_validity="1s", cache_negative_validity="1s")


def fetch(server, name):
    """(status, body) of one GET on a fresh connection; a body cut short
    (the server closed the connection early) comes back as status -1."""
    with RawConn(server.port, timeout=10) as c:
        c.send(request("GET", "/" + name, close=True))
        try:
            r = c.read_response()
        except (ConnectionClosed, ConnectionResetError) as e:  # a short body is a finding
            return -1, f"[{e}]".encode()
        return r.status, r.body


def poll(server, name, done, versions, what):
    """GETs NAME every 50 ms until done(status, body); every response on the
    way must be one of VERSIONS ({label: (status, body)}). Returns the labels
    seen in order and the time it took."""
    allowed = {v: k for k, v in versions.items()}
    seen = []
    t0 = time.monotonic()
    while True:
        status, body = fetch(server, name)
        label = allowed.get((status, body))
        assert label is not None, (
            f"{what}: response {len(seen) + 1} after {time.monotonic() - t0:.2f}s is not a "
            f"whole version of the file: " +
            (f"{body.decode()} " if status == -1 else "") +
            f"status {status}, {len(body)} bytes, "
            f"sha256 {sha256(body)[:16]}; versions: " +
            ", ".join(f"{k}=({s}, {len(b)} B, {sha256(b)[:16]})" for k, (s, b) in
                      versions.items()) + mix_hint(body, versions))
        if not seen or seen[-1] != label:
            seen.append(label)
        if done(status, body):
            return seen, time.monotonic() - t0
        assert time.monotonic() - t0 < POLL_FOR, f"{what}: still {seen} after {POLL_FOR}s"
        time.sleep(POLL_STEP)


def mix_hint(body, versions):
    for k, (_, b) in versions.items():
        for j, (_, other) in versions.items():
            if j != k and len(body) == len(b) and other[:len(body)] == body and body:
                return (f" -- it is the first {len(body)} bytes of '{j}' with the length of "
                        f"'{k}' (old headers, new bytes)")
    return ""


def test_changed_in_place_never_mixed(server):
    """Rewritten in place (same inode, new size and bytes): every response is
    exactly the old or exactly the new file, and the new one comes within
    validity + margin."""
    path = server.root.path / "inplace.bin"
    old, new = blob("old", 3000), blob("new", 5000)
    path.write_bytes(old)
    assert fetch(server, "inplace.bin") == (200, old)  # cached now
    ino = path.stat().st_ino
    with open(path, "r+b") as f:
        f.write(new)
    assert path.stat().st_ino == ino
    seen, took = poll(server, "inplace.bin", lambda s, b: b == new,
                      {"old": (200, old), "new": (200, new)}, "changed in place")
    assert seen[-1] == "new" and took <= VALIDITY + 2


def test_shrunk_in_place_never_mixed(server):
    path = server.root.path / "shrink.bin"
    old, new = blob("old-long", 8000), blob("new-short", 2000)
    path.write_bytes(old)
    assert fetch(server, "shrink.bin") == (200, old)
    with open(path, "r+b") as f:
        f.write(new)
        f.truncate(len(new))
    seen, took = poll(server, "shrink.bin", lambda s, b: b == new,
                      {"old": (200, old), "new": (200, new)}, "shrunk in place")
    assert seen[-1] == "new"


def test_changed_in_place_eventually_new(server):
    """Only the convergence: after validity + margin the new bytes are served
    exactly (whatever came before)."""
    path = server.root.path / "converge.bin"
    old, new = blob("c-old", 4000), blob("c-new", 6000)
    path.write_bytes(old)
    assert fetch(server, "converge.bin") == (200, old)
    with open(path, "r+b") as f:
        f.write(new)
    time.sleep(VALIDITY + 0.3)
    deadline = time.monotonic() + 2.0
    while True:
        got = fetch(server, "converge.bin")
        if got == (200, new):
            break
        assert time.monotonic() < deadline, (
            f"{VALIDITY + 2.3:.1f}s after an in-place change: status {got[0]}, "
            f"{len(got[1])} bytes instead of the new {len(new)}")
        time.sleep(POLL_STEP)


@pytest.mark.parametrize("base", [2000, 40000], ids=["in-memory", "sendfile"])
def test_changed_in_place_seen_at_once_under_load(sluice_factory, tmp_path, base):
    """With a long validity, only the per-hit check finds an in-place change.
    While keep-alive clients keep asking for the file (so readers read
    requests in batches and check the file once per batch), a request sent
    after each rewrite gets that version, at once, on a keep-alive connection
    as on a new one. What the other clients get while the file is being
    written is not checked here: a response to a request that raced a write
    in place may be cut short, or hold part of each version (sendfile takes
    the bytes from the page cache as they are sent; README)."""
    root = tmp_path / "www"
    root.mkdir()
    path = root / "hot.bin"
    versions = [blob("v0", base)]
    path.write_bytes(versions[0])
    srv = sluice_factory(root=root, cache_validity="10s")
    stop = threading.Event()
    problems = []

    def load():
        while not stop.is_set():
            try:
                with RawConn(srv.port, timeout=10) as c:
                    while not stop.is_set():
                        c.send(request("GET", "/hot.bin"))
                        r = c.read_response()
                        if r.status != 200:
                            problems.append(r.status)
            except ConnectionClosed:
                pass  # a body cut short by a shrinking file: connect again
            except Exception as e:  # noqa: BLE001 -- reported below
                problems.append(repr(e))
                return

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        with RawConn(srv.port, timeout=10) as kept:
            for k in range(1, 41):
                new = blob(f"v{k}", base + 100 * (k % 7) + k % 2)
                versions.append(new)
                with open(path, "r+b") as f:
                    f.write(new)
                    f.truncate(len(new))
                kept.send(request("GET", "/hot.bin"))
                r = kept.read_response()
                assert (r.status, len(r.body)) == (200, len(new)), f"rewrite {k}, kept-alive"
                assert r.body == new, f"rewrite {k}, kept-alive: not the new bytes"
                assert fetch(srv, "hot.bin") == (200, new), f"rewrite {k}, new connection"
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not problems, problems[:5]


def test_atomically_replaced(server):
    path = server.root.path / "atomic.bin"
    old, new = blob("a-old", 20000), blob("a-new", 30000)
    path.write_bytes(old)
    assert fetch(server, "atomic.bin") == (200, old)
    tmp = server.root.path / ".atomic.bin.tmp"
    tmp.write_bytes(new)
    os.rename(tmp, path)
    seen, took = poll(server, "atomic.bin", lambda s, b: b == new,
                      {"old": (200, old), "new": (200, new)}, "atomically replaced")
    assert seen[-1] == "new" and took <= VALIDITY + 2


def test_atomically_replaced_same_size_same_second(server):
    """Same size and (likely) same mtime second: the inode still tells."""
    path = server.root.path / "same.bin"
    old, new = blob("s-old", 10000), blob("s-new", 10000)
    path.write_bytes(old)
    assert fetch(server, "same.bin") == (200, old)
    tmp = server.root.path / ".same.tmp"
    tmp.write_bytes(new)
    st = path.stat()
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # identical mtime
    os.rename(tmp, path)
    seen, took = poll(server, "same.bin", lambda s, b: b == new,
                      {"old": (200, old), "new": (200, new)}, "replaced, same size and mtime")
    assert seen[-1] == "new"


def test_deleted_gives_404(server):
    path = server.root.path / "doomed.bin"
    old = blob("doomed", 7000)
    path.write_bytes(old)
    assert fetch(server, "doomed.bin") == (200, old)
    path.unlink()
    status404 = fetch_404_body(server)
    seen, took = poll(server, "doomed.bin", lambda s, b: s == 404,
                      {"old": (200, old), "gone": (404, status404)}, "deleted")
    assert seen[-1] == "gone" and took <= VALIDITY + 2
    assert fetch(server, "static.txt") == (200, b"never changes\n")


def fetch_404_body(server):
    status, body = fetch(server, "definitely-not-here")
    assert status == 404
    return body


def test_created_after_404_appears(server):
    status404 = fetch_404_body(server)
    assert fetch(server, "late.bin") == (404, status404)  # negative entry cached
    data = blob("late", 5000)
    (server.root.path / "late.bin").write_bytes(data)
    seen, took = poll(server, "late.bin", lambda s, b: s == 200,
                      {"missing": (404, status404), "new": (200, data)}, "created after 404")
    assert seen[-1] == "new" and took <= VALIDITY + 2


def test_directory_appears_and_disappears(server):
    status404 = fetch_404_body(server)
    assert fetch(server, "later/")[0] == 404
    (server.root.path / "later").mkdir()
    (server.root.path / "later" / "index.html").write_bytes(b"<p>later</p>\n")
    seen, _ = poll(server, "later/", lambda s, b: s == 200,
                   {"missing": (404, status404), "new": (200, b"<p>later</p>\n")},
                   "directory created")
    assert seen[-1] == "new"


@pytest.mark.parametrize("change", ["replace", "delete"])
def test_download_in_progress_survives_change(server, change):
    """A slow client downloading 5 MiB while the file is atomically replaced
    (or deleted), and the cache entry is replaced by another request, still
    gets exactly the old bytes."""
    size = 5 << 20
    path = server.root.path / "big.bin"
    old, new = blob("big-old", size), blob("big-new", size - 12345)
    path.write_bytes(old)
    with RawConn(server.port, timeout=20, rcvbuf=16384) as c:
        c.send(request("GET", "/big.bin"))
        head = c.read_head()
        assert head[1] == 200
        assert dict((k.lower(), v) for k, v in head[3])["content-length"] == str(size)
        got = bytearray(c.buf)
        c.buf = b""
        while len(got) < 128 * 1024:  # slowly
            chunk = c.sock.recv(4096)
            assert chunk
            got += chunk
            time.sleep(0.002)
        if change == "replace":
            tmp = server.root.path / ".big.tmp"
            tmp.write_bytes(new)
            os.rename(tmp, path)
            # Another client sees the new version once the entry is stale:
            # the old entry leaves the cache while our download still uses it.
            seen, _ = poll(server, "big.bin", lambda s, b: b == new,
                           {"old": (200, old), "new": (200, new)}, "big file replaced")
        else:
            path.unlink()
            seen, _ = poll(server, "big.bin", lambda s, b: s == 404,
                           {"old": (200, old), "gone": (404, fetch_404_body(server))},
                           "big file deleted")
        assert len(got) < size - (1 << 20), "the download was not in progress any more"
        while len(got) < size:
            chunk = c.sock.recv(65536)
            assert chunk, f"connection closed after {len(got)} of {size} bytes"
            got += chunk
            time.sleep(0.0005)
        assert len(got) == size
        assert bytes(got) == old, "the download in progress changed content"
        # The connection is still usable.
        c.send(request("GET", "/static.txt"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"never changes\n"


def test_concurrent_replacement_and_eviction(sluice_factory, tmp_path):
    """8 keep-alive clients fetch a file that is atomically replaced every
    30 ms among three versions, mixed with 40 other files through a cache of
    at most 8 entries (constant eviction), for about 3 s: every response is
    exactly one version of its file."""
    root = tmp_path / "www"
    root.mkdir()
    others = {}
    for i in range(40):
        data = blob(f"other-{i}", 1000 + 997 * i)
        (root / f"f{i:02d}").write_bytes(data)
        others[f"/f{i:02d}"] = data
    versions = [blob(f"v{i}", 50000 + 20000 * i) for i in range(3)]
    (root / "hot.bin").write_bytes(versions[0])
    server = sluice_factory(root=root, cache_validity="10ms", cache_negative_validity="10ms",
                            cache_max_entries=8)
    stop = threading.Event()
    errors = []
    counts = {"hot": 0, "other": 0}

    def replacer():
        i = 0
        while not stop.is_set():
            i += 1
            tmp = root / f".hot.{i}"
            tmp.write_bytes(versions[i % 3])
            os.rename(tmp, root / "hot.bin")
            time.sleep(0.03)

    def client(n):
        try:
            with RawConn(server.port, timeout=10) as c:
                k = n
                while not stop.is_set():
                    k += 1
                    path = "/hot.bin" if k % 2 else f"/f{(k * 7) % 40:02d}"
                    c.send(request("GET", path))
                    r = c.read_response()
                    assert r.status == 200, (path, r.status)
                    if path == "/hot.bin":
                        assert r.body in versions, (
                            f"hot.bin: {len(r.body)} bytes, not one of the versions "
                            f"({[len(v) for v in versions]})")
                        counts["hot"] += 1
                    else:
                        assert r.body == others[path], path
                        counts["other"] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {n}: {e!r}")
            stop.set()

    threads = [threading.Thread(target=replacer)] + [
        threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(15)
    assert not errors, errors[:3]
    assert counts["hot"] > 50 and counts["other"] > 50, counts


def test_small_file_rewritten_in_place_is_never_kept_half_written(sluice_factory, tmp_path):
    """A small file (held in memory by the cache) rewritten in place, same
    size, again and again while clients keep fetching it: a request sent
    after each write gets exactly the bytes just written, and so does every
    request once the writes stop, also after the file has settled and is
    held in memory.

    The kernel stamps a write's mtime before it copies the bytes in. Here the
    writer's source buffer is a mapping of a file just dropped from the page
    cache, so between the stamp and the copy the kernel reads it from disk:
    a copy of the file taken then holds the old bytes under the new stamp
    (or a mix of both), and no fstat can tell. Kept in memory, that copy was
    served until the file changed again; now a file changed within a second
    is sent from its fd and copied only once it has settled (cache.h,
    SL_CACHE_SETTLE_NS).

    What the other clients get while a write is under way is checked only
    for its length and its bytes (each is an 'A' or a 'B'): a read that
    races a write in place can see part of each version, whatever reads the
    file (README, "Files that change while they are sent")."""
    size = 4096
    versions = [b"A" * size, b"B" * size]
    root = tmp_path / "www"
    root.mkdir()
    path = root / "torn.bin"
    path.write_bytes(versions[0])
    src = []
    for k, v in enumerate(versions):
        p = tmp_path / f"src{k}"
        p.write_bytes(v)
        with open(p, "rb") as f:
            os.fsync(f.fileno())  # clean pages: POSIX_FADV_DONTNEED drops them
        src.append(p)
    srv = sluice_factory(root=root, cache_validity="10s")  # only the per-hit check
    stop = threading.Event()
    problems = []
    counts = {"responses": 0, "mixed": 0}

    def load():
        try:
            with RawConn(srv.port, timeout=10) as c:
                while not stop.is_set():
                    c.send(request("GET", "/torn.bin"))
                    r = c.read_response()
                    if r.status != 200 or len(r.body) != size or r.body.strip(b"AB"):
                        problems.append((r.status, len(r.body), r.body[:16]))
                        return
                    counts["responses"] += 1
                    if r.body not in versions:
                        counts["mixed"] += 1
        except Exception as e:  # noqa: BLE001 -- reported below
            problems.append(repr(e))

    def write_from_disk(k):
        """pwrite of version K from a mapping whose page is not in memory."""
        fd = os.open(src[k], os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
                out = os.open(path, os.O_WRONLY)
                try:
                    assert os.pwrite(out, m, 0) == size
                finally:
                    os.close(out)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    stale = []
    rounds = 0
    try:
        with RawConn(srv.port, timeout=10) as kept:
            deadline = time.monotonic() + 15
            for k in range(1, 81):
                if time.monotonic() > deadline or problems:
                    break
                rounds = k
                write_from_disk(k % 2)
                kept.send(request("GET", "/torn.bin"))
                r = kept.read_response()
                if r.body != versions[k % 2]:
                    stale.append((k, r.status, r.body[:8], r.body[-8:]))
                time.sleep(0.005)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not problems, problems[:5]
    assert rounds >= 10, f"only {rounds} writes in 15 s"
    assert counts["responses"] > 0, counts
    assert not stale, (
        f"{len(stale)} of {rounds} requests sent after a write got other bytes than "
        f"those just written (round, status, first and last bytes): {stale[:5]}")
    final = versions[rounds % 2]
    assert fetch(srv, "torn.bin") == (200, final)
    time.sleep(1.3)  # settled: now copied into memory
    for _ in range(3):
        assert fetch(srv, "torn.bin") == (200, final), "once settled and held in memory"
    print(f"{rounds} writes, {counts['responses']} responses during them, "
          f"{counts['mixed']} of those mixed")


# --------------------------------------------------------------- body_memory

def test_bodies_past_body_memory_go_out_whole_from_the_fd(sluice_factory, tmp_path):
    """[cache] body_memory bounds the bytes of file bodies held in memory, and
    a body is at most 1/512 of it: the files that fit are held, the rest are
    sent from their fds, and every response is the whole file either way."""
    root = tmp_path / "www"
    root.mkdir()
    files = {f"f{i}.bin": blob(f"f{i}", 1000) for i in range(600)}
    files["big.bin"] = blob("big", 1025)  # over 512k / 512 = 1 KiB: never held
    for name, data in files.items():
        (root / name).write_bytes(data)
    time.sleep(1.2)  # settled (SL_CACHE_SETTLE_NS): eligible for a body at once
    server = sluice_factory(root=root, cache_small_file_max="128k", cache_body_memory="512k",
                            cache_max_entries=2000)
    with RawConn(server.port, timeout=20) as c:
        for _ in range(2):  # misses, then hits on entries with and without a body
            for name, data in files.items():
                c.send(request("GET", "/" + name))
                r = c.read_response()
                assert r.status == 200 and sha256(r.body) == sha256(data), name
    st = stats_json(server.status_socket)
    cache = st["cache"]
    assert cache["body_memory"] == 512 * 1024 == st["config"]["cache"]["body_memory"], cache
    # 524 bodies of 1,000 bytes fit in 512 KiB, the 525th does not.
    assert cache["body_bytes"] == 524 * 1000, cache
    assert cache["entries"] >= len(files), cache


def test_body_memory_auto_is_a_quarter_of_the_memory_cgroup(sluice_factory, tmp_path):
    """auto: a quarter of the memory cgroup's limit, and bodies within it."""
    with helpers.sluice_in_memory_cgroup(tmp_path, "256M", "bodymem") as server:
        st = stats_json(server.status_socket)
        assert st["cache"]["body_memory"] == 64 << 20, st["cache"]
        assert st["config"]["cache"]["body_memory"] == 64 << 20, st["config"]["cache"]
        assert st["config"]["cache"]["small_file_max"] == 128 * 1024
