"""How infralab grows with size (SCALE-1K): start-up and stop time, the memory of
the controller and of ovs-vswitchd, and the controller's CPU to ready, for generated
topologies of 50 to 1,000 hosts and of 10 to 100 routers, against plain Mininet with the
same hosts and switches (one standalone OVS switch per subnet or router, no controller,
no routing). Every figure is the median of RUNS interleaved runs.

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
from topologies.generators import generate

# (generator spec, x for the plot, plain Mininet's switches, hosts per switch): Mininet
# gets as many switches as infralab has routers, and the same number of hosts (infralab's
# core router and its server count as one switch more and one host more)
HOST_SWEEP = [("campus,subnets=5,hosts=10", 51, 2, 25),
              ("campus,routers=5,subnets=5,hosts=10", 251, 5, 50),
              ("campus,routers=10,subnets=10,hosts=10", 1001, 10, 100)]
ROUTER_SWEEP = [("random,routers=10,degree=3,seed=1,hosts=2", 10, 10, 2),
                ("random,routers=50,degree=3,seed=1,hosts=2", 50, 50, 2),
                ("random,routers=100,degree=3,seed=1,hosts=2", 100, 100, 2)]
OVS_PIDFILE = Path("/var/run/openvswitch/ovs-vswitchd.pid")


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / 100
    except OSError:
        return 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def vswitchd_mb() -> float:
    try:
        return rss_mb(int(OVS_PIDFILE.read_text().strip()))
    except (OSError, ValueError):
        return 0.0


def infralab_run(spec: str) -> dict:
    emu = Emulation(generate(spec))
    ovs0 = vswitchd_mb()
    t0 = time.monotonic()
    emu.start()
    t1 = time.monotonic()
    assert emu.controller is not None
    ctl = cpu_s(emu.controller.pid)
    ctl_mb = rss_mb(emu.controller.pid)
    ovs_mb = vswitchd_mb() - ovs0
    packet_ins = sum(r.get("counters", {}).get("packet_in", 0)
                     for r in emu.controller_status().get("routers", {}).values())
    emu.stop()
    return {"start_s": t1 - t0, "stop_s": time.monotonic() - t1, "controller_cpu_s": ctl,
            "controller_mb": ctl_mb, "vswitchd_mb": ovs_mb, "packet_ins": packet_ins}


def mininet_run(switches: int, hosts: int) -> dict:
    ovs0 = vswitchd_mb()
    got = plain_mininet(switches, hosts, probe=lambda: vswitchd_mb() - ovs0)
    return {"start_s": got["start_s"], "stop_s": got["stop_s"],
            "vswitchd_mb": got.get("probe", 0.0)}


def bench_scale(sweeps: tuple[str, ...] = ("hosts", "routers")) -> dict:
    """RUNS rounds over every size, ours then plain Mininet at each: medians with ranges."""
    sizes = [("hosts", *x) for x in HOST_SWEEP if "hosts" in sweeps] + \
        [("routers", *x) for x in ROUTER_SWEEP if "routers" in sweeps]
    got: dict[str, dict[str, list[dict]]] = {spec: {"infralab": [], "mininet": []}
                                             for _, spec, *_ in sizes}
    step = Progress(lines=True).step("scale rounds x sizes", stats.RUNS * len(sizes))
    for _ in range(stats.RUNS):
        for _sweep, spec, _x, switches, hosts in sizes:
            got[spec]["infralab"].append(infralab_run(spec))
            got[spec]["mininet"].append(mininet_run(switches, hosts))
            step.advance()
    step.finish()
    out: dict[str, list[dict]] = {"scale": [], "scale_routers": []}
    for sweep, spec, x, _switches, _hosts in sizes:
        runs = got[spec]
        out["scale" if sweep == "hosts" else "scale_routers"].append({
            "x": x, "spec": spec, **{who: {k: summary([r[k] for r in rs]) for k in rs[0]}
                                     for who, rs in runs.items()}})
    return out


def report(rows: list[dict], what: str = "hosts") -> None:
    print(f"\n{what:>7}{'infralab start':>22}{'Mininet start':>22}{'ratio':>6}"
          f"{'infralab stop':>22}{'Mininet stop':>22}{'ratio':>6}{'ctl CPU s':>18}"
          f"{'ctl MB':>16}{'vswitchd MB (ours / Mininet)':>34}")
    for r in rows:
        i, m = r["infralab"], r["mininet"]
        print(f"{r['x']:>7}{show(i['start_s'], 1):>22}{show(m['start_s'], 1):>22}"
              f"{stats.ratio(i['start_s'], m['start_s']):>6.2f}"
              f"{show(i['stop_s'], 1):>22}{show(m['stop_s'], 1):>22}"
              f"{stats.ratio(i['stop_s'], m['stop_s']):>6.2f}"
              f"{show(i['controller_cpu_s'], 2):>18}{show(i['controller_mb']):>16}"
              f"{show(i['vswitchd_mb']):>17} / {show(m['vswitchd_mb']):<15}")


def plot(rows: list[dict], out: Path, what: str = "hosts") -> Path:
    """A line chart: start-up seconds against hosts, infralab and plain Mininet."""
    w, h, m = 640, 360, 50
    xs = [r["x"] for r in rows]
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
                 f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">{what}</text>',
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
