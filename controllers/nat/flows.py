"""The flows a NAT installs: its rules' flows when a switch connects, and the pair of
`set_field` flows of each binding. Pure functions of the rules and the entry."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from topologies.natconfig import AD, APD, EI, NatInterface
from wire import frames as pk

from ..messages import (
    CONTROLLER,
    CT_EST,
    CT_INV,
    CT_NEW,
    CT_TRK,
    META_MASK,
    NO_RECIRC,
    Conntrack,
    FinTimeout,
    FlowMod,
    Message,
    Output,
    SetField,
)
from ..pipeline import (
    ALL_TABLES,
    COOKIE_NAT,
    P_CT,
    P_CT_DROP,
    P_CT_TRACKED,
    P_HAIRPIN,
    P_ICMP_ERR,
    P_MISS,
    P_OWN_PAT,
    P_PAT,
    P_POOL,
    P_REFUSED,
    P_STATIC,
    P_VIP,
    T_CLASSIFY,
    T_EGRESS,
    T_POST_NAT,
    T_PRE_NAT,
    T_ROUTE,
)
from .ports import PORT_HI, PORT_LO
from .rules import Rules, masked, proto_number, static_pairs
from .table import L4, Binding, Entry, Kind

COOKIE_RULE = COOKIE_NAT  # the rules' flows (binding 0)
COOKIE_CT_DROP = COOKIE_NAT | 0xFFFFFFFF  # its drops are counted from flow stats
TCP_FIN, TCP_RST = 0x01, 0x04
GRAIN = {EI: 0, AD: 1, APD: 2}  # how much of the remote a mapping or filter looks at


def flow(table: int, priority: int, match: dict, actions: tuple = (), **kw) -> FlowMod:
    """A NAT flow: in the NAT's cookie space (the rules' own cookie unless given)."""
    kw.setdefault("cookie", COOKIE_RULE)
    return FlowMod(table, priority, {"eth_type": pk.ETH_IPV4, **match}, actions, **kw)


def delete(cookie: int) -> FlowMod:
    return FlowMod(ALL_TABLES, delete=True, cookie=cookie)


def icmp_errors_up(table: int, match: dict) -> list[Message]:
    """ICMP errors about translated traffic go to the controller (their quote needs it)."""
    return [flow(table, P_ICMP_ERR, {**match, "ip_proto": pk.PROTO_ICMP, "icmpv4_type": t},
                 (Output(CONTROLLER),)) for t in (3, 11)]


def rule_flows(rules: Rules, c: NatInterface, ports: list[int], own_ips: set[IPv4Address],
               zone: int, tcp_conntrack: bool = True) -> list[Message]:
    """Everything one outside interface's rules install when the switch connects."""
    msgs: list[Message] = []
    for port in ports:
        meta = (port, META_MASK)
        for s in c.static:
            for ins, out in static_pairs(s.inside, s.outside):
                msgs.append(flow(T_POST_NAT, P_STATIC, {"metadata": meta, "ipv4_src": str(ins)},
                                 (SetField("ipv4_src", str(out)),), goto=T_EGRESS))
                msgs += icmp_errors_up(T_POST_NAT, {"metadata": meta, "ipv4_src": str(ins)})
        for rule_inside, kind in ((c.pool.inside if c.pool else [], Kind.POOL),
                                  (c.pat.inside if c.pat else [], Kind.PAT)):
            for prefix in map(IPv4Network, rule_inside):
                m = {"metadata": meta, "ipv4_src": masked(prefix)}
                msgs.append(flow(T_POST_NAT, P_MISS + prefix.prefixlen, m, (Output(CONTROLLER),)))
                if kind is Kind.POOL:
                    msgs += icmp_errors_up(T_POST_NAT, dict(m))
    for s in c.static:
        for ins, out in static_pairs(s.inside, s.outside):
            msgs.append(flow(T_PRE_NAT, P_STATIC, {"ipv4_dst": str(out)},
                             (SetField("ipv4_dst", str(ins)),), goto=T_ROUTE))
            msgs += icmp_errors_up(T_PRE_NAT, {"ipv4_dst": str(out)})
    for a in rules.pool_addresses(c):
        msgs.append(flow(T_PRE_NAT, P_MISS, {"ipv4_dst": str(a)}, (Output(CONTROLLER),)))
        msgs += icmp_errors_up(T_PRE_NAT, {"ipv4_dst": str(a)})
    if c.pat:
        pat = IPv4Address(c.pat.address)
        msgs.append(flow(T_PRE_NAT, P_MISS, {"ipv4_dst": str(pat)}, (Output(CONTROLLER),)))
        if pat in own_ips:
            for proto in (pk.PROTO_TCP, pk.PROTO_UDP):
                msgs.append(flow(T_CLASSIFY, P_OWN_PAT, {"ipv4_dst": str(pat), "ip_proto": proto},
                                 goto=T_PRE_NAT))
    msgs += hairpin_misses(rules, c)
    if c.pat and c.conntrack:
        msgs += conntrack_flows(c, ports, zone)
    elif c.pat and tcp_conntrack:
        msgs += tcp_binding_flows(c, ports, zone)
    for v in c.vip:
        msgs.append(flow(T_PRE_NAT, P_MISS, {"ipv4_dst": v.address, "ip_proto": proto_number(
            v.proto), f"{v.proto}_dst": v.port}, (Output(CONTROLLER),)))
    return msgs


