// infralab view: the topology and, live, what each part of the network holds.
// No library: the server pushes a snapshot (event "state") and new events ("log") by
// server-sent events; this file draws them into the SVG and the panels.
"use strict";

let state = {};
let selected = null; // {kind: "r" | "h" | "s", name}
let seenRows = new Map(); // panel key -> set of row keys already shown (new ones glow)
let facts = { routers: {}, hosts: {} }; // addresses and rules the compact map leaves out
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function table(head, rows, key, panelKey) {
  const seen = seenRows.get(panelKey);
  const now = new Set();
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))));
  const body = el("tbody");
  for (const r of rows) {
    const k = key(r);
    now.add(k);
    const tr = el("tr", { "data-key": k }, ...r.cells.map((c) => el("td", {}, c ?? "")));
    if (seen && !seen.has(k)) tr.classList.add("new");
    body.append(tr);
  }
  seenRows.set(panelKey, now);
  t.append(body);
  return t;
}

// ---- the topology --------------------------------------------------------------------------
async function loadTopology() {
  const text = await (await fetch("/topology.svg")).text();
  $("topo").innerHTML = text.slice(text.indexOf("<svg"));
  try {
    facts = await (await fetch("/topology.json")).json();
  } catch (e) { /* the map works without them */ }
  panZoom($("topo").querySelector("svg"));
  for (const g of document.querySelectorAll("#topo g.node")) {
    const title = g.querySelector("title")?.textContent || "";
    const [kind, name] = title.split(":");
    g.dataset.kind = kind;
    g.dataset.name = name;
    g.setAttribute("role", "button");
    g.setAttribute("aria-label", `${{ r: "router", h: "host", s: "subnet" }[kind] || kind} ${name}`);
    g.addEventListener("click", () => select(kind, name));
  }
  for (const g of document.querySelectorAll("#topo g.edge")) {
    const title = g.querySelector("title")?.textContent.replace("&#45;&#45;", "--") || "";
    const [a, b] = title.split("--").map((x) => x.split(":"));
    if (a && b) {
      g.dataset.a = a[1];
      g.dataset.b = b[1];
      g.dataset.akind = a[0];
      g.dataset.bkind = b[0];
      g.setAttribute("role", "button");
      g.setAttribute("aria-label", `link ${a[1]} ${b[1]}`);
      g.addEventListener("click", () => selectLink(g));
    }
  }
}

// ---- pan and zoom -----------------------------------------------------------------------------
// The drawing fills its panel (the SVG's viewBox, scaled to fit); the wheel zooms about
// the pointer, a drag pans, "fit" shows the whole network again. A drag is not a click:
// the nodes' click handlers see no click after a pan.
let fitView = null;
let dragged = false;

function setView(svg, v) {
  svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  svg.dataset.zoom = (fitView.w / v.w).toFixed(3);
}

function currentView(svg) {
  const b = svg.viewBox.baseVal;
  return { x: b.x, y: b.y, w: b.width, h: b.height };
}

function zoomAt(svg, factor, clientX, clientY) {
  const v = currentView(svg);
  const pt = svg.createSVGPoint();
  pt.x = clientX;
  pt.y = clientY;
  const p = pt.matrixTransform(svg.getScreenCTM().inverse());
  setView(svg, { x: p.x - (p.x - v.x) * factor, y: p.y - (p.y - v.y) * factor,
                 w: v.w * factor, h: v.h * factor });
}

function panZoom(svg) {
  if (!svg) return;
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  fitView = currentView(svg);
  setView(svg, fitView);
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoomAt(svg, ev.deltaY < 0 ? 0.8 : 1.25, ev.clientX, ev.clientY);
  }, { passive: false });
  let start = null;
  svg.addEventListener("pointerdown", (ev) => {
    start = { x: ev.clientX, y: ev.clientY, v: currentView(svg) };
    dragged = false;
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!start || !(ev.buttons & 1)) return;
    const dx = ev.clientX - start.x;
    const dy = ev.clientY - start.y;
    if (!dragged && Math.hypot(dx, dy) < 4) return;
    dragged = true;
    svg.classList.add("panning");
    const scale = svg.getScreenCTM().a; // screen pixels per drawing unit
    setView(svg, { ...start.v, x: start.v.x - dx / scale, y: start.v.y - dy / scale });
  });
  const end = () => { start = null; svg.classList.remove("panning"); };
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointerleave", end);
  svg.addEventListener("click", (ev) => {
    if (dragged) { ev.stopPropagation(); dragged = false; }
  }, true);
  const centre = () => {
    const r = svg.getBoundingClientRect();
    return [r.left + r.width / 2, r.top + r.height / 2];
  };
  $("zoom-in").addEventListener("click", () => zoomAt(svg, 0.8, ...centre()));
  $("zoom-out").addEventListener("click", () => zoomAt(svg, 1.25, ...centre()));
  $("fit").addEventListener("click", () => setView(svg, fitView));
}

