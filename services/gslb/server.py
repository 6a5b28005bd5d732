"""The GSLB as a DNS server: answers its names from the healthy members the selection
picks, everything else in its zone from static records; health checks run beside it.

`GslbServer.answer` is bytes in, bytes out and reads only the server's state, so unit tests
drive it without sockets. Sockets are thin: a UDP thread (with an answer cache keyed by the
query and the asking address, emptied whenever health, load or RTT change what it would
say), a TCP thread, an asyncio thread for the probes, and a unix control socket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from dnslib import (
    EDNS0,
    OPCODE,
    QTYPE,
    RCODE,
    RR,
    A,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)
from dnslib.dns import EDNSOption

from services.common.control import control_loop
from services.common.pinger import Pinger
from services.dns.authority import ZoneSet, name_key
from services.dns.compiled import BELOW, OPT_REPLY, labels_of, parse_query, wire
from services.dns.responder import (
    OUR_UDP_SIZE,
    Responder,
    edns_opts,
    finish,
    header_only,
    size_limit,
)
from services.dns.transport import bind_udp_tcp, tcp_accept_loop
from services.dns.udpbatch import UdpBatch
from services.dns.zone import load_zone, parse_zone
from services.gslb.config import GslbConfig, Pool
from services.gslb.health import Health, Transition
from services.gslb.probes import agent_rtt, run_check
from services.gslb.select import Client, Decision, MemberState, Selector

ECS = 8
CACHE_MAX = 100_000
CLIENTS_MAX = 10_000
DECISION_LOG_RATE = 5_000  # decisions written per second at most (the rest are counted)


def parse_ecs(opts: list[RR]) -> IPv4Network | None:
    """The EDNS Client Subnet (RFC 7871) an LDNS forwarded, if IPv4 and well formed."""
    for opt in opts:
        for o in getattr(opt, "rdata", None) or []:
            if getattr(o, "code", None) != ECS or len(o.data) < 4:
                continue
            family, plen = struct.unpack("!HB", o.data[:3])
            addr = o.data[4:]
            if family != 1 or plen > 32 or len(addr) > 4:
                return None
            try:
                ip = IPv4Address(addr.ljust(4, b"\0"))
                return IPv4Network(f"{ip}/{plen}", strict=False)
            except ValueError:
                return None
    return None


def ecs_option(net: IPv4Network, scope: int) -> EDNSOption:
    n = (net.prefixlen + 7) // 8
    return EDNSOption(ECS, struct.pack("!HBB", 1, net.prefixlen, scope)
                      + net.network_address.packed[:n])


def static_zones(cfg: GslbConfig) -> list:
    """Each zone's static part: its zone file, or a synthesized SOA/NS/glue."""
    out = []
    for zone, path in cfg.zones.items():
        if path is not None:
            out.append(load_zone(path, zone))
            continue
        ns = [n for n in cfg.ns if n.endswith("." + zone)] or list(cfg.ns) or [f"gslb.{zone}"]
        lines = [f"$ORIGIN {zone}", "$TTL 300",
                 f"@ IN SOA {ns[0]} hostmaster.{zone} 1 3600 600 86400 {cfg.ttl}"]
        lines += [f"@ IN NS {n}" for n in ns]
        lines += [f"{n} IN A {cfg.ns[n]}" for n in ns if n in cfg.ns and n.endswith(zone)]
        out.append(parse_zone("\n".join(lines) + "\n", f"<{zone} synthesized>", zone))
    return out


