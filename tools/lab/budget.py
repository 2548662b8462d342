"""Servers under a budget: each server under test runs in its own cgroup with
a CPU quota (10 ms period), an optional cpuset, a memory limit (page cache
included) and read limits on the block device that holds the docroot. The
load generator is never put in one.

cgroup v2 is used where it is mounted with the controllers the budget needs
(cpu.max "Q 10000", memory.max, io.max, cpu.stat usage_usec); cgroup v1
otherwise (cpu.cfs_quota_us / cfs_period_us, cpuset.cpus, memory.limit_in_bytes,
blkio.throttle.read_bps_device / read_iops_device, cpuacct.usage).

A process is placed in its cgroups by the child itself, between fork and exec
(Cgroup.preexec), so every thread and worker process it makes is inside.
Every cgroup made here is registered and removed at exit (processes still in
it are killed first), also on an error or Ctrl-C: call cleanup_all() from a
finally block; it is also registered with atexit.
"""

import atexit
import errno
import os
import re
import signal
import time

PERIOD_US = 10000  # a short period: throttling adds no stalls of its own
V1_ROOT = "/sys/fs/cgroup"


class BudgetError(Exception):
    pass


# ---------------------------------------------------------------- parsing

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*$")


def parse_size(text, what="size"):
    """'32M', '32MiB', '1.5G', '4096' -> bytes (K/M/G/T are powers of 1024)."""
    m = _SIZE.match(str(text))
    if not m:
        raise BudgetError(f"{what} {text!r}: expected a number with an optional K, M, G "
                          "or T suffix (powers of 1024), e.g. 32M")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    v = int(float(m.group(1)) * mult)
    if v <= 0:
        raise BudgetError(f"{what} {text!r}: must be positive")
    return v


def parse_rate(text, what="rate"):
    """'100M', '100MB', '100MB/s' -> bytes per second (powers of 1000 for
    rates, as disks are quoted; 'MiB' is 1024-based)."""
    t = str(text).strip()
    if t.endswith("/s"):
        t = t[:-2]
    m = _SIZE.match(t)
    if not m:
        raise BudgetError(f"{what} {text!r}: expected e.g. 100M or 100MB/s")
    base = 1024 if m.group(3) else 1000
    mult = base ** ("kmgt".index(m.group(2).lower()) + 1) if m.group(2) else 1
    v = int(float(m.group(1)) * mult)
    if v <= 0:
        raise BudgetError(f"{what} {text!r}: must be positive")
    return v


def parse_cpuset(text):
    """'0', '1-3', '0,2' -> the same text, checked."""
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", str(text).strip()):
        raise BudgetError(f"--server-cpuset {text!r}: expected a CPU list such as 1 or 0-1 or 0,2")
    return str(text).strip()


