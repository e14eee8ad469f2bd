// Latent Snare in the browser: this tab is the instrument. Its point, model, velocity, loop and
// tempo live here and in the URL (so a link reopens the same snare, and a server restart loses
// nothing); the server only renders snares, encodes dropped samples and builds packs.
// Snares are fetched as WAVs and decoded into AudioBuffers ahead of time: a tap only starts a
// buffer already in memory, so it sounds within one audio buffer.
"use strict";

const $ = (id) => document.getElementById(id);
const READY_MAX = 64;  // decoded snares kept in this tab (about 130 kB each)
const URL_EVERY_MS = 250;  // browsers limit history.replaceState calls; the URL follows at this pace
const LOOKAHEAD_S = 0.1;  // the loop schedules its hits this far ahead, every SCHEDULE_MS
const SCHEDULE_MS = 25;

let settings = null;  // /settings: MIDI mapping, loop, upload cap
let modelNames = [];
const state = { x: 64, y: 64, model: null, velocity: 100, bpm: 120, loop: false };
let ctx = null;  // the AudioContext, created at the model's sample rate so buffers are not resampled
const ready = new Map();  // "model x y" -> AudioBuffer, least recently used first
let current = null;  // the newest decoded snare: { key, buffer }; every hit plays it
let wanted = null;  // the newest point asked for while a fetch is in flight
let fetching = false;
let lastPlayed = null;  // what the last hit scheduled (tests compare it with `latent-snare render`)
const sounding = new Set();
let loopTimer = null;
let loopNext = 0;
let urlTimer = null;
let firstReadyMs = null;  // page load to first playable sound, for the benchmark

// --- start -------------------------------------------------------------------------------------

async function start() {
  const [s, m] = await Promise.all([getJson("/settings"), getJson("/models")]);
  settings = s;
  modelNames = m.models.map((model) => model.name);
  $("model").replaceChildren(...modelNames.map((name) => new Option(name, name)));
  $("grid").replaceChildren(...range(s.pack_grid[0], s.pack_grid[1]).map((n) => new Option(`${n}×${n}`, n)));
  $("grid").value = Math.min(5, s.pack_grid[1]);
  fromUrl(new URLSearchParams(location.search), m.default, s.loop.bpm);
  const rate = m.models.find((model) => model.name === state.model).sample_rate;
  ctx = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
  showLatency();
  setModel(state.model);
  placeDot();
  $("velocity").value = $("velocity-out").textContent = state.velocity;
  $("bpm").value = state.bpm;
  if (state.loop) setLoop(true);
  showMapping();
  openMidi();
}

async function getJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return response.json();
}

const range = (lo, hi) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
const clampCc = (v) => Math.min(127, Math.max(0, Math.round(v)));

function fromUrl(query, defaultModel, defaultBpm) {
  // Anything unusable in a shared link falls back to the default, with one line saying so.
  const problems = [];
  const number = (key, lo, hi, fallback) => {
    if (!query.has(key)) return fallback;
    const value = Number(query.get(key));
    if (query.get(key) !== "" && Number.isFinite(value) && value >= lo && value <= hi) return value;
    problems.push(`${key} must be ${lo}..${hi}`);
    return fallback;
  };
  state.x = Math.round(number("x", 0, 127, 64));
  state.y = Math.round(number("y", 0, 127, 64));
  state.velocity = Math.round(number("velocity", 1, 127, 100));
  state.bpm = number("bpm", 20, 400, defaultBpm);
  state.loop = query.get("loop") === "1";
  state.model = defaultModel;
  if (query.has("model")) {
    if (modelNames.includes(query.get("model"))) state.model = query.get("model");
    else problems.push(`no model ${JSON.stringify(query.get("model"))} here`);
  }
  if (problems.length) say(`link: ${problems.join("; ")}; using the defaults for those`, "bad");
}

function saveUrl() {
  // Throttled: a drag would otherwise call replaceState at pointer rate.
  if (urlTimer !== null) return;
  urlTimer = setTimeout(() => {
    urlTimer = null;
    const query = new URLSearchParams({ x: state.x, y: state.y, model: state.model, velocity: state.velocity, bpm: state.bpm });
    if (state.loop) query.set("loop", "1");
    history.replaceState(null, "", `?${query}`);
    $("share").href = location.href;
    $("share").textContent = location.href;
  }, URL_EVERY_MS);
}

function say(text, kind) {
  $("message").textContent = text;
  $("message").className = kind || "";
}

// --- the point and its snare -------------------------------------------------------------------

