// The label review page: a queue of frames, the frame with its boxes, its labels and their edits.
// Plain DOM, no build step and nothing fetched from elsewhere. Everything shown comes from data
// (labels, file names, reviewer names), so it goes in with textContent and setAttribute only.
//
// Every edit carries the version of the frame as this page last saw it; the server refuses it
// (409) when someone else changed the frame since, and the page then says so and offers a reload.
// It never retries nor resends an edit on its own.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "vestis.review.token";
const PAGE_SIZE = 25;  // queue items a page; ?limit= in the address says another
const ZOOM_STEP = 1.25, ZOOM_MIN = 0.5, ZOOM_MAX = 6;
const GARMENT_COLOURS = ["#00c8ff", "#ff40a0", "#40dc60", "#a060ff", "#ff7820", "#00a0a0"];

const state = {
  vocabulary: {},        // field -> allowed values (GET /api/review/vocabulary)
  queue: [],             // the items of the queue page shown
  total: 0,
  offset: 0,
  pageSize: PAGE_SIZE,
  queueIndex: -1,        // the queue item open, when the open frame is one of the page
  view: null,            // the FrameView open
  selected: 0,           // index into view.labels
  zoom: 1,
  busy: false,           // an edit is on its way: a second one would carry a stale version
  loading: 0,            // sequence of frame loads: only the latest one is shown
  frameLoading: false,   // the latest frame asked for is not shown yet
  pendingSteps: 0,       // ← / → pressed while it loads: taken from the frame it brings
  conflict: false,       // the open frame changed under us: edits wait for a reload
  drawing: null,         // {start: [x, y], box: [x1, y1, x2, y2]} while drawing a box
  drawnBox: null,        // the box waiting for its category
  picker: null,          // {onPick(value)} while the value picker is open
  typed: "", typedAt: 0, // what was typed into the picker lately
};

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function seconds(t) {
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${s.toFixed(s % 1 ? 1 : 0).padStart(s % 1 ? 4 : 2, "0")}`;
}

// --- messages ----------------------------------------------------------------------------------

function say(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = text ? kind : "";  // an empty bar keeps its height: the page does not jump
}

function showConflict(text) {
  state.conflict = true;
  $("conflict-text").textContent = text;
  $("conflict").hidden = false;
  document.body.classList.add("has-conflict");
}

function clearConflict() {
  state.conflict = false;
  $("conflict").hidden = true;
  document.body.classList.remove("has-conflict");
  $("conflict-text").textContent = "";
}

// --- the token ---------------------------------------------------------------------------------
// Kept for this tab (sessionStorage) unless the reviewer asks to remember it (localStorage).

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || "";
}

function showTokenState() {
  const remembered = !!localStorage.getItem(TOKEN_KEY);
  const token = storedToken();
  $("token").value = token;
  $("remember").checked = remembered;
  $("token-state").textContent = !token ? "no token: you can look, not change"
    : remembered ? "token set, remembered on this computer" : "token set for this tab";
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  if (token) ($("remember").checked ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  showTokenState();
  $("token").blur();  // the shortcuts work again straight away
  say(token ? "Token set: your changes are saved under your reviewer name." : "Token cleared.");
});

$("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  showTokenState();
  say("Token forgotten.");
});

// --- the API -----------------------------------------------------------------------------------

// Errors come as RFC 9457 problem details: `detail` in words, extension members (`current_version`) beside it.
class ApiError extends Error {
  constructor(status, detail, problem = null) {
    super(detailText(detail) || `the server answered ${status}`);
    this.status = status;
    this.detail = detail;
    this.problem = problem;
  }
}

function detailText(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => (d && d.msg) || JSON.stringify(d)).join("; ");
  if (typeof detail === "object" && detail.message) return String(detail.message);
  return JSON.stringify(detail);
}

async function api(path, { method = "GET", body, auth = false } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    const token = storedToken();
    if (token && !/^[\x21-\x7e]+$/.test(token)) {
      throw new ApiError(0, "the token holds characters an HTTP header cannot carry: check what was pasted");
    }
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `the server could not be reached (${error.message})`);
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: the status says enough */ }
  if (!response.ok) throw new ApiError(response.status, data && data.detail, data);
  return data;
}

// What a refused write means for the reviewer, and what to do about it.
function explain(error) {
  const detail = detailText(error.detail);
  switch (error.status) {
    case 401:
      return "Not saved: changes need a reviewer token. Enter yours under “Reviewer token” above and try again.";
    case 403:
      return /switched off/.test(detail)
        ? `Not saved: ${detail}.`
        : "Not saved: the server does not know this reviewer token. Check it, or ask whoever runs Vestis for yours.";
    case 422:
      return `Not saved: the server refused this change: ${detail}.`;
    case 404:
      return `This frame is no longer there (${detail}): a newer ingest of its video may have replaced it.`;
    case 501:
      return `Review is not available on this store: ${detail}.`;
    case 0:
      return `Not saved: ${error.message}.`;
    default:
      return `Not saved: the server answered ${error.status}${detail ? `: ${detail}` : ""}.`;
  }
}

// --- label paths -------------------------------------------------------------------------------
// "persons.0.detection", "persons.0.face.expression", "persons.0.garments.1", "persons.0.garments.1.color"

function parsePath(path) {
  const parts = path.split(".");
  const person = Number(parts[1]);
  const garment = parts[2] === "garments" ? Number(parts[3]) : null;
  return { person, garment, owner: garment === null ? `persons.${person}` : `persons.${person}.garments.${garment}` };
}

function labelAt(frame, path) {
  const parts = path.split(".");
  const person = frame && frame.persons[Number(parts[1])];
  if (!person) return null;
  if (parts[2] === "detection") return person.detection;
  if (parts[2] === "face") return person.face && person.face.expression;
  const garment = person.garments[Number(parts[3])];
  if (!garment) return null;
  return parts.length === 4 ? garment.category : garment[parts[4]];
}

function describeOwner(frame, path) {
  const { person, garment } = parsePath(path);
  const who = `person ${person + 1}`;
  if (garment === null) return path.includes(".face.") ? `${who} › face` : who;
  const item = frame && frame.persons[person] && frame.persons[person].garments[garment];
  return `${who} › ${item ? item.category.value : `garment ${garment + 1}`}`;
}

function fieldOf(path) {
  const last = path.split(".").pop();
  return /^\d+$/.test(last) ? "category" : last;
}

// --- the queue ---------------------------------------------------------------------------------

function filterParams() {
  const params = new URLSearchParams();
  const media = $("f-media").value, label = $("f-label").value.trim();
  if (media) params.set("media", media);
  if (label) params.set("label", label);
  const min = $("f-min").value, max = $("f-max").value;
  if (min !== "" && Number(min) > 0) params.set("min_confidence", min);
  if (max !== "" && Number(max) < 1) params.set("max_confidence", max);
  if ($("f-status").value) params.set("status", $("f-status").value);
  if ($("f-sort").value !== "confidence") params.set("sort", $("f-sort").value);
  return params;
}

function remember() {
  // The page's address says the filters and the frame open, so a reload (or a shared link) comes back here.
  const params = filterParams();
  if (state.offset) params.set("offset", String(state.offset));
  if (state.pageSize !== PAGE_SIZE) params.set("limit", String(state.pageSize));
  if (state.view) params.set("frame", state.view.frame_id);
  history.replaceState(null, "", `/review${params.toString() ? `?${params}` : ""}`);
}

async function loadQueue(offset = 0) {
  const params = filterParams();
  params.set("limit", String(state.pageSize));
  params.set("offset", String(offset));
  $("queue-count").textContent = "Loading…";
  let page;
  try {
    page = await api(`/api/review/queue?${params}`);
  } catch (error) {
    $("queue-count").textContent = `The queue could not be read: ${error.message}.`;
    return false;
  }
  state.queue = page.items;
  state.total = page.total;
  state.offset = offset;
  renderQueue();
  remember();
  return true;
}

function confidenceText(value) {
  return value == null ? "all confirmed" : `least sure ${value.toFixed(2)}`;
}

function renderQueue() {
  const list = $("queue");
  list.replaceChildren();
  state.queueIndex = state.view ? state.queue.findIndex((item) => item.frame_id === state.view.frame_id) : -1;
  state.queue.forEach((item, index) => {
    const button = el("button", { type: "button", class: "queue-item", "data-frame": item.frame_id });
    if (index === state.queueIndex) { button.classList.add("current"); button.setAttribute("aria-current", "true"); }
    const img = el("img", { src: item.thumbnail_url, alt: "", loading: "lazy" });
    const text = el("span", { class: "text" });
    text.append(el("span", { class: "name" }, `${item.media_name || item.media_id} · ${seconds(item.timestamp)}`),
                el("span", { class: "conf" }, confidenceText(item.lowest_confidence)),
                el("span", { class: `status ${item.status}` }, item.status),
                el("span", { class: "values" }, item.labels.join(", ")));
    button.append(img, text);
    button.addEventListener("click", () => openQueueItem(index));
    const entry = el("li");
    entry.append(button);
    list.append(entry);
  });
  const shown = state.queue.length;
  $("queue-count").textContent = state.total
    ? `${state.offset + 1}–${state.offset + shown} of ${state.total} frames`
    : "No frames match these filters.";
  $("page-prev").disabled = state.offset === 0;
  $("page-next").disabled = state.offset + shown >= state.total;
}

function openQueueItem(index) {
  const item = state.queue[index];
  if (!item) return;
  state.queueIndex = index;
  loadFrame(item.frame_id);
}

async function stepQueue(step) {
  const index = state.queueIndex < 0 ? (step > 0 ? 0 : state.queue.length - 1) : state.queueIndex + step;
  if (index >= 0 && index < state.queue.length) return openQueueItem(index);
  if (step > 0 && state.offset + state.queue.length < state.total) {
    if (await loadQueue(state.offset + state.pageSize)) openQueueItem(0);
  } else if (step < 0 && state.offset > 0) {
    if (await loadQueue(Math.max(0, state.offset - state.pageSize))) openQueueItem(state.queue.length - 1);
  } else {
    say(step > 0 ? "That was the last frame of the queue." : "That was the first frame of the queue.");
  }
}

function lowestOpen(view) {
  const open = view.labels.filter((l) => !l.reviewed_by).map((l) => l.confidence);
  return open.length ? Math.min(...open) : null;
}

function updateQueueItem(view) {
  // The item keeps its place (a queue reordering under the reviewer's keys would lose them).
  const item = state.queue.find((i) => i.frame_id === view.frame_id);
  if (!item) return;
  item.status = view.status;
  item.lowest_confidence = lowestOpen(view);
  item.labels = [...new Set(view.labels.map((l) => l.value))].sort();
  renderQueue();
}

// --- the frame ---------------------------------------------------------------------------------

async function loadFrame(frameId, { keepSelection = false, stepping = false } = {}) {
  const ticket = ++state.loading;
  if (!stepping) state.pendingSteps = 0;
  state.frameLoading = true;
  cancelDrawing();
  closePicker();
  let view = null;
  try {
    view = await api(`/api/review/frames/${encodeURIComponent(frameId)}`);
  } catch (error) {
    if (ticket === state.loading) say(`The frame could not be opened: ${error.message}.`, "error");
  }
  if (ticket !== state.loading) return;  // a later frame was asked for meanwhile
  state.frameLoading = false;
  if (view) {
    const sameFrame = state.view && state.view.frame_id === view.frame_id;
    clearConflict();
    if (!sameFrame) say("");  // what was said was about the frame before
    showFrame(view, { keepSelection: keepSelection && sameFrame });
    renderQueue();
    remember();
    loadAudit();
  }
  if (state.pendingSteps && view) {
    const step = Math.sign(state.pendingSteps);
    state.pendingSteps -= step;
    stepFrame(step);
  } else {
    state.pendingSteps = 0;
  }
}

// The previous (-1) or next (+1) frame of the open frame's video.
function stepFrame(step) {
  if (state.frameLoading) { state.pendingSteps += step; return; }
  if (!state.view) return;
  const target = step < 0 ? state.view.previous_frame_id : state.view.next_frame_id;
  if (!target) {
    state.pendingSteps = 0;
    say(step < 0 ? "This is the first frame of the video." : "This is the last frame of the video.");
    return;
  }
  loadFrame(target, { stepping: true });
}

function imageUrl(view) {
  // The version in the address: the browser keeps frame images a while, and an edit changes the masks.
  if (!$("show-masks").checked) return view.image_url;
  return `${view.image_url}?overlay=masks&v=${encodeURIComponent(view.version)}`;
}

function showFrame(view, { keepSelection = false } = {}) {
  state.view = view;
  if (!keepSelection) state.selected = 0;
  state.selected = Math.max(0, Math.min(state.selected, view.labels.length - 1));
  $("frame-title").textContent = `${view.media_name || view.media_id} at ${seconds(view.timestamp)}`;
  $("frame-meta").textContent =
    `${view.status} · version ${view.version} · ${view.width}×${view.height} · ${view.frame_id}`;
  $("frame-prev").disabled = !view.previous_frame_id;
  $("frame-next").disabled = !view.next_frame_id;
  $("stage").hidden = false;
  $("empty").hidden = true;
  const image = $("frame-image");
  // The stage keeps the frame's shape even when its image is missing: the boxes still have a place.
  $("stage").style.aspectRatio = `${view.width} / ${view.height}`;
  const url = imageUrl(view);
  if (image.getAttribute("src") !== url) image.src = url;
  image.alt = `${view.media_name || view.media_id} at ${seconds(view.timestamp)}`;
  drawOverlay();
  renderLabels();
  applyZoom();
}

function drawOverlay() {
  const view = state.view, overlay = $("overlay");
  overlay.replaceChildren();
  if (!view) return;
  overlay.setAttribute("viewBox", `0 0 ${view.width} ${view.height}`);
  // A transparent sheet under the boxes: drawing starts anywhere on the image.
  overlay.append(svg("rect", { class: "sheet", x: 0, y: 0, width: view.width, height: view.height }));
  const boxes = svg("g", { class: "boxes" });
  boxes.style.display = $("show-boxes").checked ? "" : "none";
  const fontSize = Math.max(10, Math.round(view.height / 32));
  const selectedOwner = view.labels[state.selected] ? parsePath(view.labels[state.selected].path).owner : null;
  const rect = (box, attrs) => svg("rect", { x: box.x1, y: box.y1, width: Math.max(0, box.x2 - box.x1),
                                             height: Math.max(0, box.y2 - box.y1), ...attrs });
  view.frame.persons.forEach((person, p) => {
    const owner = `persons.${p}`;
    const group = svg("g", { class: "person", "data-owner": owner });
    group.append(rect(person.box, { class: "box person-box", "data-owner": owner }));
    group.append(svg("text", { x: person.box.x1 + 4, y: person.box.y1 + fontSize, "font-size": fontSize,
                               class: "box-label person-label" }, `person ${p + 1}`));
    person.garments.forEach((garment, g) => {
      const gOwner = `persons.${p}.garments.${g}`;
      const colour = GARMENT_COLOURS[g % GARMENT_COLOURS.length];
      const box = rect(garment.box, { class: "box garment-box", "data-owner": gOwner, stroke: colour });
      const label = svg("text", { x: garment.box.x1 + 4, y: garment.box.y2 - 6, "font-size": fontSize,
                                  class: "box-label", fill: colour }, garment.category.value);
      group.append(box, label);
    });
    boxes.append(group);
  });
  for (const node of boxes.querySelectorAll(".box")) {
    if (node.getAttribute("data-owner") === selectedOwner) node.classList.add("selected");
  }
  overlay.append(boxes);
}

function renderLabels() {
  if ($("picker").closest("#labels")) closePicker();  // it lives in a row about to be replaced
  const view = state.view, body = $("labels").tBodies[0];
  body.replaceChildren();
  $("no-labels").hidden = !view || view.labels.length > 0;
  if (!view) return;
  let group = null;  // a heading row for each person, garment and face: "person 1 › dress"
  view.labels.forEach((label, index) => {
    const owner = describeOwner(view.frame, label.path);
    if (owner !== group) {
      group = owner;
      const heading = el("tr", { class: "group" });
      const th = el("th", { colspan: "5", scope: "rowgroup" }, owner);
      // a garment with an embedding: find more like it on the search page (/search/similar)
      const { person: p, garment: g } = parsePath(label.path);
      const item = g !== null && view.frame.persons[p] && view.frame.persons[p].garments[g];
      if (item && item.embedding) {
        const ref = `${view.frame.frame_id}/${p}/${g}`;
        th.append(" ", el("a", { class: "more-like small", href: `/?${new URLSearchParams({ garment: ref })}` },
                          "more like this"));
      }
      heading.append(th);
      body.append(heading);
    }
    const row = el("tr", { "data-path": label.path, "data-index": String(index),
                           "aria-selected": String(index === state.selected) });
    if (index === state.selected) row.classList.add("selected");
    if (label.reviewed_by) row.classList.add("reviewed");
    const conf = el("td", { class: "num conf" }, label.confidence.toFixed(2));
    if (!label.reviewed_by && label.confidence < 0.6) conf.classList.add("low");
    const value = el("td", { class: "value" }, label.value);
    // what else the model thought it might be: "suit 0.30 · sweater 0.10"
    const others = (label.alternatives || []).filter((a) => a.value !== label.value);
    if (others.length && !label.reviewed_by) {
      value.append(el("span", { class: "alternatives" },
                      others.map((a) => `${a.value} ${a.probability.toFixed(2)}`).join(" · ")));
    }
    row.append(el("td", { class: "field" }, label.field),
               value,
               conf,
               el("td", { class: "model" }, label.model),
               el("td", { class: "mark" }, label.reviewed_by ? `✓ ${label.reviewed_by}` : ""));
    row.addEventListener("click", () => select(index));
    body.append(row);
  });
  const row = selectedRow();
  if (row) row.scrollIntoView({ block: "nearest" });
}

function selectedRow() {
  return $("labels").querySelector(`tbody tr[data-index="${state.selected}"]`);
}

function select(index) {
  if (!state.view || !state.view.labels.length) return;
  closePicker();
  state.selected = Math.max(0, Math.min(index, state.view.labels.length - 1));
  renderLabels();
  drawOverlay();
}

function currentLabel() {
  if (!state.view) { say("Open a frame first: pick one from the queue."); return null; }
  const label = state.view.labels[state.selected];
  if (!label) say("This frame has no label to act on.");
  return label || null;
}

// --- zoom and overlays -------------------------------------------------------------------------

function applyZoom() {
  $("stage").style.width = `${Math.round(state.zoom * 100)}%`;
  $("zoom-level").textContent = `${Math.round(state.zoom * 100)}%`;
}

function zoom(factor) {
  state.zoom = factor === 0 ? 1 : Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, state.zoom * factor));
  applyZoom();
}

function toggle(id) {
  $(id).checked = !$(id).checked;
  $(id).dispatchEvent(new Event("change"));
}

$("frame-image").addEventListener("error", () => {
  if (!state.view) return;
  say("The stored image of this frame could not be loaded: its boxes are drawn on an empty area.", "error");
});
$("show-boxes").addEventListener("change", drawOverlay);
$("show-masks").addEventListener("change", () => { if (state.view) $("frame-image").src = imageUrl(state.view); });
$("zoom-in").addEventListener("click", () => zoom(ZOOM_STEP));
$("zoom-out").addEventListener("click", () => zoom(1 / ZOOM_STEP));
$("zoom-reset").addEventListener("click", () => zoom(0));

// --- edits -------------------------------------------------------------------------------------

async function write(path, body, done) {
  if (!state.view) { say("Open a frame first: pick one from the queue."); return; }
  if (state.frameLoading) { say("The next frame is still opening: nothing was changed."); return; }
  if (state.conflict) {
    say("Reload the frame first: another reviewer changed it since you opened it.", "error");
    return;
  }
  if (state.busy) { say("Still saving the previous change…"); return; }
  const frameId = state.view.frame_id;
  state.busy = true;
  say("Saving…");
  try {
    const view = await api(`/api/review/frames/${encodeURIComponent(frameId)}/${path}`,
                           { method: "POST", body: { version: state.view.version, ...body }, auth: true });
    if (!state.view || state.view.frame_id !== frameId) return;  // the reviewer moved on meanwhile
    showFrame(view, { keepSelection: true });
    updateQueueItem(view);
    remember();
    loadAudit();
    say(done, "ok");
  } catch (error) {
    if (error.status === 409) {
      const current = error.problem && error.problem.current_version;
      showConflict("Not saved: another reviewer changed this frame after you opened it" +
                   (current ? ` (you had version ${state.view.version}, it is now ${current})` : "") +
                   ". Nothing was overwritten. Reload the frame to see their change, " +
                   "then redo yours if it is still needed.");
      say("");
    } else {
      say(explain(error), "error");
    }
  } finally {
    state.busy = false;
  }
}

function edit(editBody, done) { return write("edits", { edit: editBody }, done); }

function accept() {
  const label = currentLabel();
  if (label) edit({ kind: "accept", path: label.path }, `Accepted ${label.field} ${label.value}.`);
}

function reject() {
  const label = currentLabel();
  if (label) edit({ kind: "reject", path: label.path }, `Rejected ${label.field} ${label.value}.`);
}

function remove() {
  const label = currentLabel();
  if (label) edit({ kind: "delete", path: label.path }, `Deleted ${label.field} ${label.value}.`);
}

function acceptAll() {
  if (!state.view) { say("Open a frame first: pick one from the queue."); return; }
  edit({ kind: "accept_all" }, "Accepted every label of the frame.");
}

function undo() {
  if (!state.view) { say("Open a frame first: pick one from the queue."); return; }
  write("undo", {}, "Undid the frame's last change.");
}

function change() {
  const label = currentLabel();
  if (!label) return;
  const values = state.vocabulary[label.field];
  if (!values) {
    say(`A ${label.field} cannot be changed, only accepted, rejected or deleted.`);
    return;
  }
  openPicker(`New ${label.field} for ${describeOwner(state.view.frame, label.path)} (now ${label.value})`,
             values, label.value, (value) => {
    if (value === label.value) { say(`${label.field} stays ${value}.`); return; }
    edit({ kind: "set", path: label.path, value }, `Changed ${label.field} from ${label.value} to ${value}.`);
  }, { after: selectedRow() });
}

$("act-accept").addEventListener("click", accept);
$("act-reject").addEventListener("click", reject);
$("act-delete").addEventListener("click", remove);
$("act-change").addEventListener("click", change);
$("act-accept-all").addEventListener("click", acceptAll);
$("act-undo").addEventListener("click", undo);
$("conflict-reload").addEventListener("click", async () => {
  if (!state.view) return;
  await loadFrame(state.view.frame_id, { keepSelection: true });
  if (!state.conflict) {
    say("Reloaded: the frame as it is now, with the other reviewer's change. Redo yours if it is still needed.");
  }
});

// --- the value picker: a listbox; digits or typing pick, Enter applies, Esc cancels --------------

function openPicker(title, values, current, onPick, { after = null } = {}) {
  const picker = $("picker"), select = $("picker-select");
  if (after) {  // under the label it changes, in a row of its own
    const row = el("tr", { class: "picker-row" }), cell = el("td", { colspan: "5" });
    cell.append(picker);
    row.append(cell);
    after.after(row);
  } else {
    $("labels").before(picker);
  }
  select.replaceChildren();
  values.forEach((value, i) => select.append(el("option", { value }, `${i + 1}  ${value}`)));
  select.size = Math.min(values.length, 10);
  select.value = values.includes(current) ? current : values[0];
  $("picker-title").textContent = title;
  $("picker").hidden = false;
  state.picker = { onPick };
  state.typed = "";
  select.focus();
  picker.scrollIntoView({ block: "nearest" });
}

function closePicker() {
  const picker = $("picker");
  if (document.activeElement === $("picker-select")) $("picker-select").blur();
  state.picker = null;
  picker.hidden = true;
  const row = picker.closest("tr.picker-row");
  $("picker-home").append(picker);  // out of the table before the table is drawn again
  if (row) row.remove();
}

function applyPicker() {
  const picker = state.picker, value = $("picker-select").value;
  closePicker();
  if (picker && value) picker.onPick(value);
}

function cancelPicker() {
  closePicker();
  if (state.drawnBox) { state.drawnBox = null; drawOverlay(); }
  say("Cancelled.");
}

$("picker-select").addEventListener("keydown", (event) => {
  const select = event.currentTarget;
  const now = Date.now();
  if (now - state.typedAt > 900) state.typed = "";
  if (event.key === "Enter") { event.preventDefault(); applyPicker(); return; }
  if (event.key === "Escape") { event.preventDefault(); cancelPicker(); return; }
  if (event.ctrlKey || event.altKey || event.metaKey || event.key.length !== 1) return;  // arrows, Home, ...
  event.preventDefault();
  state.typedAt = now;
  const options = [...select.options];
  if (/\d/.test(event.key)) {
    // "1" then "3" quickly is the 13th; a number past the end starts again from this digit.
    state.typed = /^\d+$/.test(state.typed) ? state.typed + event.key : event.key;
    let n = Number(state.typed);
    if (!(n >= 1 && n <= options.length)) { state.typed = event.key; n = Number(event.key); }
    if (n >= 1 && n <= options.length) select.selectedIndex = n - 1;
  } else {
    state.typed = /^\d+$/.test(state.typed) ? event.key.toLowerCase() : state.typed + event.key.toLowerCase();
    const found = options.findIndex((o) => o.value.toLowerCase().startsWith(state.typed));
    if (found >= 0) select.selectedIndex = found;
  }
});
$("picker-select").addEventListener("dblclick", applyPicker);
$("picker-apply").addEventListener("click", applyPicker);
$("picker-cancel").addEventListener("click", cancelPicker);

// --- drawing a missing box ---------------------------------------------------------------------

function startDrawing() {
  if (!state.view) { say("Open a frame first: pick one from the queue."); return; }
  closePicker();
  state.drawing = { start: null, box: null };
  $("stage").classList.add("drawing");
  say("Drag on the image around what the model missed; Esc cancels.");
}

function cancelDrawing() {
  const was = state.drawing || state.drawnBox;
  state.drawing = null;
  state.drawnBox = null;
  $("stage").classList.remove("drawing");
  const temp = $("overlay").querySelector(".drawn");
  if (temp) temp.remove();
  return was;
}

function framePoint(event) {
  const area = $("overlay").getBoundingClientRect(), view = state.view;
  const x = (event.clientX - area.left) / area.width * view.width;
  const y = (event.clientY - area.top) / area.height * view.height;
  return [Math.max(0, Math.min(view.width, x)), Math.max(0, Math.min(view.height, y))];
}

function showDrawn(box) {
  let rect = $("overlay").querySelector(".drawn");
  if (!rect) { rect = svg("rect", { class: "drawn" }); $("overlay").append(rect); }
  rect.setAttribute("x", box[0]); rect.setAttribute("y", box[1]);
  rect.setAttribute("width", box[2] - box[0]); rect.setAttribute("height", box[3] - box[1]);
}

$("overlay").addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || !state.view) return;
  if (!state.drawing) {  // a click on a box selects its first label
    const owner = event.target.getAttribute && event.target.getAttribute("data-owner");
    if (!owner) return;
    const index = state.view.labels.findIndex((l) => parsePath(l.path).owner === owner);
    if (index >= 0) select(index);
    return;
  }
  event.preventDefault();
  $("overlay").setPointerCapture(event.pointerId);
  const start = framePoint(event);
  state.drawing.start = start;
  state.drawing.box = [...start, ...start];
  showDrawn(state.drawing.box);
});

$("overlay").addEventListener("pointermove", (event) => {
  if (!state.drawing || !state.drawing.start) return;
  const [x0, y0] = state.drawing.start, [x, y] = framePoint(event);
  state.drawing.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
  showDrawn(state.drawing.box);
});

$("overlay").addEventListener("pointerup", (event) => {
  if (!state.drawing || !state.drawing.start) return;
  const box = state.drawing.box.map((v) => Math.round(v * 10) / 10);
  state.drawing = null;
  $("stage").classList.remove("drawing");
  if (box[2] - box[0] < 4 || box[3] - box[1] < 4) {
    cancelDrawing();
    say("That box is too small: press n and drag a larger one.");
    return;
  }
  state.drawnBox = box;
  const categories = ["person", ...(state.vocabulary.category || [])];
  openPicker("What is in the drawn box?", categories, "person", (category) => {
    const [x1, y1, x2, y2] = state.drawnBox || box;
    state.drawnBox = null;
    edit({ kind: "add_box", box: { x1, y1, x2, y2 }, category }, `Added a ${category} box.`);
  });
});

$("draw").addEventListener("click", startDrawing);

// --- the audit trail ---------------------------------------------------------------------------

function describeEntry(entry) {
  const edit = entry.edit || {};
  const what = (path) => {
    const label = labelAt(entry.before, path);
    return `${fieldOf(path)} of ${describeOwner(entry.before, path)}${label ? ` (${label.value})` : ""}`;
  };
  switch (entry.action) {
    case "set": {
      const before = labelAt(entry.before, edit.path);
      return `changed ${fieldOf(edit.path)} of ${describeOwner(entry.before, edit.path)}` +
             `${before ? ` from ${before.value}` : ""} to ${edit.value}`;
    }
    case "accept": return `accepted ${what(edit.path)}`;
    case "reject": return `rejected ${what(edit.path)}`;
    case "delete": return `deleted ${what(edit.path)}`;
    case "accept_all": return "accepted every label of the frame";
    case "add_box": return `drew a ${edit.category} box`;
    case "undo": return `undid change #${entry.undoes}`;
    default: return entry.action;
  }
}

