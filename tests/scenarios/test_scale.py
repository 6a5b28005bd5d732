"""Scale on the live network: a generated campus of 1,001 hosts behind ten
routers comes up, a sample of 100 pings between hosts of different routers all answer,
and the teardown leaves nothing behind."""

from __future__ import annotations

import random
import re

from tests.scenarios.conftest import build
from topologies.generators import generate

SPEC = "campus,routers=10,subnets=10,hosts=10,nat=false"  # addresses reachable end to end


def test_scale_thousand_hosts_answer_a_ping_sample_across_routers_and_leave_nothing():
    topo = generate(SPEC)
    assert len(topo.hosts) == 1001 and len(topo.routers) == 11
    edge = {h.name: h.subnet.split("x")[0] for h in topo.hosts.values()}  # s<router>x<subnet>
    rng = random.Random(15)
    sources = rng.sample(sorted(n for n in topo.hosts if n != "server"), 100)
    pairs = []
    for s in sources:  # each source pings one host behind another router (or the server)
        t = rng.choice([n for n in topo.hosts if edge[n] != edge[s]])
        pairs.append((s, t))
    with build(topo) as emu:
        for s, t in pairs:  # all at once: each host's own shell
            emu.host(s).sendCmd(f"ping -n -c1 -w5 {emu.ip(t)}")
        out = {(s, t): emu.host(s).waitOutput() for s, t in pairs}
        manifest = emu.manifest
    lost = [f"{s}->{t}" for (s, t), text in out.items()
            if not re.search(r"\b1 received\b", text)]
    assert len(out) == 100 and not lost, f"{len(lost)} of 100 pings unanswered: {lost[:10]}"
    assert manifest is not None and manifest.leftovers() == []
