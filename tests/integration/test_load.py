"""Load: wrk, httperf and many concurrent Python connections against the real
daemon. Each run is short (about 3 s) and must show zero socket errors and
zero unexpected statuses; the Python client also checks every body byte.
The same wrk check runs with the strict pipeline ([writer] optimistic = no),
with the RCU lock-free queue ([queue] kind = rculfq) and with several
acceptor/reader threads."""

import re
import selectors
import shutil
import socket
import subprocess
import time

import pytest

import helpers
from helpers import HOST, sha256

FILESET = [f"/dir00000/class{c}_{k}" for c in range(4) for k in range(1, 10)]
WRK_SECONDS = 3



@pytest.fixture(autouse=True)
def load_tools():
    """wrk and httperf come with `make deps` (tools/install-deps.sh): a missing
    one is a failure, not a reason to skip the load tests."""
    missing = [t for t in ("wrk", "httperf") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run make deps", pytrace=False)


def run_tool(args, timeout):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=helpers.raise_nofile)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{args[0]} exited with {p.returncode}:\n{out}"
    return out


def parse_wrk(out):
    """{'requests': N, 'socket_errors': {...}, 'non2xx3xx': N} from wrk's report."""
    m = re.search(r"(\d+) requests in [\d.]+\w+, [\d.]+\w+ read", out)
    assert m, f"no request count in wrk output:\n{out}"
    res = {"requests": int(m.group(1)), "socket_errors": {}, "non2xx3xx": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx3xx"] = int(m.group(1))
    return res


def wrk(url, connections=200, script=None, seconds=WRK_SECONDS):
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", str(script)]
    out = run_tool(args + [url], timeout=seconds + 30)
    res = parse_wrk(out)
    assert res["requests"] > 0, out
    assert not any(res["socket_errors"].values()), f"socket errors: {res['socket_errors']}\n{out}"
    assert res["non2xx3xx"] == 0, f"non-2xx/3xx responses:\n{out}"
    return res, out


def rotating_script(tmp_path, root, paths=FILESET, check=False):
    """A wrk script that cycles through PATHS. With CHECK it also checks every
    response: status 200, a body as long as its Content-Length and of one of
    the files' sizes. (A response() callback makes wrk copy every body into
    Lua, which costs wrk far more than the server for 900 KB bodies, so the
    throughput runs go without it: wrk still counts non-2xx responses, and a
    body of the wrong length breaks its parser, which it counts as a read
    error.)"""
    sizes = sorted({root.files[p][0] for p in paths})
    lua = """
local paths = {%s}
local sizes = {}
for _, s in ipairs({%s}) do sizes[s] = true end
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 7)
  table.insert(threads, thread)
end

function init(args)
  i = offset
  sent = 0
  ok = 0
  bad = 0
end

function request()
  i = i + 1
  sent = sent + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
%s
function done(summary, latency, requests)
  local s, o, b = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    o = o + t:get("ok")
    b = b + t:get("bad")
  end
  io.write(string.format("CHECK sent=%%d ok=%%d bad=%%d\\n", s, o, b))
end
"""
    response = """
function response(status, headers, body)
  if status == 200 and sizes[#body] and tonumber(headers["Content-Length"]) == #body then
    ok = ok + 1
  else
    bad = bad + 1
  end
end
"""
    text = lua % (", ".join(f'"{p}"' for p in paths), ", ".join(map(str, sizes)),
                  response if check else "")
    path = tmp_path / ("rotate-checked.lua" if check else "rotate.lua")
    path.write_text(text)
    return path


def check_rotating(out, res, checked=False):
    m = re.search(r"CHECK sent=(\d+) ok=(\d+) bad=(\d+)", out)
    assert m, f"the wrk script did not report:\n{out}"
    sent, ok, bad = map(int, m.groups())
    # Every completed request was made by the script (plus a few in flight).
    assert sent >= res["requests"] > len(FILESET), (sent, res["requests"])
    if checked:
        assert bad == 0, f"{bad} responses with a wrong status or body size:\n{out}"
        # wrk counts requests whose responses completed; the script saw each one.
        assert ok > 0 and abs(ok - res["requests"]) <= 600, (ok, res["requests"])


def check_after_load(server):
    """After a load run the server still answers, byte-exact, at once, also
    to pipelined requests."""
    for path in ("/one.bin", "/dir00000/class3_9", "/5m.bin"):
        r = server.get(path, timeout=10)
        assert r.status == 200
        assert sha256(r.body) == server.root.files[path][1]
    paths = FILESET[::4] + ["/5m.bin", "/empty.bin", "/one.bin"]
    with helpers.RawConn(server.port, timeout=20) as c:
        c.send(b"".join(helpers.request("GET", p) for p in paths))
        for p in paths:
            r = c.read_response()
            assert r.status == 200, p
            assert sha256(r.body) == server.root.files[p][1], p


# ------------------------------------------------------------------ wrk


@pytest.mark.parametrize("path", ["/1k.bin", "/dir00000/class3_1"], ids=["1KiB", "100KiB"])
def test_wrk_one_file(sluice, path):
    res, out = wrk(sluice.url + path)
    check_after_load(sluice)


def test_wrk_rotating_fileset(sluice, tmp_path):
    script = rotating_script(tmp_path, sluice.root)
    res, out = wrk(sluice.url, connections=300, script=script)
    check_rotating(out, res)
    check_after_load(sluice)


def test_wrk_rotating_checked_responses(sluice, tmp_path):
    """Every response checked by the script (status, length), over the small
    and medium classes where wrk's Lua body copies stay cheap."""
    script = rotating_script(tmp_path, sluice.root, paths=FILESET[:27], check=True)
    res, out = wrk(sluice.url, connections=100, script=script, seconds=2)
    check_rotating(out, res, checked=True)


VARIANTS = {
    "strict-pipeline": {"writer_optimistic": "no"},
    "rculfq": {"queue_kind": "rculfq"},
    "rculfq-strict-multi": {"queue_kind": "rculfq", "writer_optimistic": "no",
                            "acceptor_threads": 2, "reader_threads": 2, "writer_threads": 3,
                            "queue_batch": 4},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_wrk_config_variants(sluice_factory, tmp_path, variant):
    server = sluice_factory(**VARIANTS[variant])
    res, out = wrk(server.url + "/1k.bin", connections=200, seconds=2)
    script = rotating_script(tmp_path, server.root)
    res, out = wrk(server.url, connections=300, script=script, seconds=2)
    check_rotating(out, res)
    check_after_load(server)


# ------------------------------------------------------------------ httperf


def parse_httperf(out):
    m = re.search(r"Total: connections (\d+) requests (\d+) replies (\d+)", out)
    assert m, f"no totals in httperf output:\n{out}"
    conns, reqs, replies = map(int, m.groups())
    m = re.search(r"Reply status: 1xx=(\d+) 2xx=(\d+) 3xx=(\d+) 4xx=(\d+) 5xx=(\d+)", out)
    assert m, out
    status = dict(zip(("1xx", "2xx", "3xx", "4xx", "5xx"), map(int, m.groups())))
    m = re.search(r"Errors: total (\d+) client-timo (\d+) socket-timo (\d+) connrefused (\d+) "
                  r"connreset (\d+)", out)
    assert m, out
    errors = dict(zip(("total", "client-timo", "socket-timo", "connrefused", "connreset"),
                      map(int, m.groups())))
    m = re.search(r"Errors: fd-unavail (\d+) addrunavail (\d+) ftab-full (\d+) other (\d+)", out)
    assert m, out
    errors.update(zip(("fd-unavail", "addrunavail", "ftab-full", "other"), map(int, m.groups())))
    return conns, reqs, replies, status, errors


@pytest.mark.parametrize("conns,rate,calls", [(3000, 1000, 1), (1000, 500, 10)],
                         ids=["3000-conns", "keepalive-10-calls"])
def test_httperf_fixed_rate(sluice, conns, rate, calls):
    out = run_tool(["httperf", "--hog", "--server", HOST, "--port", str(sluice.port),
                    "--uri", "/dir00000/class1_1", "--num-conns", str(conns),
                    "--num-calls", str(calls), "--rate", str(rate), "--timeout", "5"],
                   timeout=60)
    total_conns, reqs, replies, status, errors = parse_httperf(out)
    assert errors["total"] == 0, f"httperf errors {errors}:\n{out}"
    assert total_conns == conns
    assert reqs == replies == conns * calls, out
    assert status == {"1xx": 0, "2xx": conns * calls, "3xx": 0, "4xx": 0, "5xx": 0}, out
    check_after_load(sluice)


# ------------------------------------------------------------------ many Python connections


class Client:
    def __init__(self, sock, paths):
        self.sock = sock
        self.todo = list(paths)
        self.current = None
        self.buf = bytearray()
        self.done = 0

    def send_next(self):
        self.current = self.todo.pop(0)
        data = helpers.request("GET", self.current)
        n = self.sock.send(data)
        assert n == len(data), "a small request did not fit the socket buffer"


def parse_one(buf):
    """(status, body) if BUF holds one whole response, else None; consumes it."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1")
    status = int(head.split(" ", 2)[1])
    m = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
    assert m, head
    total = end + 4 + int(m.group(1))
    if len(buf) < total:
        return None
    body = bytes(buf[end + 4:total])
    del buf[:total]
    return status, body


def test_500_concurrent_keepalive_connections(sluice):
    nconns, per_conn = 500, 3
    sel = selectors.DefaultSelector()
    clients = []
    try:
        for i in range(nconns):  # every connection is open before any request
            s = socket.create_connection((HOST, sluice.port), timeout=10)
            s.setblocking(False)
            paths = [FILESET[(i * 7 + j * 5) % len(FILESET)] for j in range(per_conn)]
            if i % 50 == 0:
                paths[0] = "/1m.bin"
            clients.append(Client(s, paths))
        for c in clients:
            c.send_next()
            sel.register(c.sock, selectors.EVENT_READ, c)
        active = len(clients)
        deadline = time.monotonic() + 60
        while active:
            assert time.monotonic() < deadline, f"{active} connections still waiting after 60 s"
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                try:
                    data = c.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                assert data, f"server closed a keep-alive connection after {c.done} responses"
                c.buf += data
                while True:
                    one = parse_one(c.buf)
                    if one is None:
                        break
                    status, body = one
                    assert status == 200, (c.current, status)
                    assert sha256(body) == sluice.root.files[c.current][1], c.current
                    c.done += 1
                    if c.todo:
                        c.send_next()
                    else:
                        assert not c.buf, "bytes after the last response"
                        sel.unregister(c.sock)
                        active -= 1
                        break
        assert all(c.done == per_conn for c in clients)
    finally:
        sel.close()
        for c in clients:
            c.sock.close()
    check_after_load(sluice)


def test_sigterm_under_load(sluice_factory, tmp_path):
    """SIGTERM while 200 wrk connections hammer the server (small and large
    files): it stops within the shutdown timeout, exits 0, and the sanitizers
    (ASan build) find nothing in the races of a stop under load."""
    server = sluice_factory(server_shutdown_timeout="5s")
    script = rotating_script(tmp_path, server.root)
    load = subprocess.Popen(["wrk", "-t2", "-c200", "-d4s", "-s", str(script), server.url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=helpers.raise_nofile)
    try:
        time.sleep(1.5)
        assert load.poll() is None, "wrk ended early"
        t0 = time.monotonic()
        server.check_clean_exit()  # SIGTERM, exit 0 within 15 s, clean log
        took = time.monotonic() - t0
        assert took < 7, f"stopping took {took:.1f}s with shutdown_timeout = 5s"
        assert "stopped" in server.log_text()
    finally:
        load.wait(timeout=30)
    with pytest.raises(OSError):  # and it is really gone
        socket.create_connection((HOST, server.port), timeout=2).close()
