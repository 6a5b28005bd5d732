"""The NAT's state journal: a line per change (entry made, bound, unbound, gone), written
by the os-ken app before the packet that caused it is answered, and replayed by the next
controller process so the bindings in the switches keep working."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from wire import frames as pk

from .table import Binding, Entry, Kind


def entry_record(router: str, e: Entry) -> dict:
    return {"op": "entry", "router": router, "id": e.id, "kind": str(e.kind),
            "iface": e.iface, "proto": e.proto, "inside": to_json(e.inside),
            "outside": to_json(e.outside), "remote": to_json(e.remote), "created": e.created}


def bind_record(router: str, e: Entry, remote: tuple, cookie: int) -> dict:
    return {"op": "bind", "router": router, "id": e.id, "remote": to_json(remote),
            "cookie": cookie, "remote_public": to_json(e.remote_public),
            "owns_port": e.owns_port}


def unbind_record(router: str, cookie: int) -> dict:
    return {"op": "unbind", "router": router, "cookie": cookie}


def gone_record(router: str, e: Entry) -> dict:
    return {"op": "gone", "router": router, "id": e.id}


def replay(records: list[dict], router: str, now: float) -> tuple[list[Entry], int]:
    """The entries still live after `router`'s records (oldest first), each with its
    bindings (cookies as before), and the highest id or cookie number used. An entry
    whose last binding went with the old process is dropped (ICMP ones have none)."""
    entries: dict[int, Entry] = {}
    owner: dict[int, tuple[Entry, tuple]] = {}
    top = 0
    for r in records:
        if r.get("router") != router:
            continue
        op = r.get("op")
        if op == "entry":
            e = Entry(int(r["id"]), Kind(r["kind"]), r["iface"], int(r["proto"]),
                      from_json(r["inside"]), from_json(r["outside"]), now, now,
                      from_json(r["remote"]))
            entries[e.id] = e
            top = max(top, e.id)
        elif op == "bind" and int(r["id"]) in entries:
            e = entries[int(r["id"])]
            remote = from_json(r["remote"])
            e.remote_public = from_json(r.get("remote_public", []))
            e.owns_port = bool(r.get("owns_port"))
            cookie = int(r["cookie"])
            e.bindings[remote] = Binding(cookie, remote)
            owner[cookie] = (e, remote)
            top = max(top, cookie & 0xFFFFFFFF)
        elif op == "unbind":
            hit = owner.pop(int(r["cookie"]), None)
            if hit is not None:
                hit[0].bindings.pop(hit[1], None)
        elif op == "gone":
            entries.pop(int(r["id"]), None)
    live = [e for e in entries.values() if e.bindings or e.proto == pk.PROTO_ICMP]
    return live, top


def to_json(value: object) -> object:
    """A key part (tuples of addresses and ports) as JSON."""
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    return str(value) if isinstance(value, IPv4Address) else value


def from_json(value: object) -> Any:
    if isinstance(value, list):
        return tuple(from_json(v) for v in value)
    if isinstance(value, str):
        return IPv4Address(value)
    return value
