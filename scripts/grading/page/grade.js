// The grading page: shows one photograph's zone-B measurement and sends each correction to the
// server, which measures again (one implementation of the biomarkers, in Python) and saves it.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const state = { photos: [], current: null, data: null, selected: null, saving: Promise.resolve(), drag: null };
const $ = (id) => document.getElementById(id);

function setStatus(text, error) {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function request(method, url, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  return { ok: response.ok, status: response.status, data };
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

async function loadList() {
  const { ok, data } = await request("GET", "/api/photos");
  if (!ok) return setStatus(data.error, true);
  $("folder").textContent = data.folder;
  state.photos = data.photos;
  const list = $("photos");
  list.replaceChildren();
  for (const p of data.photos) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = p.id;
    button.dataset.id = p.id;
    if (p.problem) {
      button.classList.add("broken");
      button.title = p.problem;
    }
    if (p.graded) button.classList.add("graded");
    button.addEventListener("click", () => open(p.id));
    item.append(button);
    list.append(item);
  }
  const first = data.photos.find((p) => !p.problem) || data.photos[0];
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (first) open(data.photos.some((p) => p.id === wanted) ? wanted : first.id);
}

async function open(id) {
  state.current = id;
  state.selected = null;
  location.hash = encodeURIComponent(id);
  for (const b of document.querySelectorAll("#photos button")) {
    b.setAttribute("aria-current", String(b.dataset.id === id));
  }
  const { ok, data } = await request("GET", `/api/photos/${encodeURIComponent(id)}`);
  if (!ok) {
    state.data = null;
    const button = document.querySelector(`#photos button[data-id="${CSS.escape(id)}"]`);
    if (button) {
      button.classList.add("broken");
      button.title = data.error;
    }
    $("title").textContent = id;
    $("photo").removeAttribute("src");
    $("map").removeAttribute("src");
    $("overlay").replaceChildren();
    return setStatus(`${id}: ${data.error}`, true);
  }
  const base = `/api/photos/${encodeURIComponent(id)}`;
  $("photo").src = `${base}/photo.png`;
  $("map").src = `${base}/map.png`;
  show(data);
  setStatus(data.corrections.version ? `version ${data.corrections.version} (${data.corrections.updated})` : "not graded yet");
}

function show(data) {
  state.data = data;
  $("title").textContent = data.id;
  $("crae").textContent = fmt(data.summary.crae_px, 2) + " px" + (data.summary.crae_um === null ? "" : ` (${fmt(data.summary.crae_um, 0)} µm)`);
  $("crve").textContent = fmt(data.summary.crve_px, 2) + " px" + (data.summary.crve_um === null ? "" : ` (${fmt(data.summary.crve_um, 0)} µm)`);
  $("avr").textContent = fmt(data.summary.avr, 3);
  document.body.classList.toggle("excluded", data.corrections.exclude_image);
  const flags = $("flags");
  flags.replaceChildren(...data.flags.map((f) => Object.assign(document.createElement("li"), { textContent: f })));
  drawOverlay();
  drawTable();
}

function drawOverlay() {
  const data = state.data;
  const svg = $("overlay");
  svg.setAttribute("viewBox", `0 0 ${data.width} ${data.height}`);
  svg.replaceChildren();
  const line = Math.max(1, data.width / 600);
  const d = data.disc;
  if (!d) return;
  const circle = (r, cls) => {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", d.x);
    c.setAttribute("cy", d.y);
    c.setAttribute("r", r);
    c.setAttribute("class", cls);
    c.setAttribute("stroke-width", line);
    svg.append(c);
    return c;
  };
  circle(2 * d.radius, "ring");
  circle(3 * d.radius, "ring");
  circle(2.5 * d.radius, "ring middle");
  const disc = circle(d.radius, "disc");
  disc.id = "disc";
  disc.addEventListener("pointerdown", (e) => startDrag(e, "move"));
  const handle = document.createElementNS(SVG, "rect");
  const size = Math.max(8, d.radius / 4);
  handle.setAttribute("x", d.x + d.radius * Math.SQRT1_2 - size / 2);
  handle.setAttribute("y", d.y + d.radius * Math.SQRT1_2 - size / 2);
  handle.setAttribute("width", size);
  handle.setAttribute("height", size);
  handle.setAttribute("class", "handle");
  handle.id = "disc-handle";
  handle.addEventListener("pointerdown", (e) => startDrag(e, "resize"));
  svg.append(handle);
  const marker = Math.max(3, d.radius / 10);
  for (const v of data.vessels) {
    const g = document.createElementNS(SVG, "g");
    const usable = v.width_px !== null && v.edit !== "excluded";
    g.setAttribute("class", `vessel ${v.class}${usable ? (v.knudtson ? "" : " unused") : " out"}${state.selected === v.vessel ? " selected" : ""}`);
    g.dataset.number = v.vessel;
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", v.x);
    c.setAttribute("cy", v.y);
    c.setAttribute("r", marker);
    c.setAttribute("stroke-width", line);
    const t = document.createElementNS(SVG, "text");
    const angle = (v.position_deg * Math.PI) / 180;
    t.setAttribute("x", d.x + 3.2 * d.radius * Math.cos(angle));
    t.setAttribute("y", d.y + 3.2 * d.radius * Math.sin(angle));
    t.setAttribute("font-size", marker * 2.4);
    t.setAttribute("text-anchor", "middle");
    t.textContent = `${v.vessel}: ${v.width_px === null ? "-" : v.width_px.toFixed(1)}`;
    g.append(c, t);
    g.addEventListener("click", () => select(v.vessel));
    svg.append(g);
  }
}

function drawTable() {
  const body = document.querySelector("#vessels tbody");
  body.replaceChildren();
  for (const v of state.data.vessels) {
    const tr = document.createElement("tr");
    tr.dataset.number = v.vessel;
    tr.className = `${v.class}${state.selected === v.vessel ? " selected" : ""}`;
    const cells = [v.vessel, v.class, fmt(v.width_px, 2), fmt(v.chord_px, 1), fmt(v.angle_deg, 0), v.knudtson ? "yes" : "", [v.edit, v.flag].filter(Boolean).join("; ")];
    for (const value of cells) tr.append(Object.assign(document.createElement("td"), { textContent: value }));
    tr.addEventListener("click", () => select(v.vessel));
    body.append(tr);
  }
}

function select(number) {
  state.selected = number;
  drawOverlay();
  drawTable();
}

function imagePoint(event) {
  const svg = $("overlay");
  const box = svg.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) / box.width) * state.data.width,
    y: ((event.clientY - box.top) / box.height) * state.data.height,
  };
}

