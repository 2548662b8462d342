"""sluice-fileset --wsesslog: the httperf session log of the SPECweb99-like
set. Its structure (sessions, bursts, think=, only paths of the manifest),
that it is deterministic from --seed and writes no files without --out, and
that httperf replays it against sluice with every session completed, no
errors, one 2xx reply per request line and the same count in sluice's own
`stats json`. A few seconds; loopback only.
"""

import re
import shutil
import subprocess

import pytest

import helpers
from helpers import HOST

FILESET = helpers.FILESET_TOOL
SESSIONS = 20
THINK = 0.05  # mean user think time: keeps the httperf run to a few seconds
THINK_MAX = 1.0
THINK_RE = re.compile(r"^think=(\d+(?:\.\d+)?)$")


def fileset(*args, cwd=None):
    p = subprocess.run([str(FILESET), *map(str, args)], capture_output=True, text=True,
                       timeout=60, cwd=cwd)
    assert p.returncode == 0, f"sluice-fileset {args} exited with {p.returncode}:\n{p.stderr}"
    return p


def read_manifest(root):
    sizes = {}
    with open(root / "manifest.tsv", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            rel, size, _ = line.rstrip("\n").split("\t")
            sizes["/" + rel] = int(size)
    return sizes


def parse_wsesslog(text):
    """Sessions as httperf reads them: [[(think or None, [uri, ...]), ...], ...].
    Checks the syntax on the way: comments only as '#' lines, bursts start at
    column 0, think= only on a burst's first line."""
    sessions, current = [], []
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                sessions.append(current)
            current = []
            continue
        words = line.split()
        uri, opts = words[0], words[1:]
        assert uri.startswith("/"), line
        if line[0].isspace():
            assert current, f"a burst line before any burst: {line!r}"
            assert not opts, f"options only on a burst's first line: {line!r}"
            current[-1][1].append(uri)
            continue
        think = None
        for opt in opts:
            m = THINK_RE.match(opt)
            assert m, f"unexpected option {opt!r} in {line!r}"
            think = float(m.group(1))
        current.append((think, [uri]))
    if current:
        sessions.append(current)
    return sessions


@pytest.fixture
def fileset_root(tmp_path):
    root = tmp_path / "www"
    fileset("--dirs", 2, "--seed", 3, "--out", root, "--quiet")
    return root


def write_log(path, seed, sessions=SESSIONS, *extra):
    fileset("--dirs", 2, "--seed", seed, "--wsesslog", path, "--sessions", sessions,
            "--user-think", THINK, "--think-max", THINK_MAX, "--quiet", *extra)
    return path.read_text()


def test_wsesslog_structure(fileset_root, tmp_path):
    sizes = read_manifest(fileset_root)
    text = write_log(tmp_path / "sess.log", 5)
    sessions = parse_wsesslog(text)
    assert len(sessions) == SESSIONS
    lines = [l for l in text.split("\n") if l.strip() and not l.startswith("#")]
    assert sum(len(uris) for s in sessions for _, uris in s) == len(lines)
    for s in sessions:
        assert 5 <= sum(len(uris) for _, uris in s) <= 15, s  # --session-len 5-15
        assert all(1 <= len(uris) <= 5 for _, uris in s), s   # --burst-len 1-5
        # Every burst but the last sets the think time before the next one.
        assert all(t is not None and 0 < t <= THINK_MAX for t, _ in s[:-1]), s
        assert s[-1][0] is None, s
        for _, uris in s:
            for uri in uris:
                assert uri in sizes, f"{uri} is not in the manifest"
    # SPECweb99's mix reaches at least classes 0..2 and both directories.
    uris = [u for s in sessions for _, b in s for u in b]
    assert {u.split("/")[2].split("_")[0] for u in uris} >= {"class0", "class1", "class2"}
    assert {u.split("/")[1] for u in uris} == {"dir00000", "dir00001"}


def test_wsesslog_deterministic_and_no_files(tmp_path):
    empty = tmp_path / "cwd"
    empty.mkdir()
    p = fileset("--dirs", 2, "--seed", 5, "--wsesslog", "a.log", "--sessions", SESSIONS,
                "--user-think", THINK, "--think-max", THINK_MAX, cwd=empty)
    assert sorted(x.name for x in empty.iterdir()) == ["a.log"], "no set without --out"
    assert f"{SESSIONS} sessions" in p.stderr
    a = (empty / "a.log").read_bytes()
    assert write_log(tmp_path / "b.log", 5).encode() == a, "same seed: identical log"
    assert write_log(tmp_path / "c.log", 6).encode() != a, "other seed: other sessions"
    # The layout, not the content, decides the paths: --dirs 1 never names dir00001.
    fileset("--dirs", 1, "--wsesslog", tmp_path / "d.log", "--sessions", SESSIONS, "-q")
    assert "dir00001" not in (tmp_path / "d.log").read_text()
    # Session options need --wsesslog; --list does not go with it.
    for args in (["--sessions", "3"], ["--wsesslog", "x", "--list"],
                 ["--wsesslog", "x", "--user-think", "2", "--think-max", "1"]):
        r = subprocess.run([str(FILESET), *args], capture_output=True, text=True, timeout=30,
                           cwd=empty)
        assert r.returncode == 2, (args, r.stderr)


def stats_json(path):
    return helpers.stats_json(path)


def test_httperf_replays_wsesslog(fileset_root, tmp_path, sluice_factory):
    if shutil.which("httperf") is None:
        pytest.fail("httperf not installed: run make deps", pytrace=False)
    sizes = read_manifest(fileset_root)
    log = tmp_path / "sess.log"
    sessions = parse_wsesslog(write_log(log, 11))
    uris = [u for s in sessions for _, b in s for u in b]
    srv = sluice_factory(root=fileset_root)
    before = stats_json(srv.status_socket)["requests"]

    p = subprocess.run(["httperf", "--server", HOST, "--port", str(srv.port),
                        f"--wsesslog={SESSIONS},0,{log}", "--rate", "20", "--timeout", "5"],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"httperf failed:\n{out}"
    m = re.search(r"Total: connections (\d+) requests (\d+) replies (\d+) test-duration "
                  r"([\d.]+) s", out)
    assert m, f"no totals in httperf output:\n{out}"
    requests, replies = int(m.group(2)), int(m.group(3))
    assert int(re.search(r"Errors: total (\d+)", out).group(1)) == 0, out
    done = re.search(r"Session rate \[sess/s\]: .*\((\d+)/(\d+)\)", out)
    assert done and done.groups() == (str(SESSIONS), str(SESSIONS)), \
        f"not every session completed:\n{out}"
    assert requests == replies == len(uris), f"{len(uris)} request lines in the log:\n{out}"
    status = re.search(r"Reply status: 1xx=(\d+) 2xx=(\d+) 3xx=(\d+) 4xx=(\d+) 5xx=(\d+)",
                       out)
    assert status and int(status.group(2)) == len(uris), out
    # Bodies: httperf's mean content size is that of the files the log names.
    content = float(re.search(r"Reply size \[B\]: header [\d.]+ content ([\d.]+)",
                              out).group(1))
    assert content == pytest.approx(sum(sizes[u] for u in uris) / len(uris), abs=1), out
    assert float(m.group(4)) < 15, f"the run took too long:\n{out}"

    # sluice counted the same requests, all 2xx (its counters may trail the
    # last reply by a moment).
    def counted():
        now = stats_json(srv.status_socket)["requests"]
        return now if now["total"] - before["total"] >= len(uris) else None

    now = helpers.wait_until(counted, timeout=5, what="sluice to count the requests")
    assert now["total"] - before["total"] == len(uris), (before, now)
    assert now["2xx"] - before["2xx"] == len(uris), (before, now)