// A link of the drawing as the two nodes whose cable it is: two routers, or a host and
// the router of its subnet (drawn subnet -- host); null for a router's subnet switch.
function linkEnds(g) {
  const { a, b, akind, bkind } = g.dataset;
  if (akind === "r" && bkind === "r") return [a, b];
  if (akind === "s" && bkind === "h") {
    const up = document.querySelector(`#topo g.edge[data-b="${CSS.escape(a)}"][data-bkind="s"]`);
    return up ? [up.dataset.a, b] : null;
  }
  return null;
}

function selectLink(g) {
  selected = { kind: "link", name: `${g.dataset.a}--${g.dataset.b}`, g };
  drawPanel();
}

function linkPanel(body, g) {
  const ends = linkEnds(g);
  if (!ends) {
    body.append(el("p", {}, "a router's port into a subnet's switch: click a host's cable, " +
      "or a link between two routers"));
    return;
  }
  const name = [...ends].sort().join("--");
  const down = (state.links_down || []).includes(name);
  const rate = (state.links || {})[`${ends[0]}--${ends[1]}`] || (state.links || {})[`${ends[1]}--${ends[0]}`];
  body.append(el("p", { id: "link-state", class: down ? "unhealthy" : "healthy" }, down ? "down" : "up"));
  if (rate) body.append(el("p", {}, `${rate.pps} packets/s, ${rate.bps} bit/s at the router's port`));
  const form = el("form", { class: "link" });
  for (const to of ["down", "up"]) {
    const btn = el("button", { type: "button", "data-state": to }, `set ${to}`);
    btn.addEventListener("click", () => setLink(ends, to));
    form.append(btn, " ");
  }
  body.append(form);
}

async function withToken(send) {
  let token = sessionStorage.getItem("infralab-token");
  if (!token) {
    token = prompt("The token printed by `infralab view` (or `infralab up --web`):");
    if (!token) return null;
    sessionStorage.setItem("infralab-token", token);
  }
  const r = await send(token);
  if (r.status === 403) sessionStorage.removeItem("infralab-token");
  return r;
}

async function setLink([a, b], to) {
  const r = await withToken((token) => fetch(`/link/${a}/${b}?state=${to}`, {
    method: "POST", headers: { "X-Infralab-Token": token },
  }));
  if (!r) return;
  addEvents([{ time: Date.now() / 1000, source: "view", kind: r.ok ? "changed" : "refused",
    text: `link ${a} ${b} ${to}: ${r.ok ? "done" : await r.text()}` }]);
}

function drawState() {
  $("topology").textContent = state.topology || "";
  const routers = state.routers || {};
  const ready = Object.values(routers).filter((r) => r.ready).length;
  $("summary").textContent = `${ready}/${Object.keys(routers).length} routers ready` +
    (state.links_down?.length ? `, links down: ${state.links_down.join(", ")}` : "");
  for (const g of document.querySelectorAll('#topo g.node[data-kind="r"]')) {
    const r = routers[g.dataset.name];
    g.classList.toggle("ready", !!r?.ready);
    g.classList.toggle("notready", !!r && !r.ready);
  }
  const down = new Set(state.links_down || []);
  const hosts = new Set([...document.querySelectorAll('#topo g.node[data-kind="h"]')]
    .map((g) => g.dataset.name));
  const downHosts = new Set([...down].flatMap((l) => l.split("--")).filter((n) => hosts.has(n)));
  for (const g of document.querySelectorAll("#topo g.edge")) {
    const { a, b } = g.dataset;
    if (!a || !b) continue;
    // a router link by its two routers; a host's link (drawn subnet -- host) by the host
    g.classList.toggle("down", down.has([a, b].sort().join("--")) ||
      downHosts.has(b) || downHosts.has(a));
    const rate = (state.links || {})[`${a}--${b}`] || (state.links || {})[`${b}--${a}`];
    let t = g.querySelector("text.rate");
    if (rate) {
      if (!t) {
        const label = g.querySelector("text");
        t = document.createElementNS("http://www.w3.org/2000/svg", "text");
        t.setAttribute("class", "rate");
        t.setAttribute("text-anchor", "middle");
        t.setAttribute("x", label?.getAttribute("x") || 0);
        t.setAttribute("y", Number(label?.getAttribute("y") || 0) + 10);
        g.append(t);
      }
      t.textContent = `${rate.pps} pkt/s`;
    } else if (t) {
      t.remove();
    }
  }
  if (selected) drawPanel();
}