async function loadAudit() {
  const view = state.view;
  if (!view) return;
  let entries;
  try {
    entries = await api(`/api/review/audit?frame_id=${encodeURIComponent(view.frame_id)}&limit=50`);
  } catch (error) {
    $("audit").replaceChildren(el("li", { class: "error" }, `The history could not be read: ${error.message}.`));
    return;
  }
  if (!state.view || state.view.frame_id !== view.frame_id) return;
  const list = $("audit");
  list.replaceChildren();
  for (const entry of entries) {
    const item = el("li", { "data-entry": String(entry.entry_id) });
    const when = new Date(entry.at * 1000);
    item.append(el("time", { datetime: when.toISOString() }, when.toLocaleString()), " ",
                el("strong", { class: "who" }, entry.reviewer), " ",
                el("span", { class: "what" }, describeEntry(entry)),
                el("span", { class: "meta" }, ` #${entry.entry_id}`));
    list.append(item);
  }
  $("audit-empty").hidden = entries.length > 0;
}

// --- keys --------------------------------------------------------------------------------------

function typingIn(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && !["checkbox", "radio", "button", "submit"].includes(target.type);
}

function escape() {
  if (state.picker) { cancelPicker(); return; }
  if (cancelDrawing()) { drawOverlay(); say("Drawing cancelled."); return; }
  say("");
}

