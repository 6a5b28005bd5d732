"""Which members a GSLB answer names: pure functions of the pool, the members' health and
load, the client and the measured RTTs. No sockets, no clock: the server passes it all in.

An algorithm may be unable to decide (no load reported, no RTT measured yet, a client in
no known region): the chain then moves on, preferred -> alternate -> fallback, as F5's
wide IPs do. When no member is healthy the pool's `when_all_down` decides.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from services.gslb.config import GslbConfig, Member, Pool

MAX_PERIOD = 24


@dataclass
class MemberState:
    """What selection needs to know of one member right now."""
    up: bool = True
    load: int | None = None  # active connections the member reports
    rtt_ms: float | None = None  # the GSLB's own probe RTT to it


@dataclass(frozen=True)
class Client:
    """Who asks: the resolver's address, or the EDNS Client Subnet it forwarded."""
    address: IPv4Address
    prefix: IPv4Network  # the client's /24 (or the ECS prefix): the unit of stickiness

    @classmethod
    def of(cls, address: str, ecs: IPv4Network | None = None) -> Client:
        if ecs is not None:
            return cls(ecs.network_address, ecs)
        ip = IPv4Address(address)
        return cls(ip, IPv4Network(f"{ip}/24", strict=False))


@dataclass
class Decision:
    addresses: list[str]
    algorithm: str  # which algorithm of the chain decided ("when_all_down" if none healthy)
    reason: str
    period: int = 1  # answers repeat after this many decisions (round robin, weighted)


