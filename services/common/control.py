"""The control socket of a service process: one line in, one JSON line out (stats, reload,
leases...), served on a unix socket in the run directory and asked by the CLI and tests."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def control_loop(path: str | Path, command) -> None:
    """Serve a unix control socket: one line in, `command(line)` as one JSON line out."""
    path = str(path)
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        with conn:
            try:
                line = conn.recv(4096).decode(errors="replace").strip()
                conn.sendall(json.dumps(command(line)).encode() + b"\n")
            except Exception as e:
                conn.sendall(json.dumps(f"error: {e!r}").encode() + b"\n")


def control_request(path: str | Path, line: str, timeout: float = 5.0):
    """Send one control command to a running server; returns its JSON answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(line.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf or b"null")
