"""The flow-table pipeline of every router, declared once: its tables, where each may go
next, which part of the controller owns which priority band of a table, and the cookie
space each part marks its flows with (as faucet's faucet_pipeline.py and valve_table.py).

    0 CLASSIFY   ARP and traffic for the router itself -> controller; frames to the
                 router's MAC -> PRE_NAT; DHCP on relay ports -> RELAY; else -> L2
    1 RELAY      DHCP relay (DHCP-RELAY) and snooping: default -> L2
    2 PRE_NAT    inbound/destination NAT (NAT-*): default -> ROUTE
    3 ROUTE      the FIB, longest prefix first: TTL-1, MAC rewrite, egress port in metadata
    4 POST_NAT   outbound/source NAT (NAT-*): default -> EGRESS
    5 EGRESS     metadata (egress port) -> output
    6 L2         switching among the ports of one subnet; flood group per subnet

Owners: the router (routing, ARP, the tables' defaults), the NAT and the relay. Every flow
a part installs carries its own cookie space, and lies in a band of its own in its table;
`violation()` says what is wrong with a flow-mod that breaks this, and the flow simulator
the unit tests push packets through refuses such a flow-mod.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol


class Table(IntEnum):
    CLASSIFY = 0
    RELAY = 1
    PRE_NAT = 2
    ROUTE = 3
    POST_NAT = 4
    EGRESS = 5
    L2 = 6


T_CLASSIFY, T_RELAY, T_PRE_NAT, T_ROUTE, T_POST_NAT, T_EGRESS, T_L2 = Table


ALL_TABLES = 0xFF  # OFPTT_ALL: a delete in every table

# Where a flow of each table may continue (goto, or a conntrack recirculation).
NEXT: dict[Table, frozenset[Table]] = {
    Table.CLASSIFY: frozenset({Table.RELAY, Table.PRE_NAT, Table.L2}),
    Table.RELAY: frozenset({Table.L2}),
    Table.PRE_NAT: frozenset({Table.ROUTE}),
    Table.ROUTE: frozenset({Table.POST_NAT}),
    Table.POST_NAT: frozenset({Table.POST_NAT, Table.EGRESS}),  # (itself: ct lookup)
    Table.EGRESS: frozenset(),
    Table.L2: frozenset(),
}

ROUTER, NAT, RELAY = "router", "nat", "relay"

# Cookie spaces: the top 16 bits name the owner; the NAT's low 32 bits name a binding.
COOKIE = 0x1AB0000000000000  # every flow infralab installs has 0x1AB in its top bits
COOKIE_NAT = COOKIE | (1 << 48)
COOKIE_RELAY = COOKIE | (2 << 48)
COOKIE_OWNER_MASK = 0xFFFF000000000000
COOKIE_OWNERS = {COOKIE: ROUTER, COOKIE_NAT: NAT, COOKIE_RELAY: RELAY}

# ---- priorities, by table ----------------------------------------------------------------
DEFAULT = 0  # every table's pass-through default (the router's)

# CLASSIFY
P_L2 = 100  # router: a frame not for the router -> switched in its subnet
P_L3 = 200  # router: to the router's MAC -> routed
P_LOCAL = 300  # router: to one of the router's addresses -> controller
P_OWN_PAT = 310  # NAT: TCP/UDP to a PAT address that is the router's own -> PRE_NAT
P_RELAY = 350  # relay: DHCP on a relay port -> RELAY
P_ARP = 400  # router: ARP -> controller

# RELAY
P_RELAY_COPY = 20  # relay: client broadcasts to the controller (and on to L2)
P_SNOOP = 20  # relay: server messages from a client port dropped (snooping)
P_RELAY_PASS = 10  # relay: everything else -> L2

# PRE_NAT and POST_NAT (the NAT's): bindings over rules over misses
P_MISS = 100  # + prefix length: to the controller
P_CT = 180  # conntrack: the PAT's TCP (above the misses, below bindings)
P_CT_TRACKED = 185  # POST_NAT: the PAT's TCP once conntrack looked it up
P_POOL = 200
P_REFUSED = 205  # a refused host's packets dropped for a second (no packet-in storm)
P_PAT = 210
P_STATIC = 300
P_VIP = 350
P_HAIRPIN = 370  # an inside host to a public address of its own NAT; + 5: its bindings
P_ICMP_ERR = 400  # ICMP errors to/from translated addresses: controller (quote rewrite)

# ROUTE
P_ROUTE_BASE = 1000  # router: + prefix length x 10 (+ 5: a resolved neighbour's /32)
P_CT_DROP = 3000  # NAT: new/invalid tracked TCP to a conntrack PAT address (unsolicited)


def route_priority(prefixlen: int) -> int:
    return P_ROUTE_BASE + prefixlen * 10


# EGRESS and L2 (the router's)
P_EGRESS, P_HAIRPIN_OUT = 10, 20  # out of the egress port; back out of the ingress port
P_FLOOD, P_KNOWN_MAC = 10, 100


class FlowLike(Protocol):
    """What `violation` reads of a messages.FlowMod (which imports this module)."""

    table: int
    priority: int
    cookie: int
    cookie_mask: int
    delete: bool
    goto: int | None
    actions: tuple


@dataclass(frozen=True)
class Band:
    owner: str
    low: int
    high: int


BANDS: dict[Table, tuple[Band, ...]] = {
    Table.CLASSIFY: (Band(ROUTER, P_L2, P_LOCAL), Band(NAT, P_OWN_PAT, P_OWN_PAT),
                     Band(RELAY, P_RELAY, P_RELAY), Band(ROUTER, P_ARP, P_ARP)),
    Table.RELAY: (Band(ROUTER, DEFAULT, DEFAULT), Band(RELAY, 1, 0xFFFF)),
    Table.PRE_NAT: (Band(ROUTER, DEFAULT, DEFAULT), Band(NAT, 1, 0xFFFF)),
    Table.ROUTE: (Band(ROUTER, DEFAULT, 2999), Band(NAT, P_CT_DROP, P_CT_DROP)),
    Table.POST_NAT: (Band(ROUTER, DEFAULT, DEFAULT), Band(NAT, 1, 0xFFFF)),
    Table.EGRESS: (Band(ROUTER, DEFAULT, 0xFFFF),),
    Table.L2: (Band(ROUTER, DEFAULT, 0xFFFF),),
}


def owner_of(cookie: int) -> str | None:
    return COOKIE_OWNERS.get(cookie & COOKIE_OWNER_MASK)


def violation(m: FlowLike) -> str | None:
    """What is wrong with a flow-mod under this pipeline, or None."""
    owner = owner_of(m.cookie)
    if owner is None and not (m.delete and m.cookie_mask == 0):
        return f"cookie {m.cookie:#x} is in no owner's space"
    if m.delete:
        return None if m.table == ALL_TABLES or m.table in set(Table) else \
            f"delete in unknown table {m.table}"
    if m.table not in set(Table):
        return f"unknown table {m.table}"
    table = Table(m.table)
    band = next((b for b in BANDS[table] if b.low <= m.priority <= b.high), None)
    if band is None:
        return f"{table.name} priority {m.priority} is in no band"
    if band.owner != owner:
        return f"{table.name} priority {m.priority} belongs to the {band.owner}, " \
               f"not the {owner} (cookie {m.cookie:#x})"
    nexts = ([m.goto] if m.goto is not None else []) + \
        [a.table for a in m.actions if hasattr(a, "zone")]  # a conntrack recirculation
    for n in nexts:
        if n not in NEXT[table]:
            return f"{table.name} may not continue in table {n}"
    return None
