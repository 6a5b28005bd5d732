"""`infralab dns ...`: the DNS services and tools as plain command-line programs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.dns.server import AuthServer, control_request, parse_endpoint, run_until_signal


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


def _endpoint(text: str) -> tuple[str, int]:
    try:
        return parse_endpoint(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.zone_file and not args.secondary:
        print("infralab dns serve: give at least one --zone-file or --secondary", file=sys.stderr)
        return 2
    server = AuthServer(args.zone_file, args.secondary, args.listen or [("0.0.0.0", 53)],
                        allow_transfer=args.allow_transfer, notify=args.notify,
                        state_dir=args.state_dir, control=args.control,
                        rotate=not args.no_rotate, log=_log)
    return run_until_signal(server, on_hup=server.reload)


def cmd_ctl(args: argparse.Namespace) -> int:
    answer = control_request(args.control, " ".join(args.words))
    print(json.dumps(answer, indent=2) if not isinstance(answer, str) else answer)
    return 1 if isinstance(answer, str) and answer.startswith(("error", "unknown")) else 0


def register(sub: argparse._SubParsersAction) -> None:
    dns = sub.add_parser("dns", help="DNS servers and tools (infralab dns --help)")
    dsub = dns.add_subparsers(dest="dns_cmd", required=True)
    p = dsub.add_parser("serve", help="authoritative server (primary and secondary zones)")
    p.add_argument("--zone-file", action="append", type=_zone_arg, default=[],
                   metavar="[ORIGIN=]FILE", help="a primary zone (RFC 1035 master file)")
    p.add_argument("--secondary", action="append", type=_secondary_arg, default=[],
                   metavar="ZONE=MASTER[:PORT]", help="a secondary zone pulled from MASTER")
    p.add_argument("--listen", action="append", type=_endpoint, metavar="ADDR[:PORT]",
                   help="UDP+TCP address (repeatable; default 0.0.0.0:53)")
    p.add_argument("--allow-transfer", action="append", default=[], metavar="CIDR",
                   help="who may AXFR/IXFR (default: nobody)")
    p.add_argument("--notify", action="append", type=_endpoint, default=[],
                   metavar="ADDR[:PORT]", help="send NOTIFY here when a zone changes")
    p.add_argument("--state-dir", type=Path, help="where secondary copies are kept")
    p.add_argument("--control", type=Path, help="control socket (infralab dns ctl)")
    p.add_argument("--no-rotate", action="store_true", help="keep RRset order (no round robin)")
    p.set_defaults(fn=cmd_serve)
    p = dsub.add_parser("ctl", help="talk to a running server: stats | reload | promote ZONE")
    p.add_argument("--control", type=Path, required=True)
    p.add_argument("words", nargs="+")
    p.set_defaults(fn=cmd_ctl)
