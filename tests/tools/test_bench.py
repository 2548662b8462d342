"""tools/sluice-bench without servers and without timing: the parsing of
/proc, cgroup, perf and strace output, the medians and ratios of the report,
the options, and the floor (tools/bench/floor.c) compiled and asked a few
requests on a free 127.0.0.1 port over a raw socket."""

import os
import socket
import subprocess
import time

import pytest

from lab import budget as B

STAT = ("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 123 0 0 0 "
        "150 25 0 0 20 0 3 0 100 1000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0")


def test_parse_stat_keeps_odd_names(bench):
    assert bench.parse_stat(STAT) == ("my (odd) name", 1, 175)


def test_parse_switches_adds_both_kinds(bench):
    status = ("Name:\twriter-1\nState:\tS (sleeping)\nvoluntary_ctxt_switches:\t120\n"
              "nonvoluntary_ctxt_switches:\t7\n")
    assert bench.parse_switches(status) == 127
    assert bench.parse_switches("Name:\tx\n") == 0


def test_parse_cgroup_v2_cpu_stat():
    text = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 3\n"
    assert B.parse_cpu_stat(text) == 1234567000
    assert B.parse_cpu_stat("nr_periods 3\n") == 0


def test_parse_perf_stat(bench):
    assert bench.parse_perf_stat("\n# started\n123456,,raw_syscalls:sys_enter,2003999,100.00,,\n"
                                 ) == 123456
    assert bench.parse_perf_stat("<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n") is None
    assert bench.parse_perf_stat("") is None


