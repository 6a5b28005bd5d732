"""A router's DHCP relay (DHCP-RELAY, DHCP-STARVE): `routers.X.dhcp_relay` of a topology.

    dhcp_relay:
      servers: [10.1.0.10]         # where client broadcasts are relayed (unicast, giaddr set)
      interfaces: [lan1, lan2]     # the client subnets it listens on
      max_macs_per_port: 4         # defence: distinct client MACs per port (omit: no limit)
      rate_per_port: 10            # defence: requests per second per port (omit: no limit)
      snooping: true               # drop DHCP server replies arriving on client ports
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .natconfig import RuleError
from .yamlfile import address


class RelayConfigError(RuleError):
    """A bad `routers.X.dhcp_relay` block."""


KEYS = {"servers", "interfaces", "max_macs_per_port", "rate_per_port", "snooping"}


@dataclass
class RelayConfig:
    servers: list[str]
    interfaces: list[str]
    max_macs_per_port: int | None = None
    rate_per_port: float | None = None
    snooping: bool = True
    defence: bool = field(default=True)  # limits on (they can be switched off live)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RelayConfig:
        return cls(**d)


def parse(data: Any, router: str, interfaces: set[str]) -> RelayConfig:
    where = f"routers.{router}.dhcp_relay"
    if not isinstance(data, dict):
        raise RelayConfigError(where, "expected a mapping (servers, interfaces, ...)")
    for k in data:
        if k not in KEYS:
            raise RelayConfigError(f"{where}.{k}", f"unknown field {k!r} (expected one of: "
                                 + ", ".join(sorted(KEYS)) + ")")
    servers = data.get("servers")
    if not isinstance(servers, list) or not servers:
        raise RelayConfigError(f"{where}.servers", "need a list of DHCP server addresses")
    for i, s in enumerate(servers):
        address(s, f"{where}.servers[{i}]", RelayConfigError)
    ifaces = data.get("interfaces")
    if not isinstance(ifaces, list) or not ifaces:
        raise RelayConfigError(f"{where}.interfaces", "need the client subnets to listen on")
    for i, name in enumerate(ifaces):
        if name not in interfaces:
            raise RelayConfigError(f"{where}.interfaces[{i}]", f"unknown interface {name!r}")
    macs = data.get("max_macs_per_port")
    if macs is not None and (not isinstance(macs, int) or macs < 1):
        raise RelayConfigError(f"{where}.max_macs_per_port", f"not a positive count: {macs!r}")
    rate = data.get("rate_per_port")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or rate <= 0):
        raise RelayConfigError(f"{where}.rate_per_port", f"not a positive rate: {rate!r}")
    snooping = data.get("snooping", True)
    if not isinstance(snooping, bool):
        raise RelayConfigError(f"{where}.snooping", "expected true or false")
    return RelayConfig([str(s) for s in servers], [str(x) for x in ifaces], macs,
                       float(rate) if rate is not None else None, snooping)
