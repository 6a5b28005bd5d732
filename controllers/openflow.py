"""Translate infralab's message values (messages.py) into os-ken OpenFlow 1.3 messages."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import Any, NamedTuple

from os_ken.ofproto import nicira_ext, ofproto_v1_3

from .messages import (
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

# OVS's NX_HASH_FIELDS_SYMMETRIC_L3L4_UDP (os-ken names only the first two hash fields):
# addresses, protocol, and TCP, SCTP *and UDP* ports, the same both ways
SYMMETRIC_L3L4_UDP = 3


def _action(parser: Any, ofp: Any, a: object) -> Any:
    if isinstance(a, Output):
        return parser.OFPActionOutput(a.port, ofp.OFPCML_NO_BUFFER)
    if isinstance(a, SetField):
        return parser.OFPActionSetField(**{a.field: a.value})
    if isinstance(a, DecTTL):
        return parser.OFPActionDecNwTtl()
    if isinstance(a, Group):
        return parser.OFPActionGroup(a.group_id)
    if isinstance(a, Bundle):
        return parser.NXActionBundleLoad(
            algorithm=nicira_ext.NX_BD_ALG_ACTIVE_BACKUP if a.failover else
            nicira_ext.NX_BD_ALG_HRW, fields=SYMMETRIC_L3L4_UDP, basis=0,
            slave_type=nicira_ext.NXM_OF_IN_PORT, n_slaves=len(a.ports),
            ofs_nbits=nicira_ext.ofs_nbits(0, 31), dst="metadata", slaves=list(a.ports))
    if isinstance(a, FinTimeout):
        return parser.NXActionFinTimeout(fin_idle_timeout=a.idle, fin_hard_timeout=0)
    if isinstance(a, Conntrack):
        nat = []
        if a.nat_range is not None:
            flags, (addr, lo, hi) = a.nat_range
            nat = [parser.NXActionNAT(flags=flags, range_ipv4_min=addr, range_ipv4_max=addr,
                                      range_proto_min=lo, range_proto_max=hi)]
        elif a.nat:
            nat = [parser.NXActionNAT(flags=0)]
        return parser.NXActionCT(flags=1 if a.commit else 0, zone_src="",
                                 zone_ofs_nbits=a.zone, recirc_table=a.table, alg=0,
                                 actions=nat)
    raise TypeError(f"unknown action {a!r}")


def to_ofp(dp: Any, m: Message) -> Any | list[Any]:
    """The os-ken message(s) for `m` on datapath `dp`."""
    ofp, parser = dp.ofproto, dp.ofproto_parser
    if isinstance(m, FlowMod):
        if m.delete:
            return parser.OFPFlowMod(dp, cookie=m.cookie, cookie_mask=m.cookie_mask,
                                     table_id=ofp.OFPTT_ALL if m.table == 0xFF else m.table,
                                     command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY,
                                     out_group=ofp.OFPG_ANY)
        inst = []
        if m.actions:
            inst.append(parser.OFPInstructionActions(
                ofp.OFPIT_APPLY_ACTIONS, [_action(parser, ofp, a) for a in m.actions]))
        if m.metadata is not None:
            inst.append(parser.OFPInstructionWriteMetadata(*m.metadata))
        if m.goto is not None:
            inst.append(parser.OFPInstructionGotoTable(m.goto))
        return parser.OFPFlowMod(
            dp, cookie=m.cookie, table_id=m.table, command=ofp.OFPFC_ADD,
            idle_timeout=m.idle_timeout, hard_timeout=m.hard_timeout, priority=m.priority,
            buffer_id=ofp.OFP_NO_BUFFER,
            flags=ofp.OFPFF_SEND_FLOW_REM if m.notify_removed else 0,
            match=parser.OFPMatch(**m.match), instructions=inst)
    if isinstance(m, GroupMod):
        if m.delete_all:
            return parser.OFPGroupMod(dp, command=ofp.OFPGC_DELETE, group_id=ofp.OFPG_ALL)
        buckets = [parser.OFPBucket(actions=[parser.OFPActionOutput(p)]) for p in m.ports]
        # ADD then MODIFY would need state; delete-all on connect makes ADD always right.
        return parser.OFPGroupMod(dp, command=ofp.OFPGC_ADD, type_=ofp.OFPGT_ALL,
                                  group_id=m.group_id, buckets=buckets)
    if isinstance(m, PacketOut):
        return parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=m.in_port,
                                   actions=[_action(parser, ofp, a) for a in m.actions],
                                   data=m.data)
    if isinstance(m, SwitchConfig):
        # OpenFlow 1.3 enables the INVALID_TTL packet-in reason by the async config
        # (1.1/1.2 had a switch-config flag for it).
        reasons = (1 << ofp.OFPR_NO_MATCH) | (1 << ofp.OFPR_ACTION)
        if m.invalid_ttl_to_controller:
            reasons |= 1 << ofp.OFPR_INVALID_TTL
        return [parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, m.miss_send_len),
                parser.OFPSetAsync(dp, [reasons, reasons], [0b111, 0b111], [0b1111, 0b1111])]
    raise TypeError(f"unknown message {m!r}")


# ---- packet-ins, parsed lean -----------------------------------------------------------
_PACKET_IN = struct.Struct("!IHBBQHH")  # buffer_id total_len reason table_id cookie | match
_U32, _U64 = struct.Struct("!I"), struct.Struct("!Q")
OXM_OF_BASIC, OXM_IN_PORT, OXM_METADATA = 0x8000, 0, 2
OFPT_PACKET_IN = 10


class PacketInMatch(dict):
    """The packet-in's match as the app reads it (`.get`): in_port and metadata only."""