def hairpin_misses(rules: Rules, c: NatInterface) -> list[Message]:
    """An inside host sending to one of this NAT's public addresses (a server behind
    static NAT, a peer behind the same PAT) goes to the controller, which translates
    source and destination at once, so each side sees the other's public endpoint
    (RFC 4787 REQ-9, RFC 5382 REQ-8)."""
    if not any(IPv4Network(s.outside).prefixlen == 32 for s in c.static) and \
            not c.pat and not c.pool:
        return []
    return [flow(T_PRE_NAT, P_HAIRPIN, {"ip_proto": proto, "ipv4_src": masked(net),
                                        "ipv4_dst": str(a)}, (Output(CONTROLLER),))
            for net in rules.inside_prefixes(c) for a in rules.hairpin_targets(c)
            for proto in (pk.PROTO_TCP, pk.PROTO_UDP)]


def conntrack_flows(c: NatInterface, ports: list[int], zone: int) -> list[Message]:
    """TCP of the PAT through OVS conntrack: SNAT+commit on the way out, un-NAT on the
    way in; what conntrack does not know (new, invalid) to the PAT address is dropped
    in ROUTE, where the recirculated packet lands."""
    assert c.pat is not None
    pat = c.pat.address
    msgs: list[Message] = []
    for port in ports:
        for prefix in map(IPv4Network, c.pat.inside):
            msgs.append(flow(T_POST_NAT, P_CT, {
                "ip_proto": pk.PROTO_TCP, "metadata": (port, META_MASK),
                "ipv4_src": masked(prefix)},
                (Conntrack(zone, T_EGRESS, commit=True, nat_src=(pat, PORT_LO, PORT_HI)),)))
    msgs.append(flow(T_PRE_NAT, P_CT, {"ip_proto": pk.PROTO_TCP, "ipv4_dst": pat},
                     (Conntrack(zone, T_ROUTE, nat=True),)))
    for state in (0x21, 0x30):  # +trk+new, +trk+inv
        msgs.append(flow(T_ROUTE, P_CT_DROP, {
            "ip_proto": pk.PROTO_TCP, "ipv4_dst": pat, "ct_state": (state, state)}, (),
            cookie=COOKIE_CT_DROP))
    return msgs


