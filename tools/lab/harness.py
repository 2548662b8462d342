"""One sluice daemon, as the integration tests and the lab's tools start it:
its config written, the process started, ready when its HTTP port and status
socket both accept, spoken to over the status socket (lab.status), stopped
with SIGTERM. Standard library only; loopback only.

What only a tool needs (cgroups, process groups of peers like nginx, taskset)
stays in the tool: it passes a preexec_fn, a command prefix or new_session."""

import os
import signal
import socket
import subprocess
import time

from lab import status

HOST = "127.0.0.1"


class SluiceError(Exception):
    pass


def free_port(host=HOST):
    """A TCP port free on HOST now (the kernel's pick; racy, as every such
    helper is, but the daemon's listen error says so if it lost)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def conf_text(sections):
    """SECTIONS {section: {key: value}} as sluice's INI text; True/False are
    written yes/no."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for k, v in keys.items():
            if isinstance(v, bool):
                v = "yes" if v else "no"
            lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def accepts(port, status_socket=None, host=HOST):
    """True if HOST:PORT accepts a TCP connection and, when given, so does
    STATUS_SOCKET. sluice opens its status socket after its listener, so both
    up means the daemon is up. Each call costs the daemon one connection."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    if status_socket:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
                u.settimeout(0.5)
                u.connect(str(status_socket))
        except OSError:
            return False
    return True


class Sluice:
    """One sluice process: BINARY -c CONF_PATH, serving on HOST:PORT, with
    its status socket at STATUS_SOCKET (None: not configured) and stdout and
    stderr appended to LOG_PATH. Writing CONF_PATH is the caller's
    (conf_text() or lab.peers.render_conf()). Failures raise ERROR (the
    caller's exception class: AssertionError in the tests)."""

    def __init__(self, binary, conf_path, port, status_socket=None, log_path=None, cwd=None,
                 name="sluice", host=HOST, error=SluiceError):
        self.binary = str(binary)
        self.conf_path = conf_path
        self.port = port
        self.host = host
        self.status_socket = str(status_socket) if status_socket else None
        self.cwd = str(cwd) if cwd is not None else os.path.dirname(str(conf_path))
        self.log_path = log_path or os.path.join(self.cwd, f"{name}.log")
        self.name = name
        self.error = error
        self.proc = None
        self.logf = None

    # -- the process --

    def start(self, wait=True, timeout=10.0, prefix=(), preexec_fn=None, new_session=False,
              env=None):
        """Starts the daemon (PREFIX: a command to run it under, e.g.
        taskset) and, with WAIT, waits for it to be ready. Returns self."""
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*prefix, self.binary, "-c", str(self.conf_path)],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.cwd, env=env,
                                     preexec_fn=preexec_fn, start_new_session=new_session)
        if wait:
            self.wait_ready(timeout)
        return self

    def ready(self):
        """The daemon is up (see accepts()); ERROR if it has exited."""
        if self.proc.poll() is not None:
            self.close_log()
            raise self.error(f"{self.name} exited with {self.proc.returncode} at start; "
                             f"log {self.log_path}:\n{self.log_tail()}")
        return accepts(self.port, self.status_socket, self.host)

    def wait_ready(self, timeout=10.0, step=0.02):
        """Polls ready() every STEP seconds; after TIMEOUT kills the daemon
        and raises ERROR."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.close_log()
                raise self.error(f"{self.name} did not accept on port {self.port} within "
                                 f"{timeout}s; log {self.log_path}:\n{self.log_tail()}")
            time.sleep(step)

    def stop(self, timeout=15.0):
        """SIGTERM, wait up to TIMEOUT; returns the exit status (None if never
        started). If it does not exit: SIGKILL, then ERROR."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.close_log()
                raise self.error(f"{self.name} (pid {self.proc.pid}) did not exit within "
                                 f"{timeout}s of SIGTERM:\n{self.log_tail()}")
        self.close_log()
        return self.proc.returncode

    def close_log(self):
        if self.logf:
            self.logf.close()
            self.logf = None

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    # -- the status socket --

    def connect(self, timeout=10.0):
        """A new status connection (lab.status.StatusClient)."""
        return status.StatusClient(self.status_socket, timeout)

    def command(self, line):
        """One command on a new status connection; its reply."""
        return status.command(self.status_socket, line)

    def stats(self):
        """`stats json`, parsed."""
        return status.stats_json(self.status_socket)
