"""Frames for DHCP on a link without addresses yet: raw Ethernet/IPv4/UDP in and out.

A client without an address cannot receive unicast through the kernel (its IP layer
drops a datagram for an address it does not have yet) and a server must reach such a
client at its MAC: both use an AF_PACKET socket with these helpers.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface

from controllers import packets as pk

ETH_P_IP = 0x0800
SIOCGIFADDR, SIOCGIFNETMASK, SIOCGIFHWADDR = 0x8915, 0x891B, 0x8927


def udp_frame(src_mac: str, dst_mac: str, src: IPv4Address, dst: IPv4Address, sport: int,
              dport: int, payload: bytes) -> bytes:
    """An Ethernet frame carrying one UDP datagram, checksums filled in."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = pk.l4_checksum(src.packed, dst.packed, pk.PROTO_UDP, seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return pk.ethernet(dst_mac, src_mac, pk.ETH_IPV4, pk.ipv4(src, dst, pk.PROTO_UDP, seg))


def udp_of_frame(frame: bytes, dport: int) -> tuple[IPv4Address, int, bytes] | None:
    """(source address, source port, payload) of a UDP datagram to `dport`, else None."""
    f = pk.parse(frame)
    if f is None or f.proto != pk.PROTO_UDP or f.frag_offset or len(f.l4) < 8 \
            or f.ip_src is None:
        return None
    sport, port, length = struct.unpack("!HHH", f.l4[:6])
    if port != dport or length < 8:
        return None
    return f.ip_src, sport, f.l4[8:length]


def raw_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    s.bind((ifname, 0))
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
