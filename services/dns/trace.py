"""Ladder diagrams of a resolution: one line per query and what came back."""

from __future__ import annotations

from collections.abc import Sequence

from services.dns.resolver import Step

ARROWS = {"answer": "ANSWER", "cname": "CNAME", "referral": "REFERRAL", "nxdomain": "NXDOMAIN",
          "nodata": "NODATA", "lame": "LAME", "timeout": "TIMEOUT", "error": "ERROR"}


def ladder(client: str, steps: Sequence[Step | dict], title: str = "") -> str:
    """Text ladder: client on the left, each server it asked on the right."""
    lines = [title] if title else []
    for i, s in enumerate(steps, start=1):
        d = s if isinstance(s, dict) else s.__dict__
        lines.append(f"{i:>2}. {client:<15} --> {d['server']:<15} [{d['zone']}] "
                     f"{d['qname']} {d['qtype']}  (RD=0)")
        lines.append(f"    {'':<15} <-- {ARROWS.get(d['outcome'], d['outcome'].upper())}: "
                     f"{d['detail']}  ({d['elapsed_ms']} ms)")
    return "\n".join(lines)


def querylog_entry(e: dict) -> str:
    """One LDNS query-log line as: client -> LDNS (RD=1), the LDNS's ladder, the reply."""
    head = (f"{e['client']} --> LDNS  {e['qname']} {e['qtype']}  (RD={e['rd']})   "
            f"[{e['how']}, {e['ms']} ms]")
    body = ladder("LDNS", e.get("steps", [])) if e.get("steps") else "    (answered from cache)"
    tail = f"{e['client']} <-- LDNS  {e['rcode']} (RA=1) " + "; ".join(e.get("answer", []))
    return "\n".join([head, body, tail])
