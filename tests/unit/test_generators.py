"""Research use (issue 7): generated topologies are valid and route end to end."""

import pytest

from tests.unit.simnet import SimNet
from topologies.generators import generate
from topologies.model import TopologyError


def test_generated_chain_routes_from_one_end_to_the_other():
    net = SimNet(generate("chain,routers=5,hosts=1"))
    reply = net.ping("h1x1", "h5x1")
    assert reply is not None and reply.icmp_type == 0 and reply.ttl == 64 - 5  # 5 routers


def test_generated_campus_reaches_the_server_through_its_nat():
    topo = generate("campus,subnets=3,hosts=2")
    assert len(topo.hosts) == 3 * 2 + 1
    net = SimNet(topo)
    reply = net.ping("h3x2", "server")
    assert reply is not None and reply.icmp_type == 0
    seen = net.hosts["server"].received[-1]
    assert str(seen.ip_src) == "203.0.113.1"  # the PAT hides the campus


@pytest.mark.parametrize("spec,problem", [("campus,subnets=0", "1..200"),
                                          ("campus,size=3", "unexpected keyword"),
                                          ("mesh", "unknown generator")])
def test_generator_errors_are_topology_errors(spec, problem):
    with pytest.raises(TopologyError, match=problem):
        generate(spec)
