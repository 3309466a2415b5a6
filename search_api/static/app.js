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
let playing = null;         // {video, moment} in the player: its end stops (or loops) playback
let timelineOf = null;      // media_id whose timeline is drawn
const FILTERS = ["media", "start", "end", "review", "min_confidence"];
const filterInput = { media: $("f-media"), start: $("f-start"), end: $("f-end"), review: $("f-review"),
                      min_confidence: $("min-confidence") };

function seconds(t) {
  const tenths = Math.round(t * 10);  // round first, so 59.96 s is 1:00, not 0:60.0
  const m = Math.floor(tenths / 600), s = (tenths - 600 * m) / 10;
  return `${m}:${s.toFixed(s % 1 ? 1 : 0).padStart(s % 1 ? 4 : 2, "0")}`;
}

// "0:05–0:07", or "0:05" for a moment of one sampled frame.
function span(m) {
  const from = seconds(m.start), to = seconds(m.end);
  return from === to ? from : `${from}–${to}`;
}

// Playback runs to the moment's last sampled frame and a second past it (one-frame moments get a second).
function stopTime(m) { return Math.max(m.end, m.start) + 1; }

function reviewUrl(mediaId, frameId) {
  return `/review?${new URLSearchParams({ media: mediaId, frame: frameId })}`;
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
  body.append(el("span", { class: "time" }, span(m)),
              el("span", { class: "score" }, m.score.toFixed(2)));
  const list = el("ul");
  for (const line of matchedLines(m)) list.append(el("li", {}, line));
  body.append(list);
  button.append(img, body);
  button.addEventListener("click", () => play(video_, m));
  const result = el("div", { class: "result" });
  result.append(button, el("a", { class: "review-link small", href: reviewUrl(video_.media_id, m.best_frame_id) },
                           "Open in review"));
  // "More like this": one link per garment with an embedding (the first is the outfit's main garment)
  for (const link of m.more_like || []) {
    const like = el("a", { class: "more-like small", href: `/?${new URLSearchParams({ garment: link.garment })}` },
                    `More like this ${link.wearing}`);
    like.addEventListener("click", (event) => { event.preventDefault(); similarSearch({ garment: link.garment }); });
    result.append(like);
  }
  return result;
}

function play(video_, m) {
  player.hidden = false;
  playing = { video: video_, moment: m };
  $("player-title").textContent = video_.name;
  $("player-time").textContent = span(m) + (m.score === undefined ? "" : `, score ${m.score.toFixed(2)}`);
  $("player-review").href = reviewUrl(video_.media_id, m.best_frame_id || "");
  if (video_.kind === "image") {
    video.pause(); video.hidden = true; still.hidden = false; still.src = m.play_url;
    $("moment-bar").hidden = true;
    $("timeline").replaceChildren(); timelineOf = null;
    return;
  }
  still.hidden = true; video.hidden = false; $("moment-bar").hidden = false;
  drawMomentBar();
  drawTimeline(video_);
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

// The moment's span over the whole video, under the player, and where the playhead is.
function drawMomentBar() {
  if (!playing) return;
  const duration = videoLength();
  const m = playing.moment, box = $("moment-span");
  box.style.left = `${(100 * m.start) / duration}%`;
  box.style.width = `${Math.max(0.5, (100 * (stopTime(m) - m.start)) / duration)}%`;
  $("playhead").style.left = `${Math.min(100, (100 * video.currentTime) / duration)}%`;
}

// Lanes of the video: one per outfit (a moment is one person in one outfit), its moments placed over
// the video's time; a click plays that moment. Drawn from /media/{id}, whatever the query matched.
async function drawTimeline(video_) {
  if (timelineOf === video_.media_id) { markCurrent(); return; }
  timelineOf = video_.media_id;
  const box = $("timeline");
  box.replaceChildren();
  let detail;
  try {
    const response = await fetch(`/media/${encodeURIComponent(video_.media_id)}`);
    if (!response.ok) return;
    detail = await response.json();
  } catch (_) { return; }
  if (timelineOf !== video_.media_id) return;  // another video was opened meanwhile
  const lanes = new Map();
  for (const m of detail.moments) {
    const outfit = m.wearing.join(", ") || "person";
    if (!lanes.has(outfit)) lanes.set(outfit, []);
    lanes.get(outfit).push(m);
  }
  for (const [outfit, moments] of lanes) {
    const lane = el("div", { class: "lane" });
    const track = el("div", { class: "track" });
    for (const m of moments) {
      const segment = el("button", { type: "button", class: "segment", "data-moment": m.moment_id,
                                     title: `${span(m)}: ${outfit}` });
      segment.dataset.start = m.start;
      segment.dataset.stop = stopTime(m);
      segment.addEventListener("click", () => play(video_, m));
      track.append(segment);
    }
    lane.append(el("span", { class: "lane-label", title: outfit }, outfit), track);
    box.append(lane);
  }
  timelineSpan = Math.max(detail.duration || 0, ...detail.moments.map(stopTime));
  layoutTimeline();
  markCurrent();
}

// Segments placed over the video's length: the player's once it knows it, the store's until then.
let timelineSpan = 0;
function videoLength() {
  if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
  return Math.max(timelineSpan, (playing && playing.video.duration) || 0, 1);
}

function layoutTimeline() {
  const duration = videoLength();
  for (const segment of $("timeline").querySelectorAll(".segment")) {
    const start = Number(segment.dataset.start), stop = Number(segment.dataset.stop);
    segment.style.left = `${(100 * start) / duration}%`;
    segment.style.width = `${Math.max(0.8, (100 * (stop - start)) / duration)}%`;
  }
}

function markCurrent() {
  const id = playing && playing.moment.moment_id;
  for (const segment of $("timeline").querySelectorAll(".segment")) {
    segment.classList.toggle("current", segment.dataset.moment === id);
  }
}

function render(page, append) {
  if (!append) { results.replaceChildren(); groups.clear(); }
  if (page.like !== undefined) {  // a similar search (/search/similar)
    $("interpretation").textContent = `Like: ${page.like_garment}` +
      (page.query ? `, filtered by ${page.interpretation}` : "");
  } else {
    $("interpretation").textContent = `Understood as: ${page.understood_as}` +
      (page.semantic ? "" : " (exact words and synonyms only)");
  }
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
  const total = page.total_exact === false ? `at least ${page.total}` : `${page.total}`;
  statusLine.textContent = page.total ? `${shown} of ${total} moments` : "Nothing matches.";
  cursor = page.next_cursor || null;
  more.hidden = !cursor;
}

// Search by example: an indexed garment (GET with its reference) or an uploaded photo (POST, the
// photo's bytes as the body). The text box's words, if any, filter the answer as they would a search.
async function similarSearch({ garment = null, photo = null, pick = null }) {
  const query = new URLSearchParams();
  const words = $("q").value.trim();
  if (words) query.set("q", words);
  if (garment) query.set("garment", garment);
  if (pick) { query.set("person", pick.person); query.set("garment", pick.garment); }
  statusLine.textContent = photo ? "Looking at the photo…" : "Searching…";
  try {
    const response = photo
      ? await fetch(`/search/similar?${query}`, { method: "POST", body: photo,
                                                  headers: { "Content-Type": photo.type || "application/octet-stream" } })
      : await fetch(`/search/similar?${query}`);
    const body = await response.json();
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      statusLine.textContent = `Error ${response.status}: ${detail}`;
      return;
    }
    if (garment) history.replaceState(null, "", `/?${query}`);
    render(body, false);
    showFound(body.found || [], photo);
  } catch (error) {
    statusLine.textContent = `The search failed: ${error}`;
  }
}

