"""Shared pieces of the integration tests: where the daemon is, the document
root every server gets, one sluice process (tools/lab/harness.py, as the
tools start it), and a raw HTTP/1.1 client that shows exactly what went over
the socket.

Only the standard library; only loopback addresses.
"""

import contextlib
import hashlib
import os
import re
import resource
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SLUICE_BUILD", REPO / "build"))
SLUICE = BUILD / "sluice"
FILESET_TOOL = REPO / "tools" / "sluice-fileset"

# The daemon is started and spoken to as the lab's tools do it (tools/lab).
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
from lab import harness  # noqa: E402
from lab import status as lab_status  # noqa: E402

HOST = harness.HOST

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "WARNING: ThreadSanitizer", "ThreadSanitizer:")

# A ThreadSanitizer build (make tsan) reads its suppressions (false positives
# only, each explained in the file) from here; every report still lands in
# the log, where check_clean_exit() finds it, and makes the exit status 66.
os.environ.setdefault("TSAN_OPTIONS", f"suppressions={REPO}/tests/tsan.supp "
                                      "halt_on_error=0 exitcode=66 second_deadlock_stack=1")

# Sections of the config and their keys, for sluice_factory(section_key=value)
# keyword arguments: the section is everything before the first underscore.
SECTIONS = ("server", "queue", "acceptor", "reader", "detector", "writer", "cache",
            "http", "limits", "timeouts", "admission", "status")

# Extra files of the test root besides the SPECweb99-like dir00000/.
# Policy notes: dot files are served like any other file (README "What is
# served"); symlinks are followed only while they stay inside the root.
SPACE_DIR = "sub dir \u00fc"
UTF8_NAME = "with space \u00fcn\u00efc\u00f8d\u00e9 \u20ac.txt"
EXTRA_FILES = {
    "empty.bin": 0,
    "one.bin": 1,
    "1k.bin": 1024,
    "1m.bin": 1 << 20,
    "5m.bin": 5 << 20,
}
TYPED_FILES = {  # name -> (content, expected media type)
    "page.html": (b"<!DOCTYPE html><html><body>page</body></html>\n", "text/html"),
    "image.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
                  "image/svg+xml"),
    "style.css": (b"body { color: #123456; }\n", "text/css"),
    "data.zzqx": (b"unknown extension\n", "application/octet-stream"),
    "noext": (b"no extension at all\n", "application/octet-stream"),
}
INDEX_HTML = b"<!DOCTYPE html><html><body>the index of withindex/</body></html>\n"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


free_port = harness.free_port


