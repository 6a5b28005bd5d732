"""The LDNS's miss path for the common case, in bytes: a name the cache does not hold,
below a zone whose servers it knows, answered by that server directly.

The client's question is sent on as it came (a fresh socket, a random ID, RD=0), and when
the reply is authoritative and its answer section is exactly the question's RRset (owner
the question name, type the question type: no CNAME, no referral), that section is copied
into the client's reply: it sits at the same offset in both messages, so its compression
pointers stay valid. The RRset is cached as the full path would cache it. Any other reply
is handed to `Resolver._classify` (so what it taught is cached) and the full path answers
from there: no query is sent twice. With a query log or a weakened (demo) upstream, the
full path answers everything, so every step is logged as before.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from collections.abc import Callable

from dnslib import QTYPE, RCODE, RR, DNSBuffer, DNSLabel, DNSRecord

from services.dns.authority import Name
from services.dns.compiled import OPT_REPLY, Query, labels_of, parse_query
from services.dns.resolver import Resolver, Result, Step, label_text

WIRE_CACHE_S = 1.0  # the LDNS keeps a reply's bytes this long at most (TTLs stay exact)
WIRE_MAX = 100_000
SERVERS_MAX = 10_000
MEMO_S = 1.0  # a zone's server addresses are looked up again after this


def upstream_query(data: bytes, q: Query, qid: int) -> bytes:
    """The iterative query for a client's question: same question bytes, RD=0, no EDNS."""
    return qid.to_bytes(2, "big") + b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + \
        data[12:q.end]


FIXED_SIZE = {QTYPE.A: 4, QTYPE.AAAA: 16}  # RDATA lengths that make a record decodable


def simple_answer(reply: bytes, question: bytes) -> tuple[int, int, int, bool] | None:
    """(records, end of the answer section, smallest TTL, every record's data of its
    type's fixed size) when `reply` is an authoritative NOERROR whose answer section is
    only the question's own RRset; None for anything else."""
    end = 12 + len(question)
    if len(reply) < end or reply[2] & 0x06 != 0x04 or reply[3] & 0x0F != RCODE.NOERROR or \
            reply[4:6] != b"\x00\x01" or reply[12:end].lower() != question.lower():
        return None
    an = reply[6] << 8 | reply[7]
    if an == 0:
        return None
    owner, rtype = question[:-4].lower(), question[-4:-2]
    size = FIXED_SIZE.get(rtype[0] << 8 | rtype[1], -1)
    fixed, ttl = True, 0xFFFFFFFF
    i = end
    for _ in range(an):
        if reply[i:i + 2] == b"\xc0\x0c":
            i += 2
        elif reply[i:i + len(owner)].lower() == owner:
            i += len(owner)
        else:
            return None  # another owner (a CNAME chain, or anything unusual)
        if reply[i:i + 2] != rtype or reply[i + 2:i + 4] != b"\x00\x01" or len(reply) < i + 10:
            return None
        ttl = min(ttl, int.from_bytes(reply[i + 4:i + 8], "big"))
        length = reply[i + 8] << 8 | reply[i + 9]
        fixed = fixed and length == size
        i += 10 + length
        if i > len(reply):
            return None
    return an, i, ttl, fixed


def remember(wire: dict[bytes, tuple[float, bytes]], query: bytes, now: float,
             ttls: list[int], reply: bytes) -> None:
    """The LDNS's wire cache, for both of its paths: the same query (minus its ID) gets
    `reply` (minus its ID) again until the smallest TTL or WIRE_CACHE_S runs out."""
    valid = min(WIRE_CACHE_S, *ttls)
    if valid > 0:
        if len(wire) > WIRE_MAX:
            wire.clear()
        wire[query] = (now + valid, reply)


def client_reply(data: bytes, q: Query, reply: bytes, an: int, ans_end: int) -> bytes:
    """The client's reply: its ID, RD copied, RA set, its own question bytes, the
    upstream's answer section verbatim, and our OPT when it sent one."""
    return data[:2] + bytes([0x80 | (data[2] & 1), 0x80, 0, 1]) + an.to_bytes(2, "big") + \
        b"\x00\x00\x00" + (b"\x01" if q.opt else b"\x00") + data[12:q.end] + \
        reply[q.end:ans_end] + (OPT_REPLY if q.opt else b"")