const KEYS = {
  j: () => stepQueue(1),
  k: () => stepQueue(-1),
  ArrowDown: () => select(state.selected + 1),
  ArrowUp: () => select(state.selected - 1),
  ArrowLeft: () => stepFrame(-1),
  ArrowRight: () => stepFrame(1),
  a: accept,
  A: acceptAll,
  r: reject,
  x: remove,
  Delete: remove,
  c: change,
  u: undo,
  n: startDrawing,
  b: () => toggle("show-boxes"),
  m: () => toggle("show-masks"),
  "+": () => zoom(ZOOM_STEP),
  "=": () => zoom(ZOOM_STEP),
  "-": () => zoom(1 / ZOOM_STEP),
  "0": () => zoom(0),
  Escape: escape,
};

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.target === $("picker-select")) return;
  if (typingIn(event.target)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.altKey || event.metaKey) return;
  if (event.ctrlKey) {
    if (event.key.toLowerCase() === "z") { event.preventDefault(); undo(); }
    return;
  }
  let key = event.key;
  if (key.length === 1 && key.toLowerCase() === "a") key = event.shiftKey ? "A" : "a";  // Caps Lock is not Shift
  else if (key.length === 1 && /[a-z]/i.test(key)) key = key.toLowerCase();
  const action = KEYS[key];
  if (!action) return;
  event.preventDefault();
  action();
});

