"""`infralab lab list|check NAME`: the course labs and their checkers (TB-LABS)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from infralab.labs import LABS, check, find_run


def cmd_list(_args: argparse.Namespace) -> int:
    for lab in LABS.values():
        print(f"  {lab.name:<6} {lab.title}  (topology: {lab.topology}; handout: "
              f"{lab.handout.relative_to(lab.handout.parent.parent)})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    lab = LABS.get(args.name)
    if lab is None:
        print(f"infralab lab: no lab {args.name!r} (try: {', '.join(LABS)})")
        return 2
    from emulation.runtime import RunError

    try:
        run = find_run(None if args.run else lab.topology, args.run)
    except RunError as e:
        print(f"infralab lab: {e}")
        return 2
    if args.report or args.json:  # for instructors: per-step verdicts and their evidence
        import json
        import socket
        import time

        from infralab.labs import Live, html_report

        results = lab.run(Live(run))
        if args.report:  # as a page to file
            Path(args.report).write_text(html_report(
                lab, results, socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S %Z")))
            print(f"wrote {args.report}: {sum(1 for r in results if r[2])}/{len(results)} "
                  "steps done")
        if args.json:
            print(json.dumps({"lab": lab.name, "title": lab.title, "run": str(run),
                              "steps": [{"step": i, "title": t, "done": ok, "evidence": why}
                                        for i, t, ok, why in results],
                              "done": sum(1 for r in results if r[2]), "of": len(results)},
                             indent=1))
        return 0 if all(r[2] for r in results) else 1
    text, done = check(lab, run)
    print(text)
    return 0 if done else 1


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="course labs: list them, check your progress")
    lsub = p.add_subparsers(dest="lab_cmd", required=True)
    a = lsub.add_parser("list", help="the labs and their handouts")
    a.set_defaults(fn=cmd_list)
    c = lsub.add_parser("check", help="which steps of a lab the running network shows done")
    c.add_argument("name")
    c.add_argument("--run", help="which run: its name (infralab runs) or its directory "
                   "(default: the only run of the lab's topology)")
    c.add_argument("--json", action="store_true", help="per-step verdicts and the evidence "
                   "the checker saw, as JSON (to collect grades)")
    c.add_argument("--report", metavar="FILE.html", help="the same as an HTML page")
    c.set_defaults(fn=cmd_check)