class GslbServer:
    def __init__(self, cfg: GslbConfig, listen: list[tuple[str, int]] | None = None,
                 control: Path | None = None, decision_log: Path | None = None,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, reuse_port: bool = False) -> None:
        self.cfg = cfg
        self.reuse_port = reuse_port  # one of several workers on the same address
        self.listen = listen or []
        self.control = control
        self.log = log
        self.clock = clock
        self.selector = Selector(cfg)
        now = clock()
        self.health = {(p.name, m.name): Health(m.name, p.check, now)
                       for p in cfg.pools.values() for m in p.members}
        self.zones = ZoneSet(static_zones(cfg))
        self.responder = Responder(self.zones)
        self.stats: Counter[str] = Counter()
        self.cache: dict[tuple[bytes, str], Callable[[], bytes]] = {}
        self.site_rtt: dict[str, tuple[float, dict[str, float]]] = {}
        self.pending_rtt: set[str] = set()
        self.events: deque[dict] = deque(maxlen=200)
        self.lock = threading.RLock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sockets: list[socket.socket] = []
        self.stopping = threading.Event()
        self.decision_log = open(decision_log, "a") if decision_log else None  # noqa: SIM115
        self.log_queue: deque[tuple] = deque()
        self.log_wake = threading.Event()
        self.log_lock = threading.Lock()
        self.log_window = [0.0, 0]  # this second's start, decisions logged in it
        self.unlogged_written = 0
        self.fast = True  # plain A queries for pool names answered without dnslib
        self.pool_index = self._pool_index()
        self.clients: dict[str, Client] = {}
        self.states: dict[str, dict[str, MemberState]] = {}  # per pool, until health changes
        self.a_records: dict[tuple[str, ...], bytes] = {}  # addresses -> answer section

    def _pool_index(self) -> dict[bytes, Pool]:
        """Pool names in wire form (lower case); `BELOW + wire(rest)` for `*.rest`.
        Only names inside a zone we serve: the others are the full path's to refuse."""
        out: dict[bytes, Pool] = {}
        for name, pool in self.cfg.names.items():
            wild = name.startswith("*.")
            key = name_key(name[2:] if wild else name)
            if self.zones.find(key) is not None and pool in self.cfg.pools:
                out[(BELOW if wild else b"") + wire(key)] = self.cfg.pools[pool]
        return out

    def _changed(self) -> None:
        """Health, load or RTT changed what we would say: forget every cached answer."""
        self.cache = {}
        self.states = {}

    # ---- answering ------------------------------------------------------------------------
    def answer(self, data: bytes, source: str, tcp: bool = False) -> bytes | None:
        data = bytes(data)
        key = (data[2:], source)
        if not tcp:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats["cache_hits"] += 1
                return data[:2] + hit()
            if self.fast:
                out = self._fast(data, source)
                if out is not None:
                    return out
        try:
            q = DNSRecord.parse(data)
        except Exception:
            self.stats["malformed"] += 1
            return header_only(data, RCODE.FORMERR)
        if q.header.qr or q.header.opcode != OPCODE.QUERY or len(q.questions) != 1:
            return self.responder.respond(data, source, tcp)
        qname = str(q.q.qname).lower()
        pool = self.cfg.pool_for(qname)
        if pool is None or self.zones.find(name_key(q.q.qname)) is None:
            self.stats["static"] += 1
            return self.responder.respond(data, source, tcp)
        opts = edns_opts(q)
        if q.q.qtype not in (QTYPE.A, 255):  # other types: the zone's static records, and
            self.stats["static"] += 1         # NODATA (never NXDOMAIN) for a pool's own name
            if self.zones.lookup(q.q.qname, q.q.qtype).rcode != RCODE.NXDOMAIN:
                return self.responder.respond(data, source, tcp)
            return self._reply(q, Decision([], "static", "no records of this type"), opts,
                               None, tcp)
        ecs = parse_ecs(opts)
        client = Client.of(source, ecs)
        with self.lock:
            states = self.member_states(pool)
            site_rtt = self._site_rtt(pool, client, source)
            first = self.selector.choose(pool, states, client, site_rtt)
            decisions = [first] + [self.selector.choose(pool, states, client, site_rtt)
                                   for _ in range(first.period - 1)]
        self.stats["decisions"] += 1
        self.stats[f"algorithm_{first.algorithm}"] += 1
        self._log_decision(source, ecs, qname, first)
        variants = [self._reply(q, d, opts, ecs, tcp) for d in decisions]
        if not tcp:
            self._remember(key, [v[2:] for v in variants])
        return variants[0]

    def _remember(self, key: tuple[bytes, str], replies: list[bytes]) -> None:
        """The answer cache: the same query from the same asker gets the next reply of
        the decisions' period (minus the ID); `replies[0]` is the one being sent now."""
        if len(self.cache) >= CACHE_MAX:
            self.cache = {}
        if len(replies) == 1:
            self.cache[key] = itertools.repeat(replies[0]).__next__
        else:
            nxt = self.cache[key] = itertools.cycle(replies).__next__
            nxt()

    def _fast(self, data: bytes, source: str) -> bytes | None:
        """A plain A query (no EDNS options) for a pool name, answered from bytes: the
        question spliced, each decision's addresses an answer section built once. None
        (before any decision is made) leaves the query to the full path."""
        q = parse_query(data)
        if q is None or q.qtype != QTYPE.A or q.options:
            return None
        lname, index = q.lname, self.pool_index
        pool = index.get(lname)
        if pool is None:
            for s in q.starts[1:]:
                pool = index.get(BELOW + lname[s - 12:])
                if pool is not None:
                    break
            else:
                return None
        client = self.clients.get(source)
        if client is None:
            if len(self.clients) >= CLIENTS_MAX:
                self.clients = {}
            client = self.clients[source] = Client.of(source)
        with self.lock:
            states = self.states.get(pool.name)
            if states is None:
                states = self.states[pool.name] = self.member_states(pool)
            site_rtt = self._site_rtt(pool, client, source)
            first = self.selector.choose(pool, states, client, site_rtt)
            decisions = [first] + [self.selector.choose(pool, states, client, site_rtt)
                                   for _ in range(first.period - 1)]
        stats = self.stats
        stats["decisions"] += 1
        stats[f"algorithm_{first.algorithm}"] += 1
        if self.decision_log is not None:
            self._log_decision(source, None, str(DNSLabel(list(labels_of(lname)))).lower(),
                               first)
        question = data[12:q.end]
        opt = OPT_REPLY if q.opt else b""
        rd = data[2] & 1
        parsed: list[DNSRecord] = []

        def full_reply(d: Decision) -> bytes:  # (NODATA, or too big: dnslib's reply)
            if not parsed:
                parsed.append(DNSRecord.parse(data))
            return self._reply(parsed[0], d, edns_opts(parsed[0]), None, False)[2:]

        tails = []
        for d in decisions:
            if not d.addresses:  # NODATA with the SOA
                tails.append(full_reply(d))
                continue
            body = self.a_records.get(tuple(d.addresses))
            if body is None:
                if len(self.a_records) >= CACHE_MAX:
                    self.a_records = {}
                ttl = self.cfg.ttl.to_bytes(4, "big")
                body = self.a_records[tuple(d.addresses)] = b"".join(
                    b"\xc0\x0c\x00\x01\x00\x01" + ttl + b"\x00\x04" + IPv4Address(a).packed
                    for a in d.addresses)
            tail = bytes([0x84 | rd, 0, 0, 1]) + len(d.addresses).to_bytes(2, "big") + \
                b"\x00\x00\x00" + bytes([1 if opt else 0]) + question + body + opt
            if len(tail) + 2 > q.limit:  # too big for the client: truncated, as dnslib does
                tail = full_reply(d)
            else:
                self.responder.stats["rcode_NOERROR"] += 1
            tails.append(tail)
        self._remember((data[2:], source), tails)
        stats["precompiled"] += 1
        return data[:2] + tails[0]

    def _reply(self, q: DNSRecord, d: Decision, opts: list[RR], ecs: IPv4Network | None,
               tcp: bool) -> bytes:
        reply = DNSRecord(DNSHeader(id=q.header.id, qr=1, aa=1, rd=q.header.rd),
                          q=DNSQuestion(q.q.qname, q.q.qtype, q.q.qclass))
        if q.q.qtype in (QTYPE.A, 255) and d.addresses:
            reply.rr = [RR(q.q.qname, QTYPE.A, ttl=self.cfg.ttl, rdata=A(a))
                        for a in d.addresses]
        else:  # NODATA: the name exists, but not with this type (or no member to give)
            zone = self.zones.find(name_key(q.q.qname))
            assert zone is not None  # (only names of our zones get this far)
            reply.auth = [zone.negative_soa()]
        if opts:
            eopts = [ecs_option(ecs, ecs.prefixlen)] if ecs is not None else []
            reply.ar.append(EDNS0(udp_len=OUR_UDP_SIZE, opts=eopts))
        return finish(reply, size_limit(opts, tcp), [], self.responder.stats)

    def member_states(self, pool: Pool) -> dict[str, MemberState]:
        out = {}
        for m in pool.members:
            h = self.health[(pool.name, m.name)]
            out[m.name] = MemberState(h.up, h.load, h.rtt_ms)
        return out

    def _site_rtt(self, pool: Pool, client: Client, source: str) -> dict[str, float]:
        if self.cfg.rtt_source != "sites" or "rtt" not in pool.algorithms:
            return {}
        key = str(client.prefix)
        got = self.site_rtt.get(key)
        if got is not None and self.clock() - got[0] <= self.cfg.rtt_max_age:
            return got[1]
        if key not in self.pending_rtt and self.loop is not None:
            self.pending_rtt.add(key)
            target = source if client.address == client.prefix.network_address else \
                str(client.address)
            asyncio.run_coroutine_threadsafe(self._measure_sites(key, target), self.loop)
        return got[1] if got else {}

    async def _measure_sites(self, key: str, target: str) -> None:
        agents = [(s, s.agent) for s in self.cfg.sites.values() if s.agent is not None]
        sites = [s for s, _ in agents]
        rtts = await asyncio.gather(*(agent_rtt(a, target, 3.0) for _, a in agents))
        table = {s.name: r for s, r in zip(sites, rtts, strict=True) if r is not None}
        with self.lock:
            self.pending_rtt.discard(key)
            if table:
                self.site_rtt[key] = (self.clock(), table)
                self._changed()
        self._event({"event": "site-rtt", "client": key, "target": target, "rtt_ms": table})

    def _log_decision(self, source: str, ecs, qname: str, d: Decision) -> None:
        """Queue one decision for the log writer: the answer never waits for the disk.
        Past DECISION_LOG_RATE a second, decisions are counted, not queued."""
        if self.decision_log is None:
            return
        now = time.monotonic()
        if now - self.log_window[0] >= 1.0:
            self.log_window = [now, 0]
        self.log_window[1] += 1
        if self.log_window[1] > DECISION_LOG_RATE:
            self.stats["decisions_unlogged"] += 1
            return
        self.log_queue.append((round(time.time(), 3), source, str(ecs) if ecs else None,
                               qname, d.algorithm, d.reason, d.addresses))
        if not self.log_wake.is_set():
            self.log_wake.set()

    def _log_writer(self) -> None:
        """Writes queued decisions: at once after a quiet spell, else every 20 ms in one
        write, so a busy server makes fifty writes a second, not one per answer."""
        last = 0.0
        while True:
            self.log_wake.wait()
            if time.monotonic() - last < 0.02:  # busy: let the burst gather into one write
                time.sleep(0.02)
            self.log_wake.clear()
            self._flush_log()
            last = time.monotonic()

    def _flush_log(self) -> None:
        with self.log_lock:
            if self.decision_log is None:
                return
            lines = []
            while self.log_queue:
                t, client, ecs, name, algorithm, reason, answer = self.log_queue.popleft()
                lines.append(json.dumps({"t": t, "client": client, "ecs": ecs, "name": name,
                                         "algorithm": algorithm, "reason": reason,
                                         "answer": answer}) + "\n")
            unlogged = self.stats["decisions_unlogged"] - self.unlogged_written
            if unlogged:
                lines.append(json.dumps({"t": round(time.time(), 3),
                                         "unlogged": unlogged}) + "\n")
                self.unlogged_written += unlogged
            if lines:
                self.decision_log.write("".join(lines))
                self.decision_log.flush()

    def _event(self, ev: dict) -> None:
        ev = {"t": round(time.time(), 3), **ev}
        self.events.append(ev)
        self.log("gslb: " + json.dumps(ev))

    # ---- health checks ----------------------------------------------------------------------
    def record(self, pool: str, member: str, ok: bool, detail: str, rtt_ms=None,
               load=None) -> Transition | None:
        """Apply one probe result; empties the answer cache when the answer may change."""
        with self.lock:
            h = self.health[(pool, member)]
            before = (h.up, h.load, h.rtt_ms)
            t = h.record(ok, self.clock(), detail, rtt_ms, load)
            algos = self.cfg.pools[pool].algorithms
            if t is not None or (before[1] != h.load and "least-conn" in algos) or \
                    (before[2] != h.rtt_ms and "rtt" in algos and self.cfg.rtt_source == "gslb"):
                self._changed()
        if t is not None:
            self.stats["transitions"] += 1
            self._event({"event": "health", "pool": pool, "member": member, "from": t.old,
                         "to": t.new, "detail": t.detail})
        return t

    async def _check_loop(self, pinger: Pinger, pool: Pool, member) -> None:
        c = pool.check
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                p = await asyncio.wait_for(run_check(pinger, str(member.address), c),
                                           c.timeout + 1)
                self.record(pool.name, member.name, p.ok, p.detail, p.rtt_ms, p.load)
            except TimeoutError:
                self.record(pool.name, member.name, False, "check did not finish in time")
            await asyncio.sleep(max(0.0, c.interval - (time.monotonic() - t0)))

    async def _checks(self) -> None:
        pinger = Pinger()
        tasks = [asyncio.create_task(self._check_loop(pinger, p, m))
                 for p in self.cfg.pools.values() if p.check.type != "none" for m in p.members]
        await asyncio.gather(*tasks)

    def _run_loop(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._checks())

    # ---- sockets ------------------------------------------------------------------------
    def start(self, wait_loaded: float = 0.0) -> None:
        threading.Thread(target=self._run_loop, daemon=True).start()
        if self.decision_log is not None:
            threading.Thread(target=self._log_writer, daemon=True).start()
        for host, port in self.listen:
            u, t = bind_udp_tcp(host, port, self.reuse_port)
            self.sockets += [u, t]
            threading.Thread(target=self._udp_loop, args=(u,), daemon=True).start()
            threading.Thread(target=self._tcp_accept, args=(t,), daemon=True).start()
        if self.control:
            threading.Thread(target=control_loop, args=(self.control, self.command),
                             daemon=True).start()
        names = ", ".join(sorted(self.cfg.names))
        self.log(f"gslb: answering {names} on "
                 + ", ".join(f"{h}:{p}" for h, p in self.listen))

    def _udp_loop(self, sock: socket.socket) -> None:
        """Batches in, batches out (`UdpBatch`), as the authoritative server's."""
        batch = UdpBatch(sock)
        while True:
            queries = batch.recv()
            if queries is None:
                return
            replies: list[bytes | None] = []
            for i, data in enumerate(queries):
                source = batch.source(i)[0]
                hit = self.cache.get((data[2:], source))  # (swapped, not cleared: look it up)
                if hit is not None:
                    replies.append(data[:2] + hit())
                    continue
                try:
                    replies.append(self.answer(data, source))
                except Exception as e:  # one bad packet never stops the server
                    self.stats["errors"] += 1
                    self.log(f"gslb: error answering {source}: {e!r}")
                    replies.append(header_only(data, RCODE.SERVFAIL))
            batch.send(replies)

    def _tcp_accept(self, sock: socket.socket) -> None:
        def answers(data: bytes, source: str) -> list[bytes]:
            out = self.answer(data, source, tcp=True)
            return [out] if out is not None else []

        tcp_accept_loop(sock, answers)

    def status(self) -> dict:
        now = self.clock()
        with self.lock:
            pools = {p.name: {m.name: {"address": str(m.address), "site": m.site,
                                       **self.health[(p.name, m.name)].view(now)}
                              for m in p.members} for p in self.cfg.pools.values()}
            rtt = {k: v[1] for k, v in self.site_rtt.items()}
        return {"zone": self.cfg.zone, "pools": pools, "site_rtt": rtt,
                "stats": dict(self.stats), "events": list(self.events)[-30:]}

    def command(self, line: str):
        words = line.split()
        if not words or words[0] == "status":
            return self.status()
        if words[0] == "stats":
            return dict(self.stats)
        return f"unknown command {line!r} (status, stats)"

    def stop(self) -> None:
        self.stopping.set()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass
        self._flush_log()  # what was queued is written before the process ends
