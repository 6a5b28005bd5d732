"""The DNS services as plain programs on the root namespace's loopback, as a user runs
them outside Mininet: DNS-AUTH `--workers N` (several processes on one address share the
queries, a reload reaches them all, none outlives the one that was started, even killed
with SIGKILL) and DNS-RECURSIVE's fast miss path judged by dig."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from dnslib import DNSRecord

from emulation.build import wait_for
from services.common.control import control_request

ZONE = """$ORIGIN workers.test.
$TTL 60
@ SOA ns hm {serial} 60 10 120 30
  NS ns
ns A 127.0.0.1
*.w A {address}
"""


def ask(port: int, name: str) -> str | None:
    """One query from a fresh socket (a new source port: the kernel's spread sees it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(DNSRecord.question(name).pack(), ("127.0.0.1", port))
        try:
            r = DNSRecord.parse(s.recv(4096))
        except TimeoutError:
            return None
    return str(r.rr[0].rdata) if r.rr else ""


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def udp_listeners(port: int) -> int:
    """UDP sockets listening on `port` (one per worker, SO_REUSEPORT), as `ss` lists them."""
    out = subprocess.run(["ss", "-Hlnu", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return len(out.splitlines())


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_dns_auth_workers_share_queries_reload_together_and_end_together(tmp_path):
    zone, ctl = tmp_path / "w.zone", tmp_path / "ctl"
    zone.write_text(ZONE.format(serial=1, address="198.51.100.7"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "infralab", "dns", "serve", "--zone-file",
                          str(zone), "--listen", f"127.0.0.1:{port}", "--workers", "3",
                          "--control", str(ctl)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    workers: list[int] = []
    try:
        wait_for(lambda: ctl.exists() and len(children(p.pid)) == 2, 20, "3 workers")
        workers = children(p.pid)
        # each worker binds once its zones are loaded; before that the others take all
        wait_for(lambda: udp_listeners(port) == 3, 20, "3 workers listening")
        wait_for(lambda: ask(port, "a.w.workers.test") == "198.51.100.7", 10, "answers")
        answers = [ask(port, f"n{i}.w.workers.test") for i in range(60)]
        assert answers == ["198.51.100.7"] * 60
        mine = control_request(ctl, "stats")["stats"]["queries"]
        assert 0 < mine < 61, f"worker 0 answered {mine} of 61: the others took none"
        zone.write_text(ZONE.format(serial=2, address="198.51.100.8"))
        assert control_request(ctl, "reload") == {"reloaded": ["workers.test."]}
        wait_for(lambda: all(ask(port, f"m{i}.w.workers.test") == "198.51.100.8"
                             for i in range(30)), 10, "every worker to reload")
        os.kill(p.pid, signal.SIGKILL)  # worker 0 dies without cleaning up
        p.wait(10)
        wait_for(lambda: not any(alive(w) for w in workers), 10, "the other workers to end")
        assert ask(port, "z.w.workers.test") is None
    finally:
        for pid in [p.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if p.poll() is None:
            p.wait(5)
    out = p.stdout.read() if p.stdout else ""
    assert "[worker 2] dns: serving workers.test." in out


ROOT = """$ORIGIN .
$TTL 86400
@ SOA ns.root. h.root. 1 1800 900 604800 3600
@ NS ns.root.
ns.root. A 127.88.0.1
*.miss.example. 300 A 198.51.100.7
alias.miss.example. 300 CNAME www.miss.example.
"""


def dig(server: str, port: int, name: str, *flags: str) -> str:
    return subprocess.run(["dig", f"@{server}", "-p", str(port), name, *flags],
                          capture_output=True, text=True, timeout=10).stdout


def test_dns_recursive_fast_miss_path_answers_dig_as_the_full_path(tmp_path):
    """An LDNS without a query log answers plain misses in bytes (`fast_misses`); dig sees
    RA, its own case, our EDNS, the authoritative TTL; NXDOMAIN and CNAME take the full path
    without asking upstream twice."""
    (tmp_path / "root.zone").write_text(ROOT)
    (tmp_path / "hints").write_text(". NS ns.root.\nns.root. A 127.88.0.1\n")
    ctl = tmp_path / "ctl"
    procs = [subprocess.Popen([sys.executable, "-m", "infralab", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
             for args in (["dns", "serve", "--zone-file", f".={tmp_path}/root.zone",
                           "--listen", "127.88.0.1:53"],
                          ["dns", "resolve", "--root-hints", str(tmp_path / "hints"),
                           "--listen", "127.88.0.2:5353", "--control", str(ctl)])]
    try:
        wait_for(lambda: ctl.exists() and "198.51.100.7" in dig(
            "127.88.0.1", 53, "probe.miss.example", "+short"), 20, "both servers")
        for i in range(20):
            out = dig("127.88.0.2", 5353, f"Host{i}.Miss.example")
            assert "status: NOERROR" in out and " ra" in out.split("flags:")[1].split(";")[0]
            assert f"Host{i}.Miss.example.\t300\tIN\tA\t198.51.100.7" in out
            assert "udp: 1232" in out
        stats = control_request(ctl, "stats")["stats"]
        assert stats["fast_misses"] == 20 and stats["upstream_queries"] == 20
        assert "status: NXDOMAIN" in dig("127.88.0.2", 5353, "nothing.example")
        out = dig("127.88.0.2", 5353, "alias.miss.example", "+short").split()
        assert out == ["www.miss.example.", "198.51.100.7"]
        stats = control_request(ctl, "stats")["stats"]
        assert stats["fast_misses"] == 20 and stats["queries"] == 22
        assert stats["upstream_queries"] == 22  # each asked once (the CNAME is chased in-zone)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
