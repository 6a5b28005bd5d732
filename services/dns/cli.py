"""`infralab dns ...`: the DNS services and tools as plain command-line programs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from services.common.control import control_request
from services.common.endpoint import endpoint_arg, parse_endpoint
from services.common.workers import run_workers, worker_log
from services.dns.rrl import RateLimiter
from services.dns.server import AuthServer
from topologies import ZONES


def _log(msg: str) -> None:
    print(msg, flush=True)


def _zone_arg(text: str) -> tuple[str | None, Path]:
    """'PATH' or 'ORIGIN=PATH'."""
    origin, sep, path = text.partition("=")
    return (origin, Path(path)) if sep else (None, Path(text))


def _secondary_arg(text: str) -> tuple[str, list[tuple[str, int]]]:
    """'ZONE=MASTER[:PORT][,MASTER...]'."""
    zone, sep, masters = text.partition("=")
    if not sep or not masters:
        raise argparse.ArgumentTypeError(f"--secondary {text!r}: want ZONE=MASTER[:PORT]")
    return zone, [parse_endpoint(m) for m in masters.split(",")]


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.zone_file and not args.secondary:
        print("infralab dns serve: give at least one --zone-file or --secondary", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("infralab dns serve: --workers must be at least 1", file=sys.stderr)
        return 2

    def make(worker: int) -> AuthServer:
        log = worker_log(worker, _log)
        return AuthServer(args.zone_file, args.secondary, args.listen or [("0.0.0.0", 53)],
                          allow_transfer=args.allow_transfer,
                          notify=args.notify if worker == 0 else [],
                          state_dir=(args.state_dir / f"worker{worker}")
                          if args.state_dir and worker else args.state_dir,
                          control=args.control if worker == 0 else None,
                          rotate=not args.no_rotate, log=log,
                          rrl=RateLimiter(args.rrl, args.rrl_slip) if args.rrl else None,
                          reuse_port=args.workers > 1)

    return run_workers(args.workers, make, wait_loaded=args.wait_loaded)


def cmd_ctl(args: argparse.Namespace) -> int:
    answer = control_request(args.control, " ".join(args.words))
    print(json.dumps(answer, indent=2) if not isinstance(answer, str) else answer)
    return 1 if isinstance(answer, str) and answer.startswith(("error", "unknown")) else 0


def cmd_resolve(args: argparse.Namespace) -> int:
    import asyncio

    from services.dns.ldns import Ldns, Upstream, serve
    from services.dns.resolver import Resolver, read_root_hints

    stats: Counter = Counter()
    upstream = Upstream(stats=stats, predictable=args.predictable_ids,
                        fixed_source_port=args.fixed_source_port)
    resolver = Resolver(read_root_hints(args.root_hints), upstream,
                        check_bailiwick=not args.no_bailiwick)
    ldns = Ldns(resolver, args.query_log, stats)
    asyncio.run(serve(ldns, args.listen or [("0.0.0.0", 53)], args.control))
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    from services.dns import stub

    hosts, cache, resolv = stub.default_paths()
    r = stub.lookup(args.name, args.hosts or hosts, args.cache or cache, args.resolv or resolv,
                    args.server)
    print(f"{r.name}: {' '.join(r.addresses) or '-'}")
    print(f"  answered by: {r.source}" + (f" ({r.detail})" if r.detail else ""))
    return 0 if r.addresses else 1


def cmd_trace(args: argparse.Namespace) -> int:
    import asyncio
    import socket

    from dnslib import QTYPE, RCODE

    from services.dns.ldns import Upstream
    from services.dns.resolver import Resolver, read_root_hints
    from services.dns.trace import ladder

    hints = [("root.", args.root)] if args.root else read_root_hints(args.root_hints)
    resolver = Resolver(hints, Upstream())
    res = asyncio.run(resolver.resolve(args.name, getattr(QTYPE, args.type.upper())))
    if args.json:  # the same resolution as data (the live view draws it)
        print(json.dumps({"name": args.name, "type": args.type.upper(),
                          "rcode": RCODE.get(res.rcode),
                          "steps": [s.__dict__ for s in res.steps],
                          "answer": [f"{r.rname} {r.ttl} {QTYPE[r.rtype]} {r.rdata}"
                                     for r in res.answer]}))
        return 0 if res.rcode == RCODE.NOERROR and res.answer else 1
    me = os.environ.get("INFRALAB_HOST") or socket.gethostname()
    print(ladder(me, res.steps, f"resolving {args.name} {args.type.upper()} from the root "
                                f"({', '.join(a for _, a in hints)})"))
    print(f"result: {RCODE.get(res.rcode)}")
    for rr in res.answer:
        print(f"  {rr.rname} {rr.ttl} {QTYPE[rr.rtype]} {rr.rdata}")
    return 0 if res.rcode == RCODE.NOERROR and res.answer else 1


def cmd_querylog(args: argparse.Namespace) -> int:
    from services.dns.trace import querylog_entry

    lines = args.file.read_text().splitlines()[-args.last:]
    for line in lines:
        print(querylog_entry(json.loads(line)))
        print()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    dns = sub.add_parser("dns", help="DNS servers and tools (infralab dns --help)")
    dsub = dns.add_subparsers(dest="dns_cmd", required=True)
    p = dsub.add_parser("serve", help="authoritative server (primary and secondary zones)")
    p.add_argument("--zone-file", action="append", type=_zone_arg, default=[],
                   metavar="[ORIGIN=]FILE", help="a primary zone (RFC 1035 master file)")
    p.add_argument("--secondary", action="append", type=_secondary_arg, default=[],
                   metavar="ZONE=MASTER[:PORT]", help="a secondary zone pulled from MASTER")
    p.add_argument("--listen", action="append", type=endpoint_arg, metavar="ADDR[:PORT]",
                   help="UDP+TCP address (repeatable; default 0.0.0.0:53)")
    p.add_argument("--allow-transfer", action="append", default=[], metavar="CIDR",
                   help="who may AXFR/IXFR (default: nobody)")
    p.add_argument("--notify", action="append", type=endpoint_arg, default=[],
                   metavar="ADDR[:PORT]", help="send NOTIFY here when a zone changes")
    p.add_argument("--state-dir", type=Path, help="where secondary copies are kept")
    p.add_argument("--control", type=Path, help="control socket (infralab dns ctl)")
    p.add_argument("--wait-loaded", type=float, default=0.0, metavar="SECONDS",
                   help="let secondary zones load (up to SECONDS) before listening")
    p.add_argument("--no-rotate", action="store_true", help="keep RRset order (no round robin)")
    p.add_argument("--rrl", type=float, metavar="PER_SECOND",
                   help="response rate limit per client /24 (amplification defence)")
    p.add_argument("--rrl-slip", type=int, default=2, metavar="N",
                   help="with --rrl: every N-th limited answer goes out truncated (0: none)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N processes on the same address (SO_REUSEPORT), one per core "
                        "(as NSD's server-count); stats are worker 0's")
    p.set_defaults(fn=cmd_serve)
    p = dsub.add_parser("resolve", help="recursive resolver (LDNS) from root hints")
    p.add_argument("--root-hints", required=True, help="named.root-style file: NS + A")
    p.add_argument("--listen", action="append", type=endpoint_arg, metavar="ADDR[:PORT]")
    p.add_argument("--query-log", type=Path, help="JSON lines, one per client query")
    p.add_argument("--control", type=Path, help="control socket: stats | cache | flush [NAME]")
    p.add_argument("--no-bailiwick", action="store_true",
                   help="UNSAFE: believe out-of-bailiwick records (poisoning demo)")
    p.add_argument("--predictable-ids", action="store_true",
                   help="UNSAFE: sequential query IDs (poisoning demo)")
    p.add_argument("--fixed-source-port", type=int, default=0, metavar="PORT",
                   help="UNSAFE: every upstream query from this port (poisoning demo)")
    p.set_defaults(fn=cmd_resolve)
    p = dsub.add_parser("lookup", help="host lookup: hosts file, local cache, then the LDNS")
    p.add_argument("name")
    p.add_argument("--hosts", type=Path)
    p.add_argument("--cache", type=Path)
    p.add_argument("--resolv", type=Path)
    p.add_argument("--server", help="LDNS address (default: from resolv.conf)")
    p.set_defaults(fn=cmd_lookup)
    p = dsub.add_parser("trace", help="resolve iteratively from the root, print the ladder")
    p.add_argument("name")
    p.add_argument("type", nargs="?", default="A")
    p.add_argument("--root-hints", default=str(ZONES / "root.hints"))
    p.add_argument("--root", help="root server address (instead of --root-hints)")
    p.add_argument("--json", action="store_true", help="the steps as JSON, not a ladder")
    p.set_defaults(fn=cmd_trace)
    p = dsub.add_parser("querylog", help="print an LDNS query log as ladders")
    p.add_argument("file", type=Path)
    p.add_argument("--last", type=int, default=10)
    p.set_defaults(fn=cmd_querylog)
    p = dsub.add_parser("ctl", help="talk to a running server: stats | reload | promote ZONE")
    p.add_argument("--control", type=Path, required=True)
    p.add_argument("words", nargs="+")
    p.set_defaults(fn=cmd_ctl)
