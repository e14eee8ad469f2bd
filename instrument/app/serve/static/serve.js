// Latent Snare in the browser: this tab is the instrument. Its point, model, velocity, loop and
// tempo live here and in the URL (so a link reopens the same snare, and a server restart loses
// nothing). Snares are decoded in this tab, on a Worker (decoder-worker.js), so a knob move costs
// no request; where that cannot run (an old browser, a model family the page cannot render, or
// `?decoder=server`) they are fetched from the server as WAVs. Either way a snare becomes an
// AudioBuffer ahead of time: a tap only starts a buffer already in memory.
// The same page runs under `latent-snare serve` and as the static site `latent-snare site` writes
// (a <meta name="latent-snare-site"> marks it; there is no server then, only files).
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
let pumping = false;  // pump() is decoding
let roundRobinTimer = null;
const ROUND_ROBIN_REST_MS = 150;  // the knobs must rest this long before the round robins are decoded
let lastPlayed = null;  // what the last hit scheduled (tests compare it with `latent-snare render`)
const sounding = new Set();
let loopTimer = null;
let loopNext = 0;
let urlTimer = null;
let firstReadyMs = null;  // page load to first playable sound, for the benchmark
let roundRobin = 0;
let lastReadyMs = null;  // the newest point's move -> playable, for the readout and the benchmark  // hits take the current point's variants in turn
let decoder = null;  // the Worker, while the page decodes (null: the server does)
let decodeId = 0;
const decodeReplies = new Map();  // request id -> { resolve, reject }
const SITE = document.querySelector('meta[name="latent-snare-site"]') !== null;
const URLS = SITE
  ? { settings: "settings.json", models: "models.json", map: (name) => `map/${encodeURIComponent(name)}.png` }
  : { settings: "/settings", models: "/models", map: (name) => `/map/${encodeURIComponent(name)}.png` };
let modelInfo = {};  // name -> its /models entry

// --- start -------------------------------------------------------------------------------------

async function start() {
  // The decoder's thread loads while the settings arrive.
  if (window.Worker && (SITE || new URLSearchParams(location.search).get("decoder") !== "server")) startDecoder();
  else document.body.dataset.decoder = "server";
  const [s, m] = await Promise.all([getJson(URLS.settings), getJson(URLS.models)]);
  settings = s;
  modelNames = m.models.map((model) => model.name);
  modelInfo = Object.fromEntries(m.models.map((model) => [model.name, model]));
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
    if (!SITE && new URLSearchParams(location.search).get("decoder") === "server") query.set("decoder", "server");
    history.replaceState(null, "", `?${query}`);
    showShare(location.href);
  }, URL_EVERY_MS);
}

function showShare(url) {
  // One piece per parameter, each kept on one line, with a break opportunity before each: a
  // narrow column wraps the link between parameters, never inside one.
  $("share").href = url;
  const pieces = url.split(/(?=[?&])/);
  $("share").replaceChildren(...pieces.flatMap((piece, i) => {
    const span = document.createElement("span");
    span.textContent = piece;
    return i ? [document.createElement("wbr"), span] : [span];
  }));
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
  Pad.describe(state.x, state.y);
  document.body.dataset.cc = `${state.x},${state.y}`;
  $("download").href = snareUrl(state, state.velocity);  // `render --velocity V`: this velocity's level and timbre
  $("download").download = `${state.model}-x${pad3(state.x)}-y${pad3(state.y)}.wav`;
  $("pack").href = `/pack.zip?grid=${$("grid").value}&model=${encodeURIComponent(state.model)}`;
}

const pad3 = (n) => String(n).padStart(3, "0");

function prepare() {
  // Decode ahead: one decode at a time, and only the newest point waits for the next one.
  if (!ctx) return;  // start() prepares the first point once the audio context exists
  wanted = { ...state, askedMs: performance.now() };
  queueMicrotask(pump);  // both knobs moved in one task (one MIDI packet, one script) decode once
}