// The garments found in an uploaded photo: the one searched with, and the others to search with instead.
function showFound(found, photo) {
  const box = $("found");
  box.replaceChildren();
  box.hidden = !photo || found.length < 2;
  if (box.hidden) return;
  box.append(el("span", { class: "meta" }, "In the photo: "));
  for (const f of found) {
    const label = `${f.color ? f.color + " " : ""}${f.category}`;
    const choice = el("button", { type: "button", class: "found-garment small", "aria-pressed": String(f.used) }, label);
    choice.addEventListener("click", () => similarSearch({ photo, pick: f }));
    box.append(choice);
  }
}

$("like-photo").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) similarSearch({ photo: file });
});

async function search(params, append = false) {
  const query = new URLSearchParams(params);
  if (append && cursor) query.set("cursor", cursor);
  statusLine.textContent = "Searching…";
  try {
    const response = await fetch(`/search?${query}`);
    const body = await response.json();
    if (!response.ok) {
      // RFC 9457 problem details: `detail` says what was wrong with the request
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
  lastParams = { q: $("q").value.trim() };
  for (const name of FILTERS) {
    const value = filterInput[name].value.trim();
    if (value !== "" && !(name === "min_confidence" && Number(value) === 0)) lastParams[name] = value;
  }
  history.replaceState(null, "", `/?${new URLSearchParams(lastParams)}`);
  search(lastParams);
});
more.addEventListener("click", () => search(lastParams, true));
$("player-close").addEventListener("click", () => { video.pause(); player.hidden = true; });

// The video filter lists what the store holds; a shared link (/?q=...&media=...) searches straight away.
async function start() {
  const initial = new URLSearchParams(location.search);
  try {
    const response = await fetch("/media");
    if (response.ok) {
      for (const record of await response.json()) {
        if (record.frames > 0) filterInput.media.append(el("option", { value: record.media_id }, record.name));
      }
    }
  } catch (_) { /* the filter stays at "all" */ }
  if (initial.has("garment")) {  // a "more like this" link (from a result or the review page)
    if (initial.has("q")) $("q").value = initial.get("q");
    similarSearch({ garment: initial.get("garment") });
  } else if (initial.has("q")) {
    $("q").value = initial.get("q");
    for (const name of FILTERS) if (initial.has(name)) filterInput[name].value = initial.get(name);
    form.requestSubmit();
  }
}
start();

video.addEventListener("timeupdate", () => {
  if (!playing || video.hidden) return;
  drawMomentBar();
  const m = playing.moment;
  if (!video.paused && !playing.ended && video.currentTime >= stopTime(m)) {
    if ($("loop").checked) video.currentTime = m.start;
    else { video.pause(); playing.ended = true; }  // pressing play again runs on past the moment
  }
});
video.addEventListener("loadedmetadata", () => { drawMomentBar(); layoutTimeline(); });

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
