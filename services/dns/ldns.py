"""The recursive resolver process (LDNS): asyncio sockets around `Resolver`.

Clients send recursive queries (RD=1) and get RA=1 answers; the LDNS sends its own
iterative queries (RD=0) from a fresh random source port with a random ID, and accepts
only a reply from the address it asked whose ID and question match. Answers are kept
as wire bytes for up to a second (TTLs stay exact to the second), so cache hits are cheap.
Each client query is written to the query log as one JSON line with every step taken.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import struct
import time
from collections import Counter
from functools import partial
from pathlib import Path

from dnslib import OPCODE, QTYPE, RCODE, DNSHeader, DNSQuestion, DNSRecord

from services.common.lifecycle import settle_heap
from services.dns.fastmiss import FastMiss, remember
from services.dns.resolver import Resolver, Result, Step
from services.dns.responder import edns_opts, error_reply, finish, header_only, size_limit
from services.dns.transport import UDP_BUFFER

UPSTREAM_TIMEOUT_S = 1.0


class Upstream:
    """Sends one iterative query: random ID, random source port, strict reply matching."""

    def __init__(self, port: int = 53, timeout: float = UPSTREAM_TIMEOUT_S, tries: int = 2,
                 stats: Counter | None = None, predictable: bool = False,
                 fixed_source_port: int = 0) -> None:
        self.port, self.timeout, self.tries = port, timeout, tries
        self.stats = stats if stats is not None else Counter()
        self.predictable = predictable  # weakened mode for the poisoning demo: sequential IDs
        self.fixed_source_port = fixed_source_port  # weakened mode too (0: random, the norm)
        self._next_id = 1

    async def __call__(self, addr: str, q: DNSRecord) -> DNSRecord:
        for attempt in range(self.tries):
            if self.predictable:
                q.header.id = self._next_id
                self._next_id = (self._next_id + 1) & 0xFFFF
            else:
                q.header.id = secrets.randbits(16)
            try:
                r = await self._udp(addr, q)
            except TimeoutError:
                self.stats["upstream_timeouts"] += 1
                if attempt + 1 == self.tries:
                    raise
                continue
            if r.header.tc:
                self.stats["upstream_tcp"] += 1
                r = await self._tcp(addr, q)
            return r
        raise TimeoutError

    async def _udp(self, addr: str, q: DNSRecord) -> DNSRecord:
        """One query from its own socket (the kernel picks a random ephemeral port unless
        a fixed one is asked for), read by the event loop directly: no transport object."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        stats, want = self.stats, (q.header.id, str(q.q.qname).lower(), q.q.qtype)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)

        def readable() -> None:
            while not fut.done():
                try:
                    data, src = sock.recvfrom(65535)
                except OSError:  # nothing more to read (or an ICMP error: the timeout says)
                    return
                try:
                    r = DNSRecord.parse(data)
                except Exception:
                    stats["upstream_malformed"] += 1
                    continue
                got = (r.header.id, str(r.q.qname).lower() if r.questions else "", r.q.qtype
                       if r.questions else 0)
                if src[0] != addr or got != want:
                    stats["upstream_mismatched"] += 1  # spoofing attempts land here
                    continue
                fut.set_result(r)

        try:
            if self.fixed_source_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("0.0.0.0", self.fixed_source_port))
            loop.add_reader(sock.fileno(), readable)
            try:
                sock.sendto(q.pack(), (addr, self.port))
                self.stats["upstream_queries"] += 1
                return await asyncio.wait_for(fut, self.timeout)
            finally:
                loop.remove_reader(sock.fileno())
        finally:
            sock.close()

    async def _tcp(self, addr: str, q: DNSRecord) -> DNSRecord:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, self.port),
                                                self.timeout)
        try:
            data = q.pack()
            writer.write(struct.pack("!H", len(data)) + data)
            n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), self.timeout))[0]
            return DNSRecord.parse(await asyncio.wait_for(reader.readexactly(n), self.timeout))
        finally:
            writer.close()