STRACE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           1       500           sendmsg
 40.00    0.000400           0       700       200 recvmsg
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           0      1200       200 total
"""


def test_parse_strace_c(bench):
    assert bench.parse_strace_c(STRACE) == 1200
    # strace leaves usecs/call blank on the total line in some versions
    blank = STRACE.replace("100.00    0.001000           0      1200",
                           "100.00    0.001000                  1200")
    assert bench.parse_strace_c(blank) == 1200
    assert bench.parse_strace_c("strace: attach: ptrace: Operation not permitted\n") is None


def run(server, workload, rps, cpu, switches=0.1, client=0.5, sat=False, errors=None):
    return {"server": server, "workload": workload, "req_s": rps, "cpu_us_per_req": cpu,
            "switches_per_req": switches, "client_cpu_s": client, "wall_s": 1.0,
            "client_saturated": sat, "machine_busy": 0.5, "other_load": 0.01,
            "lat_p99_ms": 2.0, "errors": errors or {}}


def test_summarize_takes_medians_and_counts_flags(bench):
    runs = [run("sluice", "1kib", r, c, sat=(r == 90)) for r, c in
            ((100, 10.0), (90, 12.0), (300, 9.0), (110, None), (95, 11.0))]
    runs.append(run("nginx", "1kib", 50, 20.0, errors={"timeout": 2}))
    s = bench.summarize(runs, ["sluice", "nginx", "h2o"], ["1kib"],
                        {("1kib", "sluice"): {"per_req": 3.5}})
    x = s["1kib"]["sluice"]
    assert x["runs"] == 5 and x["req_s"] == 100 and (x["req_s_min"], x["req_s_max"]) == (90, 300)
    assert x["cpu_us_per_req"] == 10.5  # the median of the four that have one
    assert x["syscalls_per_req"] == 3.5 and x["client_saturated_runs"] == 1
    assert s["1kib"]["nginx"]["syscalls_per_req"] is None
    assert s["1kib"]["nginx"]["errors"] == {"timeout": 2}
    assert "h2o" not in s["1kib"]


def test_goal_ratios_against_best_peer_lowest_peer_and_floor(bench):
    ws = {"sluice": {"req_s": 110.0, "cpu_us_per_req": 9.0},
          "nginx": {"req_s": 100.0, "cpu_us_per_req": 12.0},
          "h2o": {"req_s": 80.0, "cpu_us_per_req": 10.0},
          "floor": {"req_s": 200.0, "cpu_us_per_req": 6.0}}
    g = bench.goal_row(ws, "sluice", ["nginx", "lighttpd", "h2o"])
    assert g["best"] == "nginx" and g["req_ratio"] == pytest.approx(1.1)
    assert g["lowest"] == "h2o" and g["cpu_ratio"] == pytest.approx(0.9)
    assert g["floor_ratio"] == pytest.approx(1.5)
    assert bench.floor_multiple(ws, "nginx") == pytest.approx(2.0)
    del ws["floor"]
    assert bench.goal_row(ws, "sluice", ["nginx"])["floor_ratio"] is None
    assert bench.goal_row({"sluice": ws["sluice"]}, "sluice", ["nginx"])["req_ratio"] is None
    assert g["req_rounds"] == [] and bench.rounds_cell([], None) == "–"


def test_goal_ratios_paired_by_round(bench):
    """Each round's ratio is of that round's runs: a slow round of the
    machine slows both sides of it."""
    runs = []
    for rnd, (s_rps, s_cpu, n_rps, n_cpu) in enumerate(
            ((120, 8.0, 100, 10.0), (60, 16.0, 50, 21.0), (105, None, 100, 9.0)), 1):
        runs.append(dict(run("sluice", "1kib", s_rps, s_cpu), round=rnd))
        runs.append(dict(run("nginx", "1kib", n_rps, n_cpu), round=rnd))
    runs.append(dict(run("nginx", "1kib", 1000, 1.0), round=4))  # no sluice run to pair
    ws = bench.summarize(runs, ["sluice", "nginx"], ["1kib"])["1kib"]
    assert ws["sluice"]["by_round"] == {1: {"req_s": 120, "cpu_us_per_req": 8.0},
                                        2: {"req_s": 60, "cpu_us_per_req": 16.0},
                                        3: {"req_s": 105, "cpu_us_per_req": None}}
    g = bench.goal_row(ws, "sluice", ["nginx"])
    assert g["req_rounds"] == pytest.approx([1.2, 1.2, 1.05])
    assert g["cpu_rounds"] == pytest.approx([0.8, 16 / 21])  # round 3 has no CPU figure
    assert bench.rounds_cell(g["req_rounds"], lambda x: x >= 1.1) == "1.20 (1.05–1.20), 2/3"
    assert bench.rounds_cell(g["cpu_rounds"], lambda x: x <= 0.9) == "0.78 (0.76–0.80), 2/2"


def test_profile_path_shares(bench):
    """Each sample counts once, for the first path on its chain in
    PROFILE_PATHS' order: reclaim inside a page cache fill inside sendfile
    is reclaim."""
    def sample(*frames):
        return "writer-0 \n" + "".join(f"\tffffffff81000000 {f}\n" for f in frames) + "\n"
    script = (sample("shrink_lruvec", "try_to_free_mem_cgroup_pages", "filemap_add_folio",
                     "tcp_sendmsg", "do_syscall_64")
              + sample("_copy_from_iter", "tcp_sendmsg", "do_syscall_64")
              + sample("_copy_from_iter", "tcp_sendmsg", "do_syscall_64")
              + sample("fdget", "__x64_sys_getsockopt", "do_syscall_64")
              + "reader-0 \n\t          108f36 sl_http_parse_request\n")  # no blank line at the end
    shares = dict(bench.path_shares(script))
    assert shares == pytest.approx({"memory cgroup reclaim": 20.0,
                                    "TCP send (with loopback delivery)": 40.0,
                                    "other system calls": 20.0, "user space": 20.0})
    assert bench.path_shares("") == []


def test_profile_table_compares_servers_in_cpu_per_request(bench):
    summary = {"disk": {"sluice": {"cpu_us_per_req": 80.0},
                        "lighttpd": {"cpu_us_per_req": 100.0}},
               "1kib": {"sluice": {"cpu_us_per_req": 9.0}}}
    profiles = [{"server": "sluice", "workload": "disk", "text": "",
                 "paths": [("TCP send (with loopback delivery)", 50.0),
                           ("memory cgroup reclaim", 25.0), ("user space", 25.0)]},
                {"server": "lighttpd", "workload": "disk", "text": "",
                 "paths": [("memory cgroup reclaim", 40.0),
                           ("TCP send (with loopback delivery)", 60.0)]},
                {"server": "sluice", "workload": "1kib", "text": "", "paths": []}]
    lines = bench.profile_table(profiles, summary)
    assert "| spent on | sluice | lighttpd |" in lines
    assert "| TCP send (with loopback delivery) | 40.0 | 60.0 |" in lines
    assert "| memory cgroup reclaim | 20.0 | 40.0 |" in lines
    assert "| user space | 20.0 | 0.0 |" in lines and "| all | 80.0 | 100.0 |" in lines
    assert not any("1kib" in l for l in lines)  # one server profiled there: no comparison


def test_client_limit(bench):
    assert bench.client_cpu_limit(1, 2, 0.5) == 1  # one thread: one core
    assert bench.client_cpu_limit(2, 2, 0.5) == 1.5  # what the server's quota leaves
    assert bench.client_cpu_limit(2, 2, None) == 2
    a = bench.parse_args(["--wrk-threads", "1"])
    assert bench.client_saturated(0.95, a) and not bench.client_saturated(0.6, a)


def test_default_is_the_budget_with_every_peer_and_the_floor(bench):
    a = bench.parse_args([])
    assert a.budget.cpus == 0.5 and not a.budget.disk_bound()
    assert a.servers == ["sluice", "nginx", "lighttpd", "h2o", "floor"]
    assert a.rounds == 5 and a.duration == 5 and a.workloads[-1] == "disk"
    assert a.cores == 1  # one worker under half a CPU
    assert a.disk_budget.mem == 32 << 20 and a.disk_budget.read_iops == 2000
    assert a.disk_budget.cpus == 0.5
    q = bench.parse_args(["--quick"])
    assert (q.rounds, q.duration, q.dirs, q.syscall_duration) == (3, 2, 20, 1)
    assert bench.parse_args(["--quick", "--rounds", "7"]).rounds == 7
    assert a.profile is None and not a.profile_peers
    assert bench.parse_args(["--profile"]).profile == "misses"
    assert bench.parse_args(["--profile-peers"]).profile == "misses"
    assert bench.parse_args(["--profile", "all", "--profile-peers"]).profile == "all"


def test_budget_off_and_other_options(bench):
    a = bench.parse_args(["--no-budget", "--no-floor", "--servers", "sluice,nginx",
                          "--workloads", "disk,1kib-50c,10kib"])
    assert a.budget.empty() and a.disk_budget.cpus is None
    assert a.servers == ["sluice", "nginx"]
    assert a.workloads == ["1kib", "10kib", "disk"]  # the old name; disk last
    assert bench.parse_args(["--server-cpus", "0.25"]).budget.cpus == 0.25
    for bad in (["--no-budget", "--server-cpus", "1"], ["--workloads", "nope"],
                ["--servers", "apache"], ["--client-flag", "2"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_base_variant_runs_the_second_binary(bench, tmp_path):
    """sluice-base: the --sluice-base binary with the same settings, so two
    builds are compared side by side in one run."""
    m = bench.SLUICE_VARIANT.match("sluice-base")
    assert m and m.group(12) == "base" and not m.group(10)
    m = bench.SLUICE_VARIANT.match("sluice-r2-noinline-base")
    assert m and m.group(6) == "2" and m.group(10) == "noinline" and m.group(12) == "base"
    assert not bench.SLUICE_VARIANT.match("sluice-base-r2")  # the order is fixed
    a = bench.parse_args(["--servers", "sluice,sluice-base", "--sluice-base", "/bin/true",
                          "--no-floor"])
    assert a.servers == ["sluice", "sluice-base"] and a.sluice_base == "/bin/true"
    a.use_cgroup = False  # what main() decides; no cgroup here
    srv = bench.Server("sluice-base", a, str(tmp_path), str(tmp_path))
    srv.port = 1
    assert srv.command()[0] == "/bin/true"
    srv = bench.Server("sluice", a, str(tmp_path), str(tmp_path))
    srv.port = 1
    assert srv.command()[0] == a.sluice


def test_floor_serves_only_fixed_sizes(bench):
    fixed = [w for w in bench.WORKLOADS if bench.serves("floor", w)]
    assert fixed == ["0kib", "1kib", "10kib", "100kib", "1kib-close", "1kib-2000c"]
    assert all(bench.serves("sluice", w) for w in bench.WORKLOADS)


def test_wrk_command_lines(bench):
    a = bench.parse_args(["--quick"])
    inputs = {"specweb": "/t/s.tsv", "100k": "/t/100k.txt", "all": "/t/all.txt"}
    close = bench.wrk_argv(a, "1kib-close", 8080, inputs, 2)
    assert close[1:3] == ["-H", "Connection: close"] and close[-1].endswith("/bench/1k.html")
    assert "-c2000" in bench.wrk_argv(a, "1kib-2000c", 8080, inputs, 2)
    disk = bench.wrk_argv(a, "disk", 8080, inputs, 2)
    assert "/t/all.txt" in disk and "-d2s" in disk
    assert bench.wrk_argv(a, "0kib", 1, inputs, 2)[-1].endswith("/bench/0k.html")


def test_report_and_plot_data(bench):
    ws = {"sluice": {"req_s": 110.0, "cpu_us_per_req": 9.0},
          "floor": {"req_s": 200.0, "cpu_us_per_req": 6.0}}
    text = bench.plot_data({"1kib": ws, "specweb": {"sluice": ws["sluice"]}},
                           ["sluice", "floor"], ["1kib", "specweb"])
    assert text.splitlines() == ["workload rps_sluice cpu_sluice rps_floor cpu_floor",
                                 "1kib 110.0 9.000 200.0 6.000", "specweb 110.0 9.000 - -"]
    runs = [dict(r, round=1) for r in (run("sluice", "1kib", 110, 9.0, sat=True),
                                       run("nginx", "1kib", 90, 12.0),
                                       run("floor", "1kib", 200, 6.0))]
    summary = bench.summarize(runs, ["sluice", "nginx", "floor"], ["1kib"])
    info = {k: "x" for k in ("cpus", "cpu_model", "memory", "kernel", "os", "wrk", "nginx",
                             "lighttpd", "h2o", "sluice")}
    meta = {"started": "now", "command": "c", "budget": "budget per server: 0.5 CPU",
            "cgroup": True, "duration": 2, "warmup": 1, "wrk_threads": 2, "rounds": 1,
            "docroot_files": 1, "dirs": 1, "seed": 1, "docroot_how": "x", "noisy": 0.1,
            "retries": 0, "describe": {"sluice": "s", "nginx": "n", "floor": "f"},
            "fairness": "fair", "threads": {}}
    md = bench.render(summary, ["sluice", "nginx", "floor"], ["1kib"], info, meta)
    assert "| 1kib | sluice | 110 | 1.00 | 9.0 | 1.50 |" in md
    assert "client-bound in 1/1" in md
    assert "| 1kib | 111,111 | 83,333 | 166,667 |" in md  # per CPU-second
    assert ("| 1kib | 1.22 (nginx) | 1.22 (1.22–1.22), 1/1 | 0.75 (nginx) | 0.75 (0.75–0.75), 1/1 | 1.50 | "
            "req/s yes, CPU yes, floor **no** |") in md
    assert "disk KiB/req" not in md  # no disk budget: no disk table


def test_disk_and_memory_table(bench):
    runs = [dict(run("sluice", "disk", r, 80.0), disk_kb_per_req=kb, disk_ios_per_req=0.4,
                 mem_anon_mb=2.5, mem_cache_mb=28.0) for r, kb in ((1150, 90.0), (1200, 86.0),
                                                                    (1100, 93.0))]
    runs += [dict(run("h2o", "disk", 1040, 100.0), disk_kb_per_req=97.0, disk_ios_per_req=0.9,
                  mem_anon_mb=2.1, mem_cache_mb=30.5)]
    runs += [run("sluice", "1kib", 110, 9.0)]  # no budget there: no row
    s = bench.summarize(runs, ["sluice", "h2o"], ["1kib", "disk"])
    assert s["disk"]["sluice"]["disk_kb_per_req"] == 90.0  # the median
    assert "disk_kb_per_req" not in s["1kib"]["sluice"]
    lines = bench.disk_table(s, ["sluice", "h2o"], ["1kib", "disk"])
    assert "| disk | sluice | 90.0 | 0.40 | 2.5 | 28.0 |" in lines
    assert "| disk | h2o | 97.0 | 0.90 | 2.1 | 30.5 |" in lines
    assert not any(x.startswith("| 1kib") for x in lines)
    assert bench.disk_table(s, ["sluice"], ["1kib"]) == []


# ---------------------------------------------------------------- the floor


def recv_response(f):
    """One HTTP response from F (a socket's makefile("rb")): (head, body),
    by Content-Length."""
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed before a response"
        if line == b"\r\n":
            break
        lines.append(line.decode().rstrip("\r\n"))
    length = int([h.split(":")[1] for h in lines if h.lower().startswith("content-length:")][0])
    body = f.read(length)
    assert len(body) == length, "connection closed inside a body"
    return "\r\n".join(lines), body


@pytest.fixture
def floor(bench, tmp_path):
    """The floor, compiled as the bench compiles it, on a free loopback port."""
    docroot = tmp_path / "www"
    bench.write_bench_files(str(docroot), 1)
    binary = bench.build_floor(str(tmp_path))
    port = bench.free_port()
    p = subprocess.Popen([binary, "127.0.0.1", str(port), str(docroot)] + bench.floor_paths(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert p.poll() is None, p.stderr.read().decode()
                assert time.time() < deadline, "the floor did not listen within 5 s"
                time.sleep(0.02)
        yield port, docroot
    finally:
        p.kill()
        p.wait(timeout=5)
        p.stderr.close()


def test_floor_answers_keep_alive_then_close(floor):
    port, docroot = floor
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        s.sendall(b"GET /bench/1k.html HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = recv_response(f)
        assert head.startswith("HTTP/1.1 200 ") and "connection: close" not in head.lower()
        assert body == (docroot / "bench" / "1k.html").read_bytes()
        # two pipelined requests: the second asks to close
        s.sendall(b"GET /bench/100k/f007.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /bench/0k.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body = recv_response(f)
        assert body == (docroot / "bench" / "100k" / "f007.bin").read_bytes()
        head, body = recv_response(f)
        assert "Connection: close" in head and body == b""
        assert f.read(1) == b""  # and it closed


def test_floor_says_404_for_what_it_does_not_hold(floor):
    port, _ = floor
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        s.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
        head, _ = recv_response(f)
        assert head.startswith("HTTP/1.1 404 ")
        assert f.read(1) == b""  # HTTP/1.0 without keep-alive: closed
