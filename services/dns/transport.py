"""DNS over UDP and TCP: one exchange as a client, and a server's socket pair and TCP loop
(RFC 1035 4.2: two-byte length prefix on TCP). Shared by the DNS and GSLB servers."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable

from dnslib import DNSRecord

from services.dns.xfr import TransferError, TransferReader

TCP_IDLE_S = 10.0


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def tcp_exchange(server: tuple[str, int], q: DNSRecord, timeout: float,
                 reader: TransferReader | None = None) -> list[DNSRecord]:
    """Send one query over TCP and read replies (all of a transfer when `reader` is given)."""
    out: list[DNSRecord] = []
    with socket.create_connection(server, timeout=timeout) as s:
        data = q.pack()
        s.sendall(struct.pack("!H", len(data)) + data)
        while True:
            head = recv_exact(s, 2)
            if head is None:
                raise TransferError("connection closed mid-transfer")
            msg = DNSRecord.parse(recv_exact(s, struct.unpack("!H", head)[0]) or b"")
            out.append(msg)
            if reader is None:
                return out
            reader.feed(msg)
            if reader.done:
                return out


def udp_exchange(server: tuple[str, int], q: DNSRecord, timeout: float) -> DNSRecord:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(server)  # connected: a closed port fails at once (ICMP), not by timeout
        s.send(q.pack())
        while True:
            data = s.recv(65535)
            r = DNSRecord.parse(data)
            if r.header.id == q.header.id:
                return r


UDP_BUFFER = 4 << 20  # as NSD's recommended so-rcvbuf: a burst waits, it is not dropped


def bind_udp_tcp(host: str, port: int,
                 reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A DNS server's pair of sockets on one address: UDP, and TCP listening. With
    `reuse_port`, several processes bind the same address and the kernel spreads the
    queries among them (one per worker, as NSD's server-count)."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        u.setsockopt(socket.SOL_SOCKET, opt, UDP_BUFFER)  # capped by net.core.*mem_max
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        for sock in (u, t):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    u.bind((host, port))
    t.bind((host, port))
    t.listen(64)
    return u, t


def tcp_accept_loop(sock: socket.socket, answers: Callable[[bytes, str], list[bytes]],
                    idle_s: float = TCP_IDLE_S) -> None:
    """DNS over TCP: a thread per connection, length-prefixed messages in, each answered
    by `answers(message, source)` (several messages for a zone transfer)."""
    def conn_loop(conn: socket.socket, source: str) -> None:
        conn.settimeout(idle_s)
        try:
            with conn:
                while True:
                    head = recv_exact(conn, 2)
                    if head is None:
                        return
                    data = recv_exact(conn, struct.unpack("!H", head)[0])
                    if data is None:
                        return
                    for out in answers(data, source):
                        conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return

    while True:
        try:
            conn, addr = sock.accept()
        except OSError:
            return
        threading.Thread(target=conn_loop, args=(conn, addr[0]), daemon=True).start()
