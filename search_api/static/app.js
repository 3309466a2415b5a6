// The search page: asks /search, shows moments grouped by video, plays a moment when clicked.
// Plain DOM, no build step and nothing fetched from elsewhere; text goes in with textContent only,
// since labels and file names are data, not markup.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("search-form"), results = $("results"), more = $("more"), statusLine = $("status");
const video = $("video"), still = $("still"), player = $("player");

let cursor = null;          // next_cursor of the last page, for "More results"
let lastParams = null;      // the query the cursor belongs to
const groups = new Map();   // media_id -> the grid element of that video (pages merge into it)
let pendingSeek = null;     // the loadedmetadata listener of the source being opened

function seconds(t) {
  const tenths = Math.round(t * 10);  // round first, so 59.96 s is 1:00, not 0:60.0
  const m = Math.floor(tenths / 600), s = (tenths - 600 * m) / 10;
  return `${m}:${s.toFixed(s % 1 ? 1 : 0).padStart(s % 1 ? 4 : 2, "0")}`;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function matchedLines(m) {
  const term = (a) => a.negated ? `${a.field} ≠ ${a.value} (${a.label}) ${a.confidence.toFixed(2)}`
                                : `${a.field} ${a.label} ${a.confidence.toFixed(2)}`;
  const lines = m.garments.map((g) => `${g.category}: ${g.attributes.map(term).join(", ")}`);
  lines.push(...m.expression.map(term));
  if (!lines.length) lines.push(...m.wearing);
  return lines;
}

function card(video_, m) {
  const button = el("button", { type: "button", class: "card", title: `Play from ${seconds(m.start)}` });
  const img = el("img", { src: m.thumbnail_url, alt: `${video_.name} at ${seconds(m.best_time)}`, loading: "lazy" });
  const body = el("div", { class: "body" });
  body.append(el("span", { class: "time" }, `${seconds(m.start)}–${seconds(m.end)}`),
              el("span", { class: "score" }, m.score.toFixed(2)));
  const list = el("ul");
  for (const line of matchedLines(m)) list.append(el("li", {}, line));
  body.append(list);
  button.append(img, body);
  button.addEventListener("click", () => play(video_, m));
  return button;
}

function play(video_, m) {
  player.hidden = false;
  $("player-title").textContent = video_.name;
  $("player-time").textContent = `${seconds(m.start)}–${seconds(m.end)}, score ${m.score.toFixed(2)}`;
  if (video_.kind === "image") {
    video.pause(); video.hidden = true; still.hidden = false; still.src = m.play_url;
    return;
  }
  still.hidden = true; video.hidden = false;
  // play_url carries #t=START: a new source opens there; the same source is seeked directly.
  // A seek waiting for an earlier source that never loaded must not fire on this one.
  if (pendingSeek) video.removeEventListener("loadedmetadata", pendingSeek);
  pendingSeek = null;
  $("player-error").hidden = true;
  if (video.dataset.media === video_.media_id && !video.error) {
    video.currentTime = m.start;
  } else {
    video.dataset.media = video_.media_id;
    video.src = m.play_url;
    pendingSeek = () => { pendingSeek = null; if (video.currentTime < m.start) video.currentTime = m.start; };
    video.addEventListener("loadedmetadata", pendingSeek, { once: true });
  }
  video.play().catch(() => {});  // autoplay may be refused; the controls are there
  player.scrollIntoView({ block: "start", behavior: "smooth" });
}

function render(page, append) {
  if (!append) { results.replaceChildren(); groups.clear(); }
  $("interpretation").textContent = `Understood as: ${page.understood_as}` +
    (page.semantic ? "" : " (exact words and synonyms only)");
  $("notice").hidden = !page.notice;
  $("notice").textContent = page.notice || "";
  for (const v of page.videos) {
    let grid = groups.get(v.media_id);
    if (!grid) {
      const section = el("section", { class: "video-group" });
      const title = el("h2", {}, v.name);
      title.append(el("span", { class: "meta" }, v.kind === "image" ? "photo" : seconds(v.duration)));
      grid = el("div", { class: "grid" });
      section.append(title, grid);
      results.append(section);
      groups.set(v.media_id, grid);
    }
    for (const m of v.moments) grid.append(card(v, m));
  }
  const shown = results.querySelectorAll(".card").length;
  const total = page.total_exact ? `${page.total}` : `at least ${page.total}`;
  statusLine.textContent = page.total ? `${shown} of ${total} moments` : "Nothing matches.";
  cursor = page.next_cursor;
  more.hidden = !cursor;
}

async function search(params, append = false) {
  const query = new URLSearchParams(params);
  if (append && cursor) query.set("cursor", cursor);
  statusLine.textContent = "Searching…";
  try {
    const response = await fetch(`/search?${query}`);
    const body = await response.json();
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      statusLine.textContent = `Error ${response.status}: ${detail}`;
      return;
    }
    render(body, append);
  } catch (error) {
    statusLine.textContent = `The search failed: ${error}`;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  lastParams = { q: $("q").value.trim(), min_confidence: $("min-confidence").value || "0" };
  history.replaceState(null, "", `/?${new URLSearchParams(lastParams)}`);
  search(lastParams);
});
more.addEventListener("click", () => search(lastParams, true));
$("player-close").addEventListener("click", () => { video.pause(); player.hidden = true; });

// A shared link (/?q=...) searches straight away.
const initial = new URLSearchParams(location.search);
if (initial.has("q")) {
  $("q").value = initial.get("q");
  if (initial.has("min_confidence")) $("min-confidence").value = initial.get("min_confidence");
  form.requestSubmit();
}

video.addEventListener("error", () => {
  const box = $("player-error");
  box.textContent = "This video cannot be played: its file may have moved or been deleted since it was indexed.";
  box.hidden = false;
});

// The words search understands, listed from /vocabulary the first time the list is opened.
$("vocabulary").addEventListener("toggle", async (event) => {
  const box = $("vocabulary-words");
  if (!event.target.open || box.childElementCount) return;
  try {
    const body = await (await fetch("/vocabulary")).json();
    for (const [field, words] of Object.entries(body.fields)) {
      const line = el("p", {}, "");
      line.append(el("strong", {}, `${field}: `));
      line.append(document.createTextNode(words.map(
        (w) => w.synonyms.length ? `${w.value} (${w.synonyms.join(", ")})` : w.value).join("; ")));
      box.append(line);
    }
  } catch (error) {
    box.textContent = `The vocabulary could not be loaded: ${error}`;
  }
});