def tcp_binding_flows(c: NatInterface, ports: list[int], zone: int) -> list[Message]:
    """The PAT's TCP bindings live in OVS conntrack, not in flows (NAT-PAT):
    the controller still picks each binding's port (so RFC 5382's endpoint-independent
    mapping and the configured filtering hold exactly) and commits it into conntrack with
    the first packet's packet-out; every later packet is translated by conntrack. No
    flow-mod per connection, so OVS does not re-translate its datapath flows for each.

      POST_NAT: untracked TCP from the inside -> ct(nat) lookup, back into POST_NAT;
                established -> EGRESS (translated); new -> controller; invalid -> drop
      PRE_NAT:  TCP to the PAT address -> ct(nat) lookup (un-NAT) -> ROUTE
      ROUTE:    still for the PAT address: new -> controller (filtering decides);
                invalid -> drop"""
    assert c.pat is not None
    pat = c.pat.address
    msgs: list[Message] = []
    tcp = {"ip_proto": pk.PROTO_TCP}
    for port in ports:
        meta = {**tcp, "metadata": (port, META_MASK)}
        for prefix in map(IPv4Network, c.pat.inside):
            msgs.append(flow(T_POST_NAT, P_CT, {**meta, "ipv4_src": masked(prefix),
                                                "ct_state": (0, CT_TRK)},
                             (Conntrack(zone, T_POST_NAT, nat=True),)))
        msgs += [
            flow(T_POST_NAT, P_CT_TRACKED, {**meta, "ct_state": (CT_TRK | CT_EST,
                                                                 CT_TRK | CT_EST | CT_INV)},
                 goto=T_EGRESS),
            flow(T_POST_NAT, P_CT_TRACKED, {**meta, "ct_state": (CT_TRK | CT_NEW,
                                                                 CT_TRK | CT_NEW | CT_INV)},
                 (Output(CONTROLLER),)),
            flow(T_POST_NAT, P_CT_TRACKED, {**meta, "ct_state": (CT_TRK | CT_INV,
                                                                 CT_TRK | CT_INV)},
                 (), cookie=COOKIE_CT_DROP)]
    msgs.append(flow(T_PRE_NAT, P_CT, {**tcp, "ipv4_dst": pat},
                     (Conntrack(zone, T_ROUTE, nat=True),)))
    msgs += [flow(T_ROUTE, P_CT_DROP, {**tcp, "ipv4_dst": pat,
                                       "ct_state": (CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_INV)},
                  (Output(CONTROLLER),)),
             flow(T_ROUTE, P_CT_DROP, {**tcp, "ipv4_dst": pat,
                                       "ct_state": (CT_TRK | CT_INV, CT_TRK | CT_INV)}, (),
                  cookie=COOKIE_CT_DROP)]
    return msgs


def tcp_binding_commit(zone: int, e: Entry, inbound: bool) -> Conntrack:
    """The action a binding's first packet carries in its packet-out: commit the
    connection with the binding's translation (source for outbound, destination for an
    inbound connection the filtering let in); the packet leaves translated."""
    if inbound:
        return Conntrack(zone, NO_RECIRC, commit=True,
                         nat_dst=(str(e.inside[0]), e.inside[1], e.inside[1]))
    return Conntrack(zone, NO_RECIRC, commit=True,
                     nat_src=(str(e.outside[0]), e.outside[1], e.outside[1]))


def refusal_drop(port: int, src: IPv4Address) -> FlowMod:
    """A refused host's packets are dropped for a second: no packet-in storm."""
    return flow(T_POST_NAT, P_REFUSED, {"metadata": (port, META_MASK), "ipv4_src": str(src)},
                (), hard_timeout=1)


def timeout_of(c: NatInterface, e: Entry) -> int:
    if e.kind is Kind.POOL:
        return c.timeouts["pool"]
    return c.timeouts[L4[e.proto]]


