"""Faults on purpose: what a `faults:` block asks for, checked against the
topology, and the schedule it makes - fixed entries plus random ones drawn from a seed,
so a run can be repeated exactly.

Pure: no clock and no network. The emulation injects and heals (emulation/faults.py).

    faults:
      seed: 7                         # the random part repeats exactly with the same seed
      schedule:                       # at: seconds after the schedule starts
        - {at: 5, kind: link-flap, link: [ri, rs], period: 2, count: 3}
        - {at: 12, kind: loss-burst, link: [ri, rb], loss: 30, duration: 4}
        - {at: 20, kind: partition, links: [[ri, rs], [rk, rs]], duration: 8}
        - {at: 30, kind: service-kill, service: ns1.dns}
        - {at: 35, kind: controller-kill}
      random:                         # drawn from the seed: when, what, how long
        window: 60                    # every random fault starts within it...
        gap: 6                        # ...at least this far from any other start
        duration: [2, 6]              # seconds, for the kinds that last
        kinds:                        # kind: how many (targets: any that fit), or
          controller-kill: 2          # {count: N, choose: [targets...]}: one of those
          service-kill: {count: 1, choose: [{service: ns1.dns}, {service: tldcom.dns}]}
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from .model import Topology, TopologyError, delay_seconds

# kind -> (target fields it needs, whether it lasts: "required" | "optional" | "none")
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "link-down": (("link",), "optional"),
    "link-flap": (("link",), "none"),  # lasts period x count
    "loss-burst": (("link", "loss"), "required"),
    "delay-spike": (("link", "delay"), "required"),
    "partition": (("links",), "required"),
    "service-kill": (("service",), "none"),  # healed by the supervisor
    "service-stop": (("service",), "required"),
    "service-pause": (("service",), "required"),
    "host-pause": (("host",), "required"),
    "host-down": (("host",), "required"),  # its link down and its services stopped
    "controller-kill": ((), "none"),  # healed by the supervisor
    "nat-pool-fill": (("router", "interface"), "required"),
    "dhcp-pool-fill": (("service",), "required"),
}
FAULT_KEYS = {"at", "kind", "duration", "link", "links", "service", "host", "router",
              "interface", "loss", "delay", "period", "count"}
RANDOM_KEYS = {"window", "gap", "duration", "kinds"}
DEFAULT_DURATION = (2.0, 6.0)
MAX_FAULTS = 1000  # a schedule is an experiment, not a load generator


@dataclass(frozen=True)
class Fault:
    """One fault: what, on what, when (`at`, seconds into the schedule) and for how long
    (None: until healed by hand, or by the supervisor for a kill)."""

    kind: str
    at: float = 0.0
    duration: float | None = None
    link: tuple[str, str] | None = None
    links: tuple[tuple[str, str], ...] = ()
    service: str | None = None  # "host.name", as the emulation labels services
    host: str | None = None
    router: str | None = None
    interface: str | None = None
    loss: float | None = None  # percent, for a loss burst
    delay: str | None = None  # one way, for a delay spike ("200ms")
    period: float = 2.0  # link-flap: one down + up cycle
    count: int = 3  # link-flap: cycles

    @property
    def lasts(self) -> float | None:
        """Seconds from injection to heal (None: healed by hand or by a supervisor)."""
        return self.period * self.count if self.kind == "link-flap" else self.duration

    def target(self) -> str:
        """What it hits, as a person would write it: 'ri--rs', 'ns1.dns', 'controller'."""
        if self.link:
            return "--".join(self.link)
        if self.links:
            return ", ".join("--".join(lk) for lk in self.links)
        if self.router:
            return f"{self.router}/{self.interface}"
        return self.service or self.host or "controller"

    def describe(self) -> str:
        extra = {"loss-burst": f" loss {self.loss or 0:g}%",
                 "delay-spike": f" delay {self.delay}",
                 "link-flap": f" every {self.period:g} s x{self.count}"}.get(self.kind, "")
        lasts = f" for {self.lasts:g} s" if self.lasts else ""
        return f"{self.kind} {self.target()}{extra}{lasts}"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, ())
                and not (k in ("period", "count") and self.kind != "link-flap")}


@dataclass
class RandomSpec:
    window: float = 60.0
    gap: float = 5.0
    duration: tuple[float, float] = DEFAULT_DURATION
    kinds: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)  # count, choose


@dataclass
class FaultPlan:
    """A topology's `faults:` block."""

    seed: int = 0
    fixed: list[Fault] = field(default_factory=list)
    random: RandomSpec | None = None

    def schedule(self, topo: Topology, seed: int | None = None) -> list[Fault]:
        """Every fault in start order: the fixed ones and the random ones drawn from
        `seed` (default: the block's). The same seed gives the same schedule."""
        out = list(self.fixed)
        if self.random is not None:
            out += draw(self.random, topo, self.seed if seed is None else seed)
        return sorted(out, key=lambda f: f.at)


