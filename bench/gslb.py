"""GSLB benchmarks against real peers in the same run (loopback, root namespace).

    answer qps     infralab gslb serve (HTTP health checks running, 3 members)
                   vs infralab dns serve (the same name as 3 static A records)
                   vs PowerDNS 4 with a LUA `ifportup` record over the same 3 members
    failover       a member's web server is stopped: seconds until the GSLB stops naming
                   it, plus the TTL a resolver may keep it, vs interval x fall + TTL + 1

Servers on CPU 0, dnsperf (-c 10) on CPU 1; every process ended by its PID.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dnslib import DNSRecord

from bench.dns import dnsperf, running
from emulation.build import wait_for

PY = sys.executable
MEMBERS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
INTERVAL, FALL, TTL = 1.0, 2, 5


def gslb_config(d: Path) -> Path:
    members = "\n".join(f"      - {{name: w{i}, address: {a}, site: dc1}}"
                        for i, a in enumerate(MEMBERS))
    f = d / "gslb.yaml"
    f.write_text(f"zone: gslb.example.com\nns: {{ns.gslb.example.com.: 127.0.0.1}}\n"
                 f"ttl: {TTL}\npools:\n  web:\n    algorithm: round-robin\n    answers: 3\n"
                 f"    check: {{type: http, port: 8080, path: /health, interval: {INTERVAL}, "
                 f"timeout: 0.5, rise: 1, fall: {FALL}}}\n    members:\n{members}\n"
                 f"names: {{www: web}}\n")
    return f


def answers(port: int) -> set[str]:
    q = DNSRecord.question("www.gslb.example.com", "A")
    try:
        r = DNSRecord.parse(q.send("127.0.0.1", port, timeout=1))
    except Exception:
        return set()
    return {str(rr.rdata) for rr in r.rr}


def bench_gslb(seconds: int) -> dict:
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="infralab-bench-gslb-") as tmp:
        d = Path(tmp)
        webs = [subprocess.Popen([PY, "-m", "infralab", "web", "serve", "--listen", f"{a}:8080",
                                  "--name", f"w{i}"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for i, a in enumerate(MEMBERS)]
        try:
            qfile = d / "q"
            qfile.write_text("www.gslb.example.com A\n")
            with running([PY, "-m", "infralab", "gslb", "serve", "--config", str(gslb_config(d)),
                          "--listen", "127.0.0.1:5320"], 5320, d / "gslb.log"):
                wait_for(lambda: len(answers(5320)) == 3, 10, "the GSLB to answer")
                res["gslb_qps.infralab"] = dnsperf("127.0.0.1", 5320, qfile, seconds)
            zone = d / "static.zone"
            zone.write_text("$ORIGIN gslb.example.com.\n$TTL 5\n@ SOA ns h 1 60 10 120 5\n"
                            "@ NS ns\nns A 127.0.0.1\n"
                            + "".join(f"www A {a}\n" for a in MEMBERS))
            with running([PY, "-m", "infralab", "dns", "serve", "--zone-file", str(zone),
                          "--listen", "127.0.0.1:5321"], 5321, d / "static.log"):
                res["gslb_qps.static"] = dnsperf("127.0.0.1", 5321, qfile, seconds)
            lua = d / "lua.zone"
            members = ", ".join(f"'{a}'" for a in MEMBERS)
            lua.write_text("$ORIGIN gslb.example.com.\n$TTL 5\n@ SOA ns h 1 60 10 120 5\n"
                           f"@ NS ns\nns A 127.0.0.1\nwww IN LUA A \"ifportup(8080, "
                           f"{{{members}}})\"\n")
            (d / "named.conf").write_text(f'zone "gslb.example.com" {{ file "{lua}"; }};\n')
            (d / "pdns.conf").write_text(
                f"launch=bind\nbind-config={d}/named.conf\nlocal-address=127.0.0.1\n"
                f"local-port=5322\nsocket-dir={d}\nguardian=no\ndaemon=no\n"
                "disable-syslog=yes\nenable-lua-records=yes\nreceiver-threads=1\n"
                "distributor-threads=1\nsetuid=\nsetgid=\n")
            with running(["pdns_server", f"--config-dir={d}"], 5322, d / "pdns.log"):
                wait_for(lambda: answers(5322), 10, "PowerDNS to answer")
                res["gslb_qps.powerdns"] = dnsperf("127.0.0.1", 5322, qfile, seconds)
            # failover: stop one member, time until the GSLB no longer names it
            with running([PY, "-m", "infralab", "gslb", "serve", "--config", str(gslb_config(d)),
                          "--listen", "127.0.0.1:5323"], 5323, d / "gslb2.log"):
                wait_for(lambda: len(answers(5323)) == 3, 10, "the GSLB to answer")
                webs[0].terminate()
                webs[0].wait()
                t0 = time.monotonic()
                wait_for(lambda: MEMBERS[0] not in answers(5323) and answers(5323), 20,
                         "the stopped member to be withdrawn", interval=0.02)
                res["failover_detect_s"] = time.monotonic() - t0
                res["failover_s"] = res["failover_detect_s"] + TTL
                res["failover_bound_s"] = INTERVAL * FALL + TTL + 1
        finally:
            for w in webs:
                if w.poll() is None:
                    w.terminate()
                    w.wait()
    return res


def report(res: dict) -> None:
    print(f"\n{'measure':<34}{'infralab':>11}{'peer':>11}{'ratio':>8}{'target':>8}  peer")
    for peer, target in (("static", 0.5), ("powerdns", 1.0)):
        ours, theirs = res["gslb_qps.infralab"], res[f"gslb_qps.{peer}"]
        ratio = ours / theirs if theirs else float("nan")
        name = {"static": "our static auth", "powerdns": "PowerDNS LUA ifportup"}[peer]
        print(f"{'GSLB answers/s, checks running':<34}{ours:>11.0f}{theirs:>11.0f}{ratio:>8.2f}"
              f"{target:>8}  {name}")
    print(f"failover: withdrawn {res['failover_detect_s']:.1f} s after the kill, + TTL {TTL} s "
          f"= {res['failover_s']:.1f} s (bound interval x fall + TTL + 1 = "
          f"{res['failover_bound_s']:.0f} s)")
