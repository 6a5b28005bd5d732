"""The DHCP server's decisions (RFC 2131 4.3, 4.1): which reply, to where. Pure.

`DhcpLogic.handle(now, msg, local)` takes a parsed request and the address of the
interface it arrived on and returns `Reply` values naming how to deliver each: to the
relay (giaddr, port 67), to ciaddr, broadcast, or unicast to the client's MAC and yiaddr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from wire import dhcp as p

from .config import Config, Subnet
from .leases import INFINITE, LeasePool, ip_text

log = logging.getLogger("infralab.dhcp")

RELAY, CIADDR, BROADCAST, UNICAST = "relay", "ciaddr", "broadcast", "unicast"


@dataclass
class Reply:
    msg: p.DhcpMessage
    how: str  # RELAY | CIADDR | BROADCAST | UNICAST
    ip: IPv4Address  # where to: giaddr, ciaddr, 255.255.255.255 or yiaddr
    mac: str  # Ethernet destination for BROADCAST/UNICAST


@dataclass
class Counters:
    received: int = 0
    malformed: int = 0
    discover: int = 0
    offer: int = 0
    request: int = 0
    ack: int = 0
    nak: int = 0
    decline: int = 0
    release: int = 0
    inform: int = 0
    bootp: int = 0
    exhausted: int = 0
    ignored: int = 0  # not for us (other server chosen, no subnet, no record)
    withdrawn: int = 0  # offers freed because the client chose another server


@dataclass
class DhcpLogic:
    config: Config
    pools: dict[str, LeasePool] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    events: list[dict] = field(default_factory=list)
    record_events: bool = True  # off where nobody reads them (a server with no event log)

    def __post_init__(self) -> None:
        self._reply_opts: dict[tuple[int, int | None, int | None], tuple[IPv4Address,
                                                                        dict[int, bytes]]] = {}
        self._pool_of: dict[int, LeasePool] = {}  # by id(subnet): no str() per message
        # the receiving interface and its address (IPv4Interface.ip makes a new one per call)
        self._local: tuple[IPv4Interface | None, IPv4Address] = (None, p.ZERO)
        for s in self.config.subnets:
            self._pool_of[id(s)] = self.pools.setdefault(str(s.network), LeasePool(s))

    # ---- the entry point ----------------------------------------------------------------
    def handle(self, now: float, m: p.DhcpMessage, local: IPv4Interface) -> list[Reply]:
        self.counters.received += 1
        if m.op != p.BOOTREQUEST:
            self.counters.ignored += 1
            return []
        subnet = self._subnet(m, local)
        if subnet is None:
            self.counters.ignored += 1
            self._event(now, "ignored", m, why="no subnet for giaddr/interface "
                        f"{m.giaddr if m.giaddr != p.ZERO else local}")
            return []
        pool = self._pool_of[id(subnet)]
        server_id = self.config.server_id or self._local_ip(local)
        if m.bootp or self.config.bootp_only:  # (a BOOTP-only server reads no DHCP option)
            return self._bootp(now, m, subnet, pool, server_id)
        t = m.msg_type
        if t == p.DISCOVER:
            return self._discover(now, m, subnet, pool, server_id)
        if t == p.REQUEST:
            return self._request(now, m, subnet, pool, server_id)
        if t == p.DECLINE:
            self.counters.decline += 1
            ip = m.addr(p.OPT_REQUESTED_IP)
            if ip is not None and m.addr(p.OPT_SERVER_ID) in (None, server_id) and \
                    pool.decline(now, m.client_key, ip):
                self._event(now, "decline", m, ip=ip_text(ip))
            return []
        if t == p.RELEASE:
            self.counters.release += 1
            if m.addr(p.OPT_SERVER_ID) in (None, server_id) and \
                    pool.release(now, m.client_key, m.ciaddr):
                self._event(now, "release", m, ip=str(m.ciaddr))
            return []
        if t == p.INFORM:
            self.counters.inform += 1
            reply = self._reply(m, p.ACK, p.ZERO, subnet, server_id, lease=None)
            return [self._deliver(reply, m)]
        self.counters.ignored += 1
        return []

    def _subnet(self, m: p.DhcpMessage, local: IPv4Interface) -> Subnet | None:
        """giaddr names the client's subnet (relayed); a configured client (renew,
        release, inform: unicast straight to us) is on ciaddr's; else the receiving
        interface's (RFC 2131 4.3.1)."""
        if m.giaddr != p.ZERO:
            return self.config.subnet_for(m.giaddr)
        if m.ciaddr != p.ZERO and (s := self.config.subnet_for(m.ciaddr)) is not None:
            return s
        return self.config.subnet_for(self._local_ip(local))

    def _local_ip(self, local: IPv4Interface) -> IPv4Address:
        if self._local[0] is not local:
            self._local = (local, local.ip)
        return self._local[1]

    # ---- message types ------------------------------------------------------------------
    def _discover(self, now: float, m: p.DhcpMessage, subnet: Subnet, pool: LeasePool,
                  server_id: IPv4Address) -> list[Reply]:
        self.counters.discover += 1
        ip = pool.offer(now, m.client_key, m.mac, m.addr(p.OPT_REQUESTED_IP),
                        m.text(p.OPT_HOSTNAME) or "")
        if ip is None:
            self.counters.exhausted += 1
            self._event(now, "exhausted", m, subnet=str(subnet.network))
            return []
        self.counters.offer += 1
        if self.record_events:
            self._event(now, "offer", m, ip=ip_text(ip))
        return [self._deliver(self._reply(m, p.OFFER, ip, subnet, server_id,
                                          subnet.lease_time), m)]

    def _request(self, now: float, m: p.DhcpMessage, subnet: Subnet, pool: LeasePool,
                 server_id: IPv4Address) -> list[Reply]:
        self.counters.request += 1
        chosen = m.addr(p.OPT_SERVER_ID)
        requested = m.addr(p.OPT_REQUESTED_IP)
        if chosen is not None and chosen != server_id:  # SELECTING, another server won
            ip = pool.withdraw_offer(now, m.client_key)
            if ip is not None:
                self.counters.withdrawn += 1
                self._event(now, "withdrawn", m, ip=ip_text(ip), chosen=str(chosen))
            self.counters.ignored += 1
            return []
        how = "renew"  # RENEWING or REBINDING: ciaddr holds the address
        if chosen is not None:  # SELECTING, us
            ip, how = requested, "select"
        elif requested is not None:  # INIT-REBOOT
            ip, how = requested, "init-reboot"
            if ip not in subnet.network:
                return [self._nak(now, m, server_id, f"{ip} is not on this subnet")]
            lease = pool.owner(ip, now)
            if lease is None and pool.lease_of(m.client_key, now) is None and \
                    m.client_key not in pool.by_client:
                self.counters.ignored += 1  # no record of this client: stay silent
                return []
        else:  # RENEWING (unicast) or REBINDING (broadcast): ciaddr holds the address
            ip = m.ciaddr
            if ip == p.ZERO:
                return [self._nak(now, m, server_id, "REQUEST names no address")]
            if ip not in subnet.network:
                return [self._nak(now, m, server_id, f"{ip} is not on this subnet")]
            # (a lapsed lease whose address is still free is simply bound again below)
        if ip is None:
            return [self._nak(now, m, server_id, "REQUEST names no address")]
        if not pool.bind(now, m.client_key, m.mac, ip, subnet.lease_time,
                         m.text(p.OPT_HOSTNAME) or ""):
            return [self._nak(now, m, server_id, f"{ip} is not available")]
        self.counters.ack += 1
        if self.record_events:
            self._event(now, "ack", m, ip=ip_text(ip), lease=subnet.lease_time, how=how)
        return [self._deliver(self._reply(m, p.ACK, ip, subnet, server_id,
                                          subnet.lease_time), m)]

    def _bootp(self, now: float, m: p.DhcpMessage, subnet: Subnet, pool: LeasePool,
               server_id: IPv4Address) -> list[Reply]:
        """RFC 951/1534: a BOOTP client gets a BOOTREPLY with an infinite binding."""
        self.counters.bootp += 1
        if not self.config.bootp:
            return []
        ip = pool.offer(now, m.client_key, m.mac, None)
        if ip is None or not pool.bind(now, m.client_key, m.mac, ip, INFINITE):
            self.counters.exhausted += 1
            return []
        self._event(now, "bootp", m, ip=ip_text(ip))
        reply = self._reply(m, None, ip, subnet, server_id, lease=None)
        reply.siaddr = server_id
        return [self._deliver(reply, m)]

    def _nak(self, now: float, m: p.DhcpMessage, server_id: IPv4Address, why: str) -> Reply:
        self.counters.nak += 1
        self._event(now, "nak", m, why=why)
        nak = p.DhcpMessage(p.BOOTREPLY, m.xid, 0, m.flags, giaddr=m.giaddr, chaddr=m.chaddr,
                        options={p.OPT_MSG_TYPE: bytes([p.NAK]),
                                 p.OPT_SERVER_ID: p.ip_opt(server_id),
                                 p.OPT_MESSAGE: why.encode()[:250]})
        if m.giaddr != p.ZERO:
            nak.flags |= p.FLAG_BROADCAST  # RFC 2131 4.3.2: relay broadcasts the NAK
            return Reply(nak, RELAY, m.giaddr, "")
        return Reply(nak, BROADCAST, IPv4Address("255.255.255.255"), "ff:ff:ff:ff:ff:ff")

    # ---- building and delivering ----------------------------------------------------------
    @staticmethod
    def _subnet_options(subnet: Subnet) -> dict[int, bytes]:
        """The options every reply on `subnet` carries."""
        opts = {p.OPT_MASK: p.ip_opt(subnet.network.netmask)}
        if subnet.router is not None:
            opts[p.OPT_ROUTER] = p.ip_opt(subnet.router)
        if subnet.dns:
            opts[p.OPT_DNS] = p.ip_opt(*subnet.dns)
        if subnet.domain:
            opts[p.OPT_DOMAIN] = subnet.domain.encode()
        return opts

    def _reply(self, m: p.DhcpMessage, mtype: int | None, ip: IPv4Address, subnet: Subnet,
               server_id: IPv4Address, lease: int | None) -> p.DhcpMessage:
        opts = dict(self._options(mtype, subnet, server_id, lease))
        if p.OPT_RELAY_AGENT in m.options:  # RFC 3046: echo option 82 to the relay
            opts[p.OPT_RELAY_AGENT] = m.options[p.OPT_RELAY_AGENT]
        return p.DhcpMessage(p.BOOTREPLY, m.xid, 0, m.flags, ciaddr=m.ciaddr if mtype == p.ACK
                         else p.ZERO, yiaddr=ip, giaddr=m.giaddr, chaddr=m.chaddr,
                         options=opts,
                         bootp=mtype is None and (m.bootp or self.config.bootp_only))

    def _options(self, mtype: int | None, subnet: Subnet, server_id: IPv4Address,
                 lease: int | None) -> dict[int, bytes]:
        """A reply's options but option 82, built once per subnet, type and lease (the
        same dict every time: copy it before changing it)."""
        key = (id(subnet), mtype, lease)
        kept = self._reply_opts.get(key)
        if kept is not None and kept[0] == server_id:
            return kept[1]
        opts: dict[int, bytes] = {}
        if mtype is not None:
            opts[p.OPT_MSG_TYPE] = bytes([mtype])
            opts[p.OPT_SERVER_ID] = server_id.packed
        opts.update(self._subnet_options(subnet))
        if lease is not None and mtype in (p.OFFER, p.ACK):
            opts[p.OPT_LEASE_TIME] = p.u32_opt(lease)
            opts[p.OPT_T1] = p.u32_opt(int(lease * self.config.t1))
            opts[p.OPT_T2] = p.u32_opt(int(lease * self.config.t2))
        self._reply_opts[key] = (server_id, opts)
        return opts

    @staticmethod
    def _deliver(reply: p.DhcpMessage, m: p.DhcpMessage) -> Reply:
        """RFC 2131 4.1: relay first, then ciaddr, then broadcast flag, else unicast."""
        if m.giaddr != p.ZERO:
            return Reply(reply, RELAY, m.giaddr, "")
        if m.ciaddr != p.ZERO:
            return Reply(reply, CIADDR, m.ciaddr, m.mac)
        if m.broadcast or reply.yiaddr == p.ZERO:
            return Reply(reply, BROADCAST, IPv4Address("255.255.255.255"), "ff:ff:ff:ff:ff:ff")
        return Reply(reply, UNICAST, reply.yiaddr, m.mac)

    # ---- views ------------------------------------------------------------------------------
    def _event(self, now: float, what: str, m: p.DhcpMessage, **kw: object) -> None:
        if not self.record_events:
            return
        self.events.append({"time": round(now, 3), "event": what, "mac": m.mac,
                            "client": m.client_key, "xid": f"{m.xid:#010x}", **kw})
        if len(self.events) > 10000:
            del self.events[:5000]

    def drain_journal(self) -> list[dict]:
        out: list[dict] = []
        for pool in self.pools.values():
            out += pool.journal
            pool.journal.clear()
        return out

    def table(self, now: float) -> list[dict]:
        rows: list[dict] = []
        for net, pool in self.pools.items():
            rows += [{**r, "subnet": net} for r in pool.table(now)]
        return rows