# ---- parsing --------------------------------------------------------------------------
def parse_plan(data: Any, topo: Topology) -> FaultPlan:
    """The `faults:` block of a topology file, checked against `topo`."""
    if not isinstance(data, dict):
        raise TopologyError("faults", "expected a mapping: seed, schedule, random")
    unknown = set(data) - {"seed", "schedule", "random"}
    if unknown:
        raise TopologyError(f"faults.{sorted(unknown)[0]}", "unknown field (seed, schedule, "
                            "random)")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TopologyError("faults.seed", f"expected an integer, got {seed!r}")
    entries = data.get("schedule") or []
    if not isinstance(entries, list):
        raise TopologyError("faults.schedule", "expected a list of faults")
    fixed = [parse_fault(e, f"faults.schedule[{i}]", topo) for i, e in enumerate(entries)]
    rnd = _random_spec(data["random"], topo) if data.get("random") is not None else None
    return FaultPlan(seed, fixed, rnd)


def parse_fault(data: Any, where: str, topo: Topology, at_required: bool = True) -> Fault:
    """One fault from its mapping ({kind: link-down, link: [a, b], ...})."""
    if not isinstance(data, dict):
        raise TopologyError(where, "expected a mapping with a kind")
    unknown = set(data) - FAULT_KEYS
    if unknown:
        raise TopologyError(f"{where}.{sorted(unknown)[0]}", "unknown field (one of "
                            + ", ".join(sorted(FAULT_KEYS)) + ")")
    kind = data.get("kind")
    if kind not in KINDS:
        raise TopologyError(f"{where}.kind", f"unknown kind {kind!r} (one of "
                            + ", ".join(KINDS) + ")")
    needs, lasts = KINDS[kind]
    for k in needs:
        if data.get(k) is None:
            raise TopologyError(where, f"{kind} needs '{k}'")
    if at_required and "at" not in data:
        raise TopologyError(where, "needs 'at': seconds after the schedule starts")
    fields: dict[str, Any] = {"kind": kind}
    for k in ("at", "duration", "loss", "period"):
        if data.get(k) is not None:
            v = data[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise TopologyError(f"{where}.{k}", f"expected a number of seconds (or "
                                    f"percent) >= 0, got {v!r}")
            fields[k] = float(v)
    if lasts == "required" and not fields.get("duration"):
        raise TopologyError(where, f"{kind} needs a 'duration' in seconds")
    if lasts == "none" and "duration" in fields:
        raise TopologyError(f"{where}.duration", f"{kind} has no duration ("
                            + ("period x count" if kind == "link-flap" else
                               "the supervisor heals it") + ")")
    if "count" in data:
        c = data["count"]
        if not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= 100:
            raise TopologyError(f"{where}.count", f"expected 1..100 flaps, got {c!r}")
        fields["count"] = c
    if "period" in fields and fields["period"] < 0.2:
        raise TopologyError(f"{where}.period", "at least 0.2 s (down half, up half)")
    if "loss" in fields and fields["loss"] > 100:
        raise TopologyError(f"{where}.loss", "a percent: 0..100")
    if data.get("delay") is not None:
        try:
            delay_seconds(str(data["delay"]))
        except (ValueError, AttributeError):
            raise TopologyError(f"{where}.delay", f"expected a delay like 200ms, got "
                                f"{data['delay']!r}") from None
        fields["delay"] = str(data["delay"])
    if data.get("link") is not None:
        fields["link"] = _pair(data["link"], f"{where}.link", topo)
    if data.get("links") is not None:
        lks = data["links"]
        if not isinstance(lks, list) or not lks:
            raise TopologyError(f"{where}.links", "expected a list of [NODE, NODE] pairs")
        fields["links"] = tuple(_pair(x, f"{where}.links[{i}]", topo)
                                for i, x in enumerate(lks))
    for k in ("service", "host", "router", "interface"):
        if data.get(k) is not None:
            fields[k] = str(data[k])
    fault = Fault(**fields)
    check_targets(fault, where, topo)
    return fault


def _pair(value: Any, where: str, topo: Topology) -> tuple[str, str]:
    if not isinstance(value, list) or len(value) != 2:
        raise TopologyError(where, f"expected two node names [A, B], got {value!r}")
    a, b = (str(x) for x in value)
    if not adjacent(topo, a, b):
        raise TopologyError(where, f"no link joins {a} and {b} (two routers sharing a "
                            "subnet, or a host and its router)")
    return a, b


def adjacent(topo: Topology, a: str, b: str) -> bool:
    """Whether a link joins nodes a and b: two routers on one subnet, or a host and the
    router of its subnet."""
    subnets = topo.subnets()
    for x, y in ((a, b), (b, a)):
        if x in topo.hosts and y in topo.routers:
            s = subnets.get(topo.hosts[x].subnet)
            return s is not None and y in s.routers
    return a != b and any({a, b} <= set(s.routers) for s in subnets.values())


def emulated(topo: Topology, a: str, b: str) -> bool:
    """Whether the link a -- b has delay or loss emulated (what a loss burst or a delay
    spike changes live)."""
    for x, _y in ((a, b), (b, a)):
        if x in topo.hosts:
            return topo.hosts[x].link.emulated
    return any({a, b} <= set(s.routers) and s.name in topo.links
               and topo.links[s.name].emulated for s in topo.subnets().values())


def services(topo: Topology) -> list[str]:
    return [f"{h.name}.{s.name}" for h in topo.hosts.values() for s in h.services]


def check_targets(f: Fault, where: str, topo: Topology) -> None:
    """The fault's targets exist in the topology, and can take it."""
    if f.kind in ("loss-burst", "delay-spike") and f.link and not emulated(topo, *f.link):
        raise TopologyError(f"{where}.link", f"{f.target()} has no delay or loss to change: "
                            "give it a delay in the topology (links: or the host's link:)")
    if f.service is not None and f.service not in services(topo):
        raise TopologyError(f"{where}.service", f"no service {f.service!r} (HOST.NAME, one "
                            "of " + ", ".join(services(topo)[:12]) + ")")
    if f.kind == "dhcp-pool-fill" and not f.service.endswith(".dhcp"):  # type: ignore[union-attr]
        raise TopologyError(f"{where}.service", "a DHCP server: a service named 'dhcp'")
    if f.host is not None and f.host not in topo.hosts:
        raise TopologyError(f"{where}.host", f"no host {f.host!r}")
    if f.router is not None:
        r = topo.routers.get(f.router)
        if r is None:
            raise TopologyError(f"{where}.router", f"no router {f.router!r}")
        if not any(n.interface == f.interface and n.pool for n in r.nat):
            raise TopologyError(f"{where}.interface", f"{f.router} has no NAT address pool on "
                                f"{f.interface!r}")


def _random_spec(data: Any, topo: Topology) -> RandomSpec:
    where = "faults.random"
    if not isinstance(data, dict):
        raise TopologyError(where, "expected a mapping: window, gap, duration, kinds")
    unknown = set(data) - RANDOM_KEYS
    if unknown:
        raise TopologyError(f"{where}.{sorted(unknown)[0]}", "unknown field (window, gap, "
                            "duration, kinds)")
    spec = RandomSpec()
    for k in ("window", "gap"):
        if k in data:
            v = data[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise TopologyError(f"{where}.{k}", f"expected seconds >= 0, got {v!r}")
            setattr(spec, k, float(v))
    if "duration" in data:
        d = data["duration"]
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            d = [d, d]
        if not (isinstance(d, list) and len(d) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in d)
                and d[0] <= d[1]):
            raise TopologyError(f"{where}.duration", "expected seconds, or [LOW, HIGH]")
        spec.duration = (float(d[0]), float(d[1]))
    kinds = data.get("kinds")
    if not isinstance(kinds, dict) or not kinds:
        raise TopologyError(f"{where}.kinds", "expected kind: count (or {count, choose})")
    total = 0
    for kind, v in kinds.items():
        kw = f"{where}.kinds.{kind}"
        if kind not in KINDS:
            raise TopologyError(kw, f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
        choose: list[dict] = []
        if isinstance(v, dict):
            extra = set(v) - {"count", "choose"}
            if extra:
                raise TopologyError(f"{kw}.{sorted(extra)[0]}", "unknown field (count, choose)")
            choose = v.get("choose") or []
            if not isinstance(choose, list):
                raise TopologyError(f"{kw}.choose", "expected a list of targets")
            for i, c in enumerate(choose):  # each must make a whole fault of this kind
                lasts = {"duration": 1} if KINDS[kind][1] == "required" else {}
                parse_fault({**_defaults(kind), **lasts, **(c if isinstance(c, dict) else {}),
                             "kind": kind}, f"{kw}.choose[{i}]", topo, at_required=False)
            v = v.get("count", 1)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise TopologyError(kw, f"expected a count >= 1, got {v!r}")
        if not choose and not candidates(kind, topo):
            raise TopologyError(kw, f"nothing in this topology can take a {kind}: give "
                                "'choose'")
        spec.kinds[kind] = (v, choose)
        total += v
    if total > MAX_FAULTS:
        raise TopologyError(f"{where}.kinds", f"{total} faults: at most {MAX_FAULTS}")
    if total > 1 and spec.gap * (total - 1) > spec.window:
        raise TopologyError(f"{where}.gap", f"{total} faults {spec.gap:g} s apart do not fit "
                            f"in a window of {spec.window:g} s")
    return spec


def _defaults(kind: str) -> dict:
    """What a random fault of `kind` gets when its target does not say."""
    defaults: dict[str, dict] = {"loss-burst": {"loss": 50}, "delay-spike": {"delay": "200ms"},
                                 "link-flap": {"period": 2, "count": 2}}
    return defaults.get(kind, {})


def router_links(topo: Topology) -> list[tuple[str, str]]:
    return sorted(tuple(sorted(s.routers)) for s in topo.subnets().values()  # type: ignore
                  if s.is_transit)


def candidates(kind: str, topo: Topology) -> list[dict]:
    """Targets a random fault of `kind` may hit when the block names none: router links,
    a router cut off from its neighbours (partition), services, hosts with services."""
    links = router_links(topo)
    if kind in ("link-down", "link-flap"):
        return [{"link": list(lk)} for lk in links]
    if kind in ("loss-burst", "delay-spike"):
        return [{"link": list(lk)} for lk in links if emulated(topo, *lk)]
    if kind == "partition":
        return [{"links": [list(lk) for lk in links if r in lk]} for r in sorted(topo.routers)
                if any(r in lk for lk in links)]
    if kind in ("service-kill", "service-stop", "service-pause"):
        return [{"service": s} for s in services(topo)]
    if kind == "dhcp-pool-fill":
        return [{"service": s} for s in services(topo) if s.endswith(".dhcp")]
    if kind in ("host-pause", "host-down"):
        return [{"host": h.name} for h in topo.hosts.values() if h.services]
    if kind == "nat-pool-fill":
        return [{"router": r.name, "interface": n.interface} for r in topo.routers.values()
                for n in r.nat if n.pool]
    return [{}]  # controller-kill


def draw(spec: RandomSpec, topo: Topology, seed: int) -> list[Fault]:
    """The random faults of `spec`, from `seed` alone: start times spread over the window
    at least `gap` apart, targets and durations picked the same way every time."""
    rng = random.Random(seed)
    bag = [kind for kind, (n, _c) in sorted(spec.kinds.items()) for _ in range(n)]
    rng.shuffle(bag)
    slack = max(0.0, spec.window - spec.gap * max(0, len(bag) - 1))
    cuts = sorted(rng.uniform(0, slack) for _ in bag)  # then spread by the gap
    out = []
    for i, (kind, cut) in enumerate(zip(bag, cuts, strict=True)):
        choose = spec.kinds[kind][1] or candidates(kind, topo)
        target = dict(rng.choice(choose))
        lasts = KINDS[kind][1] != "none"
        duration = round(rng.uniform(*spec.duration), 1) if lasts else None
        data = {**_defaults(kind), **target, "kind": kind, "at": round(cut + i * spec.gap, 1)}
        if lasts and "duration" not in target:
            data["duration"] = duration
        out.append(parse_fault(data, f"faults.random ({kind})", topo))
    return out