async function pump() {
  // The one loop that decodes: the newest wanted point first; the current point's other round
  // robins only once the knobs have rested, so a moving knob never waits behind them.
  if (pumping) return;
  pumping = true;
  clearTimeout(roundRobinTimer);
  while (wanted || (current && moreRoundRobins(current) && restedMs() >= ROUND_ROBIN_REST_MS)) {
    if (wanted) {
      const point = wanted;
      wanted = null;
      await preparePoint(point);
    } else {
      await addRoundRobin(current);
    }
  }
  pumping = false;
  if (current && !current.kept && restedMs() >= ROUND_ROBIN_REST_MS) keepSnare(current);
  if (current && (moreRoundRobins(current) || !current.kept)) {
    roundRobinTimer = setTimeout(pump, ROUND_ROBIN_REST_MS - restedMs());
  }
}

// The snare the knobs rest on is kept (in Cache Storage) for the tab's next visit to that point,
// which plays it at once, before its decoder's thread has loaded and warmed up.
const KEPT_SNARE_CACHE = "latent-snare-kept";
const keptSnareKey = (point, layer) =>
  new URL(`kept-snare/${modelInfo[point.model].identity}/${point.x}/${point.y}/${layer}`, location.href).href;

async function keptSnare(point, layer) {
  if (!window.caches || !decoder || !modelInfo[point.model].browser) return null;
  try {
    const hit = await (await caches.open(KEPT_SNARE_CACHE)).match(keptSnareKey(point, layer));
    if (!hit) return null;
    const wave = new Float32Array(await hit.arrayBuffer());
    const buffer = ctx.createBuffer(1, wave.length, modelInfo[point.model].sample_rate);
    buffer.copyToChannel(wave, 0);
    return buffer;
  } catch {
    return null;  // no cache here: decode as usual
  }
}

function keepSnare(snare) {
  snare.kept = true;
  if (!window.caches || !decoder || !modelInfo[snare.point.model].browser) return;
  const wave = snare.buffers[0].getChannelData(0).slice();
  caches.open(KEPT_SNARE_CACHE).then(async (cache) => {
    for (const old of await cache.keys()) await cache.delete(old);  // one snare, the newest
    await cache.put(keptSnareKey(snare.point, snare.layer), new Response(wave));
  }).catch(() => {});
}

async function preparePoint(point) {
  const key = keyOf(point);
  const layer = layerOf(point.velocity);
  const cached = `${key} ${layer}`;
  try {
    let buffers = ready.get(cached);
    if (buffers) ready.delete(cached);
    else {
      const kept = firstReadyMs === null ? await keptSnare(point, layer) : null;
      buffers = [kept || (await snareBuffer(point, layer, 0))];
      lastReadyMs = performance.now() - point.askedMs;  // from the move, including a decode it waited for
      $("r-ready").textContent = `${lastReadyMs.toFixed(1)} ms after the move (${decoder ? "in this tab" : "from the server"})`;
    }
    ready.set(cached, buffers);
    if (ready.size > READY_MAX) ready.delete(ready.keys().next().value);
    current = { key, buffers, layer, point, askedMs: point.askedMs };
    if (firstReadyMs === null) firstReadyMs = performance.now();
    document.body.dataset.ready = key;
  } catch (err) {
    say(`could not get the snare at CC (${point.x}, ${point.y}): ${err.message}`, "bad");
  }
}

const restedMs = () => performance.now() - current.askedMs;
const moreRoundRobins = (snare) =>
  decoder && modelInfo[snare.point.model].browser && snare.buffers.length < modelInfo[snare.point.model].n_variants
  && !snare.failed;

async function addRoundRobin(snare) {
  // The point's next round robin joins its buffers: no two hits in a row are the same samples.
  try {
    snare.buffers.push(await snareBuffer(snare.point, snare.layer, snare.buffers.length));
  } catch {
    snare.failed = true;  // its hits keep the variants they have
  }
}

async function snareBuffer(point, velocity, variant) {
  // The snare at `point` with `velocity`'s timbre and level, as an AudioBuffer.
  if (decoder && modelInfo[point.model].browser) {
    try {
      const reply = await decodeHere(point.model, point.x, point.y, velocity, variant);
      const buffer = ctx.createBuffer(1, reply.wave.length, modelInfo[point.model].sample_rate);
      buffer.copyToChannel(reply.wave, 0);
      return buffer;
    } catch (err) {
      if (SITE) throw err;
      stopDecoder(`decoding in this tab failed (${err.message}); the server decodes instead`);
    }
  }
  if (SITE) throw new Error("this browser cannot run the page's decoder (it needs Web Workers)");
  const response = await fetch(snareUrl(point, velocity));
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).message || `the server answered ${response.status}`);
  return ctx.decodeAudioData(await response.arrayBuffer());
}

