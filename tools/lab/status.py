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
