"""Raw Ethernet sockets for DHCP on a link without addresses yet (frames: wire.frames).

A client without an address cannot receive unicast through the kernel (its IP layer
drops a datagram for an address it does not have yet) and a server must reach such a
client at its MAC: both use an AF_PACKET socket with these helpers.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface

from wire import frames as pk

ETH_P_IP = 0x0800
SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFHWADDR = 0x8915, 0x891B, 0x8927


def raw_socket(ifname: str, receive: bool = True) -> socket.socket:
    """An AF_PACKET socket on `ifname`; with `receive` False it only sends (protocol 0:
    the kernel hands it no frames, so it never has to be read)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(ETH_P_IP) if receive else 0)
    s.bind((ifname, 0))  # (0: keep the protocol the socket was made with)
    return s


def _ioctl(ifname: str, req: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), req, struct.pack("256s", ifname.encode()[:15]))


def if_mac(ifname: str) -> str:
    return pk.mac_str(_ioctl(ifname, SIOCGIFHWADDR)[18:24])


def if_address(ifname: str) -> IPv4Interface | None:
    """The interface's IPv4 address with its prefix, None when it has none."""
    try:
        addr = IPv4Address(_ioctl(ifname, SIOCGIFADDR)[20:24])
        mask = IPv4Address(_ioctl(ifname, SIOCGIFNETMASK)[20:24])
    except OSError:
        return None
    return IPv4Interface(f"{addr}/{mask}")
