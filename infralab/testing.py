"""Scenario helpers in the spirit of IPMininet's assertions: short tests that state what the
network must do, failing with a message that says what it did instead."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from emulation.build import Emulation, wait_for, wait_listening


def ping_matrix(emu: Emulation, sources: Iterable[str], targets: Iterable[str],
                deadline_s: int = 3) -> dict[tuple[str, str], bool]:
    """Which source reaches which target by ping. One reply within `deadline_s` counts
    (ping keeps sending once a second until then), sources run in parallel."""
    targets = list(targets)
    sources = list(sources)
    for s in sources:
        ips = " ".join(emu.ip(t) for t in targets if t != s)
        emu.host(s).sendCmd(
            f"for ip in {ips}; do ping -n -q -c1 -w{deadline_s} $ip >/dev/null 2>&1 "
            "&& echo ok $ip || echo fail $ip; done")
    out: dict[tuple[str, str], bool] = {}
    by_ip = {emu.ip(t): t for t in targets}
    for s in sources:
        text = emu.host(s).waitOutput()
        for word, ip in re.findall(r"^(ok|fail) (\S+)", text, re.M):
            out[(s, by_ip[ip])] = word == "ok"
    unprobed = [f"{s}->{t}" for s in sources for t in targets if s != t and (s, t) not in out]
    assert not unprobed, f"no ping result (the probe did not run) for {', '.join(unprobed)}"
    return out


def assert_connectivity(emu: Emulation, hosts: Iterable[str] | None = None) -> None:
    """Every host in `hosts` (default: all) reaches every other one."""
    names = list(hosts) if hosts is not None else list(emu.topo.hosts)
    assert_reachable(emu, names, names)


def assert_reachable(emu: Emulation, sources: Iterable[str], targets: Iterable[str]) -> None:
    """Every source reaches every target (by its own address) by ping."""
    sources, targets = list(sources), list(targets)
    m = ping_matrix(emu, sources, targets)
    missing = [f"{s}->{d}" for s in sources for d in targets if s != d and not m.get((s, d))]
    assert not missing, f"no connectivity for {len(missing)} pair(s): {', '.join(missing)}"


def assert_unreachable(emu: Emulation, sources: Iterable[str], targets: Iterable[str],
                       deadline_s: int = 2) -> None:
    """No source reaches any target by its own address (NAT-HIDE: private space)."""
    sources, targets = list(sources), list(targets)
    m = ping_matrix(emu, sources, targets, deadline_s)
    leaks = [f"{s}->{d}" for s in sources for d in targets if s != d and m.get((s, d))]
    assert not leaks, f"reachable but should not be: {', '.join(leaks)}"


def traceroute(emu: Emulation, src: str, dst: str, max_hops: int = 12) -> list[str]:
    """Hop addresses from `src` to `dst` (UDP probes, numeric); '*' for a silent hop."""
    out = emu.host(src).cmd(f"traceroute -n -q1 -w2 -m{max_hops} {shlex.quote(emu.ip(dst))}")
    hops = []
    for line in out.splitlines()[1:]:
        m = re.match(r"\s*\d+\s+(\S+)", line)
        if m:
            hops.append(m.group(1))
    return hops


def assert_path(emu: Emulation, src: str, dst: str, hops: list[str]) -> None:
    """Traceroute from `src` shows exactly `hops` (router addresses, then `dst`'s)."""
    got = traceroute(emu, src, dst)
    assert got == hops, f"path {src}->{dst}: expected {hops}, traceroute showed {got}"


def http_fetch_check(emu: Emulation, server: str, client: str, size: int = 2_000_000,
                     address: str | None = None) -> str:
    """Serve a random file from `server`, fetch it from `client` (at `address`, default the
    server's own: give its public address behind a NAT), compare SHA-256."""
    srv = emu.host(server)
    d = f"/tmp/infralab-http-{server}"
    srv.cmd(f"mkdir -p {d} && head -c {size} /dev/urandom > {d}/blob")
    want = srv.cmd(f"sha256sum {d}/blob").split()[0]
    proc = srv.popen([sys.executable, "-m", "http.server", "8080", "--bind", emu.ip(server),
                      "--directory", d])
    try:
        wait_listening(srv, 8080, proc=proc, what="http server")
        url = f"http://{address or emu.ip(server)}:8080/blob"
        code = ("import hashlib,urllib.request;"
                f"print(hashlib.sha256(urllib.request.urlopen({url!r},timeout=10).read())"
                ".hexdigest())")
        got = emu.host(client).cmd(f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}")
        got = got.strip().splitlines()[-1] if got.strip() else ""
        assert got == want, f"{client} got sha256 {got[:16]}…, {server} served {want[:16]}…"
        return want
    finally:
        proc.terminate()
        proc.wait()
        srv.cmd(f"rm -rf {d}")


@dataclass
class Dig:
    """What real `dig` printed, parsed: status, header flags and the three sections."""
    rcode: str
    flags: set[str]
    answer: list[tuple[str, int, str, str]]
    authority: list[tuple[str, int, str, str]]
    additional: list[tuple[str, int, str, str]]
    raw: str

    def data(self, rtype: str | None = None) -> list[str]:
        return [d for _, _, t, d in self.answer if rtype is None or t == rtype]


def service_ctl(emu: Emulation, label: str, line: str):
    """Send one control command (`stats`, `reload`, `promote ZONE`, `flush`...) to the
    control socket of service `label` ("ns1.dns") and return its JSON answer."""
    from services.common.control import control_request

    return control_request(emu.service_dir(label) / "control", line)


def dig(emu: Emulation, host: str, name: str, qtype: str = "A", server: str | None = None,
        *opts: str) -> Dig:
    """Run dig on `host` (its own resolv.conf unless `server`) and parse the reply."""
    at = f"@{server} " if server else ""
    out = emu.host(host).cmd(f"dig {at}{name} {qtype} +noall +comments +answer +authority "
                             f"+additional +tries=2 +time=2 {' '.join(opts)}")
    m = re.search(r"status: (\w+)", out)
    f = re.search(r"flags: ([\w ]*);", out)
    sections: dict[str, list] = {"ANSWER": [], "AUTHORITY": [], "ADDITIONAL": []}
    cur = None
    for line in out.splitlines():
        h = re.match(r";; (\w+) SECTION:", line)
        if h:
            cur = sections.get(h.group(1))
            continue
        if cur is not None and line and not line.startswith(";"):
            parts = line.split(None, 4)
            if len(parts) == 5:
                cur.append((parts[0].lower(), int(parts[1]), parts[3], parts[4]))
    return Dig(m.group(1) if m else "NO-ANSWER", set(f.group(1).split()) if f else set(),
               sections["ANSWER"], sections["AUTHORITY"], sections["ADDITIONAL"], out)


def within(got: Iterable[str], allowed: set[str]) -> bool:
    """Some answer, and every answer among `allowed` (an empty answer is never "within")."""
    got = set(got)
    return bool(got) and got <= allowed


def assert_dns_record(emu: Emulation, host: str, name: str, qtype: str, expected: set[str],
                      server: str | None = None) -> Dig:
    """The answer `host` gets for `name` holds exactly `expected` records of `qtype`."""
    d = dig(emu, host, name, qtype, server)
    assert d.rcode == "NOERROR" and set(d.data(qtype)) == expected, \
        f"{host}: {name} {qtype} via {server or 'its resolver'}: {d.rcode} {d.data()}\n{d.raw}"
    return d


@dataclass
class Capture:
    """tcpdump on one host's interface while a `with` block runs; afterwards `packets`
    holds what crossed the wire (scapy packets), read from the pcap tcpdump wrote."""
    emu: Emulation
    host: str
    bpf: str
    path: Path | None = None
    packets: list = field(default_factory=list)
    snaplen: int = 256  # bytes kept per packet (DHCP options need the whole frame)
    _proc: subprocess.Popen | None = None

    def __enter__(self) -> Capture:
        node = self.emu.host(self.host)
        d = self.emu.host_dir(self.host)
        self.path = d / f"capture-{len(list(d.glob('capture-*.pcap')))}.pcap"
        err = d / (self.path.stem + ".err")
        self._err = open(err, "wb")
        proc = self._proc = node.popen(["tcpdump", "-i", node.defaultIntf().name, "-n", "-U",
                                        "--immediate-mode", "-s", str(self.snaplen), "-w",
                                        str(self.path), self.bpf],
                                       stdout=subprocess.DEVNULL, stderr=self._err)
        wait_for(lambda: b"listening on" in err.read_bytes() or proc.poll() is not None,
                 10, f"tcpdump on {self.host}")
        if proc.poll() is not None:
            raise RuntimeError(f"tcpdump on {self.host} failed: {err.read_text()}")
        return self

    def __exit__(self, *exc) -> None:
        import scapy.layers.inet  # noqa: F401  (registers Ethernet/IP/UDP/DNS for rdpcap)
        import scapy.layers.l2  # noqa: F401
        from scapy.utils import rdpcap

        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(10)
        self._err.close()
        self.packets = list(rdpcap(str(self.path)))


def udp_listen(emu: Emulation, host: str, port: int, seconds: float, hello: tuple | None = None):
    """A UDP listener on `host` that prints 'got <src ip>:<port> <data>' per datagram and
    answers 'pong'; with `hello` (addr, port) it first sends one datagram there."""
    send = f"s.sendto(b'hello',{hello!r});" if hello else ""
    code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"s.bind(('0.0.0.0',{port}));s.settimeout({seconds});{send}"
            "print('ready',flush=True)\n"
            "try:\n while True:\n  d,a=s.recvfrom(2048);print('got',f'{a[0]}:{a[1]}',"
            "d.decode(),flush=True);s.sendto(b'pong',a)\nexcept OSError: pass")
    p = emu.host(host).popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def udp_send(emu: Emulation, host: str, dst: str, port: int, sport: int, data: str = "ping",
             wait: float = 1.0) -> str | None:
    """Send one datagram from `host`:`sport`; 'pong' if the listener answered, None if
    nothing did (a probe that could not run fails the test instead).
    (Anything else arriving on the port — a listener's earlier hello still in flight over
    the 20 ms busan link — is skipped, not taken for the answer.)"""
    code = ("import socket,time;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"s.bind(('0.0.0.0',{sport}));end=time.time()+{wait};"
            f"s.sendto({data!r}.encode(),({dst!r},{port}))\n"
            "r='NONE'\n"
            "while time.time()<end:\n"
            " s.settimeout(max(0.01,end-time.time()))\n"
            " try: d=s.recv(100).decode()\n"
            " except OSError: break\n"
            " if d=='pong': r=d; break\n"
            "print(r)")
    p = emu.host(host).popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=wait + 10)
    lines = out.strip().splitlines()
    # a sender that crashed (port taken, no route) proved nothing: fail, never "no answer"
    assert p.returncode == 0 and lines and lines[-1] in ("pong", "NONE"), \
        f"udp probe from {host}:{sport} to {dst}:{port} did not run: {err.strip() or out!r}"
    return None if lines[-1] == "NONE" else lines[-1]