def binding_flows(c: NatInterface, ports: list[int], e: Entry, remote: tuple,
                  b: Binding, tcp_conntrack: bool = True) -> list[FlowMod]:
    """The pair of flows that carry one binding: the timed one reports its removal
    (FlowRemoved ends the binding); both share the binding's cookie. A PAT's TCP pair
    both report and both carry fin_timeout: a FIN or RST either way moves the binding
    to the transitory timeout in the switch (RFC 5382 REQ-5)."""
    if e.proto == pk.PROTO_ICMP:
        return []  # echo ids are rewritten by the controller: no flows
    if e.kind is Kind.PAT and e.proto == pk.PROTO_TCP and tcp_conntrack:
        return []  # committed into conntrack (tcp_binding_flows): no flows
    timeout = timeout_of(c, e)
    timed = {"idle_timeout": timeout, "notify_removed": True, "cookie": b.cookie}
    if e.kind is Kind.POOL:
        return [flow(T_POST_NAT, P_POOL, {"metadata": (port, META_MASK),
                                          "ipv4_src": str(e.inside[0])},
                     (SetField("ipv4_src", str(e.outside[0])),), goto=T_EGRESS, **timed)
                for port in ports] + [
            flow(T_PRE_NAT, P_POOL, {"ipv4_dst": str(e.outside[0])},
                 (SetField("ipv4_dst", str(e.inside[0])),), goto=T_ROUTE, cookie=b.cookie)]
    l4 = L4[e.proto]

    def rewrite(direction: str, ep: tuple) -> tuple[SetField, SetField]:
        return SetField(f"ipv4_{direction}", str(ep[0])), SetField(f"{l4}_{direction}", ep[1])

    def between(src: tuple, dst: tuple) -> dict:
        return {"ip_proto": e.proto, "ipv4_src": str(src[0]), f"{l4}_src": src[1],
                "ipv4_dst": str(dst[0]), f"{l4}_dst": dst[1]}

    if e.kind is Kind.HAIRPIN:  # a (inside) -> b's public endpoint, and back
        return [
            flow(T_PRE_NAT, P_HAIRPIN + 5, between(e.inside, e.remote_public),
                 rewrite("src", e.outside) + rewrite("dst", e.remote), goto=T_ROUTE, **timed),
            flow(T_PRE_NAT, P_HAIRPIN + 5, between(e.remote, e.outside),
                 rewrite("src", e.remote_public) + rewrite("dst", e.inside), goto=T_ROUTE,
                 cookie=b.cookie)]
    if e.kind is Kind.VIP:  # the client -> the VIP -> a server, and back
        return [
            flow(T_PRE_NAT, P_VIP, between(remote, e.outside), rewrite("dst", e.inside),
                 goto=T_ROUTE, **timed),
            flow(T_POST_NAT, P_VIP, between(e.inside, remote), rewrite("src", e.outside),
                 goto=T_EGRESS, cookie=b.cookie)]
    out_m = {"ip_proto": e.proto, "ipv4_src": str(e.inside[0]), f"{l4}_src": e.inside[1]}
    in_m = {"ip_proto": e.proto, "ipv4_dst": str(e.outside[0]), f"{l4}_dst": e.outside[1]}
    if len(remote) >= 1:
        out_m["ipv4_dst"] = str(remote[0])
    if len(remote) == 2:
        out_m[f"{l4}_dst"] = remote[1]
    fgrain = GRAIN[c.filtering]
    if fgrain >= 1:
        in_m["ipv4_src"] = str(remote[0])
    if fgrain == 2:
        in_m[f"{l4}_src"] = remote[1]
    fin: tuple = ()
    back: dict = {"cookie": b.cookie}
    if e.proto == pk.PROTO_TCP:
        fin = (FinTimeout(c.timeouts["tcp_transitory"]),)
        back["notify_removed"] = True
    return [flow(T_POST_NAT, P_PAT, {**out_m, "metadata": (port, META_MASK)},
                 rewrite("src", e.outside) + fin, goto=T_EGRESS, **timed) for port in ports] + [
        flow(T_PRE_NAT, P_PAT, in_m, rewrite("dst", e.inside) + fin, goto=T_ROUTE, **back)]
