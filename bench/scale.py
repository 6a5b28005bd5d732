"""How infralab grows with size (issue 7, research use): start-up and stop time and the
controller's work for generated campuses of N hosts, against plain Mininet with the same
hosts and switches (one standalone OVS switch per subnet, no controller, no routing).

`python -m bench --only scale` writes bench/out/scale.json and bench/out/scale.svg (a
plot drawn here, no plotting library needed).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.net import plain_mininet
from emulation.build import Emulation
from emulation.progress import Progress
from topologies.generators import campus

SIZES = [(2, 5), (4, 10), (8, 10), (10, 20)]  # (subnets, hosts per subnet)


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / 100
    except OSError:
        return 0.0


def infralab_run(subnets: int, hosts: int) -> dict:
    emu = Emulation(campus(subnets, hosts))
    t0 = time.monotonic()
    emu.start()
    t1 = time.monotonic()
    ctl = cpu_s(emu.controller.pid)
    packet_ins = sum(r.get("counters", {}).get("packet_in", 0)
                     for r in emu.controller_status().get("routers", {}).values())
    emu.stop()
    return {"start_s": t1 - t0, "stop_s": time.monotonic() - t1, "controller_cpu_s": ctl,
            "packet_ins": packet_ins}


def bench_scale() -> dict:
    rows = []
    step = Progress(lines=True).step("scale sizes", len(SIZES))
    for subnets, hosts in SIZES:
        n = subnets * hosts + 1
        rows.append({"hosts": n, "subnets": subnets, "infralab": infralab_run(subnets, hosts),
                     "mininet": plain_mininet(subnets, hosts)})
        print(f"scale: {n} hosts: infralab start {rows[-1]['infralab']['start_s']:.1f} s, "
              f"mininet {rows[-1]['mininet']['start_s']:.1f} s", flush=True)
        step.advance()
    step.finish()
    return {"scale": rows}


def plot(rows: list[dict], out: Path) -> Path:
    """A line chart: start-up seconds against hosts, infralab and plain Mininet."""
    w, h, m = 640, 360, 50
    xs = [r["hosts"] for r in rows]
    series = {"infralab start": [r["infralab"]["start_s"] for r in rows],
              "Mininet start": [r["mininet"]["start_s"] for r in rows],
              "infralab stop": [r["infralab"]["stop_s"] for r in rows],
              "Mininet stop": [r["mininet"]["stop_s"] for r in rows]}
    ymax = max(max(v) for v in series.values()) * 1.15 or 1
    xmax = max(xs) * 1.05

    def px(x: float) -> float:
        return m + (w - 2 * m) * x / xmax

    def py(y: float) -> float:
        return h - m - (h - 2 * m) * y / ymax

    colors = {"infralab start": "#d9534f", "Mininet start": "#5b8def",
              "infralab stop": "#f0ad4e", "Mininet stop": "#5bc0de"}
    out_lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
                 'font-family="Helvetica" font-size="11">',
                 f'<rect width="{w}" height="{h}" fill="white"/>',
                 f'<text x="{m}" y="22" font-size="13">Start-up and stop time by size '
                 '(userspace OVS, same hosts)</text>',
                 f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="#333"/>',
                 f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="#333"/>',
                 f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">hosts</text>',
                 f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" '
                 'text-anchor="middle">seconds</text>']
    for x in xs:
        out_lines.append(f'<text x="{px(x)}" y="{h - m + 15}" text-anchor="middle">{x}</text>')
    for k in range(5):
        y = ymax * k / 4
        out_lines.append(f'<text x="{m - 6}" y="{py(y) + 4}" text-anchor="end">{y:.1f}</text>')
    for i, (name, ys) in enumerate(series.items()):
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        out_lines.append(f'<polyline points="{pts}" fill="none" stroke="{colors[name]}" '
                         'stroke-width="2"/>')
        out_lines.append(f'<text x="{w - m - 110}" y="{m + 14 * i}" fill="{colors[name]}">'
                         f'{name}</text>')
    out_lines.append("</svg>")
    out.write_text("\n".join(out_lines) + "\n")
    return out
