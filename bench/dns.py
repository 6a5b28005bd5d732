"""DNS benchmarks against real peers in the same run (loopback, root namespace).

    authoritative qps   infralab dns serve  vs  NSD (rrl off)  and  dnslib DNSServer+ZoneResolver
    resolver qps        infralab LDNS (cache hits)  vs  Unbound (one thread, cache hits)
    memory              infralab dns serve RSS with a 100k-record zone

Each server is pinned to CPU 0 and dnsperf (-c 10) to CPU 1. Every process is started
here and ended by its PID; nothing leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import stats
from bench.stats import header, interleave, row, show, summary
from emulation.build import wait_for
from infralab.peers import nsd_conf
from topologies import ZONES

NAMES = [("www.example.com", "A"), ("web.example.com", "A"), ("example.com", "MX"),
         ("mail.example.com", "A"), ("nope.example.com", "A"), ("example.com", "NS")]
PY = sys.executable

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


def listening(port: int, udp: bool = True) -> bool:
    out = subprocess.run(["ss", "-Hlnu" if udp else "-Hlnt", f"sport = :{port}"],
                         capture_output=True, text=True).stdout
    return bool(out.strip())


@contextlib.contextmanager
def running(cmd: list[str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """Run a server pinned to CPU 0 until the block ends; it must listen on UDP `port`."""
    p = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: p.poll() is None and listening(port) or p.poll() is not None, 20,
                 f"{cmd[0]} on port {port}")
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


def dnsperf(server: str, port: int, qfile: Path, seconds: int) -> float:
    out = subprocess.run(["taskset", "-c", "1", "dnsperf", "-s", server, "-p", str(port), "-d",
                          str(qfile), "-c", "10", "-q", "200", "-l", str(seconds)],
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
        zone = ZONES / "example.com.zone"
        # authoritative: ours, NSD, dnslib
        (d / "nsd.conf").write_text(nsd_conf("127.0.0.1@5301", ZONES,
                                             {"example.com": "example.com.zone"}, d))
        (d / "dnslib_server.py").write_text(DNSLIB_SERVER)
        stack.enter_context(running([PY, "-m", "infralab", "dns", "serve", "--zone-file",
                                     str(zone), "--listen", "127.0.0.1:5300"], 5300,
                                    d / "ours.log"))
        stack.enter_context(running(["nsd", "-d", "-c", str(d / "nsd.conf")], 5301,
                                    d / "nsd.log"))
        stack.enter_context(running([PY, str(d / "dnslib_server.py"), str(zone), "5302"], 5302,
                                    d / "dl.log"))
        def ask(port: int) -> Callable[[], float]:
            return lambda: dnsperf("127.0.0.1", port, qfile, seconds)

        auth = interleave({"infralab": ask(5300), "nsd": ask(5301), "dnslib": ask(5302)})
        res.update({f"auth_qps.{k}": v for k, v in auth.items()})
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
        # memory with a 100k-record zone
        big = d / "big.zone"
        with open(big, "w") as f:
            f.write("$ORIGIN big.test.\n$TTL 300\n@ SOA ns h 1 60 10 120 30\n  NS ns\n"
                    "ns A 10.0.0.1\n")
            for i in range(100_000):
                f.write(f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
        loads, rss = [], []
        for _ in range(stats.RUNS):
            t0 = time.monotonic()
            with running([PY, "-m", "infralab", "dns", "serve", "--zone-file", str(big),
                          "--listen", "127.0.0.1:5305"], 5305, d / "big.log") as p:
                loads.append(time.monotonic() - t0)
                rss.append(rss_kb(p.pid) / 1024)
        res["big_zone_load_s"], res["big_zone_rss_mb"] = summary(loads), summary(rss)
    return res


def report(res: dict) -> None:
    print(header())
    for title, key, peer, target, name in (
            ("authoritative qps", "auth_qps", "nsd", 0.5, "NSD, rrl off"),
            ("authoritative qps", "auth_qps", "dnslib", 25, "dnslib DNSServer+ZoneResolver"),
            ("resolver qps (cache hits)", "resolver_qps", "unbound", 0.3,
             "Unbound, one thread")):
        print(row(title, res[f"{key}.infralab"], res[f"{key}.{peer}"], name, target=target))
    print(f"100k-record zone: loaded in {show(res['big_zone_load_s'], 1)} s, "
          f"RSS {show(res['big_zone_rss_mb'])} MB")
