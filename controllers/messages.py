"""OpenFlow 1.3 messages as plain values.

The control logic returns these instead of sending anything (as faucet's Valve does), so
it can be unit-tested by pushing packets through the flow simulator of the unit tests;
`openflow.py` turns them into os-ken messages for a real switch. The tables, priorities
and cookies they use are declared in pipeline.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .pipeline import COOKIE

# Reserved port numbers (OpenFlow 1.3)
IN_PORT = 0xFFFFFFF8
TABLE = 0xFFFFFFF9
CONTROLLER = 0xFFFFFFFD

META_MASK = 0xFFFFFFFF

REASON_NO_MATCH, REASON_ACTION, REASON_INVALID_TTL = 0, 1, 2
REMOVED_IDLE, REMOVED_HARD, REMOVED_DELETE = 0, 1, 2  # OFPRR_*: why a flow went away


@dataclass(frozen=True)
class Output:
    port: int


@dataclass(frozen=True)
class SetField:
    field: str  # os-ken OXM name: eth_src, eth_dst, ipv4_src, tcp_dst...
    value: object


@dataclass(frozen=True)
class DecTTL:
    pass


@dataclass(frozen=True)
class Group:
    group_id: int


@dataclass(frozen=True)
class Conntrack:
    """OVS conntrack (Nicira ct action): track in `zone`, optionally commit and NAT, then
    continue in `table` (recirculation keeps metadata), or with NO_RECIRC go on with the
    next action (the packet translated). `nat_src`/`nat_dst` = (address, lo, hi) port
    range for a new connection's source/destination NAT; `nat` alone un-NATs/re-NATs
    tracked ones."""

    zone: int
    table: int
    commit: bool = False
    nat: bool = False
    nat_src: tuple[str, int, int] | None = None
    nat_dst: tuple[str, int, int] | None = None

    @property
    def nat_range(self) -> tuple[int, tuple[str, int, int]] | None:
        """(NX_NAT_F_SRC 1 | NX_NAT_F_DST 2, the range) of a new connection's NAT, if any."""
        if self.nat_src is not None:
            return 1, self.nat_src
        return (2, self.nat_dst) if self.nat_dst is not None else None


NO_RECIRC = 0xFF  # Conntrack.table: no recirculation (NX_CT_RECIRC_NONE)

# ct_state bits (Nicira): what conntrack made of a packet
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


@dataclass(frozen=True)
class Bundle:
    """Nicira bundle_load: pick one of `ports` for the packet's flow and write it to the
    metadata (the egress port): a hash of the addresses, protocol and TCP/UDP ports
    among the live ones (ECMP), or with `failover` the first live one. A port whose
    link is down is never picked, so the switch moves traffic before the controller
    knows (OVS's select groups would leave UDP ports out of the hash)."""

    ports: tuple[int, ...]
    failover: bool = False


@dataclass(frozen=True)
class FinTimeout:
    """Nicira fin_timeout: once this flow sees a TCP FIN or RST, its idle timeout drops
    to `idle` (unless already shorter). RFC 5382 REQ-5 (a closing connection's binding
    idles out after the transitory timeout) done by the switch itself, with no copy of
    the packet to the controller and no flow-mod."""

    idle: int


Action = Output | SetField | DecTTL | Group | Conntrack | Bundle | FinTimeout


@dataclass
class FlowMod:
    """Add (or delete, by cookie/table) a flow. Match keys are os-ken OFPMatch names;
    masked values are (value, mask) tuples."""

    table: int
    priority: int = 0
    match: dict = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    metadata: tuple[int, int] | None = None  # write_metadata(value, mask)
    idle_timeout: int = 0
    hard_timeout: int = 0
    delete: bool = False
    cookie: int = COOKIE
    notify_removed: bool = False
    cookie_mask: int = 0xFFFFFFFFFFFFFFFF  # for delete: which cookie bits must match


@dataclass
class GroupMod:
    """An ALL group: every bucket gets a copy (OVS skips the ingress port)."""

    group_id: int
    ports: tuple[int, ...]
    delete_all: bool = False


@dataclass
class PacketOut:
    data: bytes
    actions: tuple[Action, ...]
    in_port: int = CONTROLLER


@dataclass
class SwitchConfig:
    """Send packets whose TTL expires to the controller, whole."""

    invalid_ttl_to_controller: bool = True
    miss_send_len: int = 0xFFFF


Message = FlowMod | GroupMod | PacketOut | SwitchConfig
