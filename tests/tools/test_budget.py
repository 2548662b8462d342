"""The budget (tools/lab/budget.py): option parsing, the block device of the
docroot, and a real cgroup when this machine allows one (root with cgroup v1
or v2): a process started in it is in it (read from /proc), the limits are
written, the CPU time is read, and everything is gone after remove()."""

import os
import subprocess
import sys
import time

import pytest

from lab import budget as B


def test_parse_size_and_rate():
    assert B.parse_size("32M") == 32 << 20
    assert B.parse_size("32MiB") == 32 << 20
    assert B.parse_size("1.5G") == 3 << 29
    assert B.parse_size("4096") == 4096
    assert B.parse_rate("100M") == 100_000_000
    assert B.parse_rate("100MB/s") == 100_000_000
    assert B.parse_rate("1MiB") == 1 << 20
    for bad in ("", "lots", "-1M", "0"):
        with pytest.raises(B.BudgetError):
            B.parse_size(bad)
    with pytest.raises(B.BudgetError, match="--disk-read-bps"):
        B.Budget(read_bps="fast")


def test_budget_checks_and_describes():
    b = B.Budget(cpus=0.25, mem="32M", read_bps="100M", read_iops=2000, cpuset="1")
    text = b.describe()
    for part in ("0.25 CPU", "CPUs 1", "32 MiB memory", "100 MB/s", "2000 read IOPS"):
        assert part in text
    assert b.disk_bound() and not b.empty()
    assert B.Budget(cpus=0.5).disk_bound() is False
    assert "no budget" in B.Budget().describe()
    with pytest.raises(B.BudgetError, match="--server-cpus"):
        B.Budget(cpus=0)
    with pytest.raises(B.BudgetError, match="--server-cpuset"):
        B.Budget(cpuset="one")
    with pytest.raises(B.BudgetError, match="--server-mem"):
        B.Budget(mem="1K")
    with pytest.raises(B.BudgetError, match="--disk-read-iops"):
        B.Budget(read_iops=-5)


def test_block_device_of_a_filesystem_without_one():
    if not os.path.ismount("/dev/shm") and not os.path.isdir("/proc/self"):
        pytest.skip("no device-less filesystem to try")
    with pytest.raises(B.BudgetError, match="without a block device"):
        B.block_device("/proc/self")


def test_block_device_is_a_whole_disk():
    dev = B.block_device(os.path.dirname(os.path.abspath(__file__)))
    maj, mnt = dev.split(":")
    if maj == "0":
        pytest.skip("the tests live on a filesystem without a block device")
    assert not os.path.exists(f"/sys/dev/block/{dev}/partition")


def test_missing_controller_is_named(monkeypatch):
    monkeypatch.setattr(B, "_v2_root", lambda: None)
    monkeypatch.setattr(B, "_v1_mount", lambda c: None)
    with pytest.raises(B.BudgetError, match="no cgroup controller 'cpuacct'"):
        B.Cgroup("nope", B.Budget(cpus=0.5))
    assert not B._LIVE


def cgroup_or_skip(budget, docroot=None):
    try:
        return B.Cgroup("test", budget, docroot)
    except B.BudgetError as e:
        pytest.skip(f"no cgroup here: {e}")


