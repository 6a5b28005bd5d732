"""Translate infralab's message values (messages.py) into os-ken OpenFlow 1.3 messages."""

from __future__ import annotations

from typing import Any

from os_ken.ofproto import nicira_ext

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
        target = a.nat_src or a.nat_dst
        if target is not None:
            addr, lo, hi = target
            flags = 1 if a.nat_src is not None else 2  # NX_NAT_F_SRC / NX_NAT_F_DST
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