def raise_nofile():
    """preexec_fn for load generators: as many descriptors as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def wait_until(pred, timeout=10.0, step=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


# --------------------------------------------------------------- the document root


class Root:
    """A document root: path, and {url path: (size, sha256)} of what it serves."""

    def __init__(self, path):
        self.path = Path(path)
        self.files = {}   # "/dir00000/class0_1" -> (size, sha256)
        self.fileset = []  # the 36 SPECweb99-like url paths, manifest order

    def data(self, url_path):
        """The bytes a file has on disk now (URL path without %-encoding)."""
        return (self.path / url_path.lstrip("/")).read_bytes()


def make_root(path, seed=42):
    """Builds the standard test root in PATH (created): the fileset with one
    directory (tools/sluice-fileset) plus the extra files described above."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(FILESET_TOOL), "--dirs", "1", "--seed", str(seed), "--out", str(path),
                    "--quiet"], check=True, timeout=60)
    root = Root(path)
    with open(path / "manifest.tsv", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            rel, size, digest = line.rstrip("\n").split("\t")
            root.files["/" + rel] = (int(size), digest)
            root.fileset.append("/" + rel)
    for name, size in EXTRA_FILES.items():
        data = hashlib.shake_128(f"sluice-tests/{seed}/{name}".encode()).digest(size)
        (path / name).write_bytes(data)
        root.files["/" + name] = (size, sha256(data))
    for name, (data, _) in TYPED_FILES.items():
        (path / name).write_bytes(data)
        root.files["/" + name] = (len(data), sha256(data))
    (path / "withindex").mkdir(exist_ok=True)
    (path / "withindex" / "index.html").write_bytes(INDEX_HTML)
    root.files["/withindex/index.html"] = (len(INDEX_HTML), sha256(INDEX_HTML))
    (path / "noindex").mkdir(exist_ok=True)
    inner = b"a file in a directory without index\n"
    (path / "noindex" / "file.txt").write_bytes(inner)
    root.files["/noindex/file.txt"] = (len(inner), sha256(inner))
    utf8 = f"UTF-8 name: {UTF8_NAME}\n".encode()
    (path / UTF8_NAME).write_bytes(utf8)
    root.files["/" + UTF8_NAME] = (len(utf8), sha256(utf8))
    hidden = b"dot files are served\n"
    (path / ".hidden").write_bytes(hidden)
    root.files["/.hidden"] = (len(hidden), sha256(hidden))
    # Symlinks: one that stays inside (served), ones that leave (404).
    os.symlink("dir00000/class1_1", path / "link-inside")
    os.symlink("/etc/passwd", path / "link-outside")
    os.symlink("../../../../../../../../etc/passwd", path / "link-outside-rel")
    os.symlink("/etc", path / "linkdir-outside")
    os.symlink("withindex", path / "linkdir-inside")
    os.symlink("loop", path / "loop")
    # A directory whose name needs percent-encoding in a Location header.
    (path / SPACE_DIR).mkdir(exist_ok=True)
    (path / SPACE_DIR / "index.html").write_bytes(INDEX_HTML)
    # Things that are not regular files: never served (403).
    os.mkfifo(path / "fifo")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
        u.bind(str(path / "unix.sock"))  # the file stays after the socket closes
    try:
        os.mknod(path / "null-device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError:
        pass  # not allowed here; the test skips
    unreadable = path / "unreadable.txt"
    unreadable.write_bytes(b"secret\n")
    os.chmod(unreadable, 0)
    return root


# --------------------------------------------------------------- one daemon


class Sluice(harness.Sluice):
    """One sluice process with its own config, port, status socket and log:
    lab.harness.Sluice with the tests' config (a dict, .conf) and checks."""

    def __init__(self, workdir, root, conf=None, name="sluice"):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.root = root if isinstance(root, Root) else Root(root)
        self.root_path = self.root.path
        port = free_port()
        self.pidfile = workdir / f"{name}.pid"
        self.conf = {
            "server": {
                "listen": f"{HOST}:{port}",
                "root": str(self.root.path),
                "status_socket": str(workdir / f"{name}.sock"),
                "pidfile": str(self.pidfile),
                "shutdown_timeout": "5s",
                "log_level": "info",
            },
            "timeouts": {"header": "10s", "keepalive": "30s", "send": "20s"},
            # Admission control stays on (the receive-timestamp path runs in
            # every test) but with a target only a stalled machine reaches, so
            # a slow sanitizer build never sheds a test's request;
            # test_admission.py sets its own.
            "admission": {"queue_wait_target": "1s"},
        }
        for key, value in (conf or {}).items():
            section, k = split_key(key)
            self.conf.setdefault(section, {})[k] = value
        # Overrides of these keys change what the object reports.
        listen = str(self.conf["server"]["listen"])
        if listen.rsplit(":", 1)[-1].isdigit():
            port = int(listen.rsplit(":", 1)[-1])
        super().__init__(SLUICE, workdir / f"{name}.conf", port,
                         status_socket=self.conf["server"].get("status_socket"),
                         log_path=workdir / f"{name}.log", cwd=workdir, name=name,
                         error=AssertionError)
        self.url = f"http://{HOST}:{self.port}"
        self.status_socket = str(self.conf["server"].get("status_socket") or "")
        self.pid = None
        self.returncode = None
        self.write_conf()

    def write_conf(self):
        self.conf_path.write_text(harness.conf_text(self.conf), encoding="utf-8")

    def start(self, timeout=10.0, preexec_fn=None):
        """PREEXEC_FN, if given, runs in the child after the file limit is
        raised (e.g. a cgroup's, to start the daemon inside it)."""
        def preexec():
            raise_nofile()
            if preexec_fn is not None:
                preexec_fn()
        super().start(timeout=timeout, preexec_fn=preexec)
        self.pid = self.proc.pid
        return self

    def stop(self, timeout=15.0):
        """SIGTERM, wait; returns the exit status (the process is gone after)."""
        if self.proc is None:
            return None
        self.returncode = super().stop(timeout)
        return self.returncode

    def check_clean_exit(self):
        """Stops the daemon and asserts exit status 0 and a sanitizer-clean log."""
        rc = self.stop()
        log = self.log_text()
        found = [m for m in SANITIZER_MARKERS if m in log]
        assert not found, f"sanitizer report in the log of {self.name}:\n{log[-20000:]}"
        assert rc == 0, f"{self.name} exited with {rc} after SIGTERM:\n{self.log_tail()}"

    # convenience
    def get(self, path, headers=None, timeout=10):
        c = RawConn(self.port, timeout=timeout)
        try:
            c.send(request("GET", path, headers=headers, close=True))
            return c.read_response("GET")
        finally:
            c.close()

    def ensure_serving(self, path="/one.bin"):
        """A fresh connection still gets a correct answer."""
        r = self.get(path)
        assert r.status == 200, f"fresh connection after an error: {r.status} {r.reason}"
        size, digest = self.root.files[path]
        assert sha256(r.body) == digest
        return r


def split_key(key):
    """'writer_threads' or 'writer.threads' -> ('writer', 'threads')."""
    if "." in key:
        section, k = key.split(".", 1)
    else:
        section, _, k = key.partition("_")
    if section not in SECTIONS or not k:
        raise ValueError(f"config override '{key}': expected SECTION_KEY or SECTION.KEY")
    return section, k


# --------------------------------------------------------------- raw HTTP


def request(method, path, version="HTTP/1.1", host="127.0.0.1", headers=None, close=False,
            body=b""):
    """Bytes of one request. HEADERS: list of (name, value) or a dict."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if isinstance(headers, dict):
        headers = list(headers.items())
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class Response:
    def __init__(self, version, status, reason, headers, head, body):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers_list = headers  # [(name, value)] as sent
        self.head = head              # raw bytes of the head, CRLFCRLF included
        self.body = body

    def header(self, name, default=None):
        vals = self.headers(name)
        return vals[0] if vals else default

    def headers(self, name):
        return [v for n, v in self.headers_list if n.lower() == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} {self.reason} body={len(self.body)}B>"


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A client socket that reads responses exactly as they come."""

    def __init__(self, port, timeout=10.0, rcvbuf=None, host=HOST):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n=65536):
        if self.eof:
            return False
        data = self.sock.recv(n)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionClosed(f"connection closed before a full response head; "
                                       f"got {self.buf[:200]!r}")
        i = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:i], self.buf[i:]
        lines = head[:-4].decode("latin-1").split("\r\n")
        m = re.fullmatch(r"(HTTP/\d\.\d) (\d{3}) ?(.*)", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            assert ":" in line, f"bad header line {line!r} in {head!r}"
            n, v = line.split(":", 1)
            assert n == n.strip(), f"whitespace in header name {n!r}"
            headers.append((n, v.strip()))
        return m.group(1), int(m.group(2)), m.group(3), headers, head

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill(max(65536, n - len(self.buf))):
                raise ConnectionClosed(f"connection closed after {len(self.buf)} of {n} "
                                       "body bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        version, status, reason, headers, head = self.read_head()
        r = Response(version, status, reason, headers, head, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return r
        cl = r.headers("Content-Length")
        if cl:
            assert len(cl) == 1, f"several Content-Length headers: {cl}"
            r.body = self.read_exact(int(cl[0]))
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed_within(self, timeout):
        """True if the server closes the connection (EOF or reset) within
        TIMEOUT seconds without sending anything more; False if it stays open.
        Bytes received meanwhile are an error."""
        if self.buf:
            raise AssertionError(f"unexpected bytes from the server: {self.buf[:200]!r}")
        old = self.sock.gettimeout()
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(4096)
                except socket.timeout:
                    return False
                except ConnectionResetError:
                    return True
                if not data:
                    return True
                raise AssertionError(f"unexpected bytes from the server: {data[:200]!r}")
        finally:
            self.sock.settimeout(old)


def exchange(port, data, method="GET", timeout=10.0, wait_close=None):
    """Sends DATA on a new connection and reads one response. With WAIT_CLOSE
    (seconds), also reports whether the server then closed the connection
    within that time: returns (Response, closed); else just the Response."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        r = c.read_response(method)
        if wait_close is None:
            return r
        return r, c.closed_within(wait_close)


def status_command(sock_path, cmd):
    """One status-socket command; the reply without its closing empty line."""
    return lab_status.command(sock_path, cmd)


@contextlib.contextmanager
def sluice_in_memory_cgroup(tmp_path, mem, tag):
    """A sluice serving TMP_PATH (with one small file) from inside a memory
    cgroup limited to MEM, for the sizes it derives from that limit; the test
    is skipped where no memory controller can be used. Stopped cleanly and
    the cgroup removed after."""
    import pytest
    from lab import budget
    try:
        cg = budget.Cgroup(f"sluice-test-{tag}-{os.getpid()}", budget.Budget(mem=mem))
    except budget.BudgetError as e:
        pytest.skip(f"no memory cgroup controller: {e}")
    try:
        server = Sluice(tmp_path / "m", tmp_path, name="m")
        (tmp_path / "one.txt").write_bytes(b"x" * 1000)
        server.start(preexec_fn=cg.preexec)
        try:
            yield server
        finally:
            server.check_clean_exit()
    finally:
        cg.remove()


def stats_json(sock_path):
    """`stats json` from the status socket at SOCK_PATH, parsed."""
    return lab_status.stats_json(sock_path)
