// genrekit web page: choose a file, send it to this server, show genre, timeline and spectrogram.
// Plain browser JavaScript, no libraries, nothing loaded from elsewhere.
"use strict";

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const SILENT_COLOUR = "#3a3a44";
const NOT_MUSIC_COLOUR = "#8a8f98";
const NOT_MUSIC = "not music";  // legend and timeline key of segments that are not music

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "genrekit-api-key";
const page = {
  labels: [],
  limits: null,
  styles: false,
  objectUrl: null,
  segments: [],
  total: 0,
  request: 0,
  key: "",  // the API key when session storage is unavailable
};

function colourOf(genre) {
  if (genre === NOT_MUSIC) return NOT_MUSIC_COLOUR;
  const index = page.labels.indexOf(genre);
  if (index < 0) return SILENT_COLOUR;
  if (index < PALETTE.length) return PALETTE[index];
  return `hsl(${Math.round((index * 137.5) % 360)} 55% 55%)`;
}

function percent(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearMessages() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("status").textContent = "";
}

async function errorMessage(response, fallback) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `${fallback} (HTTP ${response.status})`;
}

// ---- API key (servers started with --api-key or GENREKIT_API_KEY) --------------------------

function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch (_) {
    return page.key || "";
  }
}

function storeKey(key) {
  page.key = key;
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch (_) { /* storage disabled: keep it in memory */ }
}

function api(url, options = {}) {
  const key = apiKey();
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  return fetch(url, { ...options, headers });
}

// the server wants a key (or another one): forget the old one and ask
function askForKey(message) {
  storeKey("");
  const form = $("key-form");
  form.hidden = false;
  showError(message);
  $("api-key").focus();
}

function setUpKeyForm() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("api-key");
    storeKey(input.value.trim());
    input.value = "";
    $("key-form").hidden = true;
    clearMessages();
    loadModelInfo();
  });
}

async function loadModelInfo() {
  try {
    const response = await api("/v1/models");
    if (response.status === 401) {
      $("model-name").textContent = "";
      askForKey(await errorMessage(response, "this server needs an API key"));
      return;
    }
    if (!response.ok) throw new Error(await errorMessage(response, "cannot read the model"));
    const info = await response.json();
    const model = info.models[0];
    page.labels = model.labels;
    page.styles = Boolean(model.styles);
    page.limits = info.limits;
    $("model-name").textContent = `model: ${model.name} \u00b7 ${model.labels.length} genres`;
    $("limits").textContent =
      `audio files up to ${info.limits.max_upload_mb} MB and ${Math.round(info.limits.max_duration_s / 60)} minutes`;
  } catch (error) {
    $("model-name").textContent = "";
    showError(`The server did not describe its model: ${error.message}`);
  }
}

// ---- choosing a file -------------------------------------------------------------------------

function openPicker() {
  $("file-input").click();
}

function setUpDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("click", openPicker);
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openPicker();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) handleFile(files[0]);
  });
  $("file-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) handleFile(file);
    event.target.value = "";  // choosing the same file again still fires "change"
  });
}

// ---- sending it ------------------------------------------------------------------------------

async function handleFile(file) {
  clearMessages();
  const limits = page.limits;
  if (limits && file.size > limits.max_upload_mb * 1024 * 1024) {
    showError(`${file.name}: the file is ${(file.size / 2 ** 20).toFixed(1)} MB; ` +
              `this server accepts up to ${limits.max_upload_mb} MB.`);
    return;
  }
  const request = ++page.request;
  $("result").hidden = true;
  $("status").textContent = `Listening to ${file.name}\u2026`;
  $("drop-zone").setAttribute("aria-busy", "true");

  const topK = Math.min(5, Math.max(1, page.labels.length || 3));
  const styles = page.styles ? "&styles=true" : "";
  const prediction = send(`/v1/predict?segments=true&top_k=${topK}${styles}`, file);
  const spectrogram = send("/v1/spectrogram", file);
  try {
    const response = await prediction;
    if (request !== page.request) return;  // a newer file was chosen meanwhile
    if (response.status === 401) {
      askForKey(await errorMessage(response, "this server needs an API key"));
      $("status").textContent = "";
      return;
    }
    if (!response.ok) {
      showError(await errorMessage(response, `${file.name} could not be classified`));
      $("status").textContent = "";
      return;
    }
    showResult(file, await response.json());
    $("status").textContent = "";
    showSpectrogram(request, spectrogram);
  } catch (error) {
    if (request === page.request) {
      showError(`${file.name}: the server could not be reached (${error.message}).`);
      $("status").textContent = "";
    }
  } finally {
    if (request === page.request) $("drop-zone").removeAttribute("aria-busy");
  }
}

function send(url, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return api(url, { method: "POST", body: form });
}

async function showSpectrogram(request, pending) {
  const image = $("spectrogram");
  const note = $("spectrogram-status");
  image.hidden = true;
  note.textContent = "Drawing the spectrogram\u2026";
  try {
    const response = await pending;
    if (request !== page.request) return;
    if (!response.ok) {
      note.textContent = await errorMessage(response, "No spectrogram");
      return;
    }
    const blob = await response.blob();
    if (image.dataset.url) URL.revokeObjectURL(image.dataset.url);
    image.dataset.url = URL.createObjectURL(blob);
    image.src = image.dataset.url;
    image.hidden = false;
    note.textContent = "";
  } catch (error) {
    if (request === page.request) note.textContent = `No spectrogram (${error.message}).`;
  }
}