def test_process_runs_inside_and_everything_is_removed(tmp_path):
    b = B.Budget(cpus=0.25, mem="64M")
    cg = cgroup_or_skip(b)
    dirs = dict(cg.dirs)
    p = subprocess.Popen([sys.executable, "-c",
                          "import os,time\nif os.fork()==0: time.sleep(60)\ntime.sleep(60)"],
                         preexec_fn=cg.preexec)
    try:
        deadline = time.monotonic() + 5
        while len(cg.procs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(cg.procs()) == 2  # the process and its child, both inside
        with open(f"/proc/{p.pid}/cgroup") as f:
            lines = f.read()
        for d in dirs.values():
            assert os.path.basename(d) in lines
        if cg.version == 1:
            assert open(os.path.join(dirs["cpu"], "cpu.cfs_quota_us")).read().strip() == "2500"
            assert open(os.path.join(dirs["cpu"], "cpu.cfs_period_us")).read().strip() == "10000"
            assert int(open(os.path.join(dirs["memory"],
                                         "memory.limit_in_bytes")).read()) == 64 << 20
        else:
            assert open(os.path.join(dirs["v2"], "cpu.max")).read().split() == ["2500", "10000"]
        assert cg.cpu_ns() > 0
        assert os.getpid() not in cg.procs()  # the caller stays outside
    finally:
        cg.remove()
        p.wait(timeout=10)
    assert p.returncode == -9  # killed by remove()
    for d in dirs.values():
        assert not os.path.exists(d)
    assert cg not in B._LIVE


def test_disk_limits_on_the_docroot_device(tmp_path):
    try:
        dev = B.block_device(str(tmp_path))
    except B.BudgetError:
        pytest.skip("tmp is not on a block device")
    cg = cgroup_or_skip(B.Budget(read_bps="100M", read_iops=2000), str(tmp_path))
    try:
        assert cg.device == dev
        if cg.version == 1:
            d = cg.dirs["blkio"]
            assert open(os.path.join(d, "blkio.throttle.read_bps_device")).read().split() == [
                dev, "100000000"]
            assert open(os.path.join(d, "blkio.throttle.read_iops_device")).read().split() == [
                dev, "2000"]
        else:
            line = open(os.path.join(cg.dirs["v2"], "io.max")).read()
            assert dev in line and "rbps=100000000" in line and "riops=2000" in line
    finally:
        cg.remove()


def test_cleanup_all_removes_what_is_left():
    cg = cgroup_or_skip(B.Budget(cpus=0.5))
    dirs = list(cg.dirs.values())
    B.cleanup_all()
    assert not any(os.path.exists(d) for d in dirs)
    assert not B._LIVE


def test_evict_counts_files(tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(b"x" * 4096)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "g").write_bytes(b"y")
    assert B.evict(str(tmp_path)) == 4


def test_parse_memory_and_disk_accounting():
    assert B.parse_kv("cache 4096\nrss 8192\nhierarchical_memory_limit x\n\n") == {
        "cache": 4096, "rss": 8192}
    v1 = ("254:0 Read 1048576\n254:0 Write 4096\n254:0 Sync 0\n254:0 Async 1052672\n"
          "254:16 Read 7\nTotal 1052679\n")
    assert B.parse_blkio_v1(v1, "254:0") == 1048576
    assert B.parse_blkio_v1(v1, "254:16") == 7
    assert B.parse_blkio_v1("Total 0\n", "254:0") == 0  # nothing read yet
    v2 = ("8:0 rbytes=100 wbytes=0 rios=3 wios=0 dbytes=0 dios=0\n"
          "254:0 rbytes=2097152 wbytes=4096 rios=16 wios=1 dbytes=0 dios=0\n")
    assert B.parse_io_stat(v2, "254:0") == (2097152, 16)
    assert B.parse_io_stat(v2, "253:0") == (0, 0)


def test_a_file_just_written_is_read_from_the_disk_after_start_cold(tmp_path):
    """start_cold writes dirty pages back first (fadvise leaves them in the
    page cache), so a read inside the cgroup comes from the disk and is
    charged to it: 4 MiB read, 4 MiB charged."""
    try:
        B.block_device(str(tmp_path))
    except B.BudgetError:
        pytest.skip("tmp is not on a block device")
    path = tmp_path / "fresh.bin"
    path.write_bytes(os.urandom(4 << 20))  # dirty in the page cache now
    cg = cgroup_or_skip(B.Budget(mem="64M", read_bps="1G"), str(tmp_path))
    try:
        before = cg.disk_reads()
        assert before is not None
        assert "evicted 1 fileset files" in B.start_cold(str(tmp_path))
        p = subprocess.run([sys.executable, "-c",
                            f"open({str(path)!r}, 'rb').read()"], preexec_fn=cg.preexec)
        assert p.returncode == 0
        after = cg.disk_reads()
        assert after[0] - before[0] >= 4 << 20, (before, after)
        assert after[1] > before[1]
        anon, cache = cg.memory()
        assert cache >= 4 << 20 and anon >= 0
    finally:
        cg.remove()


def test_no_disk_reads_without_a_disk_budget():
    cg = cgroup_or_skip(B.Budget(cpus=0.5))
    try:
        assert cg.disk_reads() is None and cg.memory() is None
    finally:
        cg.remove()
