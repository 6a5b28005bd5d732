"""controllers/openflow.py: the lean packet-in parser reads what os-ken's own parser reads
(in_port, metadata, reason, table, cookie, the frame), whatever else the match holds."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controllers.messages import NO_RECIRC, TABLE, Conntrack, Output, PacketOut, SetField
from controllers.openflow import encode_packet_out, lean_packet_in, to_ofp


class FakeDatapath:
    ofproto, ofproto_parser = ofp, parser


def packet_in_bytes(match: parser.OFPMatch, data: bytes, reason: int, table: int,
                    cookie: int, pad: bytes = b"") -> bytes:
    """An OpenFlow 1.3 PACKET_IN as a switch sends it (`pad`: trailing bytes past
    total_len, which a parser must drop)."""
    body = bytearray(struct.pack("!IHBBQ", ofp.OFP_NO_BUFFER, len(data), reason, table,
                                 cookie))
    mbuf = bytearray()
    match.serialize(mbuf, 0)  # (padded to 8 bytes)
    msg = body + mbuf + b"\0\0" + data + pad
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, 8 + len(msg), 7) + msg


MATCHES = {
    "in_port only": dict(in_port=3),
    "routed": dict(in_port=2, metadata=0x1A00000004),
    "after a conntrack lookup": dict(in_port=5, metadata=7, ct_state=0x21, ct_zone=6657,
                                     ct_mark=3, ct_label=(1 << 100) | 5),
    "with a tunnel and registers": dict(in_port=1, reg0=5, tunnel_id=9, metadata=1),
}


def both(raw: bytes):
    raw = bytearray(raw)  # (as os-ken's receive loop hands it over)
    ours = lean_packet_in(None, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(raw), 7, raw)
    theirs = parser.OFPPacketIn.parser(None, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN, len(raw),
                                       7, raw)
    return ours, theirs


def same(ours, theirs) -> None:
    for attr in ("buffer_id", "total_len", "reason", "table_id", "cookie", "data", "xid"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    for key in ("in_port", "metadata"):
        assert ours.match.get(key, "absent") == theirs.match.get(key, "absent"), key
    assert type(ours) is parser.OFPPacketIn  # os-ken dispatches EventOFPPacketIn by class
    assert type(ours.data) is bytes  # (what the frame parser takes)


@pytest.mark.parametrize("name", MATCHES)
def test_openflow_lean_packet_in_reads_what_os_ken_reads(name):
    frame = bytes(range(60)) * 2
    same(*both(packet_in_bytes(parser.OFPMatch(**MATCHES[name]), frame, 1, 4,
                               0x1AB1000000000005, pad=b"\xff" * 5)))


@settings(max_examples=200, deadline=None)
@given(in_port=st.integers(1, 0xFFFFFF00), metadata=st.integers(0, 2**64 - 1),
       ct=st.booleans(), frame=st.binary(min_size=14, max_size=300),
       reason=st.integers(0, 2), table=st.integers(0, 6), cookie=st.integers(0, 2**64 - 1))
def test_openflow_lean_packet_in_agrees_on_any_packet_in(in_port, metadata, ct, frame, reason,
                                                         table, cookie):
    fields: dict = {"in_port": in_port, "metadata": metadata}
    if ct:
        fields.update(ct_state=0x22, ct_zone=6657)
    same(*both(packet_in_bytes(parser.OFPMatch(**fields), frame, reason, table, cookie)))


ACTIONS = st.one_of(
    st.builds(Output, st.sampled_from([1, 2, 7, 0xFFFF, TABLE])),
    st.builds(SetField, st.just("eth_dst"), st.just("02:1a:00:02:02:01")),
    st.builds(SetField, st.just("eth_src"), st.just("0a:00:00:00:00:08")),
    st.builds(SetField, st.sampled_from(["ipv4_src", "ipv4_dst"]),
              st.sampled_from(["203.0.113.1", "10.1.1.11"])),
    st.builds(SetField, st.sampled_from(["tcp_src", "tcp_dst", "udp_src", "udp_dst"]),
              st.integers(0, 65535)),
    st.builds(Conntrack, st.integers(0, 65535), st.sampled_from([NO_RECIRC, 2, 4]),
              st.booleans(), st.booleans()),
    st.builds(lambda z, ip, p, src: Conntrack(z, NO_RECIRC, commit=True, **{
        "nat_src" if src else "nat_dst": (ip, p, p)}),
        st.integers(0, 65535), st.sampled_from(["203.0.113.1", "10.1.1.11"]),
        st.integers(1, 65535), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(actions=st.lists(ACTIONS, max_size=4), data=st.binary(min_size=14, max_size=200),
       in_port=st.sampled_from([1, 3, 0xFFFFFFFD]))
def test_openflow_lean_packet_out_is_what_os_ken_sends(actions, data, in_port):
    """The NAT's packet-outs, encoded without os-ken's objects, byte for byte as os-ken
    serializes the same message (xid aside, which os-ken numbers itself)."""
    # (ending in an output, as every packet-out does: os-ken leaves a last experimenter
    # action unpadded, with the frame right after it)
    m = PacketOut(data, (*actions, Output(2)), in_port=in_port)
    msg = to_ofp(FakeDatapath(), m)
    msg.xid = 9
    msg.serialize()
    assert encode_packet_out(m, xid=9) == bytes(msg.buf)


def flow_stats_reply_bytes(flows: list[tuple[int, int, int, int, parser.OFPMatch, int]],
                           more: bool) -> bytes:
    """An OFPMP_FLOW multipart reply as a switch sends it: per flow (cookie, packets,
    bytes, table, match, output port), with a match and one apply-actions instruction."""
    body = bytearray()
    for cookie, packets, nbytes, table, match, port in flows:
        mbuf = bytearray()
        match.serialize(mbuf, 0)
        ibuf = bytearray()
        parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                     [parser.OFPActionOutput(port)]).serialize(ibuf, 0)
        length = ofp.OFP_FLOW_STATS_0_SIZE + len(mbuf) + len(ibuf)
        body += struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, length, table, 5, 6, 100, 30, 0, 0,
                            cookie, packets, nbytes) + mbuf + ibuf
    head = struct.pack("!HH4x", ofp.OFPMP_FLOW, ofp.OFPMPF_REPLY_MORE if more else 0)
    msg = head + body
    return struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, 8 + len(msg),
                       9) + msg


@settings(max_examples=100, deadline=None)
@given(flows=st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                                st.integers(0, 2**64 - 1), st.integers(0, 6),
                                st.sampled_from(list(MATCHES.values())),
                                st.integers(1, 64)), max_size=20),
       more=st.booleans())
def test_openflow_lean_flow_stats_read_each_flows_counters_as_os_ken_does(flows, more):
    from controllers.openflow import OFPT_PACKET_IN, use_lean_parsers

    raw = flow_stats_reply_bytes([(*f[:4], parser.OFPMatch(**f[4]), f[5]) for f in flows],
                                 more)
    def parse():
        return parser.OFPMultipartReply.parser(None, ofp.OFP_VERSION,
                                               ofp.OFPT_MULTIPART_REPLY, len(raw), 9,
                                               bytearray(raw))

    theirs = parse()
    saved = parser.OFPFlowStatsReply.cls_stats_body_cls, parser._MSG_PARSERS[OFPT_PACKET_IN]
    use_lean_parsers()  # (what the controller's main does; undone below)
    try:
        ours = parse()
    finally:
        parser.OFPFlowStatsReply.cls_stats_body_cls, parser._MSG_PARSERS[OFPT_PACKET_IN] = saved
    assert type(ours) is parser.OFPFlowStatsReply  # os-ken's event is chosen by class
    assert ours.flags == theirs.flags == (ofp.OFPMPF_REPLY_MORE if more else 0)
    assert len(ours.body) == len(theirs.body) == len(flows)
    for a, b in zip(ours.body, theirs.body, strict=True):
        assert (a.cookie, a.packet_count, a.byte_count, a.table_id, a.priority) == (
            b.cookie, b.packet_count, b.byte_count, b.table_id, b.priority)