// A hit plays the velocity layer nearest the velocity slider (as the instrument: halfway between
// the layers), at the slider's own level: the WAV carries its layer's level, the gain the rest.
function layerOf(velocity) {
  const layers = settings.velocity_layers;
  let i = 0;
  while (i < layers.length - 1 && velocity > (layers[i] + layers[i + 1]) / 2) i += 1;
  return layers[i];
}
const keyOf = (s) => `${s.model} ${s.x} ${s.y}`;
const snareUrl = (s, velocity) =>
  `/snare.wav?x=${s.x}&y=${s.y}&model=${encodeURIComponent(s.model)}&velocity=${velocity}`;

function moveTo(x, y) {
  state.x = clampCc(x);
  state.y = clampCc(y);
  placeDot();
  prepare();
  saveUrl();
}

function placeDot() {
  $("dot").style.left = `${(state.x / 127) * 100}%`;
  $("dot").style.top = `${(1 - state.y / 127) * 100}%`;
  $("r-cc").textContent = `${state.x}, ${state.y}`;
  document.body.dataset.cc = `${state.x},${state.y}`;
  $("download").href = snareUrl(state, state.velocity);  // `render --velocity V`: this velocity's level and timbre
  $("download").download = `${state.model}-x${pad3(state.x)}-y${pad3(state.y)}.wav`;
  $("pack").href = `/pack.zip?grid=${$("grid").value}&model=${encodeURIComponent(state.model)}`;
}

const pad3 = (n) => String(n).padStart(3, "0");

async function prepare() {
  // Decode ahead: one fetch at a time, and only the newest point waits for the next one.
  if (!ctx) return;  // start() prepares the first point once the audio context exists
  wanted = { ...state };
  if (fetching) return;
  fetching = true;
  while (wanted) {
    const point = wanted;
    wanted = null;
    const key = keyOf(point);
    const layer = layerOf(point.velocity);
    const cached = `${key} ${layer}`;
    try {
      let buffer = ready.get(cached);
      if (buffer) ready.delete(cached);
      else {
        const started = performance.now();
        const response = await fetch(snareUrl(point, layer));
        if (!response.ok) throw new Error(await response.text());
        buffer = await ctx.decodeAudioData(await response.arrayBuffer());
        $("r-ready").textContent = `${(performance.now() - started).toFixed(0)} ms after the move`;
      }
      ready.set(cached, buffer);
      if (ready.size > READY_MAX) ready.delete(ready.keys().next().value);
      current = { key, buffer, layer };
      if (firstReadyMs === null) firstReadyMs = performance.now();
    } catch (err) {
      say(`could not get the snare at CC (${point.x}, ${point.y}): ${err.message}`, "bad");
    }
  }
  fetching = false;
  document.body.dataset.ready = current ? current.key : "";
}

// --- playing -------------------------------------------------------------------------------------

function velocityGain(velocity) {
  // As the instrument: 127 at 0 dB, 1 at -velocity_range_db, straight in dB between.
  return 10 ** ((-settings.velocity_range_db * (127 - velocity)) / 126 / 20);
}

function play(velocity, when = 0) {
  if (!current) return say("the first snare is still on its way…", "bad");
  if (ctx.state !== "running") ctx.resume().then(showLatency);
  const gain = ctx.createGain();
  gain.gain.value = velocityGain(velocity) / velocityGain(current.layer);
  const source = ctx.createBufferSource();
  source.buffer = current.buffer;
  source.connect(gain).connect(ctx.destination);
  source.onended = () => sounding.delete(source);
  sounding.add(source);
  source.start(when);
  lastPlayed = { key: current.key, layer: current.layer, buffer: current.buffer, gain: gain.gain.value, velocity, when };
}

function allSoundOff() {
  for (const source of sounding) source.stop();
  sounding.clear();
}

function showLatency() {
  const ms = (s) => `${(s * 1000).toFixed(1)} ms`;
  $("r-latency").textContent = `${ms(ctx.baseLatency || 0)} buffer + ${ms(ctx.outputLatency || 0)} device`;
  $("audio").className = `link ${ctx.state === "running" ? "on" : "off"}`;
  $("audio").textContent = ctx.state === "running" ? "sound on" : "sound: tap Hit to start";
}

function setLoop(on) {
  state.loop = on;
  $("loop").checked = on;
  clearInterval(loopTimer);
  loopTimer = null;
  if (on) {
    loopNext = ctx.currentTime + 0.05;
    loopTimer = setInterval(scheduleLoop, SCHEDULE_MS);
    scheduleLoop();
  }
  saveUrl();
}

