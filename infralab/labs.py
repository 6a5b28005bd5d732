"""Course labs (TB-LABS): `infralab lab list` and `infralab lab check NAME`.

A lab is a handout (`labs/NAME.md`: goal, topology, numbered steps typed in the Mininet
CLI, questions) and a checker. The checker never reads what the student typed: it looks
at the running network — the controller's NAT tables and status, the services' logs and
control sockets — and says which steps have left their mark there. Each check is a
function of a `Live` view, so scenario tests run the same checkers against a solved and
an unsolved network.
"""

from __future__ import annotations

from pathlib import Path

from infralab.labbase import HERE, Check, Lab, Live, Step  # noqa: F401 - re-exported
from infralab.labchecks import LABS  # noqa: F401 - re-exported


def find_run(topology: str | None = None, run: str | None = None) -> Path:
    """The run directory a command attaches to: `run` is a run's name (`infralab runs`)
    or its directory; else the only run of `topology`, or the only run at all. RunError
    (emulation.runtime.RunError, one line naming the runs there are) when that is not
    exactly one run."""
    import os

    from emulation import runtime

    if run is None and topology is None and os.environ.get("INFRALAB_RUN"):
        run = os.environ["INFRALAB_RUN"]  # (in a host's shell: that host's own run)
    if run is not None and "/" in run:
        if not (Path(run) / "manifest.json").exists():
            raise runtime.RunError(f"{run} is not a run directory (no manifest.json)")
        return Path(run)
    return Path(runtime.find_run(run, topology).dir)


def check(lab: Lab, rundir: Path) -> tuple[str, bool]:
    """Run a lab's checker on a live run: the report to print, and whether every step
    is done (`infralab lab check` and the Mininet CLI's `lab check` both say this)."""
    results = lab.run(Live(rundir))
    return report(lab, results), all(ok for _, _, ok, _ in results)


def html_report(lab: Lab, results: list[tuple[int, str, bool, str]], who: str,
                when: str) -> str:
    """The same verdicts as a page an instructor can file or collect (`--report`)."""
    from html import escape

    done = sum(1 for r in results if r[2])
    rows = "\n".join(
        f'<tr class="{"pass" if ok else "todo"}"><td>{i}</td><td>{escape(title)}</td>'
        f'<td>{"PASS" if ok else "TODO"}</td><td>{escape(why)}</td></tr>'
        for i, title, ok, why in results)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>lab {escape(lab.name)}: {done}/{len(results)}</title><style>'
            "body{font-family:sans-serif}td{padding:2px 8px;border-bottom:1px solid #ddd}"
            ".pass td:nth-child(3){color:#1e8449}.todo td:nth-child(3){color:#c0392b}"
            f"</style></head><body><h1>lab {escape(lab.name)}: {escape(lab.title)}</h1>"
            f"<p>{escape(who)}, {escape(when)}: <b>{done}/{len(results)} steps done</b></p>"
            f"<table><tr><th>step</th><th>what</th><th>verdict</th><th>evidence</th></tr>"
            f"\n{rows}\n</table></body></html>\n")


def report(lab: Lab, results: list[tuple[int, str, bool, str]]) -> str:
    lines = [f"lab {lab.name}: {lab.title}"]
    for i, title, ok, why in results:
        lines.append(f"  {'PASS' if ok else 'TODO'}  {i}. {title} — {why}")
    done = sum(1 for r in results if r[2])
    lines.append(f"{done}/{len(results)} steps done")
    return "\n".join(lines)
