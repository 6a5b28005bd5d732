"""`infralab gslb ...` and `infralab web ...`: the GSLB and the data centres' web server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.common.control import control_request
from services.common.endpoint import endpoint_arg
from services.common.workers import run_workers, worker_log
from services.gslb.config import load as load_config


def _log(msg: str) -> None:
    print(msg, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    from services.gslb.server import GslbServer

    cfg = load_config(args.config)  # a bad config: infralab.cli prints file:line, exit 2
    if args.workers < 1:
        raise SystemExit("infralab gslb serve: --workers must be at least 1")

    def make(worker: int) -> GslbServer:
        log = worker_log(worker, _log)
        log_file = args.decision_log
        if log_file is not None and worker:
            log_file = log_file.with_name(f"{log_file.name}.{worker}")
        return GslbServer(cfg, args.listen or [("0.0.0.0", 53)],
                          control=args.control if worker == 0 else None,
                          decision_log=log_file, log=log, reuse_port=args.workers > 1)

    return run_workers(args.workers, make, reloads=False)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(f"{args.config}: ok: zone {cfg.zone}, {len(cfg.pools)} pools, "
          f"{len(cfg.names)} names")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    st = control_request(args.control, "status")
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"GSLB for {st['zone']}")
    for pool, members in st["pools"].items():
        print(f"pool {pool}")
        for name, m in members.items():
            extra = "".join(f" {k}={m[k]}" for k in ("rtt_ms", "load") if m.get(k) is not None)
            print(f"  {name:8} {m['address']:15} {m['site']:6} {m['state']:5} "
                  f"for {m['for_s']}s{extra}  ({m['last']})")
    for prefix, rtts in st.get("site_rtt", {}).items():
        print(f"rtt from sites to {prefix}: "
              + ", ".join(f"{s}={v:.1f}ms" for s, v in sorted(rtts.items())))
    return 0


def _vhost(text: str) -> str:
    name, eq, site = text.partition("=")
    if not eq or not name or not site or " " in text:
        raise argparse.ArgumentTypeError(f"expected NAME=SITE, got {text!r}")
    return text


def cmd_web(args: argparse.Namespace) -> int:
    import threading

    from services.common.lifecycle import StopSignals
    from services.web.server import serve

    vhosts = dict(v.split("=", 1) for v in args.vhost)
    srv = serve(args.listen, args.name, args.site, vhosts)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"web {args.name} ({args.site}) on {args.listen[0]}:{args.listen[1]}", flush=True)
    StopSignals().wait()
    srv.shutdown()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("gslb", help="health-checked, load-distributing DNS (GSLB)")
    gsub = g.add_subparsers(dest="gslb_cmd", required=True)
    p = gsub.add_parser("serve", help="answer the config's names from healthy members")
    p.add_argument("--config", type=Path, required=True, help="GSLB config (YAML)")
    p.add_argument("--listen", action="append", type=endpoint_arg, metavar="ADDR[:PORT]")
    p.add_argument("--control", type=Path, help="control socket (infralab gslb status)")
    p.add_argument("--decision-log", type=Path, help="JSON lines: every selection and why")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N processes on the same address (SO_REUSEPORT), each with its own "
                        "health checks; status is worker 0's (worker i logs to LOG.i)")
    p.set_defaults(fn=cmd_serve)
    p = gsub.add_parser("check", help="validate a GSLB config without serving it")
    p.add_argument("config", type=Path)
    p.set_defaults(fn=cmd_check)
    p = gsub.add_parser("status", help="members' health, RTTs and events of a running GSLB")
    p.add_argument("--control", type=Path, required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    w = sub.add_parser("web", help="the data centres' web server and site agent")
    wsub = w.add_subparsers(dest="web_cmd", required=True)
    p = wsub.add_parser("serve", help="HTTP: who answered, /health, /status, /rtt, /admin/mode")
    p.add_argument("--listen", type=lambda t: endpoint_arg(t if ":" in t else t + ":80"),
                   required=True, metavar="ADDR[:PORT]")
    p.add_argument("--name", required=True)
    p.add_argument("--site", default="default")
    p.add_argument("--vhost", action="append", default=[], metavar="NAME=SITE",
                   type=_vhost, help="answer / for Host: NAME as site SITE (again for more "
                   "names on the one address)")
    p.set_defaults(fn=cmd_web)
