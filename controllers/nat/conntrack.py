"""OVS conntrack, in a zone of each NAT router's own. Two uses: every PAT's TCP bindings
(the controller picks the port and commits it with the first packet; conntrack keeps the
connection, and the controller ends a binding when its entries are gone), and the opt-in
fast path (`conntrack: true`: the switch picks the ports itself, no controller work per
connection). The controller reads the zone's entries for both."""

from __future__ import annotations

import re

CT_ZONE_BASE = 0x1A00  # conntrack zone of router n: CT_ZONE_BASE + n (its dpid)

_CT_RE = re.compile(
    r"^tcp,orig=\(src=([\d.]+),dst=([\d.]+),sport=(\d+),dport=(\d+)\),"
    r"reply=\(src=([\d.]+),dst=([\d.]+),sport=(\d+),dport=(\d+)\),zone=(\d+)"
    r"(?:.*?protoinfo=\(state=(\w+)\))?")


def parse_conntrack(text: str, zone: int) -> list[dict]:
    """TCP entries of `zone` from `ovs-appctl dpctl/dump-conntrack` (the fast path's
    table): inside, outside (what the remote saw) and remote endpoints, state."""
    rows = []
    for line in text.splitlines():
        m = _CT_RE.match(line.strip())
        if m is None or int(m.group(9)) != zone:
            continue
        osrc, odst, osport, odport, _rsrc, rdst, _rsport, rdport = m.groups()[:8]
        rows.append({"inside": f"{osrc}:{osport}", "outside": f"{rdst}:{rdport}",
                     "remote": f"{odst}:{odport}", "state": m.group(10) or ""})
    return rows


def conntrack_zones(plan) -> list[int]:
    """Conntrack zones a plan's routers use (flushed at teardown: leave nothing behind):
    every PAT's TCP bindings are kept in conntrack, and the fast path's connections."""
    return [CT_ZONE_BASE + r.dpid for r in plan.routers
            if any(n.get("conntrack") or n.get("pat") for n in r.nat)]


TRANSITORY_STATES = ("tcp_fin_wait", "tcp_close_wait", "tcp_last_ack", "tcp_time_wait",
                     "tcp_close")


def zone_timeouts(plan) -> dict[int, dict[str, int]]:
    """The conntrack timeout policy of each NAT router's zone (OVS CT_Timeout_Policy
    keys), from its PAT's configured timeouts: an established connection idles out
    after `tcp`, a closing or closed one after `tcp_transitory` (RFC 5382 REQ-5), as the
    per-binding flows' idle and fin timeouts did."""
    from topologies.natconfig import NatInterface

    out = {}
    for r in plan.routers:
        pats = [NatInterface.from_dict(n) for n in r.nat if n.get("pat")]
        if pats:
            t = pats[0].timeouts
            out[CT_ZONE_BASE + r.dpid] = {"tcp_established": t["tcp"],
                                          **dict.fromkeys(TRANSITORY_STATES,
                                                          t["tcp_transitory"])}
    return out


def live_bindings(rows: list[dict], addresses: set[str]) -> dict[str, set[str]]:
    """From a zone's entries (parse_conntrack): for each outside endpoint on one of the
    PAT `addresses`, the remote endpoints it has live connections with. An outbound
    connection's entry has the outside endpoint in its reply; one the filtering let in
    from outside has it as its original destination (what parse_conntrack calls remote)."""
    live: dict[str, set[str]] = {}
    for r in rows:
        if r["outside"].rpartition(":")[0] in addresses:
            live.setdefault(r["outside"], set()).add(r["remote"])
        elif r["remote"].rpartition(":")[0] in addresses:
            live.setdefault(r["remote"], set()).add(r["inside"])
    return live


class ConntrackView:
    """The fast path's entries as last read, with the time each was first seen."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._seen: dict[tuple, float] = {}

    def update(self, now: float, rows: list[dict]) -> tuple[list[dict], list[tuple[dict, float]]]:
        """Take a fresh reading; returns the new rows and the vanished ones (with their
        first-seen time), for the translation log."""
        current = {(r["inside"], r["outside"], r["remote"]): r for r in rows}
        new = []
        for key, r in current.items():
            if key not in self._seen:
                self._seen[key] = now
                new.append(r)
        gone = []
        for key in [k for k in self._seen if k not in current]:
            first = self._seen.pop(key)
            gone.append(({"inside": key[0], "outside": key[1], "remote": key[2]}, first))
        self.rows = [{**r, "age": round(now - self._seen[k], 1)} for k, r in current.items()]
        return new, gone
