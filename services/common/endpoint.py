"""Parsing the IP[:PORT] endpoints every service takes on its command line."""

from __future__ import annotations

import argparse
import ipaddress


def parse_endpoint(text: str, default_port: int = 53) -> tuple[str, int]:
    """'1.2.3.4', '1.2.3.4:5353' -> (host, port)."""
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not host:
        host, port = text, ""
    try:
        ipaddress.ip_address(host)
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"bad address {text!r}: want IP or IP:PORT") from None


def endpoint_arg(text: str) -> tuple[str, int]:
    """`parse_endpoint` as an argparse type: a bad value is a usage error, not a traceback."""
    try:
        return parse_endpoint(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
