"""The DHCP client state machine (DHCP-CLIENT, RFC 2131 4.4), pure and clock-injected.

    INIT -> SELECTING -> REQUESTING -> BOUND -> RENEWING (T1, unicast to the server)
         -> REBINDING (T2, broadcast) -> lease expiry -> INIT;  stop() releases.

A BOOTP server (RFC 951) answers a DISCOVER with a plain BOOTREPLY: an address and no
DHCP message type. When such a reply is all that came `bootp_wait` seconds after it, the
client takes it (RFC 1534: a DHCP client may use a BOOTP server): SELECTING -> BOUND with
an infinite binding, no renewal and nothing to release.

It returns actions instead of doing anything: `Send` a message (broadcast, or unicast to
the server), `Configure` the interface with a lease, `Unconfigure` it. T1/T2 come from
the server (options 58/59) unless the client is told ratios (the notes' 50% / 75%).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from wire import dhcp as p

INIT, SELECTING, REQUESTING, BOUND, RENEWING, REBINDING = (
    "INIT", "SELECTING", "REQUESTING", "BOUND", "RENEWING", "REBINDING")
INFINITE = 0xFFFFFFFF  # RFC 2132 9.2: lease time "infinity"
PARAMS = bytes([p.OPT_MASK, p.OPT_ROUTER, p.OPT_DNS, p.OPT_DOMAIN, p.OPT_LEASE_TIME,
                p.OPT_T1, p.OPT_T2])


@dataclass
class Send:
    msg: p.DhcpMessage
    to: IPv4Address | None  # None: broadcast on the link


@dataclass
class Configure:
    address: IPv4Interface
    router: IPv4Address | None
    dns: list[IPv4Address]
    domain: str | None
    lease: int
    server: IPv4Address
    bootp: bool = False  # from a BOOTP server: infinite, never renewed or released


@dataclass
class Unconfigure:
    why: str


Action = Send | Configure | Unconfigure


@dataclass
class ClientMachine:
    mac: bytes
    t1_ratio: float | None = None  # None: the server's T1 (or RFC 0.5)
    t2_ratio: float | None = None  # None: the server's T2 (or RFC 0.875)
    retry_base: float = 4.0  # RFC 2131 4.1: 4 s, doubling up to 64 s, +-1 s
    hostname: str = ""
    bootp_wait: float = 1.0  # a BOOTP reply is taken only if no OFFER came by then
    rng: random.Random = field(default_factory=random.Random)
    state: str = INIT
    xid: int = 0
    offer: p.DhcpMessage | None = None
    lease: Configure | None = None
    bound_at: float = 0.0
    t1: float = 0.0
    t2: float = 0.0
    expiry: float = 0.0
    next_send: float = 0.0
    tries: int = 0
    bootp_reply: p.DhcpMessage | None = None
    bootp_at: float = 0.0
    history: list[tuple[float, str]] = field(default_factory=list)  # (time, state)

    # ---- events ---------------------------------------------------------------------------
    def start(self, now: float) -> list[Action]:
        return self._discover(now)

    def tick(self, now: float) -> list[Action]:
        """Timers: retransmissions, T1, T2, expiry."""
        if self.state in (BOUND, RENEWING, REBINDING) and now >= self.expiry:
            self._to(now, INIT)
            return [Unconfigure("lease expired")] + self._discover(now)
        if self.state == BOUND and now >= self.t1:
            self._to(now, RENEWING)
            self.tries = 0
            return self._renew(now)
        if self.state == RENEWING and now >= self.t2:
            self._to(now, REBINDING)
            return self._renew(now)
        if self.state == SELECTING and self.bootp_reply is not None and now >= self.bootp_at:
            return self._bound_bootp(now, self.bootp_reply)
        if now < self.next_send:
            return []
        if self.state == SELECTING:
            return self._send_discover(now)
        if self.state == REQUESTING:
            if self.tries >= 4:
                self._to(now, INIT)
                return self._discover(now)
            return self._send_request(now)
        if self.state in (RENEWING, REBINDING):
            return self._renew(now)
        return []

    def receive(self, now: float, m: p.DhcpMessage) -> list[Action]:
        if m.op != p.BOOTREPLY or m.xid != self.xid or m.chaddr[:6] != self.mac[:6]:
            return []
        t = m.msg_type
        if self.state == SELECTING and t == p.OFFER and m.addr(p.OPT_SERVER_ID):
            self.offer = m
            self._to(now, REQUESTING)
            self.tries = 0
            return self._send_request(now)
        if self.state == SELECTING and t is None and m.yiaddr != p.ZERO and \
                self.bootp_reply is None:  # a BOOTP server: kept in case no OFFER comes
            self.bootp_reply, self.bootp_at = m, now + self.bootp_wait
            return []
        if self.state in (REQUESTING, RENEWING, REBINDING) and t == p.ACK:
            return self._bound(now, m)
        if self.state in (REQUESTING, RENEWING, REBINDING) and t == p.NAK:
            was_bound = self.state != REQUESTING
            self._to(now, INIT)
            out: list[Action] = [Unconfigure("NAK: " + (m.text(p.OPT_MESSAGE) or ""))] \
                if was_bound else []
            return out + self._discover(now)
        return []

    def stop(self, now: float) -> list[Action]:
        """RELEASE the lease (unicast to its server) and unconfigure."""
        if self.lease is None or self.state not in (BOUND, RENEWING, REBINDING):
            return []
        if self.lease.bootp:  # BOOTP has no RELEASE: the server keeps the binding
            self._to(now, INIT)
            self.lease = None
            return [Unconfigure("stopped (a BOOTP binding has nothing to release)")]
        rel = self._msg(p.RELEASE, ciaddr=self.lease.address.ip)
        rel.options[p.OPT_SERVER_ID] = p.ip_opt(self.lease.server)
        self._to(now, INIT)
        server = self.lease.server
        self.lease = None
        return [Send(rel, server), Unconfigure("released")]

    @property
    def next_wakeup(self) -> float:
        times = [self.next_send] if self.state in (SELECTING, REQUESTING, RENEWING,
                                                   REBINDING) else []
        if self.state == SELECTING and self.bootp_reply is not None:
            times.append(self.bootp_at)
        if self.state == BOUND:
            times.append(self.t1)
        if self.state == RENEWING:
            times.append(self.t2)
        if self.state in (BOUND, RENEWING, REBINDING):
            times.append(self.expiry)
        return min(times) if times else float("inf")

    # ---- steps ------------------------------------------------------------------------------
    def _to(self, now: float, state: str) -> None:
        self.state = state
        self.history.append((now, state))

    def _discover(self, now: float) -> list[Action]:
        self.xid = self.rng.getrandbits(32)
        self.offer = self.bootp_reply = None
        self.tries = 0
        self._to(now, SELECTING)
        return self._send_discover(now)

    def _backoff(self, now: float) -> None:
        delay = min(self.retry_base * (2 ** self.tries), 64.0 * self.retry_base / 4)
        self.next_send = now + delay + self.rng.uniform(-0.25, 0.25) * self.retry_base / 4
        self.tries += 1

    def _msg(self, t: int, ciaddr: IPv4Address = p.ZERO, broadcast: bool = False) -> p.DhcpMessage:
        opts = {p.OPT_MSG_TYPE: bytes([t]), p.OPT_PARAMS: PARAMS}
        if self.hostname:
            opts[p.OPT_HOSTNAME] = self.hostname.encode()
        return p.DhcpMessage(p.BOOTREQUEST, self.xid, chaddr=self.mac, ciaddr=ciaddr,
                         flags=p.FLAG_BROADCAST if broadcast else 0, options=opts)

    def _send_discover(self, now: float) -> list[Action]:
        self._backoff(now)
        # no address yet: ask for broadcast replies (RFC 2131 4.1, BROADCAST bit)
        return [Send(self._msg(p.DISCOVER, broadcast=True), None)]

    def _send_request(self, now: float) -> list[Action]:
        assert self.offer is not None
        self._backoff(now)
        m = self._msg(p.REQUEST, broadcast=True)
        m.options[p.OPT_SERVER_ID] = self.offer.options[p.OPT_SERVER_ID]
        m.options[p.OPT_REQUESTED_IP] = p.ip_opt(self.offer.yiaddr)
        return [Send(m, None)]

    def _renew(self, now: float) -> list[Action]:
        """RENEWING: unicast to the server; REBINDING: broadcast. Retransmit after half
        the time left to the next deadline (RFC 2131 4.4.5), at least retry_base / 4."""
        assert self.lease is not None
        deadline = self.t2 if self.state == RENEWING else self.expiry
        self.next_send = now + max((deadline - now) / 2, self.retry_base / 4)
        m = self._msg(p.REQUEST, ciaddr=self.lease.address.ip)
        return [Send(m, self.lease.server if self.state == RENEWING else None)]

    @staticmethod
    def _configure(m: p.DhcpMessage, lease: int, server: IPv4Address,
                   bootp: bool = False) -> Configure:
        """The interface's configuration a reply (ACK or BOOTREPLY) carries."""
        mask = m.addr(p.OPT_MASK) or IPv4Address("255.255.255.0")
        return Configure(IPv4Interface(f"{m.yiaddr}/{mask}"), m.addr(p.OPT_ROUTER),
                         m.addrs(p.OPT_DNS), m.text(p.OPT_DOMAIN), lease, server, bootp)

    def _bound(self, now: float, m: p.DhcpMessage) -> list[Action]:
        lease = m.u32(p.OPT_LEASE_TIME) or 3600
        server = m.addr(p.OPT_SERVER_ID) or (self.lease.server if self.lease else p.ZERO)
        cfg = self._configure(m, lease, server)
        t1 = lease * self.t1_ratio if self.t1_ratio is not None else \
            m.u32(p.OPT_T1) or lease * 0.5
        t2 = lease * self.t2_ratio if self.t2_ratio is not None else \
            m.u32(p.OPT_T2) or lease * 0.875
        self.bound_at, self.t1, self.t2, self.expiry = now, now + t1, now + t2, now + lease
        self.lease = cfg
        self._to(now, BOUND)
        return [cfg]

    def _bound_bootp(self, now: float, m: p.DhcpMessage) -> list[Action]:
        server = m.siaddr if m.siaddr != p.ZERO else m.addr(p.OPT_SERVER_ID) or p.ZERO
        cfg = self._configure(m, INFINITE, server, bootp=True)
        inf = float("inf")
        self.bound_at, self.t1, self.t2, self.expiry = now, inf, inf, inf
        self.lease, self.bootp_reply = cfg, None
        self._to(now, BOUND)
        return [cfg]
