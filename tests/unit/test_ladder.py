"""TB-OBSERVE: ladder diagrams from a capture (DORA, DNS steps, TCP) as text and SVG."""

import xml.etree.ElementTree as ET

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from infralab.ladder import events, nat_steps, nat_svg, nat_text, svg, text


def dora(kind: str, src: str, dst: str, t: float, yi: str = "0.0.0.0", sid: str = ""):
    p = Ether() / IP(src=src, dst=dst) / UDP(sport=68 if src == "0.0.0.0" else 67,
                                             dport=67 if src == "0.0.0.0" else 68) / \
        BOOTP(op=1 if src == "0.0.0.0" else 2, yiaddr=yi) / \
        DHCP(options=[("message-type", kind)] + ([("server_id", sid)] if sid else []) + ["end"])
    p.time = t
    return p


def test_ladder_of_dora_dns_and_tcp(tmp_path):
    pkts = [dora("discover", "0.0.0.0", "255.255.255.255", 0.0),
            dora("offer", "10.2.0.10", "255.255.255.255", 0.01, "10.2.1.100"),
            dora("request", "0.0.0.0", "255.255.255.255", 0.02, sid="10.2.0.10"),
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
    assert labels[:4] == ["DHCP DISCOVER", "DHCP OFFER yiaddr=10.2.1.100",
                          "DHCP REQUEST server=10.2.0.10", "DHCP ACK yiaddr=10.2.1.100"]
    assert labels[4] == "DNS ? www.example.com. A"
    assert labels[5] == "DNS answer www.example.com. -> 198.51.100.11 AA"
    assert labels[6] == "TCP 40000->80 S"
    t = text(evs)
    assert "255.255.255.255 <- 10.2.0.10" in t and "DHCP ACK" in t
    root = ET.fromstring(svg(evs, "DORA"))
    assert len(root.findall("{http://www.w3.org/2000/svg}line")) >= len(evs)


def test_nat_ladder_pairs_each_packet_before_and_after_translation(tmp_path):
    def pkt(src, dst, l4, t, ipid):
        p = Ether() / IP(src=src, dst=dst, id=ipid) / l4
        p.time = t
        return p

    inside = [pkt("10.1.1.11", "198.51.100.131", TCP(sport=40000, dport=80, flags="S",
                                                     seq=7), 1.000, 11),
              pkt("198.51.100.131", "10.1.1.11", TCP(sport=80, dport=40000, flags="SA",
                                                     seq=99, ack=8), 1.052, 0),
              pkt("10.1.1.11", "198.51.100.131", ICMP(id=5, seq=1) / b"ping", 2.0, 12)]
    outside = [pkt("203.0.113.1", "198.51.100.131", TCP(sport=1024, dport=80, flags="S",
                                                        seq=7), 1.021, 11),
               pkt("198.51.100.131", "203.0.113.1", TCP(sport=80, dport=1024, flags="SA",
                                                        seq=99, ack=8), 1.031, 0),
               pkt("203.0.113.1", "198.51.100.131", ICMP(id=77, seq=1) / b"ping", 2.02, 12),
               # unsolicited: the NAT dropped it, so the inside never saw it
               pkt("198.51.100.131", "203.0.113.1", UDP(sport=9, dport=5300) / b"x", 3.0, 5)]
    fi, fo = tmp_path / "c1.pcap", tmp_path / "web.pcap"
    wrpcap(str(fi), inside)
    wrpcap(str(fo), outside)
    steps = nat_steps(events(fi), events(fo))
    assert [(s.outbound, s.inside is not None, s.outside is not None) for s in steps] == \
        [(True, True, True), (False, True, True), (True, True, True), (False, False, True)]
    syn, synack, echo, dropped = steps
    assert (syn.inside.src_ep, syn.outside.src_ep) == ("10.1.1.11:40000", "203.0.113.1:1024")
    assert synack.t < 0.06 and synack.outside.dst_ep == "203.0.113.1:1024"
    assert synack.inside.dst_ep == "10.1.1.11:40000"
    assert (echo.inside.src_ep, echo.outside.src_ep) == ("10.1.1.11#5", "203.0.113.1#77")
    assert dropped.outside.dst_ep == "203.0.113.1:5300"
    t = nat_text(steps, "c1.pcap", "web.pcap")
    assert "3 packets seen on both sides, 1 on one side only" in t
    assert "10.1.1.11:40000 -> 198.51.100.131:80" in t and "203.0.113.1:1024 -> " in t
    assert "(not seen)" in t
    root = ET.fromstring(nat_svg(steps, "NAT"))
    heads = [e.text for e in root.findall("{http://www.w3.org/2000/svg}text")
             if e.get("font-weight") == "bold"]
    assert heads == ["10.1.1.11", "198.51.100.131", "NAT"]
    assert any("not seen" in (e.text or "") for e in root.iter())


def test_a_file_that_is_no_capture_is_named_in_a_clear_error(tmp_path):
    import pytest

    from infralab.ladder import CaptureFileError

    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture\n")
    for path, why in ((bad, "pcap or pcapng"), (tmp_path / "gone.pcap", "No such file")):
        with pytest.raises(CaptureFileError, match=why) as e:
            events(path)
        assert str(path) in str(e.value)


def test_router_ports_are_named_by_peer_or_by_a_subnet_on_one_port():
    import pytest

    from infralab.ladder import resolve_link

    ports = [{"router": "rc", "subnet": "lan1", "peer": "c1", "intf": "rc-eth1"},
             {"router": "rc", "subnet": "lan1", "peer": "c2", "intf": "rc-eth2"},
             {"router": "rc", "subnet": "wan", "peer": "ri", "intf": "rc-eth9"}]
    assert resolve_link(ports, "rc:c2") == "rc-eth2"
    assert resolve_link(ports, "rc:wan") == "rc-eth9"
    assert resolve_link(ports, "rc:ri") == "rc-eth9"
    with pytest.raises(LookupError, match="name one: rc:c1, rc:c2"):
        resolve_link(ports, "rc:lan1")
    with pytest.raises(LookupError, match="no router 'rx'"):
        resolve_link(ports, "rx:wan")
    with pytest.raises(LookupError, match="no port towards 'zz'"):
        resolve_link(ports, "rc:zz")
