"""A software model of an OpenFlow 1.3 switch's tables, for tests and explanations.

It applies the FlowMods/GroupMods the control logic returns and runs a frame through the
pipeline the way OVS would (highest priority wins, apply-actions, write-metadata, goto,
ALL groups skipping the ingress port, dec_ttl expiry sent to the controller), so unit tests
check where a packet would go without a switch.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from controllers.messages import (
    CONTROLLER,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_RPL,
    CT_TRK,
    IN_PORT,
    META_MASK,
    NO_RECIRC,
    REASON_ACTION,
    REASON_INVALID_TTL,
    REASON_NO_MATCH,
    TABLE,
    Bundle,
    Conntrack,
    DecTTL,
    FinTimeout,
    FlowMod,
    Group,
    GroupMod,
    Message,
    Output,
    PacketOut,
    SetField,
    SwitchConfig,
)
from controllers.pipeline import violation
from wire import frames as pk


class PipelineViolation(AssertionError):
    """A flow-mod outside the declared pipeline (controllers/pipeline.py): wrong table,
    priority band, cookie space or next table."""


class AmbiguousFlows(AssertionError):
    """Two flows of equal priority match one packet: OpenFlow leaves the winner undefined."""


@dataclass
class Result:
    outputs: list[tuple[int, bytes]] = field(default_factory=list)
    # in_port, data, reason, table, metadata: what an OpenFlow packet-in carries
    packet_ins: list[tuple[int, bytes, int, int, int]] = field(default_factory=list)
    path: list[int] = field(default_factory=list)  # tables visited
    # packets handed to OVS conntrack (not simulated): (Conntrack action, packet)
    conntrack: list[tuple[object, bytes]] = field(default_factory=list)


def _fields(raw: bytes, in_port: int, metadata: int, ct_state: int = 0) -> dict:
    f = pk.parse(raw)
    d: dict = {"in_port": in_port, "metadata": metadata, "ct_state": ct_state}
    if f is None:
        return d
    d.update(eth_dst=f.eth_dst, eth_src=f.eth_src, eth_type=f.eth_type)
    if f.eth_type == pk.ETH_ARP:
        d.update(arp_op=f.arp_op, arp_spa=str(f.arp_spa), arp_tpa=str(f.arp_tpa))
    elif f.eth_type == pk.ETH_IPV4:
        d.update(ipv4_src=str(f.ip_src), ipv4_dst=str(f.ip_dst), ip_proto=f.proto)
        if f.proto == pk.PROTO_ICMP and f.icmp_type >= 0:
            d["icmpv4_type"] = f.icmp_type
        if f.proto in (pk.PROTO_TCP, pk.PROTO_UDP) and len(f.l4) >= 4:
            sport, dport = struct.unpack("!HH", f.l4[:4])
            name = "tcp" if f.proto == pk.PROTO_TCP else "udp"
            d[f"{name}_src"], d[f"{name}_dst"] = sport, dport
            if f.proto == pk.PROTO_TCP and len(f.l4) >= 14:
                d["tcp_flags"] = f.l4[13]
    return d


def _matches(match: dict, fields: dict) -> bool:
    for k, want in match.items():
        have = fields.get(k)
        if have is None:
            return False
        if k in ("ipv4_src", "ipv4_dst"):
            addr, mask = want if isinstance(want, tuple) else (want, "255.255.255.255")
            m = int(IPv4Address(mask))
            if int(IPv4Address(have)) & m != int(IPv4Address(addr)) & m:
                return False
        elif k in ("metadata", "tcp_flags", "ct_state"):
            value, mask = want if isinstance(want, tuple) else (want, 2**64 - 1)
            if have & mask != value & mask:
                return False
        elif have != want:
            return False
    return True


def _rewrite(raw: bytes, fld: str, value: object) -> bytes:
    b = bytearray(raw)
    if fld == "eth_dst":
        b[0:6] = pk.mac_bytes(str(value))
    elif fld == "eth_src":
        b[6:12] = pk.mac_bytes(str(value))
    elif fld == "ipv4_src":
        return pk.rewrite_ipv4(raw, src=IPv4Address(str(value)))
    elif fld == "ipv4_dst":
        return pk.rewrite_ipv4(raw, dst=IPv4Address(str(value)))
    elif fld in ("tcp_src", "udp_src"):
        return pk.rewrite_ipv4(raw, sport=int(value))  # type: ignore[call-overload]
    elif fld in ("tcp_dst", "udp_dst"):
        return pk.rewrite_ipv4(raw, dport=int(value))  # type: ignore[call-overload]
    else:
        raise NotImplementedError(f"flowsim cannot set {fld}")
    return bytes(b)


def _fix_ip_checksum(b: bytearray) -> None:
    ihl = (b[14] & 0x0F) * 4
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", pk.checksum(bytes(b[14:14 + ihl])))


def _five_tuple(raw: bytes) -> tuple | None:
    f = pk.parse(raw)
    if f is None or f.proto not in (pk.PROTO_TCP, pk.PROTO_UDP) or len(f.l4) < 4:
        return None
    sport, dport = struct.unpack("!HH", f.l4[:4])
    return f.proto, str(f.ip_src), sport, str(f.ip_dst), dport


@dataclass
class CtConn:
    """One connection of the conntrack model: its tuples both ways, and its NAT."""

    zone: int
    orig: tuple  # (proto, src, sport, dst, dport) as the first packet came
    reply: tuple  # what a reply looks like (after the NAT)
    replied: bool = False


class ConntrackModel:
    """Enough of OVS conntrack for the PAT's TCP bindings (flows.tcp_binding_flows): a
    lookup with `nat` (no commit) finds a connection either way and translates the packet;
    a commit with one exact NAT endpoint (what the controller's packet-out carries)
    creates it. State: +trk, +new until a reply was seen, then +est (+rpl for replies)."""

    def __init__(self) -> None:
        self.conns: dict[tuple, tuple[CtConn, bool]] = {}  # (zone, tuple) -> (conn, reply?)

    def models(self, a: Conntrack) -> bool:
        """The fast path's commit with a port range is left to OVS (not modelled)."""
        return a.nat_range is None or a.nat_range[1][1] == a.nat_range[1][2]

    def execute(self, a: Conntrack, raw: bytes) -> tuple[bytes, int]:
        t = _five_tuple(raw)
        if t is None:
            return raw, CT_TRK | CT_INV
        hit = self.conns.get((a.zone, t))
        if hit is None:
            if not a.commit:
                return raw, CT_TRK | CT_NEW
            proto, src, sport, dst, dport = t
            if a.nat_src is not None:
                src, sport = a.nat_src[0], a.nat_src[1]
            if a.nat_dst is not None:
                dst, dport = a.nat_dst[0], a.nat_dst[1]
            c = CtConn(a.zone, t, (proto, dst, dport, src, sport))
            self.conns[(a.zone, t)] = (c, False)
            self.conns[(a.zone, c.reply)] = (c, True)
            return self._translate(raw, c, False), CT_TRK | CT_NEW
        c, is_reply = hit
        if is_reply:
            c.replied = True
        state = CT_TRK | (CT_EST if c.replied else CT_NEW) | (CT_RPL if is_reply else 0)
        return (self._translate(raw, c, is_reply) if a.nat or a.commit else raw), state

    @staticmethod
    def _translate(raw: bytes, c: CtConn, is_reply: bool) -> bytes:
        """The packet as the connection's NAT makes it: the original direction gets the
        reply's endpoints swapped in, a reply the original's."""
        _, osrc, osport, odst, odport = c.orig
        _, rsrc, rsport, rdst, rdport = c.reply
        if is_reply:  # reply: rsrc:rsport -> rdst:rdport becomes odst:odport -> osrc:osport
            src, sport, dst, dport = odst, odport, osrc, osport
        else:
            src, sport, dst, dport = rdst, rdport, rsrc, rsport
        return pk.rewrite_ipv4(raw, src=IPv4Address(src), dst=IPv4Address(dst),
                               sport=sport, dport=dport)

    def rows(self, zone: int) -> list[dict]:
        """The zone's connections as parse_conntrack reads them from OVS."""
        return [{"inside": f"{c.orig[1]}:{c.orig[2]}", "outside": f"{c.reply[3]}:{c.reply[4]}",
                 "remote": f"{c.orig[3]}:{c.orig[4]}", "state": ""}
                for (z, _), (c, is_reply) in self.conns.items() if z == zone and not is_reply]

    def forget(self, zone: int) -> None:
        """Every connection of `zone` timed out."""
        self.conns = {k: v for k, v in self.conns.items() if k[0] != zone}


class FlowSim:
    """The flow and group tables of one switch, fed by control-logic messages."""

    def __init__(self) -> None:
        self.flows: list[FlowMod] = []
        self.groups: dict[int, tuple[int, ...]] = {}
        self.down_ports: set[int] = set()  # ports whose link is down (bucket liveness)
        self.invalid_ttl_to_controller = False
        self.now = 0.0  # the clock idle timeouts are measured with (set by the caller)
        self.used: dict[int, list] = {}  # id(flow) -> [last used, packets, bytes]
        self.ct = ConntrackModel()

    def apply(self, msgs: list[Message]) -> list[PacketOut]:
        """Install flow/group messages; return the packet-outs for the caller to deliver."""
        outs = []
        for m in msgs:
            if isinstance(m, FlowMod):
                why = violation(m)
                if why is not None:
                    raise PipelineViolation(f"{why}: {m}")
                if m.delete:
                    self.flows = [f for f in self.flows
                                  if not (m.table in (0xFF, f.table)
                                          and f.cookie & m.cookie_mask == m.cookie & m.cookie_mask)]
                    continue
                self.flows = [f for f in self.flows if not (
                    f.table == m.table and f.priority == m.priority and f.match == m.match)]
                self.flows.append(m)
                self.used[id(m)] = [self.now, 0, 0, self.now]
            elif isinstance(m, GroupMod):
                if m.delete_all:
                    self.groups.clear()
                else:
                    self.groups[m.group_id] = m.ports
            elif isinstance(m, SwitchConfig):
                self.invalid_ttl_to_controller = m.invalid_ttl_to_controller
            elif isinstance(m, PacketOut):
                outs.append(m)
        return outs

    def expire(self, now: float) -> list[tuple[int, int, int]]:
        """Remove flows idle for their idle timeout (or past their hard timeout); return
        (cookie, packets, bytes) of those that asked for a FlowRemoved."""
        self.now = now
        gone, keep = [], []
        for f in self.flows:
            last, packets, nbytes, installed = self.used.get(id(f), [now, 0, 0, now])
            if (f.idle_timeout and now - last >= f.idle_timeout) or \
                    (f.hard_timeout and now - installed >= f.hard_timeout):
                if f.notify_removed:
                    gone.append((f.cookie, packets, nbytes))
            else:
                keep.append(f)
        self.flows = keep
        return gone

    def table(self, table: int) -> list[FlowMod]:
        return sorted((f for f in self.flows if f.table == table), key=lambda f: -f.priority)

    def packet_out(self, po: PacketOut) -> Result:
        """What a packet-out does: direct outputs, or a pipeline run for output:TABLE."""
        res = Result()
        data = po.data
        for a in po.actions:
            if isinstance(a, SetField):
                data = _rewrite(data, a.field, a.value)
            elif isinstance(a, Conntrack) and a.table == NO_RECIRC:
                data, _ = self.ct.execute(a, data)
            elif isinstance(a, Output) and a.port == TABLE:
                sub = self.run(po.in_port, data)
                res.outputs += sub.outputs
                res.packet_ins += sub.packet_ins
            elif isinstance(a, Output):
                res.outputs.append((a.port, data))
        return res

    def _bundle(self, b: Bundle, in_port: int, raw: bytes, metadata: int) -> int:
        """The port bundle_load picks (written to the metadata's low 32 bits): among the
        live ones, the first (failover) or one by a hash of the 5-tuple (as OVS's
        symmetric_l3l4+udp), or none (0) when every one is down."""
        live = [p for p in b.ports if p not in self.down_ports]
        if not live:
            return metadata & ~META_MASK
        if b.failover:
            port = live[0]
        else:
            f = _fields(raw, in_port, 0)
            key = repr([f.get(k) for k in ("ipv4_src", "ipv4_dst", "ip_proto", "tcp_src",
                                           "tcp_dst", "udp_src", "udp_dst")])
            port = live[zlib.crc32(key.encode()) % len(live)]
        return (metadata & ~META_MASK) | port

    def run(self, in_port: int, raw: bytes) -> Result:
        """Send `raw` into the pipeline at `in_port`; collect outputs and packet-ins."""
        res = Result()
        table, metadata, ct_state = 0, 0, 0
        for _ in range(16):
            res.path.append(table)
            fields = _fields(raw, in_port, metadata, ct_state)
            hits = [f for f in self.table(table) if _matches(f.match, fields)]
            if not hits:
                return res  # table miss without a miss flow: drop
            if len(hits) > 1 and hits[0].priority == hits[1].priority:
                raise AmbiguousFlows(f"table {table}: {hits[0]} / {hits[1]}")
            flow = hits[0]
            use = self.used.setdefault(id(flow), [self.now, 0, 0, self.now])
            use[0] = self.now
            use[1] += 1
            use[2] += len(raw) - 14
            recirc = None
            for a in flow.actions:
                if isinstance(a, DecTTL):
                    ttl = raw[14 + 8]
                    if ttl <= 1:
                        if self.invalid_ttl_to_controller:
                            res.packet_ins.append((in_port, raw, REASON_INVALID_TTL, table,
                                                   metadata))
                        return res
                    b = bytearray(raw)
                    b[22] = ttl - 1
                    _fix_ip_checksum(b)
                    raw = bytes(b)
                elif isinstance(a, SetField):
                    raw = _rewrite(raw, a.field, a.value)
                elif isinstance(a, Conntrack) and self.ct.models(a):
                    raw, ct_state = self.ct.execute(a, raw)
                    if a.table != NO_RECIRC:
                        recirc = a.table  # (the flow's later actions: none in ours)
                        break
                elif isinstance(a, Conntrack):  # the fast path's own port choice: not modelled
                    res.conntrack.append((a, raw))
                    return res
                elif isinstance(a, Output):
                    if a.port == CONTROLLER:
                        why = REASON_NO_MATCH if flow.priority == 0 else REASON_ACTION
                        res.packet_ins.append((in_port, raw, why, table, metadata))
                    elif a.port == IN_PORT:
                        res.outputs.append((in_port, raw))
                    elif a.port != in_port:
                        res.outputs.append((a.port, raw))
                elif isinstance(a, Group):
                    for p in self.groups.get(a.group_id, ()):
                        if p != in_port:
                            res.outputs.append((p, raw))
                elif isinstance(a, Bundle):
                    metadata = self._bundle(a, in_port, raw, metadata)
                elif isinstance(a, FinTimeout) and fields.get("ip_proto") == 6 and \
                        raw[14 + (raw[14] & 0xF) * 4 + 13] & 0x05:  # FIN or RST
                    if not flow.idle_timeout or flow.idle_timeout > a.idle:
                        flow.idle_timeout = a.idle  # (as OVS: only ever shortened)
            if flow.metadata is not None:
                value, mask = flow.metadata
                metadata = (metadata & ~mask) | (value & mask)
            if recirc is not None:
                table = recirc
                continue
            if flow.goto is None:
                return res
            table = flow.goto
        raise AssertionError("pipeline loop")
