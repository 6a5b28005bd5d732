"""Run the infralab controller as its own process (`infralab controller --plan F`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="infralab controller",
                                 description="os-ken controller for an infralab topology")
    ap.add_argument("--plan", required=True, help="wiring plan JSON written by infralab up")
    ap.add_argument("--port", type=int, default=6653, help="OpenFlow listen port")
    ap.add_argument("--listen", default="127.0.0.1", help="OpenFlow listen address")
    ap.add_argument("--status", default=None, help="status JSON file to keep up to date")
    ap.add_argument("--api", default=None, metavar="HOST:PORT",
                    help="serve the NAT tables as JSON over HTTP here (e.g. 127.0.0.1:8650)")
    ap.add_argument("--nat-log", default=None, help="append NAT create/expire/refusal "
                    "events to this file (JSON lines)")
    ap.add_argument("--nat-state", default=None, help="NAT state journal: appended while "
                    "running, replayed at start (a restarted controller keeps the bindings)")
    ap.add_argument("--settings", default=None, help="live changes made through the API "
                    "(NAT behaviour, relay switches): written on each change, applied at "
                    "start (a restarted controller keeps them)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    os.environ["INFRALAB_PLAN"] = os.path.abspath(args.plan)
    if args.status:
        os.environ["INFRALAB_STATUS"] = os.path.abspath(args.status)
    if args.api:
        os.environ["INFRALAB_API"] = args.api
    if args.nat_log:
        os.environ["INFRALAB_NATLOG"] = os.path.abspath(args.nat_log)
    if args.nat_state:
        os.environ["INFRALAB_NATSTATE"] = os.path.abspath(args.nat_state)
    if args.settings:
        os.environ["INFRALAB_SETTINGS"] = os.path.abspath(args.settings)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from os_ken.lib import hub

    hub.patch(thread=False)
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    cfg.CONF(args=["--ofp-tcp-listen-port", str(args.port), "--ofp-listen-host", args.listen],
             project="os_ken")
    # eventlet's hub swallows SystemExit raised in a handler; nothing here needs flushing
    # (the status file is rewritten atomically), so leave at once.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    from controllers.openflow import use_lean_parsers

    use_lean_parsers()
    try:
        AppManager.run_apps(["controllers.app"])
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
