"""WEB-VIEW: the live web view, in a real browser (Debian's Chromium, driven by
Playwright), against the world: the page shows every router and host; a connection from
c1 makes its NAT binding appear in rc's table within 2 s; a DHCP release removes the
lease; unplugging web1b turns its GSLB members red; a NAT behaviour changed from the page
needs the token. A screenshot of each view is saved (INFRALAB_SCREENSHOTS=DIR keeps them
there, e.g. docs/)."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emulation.build import wait_for
from infralab.webview import serve

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def view(world):
    v = serve(world.rundir, world.topo)
    yield v
    v.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    keep = os.environ.get("INFRALAB_SCREENSHOTS")
    return Path(keep) if keep else tmp_path_factory.mktemp("view")


@pytest.fixture(scope="module")
def page(view):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install.sh installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1600, "height": 1000})
        pg.goto(view.url)
        pg.wait_for_selector("#conn.live", timeout=15_000)
        yield pg
        browser.close()


def click(page, name: str) -> None:
    page.locator(f'#topo g.node[data-name="{name}"]').click()
    page.wait_for_function(f"document.getElementById('panel-title').textContent.endsWith("
                           f"' {name}')", timeout=5_000)


def test_view_shows_every_router_and_host_and_the_routers_ready(world, page, shots):
    for name in list(world.topo.routers) + list(world.topo.hosts):
        node = page.locator(f'#topo g.node[data-name="{name}"]')
        assert node.count() == 1, name
        assert name in (node.text_content() or ""), name  # names are text: findable, readable
    for name in world.topo.routers:
        page.wait_for_selector(f'#topo g.node.ready[data-name="{name}"]', timeout=5_000)
    assert re.search(r"(\d+)/\1 routers ready", page.inner_text("#summary"))
    page.screenshot(path=str(shots / "view-topology.png"))


def test_view_map_fits_its_panel_labels_readable_pans_zooms_and_fits_again(world, page, shots):
    """WEB-VIEW on a 1600x1000 window: the whole world fills the map's panel, a router's
    name is drawn at least 10 pixels high, the wheel zooms, a drag pans, `fit` brings
    the whole network back; the addresses the compact map leaves out are in the panel."""
    page.click("#fit")
    box = page.evaluate("""() => {
        const map = document.getElementById('map').getBoundingClientRect();
        const g = document.querySelector('#topo svg g.graph').getBoundingClientRect();
        const t = document.querySelector('#topo g.node[data-name="rc"] text')
            .getBoundingClientRect();
        return {mw: map.width, mh: map.height, gw: g.width, gh: g.height, th: t.height,
                zoom: document.querySelector('#topo svg').dataset.zoom};
    }""")
    # fitted: the drawing spans the panel's width or its height (within its margins)
    assert box["gw"] >= 0.9 * box["mw"] or box["gh"] >= 0.9 * box["mh"], box
    assert box["gw"] <= 1.01 * box["mw"] and box["gh"] <= 1.01 * box["mh"], box  # (strokes)
    assert box["th"] >= 10, box  # a label's line at the default zoom, in screen pixels
    assert box["zoom"] == "1.000", box

    def view_box() -> list[float]:
        return [float(x) for x in page.get_attribute("#topo svg", "viewBox").split()]

    map_box = page.locator("#map").bounding_box()
    cx, cy = map_box["x"] + map_box["width"] / 2, map_box["y"] + map_box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -300)
    page.wait_for_function("Number(document.querySelector('#topo svg').dataset.zoom) > 1")
    zoomed = view_box()
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 40, steps=5)
    page.mouse.up()
    panned = view_box()
    assert panned[0] < zoomed[0] and panned[1] < zoomed[1]  # dragged right and down
    assert panned[2:] == pytest.approx(zoomed[2:], rel=1e-4)  # at the same zoom
    page.screenshot(path=str(shots / "view-zoomed.png"))
    page.click("#fit")
    assert page.get_attribute("#topo svg", "data-zoom") == "1.000"
    click(page, "rc")
    panel = page.inner_text("#panel-body")
    assert "10.1.1.1/24" in panel and "PAT 203.0.113.1" in panel, panel[:400]
    click(page, "ldns")
    assert "10.1.0.53 on svc" in page.inner_text("#panel-body")


def test_view_new_nat_binding_appears_on_rc_within_2s(world, page, shots):
    from playwright.sync_api import expect

    click(page, "rc")
    seen = world.host("c1").cmd("curl -s -m4 http://198.51.100.131/whoami").strip()
    assert re.fullmatch(r"203\.0\.113\.1:\d+", seen), seen
    t0 = time.monotonic()
    row = page.locator("#panel-body tr", has_text=seen)
    expect(row).to_be_visible(timeout=2_000)
    took = time.monotonic() - t0
    assert "10.1.1.11:" in row.inner_text(), row.inner_text()
    print(f"WEB-VIEW: rc's binding {seen} on the page {took:.2f} s after the connection")
    event = page.locator("#events li", has_text=seen.split(":")[1])
    expect(event.first).to_be_visible(timeout=3_000)  # the translation log, as events
    page.screenshot(path=str(shots / "view-nat.png"))


def test_view_router_panel_has_its_routes_and_a_core_link_down_turns_red(world, page):
    from playwright.sync_api import expect

    click(page, "rc")
    expect(page.locator("#panel-body tr", has_text="198.51.100.0/25").first).to_be_visible(
        timeout=3_000)  # rc's FIB: dc1 by the route the controller computed
    edge = page.locator('#topo g.edge[data-a="ri"][data-b="rs"], '
                        '#topo g.edge[data-a="rs"][data-b="ri"]')
    assert edge.count() == 1
    world.link("ri", "rs", False)
    try:
        expect(edge).to_have_class(re.compile(r"\bdown\b"), timeout=4_000)
        expect(page.locator("#summary")).to_contain_text("ri--rs")
        expect(page.locator("#events li", has_text="ri--rs").first).to_contain_text("down")
    finally:
        world.link("ri", "rs", True)
    expect(edge).not_to_have_class(re.compile(r"\bdown\b"), timeout=6_000)


def test_view_shows_the_labs_checkers_verdicts(world, page, shots):
    """The nat lab's step 2 (c1 through rc's PAT) was done by the NAT test above."""
    from playwright.sync_api import expect

    page.locator("#labs-button").click()
    row = page.locator("#panel-body tr", has_text="c1 reached the internet through rc's PAT")
    expect(row.locator("td.pass")).to_have_text("PASS", timeout=7_000)
    todo = page.locator("#panel-body tr", has_text="na was switched to symmetric")
    expect(todo.locator("td.todo")).to_have_text("TODO")
    page.screenshot(path=str(shots / "view-labs.png"))


def test_view_traces_a_name_and_highlights_a_path(world, page, shots):
    from playwright.sync_api import expect

    form = page.locator("#trace-form")
    form.locator('input[name="name"]').fill("www.example.com")
    form.locator('input[name="host"]').fill("c1")
    form.locator("button").click()
    steps = page.locator("#panel-body ol.ladder li")
    expect(steps.first).to_contain_text("root (198.18.1.1)", timeout=15_000)
    text = steps.all_inner_texts()
    assert any("tldcom (198.18.1.11)" in t and "referral" in t for t in text), text
    assert any("gslb (198.18.3.1)" in t and "answer" in t for t in text), text
    for name in ("root", "tldcom", "ns1", "gslb"):  # the servers asked, on the map
        expect(page.locator(f'#topo g.node.traced[data-name="{name}"]')).to_have_count(1)
    page.screenshot(path=str(shots / "view-trace.png"))

    form = page.locator("#path-form")
    form.locator('input[name="src"]').fill("xs")
    form.locator('input[name="dst"]').fill("web2a")
    form.locator("button").click()
    expect(page.locator("#path-text")).to_contain_text("xs → rs → ri → rb → web2a")
    for a, b in (("rs", "ri"), ("ri", "rb")):
        edge = page.locator(f'#topo g.edge.onpath[data-a="{a}"][data-b="{b}"], '
                            f'#topo g.edge.onpath[data-a="{b}"][data-b="{a}"]')
        expect(edge).to_have_count(1)
    expect(page.locator("#topo g.node.onpath")).to_have_count(5)  # xs, 3 routers, web2a
    page.screenshot(path=str(shots / "view-path.png"))


def test_view_dhcp_release_removes_the_lease(world, page, shots):
    from playwright.sync_api import expect

    ip = world.ip("c4")
    assert ip, "c4 has no lease"
    click(page, "dhcp1")
    row = page.locator("#panel-body tr", has_text=ip)
    expect(row).to_be_visible(timeout=3_000)
    expect(page.locator("#panel-body p.pools")).to_contain_text("10.1.2.0/24")
    page.screenshot(path=str(shots / "view-dhcp.png"))
    world.stop_service("c4.dhcp-client")  # the client sends RELEASE as it stops
    try:
        expect(row).to_have_count(0, timeout=4_000)
    finally:
        world.start_service("c4.dhcp-client")
        wait_for(lambda: world.ip("c4"), 20, "c4's lease again")


def test_view_unplugged_web1b_turns_its_gslb_members_red(world, page, shots):
    from playwright.sync_api import expect

    click(page, "gslb")
    cells = page.locator("#panel-body tr", has_text="198.51.100.12").locator("td:nth-child(4)")
    expect(cells.first).to_have_text("up", timeout=5_000)
    world.host("xb").cmd("dig +short @198.18.3.1 rtt.gslb.example.com")  # one decision
    decision = page.locator("#panel-body tr", has_text="rtt.gslb.example.com").first
    expect(decision).to_be_visible(timeout=3_000)
    assert "198.18.20.10" in decision.inner_text()  # who asked, and the why beside it
    world.link("web1b", "rs", False)
    try:
        cable = page.locator('#topo g.edge[data-b="web1b"]')
        expect(cable).to_have_class(re.compile(r"\bdown\b"), timeout=8_000)  # unplugged
        expect(cells.first).to_have_text("down", timeout=8_000)  # interval x fall + a poll
        assert "unhealthy" in (cells.first.get_attribute("class") or "")
        expect(page.locator("#events li", has_text="web1b").first).to_be_visible(timeout=3_000)
        page.screenshot(path=str(shots / "view-gslb.png"))
    finally:
        world.link("web1b", "rs", True)


def test_view_nat_behaviour_changed_from_the_page_needs_the_token(world, view, page):
    from playwright.sync_api import expect

    url = view.url + "nat/na/nalink?mapping=address-and-port-dependent"
    for headers in ({}, {"X-Infralab-Token": "wrong"}):
        req = urllib.request.Request(url, method="POST", data=b"", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 403
    req = urllib.request.Request(view.url + "state", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as e:  # DNS rebinding: not our name
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403
    assert world.api("/nat/na")["na"]["interfaces"]["nalink"]["mapping"] == \
        "endpoint-independent"
    click(page, "na")
    page.evaluate(f"sessionStorage.setItem('infralab-token', {json.dumps(view.token)})")
    form = page.locator('form.behaviour[data-iface="nalink"]')
    form.locator('select[name="mapping"]').select_option("address-and-port-dependent")
    form.locator("button").click()
    try:
        wait_for(lambda: world.api("/nat/na")["na"]["interfaces"]["nalink"]["mapping"]
                 == "address-and-port-dependent", 5, "the page's change")
        # (the view's own line: NAT events about nalink's dropped bindings may come first)
        mine = page.locator("#events li", has_text="mapping=address-and-port-dependent")
        expect(mine.first).to_contain_text("done")
    finally:
        world.api("/nat/na/nalink?mapping=endpoint-independent"
                  "&filtering=endpoint-independent", "POST")


def test_view_sets_a_cable_down_and_up_from_the_page_with_the_token(world, view, page):
    from playwright.sync_api import expect

    page.evaluate(f"sessionStorage.setItem('infralab-token', {json.dumps(view.token)})")
    cable = page.locator('#topo g.edge[data-b="xb"]')
    cable.dispatch_event("click")  # (a thin line: the click goes to its group)
    expect(page.locator("#panel-title")).to_have_text("link rb — xb")
    expect(page.locator("#link-state")).to_have_text("up")
    try:
        page.locator('form.link button[data-state="down"]').click()
        # (seen at the view's next link poll: LINK_POLL_S, plus a snapshot's own time)
        expect(cable).to_have_class(re.compile(r"\bdown\b"), timeout=8_000)
        expect(page.locator("#link-state")).to_have_text("down")
        assert "100% packet loss" in world.host("xb").cmd("ping -n -c1 -w2 198.18.20.1")
    finally:
        page.locator('form.link button[data-state="up"]').click()
    expect(cable).not_to_have_class(re.compile(r"\bdown\b"), timeout=8_000)
    wait_for(lambda: " 0% packet loss" in world.host("xb").cmd("ping -n -c1 -w2 198.18.20.1"),
             10, "xb's cable back")

