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


def csum_adjust(csum: int, old: bytes, new: bytes) -> int:
    """Incremental Internet checksum update for `old` replaced by `new` (RFC 1624, eq. 3)."""
    if len(old) % 2:
        old, new = old + b"\0", new + b"\0"
    s = ~csum & 0xFFFF
    for i in range(0, len(old), 2):
        s += (~((old[i] << 8) | old[i + 1])) & 0xFFFF
        s += (new[i] << 8) | new[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    """TCP/UDP checksum over the IPv4 pseudo-header and `segment` (checksum field zero)."""
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    return checksum(pseudo + segment)


def rewrite_ipv4(raw: bytes, *, src: IPv4Address | None = None, dst: IPv4Address | None = None,
                 sport: int | None = None, dport: int | None = None) -> bytes:
    """A copy of an Ethernet/IPv4 frame with addresses/ports (ICMP query id for `sport` or
    `dport`) replaced and every checksum made right again."""
    b = bytearray(raw)
    ihl = (b[14] & 0x0F) * 4
    if src is not None:
        b[26:30] = src.packed
    if dst is not None:
        b[30:34] = dst.packed
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", checksum(bytes(b[14:14 + ihl])))
    total = struct.unpack("!H", b[16:18])[0]
    l4 = 14 + ihl
    end = min(len(b), 14 + total)
    proto = b[23]
    if proto in (PROTO_TCP, PROTO_UDP) and end - l4 >= 8:
        if sport is not None:
            b[l4:l4 + 2] = struct.pack("!H", sport)
        if dport is not None:
            b[l4 + 2:l4 + 4] = struct.pack("!H", dport)
        off = l4 + (16 if proto == PROTO_TCP else 6)
        if proto == PROTO_UDP and b[off:off + 2] == b"\0\0":
            return bytes(b)  # UDP without checksum stays without
        if off + 2 <= end:
            b[off:off + 2] = b"\0\0"
            c = l4_checksum(bytes(b[26:30]), bytes(b[30:34]), proto, bytes(b[l4:end]))
            b[off:off + 2] = struct.pack("!H", c or 0xFFFF)
    elif proto == PROTO_ICMP and end - l4 >= 8 and (sport is not None or dport is not None):
        ident = sport if sport is not None else dport
        b[l4 + 4:l4 + 6] = struct.pack("!H", ident)
        b[l4 + 2:l4 + 4] = b"\0\0"
        b[l4 + 2:l4 + 4] = struct.pack("!H", checksum(bytes(b[l4:end])))
    return bytes(b)


@dataclass
class Inner:
    """The datagram quoted in an ICMP error: its addresses and ports (query id for ICMP)."""

    proto: int
    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int


def icmp_error_inner(f: Frame) -> Inner | None:
    """What an ICMP error quotes, or None when it quotes too little to tell."""
    if not f.is_icmp_error or len(f.l4) < 8 + 20:
        return None
    q = f.l4[8:]
    ihl = (q[0] & 0x0F) * 4
    if q[0] >> 4 != 4 or ihl < 20 or len(q) < ihl + 8:
        return None
    proto = q[9]
    src, dst = IPv4Address(q[12:16]), IPv4Address(q[16:20])
    if proto in (PROTO_TCP, PROTO_UDP):
        sport, dport = struct.unpack("!HH", q[ihl:ihl + 4])
    elif proto == PROTO_ICMP and q[ihl] in (0, 8):
        sport = dport = struct.unpack("!H", q[ihl + 4:ihl + 6])[0]
    else:
        return None
    return Inner(proto, src, dst, sport, dport)


def rewrite_icmp_error(raw: bytes, *, outer_src: IPv4Address | None = None,
                       outer_dst: IPv4Address | None = None,
                       inner_src: tuple[IPv4Address, int] | None = None,
                       inner_dst: tuple[IPv4Address, int] | None = None) -> bytes:
    """Translate an ICMP error and the datagram it quotes (RFC 5508 REQ-4): the quoted
    header's address/port (query id), its IP checksum, its UDP/ICMP checksum by
    RFC 1624 adjustment (the rest of the datagram is not there), then the outer sums."""
    b = bytearray(raw)
    ihl = (b[14] & 0x0F) * 4
    icmp_at = 14 + ihl
    q = icmp_at + 8
    qihl = (b[q] & 0x0F) * 4
    proto = b[q + 9]
    ql4 = q + qihl
    for which, value in ((12, inner_src), (16, inner_dst)):
        if value is None:
            continue
        addr, port = value
        old_a = bytes(b[q + which:q + which + 4])
        b[q + which:q + which + 4] = addr.packed
        if proto in (PROTO_TCP, PROTO_UDP):
            at = ql4 + (0 if which == 12 else 2)
            old_p = bytes(b[at:at + 2])
            b[at:at + 2] = struct.pack("!H", port)
            if proto == PROTO_UDP and b[ql4 + 6:ql4 + 8] != b"\0\0":
                c = struct.unpack("!H", b[ql4 + 6:ql4 + 8])[0]
                c = csum_adjust(c, old_a + old_p, addr.packed + b[at:at + 2])
                b[ql4 + 6:ql4 + 8] = struct.pack("!H", c)
        elif proto == PROTO_ICMP:
            old_p = bytes(b[ql4 + 4:ql4 + 6])
            b[ql4 + 4:ql4 + 6] = struct.pack("!H", port)
            c = struct.unpack("!H", b[ql4 + 2:ql4 + 4])[0]
            b[ql4 + 2:ql4 + 4] = struct.pack("!H", csum_adjust(c, old_p, bytes(b[ql4 + 4:ql4 + 6])))
    b[q + 10:q + 12] = b"\0\0"
    b[q + 10:q + 12] = struct.pack("!H", checksum(bytes(b[q:q + qihl])))
    if outer_src is not None:
        b[26:30] = outer_src.packed
    if outer_dst is not None:
        b[30:34] = outer_dst.packed
    total = struct.unpack("!H", b[16:18])[0]
    end = min(len(b), 14 + total)
    b[icmp_at + 2:icmp_at + 4] = b"\0\0"
    b[icmp_at + 2:icmp_at + 4] = struct.pack("!H", checksum(bytes(b[icmp_at:end])))
    b[24:26] = b"\0\0"
    b[24:26] = struct.pack("!H", checksum(bytes(b[14:14 + ihl])))
    return bytes(b)


def udp_frame(src_mac: str, dst_mac: str, src: IPv4Address, dst: IPv4Address, sport: int,
              dport: int, payload: bytes) -> bytes:
    """An Ethernet frame carrying one UDP datagram, checksums filled in."""
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4_checksum(src.packed, dst.packed, PROTO_UDP, seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return ethernet(dst_mac, src_mac, ETH_IPV4, ipv4(src, dst, PROTO_UDP, seg))


def udp_of_frame(frame: bytes, dport: int) -> tuple[IPv4Address, int, bytes] | None:
    """(source address, source port, payload) of a UDP datagram to `dport`, else None."""
    f = parse(frame)
    if f is None or f.proto != PROTO_UDP or f.frag_offset or len(f.l4) < 8 \
            or f.ip_src is None:
        return None
    sport, port, length = struct.unpack("!HHH", f.l4[:6])
    if port != dport or length < 8:
        return None
    return f.ip_src, sport, f.l4[8:length]