// ---- the panel ---------------------------------------------------------------------------------
function select(kind, name) {
  for (const g of document.querySelectorAll("#topo g.node.selected")) g.classList.remove("selected");
  document.querySelector(`#topo g.node[data-name="${CSS.escape(name)}"]`)?.classList.add("selected");
  selected = { kind, name };
  seenRows = new Map();
  drawPanel();
}

function drawPanel() {
  const { kind, name } = selected;
  $("panel-title").textContent = kind === "labs" ? "labs on this network"
    : kind === "link" ? `link ${(linkEnds(selected.g) || name.split("--")).join(" — ")}`
    : `${{ r: "router", h: "host", s: "subnet" }[kind] || kind} ${name}`;
  const body = el("div");
  if (kind === "link") linkPanel(body, selected.g);
  else if (kind === "r") routerPanel(body, name);
  else if (kind === "h") hostPanel(body, name);
  else if (kind === "labs") labsPanel(body);
  else body.append(el("p", {}, "a subnet: click a router or a host on it"));
  $("panel-body").replaceChildren(body);
}

function routerPanel(body, name) {
  const r = (state.routers || {})[name];
  if (!r) {
    body.append(el("p", {}, "not known to the controller (yet)"));
    return;
  }
  body.append(el("p", { class: r.ready ? "healthy" : "unhealthy" }, r.ready ? "ready" : "not ready"));
  const f = facts.routers[name];
  if (f) {
    body.append(el("h3", {}, `Interfaces (${f.role})`));
    body.append(table(["subnet", "address"], Object.entries(f.interfaces).map(([s, a]) => ({
      s, cells: [s, a] })), (x) => x.s, `ifaces:${name}`));
    for (const line of f.nat) body.append(el("p", { class: "rule" }, line));
    if (f.relay.length) body.append(el("p", { class: "rule" }, `DHCP relay to ${f.relay.join(", ")}`));
  }
  body.append(el("h3", {}, "Neighbours"), el("p", {}, r.neighbors.join(", ") || "none yet"));
  body.append(el("h3", {}, "Counters"),
    el("p", {}, Object.entries(r.counters || {}).map(([k, v]) => `${k} ${v}`).join(", ")));
  const routes = (state.routes || {})[name];
  if (routes) {
    body.append(el("h3", {}, `Routes (FIB): ${routes.length}`));
    const rows = routes.map((r) => ({ r, cells: [r.prefix, r.origin, (r.via || []).join(", "), r.backup || ""] }));
    body.append(table(["prefix", "origin", "via", "backup"], rows, (x) => x.r.prefix, `routes:${name}`));
  }
  const nat = (state.nat || {})[name];
  if (!nat) return;
  body.append(el("h3", {}, `NAT: ${nat.count} translation(s)`));
  for (const [iface, i] of Object.entries(nat.interfaces || {})) {
    if (!i.pat) continue; // mapping and filtering are PAT behaviours (RFC 4787)
    const form = el("form", { class: "behaviour", "data-iface": iface });
    const pick = (what, value) => {
      const s = el("select", { name: what, "aria-label": `${iface} ${what}` });
      for (const o of ["endpoint-independent", "address-dependent", "address-and-port-dependent"]) {
        const opt = el("option", { value: o }, o);
        if (o === value) opt.selected = true;
        s.append(opt);
      }
      return s;
    };
    form.append(`${iface}: mapping `, pick("mapping", i.mapping), " filtering ",
      pick("filtering", i.filtering), " ", el("button", { type: "submit" }, "apply"));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); setBehaviour(name, iface, form); });
    body.append(form);
  }
  const rows = (nat.rows || []).map((t) => ({
    t, cells: [t.kind, t.interface, t.proto, t.inside, t.outside, (t.remotes || []).join(" "),
      t.age ?? "", t.idle ?? "", t.packets ?? ""],
  }));
  body.append(table(["kind", "on", "proto", "inside", "outside", "remotes", "age s", "idle s",
    "packets"], rows, (r) => `${r.t.kind} ${r.t.proto} ${r.t.inside} ${r.t.outside}`, `nat:${name}`));
}

