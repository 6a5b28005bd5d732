"""What a running emulation owns, written down before it is created, so it can be removed
exactly — and only it — even after a crash.

Each run has a directory under the run root holding `manifest.json`: the OVS bridges and
root-namespace interfaces it creates and every process it starts (PID plus the kernel's
start time, so a recycled PID is never killed). `clean()` reads manifests of runs whose
owner is gone and removes what they list: never `mn -c`, never killing by name.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def run_root() -> Path:
    """Where run directories live: /run/infralab as root (tmpfs, gone at reboot)."""
    env = os.environ.get("INFRALAB_RUN_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0 and Path("/run").is_dir():
        return Path("/run/infralab")
    return Path(f"/tmp/infralab-{os.getuid()}")


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces or parentheses: fields start after the last ')'
    return int(stat[stat.rindex(")") + 2:].split()[19])


def alive(pid: int, start: int | None) -> bool:
    st = proc_start_time(pid)
    return st is not None and (start is None or st == start)


def orphaned_group_members(pgid: int, start: int | None) -> list[int]:
    """Processes still in group `pgid` after its leader died, started no earlier than it
    (so a stranger that reused the number is never touched)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        if f[0] != "Z" and int(f[2]) == pgid and (start is None or int(f[19]) >= start):
            out.append(int(d.name))
    return out


def end_process(pid: int, start: int | None, grace: float = 3.0, group: bool = False) -> bool:
    """SIGTERM then SIGKILL the process we started (or its group); True if it was running.
    A group whose leader already died is still ended (its members are ours)."""
    if not alive(pid, start):
        if not group:
            return False
        members = orphaned_group_members(pid, start)
        for m in members:
            try:
                os.kill(m, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return bool(members)

    def sig(s: int) -> None:
        try:
            if group:
                os.killpg(pid, s)
            else:
                os.kill(pid, s)
        except (ProcessLookupError, PermissionError):
            pass

    sig(signal.SIGTERM)
    sig(signal.SIGCONT)  # a process paused on purpose (a fault) must see the SIGTERM
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid, start):
            break
        _reap(pid)
        time.sleep(0.05)
    else:
        sig(signal.SIGKILL)
        for _ in range(40):
            _reap(pid)
            if not alive(pid, start):
                break
            time.sleep(0.05)
    return True


def netns_of(pid: int) -> str | None:
    """The network namespace of process `pid` ("net:[4026532...]"), None if it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def processes_in(namespaces: set[str]) -> list[tuple[int, int | None]]:
    """(pid, start time) of every process in one of these network namespaces. A run's
    hosts' namespaces are the run's own, so is everything in them: what a test or a user
    started in a host (`h1 iperf3 -s &`) ends with the run."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and netns_of(int(d.name)) in namespaces:
            out.append((int(d.name), proc_start_time(int(d.name))))
    return out


