"""The pipeline's threads as the kernel sees them: /proc/PID/task/*/comm shows
exactly the configured number of threads per stage, named after the stage
("acceptor" per acceptor thread, "reader-N", one "detector", "writer-N"),
before and after serving traffic."""

import collections
import os
import time

import pytest

import helpers
from helpers import RawConn, request, sha256, stats_json, wait_until
from lab import budget

# Besides the stages: the main thread and liburcu's call_rcu helper
# ("sluice"), the status socket thread and the access-log thread.
OTHER_NAMES = {"sluice", "status", "logger"}


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # a thread that just left
            pass
    return collections.Counter(names)


def expected_names(acceptors, readers, writers):
    want = collections.Counter({"acceptor": acceptors, "detector": 1})
    for i in range(readers):
        want[f"reader-{i}"] = 1
    for i in range(writers):
        want[f"writer-{i}"] = 1
    return want


def stage_names(names):
    return collections.Counter({n: c for n, c in names.items() if n not in OTHER_NAMES})


def check_threads(server, acceptors, readers, writers):
    want = expected_names(acceptors, readers, writers)
    deadline = time.monotonic() + 5
    while True:  # threads start right after the socket is bound
        names = thread_names(server.pid)
        if stage_names(names) == want or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert stage_names(names) == want, f"threads: {dict(names)}"
    assert names["sluice"] >= 1, "no main thread named sluice"
    assert set(names) <= set(want) | OTHER_NAMES, f"unexpected threads: {dict(names)}"


def serve_some(server):
    with RawConn(server.port) as c:
        paths = ["/dir00000/class0_1", "/dir00000/class3_9", "/1m.bin"] * 3
        c.send(b"".join(request("GET", p) for p in paths))
        for p in paths:
            r = c.read_response()
            assert r.status == 200 and sha256(r.body) == server.root.files[p][1]


def test_default_thread_counts(sluice):
    """The session server runs the defaults: no acceptor thread (the readers
    accept), and [reader] and [writer] threads = auto: one reader and one
    writer per CPU the process may run on."""
    cpus = len(os.sched_getaffinity(0))
    check_threads(sluice, 0, cpus, cpus)
    serve_some(sluice)
    check_threads(sluice, 0, cpus, cpus)


def test_writer_threads_auto_and_number(sluice_factory):
    server = sluice_factory(writer_threads="auto", reader_threads=1)
    check_threads(server, 0, 1, len(os.sched_getaffinity(0)))


def test_reader_threads_auto(sluice_factory):
    server = sluice_factory(reader_threads="auto", writer_threads=3)
    check_threads(server, 0, len(os.sched_getaffinity(0)), 3)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a cgroup needs root")
def test_threads_auto_follows_a_cgroup_cpu_quota(sluice_binary, test_root, tmp_path):
    """Started inside a cgroup with a CPU quota of 0.5 (as a container or a
    systemd unit with CPUQuota= would), threads = auto counts one CPU, not
    the two the process may be scheduled on: more busy threads than the
    quota's CPUs only preempt each other."""
    try:
        cg = budget.Cgroup(f"sluice-test-quota-{os.getpid()}", budget.Budget(cpus=0.5))
    except budget.BudgetError as e:
        pytest.skip(f"no cpu cgroup controller: {e}")
    server = helpers.Sluice(tmp_path / "q", test_root, name="q",
                            conf={"reader_threads": "auto", "writer_threads": "auto"})
    try:
        server.start(preexec_fn=cg.preexec)
        assert cg.procs(), "sluice is not in the cgroup"
        check_threads(server, 0, 1, 1)
        serve_some(server)
        server.check_clean_exit()
    finally:
        server.stop()
        cg.remove()
    # And outside it, the same config counts every CPU it may run on.
    free = helpers.Sluice(tmp_path / "f", test_root, name="f",
                          conf={"reader_threads": "auto", "writer_threads": "auto"})
    try:
        free.start()
        cpus = len(os.sched_getaffinity(0))
        check_threads(free, 0, cpus, cpus)
        free.check_clean_exit()
    finally:
        free.stop()


@pytest.mark.parametrize("acceptors,readers,writers", [(2, 2, 5), (3, 4, 1), (1, 1, 8),
                                                       (1, 3, 16), (0, 3, 1)])
def test_configured_thread_counts(sluice_factory, acceptors, readers, writers):
    server = sluice_factory(acceptor_threads=acceptors, reader_threads=readers,
                            writer_threads=writers)
    check_threads(server, acceptors, readers, writers)
    serve_some(server)
    check_threads(server, acceptors, readers, writers)


@pytest.mark.parametrize("acceptors", [0, 1])
def test_new_connections_spread_over_readers(sluice_factory, acceptors):
    """Readers that accept (the default) stop accepting while they hold more
    than another's count plus half as many again plus 64 (the kernel would
    otherwise wake the same reader for nearly every connection: 237 of 240
    here before the rule). An acceptor thread gives a new connection to the
    reader with the fewest, or to an awake one within the same bound. stats
    json shows each reader's open connections (connections.per_reader)."""
    server = sluice_factory(reader_threads=3, acceptor_threads=acceptors)
    conns = []
    try:
        for _ in range(240):
            c = RawConn(server.port)
            c.send(request("GET", "/dir00000/class0_1"))
            assert c.read_response().status == 200
            conns.append(c)
        st = wait_until(lambda: (lambda s: s if s["connections"]["current"] == 240 else None)(
            stats_json(server.status_socket)), what="240 open connections")
        per = st["connections"]["per_reader"]
        assert len(per) == 3 and sum(per) == 240, per
        least = min(per)
        assert least > 0, per
        assert max(per) <= least + least // 2 + 64 + 1, per
    finally:
        for c in conns:
            c.close()
    st = wait_until(lambda: (lambda s: s if s["connections"]["current"] == 0 else None)(
        stats_json(server.status_socket)), what="all connections closed")
    assert st["connections"]["per_reader"] == [0, 0, 0]
