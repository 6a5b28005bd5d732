"""What a NAT hands out: ports of its PAT addresses and addresses of its pools."""

from __future__ import annotations

from ipaddress import IPv4Address

from wire import frames as pk

PORT_LO, PORT_HI = 1024, 65535


class PortAllocator:
    """Ports in use per (outside address, protocol). The inside port is kept when it is
    free (port preservation, RFC 4787 REQ-3), else the next free one from a moving cursor."""

    def __init__(self) -> None:
        self._used: dict[tuple[IPv4Address, int], set[int]] = {}
        self._cursor = PORT_LO

    def alloc(self, ip: IPv4Address, proto: int, want: int) -> int | None:
        """A port for a new mapping; None when every port is taken."""
        used = self._used.setdefault((ip, proto), set())
        if want and want not in used and (want >= PORT_LO or proto == pk.PROTO_ICMP):
            used.add(want)
            return want
        span = PORT_HI - PORT_LO + 1
        for _ in range(span):
            p = self._cursor
            self._cursor = PORT_LO + (self._cursor - PORT_LO + 1) % span
            if p not in used:
                used.add(p)
                return p
        return None

    def take(self, ip: IPv4Address, proto: int, port: int) -> None:
        """Mark a port used (a mapping restored from the journal)."""
        self._used.setdefault((ip, proto), set()).add(port)

    def free(self, ip: IPv4Address, proto: int, port: int) -> None:
        self._used.get((ip, proto), set()).discard(port)


class AddressPool:
    """The free outside addresses of one interface's dynamic pool, first freed last used."""

    def __init__(self, addresses: list[IPv4Address]) -> None:
        self.all = list(addresses)
        self._free = list(addresses)

    def __len__(self) -> int:
        return len(self._free)

    def __contains__(self, ip: object) -> bool:
        return ip in self._free

    def take(self, ip: IPv4Address | None = None) -> IPv4Address | None:
        """The next free address (or `ip`, restored from the journal); None: exhausted."""
        if ip is not None:
            if ip in self._free:
                self._free.remove(ip)
            return ip
        return self._free.pop(0) if self._free else None

    def give_back(self, ip: IPv4Address) -> None:
        self._free.append(ip)

    def hold_all(self) -> list[IPv4Address]:
        """Take every free address (a pool filled on purpose); the caller gives
        them back with give_back."""
        held, self._free = self._free, []
        return held