def lean_packet_in(datapath, version, msg_type, msg_len, xid, buf):
    """os-ken's OFPPacketIn, parsed without building an OFPMatch: the app reads only
    in_port and metadata, and OVS sends every pipeline field (conntrack's too: the
    PAT's new connections come up after a ct lookup), whose object-by-object parsing was
    the largest share of the controller's time per NAT binding."""
    from os_ken.ofproto.ofproto_v1_3_parser import OFPPacketIn

    msg = OFPPacketIn(datapath)
    msg.set_headers(version, msg_type, msg_len, xid)
    msg.set_buf(buf)
    buf = msg.buf  # (bytes: os-ken receives into a bytearray)
    (msg.buffer_id, msg.total_len, msg.reason, msg.table_id, msg.cookie, _,
     match_len) = _PACKET_IN.unpack_from(buf, 8)
    match = PacketInMatch()
    off, end = 28, 24 + match_len
    while off + 4 <= end:
        (h,) = _U32.unpack_from(buf, off)  # the OXM header
        if h >> 16 == OXM_OF_BASIC and not h & 0x100:
            field = (h >> 9) & 0x7F
            if field == OXM_IN_PORT:
                match["in_port"] = _U32.unpack_from(buf, off + 4)[0]
            elif field == OXM_METADATA:
                match["metadata"] = _U64.unpack_from(buf, off + 4)[0]
        off += 4 + (h & 0xFF)
    msg.match = match
    start = 24 + (match_len + 7) // 8 * 8 + 2
    msg.data = buf[start:start + msg.total_len]
    return msg


# ---- flow-stats replies, parsed lean ---------------------------------------------------
_FLOW_STATS = struct.Struct(ofproto_v1_3.OFP_FLOW_STATS_0_PACK_STR)  # up to its match


class FlowCounters(NamedTuple):
    """One flow-stats entry as the app reads it: its counters by cookie. os-ken's own
    parser builds an OFPMatch and every instruction and action of each flow; for the NAT's
    few thousand flows that took the controller ~0.7 s of CPU per request, during which no
    packet-in (a new binding: a resolver's next upstream query) was handled."""

    length: int
    table_id: int
    priority: int
    cookie: int
    packet_count: int
    byte_count: int

    @classmethod
    def parser(cls, buf, offset: int) -> FlowCounters:
        (length, table_id, _sec, _nsec, priority, _idle, _hard, _flags, cookie, packets,
         nbytes) = _FLOW_STATS.unpack_from(buf, offset)
        return cls(length, table_id, priority, cookie, packets, nbytes)


