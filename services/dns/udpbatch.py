"""Datagrams in batches, as NSD reads and writes them: recvmmsg(2) and sendmmsg(2).

Python's socket module has one system call per datagram. On a server answering from its
wire cache, those calls were 61 % of the loop's time (py-spy, hot load); the rest was
the loop itself and the module turning every source address into a string and back.
`UdpBatch` takes every datagram waiting (up to SLOTS) in one call into buffers made
once, and sends each reply back to its datagram's source, all in one call; the source
becomes a string only when somebody asks (`source`). Linux (glibc) only, IPv4 sockets.
"""

from __future__ import annotations

import ctypes
import errno
import socket
from ctypes import POINTER, Structure, c_int, c_size_t, c_uint, c_uint32, c_void_p

SLOTS = 32  # datagrams per call at most
QUERY_MAX = 4096  # a longer datagram is cut (and flagged MSG_TRUNC: see `recv`)
REPLY_MAX = 4096  # a longer reply leaves on its own (sendto), with the rest of its batch
NAME = 16  # struct sockaddr_in
MSG_WAITFORONE, MSG_TRUNC = 0x10000, 0x20


class _Iovec(Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", c_size_t)]


class _Msghdr(Structure):
    _fields_ = [("msg_name", c_void_p), ("msg_namelen", c_uint32),
                ("msg_iov", POINTER(_Iovec)), ("msg_iovlen", c_size_t),
                ("msg_control", c_void_p), ("msg_controllen", c_size_t), ("msg_flags", c_int)]


class _Mmsghdr(Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)


class UdpBatch:
    """One UDP socket's batches. `recv` blocks for the next batch; `send` answers it."""

    def __init__(self, sock: socket.socket) -> None:
        if sock.family != socket.AF_INET:
            raise ValueError("UdpBatch: IPv4 sockets only")
        self.sock = sock
        self._in = ctypes.create_string_buffer(SLOTS * QUERY_MAX)
        self._out = ctypes.create_string_buffer(SLOTS * REPLY_MAX)
        self._names = ctypes.create_string_buffer(SLOTS * NAME)
        self._in_iov, self._out_iov = (_Iovec * SLOTS)(), (_Iovec * SLOTS)()
        self._rx, self._tx = (_Mmsghdr * SLOTS)(), (_Mmsghdr * SLOTS)()
        base_in, base_out = ctypes.addressof(self._in), ctypes.addressof(self._out)
        names = ctypes.addressof(self._names)
        for i in range(SLOTS):
            self._in_iov[i].iov_base, self._in_iov[i].iov_len = base_in + i * QUERY_MAX, QUERY_MAX
            self._out_iov[i].iov_base = base_out + i * REPLY_MAX
            for msgs, iov in ((self._rx, self._in_iov), (self._tx, self._out_iov)):
                h = msgs[i].msg_hdr
                h.msg_name, h.msg_namelen = names + i * NAME, NAME  # reply to its source
                h.msg_iov, h.msg_iovlen = ctypes.pointer(iov[i]), 1
        self._rx_slots = list(self._rx)  # (ctypes views made once, not per datagram)
        self._out_lens = list(self._out_iov)
        self._in_view = memoryview(self._in).cast("B")
        self._out_view = memoryview(self._out).cast("B")
        self._names_view = memoryview(self._names).cast("B")

    def recv(self) -> list[bytes] | None:
        """The datagrams waiting (at least one: blocks until then); None once the socket
        is closed. A datagram cut to QUERY_MAX comes as b"" (answered by nobody)."""
        while True:
            fd = self.sock.fileno()
            if fd < 0:
                return None
            n = _libc.recvmmsg(fd, self._rx, SLOTS, MSG_WAITFORONE, None)
            if n > 0:
                break
            err = ctypes.get_errno()
            if err in (errno.EINTR, errno.EAGAIN):
                continue
            return None  # (EBADF: closed under us)
        view, slots, out = self._in_view, self._rx_slots, []
        for i in range(n):
            size = slots[i].msg_len
            if size >= QUERY_MAX and slots[i].msg_hdr.msg_flags & MSG_TRUNC:
                out.append(b"")
                continue
            start = i * QUERY_MAX
            out.append(bytes(view[start:start + size]))
        return out

    def source(self, i: int) -> tuple[str, int]:
        """Where datagram `i` of the last batch came from."""
        name = self._names_view[i * NAME:(i + 1) * NAME]
        return socket.inet_ntoa(name[4:8]), int.from_bytes(name[2:4], "big")

    def send(self, replies: list[bytes | None]) -> None:
        """Reply `i` to the source of datagram `i` (None: no reply). Errors are the
        network's: a datagram that cannot leave is lost, as a UDP reply may be."""
        n = len(replies)
        view, lens = self._out_view, self._out_lens
        for i, r in enumerate(replies):
            if r is None or len(r) > REPLY_MAX:
                self._send_one_by_one(replies)
                return
            start = i * REPLY_MAX
            view[start:start + len(r)] = r
            lens[i].iov_len = len(r)
        sent = 0
        fd = self.sock.fileno()
        while sent < n and fd >= 0:
            k = _libc.sendmmsg(fd, ctypes.byref(self._tx, sent * ctypes.sizeof(_Mmsghdr)),
                               n - sent, 0)
            if k <= 0:
                if ctypes.get_errno() == errno.EINTR:
                    continue
                sent += 1  # (that one cannot leave: lost, the rest still go)
                continue
            sent += k

    def _send_one_by_one(self, replies: list[bytes | None]) -> None:
        for i, r in enumerate(replies):
            if r is not None:
                try:
                    self.sock.sendto(r, self.source(i))
                except OSError:
                    pass