// --- the decoder in this tab ---------------------------------------------------------------------

function startDecoder() {
  try {
    decoder = new Worker(SITE ? "static/decoder-worker.js" : "/static/decoder-worker.js", { type: "module" });
  } catch (err) {
    return stopDecoder(`this browser cannot decode in the page (${err.message}); the server decodes`);
  }
  decoder.onmessage = ({ data }) => {
    const reply = decodeReplies.get(data.id);
    if (reply && data.type === "progress") return reply.progress(data.done, data.total);
    decodeReplies.delete(data.id);
    if (reply && data.type === "error") reply.reject(new Error(data.error));
    else if (reply) reply.resolve(data);
  };
  decoder.onerror = (event) => stopDecoder(`the page's decoder stopped (${event.message}); the server decodes`);
  document.body.dataset.decoder = "browser";
}

function stopDecoder(why) {
  if (decoder) decoder.terminate();
  decoder = null;
  document.body.dataset.decoder = "server";
  for (const reply of decodeReplies.values()) reply.reject(new Error(why));
  decodeReplies.clear();
  if (why) say(why, "bad");
}

function decode(message, progress = () => {}, transfer = []) {
  const id = ++decodeId;
  return new Promise((resolve, reject) => {
    decodeReplies.set(id, { resolve, reject, progress });
    decoder.postMessage({ ...message, id }, transfer);
  });
}

/** The snare `render --cc X Y --velocity V --variant K` writes, decoded on the tab's thread:
 * { wave (Float32Array), latent, ms }. */
async function decodeHere(model, x, y, velocity, variant) {
  await loadModel(model);
  return decode({ type: "decode", name: model, x, y, velocity, variant,
    velocityRangeDb: settings.velocity_range_db, ceilingDb: settings.ceiling_db });
}

const loadedModels = new Map();  // name -> Promise: its weights in the decoder

