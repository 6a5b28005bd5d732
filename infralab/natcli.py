"""`infralab nat show|set`: the live NAT tables of a running emulation (NAT-TABLE).

Reads the controller's HTTP/JSON API, whose address the controller writes into its status
file in the run directory; `--api URL` points at one directly.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from emulation.build import api_request
from topologies.natconfig import BEHAVIOURS


def find_api(topology: str | None = None, run: str | None = None) -> str:
    """The controller API of the run named `run`, or of the only run (of `topology`)."""
    from infralab.labs import find_run

    rundir = find_run(topology, run)
    try:
        st = json.loads((rundir / "controller-status.json").read_text())
    except (OSError, ValueError):
        st = {}
    if not st.get("api"):
        raise SystemExit(f"infralab nat: the run in {rundir} has no controller API (yet)")
    return st["api"]


def render_table(view: dict[str, Any]) -> str:
    """The NAT tables as text, one block per router (also the Mininet CLI's `nat`)."""
    lines: list[str] = []
    for router, st in view.items():
        c = st["counters"]
        lines.append(f"{router}: {st['entries']} dynamic entries; created {c['created']}, "
                     f"expired {c['expired']}, refused {c['refused']}, inbound dropped "
                     f"{c['inbound_dropped']}, ICMP translated {c['icmp_translated']}")
        for name, i in st["interfaces"].items():
            lines.append(f"  {name}: mapping {i['mapping']}, filtering {i['filtering']}"
                         + (f", PAT {i['pat']}" if i["pat"] else "")
                         + f", pool free {i['pool_free']}")
        lines.append(f"  {'kind':<7}{'proto':<6}{'inside':<22}{'outside':<22}"
                     f"{'remotes':<24}{'age':>7}{'idle':>7}{'pkts':>8}{'bytes':>10}")
        for r in st["table"]:
            remotes = ",".join(r["remotes"])
            lines.append(f"  {r['kind']:<7}{r['proto']:<6}{r['inside']:<22}{r['outside']:<22}"
                         f"{remotes[:23]:<24}{r.get('age', ''):>7}{r.get('idle', ''):>7}"
                         f"{r.get('packets', ''):>8}{r.get('bytes', ''):>10}")
    return "\n".join(lines) if lines else "no router has NAT rules"


def cmd_show(args: argparse.Namespace) -> int:
    api = args.api or find_api(args.topology, args.run)
    view = api_request(api, f"/nat/{args.router}" if args.router else "/nat")
    print(json.dumps(view, indent=1) if args.json else render_table(view))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    api = args.api or find_api(args.topology, args.run)
    q = "&".join(f"{k}={v}" for k, v in (("mapping", args.mapping),
                                          ("filtering", args.filtering)) if v)
    st = api_request(api, f"/nat/{args.router}/{args.interface}?{q}", method="POST")
    i = st["interfaces"][args.interface]
    print(f"{args.router}/{args.interface}: mapping {i['mapping']}, filtering {i['filtering']}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("nat", help="live NAT tables of a running emulation")
    nsub = p.add_subparsers(dest="nat_cmd", required=True)
    s = nsub.add_parser("show", help="NAT tables, behaviours and counters")
    s.add_argument("--router", help="only this router")
    s.add_argument("--json", action="store_true", help="the API's JSON")
    s.set_defaults(fn=cmd_show)
    t = nsub.add_parser("set", help="change a NAT's RFC 4787 behaviour live")
    t.add_argument("router")
    t.add_argument("interface", help="the outside interface (subnet name)")
    t.add_argument("--mapping", choices=BEHAVIOURS)
    t.add_argument("--filtering", choices=BEHAVIOURS)
    t.set_defaults(fn=cmd_set)
    for q in (s, t):
        q.add_argument("--run", help="which run: its name (infralab runs); default: the only one")
        q.add_argument("--topology", help="the only run of this topology")
        q.add_argument("--api", help="controller API URL (default: from the run directory)")