def use_lean_parsers() -> None:
    """Have os-ken parse OpenFlow 1.3 packet-ins with lean_packet_in and flow-stats
    replies' entries as FlowCounters."""
    from os_ken.ofproto import ofproto_v1_3_parser

    ofproto_v1_3_parser._MSG_PARSERS[OFPT_PACKET_IN] = lean_packet_in
    ofproto_v1_3_parser.OFPFlowStatsReply.cls_stats_body_cls = FlowCounters


# ---- packet-outs, encoded lean --------------------------------------------------------
# The NAT answers each new binding with one packet-out: encoded here straight to bytes
# (os-ken builds an object per action and serializes each), for the actions NAT and
# routing packet-outs carry; anything else goes through to_ofp. Byte for byte what os-ken
# would send (tests/unit/test_openflow.py).
OFPT_PACKET_OUT, OFPAT_OUTPUT, OFPAT_SET_FIELD, OFPAT_EXPERIMENTER = 13, 0, 25, 0xFFFF
NX_VENDOR, NXAST_CT, NXAST_NAT = 0x00002320, 35, 36
OFPCML_NO_BUFFER, OFP_NO_BUFFER = 0xFFFF, 0xFFFFFFFF
_OXM_FIELDS = {"eth_dst": (3, 6), "eth_src": (4, 6), "ipv4_src": (11, 4), "ipv4_dst": (12, 4),
               "tcp_src": (13, 2), "tcp_dst": (14, 2), "udp_src": (15, 2), "udp_dst": (16, 2)}
_OUTPUT = struct.Struct("!HHIH6x")
_NX_HEADER = struct.Struct("!HHIH")
_CT_BODY = struct.Struct("!HIHB3xH")
_PO_HEADER = struct.Struct("!BBHIIIH6x")


def _pad8(b: bytes) -> bytes:
    return b + bytes(-len(b) % 8)


def _field_value(size: int, value: object) -> bytes:
    if size == 6:
        return bytes.fromhex(str(value).replace(":", ""))
    if size == 4:
        return IPv4Address(str(value)).packed
    return struct.pack("!H", int(value))  # type: ignore[call-overload]


def _nx(subtype: int, body: bytes) -> bytes:
    length = (_NX_HEADER.size + len(body) + 7) // 8 * 8
    return _pad8(_NX_HEADER.pack(OFPAT_EXPERIMENTER, length, NX_VENDOR, subtype) + body)


def encode_action(a: object) -> bytes | None:
    """One action as OpenFlow 1.3 wire bytes, or None (not one this encoder knows)."""
    if isinstance(a, Output):
        return _OUTPUT.pack(OFPAT_OUTPUT, 16, a.port, OFPCML_NO_BUFFER)
    if isinstance(a, SetField) and a.field in _OXM_FIELDS:
        num, size = _OXM_FIELDS[a.field]
        oxm = struct.pack("!I", (0x8000 << 16) | (num << 9) | size) + \
            _field_value(size, a.value)
        return _pad8(struct.pack("!HH", OFPAT_SET_FIELD, (4 + len(oxm) + 7) // 8 * 8) + oxm)
    if isinstance(a, Conntrack):
        nat = b""
        if a.nat_range is not None:
            flags, (addr, lo, hi) = a.nat_range
            ip = IPv4Address(addr).packed
            nat = _nx(NXAST_NAT, struct.pack("!2xHH", flags, 0x1 | 0x2 | 0x10 | 0x20) +
                      ip + ip + struct.pack("!HH", lo, hi))
        elif a.nat:
            nat = _nx(NXAST_NAT, struct.pack("!2xHH", 0, 0))
        return _nx(NXAST_CT, _CT_BODY.pack(1 if a.commit else 0, 0, a.zone, a.table, 0) + nat)
    return None


def encode_packet_out(m: PacketOut, xid: int = 0) -> bytes | None:
    """The PACKET_OUT for `m` as wire bytes, or None if an action is not one
    encode_action knows (then to_ofp)."""
    actions = b""
    for a in m.actions:
        enc = encode_action(a)
        if enc is None:
            return None
        actions += enc
    length = _PO_HEADER.size + len(actions) + len(m.data)
    return _PO_HEADER.pack(4, OFPT_PACKET_OUT, length, xid, OFP_NO_BUFFER, m.in_port,
                           len(actions)) + actions + m.data
