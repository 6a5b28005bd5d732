"""Servers an emulation can be spread over, and simulated ones for trying that on one machine.

A *server* is a machine reachable as root by ssh that has run `scripts/install.sh`; Mininet's
Cluster Edition starts nodes there through ssh. `simulate(n)` makes n of them here: each is a
network namespace with a private mount namespace, in which its own ovsdb-server, ovs-vswitchd
(userspace datapath, own database) and sshd run, joined to this machine by a management
bridge. Only ssh reaches them, as it would a real server.

The management network is 198.19.254.0/24 (RFC 2544's benchmarking range, never routed on
the internet): this machine is .1 on the bridge `ilmgmt`, server k is .(10+k). The key, the
servers and the PIDs (with their start times) of every daemon are written to
`<run root>/servers/servers.json` before anything is started, so `clean()` removes exactly
them — never by name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from emulation import runtime

MGMT_BRIDGE = "ilmgmt"
MGMT_NET = ipaddress.ip_network("198.19.254.0/24")
HEAD_IP = str(MGMT_NET[1])
MGMT_MTU = 9000  # room for a VXLAN header around a full 1500-byte frame
PREFIX = "ilsrv"
MAX_SIMULATED = 16
TUNNELS = ("vxlan", "gre", "ssh")  # how router links between servers are carried



class ServerError(RuntimeError):
    """A server cannot be made, found or reached; the message says which and why."""


@dataclass
class Server:
    """One server of a cluster run: its name, its management address and how to ssh to it."""

    name: str
    ip: str
    key: str | None = None  # ssh identity (simulated servers: ours); None: the user's own

    @property
    def ssh_options(self) -> list[str]:
        return runtime.ssh_options(self.key)

    def ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a shell command on the server as root; its output and status."""
        return runtime.ssh(self.ip, self.key, command, timeout)

    def record(self) -> dict:
        """What a run manifest keeps to reach the server again at teardown or clean."""
        return {"ip": self.ip, "key": self.key, "bridges": [], "interfaces": []}


@dataclass
class Simulated:
    """What `simulate` made: recorded before it is made, so `clean` finds all of it."""

    dir: Path
    key: str = ""
    servers: list[dict] = field(default_factory=list)  # name, ip, netns, veth, pids

    @property
    def path(self) -> Path:
        return self.dir / "servers.json"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "servers": self.servers}, indent=1))
        tmp.replace(self.path)

    @classmethod
    def load(cls) -> Simulated:
        d = runtime.run_root() / "servers"
        try:
            doc = json.loads((d / "servers.json").read_text())
        except (OSError, ValueError):
            return cls(d)
        return cls(d, doc.get("key", ""), doc.get("servers", []))

    def as_servers(self) -> list[Server]:
        return [Server(s["name"], s["ip"], self.key) for s in self.servers
                if not s.get("bridge")]


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ServerError(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip()}")


def _in_server(netns: str, script: str) -> None:
    """Run `script` in the server: its network namespace and a private mount namespace in
    which its Open vSwitch directories are its own (the daemons it starts keep both)."""
    _run("ip", "netns", "exec", netns, "unshare", "-m", "--propagation", "private",
         "sh", "-ec", script)


