"""`infralab`: build topologies, run the controller, clean up, show the demo.

Exit status: 0 success, 1 a failure while running, 2 a bad topology or bad usage.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from pathlib import Path

import topologies
from emulation.progress import Progress
from infralab import labcli as lab_cli
from infralab import natcli as nat_cli
from infralab import sweep as sweep_cli
from services.dhcp import cli as dhcp_cli
from services.dns import cli as dns_cli
from services.dns.zone import ZoneError
from services.gslb import cli as gslb_cli
from services.punch import cli as punch_cli
from topologies.yamlfile import ConfigFileError

PROGRESS = Progress()  # bars on stderr for the long steps (a line every 2 s in a log)


def _log(msg: str) -> None:
    PROGRESS.interrupt()
    print(f"[infralab] {msg}", flush=True)


def _topology(arg: str, overlay: str | None = None) -> topologies.Topology:
    topo = _base_topology(arg)
    if overlay:  # the course's services placed on it (topologies/overlay.py)
        from topologies import overlay as services

        topo = services.load(overlay, topo)
    return topo


def _base_topology(arg: str) -> topologies.Topology:
    """A path, the name of a topology shipped with infralab ('world', 'duo'), a
    generator with parameters ('gen:campus,subnets=8,hosts=10') or an imported research
    topology ('zoo:Abilene', 'sndlib:polska,hosts=2', 'topohub:gabriel/25/0')."""
    if arg.startswith("gen:"):
        from topologies.generators import generate

        return generate(arg[4:])
    from topologies import imported

    if imported.is_imported(arg):
        return imported.load(arg)
    p = Path(arg)
    if not p.exists() and topologies.builtin(arg).exists():
        p = topologies.builtin(arg)
    return topologies.load(p)


def _servers(arg: str | None) -> list | None:
    """--servers A,B: the servers a cluster run spreads over (None: this machine only)."""
    if not arg:
        return None
    from emulation.servers import resolve

    return resolve([s for s in arg.split(",") if s])


def _overlay_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overlay", metavar="FILE|auto", help="add the course's services (DNS "
                   "hierarchy, GSLB with a data centre per site, NAT edge) to any topology: "
                   "placed as FILE says, or chosen from the graph with `auto`")


def _kernel_flags(p: argparse.ArgumentParser) -> None:
    from topologies.model import DATAPATHS, LINK_EMULATIONS

    p.add_argument("--datapath", choices=DATAPATHS, help="OVS's datapath (default: the "
                   "topology's, else auto: kernel where the openvswitch module is)")
    p.add_argument("--link-emulation", choices=LINK_EMULATIONS, help="netem or the "
                   "user-space delay line (default: the topology's, else auto: netem "
                   "where the kernel has it)")


def _built(args: argparse.Namespace) -> topologies.Topology:
    """The topology `up`/`demo` build: --overlay added, --datapath/--link-emulation set."""
    topo = _topology(args.file, args.overlay)
    if args.datapath:
        topo.datapath = args.datapath
    if args.link_emulation:
        topo.link_emulation = args.link_emulation
    return topo.validate()


def _cluster_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--servers", help="spread the topology over these servers (comma-"
                   "separated: simulated ones, or machines reached as root by ssh); the "
                   "controller stays here")
    from emulation.servers import TUNNELS

    p.add_argument("--tunnel", default=TUNNELS[0], choices=TUNNELS,
                   help="how router links between servers are carried (default: vxlan)")


def cmd_validate(args: argparse.Namespace) -> int:
    topo = _topology(args.file, args.overlay)
    subnets = topo.subnets()
    print(f"{args.file}: ok: {len(topo.routers)} routers, {len(subnets)} subnets, "
          f"{len(topo.hosts)} hosts")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from emulation.build import BuildError, Emulation, raise_interrupt

    topo = _built(args)
    servers = _servers(args.servers)
    signal.signal(signal.SIGHUP, raise_interrupt)
    t0 = time.monotonic()
    with Emulation(topo, log=_log, verbose=args.verbose, progress=PROGRESS, servers=servers,
                   tunnel=args.tunnel, name=args.name) as emu:
        if emu.where:
            for srv in emu.servers:
                routers = [r for r in topo.routers if emu.where[r] == srv]
                hosts = sum(1 for h in topo.hosts if emu.where[h] == srv)
                _log(f"server {srv}: routers {', '.join(routers) or '-'}, {hosts} hosts")
        _log(f"{topo.name} is up in {time.monotonic() - t0:.1f}s as run {emu.name} "
             f"(run directory {emu.rundir})")
        from infralab.mncli import InfralabCLI

        view = _start_view(emu.rundir, topo, args.web) if args.web is not None else None
        if view is not None:  # (`infralab runs` shows it)
            (emu.rundir / "view.url").write_text(view.url + "\n")
        if args.faults_log:
            emu.faults.keep_to = Path(args.faults_log).resolve()
        if args.faults:  # the topology's schedule, beside the prompt or the script
            if topo.faults is None:
                raise BuildError(f"--faults: {topo.name} has no `faults:` block")
            sched = topo.faults.schedule(topo, args.seed)
            _log(f"faults: {len(sched)} over {max((f.at for f in sched), default=0):g} s "
                 f"(seed {topo.faults.seed if args.seed is None else args.seed})")
            emu.faults.run(sched, wait=args.no_cli and not args.script)
        if args.script:
            cli = InfralabCLI(emu, script=args.script)
            status = cli.status
        elif args.no_cli:
            status = 0
        else:
            InfralabCLI(emu)
            status = 0
        if view is not None:
            view.stop()
    _log("torn down")
    return status


def _start_view(rundir: Path, topo, port: int):
    """The live web page of a run (WEB-VIEW), on loopback; says where and its token."""
    from infralab.webview import serve

    view = serve(rundir, topo, port)
    _log(f"live view: {view.url}  (changes need the token {view.token})")
    return view


def cmd_view(args: argparse.Namespace) -> int:
    """Attach the live web page to a running emulation and serve it until Ctrl-C."""
    from infralab.labs import find_run

    run = find_run(args.topology, args.run)
    name = json.loads((run / "manifest.json").read_text()).get("topology", args.topology)
    try:
        topo = topologies.load(topologies.builtin(name))
    except (OSError, ValueError, topologies.TopologyError) as e:
        raise SystemExit(f"infralab view: cannot draw {name!r}: {e}") from None
    view = _start_view(run, topo, args.port)
    try:
        while (run / "manifest.json").exists():
            time.sleep(1)
        _log(f"{name} was torn down")
    except KeyboardInterrupt:
        pass
    finally:
        view.stop()
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    from infralab.faultview import read, svg, text

    records = read(args.file)
    if args.svg:
        Path(args.svg).write_text(svg(records, Path(args.file).stem))
        _log(f"wrote {args.svg}")
    else:
        print(text(records), end="")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from emulation import runtime

    if args.run:  # one run exactly: its owner told to tear down, else what it left
        return _clean_run(args.run)
    removed = runtime.clean(log=_log)
    live = runtime.live_manifests()
    for m in live:
        _log(f"left running: {m.topology} (owner pid {m.owner['pid']})")
    _log(f"clean: removed {len(removed)} item(s)")
    return 0


def _clean_run(name: str) -> int:
    """End run `name` exactly: a live one's owner gets SIGTERM and tears down (waited for,
    30 s at most); what is left after that, or of a crashed run, is removed by its
    manifest. Other runs are not touched."""
    import os

    from emulation import runtime

    found = [m for m in runtime.live_manifests() + runtime.stale_manifests() if m.name == name]
    if not found:
        names = ", ".join(m.name for m in runtime.live_manifests()) or "none"
        print(f"infralab clean: no run named {name!r} (runs: {names})", file=sys.stderr)
        return 2
    m = found[0]
    if m.owner_alive():
        os.kill(m.owner["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 30
        while m.owner_alive() and time.monotonic() < deadline and m.path.exists():
            time.sleep(0.2)
    removed = m.remove_all(_log) if m.path.exists() else []
    _log(f"clean: run {name} ended" + (f"; removed {len(removed)} leftover(s)" if removed
                                       else ""))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """What runs on this machine: name, topology, started, owner, directory, API, view."""
    from emulation import runtime

    live = runtime.live_manifests()
    if not live:
        print("no run is up")
        return 0
    rows = []
    for m in live:
        try:
            st = json.loads((m.dir / "controller-status.json").read_text())
        except (OSError, ValueError):
            st = {}
        started = time.strftime("%H:%M:%S", time.localtime(m.dir.stat().st_mtime))
        view = (m.dir / "view.url").read_text().strip() if (m.dir / "view.url").exists() \
            else ""
        rows.append((m.name, m.topology, started, str(m.owner.get("pid", "")), str(m.dir),
                     st.get("api") or "", view))
    head = ("NAME", "TOPOLOGY", "STARTED", "PID", "RUN DIRECTORY", "API", "VIEW")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_servers(args: argparse.Namespace) -> int:
    from emulation import servers

    if args.action == "simulate":
        made = servers.simulate(args.n, log=_log)
        _log(f"{len(made)} simulated server(s) ready: infralab up TOPOLOGY --servers "
             + ",".join(s.name for s in made))
    elif args.action == "clean":
        removed = servers.clean(log=_log)
        _log(f"removed {len(removed)} thing(s)" if removed else "no simulated servers")
    else:
        for s in servers.Simulated.load().as_servers():
            print(f"{s.name}\t{s.ip}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from emulation import runtime

    live = runtime.live_manifests()
    if not live:
        print("no emulation running")
    for m in live:
        api = ""
        try:  # the controller's HTTP/JSON API (written by the controller once it listens)
            api = json.loads((m.dir / "controller-status.json").read_text()).get("api", "")
        except (OSError, ValueError):
            pass
        print(f"{m.name} ({m.topology}): owner pid {m.owner['pid']}, {len(m.bridges)} routers, "
              f"run directory {m.dir}" + (f", controller API {api}/" if api else ""))
    return 0


def cmd_draw(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infralab.draw import render, to_dot

    topo = _topology(args.file, args.overlay)
    if args.dot:
        print(to_dot(topo), end="")
        return 0
    out = render(topo, Path(args.output or f"{topo.name}.svg"))
    _log(f"wrote {out}")
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    from infralab.labs import find_run
    from infralab.ladder import capture_many

    run = find_run(args.topology, args.run)
    if args.output and len(args.host) > 1:
        raise SystemExit("infralab capture: -o names one file; with several hosts each "
                         "goes to HOST.pcap (or --dir DIR/HOST.pcap)")
    outdir = Path(args.dir or ".")
    outs = {h: Path(args.output) if args.output else outdir / f"{h.replace(':', '-')}.pcap"
            for h in args.host}
    _log(f"capturing on {', '.join(args.host)} for {args.seconds:g}s")
    for out in capture_many(run, outs, args.seconds, args.filter or "",
                            shlex.split(args.during) if args.during else None).values():
        _log(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


def cmd_list_topologies(args: argparse.Namespace) -> int:
    """What `infralab up` can build: shipped files, generators, imported topologies."""
    from topologies import imported
    from topologies.generators import GENERATORS

    if args.group:
        keys = imported.catalogue(args.group)
        if not keys:
            raise LookupError(f"no topohub group {args.group!r} (zoo, sndlib, caida, "
                              "backbone, gabriel)")
        for names in keys.values():
            for key in names:
                kind, _, rest = key.partition("/")
                print(f"{imported.SHORT[kind]}:{rest}" if kind in imported.SHORT
                      else f"topohub:{key}")
        return 0
    shipped = sorted(p.stem for p in topologies.HERE.glob("*.yaml"))
    print("shipped:    " + ", ".join(shipped))
    print("generators: " + ", ".join(f"gen:{g}" for g in GENERATORS)
          + "  (e.g. gen:random,routers=20,degree=3,seed=1)")
    try:
        groups = imported.catalogue()
    except topologies.TopologyError as e:
        print(f"imported:   unavailable ({e.problem})")
        return 0
    print("imported (topohub; `infralab list-topologies GROUP` lists one group):")
    for group, names in groups.items():
        short = imported.SHORT.get(group, group)
        print(f"  {short + ':':<10} {len(names):>5} topologies, e.g. "
              f"{short}:{names[0].partition('/')[2]}")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    """ROUTE-FAILOVER from another terminal: the routers' interfaces of a running
    emulation go down or up, and its controller reroutes. `link set A B --delay 80ms`
    (LINK-NETEM): what the link does changes live (netem, or the delay node's line)."""
    from emulation import runtime
    from emulation.linkstate import set_link
    from infralab.labs import find_run

    run = find_run(args.topology, args.run)
    manifest = runtime.Manifest.read(run / "manifest.json")
    if manifest.remote:
        raise LookupError("this emulation spans servers: use `link A B ...` at its prompt")
    if args.state == "set":
        return _link_set(args, run, manifest)
    set_link(run, args.a, args.b, args.state == "up")
    _log(f"link {args.a} {args.b} {args.state}")
    return 0


def _link_set(args: argparse.Namespace, run: Path, manifest) -> int:
    from emulation import linkemu

    changes = linkemu.coerce({k: getattr(args, k) for k in linkemu.SETTABLE
                              if getattr(args, k, None) is not None})
    if not changes:
        raise ValueError("nothing to set: give --delay, --loss, --jitter, --rate...")
    for rec in linkemu.set_in_run(run, manifest.processes, args.a, args.b, changes):
        _log(linkemu.describe(rec))
    return 0


def _write_drawing(drawing: str, out: Path) -> None:
    """SVG as it is, or PNG rendered by librsvg (rsvg-convert)."""
    if out.suffix.lower() == ".png":
        import subprocess

        subprocess.run(["rsvg-convert", "-f", "png", "-o", str(out)], input=drawing,
                       text=True, check=True)
    else:
        out.write_text(drawing)


def cmd_ladder(args: argparse.Namespace) -> int:
    from infralab.ladder import events, nat_steps, nat_svg, nat_text, svg, text

    first = Path(args.pcap)
    if args.after:  # two captures: one packet before and after the NAT, side by side
        after = Path(args.after)
        steps = nat_steps(events(first), events(after))
        if args.output:
            _write_drawing(nat_svg(steps, args.title or f"NAT: {first.name} | {after.name}"),
                           Path(args.output))
            _log(f"wrote {args.output}: {len(steps)} packets")
        else:
            print(nat_text(steps, first.name, after.name))
        return 0
    evs = events(first)
    if args.output:
        _write_drawing(svg(evs, args.title or first.name), Path(args.output))
        _log(f"wrote {args.output}: {len(evs)} packets")
    else:
        print(text(evs))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from infralab.demo import run_demo

    return run_demo(_built(args), log=_log, progress=PROGRESS,
                    servers=_servers(args.servers), tunnel=args.tunnel)


TOPOLOGY_HELP = ("a topology: a YAML file, a shipped name (world, duo, natlab, dhcplab), a "
                 "generator (gen:campus,routers=10,...) or an imported network "
                 "(zoo:Abilene, sndlib:..., caida:...): see infralab list-topologies")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="infralab", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="build a topology, open the Mininet CLI, tear down on exit")
    p.add_argument("file", help=TOPOLOGY_HELP)
    p.add_argument("--script", help="run this Mininet CLI script instead of the prompt; "
                   "exit with the first failing command's status")
    p.add_argument("--no-cli", action="store_true", help="build, check, tear down")
    p.add_argument("--name", help="the run's name (default: the topology's, made unique); "
                   "other commands attach to it with --run NAME")
    p.add_argument("--faults", action="store_true", help="run the topology's `faults:` "
                   "schedule once it is up (with --no-cli: tear down after its end)")
    p.add_argument("--seed", type=int, help="the random faults' seed (default: the block's)")
    p.add_argument("--faults-log", help="keep the fault timeline (faults.jsonl) here")
    p.add_argument("--web", type=int, nargs="?", const=0, metavar="PORT",
                   help="serve the live view on 127.0.0.1 (PORT, default any free one)")
    _overlay_flag(p)
    _kernel_flags(p)
    _cluster_flags(p)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser("servers", help="simulated servers for cluster runs on one machine: "
                       "each its own namespace, Open vSwitch and sshd")
    p.add_argument("action", choices=["simulate", "clean", "list"])
    p.add_argument("n", nargs="?", type=int, default=2, help="how many (simulate; default 2)")
    p.set_defaults(fn=cmd_servers)
    p = sub.add_parser("validate", help="check a topology file without building it")
    p.add_argument("file")
    _overlay_flag(p)
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("faults", help="a fault timeline (up --faults-log, or a run's "
                       "faults.jsonl) as text, or as a picture")
    p.add_argument("file")
    p.add_argument("--svg", help="write the picture here instead")
    p.set_defaults(fn=cmd_faults)
    p = sub.add_parser("clean", help="remove what crashed runs left (only infralab's own); "
                       "with --run NAME, end that one run exactly")
    p.add_argument("--run", help="the run to end (its name: infralab runs)")
    p.set_defaults(fn=cmd_clean)
    p = sub.add_parser("runs", help="list the runs on this machine: name, topology, started, "
                       "PID, run directory, API, live view")
    p.set_defaults(fn=cmd_runs)
    p = sub.add_parser("status", help="list running emulations")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("draw", help="a picture of a topology (SVG or PNG, by Graphviz)")
    p.add_argument("file", help=TOPOLOGY_HELP)
    p.add_argument("-o", "--output", help="NAME.svg or NAME.png (default: <topology>.svg)")
    p.add_argument("--dot", action="store_true", help="print the Graphviz text instead")
    _overlay_flag(p)
    p.set_defaults(fn=cmd_draw)
    p = sub.add_parser("view", help="the live web page of a running emulation, on "
                       "127.0.0.1")
    p.add_argument("--run", help="which run: its name (infralab runs) or its directory; "
                   "default: the only one")
    p.add_argument("--topology", help="the only run of this topology")
    p.add_argument("--port", type=int, default=0, help="default: any free port")
    p.set_defaults(fn=cmd_view)
    p = sub.add_parser("capture", help="record links of a running emulation (pcap) at "
                       "hosts or router ports, all over the same seconds")
    p.add_argument("host", nargs="+", help="hosts (or HOST-eth0: at the prompt, a bare "
                   "host name is turned into its address), or router ports as ROUTER:PEER or "
                   "ROUTER:SUBNET; e.g. `c1 web2a` or `rc:c1 rc:wan`: both sides of the "
                   "campus NAT (files: c1.pcap, rc-wan.pcap...)")
    p.add_argument("--dir", help="directory for HOST.pcap files (default: here)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long (at most 600)")
    p.add_argument("--filter", help="tcpdump filter, e.g. 'udp port 67 or udp port 68'")
    p.add_argument("-o", "--output", help="pcap file, with one host (default: HOST.pcap)")
    p.add_argument("--run", help="which run: its name (infralab runs) or its directory; "
                   "default: the only one")
    p.add_argument("--topology", help="the only run of this topology")
    p.add_argument("--during", metavar="COMMAND",
                   help="run COMMAND once the capture listens and stop soon after it "
                   "ends, e.g. --during 'infralab dhcp client s1-eth0 --once' (typed in "
                   "a host's shell at the prompt, it runs in that host)")
    p.set_defaults(fn=cmd_capture)
    p = sub.add_parser("list-topologies", help="what `infralab up` can build: shipped, "
                       "generated, imported (Topology Zoo, SNDlib, CAIDA...)")
    p.add_argument("group", nargs="?", help="list one imported group's topologies: zoo, "
                   "sndlib, caida, backbone, gabriel")
    p.set_defaults(fn=cmd_list_topologies)
    p = sub.add_parser("link", help="take a link between two routers of a running "
                       "emulation down or up (the controller reroutes), or `set` what a "
                       "link does (delay, loss...) live")
    p.add_argument("state", choices=["down", "up", "set"])
    p.add_argument("a")
    p.add_argument("b")
    for key in ("delay", "loss", "jitter", "distribution", "loss-correlation",
                "gilbert-elliott", "duplicate", "corrupt", "reorder", "rate", "queue"):
        p.add_argument(f"--{key}", help="with set: e.g. --delay 80ms, --loss 2%%, --rate 10 "
                       "(Mbit/s), --queue 100 (packets)" if key == "delay" else None)
    p.add_argument("--run", help="which run: its name (infralab runs) or its directory; "
                   "default: the only one")
    p.add_argument("--topology", help="the only run of this topology")
    p.set_defaults(fn=cmd_link)
    p = sub.add_parser("ladder", help="a ladder diagram of a capture: text, or SVG/PNG with "
                       "-o; of two captures: NAT before/after")
    p.add_argument("pcap", help="a capture (with a second one: the NAT's inside)")
    p.add_argument("after", nargs="?", help="a capture on the NAT's outside: pair each "
                   "packet with itself before and after translation")
    p.add_argument("-o", "--output", help="write x.svg or x.png (default: text on stdout)")
    p.add_argument("--title")
    p.set_defaults(fn=cmd_ladder)
    p = sub.add_parser("demo", help="build the reference topology and show it working")
    p.add_argument("file", nargs="?", default="world")
    _overlay_flag(p)
    _kernel_flags(p)
    _cluster_flags(p)
    p.set_defaults(fn=cmd_demo)
    sub.add_parser("controller", help="run the os-ken controller alone "
                   "(infralab controller --help)")
    dns_cli.register(sub)
    gslb_cli.register(sub)
    nat_cli.register(sub)
    punch_cli.register(sub)
    dhcp_cli.register(sub)
    lab_cli.register(sub)
    sweep_cli.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["controller"]:  # its own flags: argparse REMAINDER would eat them
        from controllers.main import main as controller_main

        return controller_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigFileError, ZoneError) as e:  # topology, GSLB/DHCP config, zone file
        print(f"infralab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _log("interrupted; torn down")
        return 130
    except Exception as e:  # BuildError and friends: one clear line, no traceback
        from emulation.build import BuildError
        from emulation.runtime import RunError

        if isinstance(e, RunError):  # a run that cannot be named, found or fitted
            print(f"infralab: {e}", file=sys.stderr)
            return 2
        from emulation.servers import ServerError
        from infralab.faultview import TimelineError
        from infralab.ladder import CaptureFileError

        if isinstance(e, (BuildError, TimeoutError, LookupError, CaptureFileError,
                          ServerError, TimelineError)):
            print(f"infralab: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