// --- filters, paging, neighbours, start --------------------------------------------------------

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  const min = Number($("f-min").value || 0), max = Number($("f-max").value || 1);
  if (!(min >= 0 && max <= 1 && min <= max)) {
    $("queue-count").textContent = "The confidence range must lie within 0 to 1, the first no more than the second.";
    return;
  }
  loadQueue(0);
});
for (const id of ["f-media", "f-status", "f-sort"]) {
  $(id).addEventListener("change", () => $("filters").requestSubmit());
}
$("page-prev").addEventListener("click", () => loadQueue(Math.max(0, state.offset - state.pageSize)));
$("page-next").addEventListener("click", () => loadQueue(state.offset + state.pageSize));
$("frame-prev").addEventListener("click", () => stepFrame(-1));
$("frame-next").addEventListener("click", () => stepFrame(1));

async function start() {
  showTokenState();
  const initial = new URLSearchParams(location.search);
  const [vocabulary, media] = await Promise.all([
    api("/api/review/vocabulary").catch(() => ({})),
    api("/media").catch(() => []),
  ]);
  state.vocabulary = vocabulary;
  const values = new Set(["person", ...Object.values(vocabulary).flat()]);
  $("vocabulary-values").replaceChildren(...[...values].sort().map((v) => el("option", { value: v })));
  for (const record of media) {
    if (record.frames > 0) {
      $("f-media").append(el("option", { value: record.media_id }, record.name || record.media_id));
    }
  }
  if (initial.has("media")) $("f-media").value = initial.get("media");
  if (initial.has("label")) $("f-label").value = initial.get("label");
  if (initial.has("min_confidence")) $("f-min").value = initial.get("min_confidence");
  if (initial.has("max_confidence")) $("f-max").value = initial.get("max_confidence");
  if (initial.has("status")) $("f-status").value = initial.get("status");
  if (initial.has("sort")) $("f-sort").value = initial.get("sort");
  const limit = Math.round(Number(initial.get("limit")));
  if (limit >= 1 && limit <= 500) state.pageSize = limit;
  const offset = Math.max(0, Number(initial.get("offset")) || 0);
  await loadQueue(offset);
  if (initial.has("frame")) await loadFrame(initial.get("frame"));
  else if (state.queue.length) openQueueItem(0);
}

start();
