"""Capture on demand and ladder diagrams (TB-OBSERVE).

`infralab capture HOST` records one host's link of a running emulation to a pcap (tcpdump
inside the host's namespace, bounded in time). `infralab ladder FILE.pcap` draws what the
capture holds as a ladder: one vertical line per address, one arrow per packet, labelled
with what the packet is (DHCP DISCOVER/OFFER/REQUEST/ACK, a DNS question or answer, TCP
flags, ICMP) — as text, or as SVG. Given two captures, one on each side of a NAT,
`nat_steps()` pairs each packet with itself after translation and the ladder shows the
addresses before and after (and what one side saw that the other never did: a packet the
NAT dropped). Everything but `capture()` is pure.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
              7: "RELEASE", 8: "INFORM"}


class CaptureFileError(ValueError):
    """A capture file that cannot be read: the message names the file."""


@dataclass
class Event:
    t: float
    src: str
    dst: str
    label: str
    src_ep: str = ""  # address:port (address#id for an ICMP echo), as the packet carried it
    dst_ep: str = ""
    at: float = 0.0  # absolute capture time, to compare two captures on one clock
    key: tuple = ()  # what no NAT changes: IP id, protocol, TCP seq/ack, payload


def capture(rundir: Path, host: str, out: Path, seconds: float, bpf: str = "") -> Path:
    """tcpdump on `host`'s interface for `seconds`, written to `out` (bounded: at most
    10 minutes and 100 MB)."""
    return capture_many(rundir, {host: out}, seconds, bpf)[host]


def capture_many(rundir: Path, outs: dict[str, Path], seconds: float,
                 bpf: str = "", during: list[str] | None = None) -> dict[str, Path]:
    """Capture at several places over the same `seconds` (e.g. both sides of a NAT), one
    tcpdump each, started together; returns place -> pcap. A place is a host (its link,
    inside its namespace) or `ROUTER:PEER` / `ROUTER:SUBNET` (a router's port, on the
    link's router end). With `during`, that command runs once every tcpdump is listening
    (so its first packet is caught) and the capture ends shortly after it does, within
    `seconds` at most."""
    import json
    import select
    import time

    manifest = json.loads((rundir / "manifest.json").read_text())
    seconds = max(1.0, min(seconds, 600.0))
    ports = (json.loads((rundir / "ports.json").read_text())
             if any(":" in place for place in outs) else [])
    cmds = {}
    tail = ["-n", "-U", "--immediate-mode", "-s", "1500", "-C", "100", "-W", "1"]
    for place, out in outs.items():
        if ":" in place:  # a router's port: its interface is in our own namespace
            prefix, intf = [], resolve_link(ports, place)
        else:  # a host (or its interface, HOST-eth0): tcpdump inside its namespace
            host = place.removesuffix("-eth0")
            node = manifest["processes"].get(f"node:{host}")
            if node is None:
                raise LookupError(f"no host {host!r} in {rundir}")
            prefix, intf = ["mnexec", "-a", str(node["pid"])], f"{host}-eth0"
        cmds[place] = [*prefix, "timeout", str(seconds), "tcpdump", "-Z", "root", "-i", intf,
                       *tail, "-w", str(out)] + ([bpf] if bpf else [])
    procs = {h: subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True) for h, c in cmds.items()}
    early: dict[str, str] = {}
    ran = None
    if during:
        deadline = time.monotonic() + 10
        for h, proc in procs.items():  # tcpdump says "listening on" once it captures
            assert proc.stderr is not None
            line = ""
            while "listening on" not in line and time.monotonic() < deadline:
                if not select.select([proc.stderr], [], [], 0.2)[0]:
                    continue
                line = proc.stderr.readline()
                if not line:
                    break
                early[h] = early.get(h, "") + line
        ran = subprocess.run(during)
        for proc in procs.values():  # the last packet's reply may trail the command
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                proc.terminate()
    failed = []
    for h, proc in procs.items():
        _, err = proc.communicate()
        # 124: timeout ended it, as planned; 143/-15: ended after the command, as planned
        if proc.returncode not in (0, 124, 143, -15):
            failed.append(f"{h}: {(early.get(h, '') + err).strip()[-300:]}")
    if failed:
        raise RuntimeError("tcpdump failed: " + "; ".join(failed))
    if ran is not None and ran.returncode:
        raise RuntimeError(f"{' '.join(during or [])}: exit status {ran.returncode}")
    return dict(outs)


def events(pcap: Path) -> list[Event]:
    """What each packet of a capture is, in order (scapy reads the pcap)."""
    import scapy.layers.dhcp  # noqa: F401  (registers BOOTP/DHCP)
    import scapy.layers.dns  # noqa: F401
    import scapy.layers.inet  # noqa: F401
    import scapy.layers.l2  # noqa: F401
    from scapy.error import Scapy_Exception
    from scapy.utils import rdpcap

    out: list[Event] = []
    try:
        packets = list(rdpcap(str(pcap)))
    except OSError as e:
        raise CaptureFileError(f"{pcap}: {e.strerror or e}") from None
    except Scapy_Exception as e:
        raise CaptureFileError(f"{pcap}: {e} (a pcap or pcapng file is needed)") from None
    t0 = float(packets[0].time) if packets else 0.0
    for p in packets:
        if not p.haslayer("IP"):
            continue
        ip = p["IP"]
        label = ip.sprintf("%IP.proto%")
        src, dst = ip.src, ip.dst
        src_ep, dst_ep, key = _endpoints_and_key(p)
        if p.haslayer("DHCP"):
            opts = dict(o for o in p["DHCP"].options if isinstance(o, tuple) and len(o) == 2)
            kind = DHCP_TYPES.get(int(opts.get("message-type", 0)), "BOOTP")
            yi = p["BOOTP"].yiaddr
            gi = p["BOOTP"].giaddr
            sid = opts.get("server_id") if kind == "REQUEST" else None  # the one chosen
            label = f"DHCP {kind}" + (f" server={sid}" if sid else "") + \
                (f" yiaddr={yi}" if yi != "0.0.0.0" else "") + \
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
        out.append(Event(round(float(p.time) - t0, 4), src, dst, label, src_ep, dst_ep,
                         float(p.time), key))
    return out


def resolve_link(ports: list[dict], spec: str) -> str:
    """`ROUTER:PEER` (the port towards that host or router) or `ROUTER:SUBNET` (a subnet
    on one port) -> the router-side interface; a clear error otherwise."""
    router, _, what = spec.partition(":")
    mine = [p for p in ports if p["router"] == router]
    if not mine:
        raise LookupError(f"{spec}: no router {router!r} (routers: "
                          f"{', '.join(sorted({p['router'] for p in ports}))})")
    by_peer = [p for p in mine if p["peer"] == what]
    by_subnet = [p for p in mine if p["subnet"] == what]
    if len(by_peer) == 1:
        return by_peer[0]["intf"]
    if len(by_subnet) == 1:
        return by_subnet[0]["intf"]
    if by_subnet:
        raise LookupError(f"{spec}: subnet {what} is on {len(by_subnet)} ports of {router}; "
                          f"name one: {', '.join(router + ':' + p['peer'] for p in by_subnet)}")
    raise LookupError(f"{spec}: {router} has no port towards {what!r} (try: "
                      f"{', '.join(router + ':' + p['peer'] for p in mine)})")


def _endpoints_and_key(p) -> tuple[str, str, tuple]:  # noqa: ANN001 (a scapy packet)
    """The packet's endpoints with ports, and the fields a NAT leaves alone."""
    ip = p["IP"]
    sport = dport = None
    src_tag = dst_tag = ""  # an ICMP echo's id, on the asker's end
    extra: tuple = ()
    if p.haslayer("TCP"):
        tcp = p["TCP"]
        sport, dport, extra = tcp.sport, tcp.dport, (tcp.seq, tcp.ack, int(tcp.flags))
        payload = bytes(tcp.payload)
    elif p.haslayer("UDP"):
        sport, dport, payload = p["UDP"].sport, p["UDP"].dport, bytes(p["UDP"].payload)
    elif p.haslayer("ICMP"):
        icmp = p["ICMP"]
        extra = (icmp.type, icmp.code)
        if icmp.type in (0, 8):  # echo: the NAT rewrites the id; seq and data stay
            extra += (icmp.seq,)
            src_tag, dst_tag = (f"#{icmp.id}", "") if icmp.type == 8 else ("", f"#{icmp.id}")
        payload = bytes(icmp.payload)[:64]
    else:
        payload = bytes(ip.payload)[:64]
    src = f"{ip.src}:{sport}" if sport is not None else ip.src + src_tag
    dst = f"{ip.dst}:{dport}" if dport is not None else ip.dst + dst_tag
    return src, dst, (ip.id, ip.proto, *extra, payload)


@dataclass
class NatStep:
    """One packet seen on both sides of a NAT (or on one side only: `inside` or
    `outside` is None). `outbound`: it went from the inside to the outside."""
    t: float
    label: str
    outbound: bool
    inside: Event | None
    outside: Event | None


def nat_steps(inside: list[Event], outside: list[Event], window: float = 2.0
              ) -> list[NatStep]:
    """Pair each packet of the inside capture with the same packet in the outside capture
    (same IP id, protocol, TCP sequence numbers and payload; at most `window` seconds
    apart); the earlier sighting says which way it went. Unpaired packets stay, alone."""
    pending: dict[tuple, list[Event]] = {}
    for e in outside:
        pending.setdefault(e.key, []).append(e)
    t0 = min([e.at for e in inside + outside], default=0.0)
    steps = []
    for a in inside:
        candidates = pending.get(a.key, [])
        match = next((b for b in candidates if abs(b.at - a.at) <= window), None)
        if match is None:
            steps.append(NatStep(round(a.at - t0, 4), a.label, True, a, None))
            continue
        candidates.remove(match)  # each outside packet pairs once
        first = min(a.at, match.at)
        steps.append(NatStep(round(first - t0, 4), a.label, a.at <= match.at, a, match))
    steps += [NatStep(round(b.at - t0, 4), b.label, False, None, b)
              for unpaired in pending.values() for b in unpaired]
    steps.sort(key=lambda s: s.t)
    return steps


def _ep_arrow(e: Event | None) -> str:
    return f"{e.src_ep} -> {e.dst_ep}" if e is not None else "(not seen)"


def nat_text(steps: list[NatStep], inside_name: str = "inside",
             outside_name: str = "outside") -> str:
    """Before and after, one line per packet: as the inside saw it, as the outside did."""
    paired = sum(1 for s in steps if s.inside and s.outside)
    lines = [f"NAT before/after: {paired} packets seen on both sides, "
             f"{len(steps) - paired} on one side only",
             f"      time  {'dir':<4} {'inside: ' + inside_name:<44} "
             f"{'outside: ' + outside_name:<44} packet"]
    for s in steps:
        way = "out" if s.outbound else "in"
        lines.append(f"{s.t:10.4f}  {way:<4} {_ep_arrow(s.inside):<44} "
                     f"{_ep_arrow(s.outside):<44} {s.label}")
    return "\n".join(lines)


def nat_svg(steps: list[NatStep], title: str = "") -> str:
    """The NAT ladder: inside parties on the left, the NAT in the middle, outside parties
    on the right; each packet's left half is labelled with its addresses before the NAT,
    the right half with its addresses after; a packet one side never saw stops at the
    NAT with a cross."""
    def party(s: NatStep, inner: bool) -> str:
        e = s.inside if inner else s.outside
        if e is None:
            return ""
        return (e.src if s.outbound == inner else e.dst).split(":")[0]

    lefts = list(dict.fromkeys(p for s in steps if (p := party(s, True))))
    rights = list(dict.fromkeys(p for s in steps if (p := party(s, False))))
    col, row, top = 330, 40, 80
    xs = {("L", a): 40 + 80 + 110 * i for i, a in enumerate(lefts)}
    nat_x = max(xs.values(), default=120) + col
    xs.update({("R", a): nat_x + col + 110 * i for i, a in enumerate(rights)})
    width = max(xs.values(), default=nat_x) + 160
    height = top + row * (len(steps) + 1) + 20

    esc = _esc
    out = _svg_head(width, height, title)
    heads = [(x, a) for (k, a), x in xs.items()] + [(nat_x, "NAT")]
    for x, a in heads:
        out.append(f'<text x="{x}" y="{top - 22}" text-anchor="middle" '
                   f'font-weight="bold">{esc(a)}</text>')
        colour = "#c33" if a == "NAT" else "#999"
        out.append(f'<line x1="{x}" y1="{top - 12}" x2="{x}" y2="{height - 10}" '
                   f'stroke="{colour}" stroke-dasharray="4,3"/>')
    for n, s in enumerate(steps, start=1):
        y = top + row * n
        lx = xs.get(("L", party(s, True)), nat_x - col // 2)
        rx = xs.get(("R", party(s, False)), nat_x + col // 2)
        halves = ((lx, nat_x, s.inside), (nat_x, rx, s.outside))
        for x_left, x_right, e in halves:
            x1, x2 = (x_left, x_right) if s.outbound else (x_right, x_left)
            if e is None:
                out.append(f'<text x="{(x_left + x_right) / 2}" y="{y + 4}" text-anchor="middle" '
                           'fill="#c33">✗ not seen here</text>')
                continue
            out.append(f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333" '
                       'marker-end="url(#a)"/>')
            out.append(f'<text x="{(x_left + x_right) / 2}" y="{y - 5}" text-anchor="middle">'
                       f'{esc(_ep_arrow(e))}</text>')
        out.append(f'<text x="{nat_x}" y="{y + 14}" text-anchor="middle" fill="#555" '
                   f'stroke="white" stroke-width="3" paint-order="stroke">{esc(s.label)}</text>')
        out.append(f'<text x="8" y="{y + 4}" fill="#777">{s.t:.3f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


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


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _svg_head(width: int, height: int, title: str) -> list[str]:
    """The start both ladders share: canvas, arrowhead marker, title."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="Helvetica" font-size="11">',
            '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="8" refY="4" '
            'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="40" y="20" font-size="14">{_esc(title)}</text>']


def svg(evs: list[Event], title: str = "") -> str:
    """The ladder as SVG: lifelines per address, arrows per packet, labels on them."""
    parties = _parties(evs)
    col, row, top, left = 230, 34, 70, 40
    width = left * 2 + col * max(1, len(parties) - 1) + 200
    height = top + row * (len(evs) + 1) + 20

    def x(a: str) -> int:
        return left + 100 + col * parties.index(a)

    esc = _esc
    out = _svg_head(width, height, title)
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
