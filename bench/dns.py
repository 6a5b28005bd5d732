"""DNS benchmarks against real peers in the same run (loopback, root namespace).

    authoritative qps   infralab dns serve  vs  NSD (rrl off)  and  dnslib DNSServer+ZoneResolver,
                        hot (a few names again and again) and cold (300,000 names, each once,
                        under a wildcard and a delegation)
    resolver qps        infralab LDNS vs Unbound (one thread): cache hits, and misses (every
                        query a new name; NSD is the authoritative server behind both)
    zone load           infralab dns serve with a 1M-record zone (time to listening, RSS)
                        vs nsd-checkzone on the same file

Each server is pinned to CPU 0 and dnsperf (-c 10) to CPU 1. Every process is started
here and ended by its PID; nothing leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import stats
from bench.stats import header, interleave, row, summary
from emulation.build import wait_for
from infralab.peers import nsd_conf
from topologies import ZONES

NAMES = [("www.example.com", "A"), ("web.example.com", "A"), ("example.com", "MX"),
         ("mail.example.com", "A"), ("nope.example.com", "A"), ("example.com", "NS")]
PY = sys.executable
COLD_NAMES = 300_000
COLD_ZONE = """$ORIGIN cold.test.
$TTL 300
@ SOA ns1 hm 1 60 10 120 30
  NS ns1
  NS ns2
ns1 A 127.0.0.1
ns2 A 127.0.0.2
*.wild A 198.51.100.7
sub NS ns.sub
ns.sub A 198.18.2.9
"""
MISS_ROOT = """$ORIGIN .
$TTL 86400
@ SOA ns.root. h.root. 1 1800 900 604800 3600
@ NS ns.root.
ns.root. A 127.0.0.5
*.miss.example. 300 A 198.51.100.7
"""
MISS_NAMES = 200_000  # per measurement, each a name no run asked before
BIG_RECORDS = 1_000_000

DNSLIB_SERVER = """
import sys, time
from dnslib.server import DNSServer
from dnslib.zoneresolver import ZoneResolver
r = ZoneResolver(open(sys.argv[1]).read(), glob=False)
s = DNSServer(r, address="127.0.0.1", port=int(sys.argv[2]))
s.start_thread()
while True:
    time.sleep(1)