function startDrag(event, mode) {
  event.preventDefault();
  event.stopPropagation();
  const d = state.data.disc;
  state.drag = { mode, start: imagePoint(event), disc: { x: d.x, y: d.y, radius: d.radius } };
  $("overlay").setPointerCapture(event.pointerId);
}

function onDrag(event) {
  if (!state.drag) return;
  const p = imagePoint(event);
  const { mode, start, disc } = state.drag;
  const d = state.data.disc;
  if (mode === "move") {
    d.x = disc.x + p.x - start.x;
    d.y = disc.y + p.y - start.y;
  } else {
    d.radius = Math.max(1, Math.hypot(p.x - disc.x, p.y - disc.y));
  }
  drawOverlay();
}

function endDrag() {
  if (!state.drag) return;
  state.drag = null;
  const d = state.data.disc;
  save({ disc: { x: round(d.x), y: round(d.y), radius: round(d.radius) } });
}

const round = (v) => Math.round(v * 10) / 10;

function save(change) {
  // one save at a time, each from the version the previous one returned
  state.saving = state.saving.then(async () => {
    if (!state.data) return;
    const id = state.data.id;
    const body = { ...state.data.corrections, ...change, grader: $("grader").value };
    setStatus("saving ...");
    const { ok, status, data } = await request("PUT", `/api/photos/${encodeURIComponent(id)}/corrections`, body);
    if (ok) {
      if (state.current === id) show(data);
      markGraded(id);
      setStatus(`saved version ${data.corrections.version}`);
    } else {
      // refused (another page saved first, or a value was wrong): show what is saved, and why
      const fresh = await request("GET", `/api/photos/${encodeURIComponent(id)}`);
      if (fresh.ok && state.current === id) show(fresh.data);
      setStatus(data.error || `error ${status}`, true);
    }
  });
  return state.saving;
}

