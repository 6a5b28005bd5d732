"""NAT/PAT in the controller (NAT-*), split the way faucet splits a Valve:

    table.py      the entries and bindings, and the only code that changes their indexes
    ports.py      PAT ports and pool addresses handed out and given back
    rules.py      the configured rules expanded into lookups
    flows.py      the flows of the rules and of each binding
    icmp.py       ICMP errors translated with the datagram they quote (RFC 5508)
    journal.py    the state journal a restarted controller replays
    conntrack.py  the opt-in OVS conntrack fast path
    engine.py     `Nat`: one `packet_in` entry point returning one `Outcome`
"""

from .conntrack import CT_ZONE_BASE, conntrack_zones, parse_conntrack
from .engine import Counters, Nat, Outcome
from .table import Binding, Entry, Kind

__all__ = ["CT_ZONE_BASE", "Binding", "Counters", "Entry", "Kind", "Nat", "Outcome",
           "conntrack_zones", "parse_conntrack"]
