"""Reading sluice's status socket. Every reply is one or more lines, each
ending in "\\n", followed by one empty line; no reply contains an empty line
(app/status.c). So a client reads up to the first "\\n\\n", not the first
"\\n": stopping at the first newline leaves the empty line in the buffer, where
it is taken for the next reply."""

import json
import socket

MAX_REPLY = 16 << 20


class StatusError(OSError):
    pass


def read_reply(sock, buf=b""):
    """Reads one reply from SOCK (BUF: bytes already read). Returns (the
    reply's lines without the closing empty line, the bytes after it)."""
    while b"\n\n" not in buf:
        if len(buf) > MAX_REPLY:
            raise StatusError(f"status reply longer than {MAX_REPLY} bytes without an empty line")
        data = sock.recv(1 << 16)
        if not data:
            raise StatusError("status socket closed")
        buf += data
    reply, rest = buf.split(b"\n\n", 1)
    return reply, rest


def ask_json(sock, buf=b""):
    """Sends `stats json` and returns (the object, the bytes left over)."""
    sock.sendall(b"stats json\n")
    reply, rest = read_reply(sock, buf)
    line = reply.split(b"\n", 1)[0]
    if line.startswith(b"error"):
        raise StatusError(line.decode(errors="replace"))
    return json.loads(line), rest


def connect(path, timeout=2.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


class StatusClient:
    """One status-socket connection: a command per line, a reply per command.
    The socket is .s; bytes read past the last reply wait in .buf."""

    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Blocking: waits for room in a full backlog instead of EAGAIN.
            self.s.connect(str(path))
        except OSError:
            self.s.close()
            raise
        self.s.settimeout(timeout)
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.s.close()

    def send(self, data: bytes):
        self.s.sendall(data)

    def reply(self) -> str:
        """The next reply, its lines each ending in "\\n" (the empty line
        dropped). StatusError if the server closes first."""
        body, self.buf = read_reply(self.s, self.buf)
        return body.decode() + "\n"

    def cmd(self, line: str) -> str:
        self.send(line.encode() + b"\n")
        return self.reply()

    def stats(self) -> dict:
        return json.loads(self.cmd("stats json"))


def command(path, line, timeout=10.0):
    """One command on a new connection to the socket at PATH; its reply."""
    with StatusClient(path, timeout) as c:
        return c.cmd(line)


def stats_json(path, timeout=10.0):
    """`stats json` from the socket at PATH, parsed."""
    return json.loads(command(path, "stats json", timeout))