class Pending:
    """One upstream query in flight and the clients waiting for its answer."""

    __slots__ = ("sock", "qid", "server", "zone", "q", "question", "waiters", "timer")

    def __init__(self, qid: int, server: str, zone: Name, q: Query, question: bytes) -> None:
        self.sock: socket.socket | None = None
        self.qid, self.server, self.zone, self.q = qid, server, zone, q
        self.question = question
        self.waiters: list[tuple[bytes, tuple, socket.socket, Query]] = []
        self.timer: asyncio.TimerHandle | None = None


class FastMiss:
    def __init__(self, resolver: Resolver, stats: Counter, wire: dict,
                 slow: Callable[[bytes, tuple, socket.socket], None], logging: bool) -> None:
        """`stats` and `wire` are the LDNS's counters and wire cache; `slow` hands a
        client query to its full path; `logging`: a query log is kept (full path only)."""
        self.resolver, self.stats, self.wire, self.slow = resolver, stats, wire, slow
        self.pending: dict[bytes, Pending] = {}
        self.servers: dict[Name, tuple[float, Name, list[str]]] = {}
        up = self.resolver.send
        self.port = getattr(up, "port", 53)
        self.timeout = getattr(up, "timeout", 1.0)
        self._loop: asyncio.AbstractEventLoop | None = None  # (get_running_loop: a getpid each)
        self._ids, self._ids_at = b"", 0  # random bytes from the OS in bulk, two per ID
        self.enabled = not logging and self.resolver.check_bailiwick and \
            not getattr(up, "predictable", False) and not getattr(up, "fixed_source_port", 0)

    def take(self, data: bytes, addr: tuple, sock: socket.socket) -> bool:
        """Start answering a client query that missed the wire cache; False: the full
        path must (not a plain RD=1 query, in the record cache, servers unknown)."""
        if not self.enabled:
            return False
        q = parse_query(data)
        if q is None or not data[2] & 1 or q.qtype == QTYPE.CNAME:
            return False
        key = data[12:q.end].lower()
        p = self.pending.get(key)
        if p is not None:
            p.waiters.append((data, addr, sock, q))
            return True
        name = labels_of(q.lname)
        now = self.resolver.now()
        entries = self.resolver.cache.entries
        for t in (q.qtype, QTYPE.CNAME):
            e = entries.get((name, t))
            if e is not None and e.expires > now and not e.glue:
                return False  # the cache answers (counting TTLs down): the full path
        found = self._servers(name, now)
        if found is None:
            return False
        zone, addrs = found
        qid = self._random_id()
        p = Pending(qid, self.resolver.ranked(addrs)[0], zone, q, data[12:q.end])
        if not self._open(key, p, upstream_query(data, q, qid)):
            return False
        self.stats["upstream_queries"] += 1
        self.pending[key] = p
        p.waiters.append((data, addr, sock, q))
        return True

    def _random_id(self) -> int:
        """A query ID from the OS's CSPRNG (as `secrets`), drawn 4 KiB at a time."""
        at = self._ids_at
        if at >= len(self._ids):
            self._ids, at = os.urandom(4096), 0
        self._ids_at = at + 2
        return self._ids[at] << 8 | self._ids[at + 1]

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # ---- the network: a socket per query, read by the event loop --------------------------
    def _open(self, key: bytes, p: Pending, packet: bytes) -> bool:
        """Send `packet` to `p.server` from a fresh socket; replies go to `_deliver`."""
        loop = self._event_loop()
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:  # (the first sendto binds it to a random ephemeral port)
            up.sendto(packet, (p.server, self.port))
        except OSError:
            up.close()
            return False
        p.sock = up

        def readable() -> None:
            while key in self.pending and self.pending[key] is p:
                try:
                    reply, src = up.recvfrom(65535)
                except OSError:
                    return
                self._deliver(key, p, reply, src[0])

        loop.add_reader(up.fileno(), readable)
        p.timer = loop.call_later(self.timeout, self._timed_out, key, p)
        return True

    def _close(self, key: bytes, p: Pending) -> None:
        if p.sock is not None:
            self._event_loop().remove_reader(p.sock.fileno())
            p.sock.close()
        if p.timer is not None:
            p.timer.cancel()
        if self.pending.get(key) is p:
            del self.pending[key]

    def _servers(self, name: Name, now: float) -> tuple[Name, list[str]] | None:
        """The closest zone with cached NS and cached addresses for them (the root from
        the hints), as `Resolver.closest_servers` and `_addresses` find it, or None when
        the full path must find addresses itself (glueless, expired)."""
        entries = self.resolver.cache.entries
        for i in range(len(name) + 1):
            zone = name[i:]
            memo = self.servers.get(zone)
            if memo is not None and memo[0] > now:
                return memo[1], memo[2]
            ns = entries.get((zone, QTYPE.NS))
            if ns is None or ns.negative or ns.expires <= now:
                continue
            addrs: list[str] = []
            expires = ns.expires
            for rr in ns.rrs:
                a = entries.get((tuple(p.lower() for p in rr.rdata.label.label), QTYPE.A))
                if a is not None and not a.negative and a.expires > now:
                    addrs += [str(r.rdata) for r in a.rrs]
                    expires = min(expires, a.expires)
            if not addrs:
                return None
            if len(self.servers) >= SERVERS_MAX:
                self.servers = {}
            self.servers[zone] = (min(expires, now + MEMO_S), zone, addrs)
            return zone, addrs
        return (), [a for _, a in self.resolver.hints]

    def _timed_out(self, key: bytes, p: Pending) -> None:
        self.stats["upstream_timeouts"] += 1
        self.resolver.note_unresponsive(p.server)
        self._close(key, p)
        for data, addr, sock, _ in p.waiters:  # the full path tries again, other servers too
            self.slow(data, addr, sock)

    def _deliver(self, key: bytes, p: Pending, reply: bytes, src: str) -> None:
        """A datagram on the query's socket: the answer if it matches, else ignored."""
        stats = self.stats
        if src != p.server or len(reply) < 12 or reply[:2] != p.qid.to_bytes(2, "big") \
                or not reply[2] & 0x80 or reply[12:12 + len(p.question)].lower() != key:
            stats["upstream_mismatched"] += 1  # spoofing attempts land here
            return
        self._close(key, p)
        simple = simple_answer(reply, p.question)
        if simple is None:
            self._teach(reply, p)
            for data, addr, sock, _ in p.waiters:
                self.slow(data, addr, sock)
            return
        an, ans_end, ttl, fixed = simple
        if fixed:  # cached as it came, decoded only if the full path ever reads it
            self.resolver.cache.put_wire((labels_of(p.q.lname), p.q.qtype), ttl, reply,
                                         p.q.end, an, self.resolver.now())
            ttls = [ttl]
        else:
            buf = DNSBuffer(reply)
            buf.offset = p.q.end
            try:
                rrs = [RR.parse(buf) for _ in range(an)]
            except Exception:
                stats["upstream_malformed"] += 1
                for data, addr, sock, _ in p.waiters:
                    self.slow(data, addr, sock)
                return
            self.resolver.cache.put(rrs, self.resolver.now())
            ttls = [r.ttl for r in rrs]
        mono = time.monotonic()
        for data, addr, sock, q in p.waiters:
            out = client_reply(data, q, reply, an, ans_end)
            if len(out) > q.limit:
                self.slow(data, addr, sock)  # the full path truncates it, from the cache
                continue
            stats["queries"] += 1
            stats["rcode_NOERROR"] += 1
            stats["fast_misses"] += 1
            remember(self.wire, data[2:], mono, ttls, out[2:])
            try:
                sock.sendto(out, addr)
            except OSError:
                stats["send_dropped"] += 1

    def _teach(self, reply: bytes, p: Pending) -> None:
        """Let the full path's classification learn from a reply we will not copy
        (referral, CNAME, negative): it caches it, so the full path goes on from there."""
        try:
            r = DNSRecord.parse(reply)
        except Exception:
            self.stats["upstream_malformed"] += 1
            return
        name = DNSLabel(list(labels_of(p.question[:-4].lower())))
        step = Step(p.server, label_text(p.zone), str(name), QTYPE.get(p.q.qtype, p.q.qtype),
                    "")
        self.resolver._classify(r, p.zone, name, p.q.qtype, Result(RCODE.NOERROR), step)