function scheduleLoop() {
  // Hits are placed on the audio clock, ahead of time: a late timer never makes a late hit.
  const step = 60 / state.bpm / settings.loop.steps_per_beat;
  if (loopNext < ctx.currentTime) loopNext = ctx.currentTime;
  while (loopNext < ctx.currentTime + LOOKAHEAD_S) {
    play(settings.loop.velocity, loopNext);
    loopNext += step;
  }
}

function setModel(name) {
  state.model = name;
  $("model").value = name;
  const url = `/map/${encodeURIComponent(name)}.png`;
  if (!$("map").src.endsWith(url)) {
    // The old map stays under a loading veil until the new one has arrived.
    $("pad").classList.add("loading");
    $("loading").textContent = `building the map for ${name}…`;
    $("map").src = url;
  }
  placeDot();
  prepare();
  saveUrl();
}

$("map").addEventListener("load", () => $("pad").classList.remove("loading"));
$("map").addEventListener("error", () => say(`the map for ${state.model} could not be loaded`, "bad"));

// --- the pad and the controls ----------------------------------------------------------------------

const pad = $("pad");
let dragging = false;

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) / box.width) * 127, (1 - (event.clientY - box.top) / box.height) * 127];
}

pad.addEventListener("pointerdown", (e) => {
  dragging = true;
  pad.setPointerCapture(e.pointerId);
  pad.classList.add("dragging");
  moveTo(...padPoint(e));
});
pad.addEventListener("pointermove", (e) => { if (dragging) moveTo(...padPoint(e)); });
for (const end of ["pointerup", "pointercancel"]) {
  pad.addEventListener(end, () => { dragging = false; pad.classList.remove("dragging"); });
}
pad.addEventListener("keydown", (e) => {
  const step = e.shiftKey ? 8 : 1;
  const delta = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[e.key];
  if (!delta) return;
  e.preventDefault();
  moveTo(state.x + delta[0], state.y + delta[1]);
});

// pointerdown, not click: the hit starts as the finger lands, not when it lifts.
$("hit").addEventListener("pointerdown", () => play(state.velocity));
$("hit").addEventListener("keydown", (e) => { if (e.key === "Enter") play(state.velocity); });
document.addEventListener("keydown", (e) => {
  if (e.key === " " && !["INPUT", "SELECT", "BUTTON"].includes(document.activeElement.tagName)) {
    e.preventDefault();
    play(state.velocity);
  }
});
$("velocity").addEventListener("input", () => {
  const layer = layerOf(state.velocity);
  state.velocity = Number($("velocity").value);
  if (layerOf(state.velocity) !== layer) prepare();  // the new velocity's own timbre
  $("velocity-out").textContent = state.velocity;
  placeDot();  // the download follows the velocity
  saveUrl();
});
$("loop").addEventListener("change", () => setLoop($("loop").checked));
$("bpm").addEventListener("change", () => {
  const bpm = Number($("bpm").value);
  if (bpm >= 20 && bpm <= 400) { state.bpm = bpm; saveUrl(); } else say("tempo must be 20..400 bpm", "bad");
});
$("model").addEventListener("change", () => setModel($("model").value));
$("grid").addEventListener("change", placeDot);

// --- drop a sample -------------------------------------------------------------------------------

pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dropping"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dropping"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("dropping");
  if (e.dataTransfer.files[0]) encode(e.dataTransfer.files[0]);
});
$("file").addEventListener("change", () => { if ($("file").files[0]) encode($("file").files[0]); });

async function encode(file) {
  if (file.size > settings.max_upload_mb * 1e6) return say(`${file.name}: larger than ${settings.max_upload_mb} MB; refused`, "bad");
  say(`finding ${file.name} on the pad…`);
  try {
    const response = await fetch(`/encode?model=${encodeURIComponent(state.model)}`,
      { method: "POST", body: file, headers: { "X-File-Name": encodeURIComponent(file.name) } });
    const json = (response.headers.get("Content-Type") || "").startsWith("application/json");
    const reply = json ? await response.json() : { ok: false, message: (await response.text()).trim() };
    if (!reply.ok) return say(reply.message, "bad");
    moveTo(reply.cc[0], reply.cc[1]);
    say(reply.message, "good");
  } catch (err) {
    say(`${file.name}: upload failed (${err.message})`, "bad");
  }
}

// --- keeping what you like ---------------------------------------------------------------------------

function keptList() {
  return JSON.parse(sessionStorage.getItem("kept") || "[]");
}

