"""Configuration files for the real peers infralab is compared with (tests and bench)."""

from __future__ import annotations

from pathlib import Path


def nsd_conf(listen: str, zonesdir: Path | str, zones: dict[str, str], workdir: Path) -> str:
    """An nsd.conf for one foreground server process with response rate limiting off, every
    state file in `workdir`; `listen` is 'ADDR@PORT', `zones` maps zone name -> file."""
    return (f'server:\n  ip-address: {listen}\n  username: ""\n  chroot: ""\n'
            f'  zonesdir: "{zonesdir}"\n  database: ""\n'
            f'  zonelistfile: "{workdir}/zone.list"\n  pidfile: "{workdir}/nsd.pid"\n'
            f'  xfrdfile: "{workdir}/xfrd.state"\n  xfrdir: "{workdir}"\n  server-count: 1\n'
            f'  rrl-ratelimit: 0\nremote-control:\n  control-enable: no\n'
            + "".join(f"zone:\n  name: {name}\n  zonefile: {f}\n" for name, f in zones.items()))