class Selector:
    """Holds the rotation state (round robin turn, smooth-weighted counters) per pool."""

    def __init__(self, cfg: GslbConfig) -> None:
        self.cfg = cfg
        self.turns: Counter[str] = Counter()
        self.current: dict[str, dict[str, int]] = {}

    # ---- what the server calls --------------------------------------------------------
    def region_of(self, client: Client) -> str | None:
        best: tuple[int, str] | None = None
        for region, nets in self.cfg.regions.items():
            for n in nets:
                if client.address in n and (best is None or n.prefixlen > best[0]):
                    best = (n.prefixlen, region)
        return best[1] if best else None

    def client_key(self, pool: Pool, client: Client) -> str:
        """What of the client the answer depends on (the server's answer-cache key)."""
        parts = []
        for a in pool.algorithms:
            if a == "topology":
                parts.append(self.region_of(client) or "-")
            elif a in ("hash", "rtt"):
                parts.append(str(client.prefix))
        return "|".join(parts)

    def choose(self, pool: Pool, states: dict[str, MemberState], client: Client,
               site_rtt: dict[str, float] | None = None) -> Decision:
        healthy = [m for m in pool.members if states.get(m.name, MemberState()).up]
        if not healthy:
            return self._all_down(pool)
        for algo in pool.algorithms:
            d = getattr(self, "_" + algo.replace("-", "_"))(pool, healthy, states, client,
                                                           site_rtt or {})
            if d is not None:
                return d
        return self._round_robin(pool, healthy, states, client, {}, note="(fallback)")

    # ---- algorithms: each returns a Decision, or None when it cannot decide -----------------
    def _take(self, pool: Pool, ordered: list[Member]) -> list[str]:
        return [str(m.address) for m in ordered[:pool.answers]]

    def _rotate(self, key: str, members: list[Member]) -> list[Member]:
        t = self.turns[key]
        self.turns[key] = t + 1
        k = t % len(members)
        return members[k:] + members[:k]

    def _round_robin(self, pool, healthy, states, client, site_rtt, note=""):
        order = self._rotate(pool.name, healthy)
        period = 1 if pool.answers >= len(healthy) and not note else len(healthy)
        return Decision(self._take(pool, order), "round-robin",
                        f"round robin over {len(healthy)} healthy {note}".strip(), period)

    def _all(self, pool, healthy, states, client, site_rtt):
        return Decision([str(m.address) for m in healthy], "all", "every healthy member")

    def _weighted(self, pool, healthy, states, client, site_rtt):
        """Smooth weighted round robin (nginx): ratio 3:1 gives a a b a, not a a a b."""
        live = [m for m in healthy if m.weight > 0]
        if not live:
            return None
        cur = self.current.setdefault(pool.name, {})
        total = sum(m.weight for m in live)
        for m in live:
            cur[m.name] = cur.get(m.name, 0) + m.weight
        best = max(live, key=lambda m: cur[m.name])
        cur[best.name] -= total
        rest = [m for m in live if m is not best]
        return Decision(self._take(pool, [best] + rest), "weighted",
                        f"ratio {':'.join(str(m.weight) for m in live)} -> {best.name}",
                        min(total, MAX_PERIOD))

    def _least_conn(self, pool, healthy, states, client, site_rtt):
        known = [m for m in healthy if states.get(m.name, MemberState()).load is not None]
        if not known:
            return None
        order = sorted(known, key=lambda m: (states[m.name].load / max(m.weight, 1),
                                             pool.members.index(m)))
        loads = ", ".join(f"{m.name}={states[m.name].load}" for m in known)
        return Decision(self._take(pool, order), "least-conn",
                        f"fewest connections ({loads}) -> {order[0].name}")

    def _hash(self, pool, healthy, states, client, site_rtt):
        """Rendezvous hashing on the client prefix: stable per client, and only the clients
        of a failed member move when it goes down."""
        def score(m: Member) -> bytes:
            return hashlib.blake2b(f"{client.prefix}|{m.name}".encode(), digest_size=8).digest()

        order = sorted(healthy, key=score, reverse=True)
        return Decision(self._take(pool, order), "hash",
                        f"client {client.prefix} hashes to {order[0].name}")

    def _rtt(self, pool, healthy, states, client, site_rtt):
        if self.cfg.rtt_source == "sites":
            known = [m for m in healthy if m.site in site_rtt]
            if not known:
                return None
            best = min(site_rtt[m.site] for m in known)
            site = next(m.site for m in known if site_rtt[m.site] == best)
            in_site = [m for m in known if m.site == site]
            order = self._rotate(f"{pool.name}@{site}", in_site)
            rtts = ", ".join(f"{s}={v:.1f}ms" for s, v in sorted(site_rtt.items()))
            return Decision(self._take(pool, order), "rtt",
                            f"RTT from each site to {client.prefix}: {rtts} -> {site}",
                            len(in_site) if pool.answers < len(in_site) else 1)
        known = [m for m in healthy if states.get(m.name, MemberState()).rtt_ms is not None]
        if not known:
            return None
        order = sorted(known, key=lambda m: states[m.name].rtt_ms)
        return Decision(self._take(pool, order), "rtt",
                        f"lowest probe RTT: {order[0].name} "
                        f"{states[order[0].name].rtt_ms:.1f}ms")

    def _topology(self, pool, healthy, states, client, site_rtt):
        region = self.region_of(client)
        if region is None or region not in self.cfg.topology:
            return None
        for site in self.cfg.topology[region]:
            in_site = [m for m in healthy if m.site == site]
            if in_site:
                order = self._rotate(f"{pool.name}@{site}", in_site)
                return Decision(self._take(pool, order), "topology",
                                f"client {client.address} in region {region} -> site {site}",
                                len(in_site) if pool.answers < len(in_site) else 1)
        return None

    def _all_down(self, pool: Pool) -> Decision:
        how = pool.when_all_down
        if how == "none":
            return Decision([], "when_all_down", "every member is down: no answer")
        if how == "all":
            order = self._rotate(pool.name, pool.members)
            return Decision(self._take(pool, order), "when_all_down",
                            "every member is down: answering all anyway", len(pool.members))
        return Decision([how], "when_all_down", f"every member is down: fallback {how}")
