"""A fault timeline (faults.jsonl, emulation/faults.py) as text or as a picture: one lane
per fault, a bar from its injection to its heal, a mark for each effect seen. Pure."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from statistics import median

COLOURS = {"link": "#e07b39", "loss": "#d4a017", "delay": "#d4a017", "partition": "#c0392b",
           "service": "#2e86c1", "host": "#7d3c98", "controller": "#1e8449",
           "nat": "#5d6d7e", "dhcp": "#5d6d7e"}


class TimelineError(ValueError):
    """A timeline file that cannot be read: the message names the file and line."""


def read(path: str | Path) -> list[dict]:
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise TimelineError(f"{path}: cannot read: {e.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            float(rec["t"]), rec["event"], rec["id"]  # noqa: B018 - the fields a view needs
        except (ValueError, KeyError, TypeError):
            raise TimelineError(f"{path}:{n}: not a timeline record") from None
        out.append(rec)
    return out


def faults(records: list[dict]) -> list[dict]:
    """One entry per fault: kind, target, injected/healed times, how, effects."""
    by: dict[str, dict] = {}
    for r in records:
        f = by.setdefault(r["id"], {"id": r["id"], "kind": r.get("kind", "?"),
                                    "target": r.get("target", ""), "start": None,
                                    "end": None, "how": "", "effects": []})
        if r["event"] == "inject":
            f["start"] = r["t"]
        elif r["event"] == "heal":
            f["end"], f["how"] = r["t"], r.get("how", "")
        elif r["event"] == "effect":
            f["effects"].append((r["t"], r.get("after_s"), r.get("what", "")))
    return sorted(by.values(), key=lambda f: (f["start"] is None, f["start"] or 0))


def text(records: list[dict]) -> str:
    lines = [f"{'t (s)':>8}  {'fault':<5} {'event':<7} what"]
    for r in sorted(records, key=lambda r: r["t"]):
        what = f"{r.get('kind', '')} {r.get('target', '')}"
        if r["event"] == "effect":
            what = f"+{r.get('after_s', 0):.2f} s  {r.get('what', '')}"
        elif r["event"] == "heal":
            what = f"+{r.get('after_s', 0):.2f} s  healed: {r.get('how', '')}"
        elif r.get("what"):
            what += f" ({r['what']})"
        lines.append(f"{r['t']:>8.2f}  {r['id']:<5} {r['event']:<7} {what}")
    lines.append("")
    lines.append(summary(records))
    return "\n".join(lines) + "\n"


def summary(records: list[dict]) -> str:
    """Time to heal per fault kind (median and worst) and what was never healed."""
    per: dict[str, list[float]] = {}
    open_ = []
    for f in faults(records):
        if f["start"] is None:
            continue
        if f["end"] is None:
            open_.append(f"{f['id']} {f['kind']} {f['target']}")
        else:
            per.setdefault(f["kind"], []).append(f["end"] - f["start"])
    out = []
    for kind, xs in sorted(per.items()):
        out.append(f"{kind:<16} {len(xs)} healed, median {median(xs):.2f} s, "
                   f"worst {max(xs):.2f} s")
    if open_:
        out.append("not healed: " + "; ".join(open_))
    return "\n".join(out) or "no faults"


def svg(records: list[dict], title: str = "faults") -> str:
    """The timeline as SVG: a lane per fault, bars injected -> healed, effect ticks."""
    fs = [f for f in faults(records) if f["start"] is not None]
    end = max([r["t"] for r in records] + [1.0])
    left, width, lane, top = 230, 640, 26, 40
    height = top + lane * len(fs) + 40

    def x(t: float) -> float:
        return left + width * t / end

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 30}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>']
    step = _tick(end)
    t = 0.0
    while t <= end + 1e-9:
        out.append(f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" '
                   f'y2="{height - 30}" stroke="#ddd"/>'
                   f'<text x="{x(t):.1f}" y="{height - 16}" text-anchor="middle" '
                   f'fill="#555">{t:g} s</text>')
        t += step
    for i, f in enumerate(fs):
        y = top + i * lane
        colour = COLOURS.get(f["kind"].split("-")[0], "#555")
        label = f"{f['id']} {f['kind']} {f['target']}"
        out.append(f'<text x="10" y="{y + 15}">{escape(label[:38])}</text>')
        stop = f["end"] if f["end"] is not None else end
        w = max(2.0, x(stop) - x(f["start"]))
        tip = f"{label}: healed after {stop - f['start']:.2f} s, {f['how']}" \
            if f["end"] is not None else f"{label}: not healed"
        out.append(f'<rect x="{x(f["start"]):.1f}" y="{y + 4}" width="{w:.1f}" '
                   f'height="14" rx="3" fill="{colour}" opacity="0.8">'
                   f'<title>{escape(tip)}</title></rect>')
        for t_e, after, what in f["effects"]:
            out.append(f'<path d="M{x(t_e):.1f},{y + 2} l4,-6 h-8 z" fill="#111">'
                       f'<title>{escape(f"+{after} s: {what}")}</title></path>')
        if f["effects"]:  # the first effect, written after the bar (or before it, at the end)
            said = [e[2] for e in f["effects"]]  # (what the GSLB did says most)
            first = next((w for w in said if w.startswith("GSLB")), said[0])[:40]
            after = x(stop) + 8
            anchor = "start" if after + 5.5 * len(first) < left + width + 30 else "end"
            at = after if anchor == "start" else x(f["start"]) - 6
            out.append(f'<text x="{at:.1f}" y="{y + 15}" font-size="9" fill="#111" '
                       f'text-anchor="{anchor}">{escape(first)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _tick(end: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if end / step <= 12:
            return float(step)
    return 1200.0
