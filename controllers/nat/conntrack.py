"""The opt-in conntrack fast path (`conntrack: true`): the PAT's TCP goes through OVS
ct(nat) in a zone of the router's own, with no controller work per connection. The
controller reads the zone's entries for the table view and the translation log."""

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
    """Conntrack zones a plan's routers use (flushed at teardown: leave nothing behind)."""
    return [CT_ZONE_BASE + r.dpid for r in plan.routers
            if any(n.get("conntrack") for n in r.nat)]


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
