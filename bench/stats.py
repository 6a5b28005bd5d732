"""How every benchmark figure is taken: at least RUNS runs of each measure, ours and the
peers' interleaved (ours, peer, ours, peer, ...) so a slow minute of the machine hurts
both sides alike, and reported as the median with its min-max range."""

from __future__ import annotations

import statistics
from collections.abc import Callable

RUNS = 5


def interleave(measures: dict[str, Callable[[], float]], runs: int | None = None,
               between: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Run each measure `runs` (default RUNS) times, round robin in the given order;
    `between(i)` after round i. Returns {name: summary}."""
    got: dict[str, list[float]] = {name: [] for name in measures}
    for i in range(max(runs or RUNS, 1)):
        for name, measure in measures.items():
            got[name].append(float(measure()))
        if between is not None:
            between(i)
    return {name: summary(values) for name, values in got.items()}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def median(s: dict | float) -> float:
    return s["median"] if isinstance(s, dict) else float(s)


def ratio(ours: dict | float, theirs: dict | float) -> float:
    """Median over median (the ratio the README and RESULTS.md quote)."""
    t = median(theirs)
    return median(ours) / t if t else float("nan")


def show(s: dict | float, digits: int = 0) -> str:
    """'1,234 (1,200-1,250)': the median and the range of the runs."""
    if not isinstance(s, dict):
        return f"{s:,.{digits}f}"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def row(title: str, ours: dict, theirs: dict, peer: str, digits: int = 0,
        target: float | None = None, lower_is_better: bool = False) -> str:
    """One report line: our median (range), the peer's, the ratio, the target, the peer."""
    r = ratio(ours, theirs)
    note = " (lower is better)" if lower_is_better else ""
    tgt = f"{target:>7}" if target is not None else f"{'':>7}"
    return (f"{title:<40}{show(ours, digits):>26}{show(theirs, digits):>26}{r:>7.2f}{tgt}  "
            f"{peer}{note}")


def header() -> str:
    return (f"\n{'measure (median of ' + str(RUNS) + ', range)':<40}{'infralab':>26}{'peer':>26}"
            f"{'ratio':>7}{'target':>7}  peer")
