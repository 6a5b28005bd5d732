"""How infralab grows with size (issue 7, research use): start-up and stop time and the
controller's work for generated campuses of N hosts, against plain Mininet with the same
hosts and switches (one standalone OVS switch per subnet, no controller, no routing).

`python -m bench --only scale` writes bench/out/scale.json and bench/out/scale.svg (a
plot drawn here, no plotting library needed).
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import stats
from bench.net import plain_mininet
from bench.stats import median, show, summary
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
    assert emu.controller is not None
    ctl = cpu_s(emu.controller.pid)
    packet_ins = sum(r.get("counters", {}).get("packet_in", 0)
                     for r in emu.controller_status().get("routers", {}).values())
    emu.stop()
    return {"start_s": t1 - t0, "stop_s": time.monotonic() - t1, "controller_cpu_s": ctl,
            "packet_ins": packet_ins}


def bench_scale() -> dict:
    """RUNS rounds over every size, ours then plain Mininet at each: medians with ranges."""
    got: dict[tuple[int, int], dict[str, list[dict]]] = {
        size: {"infralab": [], "mininet": []} for size in SIZES}
    step = Progress(lines=True).step("scale rounds x sizes", stats.RUNS * len(SIZES))
    for _ in range(stats.RUNS):
        for subnets, hosts in SIZES:
            got[(subnets, hosts)]["infralab"].append(infralab_run(subnets, hosts))
            got[(subnets, hosts)]["mininet"].append(plain_mininet(subnets, hosts))
            step.advance()
    step.finish()
    rows = []
    for (subnets, hosts), runs in got.items():
        rows.append({"hosts": subnets * hosts + 1, "subnets": subnets, **{
            who: {k: summary([r[k] for r in rs]) for k in rs[0]} for who, rs in runs.items()}})
    return {"scale": rows}


def report(rows: list[dict]) -> None:
    print(f"\n{'hosts':>6}{'infralab start':>24}{'Mininet start':>24}{'infralab stop':>24}"
          f"{'Mininet stop':>24}{'controller CPU':>24}")
    for r in rows:
        i, m = r["infralab"], r["mininet"]
        print(f"{r['hosts']:>6}{show(i['start_s'], 1):>24}{show(m['start_s'], 1):>24}"
              f"{show(i['stop_s'], 1):>24}{show(m['stop_s'], 1):>24}"
              f"{show(i['controller_cpu_s'], 2):>24}")


def plot(rows: list[dict], out: Path) -> Path:
    """A line chart: start-up seconds against hosts, infralab and plain Mininet."""
    w, h, m = 640, 360, 50
    xs = [r["hosts"] for r in rows]
    series = {"infralab start": [median(r["infralab"]["start_s"]) for r in rows],
              "Mininet start": [median(r["mininet"]["start_s"]) for r in rows],
              "infralab stop": [median(r["infralab"]["stop_s"]) for r in rows],
              "Mininet stop": [median(r["mininet"]["stop_s"]) for r in rows]}
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
                 '(userspace OVS, same hosts; medians)</text>',
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
