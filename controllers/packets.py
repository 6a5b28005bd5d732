"""Just enough Ethernet/ARP/IPv4/ICMP/UDP wire code for a router's control plane.

Parsing never raises on bad input: `parse()` returns None for a frame it cannot read, so a
malformed packet-in is counted and dropped by the caller instead of crashing the app.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
ETH_VLAN = 0x8100
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@dataclass
class Frame:
    """A decoded frame: Ethernet plus the ARP or IPv4 fields the router needs."""

    eth_dst: str
    eth_src: str
    eth_type: int
    raw: bytes
    # ARP
    arp_op: int = 0
    arp_sha: str = ""
    arp_spa: IPv4Address | None = None
    arp_tha: str = ""
    arp_tpa: IPv4Address | None = None
    # IPv4
    ip_header: bytes = b""
    ip_src: IPv4Address | None = None
    ip_dst: IPv4Address | None = None
    ttl: int = 0
    proto: int = 0
    frag_offset: int = 0
    l4: bytes = b""  # everything after the IPv4 header
    icmp_type: int = -1
    icmp_code: int = -1

    @property
    def ip_packet(self) -> bytes:
        return self.ip_header + self.l4

    @property
    def is_icmp_error(self) -> bool:
        return self.proto == PROTO_ICMP and self.icmp_type in (3, 4, 5, 11, 12)


def parse(raw: bytes) -> Frame | None:
    """Decode an Ethernet frame; None when it is too short or inconsistent."""
    if len(raw) < 14:
        return None
    dst, src, etype = raw[0:6], raw[6:12], struct.unpack("!H", raw[12:14])[0]
    off = 14
    if etype == ETH_VLAN:
        return None  # routers here carry untagged frames only
    f = Frame(mac_str(dst), mac_str(src), etype, raw)
    if etype == ETH_ARP:
        if len(raw) < off + 28:
            return None
        htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", raw[off:off + 8])
        if htype != 1 or ptype != ETH_IPV4 or hlen != 6 or plen != 4:
            return None
        f.arp_op = op
        f.arp_sha = mac_str(raw[off + 8:off + 14])
        f.arp_spa = IPv4Address(raw[off + 14:off + 18])
        f.arp_tha = mac_str(raw[off + 18:off + 24])
        f.arp_tpa = IPv4Address(raw[off + 24:off + 28])
        return f
    if etype == ETH_IPV4:
        if len(raw) < off + 20:
            return None
        vihl = raw[off]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or len(raw) < off + ihl:
            return None
        total = struct.unpack("!H", raw[off + 2:off + 4])[0]
        if total < ihl:
            return None
        end = min(len(raw), off + total)
        f.ip_header = raw[off:off + ihl]
        f.frag_offset = struct.unpack("!H", raw[off + 6:off + 8])[0] & 0x1FFF
        f.ttl = raw[off + 8]
        f.proto = raw[off + 9]
        f.ip_src = IPv4Address(raw[off + 12:off + 16])
        f.ip_dst = IPv4Address(raw[off + 16:off + 20])
        f.l4 = raw[off + ihl:end]
        if f.proto == PROTO_ICMP and len(f.l4) >= 4 and f.frag_offset == 0:
            f.icmp_type, f.icmp_code = f.l4[0], f.l4[1]
        return f
    return f


def ethernet(dst: str, src: str, etype: int, payload: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", etype) + payload


def arp(op: int, sha: str, spa: IPv4Address, tha: str, tpa: IPv4Address,
        eth_dst: str | None = None) -> bytes:
    """An ARP request (to broadcast) or reply (to `tha`) as a full Ethernet frame."""
    body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, op) + mac_bytes(sha) + spa.packed \
        + mac_bytes(tha) + tpa.packed
    dst = eth_dst or (BROADCAST_MAC if op == ARP_REQUEST else tha)
    return ethernet(dst, sha, ETH_ARP, body)


def ipv4(src: IPv4Address, dst: IPv4Address, proto: int, payload: bytes, ttl: int = 64,
         ident: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, ttl, proto, 0,
                      src.packed, dst.packed)
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def icmp(icmp_type: int, code: int, rest: bytes, body: bytes) -> bytes:
    """ICMP message: type, code, 4 bytes of `rest` (id/seq or unused), then `body`."""
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest + body
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def icmp_error_body(f: Frame) -> bytes:
    """The offending datagram's IP header plus its first 8 data bytes (RFC 792)."""
    return f.ip_header + f.l4[:8]
