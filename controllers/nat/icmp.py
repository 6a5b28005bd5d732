"""ICMP errors through the NAT (RFC 5508): an error quotes the datagram that caused it,
so the quote is translated with the outer header, and traceroute works through the NAT."""

from __future__ import annotations

from ipaddress import IPv4Address

from topologies.natconfig import NatInterface
from wire import frames as pk

from .rules import Rules
from .table import Entry, Kind, NatTable


def entry_for_quote(table: NatTable, rules: Rules, q: pk.Inner) -> Entry | None:
    """The entry that translated the quoted (outbound) datagram, by its outside source."""
    pool = table.pool_entry(q.src)
    if pool is not None:
        return pool
    hit = rules.public.get(q.src)
    if hit is None:
        return None
    c = rules.configs[hit[0]]
    if hit[1] is Kind.STATIC:
        ins = rules.static_inside(c, q.src)
        if ins is None:
            return None
        return Entry(0, Kind.STATIC, c.interface, 0, (ins, 0), (q.src, 0), 0.0, 0.0)
    return table.find_outside(q.proto, q.src, q.sport)


def inbound_error(f: pk.Frame, e: Entry, q: pk.Inner) -> bytes:
    """An error about a datagram we translated on the way out, back to the inside host."""
    port = e.inside[1] if e.inside[1] else q.sport
    return pk.rewrite_icmp_error(f.raw, outer_dst=e.inside[0], inner_src=(e.inside[0], port))


def outbound_error(table: NatTable, rules: Rules, c: NatInterface, f: pk.Frame,
                   q: pk.Inner) -> bytes | None:
    """An inside host's error about a datagram that came in translated; None when no
    entry or static rule translated it."""
    for e in table:
        if e.iface == c.interface and e.inside[0] == q.dst and \
                e.proto in (0, q.proto) and e.inside[1] in (0, q.dport):
            pub_port = e.outside[1] if e.outside[1] else q.dport
            src = e.outside[0] if f.ip_src == e.inside[0] else None
            return pk.rewrite_icmp_error(f.raw, outer_src=src,
                                         inner_dst=(e.outside[0], pub_port))
    static: IPv4Address | None = rules.static_outside(c, q.dst)
    if static is not None:
        return pk.rewrite_icmp_error(f.raw, outer_src=static if f.ip_src == q.dst else None,
                                     inner_dst=(static, q.dport))
    return None