async function setBehaviour(router, iface, form) {
  const q = new URLSearchParams(new FormData(form)).toString();
  const r = await withToken((token) => fetch(`/nat/${router}/${iface}?${q}`, {
    method: "POST", headers: { "X-Infralab-Token": token },
  }));
  if (!r) return;
  addEvents([{ time: Date.now() / 1000, source: "view", kind: r.ok ? "changed" : "refused",
    text: `${router} ${iface} ${q}: ${r.ok ? "done" : await r.text()}` }]);
}

function hostPanel(body, name) {
  const services = (state.services || {})[name] || [];
  const f = facts.hosts[name];
  if (f) body.append(el("p", { class: "address" }, `${f.address} on ${f.subnet}`));
  body.append(el("p", {}, services.length ? `services: ${services.join(", ")}` : "no service"));
  const leases = (state.leases || {})[name];
  if (leases) {
    body.append(el("h3", {}, `DHCP: ${leases.count} lease(s)`));
    const free = Object.entries(leases.free || {});
    if (free.length) {
      body.append(el("p", { class: "pools" }, "pools: " +
        free.map(([net, n]) => `${net} ${n} free`).join(", ")));
    }
    const rows = leases.rows.map((l) => ({ l, cells: [l.ip, l.mac, l.state, l.remaining, l.hostname] }));
    body.append(table(["address", "MAC", "state", "left s", "host"], rows, (r) => `${r.l.ip} ${r.l.mac}`,
      `leases:${name}`));
  }
  const gslb = (state.gslb || {})[name];
  if (gslb) {
    for (const [pool, members] of Object.entries(gslb)) {
      body.append(el("h3", {}, `pool ${pool}`));
      const rows = Object.entries(members).map(([m, v]) => ({
        m, cells: [m, v.address, v.site, v.state, v.last || ""],
      }));
      const t = table(["member", "address", "site", "health", "last check"], rows, (r) => r.m,
        `gslb:${name}:${pool}`);
      for (const tr of t.querySelectorAll("tbody tr")) {
        const health = tr.children[3];
        health.classList.add(health.textContent === "up" ? "healthy" : "unhealthy");
      }
      body.append(t);
    }
  }
  const decisions = (state.decisions || {})[name];
  if (decisions) {
    body.append(el("h3", {}, "last decisions"));
    const rows = decisions.map((d) => ({
      d, cells: [new Date(d.t * 1000).toLocaleTimeString(), d.client, d.name, d.algorithm,
        d.reason, (d.answer || []).join(", ")],
    }));
    body.append(table(["time", "client", "name", "algorithm", "why", "answer"], rows,
      (r) => `${r.d.t} ${r.d.client} ${r.d.name}`, `decisions:${name}`));
  }
  const cache = (state.caches || {})[name];
  if (cache) {
    body.append(el("h3", {}, `resolver cache: ${cache.count} RRset(s)`));
    const rows = cache.rows.map((c) => ({
      c, cells: [c.name, c.type, c.ttl, c.negative ? "NXDOMAIN/NODATA" : (c.data || []).slice(0, 3).join(", ")],
    }));
    body.append(table(["name", "type", "TTL left", "data"], rows, (r) => `${r.c.name} ${r.c.type}`,
      `cache:${name}`));
  }
}

