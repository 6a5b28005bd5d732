"""The live view's cost to forwarding: new TCP connections/s through the PAT
(the per-binding default: every binding is controller work, so it feels any load the
view puts on the controller) with no view, and with the view serving one page that
follows its event stream. Each round builds a fresh PAT router and measures both, in
alternating order (the second run of a round finds the first run's bindings in the
table, which the view then reads every second). Target: with the page open, >= 0.95 of
the rate without it.

    sudo .venv/bin/python -m bench --only view [--seconds 5] [--runs 5]
"""

from __future__ import annotations

from typing import Any

from bench import stats
from bench.nat import SERVER, pat_router
from bench.net import conn_rate
from bench.stats import header, row, summary
from emulation.build import Emulation
from infralab.webview import PageReader, serve


def bench_view(seconds: int) -> dict:
    got: dict[str, list[float]] = {"with_view": [], "without_view": []}
    received: list[int] = []
    gaps: list[float] = []  # the longest wait for a snapshot, per run under load

    def with_view(emu: Emulation) -> float:
        view = serve(emu.rundir, emu.topo)
        page = PageReader(view.url)
        try:
            return conn_rate(emu.host("bl0"), emu.host("bh0"), SERVER, seconds)
        finally:
            page.close()
            view.stop()
            received.append(page.bytes)
            gaps.append(page.longest_gap())

    def without_view(emu: Emulation) -> float:
        return conn_rate(emu.host("bl0"), emu.host("bh0"), SERVER, seconds)

    for i in range(stats.RUNS):
        with Emulation(pat_router()) as emu:
            order = (with_view, without_view) if i % 2 else (without_view, with_view)
            for measure in order:
                got[measure.__name__].append(measure(emu))
    res: dict[str, Any] = {f"view_conn_per_s.{k}": summary(v) for k, v in got.items()}
    res["view_page_bytes_per_s"] = summary([b / seconds for b in received])
    res["view_longest_snapshot_gap_s"] = summary(gaps)
    return res


def report(res: dict) -> None:
    print(header())
    print(row("new TCP conn/s via the PAT, a view page open", res["view_conn_per_s.with_view"],
              res["view_conn_per_s.without_view"], "the same, no view", target=0.95))
    g = res["view_longest_snapshot_gap_s"]
    print(f"under that load, the longest wait between two snapshots: {g['median']:.2f} s "
          f"(median of the runs; {g['min']:.2f}-{g['max']:.2f}; one a second is the aim)")
    b = res["view_page_bytes_per_s"]
    print(f"the page received {b['median'] / 1000:.0f} kB/s (median; {b['min'] / 1000:.0f}-"
          f"{b['max'] / 1000:.0f}) of snapshots and events")