def end_processes(procs: list[tuple[int, int | None, bool]], grace: float = 3.0) -> list[int]:
    """end_process for many at once — (pid, start time, whether its group) each: every
    one is sent SIGTERM first and all are waited for together, so a teardown waits one
    grace period at most, not one per process. Returns the PIDs that were running."""
    running = [(pid, start, group) for pid, start, group in procs if alive(pid, start)]
    stopped = [(pid, start, group) for pid, start, group in procs
               if group and not alive(pid, start)]
    for gone_pid, gone_start, _ in stopped:  # (leaders gone: their members are still ours)
        end_process(gone_pid, gone_start, group=True)

    def sig(pid: int, group: bool, s: int) -> None:
        try:
            os.killpg(pid, s) if group else os.kill(pid, s)
        except (ProcessLookupError, PermissionError):
            pass

    for pid, _start, group in running:
        sig(pid, group, signal.SIGTERM)
        sig(pid, group, signal.SIGCONT)  # (a process paused on purpose must see it)
    deadline = time.monotonic() + grace
    left = list(running)
    while left and time.monotonic() < deadline:
        for pid, _start, _group in left:
            _reap(pid)
        left = [p for p in left if alive(p[0], p[1])]
        if left:
            time.sleep(0.05)
    for pid, start, group in left:  # past the grace: SIGKILL, then as end_process does
        end_process(pid, start, grace=0, group=group)
    return [pid for pid, _start, _group in running]


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def sh(*cmd: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ConnectTimeout=5"]


def ssh_options(key: str | None) -> list[str]:
    """How infralab reaches a server: as root, never prompting (and with our key for the
    simulated ones)."""
    return SSH_OPTIONS + (["-i", key] if key else [])


def ssh(ip: str, key: str | None, command: str, timeout: float = 60
        ) -> subprocess.CompletedProcess:
    """Run a shell command as root on the server at `ip`."""
    return subprocess.run(["ssh", *ssh_options(key), f"root@{ip}", command],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def remote_sh(server: dict, command: str) -> str:
    """`command` on a server of the manifest's `remote` section; its output ('' when the
    server cannot be reached: what it held is gone with it or needs its own clean)."""
    try:
        return ssh(server["ip"], server.get("key"), command, timeout=30).stdout
    except subprocess.TimeoutExpired:
        return ""


# A process started on a server writes "PID START" to its pid file (START: the kernel's start
# time, field 22 of /proc/PID/stat) and leads its own process group; these shell lines end
# such processes there — by PID and start time, as here — and list the ones still running.
_START = 'sed "s/.*) //" /proc/{pid}/stat 2>/dev/null | cut -d" " -f20'
_LIVE = f'read pid st < "$f" 2>/dev/null && [ "$({_START.format(pid="$pid")})" = "$st" ]'


def pidfile_line(pidfile: str) -> str:
    """The shell line a process on a server runs first (its PID stays through `exec`):
    writes the pid file the lines below read."""
    return f'echo $$ $({_START.format(pid="$$")}) > {shlex.quote(pidfile)}'


def remote_end_script(pidfiles: list[str], grace: float = 3.0) -> str:
    """A shell line for the server: SIGTERM each group, SIGKILL what is left after
    `grace` seconds; prints the pid files of the processes it ended."""
    files = " ".join(shlex.quote(f) for f in pidfiles)
    return (f'pids=""; for f in {files}; do if {_LIVE}; then kill -TERM -- -$pid 2>/dev/null;'
            ' pids="$pids $pid"; echo "$f"; fi; done; '
            f'for i in $(seq {int(grace * 10)}); do left=""; for p in $pids; do '
            'kill -0 -- -$p 2>/dev/null && left="$left $p"; done; [ -z "$left" ] && break; '
            'sleep 0.1; done; for p in $left; do kill -KILL -- -$p 2>/dev/null; done; true')


def remote_alive_script(pidfiles: list[str]) -> str:
    files = " ".join(shlex.quote(f) for f in pidfiles)
    return f'for f in {files}; do {_LIVE} && echo "$f"; done; true'


def ovs_bridges() -> set[str]:
    r = sh("ovs-vsctl", "--timeout=5", "list-br")
    return set(r.stdout.split()) if r.returncode == 0 else set()


def kernel_bridges() -> set[str]:
    """OVS bridges on the kernel datapath (datapath_type system, or the default)."""
    r = sh("ovs-vsctl", "--timeout=5", "--bare", "--columns=name,datapath_type", "list",
           "Bridge")
    if r.returncode:
        return set()
    out, lines = set(), r.stdout.strip().split("\n\n")
    for rec in lines:
        words = rec.split()
        if words and (len(words) == 1 or words[1] == "system"):
            out.add(words[0])
    return out


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


RUN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class RunError(RuntimeError):
    """A run that cannot be named, found or started as asked: one clear line."""


@dataclass
class Manifest:
    """Everything one run owns. Saved after every change."""

    path: Path
    topology: str = ""
    owner: dict = field(default_factory=dict)  # {"pid": n, "start": t}
    bridges: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    processes: dict[str, dict] = field(default_factory=dict)  # label -> {"pid", "start", "group"}
    conntrack_zones: list[int] = field(default_factory=list)  # OVS ct zones to flush
    # conntrack timeout policies set on our zones: {"dp": "netdev"|"system", "zones":
    # [...], "created_dp": whether this run made the OVSDB Datapath record they hang on}
    ct_policies: dict = field(default_factory=dict)
    # OVS kernel datapaths this run brought into being (ovs-system): removed once no
    # bridge uses them
    kernel_datapaths: list[str] = field(default_factory=list)
    # cluster runs: server name -> {"ip", "key", "bridges", "interfaces"} held there
    remote: dict[str, dict] = field(default_factory=dict)
    # RUNS-MANY: the run's name (what --run takes) and its slot (its names' prefix)
    name: str = ""
    slot: int | None = None

    @classmethod
    def create(cls, topology: str, name: str | None = None) -> Manifest:
        """A new run's manifest, with a name and a slot no other run on this machine
        holds (chosen under a lock: runs started at the same moment get different ones).
        RunError: the name is taken or malformed, or every slot is in use."""
        import fcntl

        from topologies.plan import RUN_SLOTS

        if name is not None and not RUN_NAME.fullmatch(name):
            raise RunError(f"run name {name!r}: use 1-32 of a-z, 0-9, '-' and '_', "
                           "beginning with a letter or digit")
        root = run_root()
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            others = _manifests()  # (live ones, and crashed ones not cleaned yet)
            names = {m.name for m in others}
            if name is not None and name in names:
                raise RunError(f"a run named {name!r} is already up; choose another "
                               f"--name (runs now: {', '.join(sorted(names))})")
            if name is None:
                base = re.sub(r"[^a-z0-9_-]", "-", topology.lower())[:24].strip("-") or "run"
                name = base if base not in names else next(
                    f"{base}-{i}" for i in range(2, 10_000) if f"{base}-{i}" not in names)
            taken = {m.slot for m in others}
            slot = next((i for i in range(RUN_SLOTS) if i not in taken), None)
            if slot is None:
                raise RunError(f"{RUN_SLOTS} runs are up on this machine already (the "
                               "most it names apart); end one first: infralab runs")
            d = root / f"{name}-{os.getpid()}-{int(time.time() * 1000) % 100000}"
            d.mkdir()
            m = cls(d / "manifest.json", topology,
                    {"pid": os.getpid(), "start": proc_start_time(os.getpid())},
                    name=name, slot=slot)
            m.save()
        return m

    @classmethod
    def read(cls, path: Path) -> Manifest:
        d = json.loads(path.read_text())
        return cls(path, d.get("topology", ""), d.get("owner", {}), d.get("bridges", []),
                   d.get("interfaces", []), d.get("processes", {}),
                   conntrack_zones=d.get("conntrack_zones", []), remote=d.get("remote", {}),
                   kernel_datapaths=d.get("kernel_datapaths", []),
                   ct_policies=d.get("ct_policies", {}),
                   name=d.get("name") or d.get("topology", ""), slot=d.get("slot"))

    @property
    def dir(self) -> Path:
        return self.path.parent

    def save(self) -> None:
        doc = {"topology": self.topology, "owner": self.owner, "bridges": self.bridges,
               "interfaces": self.interfaces, "processes": self.processes,
               "conntrack_zones": self.conntrack_zones, "remote": self.remote,
               "kernel_datapaths": self.kernel_datapaths, "ct_policies": self.ct_policies,
               "name": self.name, "slot": self.slot}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.path)

    def add_process(self, label: str, pid: int, group: bool = False, **where: str) -> None:
        """`where`: for a process on a server, its `server` and `pidfile` there (`pid` is
        then its ssh session here)."""
        self.processes[label] = {"pid": pid, "start": proc_start_time(pid), "group": group,
                                 **where}
        self.save()

    def remote_pidfiles(self, labels: list[str] | None = None) -> dict[str, list[str]]:
        """server -> pid files of the processes (of `labels`, default all) started there."""
        out: dict[str, list[str]] = {}
        for label, p in self.processes.items():
            if "server" in p and (labels is None or label in labels):
                out.setdefault(p["server"], []).append(p["pidfile"])
        return out

    def end_remote(self, labels: list[str] | None = None) -> list[str]:
        """End the processes started on servers (one ssh per server); what was ended."""
        ended = []
        for server, files in self.remote_pidfiles(labels).items():
            if server in self.remote:
                out = remote_sh(self.remote[server], remote_end_script(files))
                ended += [f"process {Path(f).stem} on {server}" for f in out.split()]
        return ended

    def add_nodes(self, nodes) -> None:
        """Record the shell processes of Mininet nodes (hosts and switches)."""
        for node in nodes:  # a remote node's handle here is its ssh session
            pid = node.shell.pid if getattr(node, "isRemote", False) else node.pid
            self.processes[f"node:{node.name}"] = {"pid": pid, "start": proc_start_time(pid)}
        self.save()

    def owner_alive(self) -> bool:
        return bool(self.owner) and alive(self.owner["pid"], self.owner.get("start"))

    def leftovers(self) -> list[str]:
        """What of this run's bridges, interfaces and processes still exists."""
        br = ovs_bridges()
        remote = []
        files = self.remote_pidfiles()
        for name, srv in self.remote.items():
            there = remote_sh(srv, "ovs-vsctl --timeout=5 list-br; ls /sys/class/net").split()
            remote += [f"bridge {b} on {name}" for b in srv["bridges"] if b in there]
            remote += [f"interface {i} on {name}" for i in srv["interfaces"] if i in there]
            if files.get(name):
                remote += [f"process {Path(f).stem} on {name}" for f in
                           remote_sh(srv, remote_alive_script(files[name])).split()]
        return ([f"bridge {n}" for n in self.bridges if n in br]
                + [f"interface {i}" for i in self.interfaces if link_exists(i)]
                + [f"process {label} ({p['pid']})" for label, p in self.processes.items()
                   if alive(p["pid"], p.get("start"))] + remote)

    def remove_all(self, log=lambda s: None) -> list[str]:
        """End the processes, delete bridges and interfaces this run lists; return what
        was actually removed (an orderly teardown leaves nothing for this to do)."""
        removed = self.end_remote()  # (processes on servers: there, by their pid files)
        # services and the controller first (all at once), host shells last
        for nodes in (False, True):
            batch = {label: p for label, p in self.processes.items()
                     if label.startswith("node:") == nodes}
            ended = set(end_processes([(p["pid"], p.get("start"), p.get("group", False))
                                       for p in batch.values()]))
            removed += [f"process {label} ({p['pid']})" for label, p in batch.items()
                        if p["pid"] in ended]
        present = ovs_bridges()
        for br in self.bridges:
            if br in present:
                sh("ovs-vsctl", "--timeout=5", "--if-exists", "del-br", br)
                removed.append(f"bridge {br}")
            if link_exists(br):
                sh("ip", "link", "del", br)
        for intf in self.interfaces:
            if link_exists(intf):
                sh("ip", "link", "del", intf)
                removed.append(f"interface {intf}")
        for zone in self.conntrack_zones:  # our NAT's entries in OVS's shared conntrack
            sh("ovs-appctl", "--timeout=5", "dpctl/flush-conntrack", f"zone={zone}")
        if self.ct_policies:
            clear_zone_policies(self.ct_policies)
            removed.append(f"conntrack timeout policies of zones {self.ct_policies['zones']}")
        for dp in self.kernel_datapaths:  # (not a leftover: an orderly stop ends it too)
            if link_exists(dp) and not kernel_bridges():
                sh("ovs-dpctl", "del-dp", f"system@{dp}")
                log(f"removed kernel datapath {dp}")
        for name, srv in self.remote.items():  # the same on each server, in one ssh each
            script = "; ".join(
                [f"ovs-vsctl --timeout=5 br-exists {b} && ovs-vsctl --timeout=5 del-br {b} "
                 f"&& echo bridge {b}"
                 for b in srv["bridges"]]
                + [f"ip link del {i} 2>/dev/null && echo interface {i}"
                   for i in srv["interfaces"]]
                + [f"ovs-appctl --timeout=5 dpctl/flush-conntrack zone={z} >/dev/null 2>&1"
                   for z in self.conntrack_zones] + ["true"])
            gone = remote_sh(srv, script).splitlines()
            removed += [f"{g} on {name}" for g in gone if g.startswith(("bridge", "interface"))]
        for r in removed:
            log(f"removed {r}")
        shutil.rmtree(self.dir, ignore_errors=True)
        return removed


def set_zone_policies(dp: str, policies: dict[int, dict[str, int]],
                      log=lambda s: None) -> dict:
    """Give our conntrack zones their timeout policies (OVS CT_Timeout_Policy, on the
    OVSDB Datapath record of `dp`, made if missing); returns what to record for
    clear_zone_policies. A switch that refuses (a kernel without conntrack timeout
    support) keeps its default timeouts: logged, not fatal."""
    vs = ("ovs-vsctl", "--timeout=5")
    have = sh(*vs, "get", "Open_vSwitch", ".", "datapaths").stdout
    created = f"{dp}=" not in have
    if created:
        r = sh(*vs, "--", "--id=@dp", "create", "Datapath", "datapath_version=0", "--",
               "set", "Open_vSwitch", ".", f"datapaths:{dp}=@dp")
        if r.returncode:
            log(f"conntrack timeout policies not set (no Datapath record): {r.stderr.strip()}")
            return {}
    done = []
    for zone, tp in policies.items():
        sh(*vs, "--if-exists", "del-zone-tp", dp, f"zone={zone}")
        r = sh(*vs, "add-zone-tp", dp, f"zone={zone}", *(f"{k}={v}" for k, v in tp.items()))
        if r.returncode:
            log(f"conntrack zone {zone}: timeout policy refused: {r.stderr.strip()}")
        else:
            done.append(zone)
    return {"dp": dp, "zones": done, "created_dp": created}


def clear_zone_policies(rec: dict) -> None:
    """Remove the timeout policies set_zone_policies set, and the Datapath record if this
    run made it and no zone (another run's) still uses it."""
    vs = ("ovs-vsctl", "--timeout=5")
    dp = rec["dp"]
    for zone in rec.get("zones", []):
        sh(*vs, "--if-exists", "del-zone-tp", dp, f"zone={zone}")
    if rec.get("created_dp"):
        left = sh(*vs, "list-zone-tp", dp).stdout.strip()
        if not left:
            sh(*vs, "remove", "Open_vSwitch", ".", "datapaths", dp)


def manifest_paths() -> set[Path]:
    """Manifest files of every run, finished or not, under the run root."""
    root = run_root()
    return set(root.glob("*/manifest.json")) if root.is_dir() else set()


def _manifests() -> list[Manifest]:
    out = []
    for p in sorted(manifest_paths()):
        try:
            out.append(Manifest.read(p))
        except (OSError, ValueError):
            continue
    return out


def stale_manifests() -> list[Manifest]:
    """Manifests whose owning process is gone (a crash, a kill -9)."""
    return [m for m in _manifests() if not m.owner_alive()]


def live_manifests() -> list[Manifest]:
    """Manifests of runs still going."""
    return [m for m in _manifests() if m.owner_alive()]


def estimate_mb(topo) -> int:
    """What a run of `topo` takes in memory, roughly: the controller and OVS's share, a
    shell per host and router, a process per service and delay line (measured on the
    world: about 1.1 GB with its 19 services)."""
    services = sum(len(h.services) for h in topo.hosts.values())
    delayed = sum(1 for lp in topo.links.values() if lp.emulated)
    return 150 + 4 * len(topo.hosts) + 2 * len(topo.routers) + 45 * services + 30 * delayed


def check_memory(topo) -> None:
    """RunError when the machine's available memory cannot hold another run of `topo`."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        avail = int(re.search(r"MemAvailable:\s+(\d+)", meminfo).group(1)) // 1024  # type: ignore[union-attr]
    except (OSError, AttributeError, ValueError):
        return
    need = estimate_mb(topo)
    if need > avail * 0.9:
        raise RunError(f"{topo.name} needs about {need} MB and this machine has {avail} MB "
                       "available: end a run first (infralab runs) or build a smaller one")


def find_run(name: str | None = None, topology: str | None = None) -> Manifest:
    """The live run named `name` (or of `topology`); with neither, the only live run.
    RunError naming the runs there are when that is not one run."""
    live = live_manifests()
    if name is not None:
        got = [m for m in live if m.name == name]
    elif topology is not None:
        got = [m for m in live if m.topology == topology]
    else:
        got = live
    if len(got) == 1:
        return got[0]
    which = f"named {name!r}" if name else f"of {topology!r}" if topology else "up"
    runs = ", ".join(f"{m.name} ({m.topology})" for m in live) or "none"
    if not got:
        raise RunError(f"no run {which} (runs: {runs}); start one with infralab up")
    raise RunError(f"{len(got)} runs {which}: say which with --run NAME (runs: {runs})")


def clean(log=print) -> list[str]:
    """Remove what crashed runs left behind. Running emulations are not touched."""
    removed = []
    for m in stale_manifests():
        log(f"cleaning leftovers of {m.topology} ({m.dir.name})")
        removed += m.remove_all(log)
    return removed
