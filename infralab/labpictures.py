"""`make lab-pictures`: the handouts' pictures, made again from the running networks so
they never go stale. Each topology is drawn (`infralab draw`), and each flow
the notes draw is captured for real and drawn by `infralab ladder`:

    labs/world.svg, labs/dhcplab.svg, labs/natlab.svg   the labs' topologies
    labs/nat-pat.svg       c1 -> web2a through rc's PAT, each packet before | after
    labs/dns-resolution.svg  at the LDNS: c1 asks (RD=1), the LDNS walks root, TLD, domain
    labs/gslb-zone.svg     at seoul's LDNS: a whole zone served by the GSLB
    labs/gslb-ns.svg       at seoul's LDNS: a subdomain delegated to the GSLB (NS)
    labs/gslb-cname.svg    at seoul's LDNS: www.example.com's CNAME into the GSLB
    labs/dhcp-dora.svg     DORA on a1's own segment (broadcasts from 0.0.0.0)
    labs/dhcp-relay.svg    the same exchange at the server: unicast from the relay (giaddr)

Needs root (it builds world and dhcplab); takes about a minute.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import topologies
from emulation.build import Emulation, wait_listening
from infralab.draw import render
from infralab.ladder import capture_many, events, nat_steps, nat_svg, svg

LABS = Path(__file__).resolve().parent.parent / "labs"


def during(emu: Emulation, places: dict[str, Path], seconds: float,
           traffic: Callable[[], None], bpf: str = "") -> None:
    """Capture at `places` for `seconds` while `traffic` runs (started once tcpdump is)."""
    t = threading.Thread(target=capture_many, args=(emu.rundir, places, seconds, bpf))
    t.start()
    time.sleep(1.0)  # (tcpdump starting in every namespace; a picture, not a test)
    traffic()
    t.join()


def world_pictures(tmp: Path) -> list[Path]:
    out = []
    with Emulation(topologies.load(topologies.builtin("world"))) as emu:
        inside, outside = tmp / "c1.pcap", tmp / "web2a.pcap"
        during(emu, {"c1": inside, "web2a": outside}, 4,
               lambda: emu.host("c1").cmd("curl -s -m3 http://198.51.100.131/whoami"),
               "tcp port 80 and (host 10.1.1.11 or host 203.0.113.1)")  # (not the GSLB's
        # health checks, which reach web2a all the time)
        p = LABS / "nat-pat.svg"
        p.write_text(nat_svg(nat_steps(events(inside), events(outside)),
                             "c1 -> web2a through rc's PAT: each packet before | after"))
        out.append(p)
        for resolver, client, name, picture, title in (
                ("ldns", "c1", "mail.example.com", "dns-resolution.svg",
                 "at the LDNS: c1 asks recursively, the LDNS iteratively"),
                ("ldnss", "xs", "www.examplegslb.com", "gslb-zone.svg",
                 "at seoul's LDNS: www.examplegslb.com, a zone the GSLB serves whole"),
                ("ldnss", "xs", "rtt.gslb.example.com", "gslb-ns.svg",
                 "at seoul's LDNS: rtt.gslb.example.com, delegated to the GSLB (NS)"),
                ("ldnss", "xs", "www.example.com", "gslb-cname.svg",
                 "at seoul's LDNS: www.example.com, a CNAME into the GSLB")):
            at = tmp / f"{resolver}.pcap"
            ask = partial(emu.host(client).cmd, f"dig +tries=1 +time=2 {name} >/dev/null")
            during(emu, {resolver: at}, 4, ask, "udp port 53")
            p = LABS / picture
            p.write_text(svg(events(at), title))
            out.append(p)
    return out


def dhcp_pictures(tmp: Path) -> list[Path]:
    out = []
    with Emulation(topologies.load(topologies.builtin("dhcplab"))) as emu:
        d = emu.host_dir("srv")
        root = LABS.parent
        server = emu.host("srv").popen(
            [sys.executable, "-m", "infralab", "dhcp", "serve", "--config",
             str(root / "topologies" / "dhcp" / "lab.yaml"), "--interface", "srv-eth0",
             "--lease-file", str(d / "leases.jsonl"), "--control", str(d / "dhcp.ctl")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(emu.host("srv"), 67, 10, server, "the lab's DHCP server")
            a1, srv = tmp / "a1.pcap", tmp / "srv.pcap"
            during(emu, {"a1": a1, "srv": srv}, 5, lambda: emu.host("a1").cmd(
                "infralab dhcp client a1-eth0 --once --retry 1 >/dev/null"),
                "udp port 67 or udp port 68")
        finally:
            server.terminate()
            server.wait(10)
        for pcap, name, title in (
                (a1, "dhcp-dora.svg", "DORA on a1's segment: broadcasts, from 0.0.0.0:68"),
                (srv, "dhcp-relay.svg", "the same at the server: unicast from r1's relay")):
            p = LABS / name
            p.write_text(svg(events(pcap), title))
            out.append(p)
    return out


def main() -> int:
    made = []
    for name in ("world", "dhcplab", "natlab"):
        made.append(render(topologies.load(topologies.builtin(name)), LABS / f"{name}.svg"))
    with tempfile.TemporaryDirectory() as tmp:
        made += world_pictures(Path(tmp))
        made += dhcp_pictures(Path(tmp))
    for p in made:
        print(f"wrote {p.relative_to(LABS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
