"""The servers under test, configured the same way in sluice-bench and
sluice-sweep: sluice from a copy of its config with a few keys overridden,
nginx, lighttpd and h2o from the templates in tools/bench/*.conf.in (sendfile
where the server has it, keep-alive without a request limit, an open-file
cache, no access log, the same number of workers for every peer).

The peers come from Debian (tools/install-deps.sh installs them when missing,
never starting their services)."""

import os
import re
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_DIR = os.path.join(REPO, "tools", "bench")
PEERS = ("nginx", "lighttpd", "h2o")
BINARIES = {"nginx": "/usr/sbin/nginx", "lighttpd": "/usr/sbin/lighttpd", "h2o": "/usr/bin/h2o"}


class PeerError(Exception):
    pass


def render_conf(text, overrides):
    """TEXT (an INI file) with OVERRIDES {(section, key): value} applied:
    existing keys are replaced in place, missing ones added to their section,
    missing sections appended. Comments and order are kept."""
    lines = text.splitlines()
    out, section, done = [], None, set()

    def flush_missing(sec):
        for (s, k), v in overrides.items():
            if s == sec and (s, k) not in done:
                out.append(f"{k} = {v}")
                done.add((s, k))

    for line in lines:
        m = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if m:
            flush_missing(section)
            section = m.group(1).strip()
            out.append(line)
            continue
        m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if m and (section, m.group(1)) in overrides:
            key = m.group(1)
            out.append(f"{key} = {overrides[(section, key)]}")
            done.add((section, key))
            continue
        out.append(line)
    flush_missing(section)
    for (s, k), v in overrides.items():
        if (s, k) not in done:
            out.append(f"[{s}]")
            out.append(f"{k} = {v}")
            done.add((s, k))
    return "\n".join(out) + "\n"


def fill_template(name, values):
    with open(os.path.join(BENCH_DIR, name)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z]+@", text)
    if left:
        raise PeerError(f"{name}: unfilled {left}")
    return text


def workers_for(budget_cpus, ncpu):
    """Worker processes/threads for every peer: one per CPU the server may
    use (one under a quota below 1.5 CPUs)."""
    if budget_cpus:
        return max(1, int(budget_cpus + 0.5))
    return ncpu


def peer_command(name, workdir, host, port, docroot, workers):
    """Writes NAME's config into WORKDIR; returns its argv (foreground)."""
    vals = {"TMP": workdir, "HOST": host, "PORT": port, "DOCROOT": docroot}
    root = os.geteuid() == 0
    if name == "nginx":
        vals.update(WORKERS=workers, USER="user root;" if root else "")
        conf = os.path.join(workdir, "nginx.conf")
        text = fill_template("nginx.conf.in", vals)
        argv = [BINARIES["nginx"], "-c", conf, "-p", workdir + "/"]
    elif name == "lighttpd":
        vals.update(WORKERS=workers if workers > 1 else 0, USER="")
        conf = os.path.join(workdir, "lighttpd.conf")
        text = fill_template("lighttpd.conf.in", vals)
        argv = [BINARIES["lighttpd"], "-D", "-f", conf]
    elif name == "h2o":
        vals.update(THREADS=workers, USER="user: root" if root else "")
        conf = os.path.join(workdir, "h2o.conf")
        text = fill_template("h2o.conf.in", vals)
        argv = [BINARIES["h2o"], "-m", "worker", "-c", conf]
    else:
        raise PeerError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    with open(conf, "w") as f:
        f.write(text)
    return argv


def describe(name, workers):
    if name == "nginx":
        return f"nginx, worker_processes {workers} (+ master)"
    if name == "lighttpd":
        return (f"lighttpd, server.max-worker = {workers} (+ supervising parent)"
                if workers > 1 else "lighttpd, one process (server.max-worker = 0)")
    if name == "h2o":
        return f"h2o, num-threads {workers}"
    return name


def missing(names):
    return [n for n in names if n in BINARIES and not os.access(BINARIES[n], os.X_OK)
            and not shutil.which(n)]


def ensure_installed(names, log=print):
    """Installs the peers NAMES that are missing with tools/install-deps.sh."""
    miss = missing(names)
    if not miss:
        return
    log(f"installing missing {', '.join(miss)} with tools/install-deps.sh")
    subprocess.run([os.path.join(REPO, "tools", "install-deps.sh")], check=True, timeout=1800)
    still = missing(names)
    if still:
        raise PeerError(f"{', '.join(still)} still missing after tools/install-deps.sh")


def version(name):
    argv = {"nginx": ["nginx", "-v"], "lighttpd": ["lighttpd", "-v"],
            "h2o": ["h2o", "--version"]}.get(name)
    if not argv:
        return "?"
    argv[0] = BINARIES.get(name, argv[0])
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (p.stdout + p.stderr).strip().splitlines()
    if not text:
        return "?"
    return text[0].replace("nginx version: ", "").split(" - ")[0]
