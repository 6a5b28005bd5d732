"""GSLB benchmarks against real peers in the same run (loopback, root namespace).

    answer qps     infralab gslb serve (HTTP health checks running, 3 members)
                   vs infralab dns serve (the same names as 3 static A records)
                   vs PowerDNS 4 with a LUA `ifportup` record over the same 3 members,
                      one receiver/distributor thread and four of each
                   with one name from one client, and with 300,000 names from 4 clients
    failover       a member's web server is stopped: seconds until the GSLB stops naming
                   it, vs interval x fall + timeout

Servers on CPU 0, dnsperf (-c 10) on CPU 1; every process ended by its PID.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from dnslib import DNSRecord

from bench import stats
from bench.dns import dnsperf, running
from bench.stats import header, interleave, row, show, summary
from emulation.build import wait_for

PY = sys.executable
MEMBERS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
INTERVAL, FALL, TTL, TIMEOUT = 1.0, 2, 5, 0.5
MANY_SOURCES, MANY_NAMES = 4, 75_000  # the many-clients workload: 300,000 names


def gslb_config(d: Path) -> Path:
    members = "\n".join(f"      - {{name: w{i}, address: {a}, site: dc1}}"
                        for i, a in enumerate(MEMBERS))
    f = d / "gslb.yaml"
    f.write_text(f"zone: gslb.example.com\nns: {{ns.gslb.example.com.: 127.0.0.1}}\n"
                 f"ttl: {TTL}\npools:\n  web:\n    algorithm: round-robin\n    answers: 3\n"
                 f"    check: {{type: http, port: 8080, path: /health, interval: {INTERVAL}, "
                 f"timeout: {TIMEOUT}, rise: 1, fall: {FALL}}}\n    members:\n{members}\n"
                 f"names: {{www: web, \"*\": web}}\n")
    return f


def answers(port: int) -> set[str]:
    q = DNSRecord.question("www.gslb.example.com", "A")
    try:
        r = DNSRecord.parse(q.send("127.0.0.1", port, timeout=1))
    except Exception:
        return set()
    return {str(rr.rdata) for rr in r.rr}


def pdns_conf(d: Path, name: str, zone: Path, port: int, threads: int) -> Path:
    conf = d / name
    conf.mkdir()
    (conf / "named.conf").write_text(f'zone "gslb.example.com" {{ file "{zone}"; }};\n')
    (conf / "pdns.conf").write_text(
        f"launch=bind\nbind-config={conf}/named.conf\nlocal-address=127.0.0.1\n"
        f"local-port={port}\nsocket-dir={conf}\nguardian=no\ndaemon=no\n"
        "disable-syslog=yes\nenable-lua-records=yes\n"
        f"receiver-threads={threads}\ndistributor-threads={threads}\nsetuid=\nsetgid=\n")
    return conf


def many(port: int, qdir: Path, seconds: int) -> float:
    """MANY_SOURCES dnsperf clients at once, each from its own loopback address with its
    own MANY_NAMES names: answers/s of them all (a cache keyed by query and asker sees
    almost only misses)."""
    procs = [subprocess.Popen(
        ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-a",
         f"127.0.1.{i + 1}", "-d", str(qdir / f"q{i}"), "-c", "2", "-q", "50", "-l",
         str(seconds)], stdout=subprocess.PIPE, text=True) for i in range(MANY_SOURCES)]
    total = 0.0
    for p in procs:
        out = p.communicate(timeout=seconds + 30)[0]
        m = re.search(r"Queries per second:\s+([\d.]+)", out)
        total += float(m.group(1)) if m else 0.0
    return total


def bench_gslb(seconds: int) -> dict:
    """Every server runs at once (its own port, CPU 0); dnsperf asks them in turn, RUNS
    rounds: one name from one client (the answer cache's best case), then many names
    from many clients (its worst)."""
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="infralab-bench-gslb-") as tmp, \
            contextlib.ExitStack() as stack:
        d = Path(tmp)
        webs = [subprocess.Popen([PY, "-m", "infralab", "web", "serve", "--listen", f"{a}:8080",
                                  "--name", f"w{i}"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for i, a in enumerate(MEMBERS)]
        try:
            qfile = d / "q"
            qfile.write_text("www.gslb.example.com A\n")
            qdir = d / "many"
            qdir.mkdir()
            for i in range(MANY_SOURCES):
                (qdir / f"q{i}").write_text("".join(f"n{i}x{k}.gslb.example.com A\n"
                                                    for k in range(MANY_NAMES)))
            zone = d / "static.zone"
            zone.write_text("$ORIGIN gslb.example.com.\n$TTL 5\n@ SOA ns h 1 60 10 120 5\n"
                            "@ NS ns\nns A 127.0.0.1\n"
                            + "".join(f"www A {a}\n*.gslb.example.com. A {a}\n"
                                      for a in MEMBERS))
            lua = d / "lua.zone"
            members = ", ".join(f"'{a}'" for a in MEMBERS)
            record = f"IN LUA A \"ifportup(8080, {{{members}}})\""
            lua.write_text("$ORIGIN gslb.example.com.\n$TTL 5\n@ SOA ns h 1 60 10 120 5\n"
                           f"@ NS ns\nns A 127.0.0.1\nwww {record}\n* {record}\n")
            stack.enter_context(running([PY, "-m", "infralab", "gslb", "serve", "--config",
                                         str(gslb_config(d)), "--listen", "127.0.0.1:5320"],
                                        5320, d / "gslb.log"))
            stack.enter_context(running([PY, "-m", "infralab", "dns", "serve", "--zone-file",
                                         str(zone), "--listen", "127.0.0.1:5321"], 5321,
                                        d / "static.log"))
            for name, port, threads in (("pdns1", 5322, 1), ("pdns4", 5324, 4)):
                conf = pdns_conf(d, name, lua, port, threads)
                stack.enter_context(running(["pdns_server", f"--config-dir={conf}"], port,
                                            d / f"{name}.log"))
            wait_for(lambda: len(answers(5320)) == 3, 10, "the GSLB to answer")
            for port in (5322, 5324):  # (ifportup's default selector names one member)
                wait_for(partial(answers, port), 10, f"PowerDNS on {port} to answer")
            servers = {"infralab": 5320, "static": 5321, "powerdns": 5322, "powerdns_mt": 5324}
            def one_name(port: int) -> Callable[[], float]:
                return lambda: dnsperf("127.0.0.1", port, qfile, seconds)

            def many_names(port: int) -> Callable[[], float]:
                return lambda: many(port, qdir, seconds)

            one = interleave({k: one_name(p) for k, p in servers.items()})
            res.update({f"gslb_qps.{k}": v for k, v in one.items()})
            spread = interleave({k: many_names(p) for k, p in servers.items()})
            res.update({f"gslb_many_qps.{k}": v for k, v in spread.items()})
            # failover: stop one member, time until the GSLB no longer names it; restart it
            # and wait until it is named again before the next round
            times = []
            for _ in range(stats.RUNS):
                wait_for(lambda: len(answers(5320)) == 3, 20, "every member up")
                webs[0].terminate()
                webs[0].wait()
                t0 = time.monotonic()
                wait_for(lambda: MEMBERS[0] not in answers(5320) and answers(5320), 20,
                         "the stopped member to be withdrawn", interval=0.02)
                times.append(time.monotonic() - t0)
                webs[0] = subprocess.Popen([PY, "-m", "infralab", "web", "serve", "--listen",
                                            f"{MEMBERS[0]}:8080", "--name", "w0"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res["failover_detect_s"] = summary(times)
            res["failover_bound_s"] = INTERVAL * FALL + TIMEOUT
        finally:
            for w in webs:
                if w.poll() is None:
                    w.terminate()
                    w.wait()
    return res


def report(res: dict) -> None:
    print(header())
    for key, what in (("gslb_qps", "one name, one client"),
                      ("gslb_many_qps", f"{MANY_SOURCES * MANY_NAMES:,} names, "
                                        f"{MANY_SOURCES} clients")):
        many = key == "gslb_many_qps"  # (the target: >= 10x PowerDNS where every name is new)
        for peer, target, name in (("static", 0.5, "our static auth (same names)"),
                                   ("powerdns", 10.0 if many else 1.0,
                                    "PowerDNS LUA ifportup, 1 thread"),
                                   ("powerdns_mt", None, "PowerDNS LUA ifportup, 4+4 threads")):
            print(row(f"answers/s, {what}", res[f"{key}.infralab"], res[f"{key}.{peer}"], name,
                      target=target))
    print(f"failover: withdrawn {show(res['failover_detect_s'], 2)} s after the member's "
          f"server stopped (bound interval x fall + timeout = {res['failover_bound_s']:.1f} s;"
          f" a resolver may keep the old answer for the TTL, {TTL} s, more)")
