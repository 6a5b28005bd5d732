"""The pipeline declared once (controllers/pipeline.py) is enforced: the flow simulator
refuses a flow-mod in another part's priority band or cookie space, or one that goes
back up the pipeline; every router, NAT and relay flow of the world passes."""

from __future__ import annotations

import pytest

from controllers.messages import CONTROLLER, Conntrack, FlowMod, Output
from controllers.pipeline import (
    COOKIE,
    COOKIE_NAT,
    COOKIE_RELAY,
    P_ARP,
    P_OWN_PAT,
    P_RELAY,
    T_CLASSIFY,
    T_EGRESS,
    T_POST_NAT,
    T_PRE_NAT,
    T_ROUTE,
    violation,
)
from controllers.router import RouterLogic
from tests.unit.flowsim import FlowSim, PipelineViolation
from topologies import builtin, load
from topologies.plan import make_plan


@pytest.mark.parametrize("flow,why", [
    (FlowMod(T_CLASSIFY, P_OWN_PAT, cookie=COOKIE), "belongs to the nat"),
    (FlowMod(T_CLASSIFY, P_ARP, cookie=COOKIE_NAT), "belongs to the router"),
    (FlowMod(T_CLASSIFY, P_RELAY, cookie=COOKIE_NAT), "belongs to the relay"),
    (FlowMod(T_CLASSIFY, 250, cookie=COOKIE_RELAY), "belongs to the router"),
    (FlowMod(T_CLASSIFY, 999, cookie=COOKIE), "in no band"),
    (FlowMod(T_PRE_NAT, 100, cookie=0x1234), "in no owner's space"),
    (FlowMod(T_ROUTE, 1000, goto=T_PRE_NAT), "may not continue in table 2"),
    (FlowMod(T_PRE_NAT, 180, actions=(Conntrack(7, T_EGRESS),), cookie=COOKIE_NAT),
     "may not continue in table 5"),
    (FlowMod(9, 1), "unknown table"),
])
def test_pipeline_refuses_flows_outside_their_owners_band(flow, why):
    assert why in (violation(flow) or ""), violation(flow)
    with pytest.raises(PipelineViolation):
        FlowSim().apply([flow])


def test_pipeline_accepts_every_flow_the_world_installs():
    plan = make_plan(load(builtin("world")))
    checked = 0
    for rp in plan.routers:
        for m in RouterLogic(rp).connect(0.0):
            if isinstance(m, FlowMod):
                assert violation(m) is None, (rp.name, violation(m), m)
                checked += 1
    assert checked > 500  # routers, NAT rules and relays of seven routers
    assert violation(FlowMod(T_POST_NAT, 210, actions=(Output(CONTROLLER),),
                             cookie=COOKIE_NAT | 42)) is None