"""


def listening(port: int, udp: bool = True, addr: str | None = None) -> bool:
    where = f"sport = :{port}" + (f" and src {addr}" if addr else "")
    out = subprocess.run(["ss", "-Hlnu" if udp else "-Hlnt", where],
                         capture_output=True, text=True).stdout
    return bool(out.strip())


@contextlib.contextmanager
def running(cmd: list[str], port: int, log: Path, cpu: int = 0, timeout: float = 20,
            addr: str | None = None) -> Iterator[subprocess.Popen]:
    """Run a server pinned to `cpu` until the block ends; it must listen on UDP `port`
    (on `addr`, when given)."""
    p = subprocess.Popen(["taskset", "-c", str(cpu), *cmd], stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: p.poll() is None and listening(port, addr=addr) or p.poll() is not None,
                 timeout, f"{cmd[0]} on port {port}")
        if p.poll() is not None:
            raise RuntimeError(f"{' '.join(cmd)} exited: {log.read_text()[-500:]}")
        yield p
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def dnsperf(server: str, port: int, qfile: Path, seconds: int, once: bool = False) -> float:
    """Queries/s of dnsperf (-c 10 -q 200) on CPU 1; `once`: one pass through the file at
    most (so no name is asked twice), ending at `seconds` if that comes first."""
    out = subprocess.run(["taskset", "-c", "1", "dnsperf", "-s", server, "-p", str(port), "-d",
                          str(qfile), "-c", "10", "-q", "200", "-l", str(seconds),
                          *(["-n", "1"] if once else [])],
                         capture_output=True, text=True).stdout
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_dns(seconds: int) -> dict:
    """Every server of a comparison runs at once (its own port, CPU 0); dnsperf then asks
    them in turn, RUNS rounds, so each figure is a median of interleaved runs."""
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="infralab-bench-dns-") as tmp, \
            contextlib.ExitStack() as stack:
        d = Path(tmp)
        qfile = d / "queries"
        qfile.write_text("".join(f"{n} {t}\n" for n, t in NAMES))
        cold = d / "cold"
        cold.write_text("".join(f"n{i:06x}.wild.cold.test A\n" if i % 3 else
                                f"h{i:06x}.sub.cold.test A\n" for i in range(COLD_NAMES)))
        (d / "cold.test.zone").write_text(COLD_ZONE)
        zone = ZONES / "example.com.zone"
        # authoritative: ours, NSD, dnslib
        (d / "nsd.conf").write_text(nsd_conf("127.0.0.1@5301", d, {
            "example.com": str(zone), "cold.test": "cold.test.zone"}, d))
        (d / "dnslib_server.py").write_text(DNSLIB_SERVER)
        stack.enter_context(running([PY, "-m", "infralab", "dns", "serve", "--zone-file",
                                     str(zone), "--zone-file", str(d / "cold.test.zone"),
                                     "--listen", "127.0.0.1:5300"], 5300, d / "ours.log"))
        stack.enter_context(running(["nsd", "-d", "-c", str(d / "nsd.conf")], 5301,
                                    d / "nsd.log"))
        stack.enter_context(running([PY, str(d / "dnslib_server.py"), str(zone), "5302"], 5302,
                                    d / "dl.log"))
        def ask(port: int) -> Callable[[], float]:
            return lambda: dnsperf("127.0.0.1", port, qfile, seconds)

        def ask_cold(port: int) -> Callable[[], float]:
            return lambda: dnsperf("127.0.0.1", port, cold, seconds, once=True)

        auth = interleave({"infralab": ask(5300), "nsd": ask(5301), "dnslib": ask(5302)})
        res.update({f"auth_qps.{k}": v for k, v in auth.items()})
        auth = interleave({"infralab": ask_cold(5300), "nsd": ask_cold(5301)})
        res.update({f"auth_cold_qps.{k}": v for k, v in auth.items()})
        # resolver, cache hits: our LDNS and Unbound both resolve from one root server
        root = d / "root.zone"
        root.write_text(". 86400 IN SOA ns.root. h.root. 1 1800 900 604800 3600\n"
                        ". 86400 IN NS ns.root.\nns.root. 86400 IN A 127.0.0.2\n"
                        "www.example.com. 86400 IN A 198.51.100.11\n"
                        "web.example.com. 86400 IN A 198.51.100.12\n"
                        "mail.example.com. 86400 IN A 198.51.100.25\n")
        (d / "hints").write_text(". NS ns.root.\nns.root. A 127.0.0.2\n")
        rq = d / "rqueries"
        rq.write_text("www.example.com A\nweb.example.com A\nmail.example.com A\n")
        (d / "unbound.conf").write_text(
            f'server:\n  interface: 127.0.0.4@5354\n  num-threads: 1\n  username: ""\n'
            f'  chroot: ""\n  directory: "{d}"\n  pidfile: "{d}/unbound.pid"\n'
            f'  root-hints: "{d}/hints"\n  do-not-query-localhost: no\n'
            f'  access-control: 127.0.0.0/8 allow\n  module-config: "iterator"\n'
            f'  qname-minimisation: no\n  use-syslog: no\n  logfile: ""\n'
            f'  ratelimit: 0\n  ip-ratelimit: 0\n'
            f'remote-control:\n  control-enable: no\n')
        stack.enter_context(running([PY, "-m", "infralab", "dns", "serve", "--zone-file",
                                     f".={root}", "--listen", "127.0.0.2:53"], 53,
                                    d / "root.log"))
        stack.enter_context(running([PY, "-m", "infralab", "dns", "resolve", "--root-hints",
                                     str(d / "hints"), "--listen", "127.0.0.3:5353"], 5353,
                                    d / "ldns.log"))
        stack.enter_context(running(["unbound", "-d", "-c", str(d / "unbound.conf")], 5354,
                                    d / "ub.log"))
        dnsperf("127.0.0.3", 5353, rq, 1)  # warm both caches
        dnsperf("127.0.0.4", 5354, rq, 1)
        resolver = interleave({"infralab": lambda: dnsperf("127.0.0.3", 5353, rq, seconds),
                               "unbound": lambda: dnsperf("127.0.0.4", 5354, rq, seconds)})
        res.update({f"resolver_qps.{k}": v for k, v in resolver.items()})
        # resolver misses: NSD serves a root zone with a wildcard; both resolvers start
        # from it, and every measurement asks names no measurement asked before
        (d / "miss").mkdir()
        (d / "miss" / "root.zone").write_text(MISS_ROOT)
        (d / "miss" / "nsd.conf").write_text(nsd_conf("127.0.0.5@53", d / "miss",
                                                      {".": "root.zone"}, d / "miss"))
        (d / "mhints").write_text(". NS ns.root.\nns.root. A 127.0.0.5\n")
        (d / "unbound-miss.conf").write_text(
            (d / "unbound.conf").read_text().replace("127.0.0.4@5354", "127.0.0.7@5356")
            .replace(f"{d}/hints", f"{d}/mhints").replace("unbound.pid", "unbound-miss.pid"))
        stack.enter_context(running(["nsd", "-d", "-c", str(d / "miss" / "nsd.conf")], 53,
                                    d / "nsd-miss.log", cpu=1, addr="127.0.0.5"))
        stack.enter_context(running([PY, "-m", "infralab", "dns", "resolve", "--root-hints",
                                     str(d / "mhints"), "--listen", "127.0.0.6:5355"], 5355,
                                    d / "ldns-miss.log"))
        stack.enter_context(running(["unbound", "-d", "-c", str(d / "unbound-miss.conf")], 5356,
                                    d / "ub-miss.log"))
        batch = iter(range(1000))

        def fresh(server: str, port: int) -> Callable[[], float]:
            def measure() -> float:
                f = d / "mq"
                b = next(batch)
                f.write_text("".join(f"b{b}n{i:06x}.miss.example A\n"
                                     for i in range(MISS_NAMES)))
                return dnsperf(server, port, f, seconds, once=True)
            return measure

        dnsperf("127.0.0.6", 5355, rq, 1)  # the root's NS and address: in both caches
        dnsperf("127.0.0.7", 5356, rq, 1)
        misses = interleave({"infralab": fresh("127.0.0.6", 5355),
                             "unbound": fresh("127.0.0.7", 5356)})
        res.update({f"resolver_miss_qps.{k}": v for k, v in misses.items()})
        # zone load: a 1M-record zone, ours to listening vs nsd-checkzone
        big = d / "big.zone"
        with open(big, "w") as f:
            f.write("$ORIGIN big.test.\n$TTL 300\n@ SOA ns h 1 60 10 120 30\n  NS ns\n"
                    "ns A 10.0.0.1\n")
            for i in range(BIG_RECORDS):
                f.write(f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
        got: dict[str, list[float]] = {}
        for _ in range(stats.RUNS):
            t0 = time.monotonic()
            with running([PY, "-m", "infralab", "dns", "serve", "--zone-file", str(big),
                          "--listen", "127.0.0.1:5305"], 5305, d / "big.log", timeout=300) as p:
                got.setdefault("load_s.infralab", []).append(time.monotonic() - t0)
                got.setdefault("rss_mb.infralab", []).append(rss_kb(p.pid) / 1024)
            t0 = time.monotonic()
            nsd = subprocess.Popen(["taskset", "-c", "0", "nsd-checkzone", "big.test", str(big)],
                                   stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(nsd.pid, 0)
            nsd.returncode = os.waitstatus_to_exitcode(status)
            if nsd.returncode != 0:
                raise RuntimeError("nsd-checkzone refused the 1M-record zone")
            got.setdefault("load_s.nsd", []).append(time.monotonic() - t0)
            got.setdefault("rss_mb.nsd", []).append(usage.ru_maxrss / 1024)
        res.update({f"big_zone_{k}": summary(v) for k, v in got.items()})
    return res


def report(res: dict) -> None:
    print(header())
    for title, key, peer, target, name in (
            ("authoritative qps, hot", "auth_qps", "nsd", 1.0, "NSD, rrl off"),
            ("authoritative qps, hot", "auth_qps", "dnslib", 25, "dnslib DNSServer+ZoneResolver"),
            ("authoritative qps, cold (300k names)", "auth_cold_qps", "nsd", 0.5,
             "NSD, rrl off"),
            ("resolver qps (cache hits)", "resolver_qps", "unbound", 0.3,
             "Unbound, one thread"),
            ("resolver qps (every name new)", "resolver_miss_qps", "unbound", 0.3,
             "Unbound, one thread")):
        print(row(title, res[f"{key}.infralab"], res[f"{key}.{peer}"], name, target=target))
    print(row(f"{BIG_RECORDS:,}-record zone: load, s", res["big_zone_load_s.infralab"],
              res["big_zone_load_s.nsd"], "nsd-checkzone", digits=1, lower_is_better=True))
    print(row("same: memory, MB", res["big_zone_rss_mb.infralab"],
              res["big_zone_rss_mb.nsd"], "nsd-checkzone (max RSS)", lower_is_better=True))