class Ldns:
    def __init__(self, resolver: Resolver, query_log: Path | None = None,
                 stats: Counter | None = None) -> None:
        self.resolver = resolver
        self.stats = stats if stats is not None else Counter()
        self.wire: dict[bytes, tuple[float, bytes]] = {}
        self.inflight: dict[tuple[str, int], asyncio.Task] = {}
        self.log_file = open(query_log, "a", buffering=1) if query_log else None
        self.fast: FastMiss | None = None  # (made by `serve`, inside the event loop)

    def _landed(self, key: tuple[str, int], _task: asyncio.Future) -> None:
        """A resolution ended: later queries for the name start a new one."""
        self.inflight.pop(key, None)

    async def answer(self, data: bytes, client: str, tcp: bool = False) -> bytes | None:
        """The full answer path; UDP wire-cache hits never get here (`_on_readable`)."""
        now = time.monotonic()
        self.stats["queries"] += 1
        try:
            q = DNSRecord.parse(data)
        except Exception:
            self.stats["malformed"] += 1
            return header_only(data, RCODE.FORMERR)
        if q.header.qr:
            self.stats["dropped"] += 1
            return None
        opts = edns_opts(q)
        limit = size_limit(opts, tcp)
        if len(q.questions) != 1 or q.header.opcode != OPCODE.QUERY:
            rcode = RCODE.FORMERR if len(q.questions) != 1 else RCODE.NOTIMP
            return finish(error_reply(q, rcode), limit, opts, self.stats)
        qname, qtype = q.q.qname, q.q.qtype
        if qtype in (QTYPE.AXFR, QTYPE.IXFR, QTYPE.ANY):
            return finish(error_reply(q, RCODE.REFUSED if qtype != QTYPE.ANY else RCODE.NOTIMP),
                          limit, opts, self.stats)
        t0 = time.monotonic()
        if q.header.rd:
            key = (str(qname).lower(), qtype)
            task = self.inflight.get(key)
            if task is None:
                task = asyncio.ensure_future(self.resolver.resolve(qname, qtype))
                self.inflight[key] = task
                task.add_done_callback(partial(self._landed, key))
            try:
                res = await asyncio.shield(task)
            except Exception as e:
                self.stats["errors"] += 1
                self._log(client, q, RCODE.SERVFAIL, [], [], t0, f"error: {e!r}")
                return finish(error_reply(q, RCODE.SERVFAIL), limit, opts, self.stats)
        else:  # RD=0: what the cache holds, nothing fetched (cache snooping, as BIND does)
            res = Result(RCODE.NOERROR)
            self.resolver.from_cache(qname, qtype, res)
        reply = DNSRecord(DNSHeader(id=q.header.id, qr=1, rd=q.header.rd, ra=1,
                                    rcode=res.rcode), q=DNSQuestion(qname, qtype, q.q.qclass))
        reply.rr = list(res.answer)
        reply.auth = list(res.authority)
        wire = finish(reply, limit, opts, self.stats)
        ttls = [r.ttl for r in res.answer + res.authority]
        if not tcp and res.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN) and not reply.header.tc:
            remember(self.wire, data[2:], now, ttls, wire[2:])
        self._log(client, q, res.rcode, res.answer, res.steps, t0,
                  "cache" if res.from_cache else "resolved")
        return wire

    def _log(self, client: str, q: DNSRecord, rcode: int, answer, steps: list[Step],
             t0: float, how: str) -> None:
        if self.log_file is None:
            return
        entry = {"time": round(time.time(), 3), "client": client, "qname": str(q.q.qname),
                 "qtype": QTYPE[q.q.qtype], "rd": q.header.rd, "rcode": RCODE.get(rcode),
                 "how": how, "ms": round((time.monotonic() - t0) * 1000, 1),
                 "answer": [f"{r.rname} {r.ttl} {QTYPE[r.rtype]} {r.rdata}" for r in answer],
                 "steps": [s.__dict__ for s in steps]}
        self.log_file.write(json.dumps(entry) + "\n")


BATCH = 64  # datagrams read per wake-up before the loop runs its other work