// ---- showing the result ----------------------------------------------------------------------

function showResult(file, result) {
  const player = $("player");
  if (page.objectUrl) URL.revokeObjectURL(page.objectUrl);
  page.objectUrl = URL.createObjectURL(file);
  player.src = page.objectUrl;

  $("file-name").textContent = result.path;
  const verdict = result.genre !== null ? result.genre : (result.not_music ? NOT_MUSIC : "silence");
  $("genre").textContent = verdict;
  $("genre").style.setProperty("--genre-colour", colourOf(result.genre === null && result.not_music ? NOT_MUSIC : result.genre));
  $("not-music").hidden = !result.not_music;
  const styles = result.styles || [];
  $("styles").textContent = styles.length
    ? `Styles: ${styles.map((s) => `${s.style} (${percent(s.score)})`).join(", ")}` : "";
  $("styles").hidden = !styles.length;
  $("confidence").textContent = result.genre === null ? "" : `${percent(result.confidence)} confident`;
  $("uncertain").hidden = !result.uncertain || result.genre === null;

  renderBars(result.top);
  renderTimeline(result.segments || [], result.duration);
  $("result").hidden = false;
  followPlayback();
}

function renderBars(top) {
  const list = $("bars");
  list.replaceChildren();
  for (const { genre, probability } of top) {
    const item = document.createElement("li");
    item.className = "bar";
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = genre;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    fill.style.background = colourOf(genre);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(probability);
    item.append(name, track, value);
    item.setAttribute("aria-label", `${genre}: ${percent(probability)}`);
    list.append(item);
  }
}

function renderTimeline(segments, duration) {
  const strip = $("timeline");
  strip.replaceChildren();
  page.segments = segments;
  page.total = Math.max(duration || 0, ...segments.map((s) => s.end), 0.001);
  const seen = new Set();
  segments.forEach((segment, index) => {
    // overlapping windows (hop < window) are drawn up to the next one's start
    const next = segments[index + 1];
    const stop = next ? Math.min(segment.end, next.start) : segment.end;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "segment";
    button.style.left = `${(100 * segment.start) / page.total}%`;
    button.style.width = `${(100 * Math.max(stop - segment.start, 0)) / page.total}%`;
    const genre = segment.not_music ? NOT_MUSIC : segment.genre;
    button.style.background = colourOf(genre);
    button.dataset.start = String(segment.start);
    const share = segment.genre && segment.probabilities ? ` (${percent(segment.probabilities[genre])})` : "";
    button.title = `${clock(segment.start)}\u2013${clock(segment.end)} ${genre || "silence"}${share}`;
    button.setAttribute("aria-label", `Play from ${clock(segment.start)}: ${genre || "silence"}${share}`);
    button.addEventListener("click", () => seek(segment.start));
    strip.append(button);
    seen.add(genre);
  });
  renderLegend(seen);
}

function renderLegend(genres) {
  const legend = $("legend");
  legend.replaceChildren();
  const ordered = page.labels.filter((label) => genres.has(label));
  if (genres.has(NOT_MUSIC)) ordered.push(NOT_MUSIC);
  if (genres.has(null)) ordered.push(null);
  for (const genre of ordered) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(genre);
    item.append(swatch, document.createTextNode(genre || "silence"));
    legend.append(item);
  }
}

// ---- playback ----------------------------------------------------------------------------------

function seek(seconds) {
  const player = $("player");
  player.currentTime = seconds;
  const playing = player.play();
  if (playing && playing.catch) playing.catch(() => { /* no audio output: the seek still counts */ });
  updatePlayhead();
}

function updatePlayhead() {
  const player = $("player");
  const time = player.currentTime || 0;
  const position = `${Math.min(100, (100 * time) / page.total)}%`;
  $("playhead").style.left = position;
  const span = player.duration && isFinite(player.duration) ? player.duration : page.total;
  $("spectrogram-playhead").style.left = `${Math.min(100, (100 * time) / span)}%`;
  const buttons = $("timeline").children;
  page.segments.forEach((segment, index) => {
    const next = page.segments[index + 1];
    const stop = next ? Math.min(segment.end, next.start) : segment.end;
    const current = time >= segment.start && (time < stop || (!next && time <= segment.end));
    buttons[index].classList.toggle("current", current);
    if (current) buttons[index].setAttribute("aria-current", "true");
    else buttons[index].removeAttribute("aria-current");
  });
}

function followPlayback() {
  const player = $("player");
  if (player.dataset.following) return;
  player.dataset.following = "yes";
  for (const name of ["timeupdate", "seeked", "loadedmetadata"]) player.addEventListener(name, updatePlayhead);
  const frame = () => {
    if (!player.paused) updatePlayhead();
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  $("spectrogram").addEventListener("click", (event) => {
    const box = event.currentTarget.getBoundingClientRect();
    const span = player.duration && isFinite(player.duration) ? player.duration : page.total;
    seek(((event.clientX - box.left) / box.width) * span);
  });
}

setUpKeyForm();
setUpDropZone();
loadModelInfo();
