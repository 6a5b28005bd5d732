"""Capture on demand and ladder diagrams (TB-OBSERVE).

`infralab capture HOST` records one host's link of a running emulation to a pcap (tcpdump
inside the host's namespace, bounded in time). `infralab ladder FILE.pcap` draws what the
capture holds as a ladder: one vertical line per address, one arrow per packet, labelled
with what the packet is (DHCP DISCOVER/OFFER/REQUEST/ACK, a DNS question or answer, TCP
flags, ICMP) — as text, or as SVG. `events()` and `text()` are pure; only `capture()`
touches the network.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
              7: "RELEASE", 8: "INFORM"}


@dataclass
class Event:
    t: float
    src: str
    dst: str
    label: str


def capture(rundir: Path, host: str, out: Path, seconds: float, bpf: str = "") -> Path:
    """tcpdump on `host`'s interface for `seconds`, written to `out` (bounded: at most
    10 minutes and 100 MB)."""
    import json

    manifest = json.loads((rundir / "manifest.json").read_text())
    node = manifest["processes"].get(f"node:{host}")
    if node is None:
        raise LookupError(f"no host {host!r} in {rundir}")
    seconds = max(1.0, min(seconds, 600.0))
    cmd = ["mnexec", "-a", str(node["pid"]), "timeout", str(seconds), "tcpdump", "-i",
           f"{host}-eth0", "-n", "-U", "-s", "1500", "-C", "100", "-W", "1", "-w", str(out)]
    if bpf:
        cmd.append(bpf)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0, 124):  # 124: timeout ended it, as planned
        raise RuntimeError(f"tcpdump failed: {r.stderr.strip()[-300:]}")
    return out


def events(pcap: Path) -> list[Event]:
    """What each packet of a capture is, in order (scapy reads the pcap)."""
    import scapy.layers.dhcp  # noqa: F401  (registers BOOTP/DHCP)
    import scapy.layers.dns  # noqa: F401
    import scapy.layers.inet  # noqa: F401
    import scapy.layers.l2  # noqa: F401
    from scapy.utils import rdpcap

    out: list[Event] = []
    packets = list(rdpcap(str(pcap)))
    t0 = float(packets[0].time) if packets else 0.0
    for p in packets:
        if not p.haslayer("IP"):
            continue
        ip = p["IP"]
        label = ip.sprintf("%IP.proto%")
        src, dst = ip.src, ip.dst
        if p.haslayer("DHCP"):
            opts = dict(o for o in p["DHCP"].options if isinstance(o, tuple) and len(o) == 2)
            kind = DHCP_TYPES.get(int(opts.get("message-type", 0)), "BOOTP")
            yi = p["BOOTP"].yiaddr
            gi = p["BOOTP"].giaddr
            label = f"DHCP {kind}" + (f" yiaddr={yi}" if yi != "0.0.0.0" else "") + \
                (f" giaddr={gi}" if gi != "0.0.0.0" else "")
        elif p.haslayer("DNS"):
            d = p["DNS"]
            qd = d.qd[0] if d.qd else None
            q = qd.qname.decode(errors="replace") if qd is not None else "?"
            qtype = qd.sprintf("%qtype%") if qd is not None else ""
            if d.qr == 0:
                label = f"DNS ? {q} {qtype}" + (" (rd)" if d.rd else "")
            else:
                answers = []
                for i in range(d.ancount or 0):
                    rr = d.an[i]
                    answers.append(str(rr.rdata if not isinstance(rr.rdata, bytes)
                                       else rr.rdata.decode(errors="replace")))
                kind = "answer" if d.ancount else ("referral" if d.nscount else "empty")
                label = f"DNS {kind} {q}" + (f" -> {', '.join(answers[:3])}" if answers
                                              else "") + (" AA" if d.aa else "") + \
                    (f" rcode={d.rcode}" if d.rcode else "")
        elif p.haslayer("TCP"):
            tcp = p["TCP"]
            label = f"TCP {tcp.sport}->{tcp.dport} {tcp.sprintf('%flags%')}"
            src, dst = f"{ip.src}:{tcp.sport}", f"{ip.dst}:{tcp.dport}"
        elif p.haslayer("UDP"):
            label = f"UDP {p['UDP'].sport}->{p['UDP'].dport}"
        elif p.haslayer("ICMP"):
            label = "ICMP " + p["ICMP"].sprintf("%ICMP.type%")
        out.append(Event(round(float(p.time) - t0, 4), src, dst, label))
    return out


def _parties(evs: list[Event]) -> list[str]:
    """The addresses in order of first appearance: the ladder's columns."""
    return list(dict.fromkeys(a for e in evs for a in (e.src, e.dst)))


def text(evs: list[Event]) -> str:
    """The ladder as text: one line per packet, arrow direction between two columns."""
    parties = _parties(evs)
    lines = ["      time  " + "  |  ".join(parties)]
    for e in evs:
        i, j = parties.index(e.src), parties.index(e.dst)
        arrow = f"{e.src} -> {e.dst}" if i <= j else f"{e.dst} <- {e.src}"
        lines.append(f"{e.t:10.4f}  {arrow:<40} {e.label}")
    return "\n".join(lines)


def svg(evs: list[Event], title: str = "") -> str:
    """The ladder as SVG: lifelines per address, arrows per packet, labels on them."""
    parties = _parties(evs)
    col, row, top, left = 230, 34, 70, 40
    width = left * 2 + col * max(1, len(parties) - 1) + 200
    height = top + row * (len(evs) + 1) + 20

    def x(a: str) -> int:
        return left + 100 + col * parties.index(a)

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="Helvetica" font-size="11">',
           '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="8" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{esc(title)}</text>']
    for a in parties:
        out.append(f'<text x="{x(a)}" y="{top - 20}" text-anchor="middle" '
                   f'font-weight="bold">{esc(a)}</text>')
        out.append(f'<line x1="{x(a)}" y1="{top - 10}" x2="{x(a)}" y2="{height - 10}" '
                   'stroke="#999" stroke-dasharray="4,3"/>')
    for n, e in enumerate(evs, start=1):
        y = top + row * n
        x1, x2 = x(e.src), x(e.dst)
        out.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333" '
                   'marker-end="url(#a)"/>')
        out.append(f'<text x="{(x1 + x2) / 2}" y="{y - 5}" text-anchor="middle">'
                   f'{esc(e.label)}</text>')
        out.append(f'<text x="8" y="{y + 4}" fill="#777">{e.t:.3f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