def _on_readable(sock: socket.socket, ldns: Ldns, loop: asyncio.AbstractEventLoop) -> None:
    """The listening socket, read by the event loop itself in batches: wire-cache hits
    (most queries) are answered here at once, misses become tasks. One thread, so no
    hand-over between threads on the miss path."""
    recv, send = sock.recvfrom, sock.sendto
    wire, stats = ldns.wire, ldns.stats
    now = time.monotonic()
    for _ in range(BATCH):
        try:
            data, addr = recv(65535)
        except OSError:  # drained (BlockingIOError), or closed
            return
        hit = wire.get(data[2:])
        if hit is not None and hit[0] > now:
            stats["wire_hits"] += 1
            try:
                send(data[:2] + hit[1], addr)
            except OSError:
                stats["send_dropped"] += 1
            continue
        dispatch(ldns, data, addr, sock, loop)


def dispatch(ldns: Ldns, data: bytes, addr, sock, loop: asyncio.AbstractEventLoop) -> None:
    """A query that missed the wire cache: the fast miss path if it takes it, else a task
    on the full path."""
    if ldns.fast is None or not ldns.fast.take(data, addr, sock):
        loop.create_task(_answer_udp(ldns, sock, data, addr))


async def _answer_udp(ldns: Ldns, sock: socket.socket, data: bytes, addr) -> None:
    try:
        out = await ldns.answer(data, addr[0])
    except Exception as e:  # one bad query never ends the service
        ldns.stats["errors"] += 1
        print(f"ldns: error answering {addr[0]}: {e!r}", flush=True)
        out = header_only(data, RCODE.SERVFAIL)
    if out is not None:
        try:
            sock.sendto(out, addr)
        except OSError:
            ldns.stats["send_dropped"] += 1


async def _tcp_client(ldns: Ldns, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")[0]
    try:
        while True:
            n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
            data = await asyncio.wait_for(reader.readexactly(n), 10)
            out = await ldns.answer(data, peer, tcp=True)
            if out is not None:
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, OSError):
        pass
    finally:
        writer.close()


async def _control(ldns: Ldns, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    line = (await reader.readline()).decode(errors="replace").split()
    now = ldns.resolver.now()
    ans: object
    if not line or line[0] in ("stats", "status"):
        ans = {"stats": dict(ldns.stats), "cache_entries": len(ldns.resolver.cache.entries)}
    elif line[0] == "cache":
        ans = ldns.resolver.cache.dump(now)
    elif line[0] == "flush":
        ldns.wire.clear()
        ans = {"flushed": ldns.resolver.cache.flush(line[1] if len(line) > 1 else None)}
    else:
        ans = f"unknown command {' '.join(line)!r}"
    writer.write(json.dumps(ans).encode() + b"\n")
    await writer.drain()
    writer.close()


async def serve(ldns: Ldns, listen: list[tuple[str, int]], control: Path | None) -> None:
    loop = asyncio.get_running_loop()

    def full_path(data: bytes, addr: tuple, sock: socket.socket) -> None:
        loop.create_task(_answer_udp(ldns, sock, data, addr))

    ldns.fast = FastMiss(ldns.resolver, ldns.stats, ldns.wire, full_path,
                         logging=ldns.log_file is not None)
    settle_heap()  # (the hints; and fewer young collections of each query's objects)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = []
    for host, port in listen:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            u.setsockopt(socket.SOL_SOCKET, opt, UDP_BUFFER)
        u.bind((host, port))
        u.setblocking(False)
        loop.add_reader(u.fileno(), _on_readable, u, ldns, loop)
        servers.append(await asyncio.start_server(lambda r, w: _tcp_client(ldns, r, w),
                                                  host, port, reuse_address=True))
    if control is not None:
        if control.exists():
            control.unlink()
        servers.append(await asyncio.start_unix_server(lambda r, w: _control(ldns, r, w),
                                                       str(control)))
    print(f"ldns: resolving from {', '.join(a for _, a in ldns.resolver.hints)}; listening on "
          f"{', '.join(f'{h}:{p}' for h, p in listen)}", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    if control is not None and control.exists():
        os.unlink(control)