function loadModel(name) {
  if (!decoder || !modelInfo[name].browser) return Promise.resolve();
  if (!loadedModels.has(name)) {
    // Absolute: the worker would resolve a relative URL against its own script's folder.
    const url = (suffix) => new URL(`${SITE ? "" : "/"}models/${encodeURIComponent(name)}${suffix}`, location.href).href;
    loadedModels.set(name, decode({ type: "load", name, spec: url(".browser.json"), weights: url(".safetensors") }));
  }
  return loadedModels.get(name);
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
  const variant = roundRobin++ % current.buffers.length;  // buffers[k] is round robin k
  const buffer = current.buffers[variant];
  source.buffer = buffer;
  source.connect(gain).connect(ctx.destination);
  source.onended = () => sounding.delete(source);
  sounding.add(source);
  source.start(when);
  lastPlayed = { key: current.key, layer: current.layer, variant, buffer, gain: gain.gain.value, velocity, when };
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
  Pad.setLandmarks(modelInfo[name].landmarks);
  const url = URLS.map(name);
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
  // The map's square, not the pad's frame around it: a press on the frame is the nearest edge.
  const box = $("field").getBoundingClientRect();
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
  if (decoder && modelInfo[state.model].browser) return encodeHere(file, state.model);
  if (SITE) return say(`${file.name}: finding a dropped sample needs a browser with Web Workers`, "bad");
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

async function encodeHere(file, model) {
  // The search `latent-snare encode` makes, run on the decoder's thread, with a progress bar.
  const name = file.name;
  const info = modelInfo[model];
  let mono;
  try {
    // An offline context at the model's rate decodes and resamples in one step.
    const decoded = await new OfflineAudioContext(1, 1, info.sample_rate).decodeAudioData(await file.arrayBuffer());
    const frames = decoded.length;  // the decoder keeps the first max_duration_s of it
    mono = new Float32Array(frames);
    for (let c = 0; c < decoded.numberOfChannels; c++) {
      const channel = decoded.getChannelData(c);
      for (let i = 0; i < frames; i++) mono[i] += channel[i] / decoded.numberOfChannels;
    }
  } catch (err) {
    return say(`${name}: not a readable audio file (this browser could not decode it)`, "bad");
  }
  try {
    await loadModel(model);
    say(`finding ${name} on the pad…`);
    $("progress").hidden = false;
    const reply = await decode({ type: "encode", name: model, mono }, (done, total) => {
      $("progress").max = total;
      $("progress").value = done;
    }, [mono.buffer]);
    const cc = reply.cc.map(roundHalfEven);
    if (model !== state.model) setModel(model);
    moveTo(cc[0], cc[1]);
    say(`${name} -> CC (${cc[0]}, ${cc[1]}) on ${model}, spectral match ${Math.round(reply.match * 100)}%`, "good");
  } catch (err) {
    say(`${name}: ${err.message}`, "bad");
  } finally {
    $("progress").hidden = true;
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
  $("kept-empty").hidden = keptList().length > 0;
  $("kept").replaceChildren(...keptList().map((k) => {
    const item = document.createElement("li");
    const recall = document.createElement("button");
    recall.textContent = "recall";
    recall.addEventListener("click", () => { if (k.model !== state.model) setModel(k.model); moveTo(k.x, k.y); });
    const link = document.createElement("a");
    link.href = SITE ? "#" : snareUrl(k, 127);
    link.download = link.textContent = `${k.model}-x${pad3(k.x)}-y${pad3(k.y)}.wav`;
    link.addEventListener("click", (e) => {
      if (!decoder || !modelInfo[k.model].browser) return;
      e.preventDefault();
      downloadHere(k, 127).catch((err) => say(`could not make the WAV: ${err.message}`, "bad"));
    });
    item.append(recall, link);
    return item;
  }));
}

$("keep").addEventListener("click", keep);

// --- files made in this tab ------------------------------------------------------------------------

/** 24-bit PCM mono WAV bytes of `wave`, with `render`'s title and comment (the JSON that
 * recalls the point) when `info` ({ title, comment }) is given. */
function wavBytes(wave, sampleRate, info = null) {
  const fields = info ? [["INAM", info.title], ["ICMT", info.comment], ["ISFT", "latent-snare"]] : [];
  const encoded = fields.map(([id, value]) => {
    const body = new TextEncoder().encode(`${value}\0`);
    return [id, body, body.length + (body.length % 2)];  // chunks are padded to even sizes
  });
  const listBytes = encoded.length ? 12 + encoded.reduce((n, [, , size]) => n + 8 + size, 0) : 0;
  const bytes = new Uint8Array(44 + 3 * wave.length + listBytes);
  const view = new DataView(bytes.buffer);
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  if (listBytes) {
    let at = 44 + 3 * wave.length;
    text(at, "LIST"); view.setUint32(at + 4, listBytes - 8, true); text(at + 8, "INFO");
    at += 12;
    for (const [id, body, size] of encoded) {
      text(at, id); view.setUint32(at + 4, body.length, true); bytes.set(body, at + 8);
      at += 8 + size;
    }
  }
  text(0, "RIFF"); view.setUint32(4, bytes.length - 8, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, 3 * sampleRate, true); view.setUint16(32, 3, true);
  view.setUint16(34, 24, true); text(36, "data"); view.setUint32(40, 3 * wave.length, true);
  for (let i = 0; i < wave.length; i++) {
    // As libsndfile writes float to 24 bits: round at 32 bits, keep the top 24.
    const v = Math.max(-8388608, Math.min(8388607, Math.floor(Math.round(wave[i] * 2147483648) / 256)));
    bytes[44 + 3 * i] = v & 0xff; bytes[45 + 3 * i] = (v >> 8) & 0xff; bytes[46 + 3 * i] = (v >> 16) & 0xff;
  }
  return bytes;
}

function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

async function downloadHere(point, velocity) {
  // The snare as `render --velocity V` writes it (files/saving.py write_snare_to), made in this tab.
  const reply = await decodeHere(point.model, point.x, point.y, velocity, 0);
  saveBlob(new Blob([wavBytes(reply.wave, modelInfo[point.model].sample_rate, snareInfo(point, reply.latent))],
    { type: "audio/wav" }), `${point.model}-x${pad3(point.x)}-y${pad3(point.y)}.wav`);
}

function snareInfo(point, latent) {
  return {
    title: `Latent Snare ${point.model} x${pad3(point.x)} y${pad3(point.y)}`,
    comment: JSON.stringify({ model: point.model, latent, cc: [point.x, point.y] }),
  };
}

// A store-only zip (no compression: WAV noise does not compress), built in this tab.
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function zipBlob(entries) {
  const parts = [], central = [];
  let offset = 0;
  for (const { name, bytes } of entries) {
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(bytes);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true); local.setUint16(4, 20, true);
    local.setUint32(14, crc, true); local.setUint32(18, bytes.length, true); local.setUint32(22, bytes.length, true);
    local.setUint16(26, nameBytes.length, true);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true); entry.setUint16(4, 20, true); entry.setUint16(6, 20, true);
    entry.setUint32(16, crc, true); entry.setUint32(20, bytes.length, true); entry.setUint32(24, bytes.length, true);
    entry.setUint16(28, nameBytes.length, true); entry.setUint32(42, offset, true);
    parts.push(local, nameBytes, bytes);
    central.push(entry, nameBytes);
    offset += 30 + nameBytes.length + bytes.length;
  }
  const size = central.reduce((n, part) => n + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); end.setUint16(8, entries.length, true); end.setUint16(10, entries.length, true);
  end.setUint32(12, size, true); end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

function roundHalfEven(x) {
  // numpy's round, which `pack` uses for its knob positions.
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

async function packHere(model, n) {
  // The grid `latent-snare pack --grid N` writes (its WAVs and index.csv), with the pad's picture.
  const ccs = Array.from({ length: n }, (_, i) => roundHalfEven((127 * i) / (n - 1)));
  const entries = [];
  const rows = [["file", "row", "col", "cc_x", "cc_y", "latent_x", "latent_y", "velocity", "model"].join(",")];
  for (const [r, y] of ccs.entries()) {
    for (const [c, x] of ccs.entries()) {
      say(`making the pack: snare ${r * n + c + 1} of ${n * n}…`);
      const reply = await decodeHere(model, x, y, 127, 0);
      const name = `${model}-r${String(r + 1).padStart(2, "0")}c${String(c + 1).padStart(2, "0")}-x${pad3(x)}-y${pad3(y)}.wav`;
      const info = snareInfo({ model, x, y }, reply.latent);
      entries.push({ name, bytes: wavBytes(reply.wave, modelInfo[model].sample_rate, info) });
      rows.push([name, r + 1, c + 1, x, y, reply.latent[0].toFixed(6), reply.latent[1].toFixed(6), 127, model].join(","));
    }
  }
  entries.push({ name: "index.csv", bytes: new TextEncoder().encode(rows.join("\r\n") + "\r\n") });
  const map = await fetch(URLS.map(model));
  if (map.ok) entries.push({ name: "latent-map.png", bytes: new Uint8Array(await map.arrayBuffer()) });
  saveBlob(zipBlob(entries), `${model}-pack-${n}x${n}.zip`);
  say(`pack of ${n * n} snares made in this tab`, "good");
}

$("pack").addEventListener("click", (e) => {
  if (!decoder || !modelInfo[state.model].browser) return;  // the link's server zip
  e.preventDefault();
  packHere(state.model, Number($("grid").value)).catch((err) => say(`could not make the pack: ${err.message}`, "bad"));
});

$("download").addEventListener("click", (e) => {
  if (!decoder || !modelInfo[state.model].browser) return;  // the link's server WAV
  e.preventDefault();
  downloadHere({ ...state }, state.velocity).catch((err) => say(`could not make the WAV: ${err.message}`, "bad"));
});

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
window.latentSnare = {
  state,
  midi: midiMessage,
  lastPlayed: () => lastPlayed,
  firstReadyMs: () => firstReadyMs,
  readyMs: () => lastReadyMs,
  // The page decoder's samples for a point, as `latent-snare render` writes them (null: the server decodes).
  render: async (x, y, velocity = 127, variant = 0, model = state.model) => {
    if (!decoder) return null;
    const reply = await decodeHere(model, x, y, velocity, variant);
    return { wave: Array.from(reply.wave), ms: reply.ms };
  },
};

if (SITE && "serviceWorker" in navigator) {
  navigator.serviceWorker.register("sw.js").catch((err) => say(`offline use is off (${err.message})`, "bad"));
}
showKept();
start().catch((err) => say(`could not start: ${err.message}`, "bad"));