def _daemon_pids(sdir: Path) -> dict[str, dict]:
    pids = {}
    for name, pidfile in (("ovsdb-server", "ovs/run/ovsdb-server.pid"),
                          ("ovs-vswitchd", "ovs/run/ovs-vswitchd.pid"),
                          ("sshd", "sshd.pid")):
        try:
            pid = int((sdir / pidfile).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        pids[name] = {"pid": pid, "start": runtime.proc_start_time(pid)}
    return pids


def simulate(n: int, log=print) -> list[Server]:
    """Make n simulated servers (replacing any made before) and return them, reachable."""
    if os.geteuid() != 0:
        raise ServerError("simulated servers need root (namespaces, Open vSwitch, sshd)")
    if not 1 <= n <= MAX_SIMULATED:
        raise ServerError(f"simulate 1 to {MAX_SIMULATED} servers, not {n}")
    for tool in ("sshd", "ssh", "ssh-keygen", "sudo", "ovsdb-server", "ovs-vswitchd"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise ServerError(f"{tool} is missing: run scripts/install.sh")
    clean(log)
    sim = Simulated(runtime.run_root() / "servers")
    sim.dir.mkdir(parents=True, exist_ok=True)
    key = sim.dir / "id_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "infralab", "-f", str(key))
    sim.key = str(key)
    sim.save()
    if not runtime.link_exists(MGMT_BRIDGE):
        sim.servers.append({"name": MGMT_BRIDGE, "bridge": True})
        sim.save()
        _run("ip", "link", "add", MGMT_BRIDGE, "mtu", str(MGMT_MTU), "type", "bridge")
        _run("ip", "addr", "add", f"{HEAD_IP}/{MGMT_NET.prefixlen}", "dev", MGMT_BRIDGE)
        _run("ip", "link", "set", MGMT_BRIDGE, "up")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    made = []
    for k in range(1, n + 1):
        name, ip = f"{PREFIX}{k}", str(MGMT_NET[10 + k])
        veth = f"{name}-m"
        rec = {"name": name, "ip": ip, "netns": name, "veth": veth, "pids": {}}
        sim.servers.append(rec)
        sim.save()
        sdir = sim.dir / name
        for d in ("ovs/run", "ovs/etc", "ovs/log"):
            (sdir / d).mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", veth, "mtu", str(MGMT_MTU), "type", "veth", "peer", "name",
             "eth0", "mtu", str(MGMT_MTU), "netns", name)
        _run("ip", "link", "set", veth, "master", MGMT_BRIDGE, "up")
        _run("ip", "-n", name, "addr", "add", f"{ip}/{MGMT_NET.prefixlen}", "dev", "eth0")
        _run("ip", "-n", name, "link", "set", "eth0", "up")
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sdir / "host_key"))
        (sdir / "sshd_config").write_text("\n".join([
            f"ListenAddress {ip}", f"HostKey {sdir / 'host_key'}",
            f"PidFile {sdir / 'sshd.pid'}", f"AuthorizedKeysFile {key}.pub",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitTunnel yes", "MaxSessions 1000", "MaxStartups 1000",
            "AcceptEnv LANG LC_*", ""]))
        o = sdir / "ovs"
        _in_server(name, "; ".join([
            "mkdir -p /run/openvswitch /etc/openvswitch /var/log/openvswitch",
            f"mount --bind {o}/run /run/openvswitch",
            f"mount --bind {o}/etc /etc/openvswitch",
            f"mount --bind {o}/log /var/log/openvswitch",
            "ovsdb-tool create /etc/openvswitch/conf.db "
            "/usr/share/openvswitch/vswitch.ovsschema",
            "ovsdb-server /etc/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock "
            "--pidfile=/run/openvswitch/ovsdb-server.pid --detach "
            "--log-file=/var/log/openvswitch/ovsdb-server.log",
            f"ovs-vsctl --no-wait init -- set Open_vSwitch . external-ids:system-id={name}",
            "ovs-vswitchd --pidfile=/run/openvswitch/ovs-vswitchd.pid --detach "
            "--log-file=/var/log/openvswitch/ovs-vswitchd.log",
            f"/usr/sbin/sshd -f {sdir / 'sshd_config'}"]))
        rec["pids"] = _daemon_pids(sdir)
        sim.save()
        made.append(Server(name, ip, str(key)))
        log(f"server {name}: {ip} (own Open vSwitch and sshd)")
    for s in made:
        wait_reachable(s)
    return made


def wait_reachable(server: Server, timeout: float = 20) -> None:
    """Until `ssh root@server true` works (sshd may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = server.ssh("ovs-vsctl --timeout=5 show >/dev/null && echo ok", timeout=15)
            if r.stdout.strip() == "ok":
                return
            why = (r.stderr or r.stdout).strip()
        except subprocess.TimeoutExpired:
            why = "ssh timed out"
        if time.monotonic() > deadline:
            raise ServerError(f"server {server.name} ({server.ip}) is not reachable as root "
                              f"by ssh with a working Open vSwitch: {why}")
        time.sleep(0.2)


def clean(log=print) -> list[str]:
    """Remove every simulated server: end its daemons (by PID and start time), delete its
    namespace, veth and the management bridge, and its files. Nothing else."""
    sim = Simulated.load()
    removed = []
    for rec in reversed(sim.servers):
        if rec.get("bridge"):
            if runtime.link_exists(MGMT_BRIDGE):
                runtime.sh("ip", "link", "del", MGMT_BRIDGE)
                removed.append(f"bridge {MGMT_BRIDGE}")
            continue
        pids = rec.get("pids") or _daemon_pids(sim.dir / rec["name"])
        for name, p in pids.items():
            if runtime.end_process(p["pid"], p.get("start")):
                removed.append(f"{rec['name']} {name} ({p['pid']})")
        if runtime.link_exists(rec["veth"]):
            runtime.sh("ip", "link", "del", rec["veth"])
        if Path(f"/run/netns/{rec['netns']}").exists():
            runtime.sh("ip", "netns", "del", rec["netns"])
            removed.append(f"server {rec['name']}")
    if sim.dir.exists():
        shutil.rmtree(sim.dir, ignore_errors=True)
    for r in removed:
        log(f"removed {r}")
    return removed


def resolve(names: list[str]) -> list[Server]:
    """Servers by name: a simulated one (ilsrv1…), else a host name or address reached with
    the user's own ssh set-up. Unknown names are refused here, before anything is built."""
    sim = {s.name: s for s in Simulated.load().as_servers()}
    out = []
    for n in names:
        if n in sim:
            out.append(sim[n])
            continue
        try:
            ip = socket.gethostbyname(n)
        except OSError:
            raise ServerError(f"server {n!r}: no simulated server has that name and it does "
                              "not resolve to an address") from None
        out.append(Server(n, ip))
    if len({s.ip for s in out}) != len(out):
        raise ServerError(f"servers {', '.join(names)}: a server is named twice")
    return out


def head_address(servers: list[Server]) -> str:
    """This machine's address on the way to the servers: what the controller listens on."""
    out = subprocess.run(["ip", "-o", "route", "get", servers[0].ip],
                         capture_output=True, text=True).stdout.split()
    if "src" not in out:
        raise ServerError(f"no route from this machine to server {servers[0].name}")
    return out[out.index("src") + 1]


