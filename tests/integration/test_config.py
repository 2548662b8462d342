"""The command line and the configuration file: `sluice -t` accepts good
files and rejects broken ones with "FILE:LINE: section.key: reason"; start-up
failures (no root, address in use) exit non-zero with a message naming the
key; bad command lines exit 2."""

import re
import socket
import subprocess

import pytest

import helpers
from helpers import HOST, SLUICE, free_port


def run(args, cwd, timeout=15):
    return subprocess.run([str(SLUICE)] + args, cwd=str(cwd), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def workdir(tmp_path, sluice_binary):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>hi</p>\n")
    return tmp_path


GOOD = """\
; every key, with a value of the right kind
[server]
listen = 127.0.0.1:{port}
root = www
max_connections = 1000
backlog = 128
status_socket = {tmp}/good.sock
status_socket_mode = 0660
pidfile = {tmp}/good.pid
user =
shutdown_timeout = 2s
error_log = stderr
log_level = debug
access_log =
access_log_format = json

[queue]
kind = rculfq
batch = 32

[acceptor]
threads = 2
[reader]
threads = 2
[detector]
threads = 1
[writer]
threads = 4
optimistic = off

[cache]
max_entries = 500
validity = 250ms
negative_validity = 2s

[http]
index = index.html
mime_types = /etc/mime.types
default_type = text/plain

[limits]
max_request_line = 4k
max_header_size = 8k
max_headers = 50
max_requests_per_connection = 100
max_body_discard = 64k

[timeouts]
header = 5s
keepalive = 1m
send = 30s
"""


def write(workdir, text, name="test.conf"):
    path = workdir / name
    path.write_text(text)
    return path


def test_check_good_config(workdir):
    conf = write(workdir, GOOD.format(port=free_port(), tmp=workdir))
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout
    assert not (workdir / "good.sock").exists(), "-t must not start anything"


def test_check_does_not_bind(workdir):
    """-t validates; it does not need the address to be free."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen()
        port = s.getsockname()[1]
        conf = write(workdir, GOOD.format(port=port, tmp=workdir))
        p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode == 0, p.stderr


def test_check_shipped_config():
    p = run(["-t", "-c", "sluice.conf"], helpers.REPO)
    assert p.returncode == 0, p.stderr


def test_minimal_config(workdir):
    conf = write(workdir, "[server]\nroot = www\n")
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode == 0, p.stderr


def test_empty_config_uses_defaults(workdir):
    conf = write(workdir, "; nothing\n")
    p = run(["-t", "-c", str(conf)], workdir)  # default root "www" exists in workdir
    assert p.returncode == 0, p.stderr


# name -> (config text, line of the problem, words the message must contain)
BROKEN = {
    "unknown-key": ("[server]\nroot = www\ncolour = blue\n", 3, ["server.colour"]),
    "unknown-section": ("[server]\nroot = www\n[frobnicator]\nwidgets = 3\n", 4,
                        ["frobnicator", "widgets"]),
    "key-outside-section": ("threads = 3\n[server]\nroot = www\n", 1, ["threads"]),
    "bad-integer": ("[server]\nroot = www\n[writer]\nthreads = many\n", 4, ["writer.threads"]),
    "integer-with-junk": ("[writer]\nthreads = 4x\n", 2, ["writer.threads"]),
    "threads-zero": ("[writer]\nthreads = 0\n", 2, ["writer.threads"]),
    "threads-100000": ("[acceptor]\nthreads = 100000\n", 2, ["acceptor.threads"]),
    "reader-threads-negative": ("[reader]\nthreads = -1\n", 2, ["reader.threads"]),
    "detector-threads-2": ("[detector]\nthreads = 2\n", 2, ["detector.threads"]),
    "bad-duration": ("[server]\nroot = www\n\n[timeouts]\nheader = 10 parsecs\n", 5,
                     ["timeouts.header"]),
    "negative-duration": ("[timeouts]\nkeepalive = -5s\n", 2, ["timeouts.keepalive"]),
    "zero-header-timeout": ("[timeouts]\nheader = 0\n", 2, ["timeouts.header"]),
    "bad-bool": ("[writer]\nthreads = 2\noptimistic = maybe\n", 3, ["writer.optimistic"]),
    "bad-queue-kind": ("[queue]\nkind = spsc\n", 2, ["queue.kind"]),
    "bad-size": ("[limits]\nmax_header_size = 16q\n", 2, ["limits.max_header_size"]),
    "size-too-small": ("[limits]\nmax_request_line = 10\n", 2, ["limits.max_request_line"]),
    "bad-mode": ("[server]\nstatus_socket_mode = 0999\n", 2, ["server.status_socket_mode"]),
    "bad-log-level": ("[server]\nlog_level = chatty\n", 2, ["server.log_level"]),
    "bad-access-log-format": ("[server]\naccess_log_format = xml\n", 2,
                              ["server.access_log_format"]),
    "given-twice": ("[writer]\nthreads = 2\n\n[writer]\nthreads = 3\n", 5, ["writer.threads"]),
    "batch-out-of-range": ("[queue]\nbatch = 5000\n", 2, ["queue.batch"]),
    "max-headers-over-cap": ("[limits]\nmax_headers = 101\n", 2, ["limits.max_headers"]),
    "request-line-over-header-size": ("[server]\nroot = www\n[limits]\nmax_header_size = 1k\n"
                                      "max_request_line = 2k\n", 5,
                                      ["limits.max_request_line"]),
    "listen-without-port": ("[server]\nlisten = localhost\n", 2, ["server.listen"]),
    "index-with-slash": ("[http]\nindex = a/index.html\n", 2, ["http.index"]),
    "syntax-error": ("[server]\nroot = www\nthis line is not ini\n", 3, []),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_check_rejects_broken_config(workdir, name):
    text, line, words = BROKEN[name]
    conf = write(workdir, text, name=f"{name}.conf")
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode != 0, f"{name}: accepted\n{p.stdout}{p.stderr}"
    msg = p.stderr
    assert f"{conf}:{line}:" in msg, f"{name}: expected '{conf}:{line}:' in {msg!r}"
    for w in words:
        assert w in msg, f"{name}: expected '{w}' in {msg!r}"
    assert msg.count("\n") <= 2, f"one message, not a dump: {msg!r}"


@pytest.mark.parametrize("name", ["bad-integer", "unknown-key", "bad-duration"])
def test_start_rejects_broken_config(workdir, name):
    """Without -t, the same file stops the daemon before it starts."""
    text, line, words = BROKEN[name]
    conf = write(workdir, f"[server]\nlisten = 127.0.0.1:{free_port()}\n" + text.replace(
        "[server]\nroot = www\n", "root = www\n", 1), name="start.conf")
    p = run(["-c", str(conf)], workdir)
    assert p.returncode != 0
    for w in words:
        assert w in p.stderr


def test_missing_config_file(workdir):
    missing = workdir / "no-such.conf"
    p = run(["-t", "-c", str(missing)], workdir)
    assert p.returncode != 0
    assert str(missing) in p.stderr
    p = run(["-c", str(missing)], workdir)
    assert p.returncode != 0
    assert str(missing) in p.stderr


def test_missing_root_check(workdir):
    conf = write(workdir, "[server]\nroot = /nonexistent/sluice-root\n")
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode != 0
    assert "server.root" in p.stderr


def test_missing_root_start(workdir):
    port = free_port()
    conf = write(workdir, f"[server]\nlisten = 127.0.0.1:{port}\nroot = {workdir}/nope\n"
                          f"status_socket = {workdir}/s.sock\n")
    try:
        p = run(["-c", str(conf)], workdir, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("sluice kept running with a root directory that does not exist")
    assert p.returncode != 0
    assert "server.root" in p.stderr + p.stdout
    assert f"{workdir}/nope" in p.stderr + p.stdout


def test_root_is_a_file(workdir):
    (workdir / "afile").write_text("x")
    conf = write(workdir, f"[server]\nlisten = 127.0.0.1:{free_port()}\nroot = afile\n")
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode != 0 and "server.root" in p.stderr
    p = run(["-c", str(conf)], workdir, timeout=10)
    assert p.returncode != 0 and "server.root" in p.stderr


def test_address_in_use(workdir):
    with socket.socket() as s:  # no SO_REUSEADDR: nobody else may bind it
        s.bind((HOST, 0))
        s.listen()
        port = s.getsockname()[1]
        conf = write(workdir, f"[server]\nlisten = 127.0.0.1:{port}\nroot = www\n"
                              f"status_socket = {workdir}/s.sock\n")
        try:
            p = run(["-c", str(conf)], workdir, timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"sluice kept running although 127.0.0.1:{port} is taken")
    out = p.stderr + p.stdout
    assert p.returncode != 0
    assert "server.listen" in out and str(port) in out, out
    assert re.search(r"in use", out, re.I), out
    assert not (workdir / "s.sock").exists(), "status socket left behind by a failed start"


def test_unusable_listen_address(workdir):
    conf = write(workdir, "[server]\nlisten = 256.1.1.1:80\nroot = www\n")
    p = run(["-c", str(conf)], workdir, timeout=10)
    assert p.returncode != 0
    assert "server.listen" in p.stderr


@pytest.mark.parametrize("args", [["-x"], ["--frobnicate"], ["-c"], ["extra-argument"]])
def test_bad_command_line(workdir, args):
    p = run(args, workdir)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "usage" in p.stderr.lower()


def test_help(workdir):
    p = run(["-h"], workdir)
    assert p.returncode == 0
    assert "usage" in p.stdout.lower() and "-t" in p.stdout and "-c" in p.stdout


# `sluice -t` checks what start needs beyond the syntax. name -> (config text,
# line of the problem, words the message must contain). {tmp} is the workdir.
START_BROKEN = {
    "port-out-of-range": ("[server]\nroot = www\nlisten = 127.0.0.1:99999\n", 3,
                          ["server.listen", "99999"]),
    "port-zero": ("[server]\nlisten = 127.0.0.1:0\n", 2, ["server.listen"]),
    "port-by-name": ("[server]\nlisten = 127.0.0.1:http\n", 2, ["server.listen", "http"]),
    "bad-ipv4": ("[server]\nroot = www\n\nlisten = 999.1.1.1:http\n", 4, ["server.listen"]),
    "bad-ipv4-numeric-port": ("[server]\nlisten = 999.1.1.1:8080\n", 2,
                              ["server.listen", "999.1.1.1"]),
    "bad-ipv6": ("[server]\nlisten = [::g]:8080\n", 2, ["server.listen"]),
    "ipv6-without-brackets": ("[server]\nlisten = ::1:8080\n", 2, ["server.listen"]),
    "root-missing": ("[server]\nlisten = 127.0.0.1:8080\nroot = {tmp}/nope\n", 3,
                     ["server.root", "nope"]),
    "root-is-a-file": ("; a comment\n[server]\nroot = afile\n", 3, ["server.root", "afile"]),
    "mime-missing": ("[server]\nroot = www\n[http]\nmime_types = {tmp}/no.types\n", 4,
                     ["http.mime_types", "no.types"]),
    "error-log-dir-missing": ("[server]\nroot = www\nerror_log = {tmp}/no/dir/err.log\n", 3,
                              ["server.error_log", "no/dir"]),
    "access-log-dir-missing": ("[server]\naccess_log = {tmp}/no/dir/access.log\n", 2,
                               ["server.access_log", "no/dir"]),
    "status-socket-dir-missing": ("[server]\nstatus_socket = {tmp}/no/dir/s.sock\n", 2,
                                  ["server.status_socket"]),
}


@pytest.mark.parametrize("name", sorted(START_BROKEN))
def test_check_rejects_what_start_would_reject(workdir, name):
    """A config `-t` calls OK must not fail at start: every start-time problem
    that can be found without side effects is found by -t, with FILE:LINE."""
    (workdir / "afile").write_text("x")
    text, line, words = START_BROKEN[name]
    conf = write(workdir, text.format(tmp=workdir), name=f"{name}.conf")
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode != 0, f"{name}: accepted\n{p.stdout}{p.stderr}"
    msg = p.stderr
    assert f"{conf}:{line}:" in msg, f"{name}: expected '{conf}:{line}:' in {msg!r}"
    for w in words:
        assert w in msg, f"{name}: expected '{w}' in {msg!r}"
    assert msg.count("\n") <= 2, f"one message, not a dump: {msg!r}"
    assert not list(workdir.glob("**/*.log")), "-t must not create log files"


@pytest.mark.parametrize("name", ["port-out-of-range", "bad-ipv4", "root-is-a-file",
                                  "root-missing"])
def test_start_names_file_and_line(workdir, name):
    """The same problems stop a real start with the same FILE:LINE."""
    (workdir / "afile").write_text("x")
    text, line, words = START_BROKEN[name]
    text = text.format(tmp=workdir)
    if "listen" not in text:
        text = text.replace("[server]\n", f"[server]\nlisten = 127.0.0.1:{free_port()}\n", 1)
        line += 1
    conf = write(workdir, text, name="start.conf")
    try:
        p = run(["-c", str(conf)], workdir, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: sluice started")
    out = p.stderr + p.stdout
    assert p.returncode != 0
    assert f"{conf}:{line}:" in out, f"{name}: expected '{conf}:{line}:' in {out!r}"
    for w in words:
        assert w in out, f"{name}: expected '{w}' in {out!r}"


@pytest.mark.parametrize("listen", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}",
                                    ":{port}"])
def test_check_accepts_good_listen_values(workdir, listen):
    conf = write(workdir, f"[server]\nlisten = {listen.format(port=free_port())}\n"
                          f"error_log = {workdir}/err.log\naccess_log = {workdir}/a.log\n")
    p = run(["-t", "-c", str(conf)], workdir)
    assert p.returncode == 0, p.stderr
    assert not (workdir / "err.log").exists() and not (workdir / "a.log").exists()
