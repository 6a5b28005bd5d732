"""ICMP echo over one raw socket shared by every probe of a process (GSLB health checks,
the web agent's RTT measurements). Needs root."""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from wire.frames import checksum


@dataclass
class Probe:
    ok: bool
    detail: str
    rtt_ms: float | None = None
    load: int | None = None


class Pinger:
    """ICMP echo over one raw socket shared by all probes of a process (needs root)."""

    def __init__(self) -> None:
        self.ident = secrets.randbits(16)  # each Pinger sees every echo reply: tell ours apart
        self.seq = 0
        self.waiting: dict[int, tuple[asyncio.Future, float, str]] = {}
        self.sock: socket.socket | None = None

    def _open(self) -> socket.socket:
        if self.sock is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            s.setblocking(False)
            asyncio.get_running_loop().add_reader(s.fileno(), self._readable)
            self.sock = s
        return self.sock

    def _readable(self) -> None:
        assert self.sock is not None  # (registered by _open, with the socket)
        while True:
            try:
                data, (src, _) = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            ihl = (data[0] & 0x0F) * 4
            if len(data) < ihl + 8:
                continue
            typ, _code, _ck, ident, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if typ == 0 and ident == self.ident and self.waiting.get(seq, ("", 0, ""))[2] == src:
                fut, t0, _ = self.waiting.pop(seq)
                if not fut.done():
                    fut.set_result((time.monotonic() - t0) * 1000)

    async def ping(self, addr: str, timeout: float) -> Probe:
        s = self._open()
        self.seq = (self.seq + 1) & 0xFFFF
        seq = self.seq
        payload = b"infralab-gslb".ljust(32, b".")
        head = struct.pack("!BBHHH", 8, 0, 0, self.ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, checksum(head + payload), self.ident, seq) + payload
        fut = asyncio.get_running_loop().create_future()
        self.waiting[seq] = (fut, time.monotonic(), addr)
        try:
            s.sendto(pkt, (addr, 0))
            rtt = await asyncio.wait_for(fut, timeout)
            return Probe(True, f"icmp echo reply in {rtt:.1f}ms", rtt)
        except TimeoutError:
            return Probe(False, f"icmp: no echo reply in {timeout}s")
        except OSError as e:
            return Probe(False, f"icmp: {e.strerror}")
        finally:
            self.waiting.pop(seq, None)