function labsPanel(body) {
  const labs = state.labs || [];
  if (!labs.length) body.append(el("p", {}, "no lab runs on this topology"));
  for (const lab of labs) {
    const done = lab.steps.filter((x) => x.ok).length;
    body.append(el("h3", {}, `${lab.name}: ${done}/${lab.steps.length} steps done`));
    const rows = lab.steps.map((x) => ({ x, cells: [x.step, x.ok ? "PASS" : "TODO", x.title, x.why] }));
    const t = table(["step", "", "what", "evidence"], rows, (r) => `${lab.name}:${r.x.step}:${r.x.ok}`,
      `labs:${lab.name}`);
    for (const tr of t.querySelectorAll("tbody tr")) {
      const verdict = tr.children[1];
      verdict.classList.add(verdict.textContent === "PASS" ? "pass" : "todo");
    }
    body.append(t);
  }
}

$("labs-button").addEventListener("click", () => select("labs", ""));

// ---- trace a name, show a path -----------------------------------------------------------------
function clearMarks() {
  for (const g of document.querySelectorAll("#topo .onpath, #topo .traced")) {
    g.classList.remove("onpath", "traced");
  }
}

function node(name) {
  return document.querySelector(`#topo g.node[data-name="${CSS.escape(name)}"]`);
}

function showResult(title, body) {
  selected = null;
  $("panel-title").textContent = title;
  $("panel-body").replaceChildren(body);
}

$("trace-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams(new FormData(ev.target));
  showResult(`trace ${q.get("name")} from ${q.get("host")}`, el("p", {}, "resolving from the root…"));
  const r = await fetch(`/trace?${q}`);
  if (!r.ok) { showResult("trace", el("p", { class: "unhealthy" }, await r.text())); return; }
  const t = await r.json();
  clearMarks();
  const list = el("ol", { class: "ladder" });
  for (const s of t.steps) {
    const who = s.node ? `${s.node} (${s.server})` : s.server;
    list.append(el("li", { class: `step ${s.outcome}` },
      `${q.get("host")} → ${who}, zone ${s.zone}: ${s.qname} ${s.qtype} — ${s.outcome}`,
      s.detail ? ` (${s.detail})` : ""));
    if (s.node) node(s.node)?.classList.add("traced");
  }
  node(q.get("host"))?.classList.add("traced");
  const body = el("div", {}, el("p", {}, `${t.rcode}: ${t.answer.join(", ") || "no answer"}`), list);
  showResult(`trace ${t.name} ${t.type} from ${q.get("host")}`, body);
});

$("path-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = new URLSearchParams(new FormData(ev.target));
  const r = await fetch(`/path?${q}`);
  if (!r.ok) { showResult("path", el("p", { class: "unhealthy" }, await r.text())); return; }
  const p = await r.json();
  clearMarks();
  for (const n of p.nodes) node(n)?.classList.add("onpath");
  for (let i = 0; i + 1 < p.routers.length; i++) {
    const [a, b] = [p.routers[i], p.routers[i + 1]];
    for (const g of document.querySelectorAll("#topo g.edge")) {
      if ((g.dataset.a === a && g.dataset.b === b) || (g.dataset.a === b && g.dataset.b === a)) {
        g.classList.add("onpath");
      }
    }
  }
  showResult(`path ${p.src} → ${p.dst}`, el("p", { id: "path-text" },
    `${p.src} → ${p.routers.join(" → ")} → ${p.end === "delivered" ? p.dst : p.end} (${p.address})`));
});

// ---- the event stream ------------------------------------------------------------------------
function addEvents(batch) {
  const list = $("events");
  const filter = $("filter").value.toLowerCase();
  for (const e of batch) {
    const li = el("li", {},
      el("span", { class: "time" }, new Date(e.time * 1000).toLocaleTimeString() + " "),
      el("span", { class: "src" }, e.source), el("span", { class: "kind" }, e.kind), " ", e.text);
    if (filter && !li.textContent.toLowerCase().includes(filter)) li.classList.add("hidden");
    list.prepend(li);
  }
  while (list.children.length > 300) list.lastChild.remove();
}

$("filter").addEventListener("input", () => {
  const f = $("filter").value.toLowerCase();
  for (const li of $("events").children) li.classList.toggle("hidden", !!f && !li.textContent.toLowerCase().includes(f));
});

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "conn live"; });
  es.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn lost"; });
  es.addEventListener("state", (m) => { state = JSON.parse(m.data); drawState(); });
  es.addEventListener("log", (m) => addEvents(JSON.parse(m.data)));
}

loadTopology().then(connect);
