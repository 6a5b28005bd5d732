"""TB-TOPO at the prompt: Mininet's habits (`pingall`, `nodes`, `links`, `dump`) on the
topology's own hosts and routers, with leased addresses, NAT-hidden pairs named apart from
loss, and a script that fails when a pair that should answer does not."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.scenarios.test_lifecycle import REPO


def up_script(spec: str, script: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "script.cli"
    path.write_text(script)
    return subprocess.run([sys.executable, "-m", "infralab", "up", spec, "--script", str(path)],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          cwd=REPO)


def results(out: str) -> list[tuple[int, int, int, int]]:
    """(reached, tried, loss %, hidden) of each pingall in the output."""
    return [(int(a), int(b), int(c), int(d or 0)) for a, b, c, d in re.findall(
        r"\*\*\* Results: (\d+)/(\d+) reachable, (\d+)% loss(?:; (\d+) pairs hidden)?", out)]


def test_tb_topo_pingall_on_the_world_no_error_no_loss_nat_hidden_pairs_named(tmp_path):
    r = up_script("world", "pingall\nnodes\nlinks\ndump\nlink c1 rc down\npingall\n"
                  "pingall\n", tmp_path)
    out = r.stdout + r.stderr
    assert "could not parse" not in out and "Error" not in out, out[-3000:]
    first, second = results(out)  # (the third line never ran: the second failed)
    n = 28  # the world's hosts: no delay node among them
    reached, tried, loss, hidden = first
    assert (reached, loss) == (tried, 0) and tried + hidden == n * (n - 1), first
    assert (tried, hidden) == (482, 274), first  # (the README and docs/world.md say so)
    assert hidden > 0 and "hidden by NAT as configured" in out
    assert re.search(r"behind rc's NAT on wan:\n(?:\s+\S+ from .*\n)*\s+c1 from .*\bns1\b", out)
    assert re.search(r"behind na's NAT on nalink:\n\s+h1 from .*\brv\b", out)
    # the prompt's listings: the topology's names, no delay node, leases shown
    nodes = re.search(r"available nodes are: \n(.*)", out).group(1).split()
    assert set(nodes) >= {"c1", "web2a", "rc", "rb"} and not any(x.startswith("dly") for x in nodes)
    assert re.search(r"i\wri-eth11<->i\wrb-eth1 \(ri rb\) \(UP UP\) \[delay 20ms\]", out)
    assert "<Host c1: c1-eth0:10.1.1.11 " in out
    # a pulled cable: c1's pairs are loss, named, and the script stops with status 1
    reached2, tried2, loss2, _ = second
    assert tried2 == tried and 0 < tried2 - reached2 and loss2 > 0, second
    lost = re.search(r"\*\*\* lost: (.*)", out).group(1).split()
    assert lost and all("c1" in pair.split("->") for pair in lost), lost
    assert "c1->c2" in lost and "c2->c1" in lost
    assert r.returncode == 1, out[-2000:]
    assert out.count("infralab> pingall") == 2  # the script stopped at the failure


def test_tb_topo_pingall_on_zoo_abilene_has_no_delay_node_and_no_loss(tmp_path):
    import topohub  # noqa: F401

    r = up_script("zoo:Abilene", "pingall\n", tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "could not parse" not in out and "dly" not in out.split("infralab> pingall")[1]
    (reached, tried, loss, hidden), = results(out)
    assert tried == reached > 0 and loss == 0 and hidden == 0


def test_tb_topo_the_docs_sample_topology_builds_as_written(tmp_path):
    """docs/topologies.md's sample (topologies/examples/mine.yaml): a host leased through
    a relay from a host of its own, a web server, every pair reachable."""
    r = up_script("topologies/examples/mine.yaml", "pingall\nh4 ip -4 -o addr show h4-eth0\n"
                  "h1 curl -s -o /dev/null -w 'code=%{http_code}\\n' http://10.0.3.20/\n",
                  tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert results(out) == [(12, 12, 0, 0)], out[-2000:]
    assert re.search(r"inet 10\.0\.3\.1\d\d/24", out) and "code=200" in out, out[-2000:]