def human_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % (size // 16) == 0:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def human_rate(n):
    for unit, size in (("GB/s", 10 ** 9), ("MB/s", 10 ** 6), ("kB/s", 10 ** 3)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B/s"


# ---------------------------------------------------------------- the budget


class Budget:
    """What every server under test is confined to. Empty: no limits."""

    def __init__(self, cpus=None, cpuset=None, mem=None, read_bps=None, read_iops=None):
        self.cpus = float(cpus) if cpus is not None else None
        if self.cpus is not None and not (0.01 <= self.cpus <= 1024):
            raise BudgetError(f"--server-cpus {cpus}: expected a CPU share such as 0.25 or 1.5")
        self.cpuset = parse_cpuset(cpuset) if cpuset else None
        self.mem = parse_size(mem, "--server-mem") if mem is not None else None
        if self.mem is not None and self.mem < (4 << 20):
            raise BudgetError(f"--server-mem {mem}: at least 4 MiB, or the server cannot start")
        self.read_bps = parse_rate(read_bps, "--disk-read-bps") if read_bps is not None else None
        self.read_iops = int(read_iops) if read_iops is not None else None
        if self.read_iops is not None and self.read_iops <= 0:
            raise BudgetError(f"--disk-read-iops {read_iops}: must be positive")

    @classmethod
    def from_args(cls, args):
        return cls(getattr(args, "server_cpus", None), getattr(args, "server_cpuset", None),
                   getattr(args, "server_mem", None), getattr(args, "disk_read_bps", None),
                   getattr(args, "disk_read_iops", None))

    def empty(self):
        return not (self.cpus or self.cpuset or self.mem or self.read_bps or self.read_iops)

    def disk_bound(self):
        """Steps under this budget start cold (the page cache is limited or
        the disk is throttled, so what is cached matters)."""
        return bool(self.mem or self.read_bps or self.read_iops)

    def describe(self):
        """One line for reports and plot titles."""
        if self.empty():
            return "no budget (servers share the whole machine with the client)"
        parts = []
        if self.cpus:
            parts.append(f"{self.cpus:g} CPU")
        if self.cpuset:
            parts.append(f"CPUs {self.cpuset}")
        if self.mem:
            parts.append(f"{human_bytes(self.mem)} memory incl. page cache")
        if self.read_bps:
            parts.append(f"disk reads {human_rate(self.read_bps)}")
        if self.read_iops:
            parts.append(f"{self.read_iops} read IOPS")
        return "budget per server: " + ", ".join(parts)

    def argv(self):
        """The options that give this budget (for the command line shown)."""
        out = []
        if self.cpus:
            out += ["--server-cpus", f"{self.cpus:g}"]
        if self.cpuset:
            out += ["--server-cpuset", self.cpuset]
        if self.mem:
            out += ["--server-mem", str(self.mem)]
        if self.read_bps:
            out += ["--disk-read-bps", str(self.read_bps)]
        if self.read_iops:
            out += ["--disk-read-iops", str(self.read_iops)]
        return out


def add_arguments(parser):
    """The budget options, the same in sluice-sweep and sluice-bench."""
    g = parser.add_argument_group("budget (each server in its own cgroup; the client outside)")
    g.add_argument("--server-cpus", type=float, metavar="C",
                   help="CPU quota per server, e.g. 0.25 or 1.5 (10 ms period)")
    g.add_argument("--server-cpuset", metavar="LIST", help="CPUs each server may run on, e.g. 1")
    g.add_argument("--server-mem", metavar="SIZE",
                   help="memory per server, page cache included, e.g. 32M")
    g.add_argument("--disk-read-bps", metavar="RATE",
                   help="read bandwidth on the docroot's block device, e.g. 100M (bytes/s)")
    g.add_argument("--disk-read-iops", type=int, metavar="N",
                   help="read operations per second on the docroot's block device")
    return g


# ---------------------------------------------------------------- devices


def block_device(path):
    """'MAJ:MIN' of the whole disk holding PATH (a partition's parent disk:
    the throttle applies to disks)."""
    st = os.stat(path)
    maj, mnt = os.major(st.st_dev), os.minor(st.st_dev)
    if maj == 0:
        raise BudgetError(f"{path} is on a filesystem without a block device (device 0:{mnt}, "
                          "e.g. tmpfs or overlay): the disk limits need the docroot on a "
                          "disk; put --fileset/--docroot on one")
    sysdir = f"/sys/dev/block/{maj}:{mnt}"
    if os.path.exists(os.path.join(sysdir, "partition")):
        parent = os.path.realpath(os.path.join(sysdir, ".."))
        try:
            with open(os.path.join(parent, "dev")) as f:
                return f.read().strip()
        except OSError:
            pass
    return f"{maj}:{mnt}"


def evict(root):
    """posix_fadvise(DONTNEED) over every file under ROOT: the next reads
    come from the disk. Returns the number of files."""
    n = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            finally:
                os.close(fd)
    return n


def start_cold(root, drop_all=False):
    """Before a disk-bound step: the fileset leaves the page cache. With
    DROP_ALL (and root), the whole page cache is dropped instead."""
    if drop_all:
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return "dropped the page cache"
        except OSError as e:
            raise BudgetError(f"--drop-caches: cannot write /proc/sys/vm/drop_caches ({e}); "
                              "run as root, or leave it out to evict only the fileset")
    # dirty pages stay in the page cache through DONTNEED: a fileset written
    # just before (by tools/sluice-fileset) would be served from memory,
    # charged to no server's cgroup, on the first run
    os.sync()
    n = evict(root)
    return f"evicted {n} fileset files from the page cache"


# ---------------------------------------------------------------- cgroups


def _own_path(controller):
    """This process's cgroup path in a v1 hierarchy ('name' in the list), or
    the v2 path for controller None."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller is None and hid == "0" and ctrls == "":
                return path
            if controller is not None and controller in ctrls.split(","):
                return path
    return None


def _v2_root():
    """The mount point of cgroup v2, if mounted."""
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    return None


def _v1_mount(controller):
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[2] == "cgroup" and controller in parts[3].split(","):
                return parts[1]
    return None


def _write(path, value):
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        what = ("permission denied (run as root or delegate the cgroup)"
                if e.errno in (errno.EACCES, errno.EPERM) else e.strerror)
        raise BudgetError(f"cannot write {value.strip()!r} to {path}: {what}") from e


def _read(path):
    with open(path) as f:
        return f.read()


def parse_cpu_stat(text):
    """CPU time in ns from the text of a v2 cpu.stat (its usage_usec line);
    0 when the line is missing."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "usage_usec":
            return int(parts[1]) * 1000
    return 0


_LIVE = []  # every Cgroup not yet removed


def parse_kv(text):
    """'key value' lines (memory.stat) as a dict of ints."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2:
            try:
                out[f[0]] = int(f[1])
            except ValueError:
                pass
    return out


def parse_blkio_v1(text, device):
    """The Read count of DEVICE ('MAJ:MIN') in a v1 blkio.throttle.io_service_bytes
    or io_serviced file; 0 when it has no line for it yet."""
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == device and f[1] == "Read":
            return int(f[2])
    return 0


def parse_io_stat(text, device):
    """(rbytes, rios) of DEVICE in a v2 io.stat; zeros when it has no line yet."""
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == device:
            kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
            return int(kv.get("rbytes", 0)), int(kv.get("rios", 0))
    return 0, 0


class Cgroup:
    """One server's cgroup(s): a directory per v1 hierarchy, or one in v2."""

    def __init__(self, name, budget, docroot=None):
        self.name = name
        self.budget = budget
        self.dirs = {}  # controller (v1) or 'v2' -> directory
        self.version = None
        self.device = block_device(docroot) if (budget.read_bps or budget.read_iops) else None
        _LIVE.append(self)
        try:
            self._make()
        except BaseException:
            self.remove()
            raise

    # -- setup

    def _v2_usable(self, need):
        root = _v2_root()
        if not root:
            return None
        try:
            have = set(_read(os.path.join(root, "cgroup.controllers")).split())
        except OSError:
            return None
        return root if need <= have else None

    def _make(self):
        b = self.budget
        need2 = {"cpu"} | ({"memory"} if b.mem else set()) | (
            {"io"} if self.device else set()) | ({"cpuset"} if b.cpuset else set())
        root2 = self._v2_usable(need2)
        if root2:
            self.version = 2
            self._make_v2(root2, need2)
        else:
            self.version = 1
            self._make_v1()

    def _make_v2(self, root, need):
        # Under the root, where controllers can always be enabled for
        # children (a non-root cgroup with processes cannot).
        top = os.path.join(root, "sluice-lab")
        if not os.path.isdir(top):
            self._mkdir(top)
            _V2_TOPS.add(top)
        ctl = " ".join("+" + c for c in sorted(need))
        _write(os.path.join(root, "cgroup.subtree_control"), ctl)
        _write(os.path.join(top, "cgroup.subtree_control"), ctl)
        d = os.path.join(top, f"{self.name}-{os.getpid()}")
        self._mkdir(d)
        self.dirs["v2"] = d
        b = self.budget
        if b.cpus:
            _write(os.path.join(d, "cpu.max"), f"{int(b.cpus * PERIOD_US)} {PERIOD_US}\n")
        if b.cpuset:
            _write(os.path.join(d, "cpuset.cpus"), b.cpuset + "\n")
        if b.mem:
            _write(os.path.join(d, "memory.max"), f"{b.mem}\n")
            try:
                _write(os.path.join(d, "memory.swap.max"), "0\n")
            except BudgetError:
                pass
        if self.device:
            lim = []
            if b.read_bps:
                lim.append(f"rbps={b.read_bps}")
            if b.read_iops:
                lim.append(f"riops={b.read_iops}")
            _write(os.path.join(d, "io.max"), f"{self.device} {' '.join(lim)}\n")

    def _mkdir(self, d):
        try:
            os.mkdir(d)
        except FileExistsError:
            pass
        except OSError as e:
            what = ("permission denied (run as root or delegate the cgroup)"
                    if e.errno in (errno.EACCES, errno.EPERM) else e.strerror)
            raise BudgetError(f"cannot create cgroup {d}: {what}") from e

    def _v1_dir(self, controller):
        mnt = _v1_mount(controller)
        if not mnt:
            raise BudgetError(
                f"no cgroup controller '{controller}': neither cgroup v2 with it nor a v1 "
                f"hierarchy for it is mounted (the budget needs it; mount it, e.g. "
                f"mount -t cgroup -o {controller} none /sys/fs/cgroup/{controller})")
        own = _own_path(controller) or "/"
        d = os.path.join(mnt, own.lstrip("/"), f"sluice-lab-{self.name}-{os.getpid()}")
        self._mkdir(d)
        self.dirs[controller] = d
        return d

    def _make_v1(self):
        b = self.budget
        # cpuacct always (CPU time per request); the others as the budget says.
        self._v1_dir("cpuacct")
        if b.cpus:
            d = self._v1_dir("cpu")
            _write(os.path.join(d, "cpu.cfs_period_us"), f"{PERIOD_US}\n")
            _write(os.path.join(d, "cpu.cfs_quota_us"), f"{int(b.cpus * PERIOD_US)}\n")
        if b.cpuset:
            d = self._v1_dir("cpuset")
            parent = os.path.dirname(d)
            _write(os.path.join(d, "cpuset.cpus"), b.cpuset + "\n")
            _write(os.path.join(d, "cpuset.mems"), _read(os.path.join(parent, "cpuset.mems")))
        if b.mem:
            d = self._v1_dir("memory")
            _write(os.path.join(d, "memory.limit_in_bytes"), f"{b.mem}\n")
            try:  # no swap either, where the kernel accounts it
                _write(os.path.join(d, "memory.memsw.limit_in_bytes"), f"{b.mem}\n")
            except BudgetError:
                pass
        if self.device:
            d = self._v1_dir("blkio")
            if b.read_bps:
                _write(os.path.join(d, "blkio.throttle.read_bps_device"),
                       f"{self.device} {b.read_bps}\n")
            if b.read_iops:
                _write(os.path.join(d, "blkio.throttle.read_iops_device"),
                       f"{self.device} {b.read_iops}\n")

    # -- use

    def preexec(self):
        """For Popen(preexec_fn=...): the child moves itself in before exec."""
        pid = f"{os.getpid()}\n"
        for d in self.dirs.values():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(pid)

    def procs(self):
        pids = set()
        for d in self.dirs.values():
            try:
                pids |= {int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()}
            except OSError:
                pass
        return pids

    def cpu_ns(self):
        """CPU time used by everything ever in this cgroup, ns."""
        if "v2" in self.dirs:
            return parse_cpu_stat(_read(os.path.join(self.dirs["v2"], "cpu.stat")))
        return int(_read(os.path.join(self.dirs["cpuacct"], "cpuacct.usage")))

    def disk_reads(self):
        """(bytes, I/Os) read from the budget's block device by everything
        ever in this cgroup, or None when it has no disk budget."""
        if not self.device:
            return None
        try:
            if "v2" in self.dirs:
                return parse_io_stat(_read(os.path.join(self.dirs["v2"], "io.stat")),
                                     self.device)
            if "blkio" not in self.dirs:
                return None
            d = self.dirs["blkio"]
            return (parse_blkio_v1(_read(os.path.join(d, "blkio.throttle.io_service_bytes")),
                                   self.device),
                    parse_blkio_v1(_read(os.path.join(d, "blkio.throttle.io_serviced")),
                                   self.device))
        except OSError:
            return None

    def memory(self):
        """(anonymous, page cache) bytes charged to this cgroup now, or None
        without a memory budget: the server's own memory beside the file
        pages it shares the limit with."""
        if not self.budget.mem:
            return None
        try:
            if "v2" in self.dirs:
                st = parse_kv(_read(os.path.join(self.dirs["v2"], "memory.stat")))
                return st.get("anon", 0), st.get("file", 0)
            if "memory" not in self.dirs:
                return None
            st = parse_kv(_read(os.path.join(self.dirs["memory"], "memory.stat")))
            return st.get("rss", 0), st.get("cache", 0)
        except OSError:
            return None

    def paths(self):
        """What /proc/PID/cgroup shows for a member, per hierarchy."""
        return dict(self.dirs)

    def kill(self, timeout=5.0):
        """SIGKILL whatever is still inside, and wait (bounded) until empty."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.procs()
            if not pids:
                return True
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def remove(self):
        """Kill what is left, then rmdir every directory (bounded retries)."""
        self.kill()
        for key, d in list(self.dirs.items()):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            self.dirs.pop(key, None)
        if self in _LIVE:
            _LIVE.remove(self)


_V2_TOPS = set()  # v2 parents made here ("sluice-lab"), removed at the end when empty


def cleanup_all():
    """Removes every cgroup this process made and has not removed yet."""
    for cg in list(_LIVE):
        try:
            cg.remove()
        except Exception:  # cleanup goes on with the next one
            pass
    for top in list(_V2_TOPS):
        try:
            os.rmdir(top)  # fails while another run still has a cgroup in it: fine
        except OSError:
            pass
        _V2_TOPS.discard(top)


atexit.register(cleanup_all)


def check(budget, docroot=None):
    """Makes and removes a trial cgroup: a clear error before any server
    starts when the budget cannot be applied here."""
    cg = Cgroup("check", budget, docroot)
    v = cg.version
    cg.remove()
    return v
