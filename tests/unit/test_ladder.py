"""TB-OBSERVE: ladder diagrams from a capture (DORA, DNS steps, TCP) as text and SVG."""

import xml.etree.ElementTree as ET

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from infralab.ladder import events, svg, text


def dora(kind: str, src: str, dst: str, t: float, yi: str = "0.0.0.0"):
    p = Ether() / IP(src=src, dst=dst) / UDP(sport=68 if src == "0.0.0.0" else 67,
                                             dport=67 if src == "0.0.0.0" else 68) / \
        BOOTP(op=1 if src == "0.0.0.0" else 2, yiaddr=yi) / \
        DHCP(options=[("message-type", kind), "end"])
    p.time = t
    return p


def test_ladder_of_dora_dns_and_tcp(tmp_path):
    pkts = [dora("discover", "0.0.0.0", "255.255.255.255", 0.0),
            dora("offer", "10.2.0.10", "255.255.255.255", 0.01, "10.2.1.100"),
            dora("request", "0.0.0.0", "255.255.255.255", 0.02),
            dora("ack", "10.2.0.10", "255.255.255.255", 0.03, "10.2.1.100")]
    q = Ether() / IP(src="10.1.0.53", dst="198.18.1.1") / UDP(sport=5000, dport=53) / \
        DNS(rd=0, qd=DNSQR(qname="www.example.com"))
    a = Ether() / IP(src="198.18.1.1", dst="10.1.0.53") / UDP(sport=53, dport=5000) / \
        DNS(qr=1, aa=1, qd=DNSQR(qname="www.example.com"),
            an=DNSRR(rrname="www.example.com", rdata="198.51.100.11"))
    syn = Ether() / IP(src="10.1.1.11", dst="198.51.100.131") / TCP(sport=40000, dport=80,
                                                                     flags="S")
    for i, p in enumerate((q, a, syn)):
        p.time = 1.0 + i / 10
    f = tmp_path / "c.pcap"
    wrpcap(str(f), pkts + [q, a, syn])
    evs = events(f)
    labels = [e.label for e in evs]
    assert labels[:4] == ["DHCP DISCOVER", "DHCP OFFER yiaddr=10.2.1.100", "DHCP REQUEST",
                          "DHCP ACK yiaddr=10.2.1.100"]
    assert labels[4] == "DNS ? www.example.com. A"
    assert labels[5] == "DNS answer www.example.com. -> 198.51.100.11 AA"
    assert labels[6] == "TCP 40000->80 S"
    t = text(evs)
    assert "255.255.255.255 <- 10.2.0.10" in t and "DHCP ACK" in t
    root = ET.fromstring(svg(evs, "DORA"))
    assert len(root.findall("{http://www.w3.org/2000/svg}line")) >= len(evs)