function keep() {
  const kept = [...keptList(), { model: state.model, x: state.x, y: state.y }];
  sessionStorage.setItem("kept", JSON.stringify(kept));
  showKept();
  say(`kept ${state.model} at CC (${state.x}, ${state.y})`, "good");
}

function showKept() {
  $("kept").replaceChildren(...keptList().map((k) => {
    const item = document.createElement("li");
    const recall = document.createElement("button");
    recall.textContent = "recall";
    recall.addEventListener("click", () => { if (k.model !== state.model) setModel(k.model); moveTo(k.x, k.y); });
    const link = document.createElement("a");
    link.href = snareUrl(k);
    link.download = link.textContent = `${k.model}-x${pad3(k.x)}-y${pad3(k.y)}.wav`;
    item.append(recall, link);
    return item;
  }));
}

$("keep").addEventListener("click", keep);

// --- Web MIDI: the instrument's CC and note mapping, and MIDI learn ------------------------------------

let learning = null;  // "x", "y", "loop" or "save" while waiting for a control

function mapping() {
  const m = settings.midi;
  return { x: m.cc_x, y: m.cc_y, loop: m.loop_cc, save: m.save_cc, ...JSON.parse(localStorage.getItem("midi-learn") || "{}") };
}

function showMapping() {
  const m = mapping();
  $("midi-map").textContent = `x CC ${m.x}, y CC ${m.y}, loop CC ${m.loop}, keep CC ${m.save}; ` +
    `notes ${settings.midi.trigger_notes.join(", ") || "all"} play`;
  $("axis-x").textContent = `CC ${m.x} (x): brighter →`;
  $("axis-y").textContent = `CC ${m.y} (y): longer decay →`;
}

function midiMessage(data) {
  const [status, data1, data2] = data;
  if (status >= 0xf0) return;  // clock and system messages: the loop keeps the page's own tempo
  const channel = (status & 0x0f) + 1;
  if (settings.midi.channel !== "omni" && channel !== Number(settings.midi.channel)) return;
  const kind = status & 0xf0;
  if (kind === 0xb0) return controlChange(data1, data2);
  if (kind === 0x90 && data2 > 0) {
    const notes = settings.midi.trigger_notes;
    if (notes.length === 0 || notes.includes(data1)) play(data2);
  } else if (kind === 0xc0 && settings.midi.programs[data1]) setModel(settings.midi.programs[data1]);
}

function controlChange(number, value) {
  if (number === 120) return allSoundOff();
  const m = mapping();
  if (learning) return learn(learning, number);
  if (number === m.x) moveTo(value, state.y);
  else if (number === m.y) moveTo(state.x, value);
  else if (number === m.loop) setLoop(value >= 64);
  else if (number === m.save && value >= 64) keep();
}

function learn(target, number) {
  const m = mapping();
  const owner = Object.keys(m).find((key) => m[key] === number && key !== target);
  learning = null;
  document.querySelectorAll("[data-learn]").forEach((b) => b.classList.remove("learning"));
  if (owner) return say(`CC ${number} already does ${owner}; pick another control for ${target}`, "bad");
  localStorage.setItem("midi-learn", JSON.stringify({ ...JSON.parse(localStorage.getItem("midi-learn") || "{}"), [target]: number }));
  showMapping();
  say(`learned: CC ${number} now does ${target}`, "good");
}

document.querySelectorAll("[data-learn]").forEach((button) => button.addEventListener("click", () => {
  learning = button.dataset.learn;
  button.classList.add("learning");
  say(`move the control for ${learning} on your MIDI controller…`);
}));

async function openMidi() {
  if (!navigator.requestMIDIAccess) return ($("midi-status").textContent = "this browser has no Web MIDI");
  try {
    const access = await navigator.requestMIDIAccess();
    const attach = () => {
      const names = [];
      for (const input of access.inputs.values()) {
        input.onmidimessage = (event) => midiMessage(event.data);
        names.push(input.name);
      }
      $("midi-status").textContent = names.length ? `listening to ${names.join(", ")}` : "no MIDI inputs found";
    };
    access.onstatechange = attach;
    attach();
  } catch (err) {
    $("midi-status").textContent = `no MIDI access (${err.message})`;
  }
}

// For tests and curious users: the tab's instrument from the console.
window.latentSnare = { state, midi: midiMessage, lastPlayed: () => lastPlayed, firstReadyMs: () => firstReadyMs };

showKept();
start().catch((err) => say(`could not start: ${err.message}`, "bad"));
