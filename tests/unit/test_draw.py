"""TB-OBSERVE: `infralab draw` turns a topology into a picture (Graphviz), no root needed."""

import xml.etree.ElementTree as ET

import topologies
from infralab.draw import render, to_dot


def test_draw_world_shows_routers_subnets_hosts_nat_relay_and_delay(tmp_path):
    topo = topologies.load(topologies.builtin("world"))
    dot = to_dot(topo)
    for text in ('"r:rc"', '"h:c1"', '"s:lan1"', "NAT on wan: PAT 203.0.113.1",
                 "static 10.1.9.80↔203.0.113.80", "DHCP relay → 10.1.0.10", "20ms each way",
                 "[gslb]", "DHCP"):
        assert text in dot, text
    svg = render(topo, tmp_path / "world.svg")
    root = ET.parse(svg).getroot()  # well-formed SVG
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"rc", "webc", "198.18.3.1", "[rendezvous]"} <= texts
    png = render(topo, tmp_path / "world.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