function markGraded(id) {
  const b = document.querySelector(`#photos button[data-id="${CSS.escape(id)}"]`);
  if (b) b.classList.add("graded");
}

function toggleEdit(action) {
  const v = state.data && state.data.vessels.find((x) => x.vessel === state.selected);
  if (!v) return setStatus("select a vessel first (click it)", true);
  const edits = state.data.corrections.edits.slice();
  const mine = v.edits.filter((i) => edits[i] && edits[i].action === action);
  const kept = mine.length ? edits.filter((_, i) => !mine.includes(i)) : edits.concat([{ x: v.x, y: v.y, action }]);
  save({ edits: kept });
}

function step(list, delta) {
  if (!list.length) return;
  const i = list.indexOf(state.selected);
  select(list[(i + delta + list.length) % list.length]);
}

function moveDisc(dx, dy, dr) {
  const d = state.data && state.data.disc;
  if (!d) return;
  save({ disc: { x: round(d.x + dx), y: round(d.y + dy), radius: round(Math.max(1, d.radius + dr)) } });
}

function zoom() {
  // zone B filling the view, or the whole photograph
  const viewer = $("viewer");
  viewer.classList.toggle("zoomed");
  const d = state.data.disc;
  if (!d || !viewer.classList.contains("zoomed")) return;
  const view = $("view");
  const scale = viewer.getBoundingClientRect().width / state.data.width;
  view.scrollLeft = d.x * scale - view.clientWidth / 2;
  view.scrollTop = d.y * scale - view.clientHeight / 2;
}

function onKey(event) {
  if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
  const big = event.shiftKey ? 10 : 1;
  const ids = state.photos.map((p) => p.id);
  const keys = {
    f: () => toggleEdit("flip"),
    x: () => toggleEdit("exclude"),
    j: () => step(state.data.vessels.map((v) => v.vessel), 1),
    k: () => step(state.data.vessels.map((v) => v.vessel), -1),
    e: () => save({ exclude_image: !state.data.corrections.exclude_image }),
    r: () => save({ disc: null }),
    o: () => $("map").classList.toggle("hidden"),
    z: () => zoom(),
    "]": () => open(ids[(ids.indexOf(state.current) + 1) % ids.length]),
    "[": () => open(ids[(ids.indexOf(state.current) - 1 + ids.length) % ids.length]),
    ArrowLeft: () => moveDisc(-big, 0, 0),
    ArrowRight: () => moveDisc(big, 0, 0),
    ArrowUp: () => moveDisc(0, -big, 0),
    ArrowDown: () => moveDisc(0, big, 0),
    "+": () => moveDisc(0, 0, event.shiftKey ? 5 : 1),
    "=": () => moveDisc(0, 0, 1),
    "-": () => moveDisc(0, 0, event.shiftKey ? -5 : -1),
  };
  const action = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key] || keys[event.key];
  if (action && state.data) {
    event.preventDefault();
    action();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("grader").value = localStorage.getItem("grader") || "";
  $("grader").addEventListener("change", () => localStorage.setItem("grader", $("grader").value));
  $("overlay").addEventListener("pointermove", onDrag);
  $("overlay").addEventListener("pointerup", endDrag);
  $("exclude-image").addEventListener("click", () => state.data && save({ exclude_image: !state.data.corrections.exclude_image }));
  $("reset-disc").addEventListener("click", () => state.data && save({ disc: null }));
  document.addEventListener("keydown", onKey);
  loadList();
});
