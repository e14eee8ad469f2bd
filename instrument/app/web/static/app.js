// Latent Snare control page. The server owns all state; this page sends intents
// (move, hit, loop, model, recall) over one WebSocket and draws the state it gets back.
"use strict";

const $ = (id) => document.getElementById(id);
const CC_MAX = 127;
const LOCAL_HOLD_MS = 400;  // after a local pad move, ignore the server's echo of older positions this long

let ws = null;
let state = null;
let dragging = false;
let lastLocalMove = -Infinity;
let lastLoopSent = -Infinity;  // the loop box shows the user's click, not an older state, until the server has it
let pendingMove = null;  // newest pad position not yet sent; sent once per animation frame
let mapModel = null;
let audioContext = null;
let snareBuffer = null;  // the current snare for in-browser playback, and what it was rendered for
let snareKey = null;

// --- connection ----------------------------------------------------------------------------

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onopen = () => setLink(true);
  ws.onclose = () => { setLink(false); setTimeout(connect, 1000); };
  ws.onmessage = (event) => receive(JSON.parse(event.data));
}

function setLink(on) {
  $("link").className = "link " + (on ? "on" : "off");
  $("link").textContent = on ? "connected" : "instrument not reachable: retrying…";
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function receive(message) {
  if (message.type === "hello") {
    const select = $("model");
    select.replaceChildren(...message.models.map((name) => new Option(name, name)));
    $("axis-x").textContent = `CC ${message.cc_names[0]} (x): brighter →`;
    $("axis-y").textContent = `CC ${message.cc_names[1]} (y): longer decay →`;
    refreshHistory();
  }
  if (message.type === "hello" || message.type === "state") showState(message);
  if (message.type === "said") say(message.text, "good");
  if (message.type === "error") {
    say(message.text, "bad");
    if ($("map").complete) $("pad").classList.remove("loading");  // a refused switch: the map shown is right
  }
}

function say(text, kind) {
  $("message").textContent = text;
  $("message").className = kind || "";
}

// --- state -> page -----------------------------------------------------------------------------

function showState(s) {
  state = s;
  document.body.dataset.cc = s.cc.join(",");  // for tests and curious users
  if (!dragging && performance.now() - lastLocalMove > LOCAL_HOLD_MS) placeDot(s.cc[0], s.cc[1]);
  if (s.model && s.model !== mapModel) {
    mapModel = s.model;
    showLoading(`building the map for ${s.model}…`);
    $("map").src = `/map/${encodeURIComponent(s.model)}.png`;
    $("model").value = s.model;
    showLandmarks(s.model);
  }
  if (performance.now() - lastLoopSent > LOCAL_HOLD_MS) $("loop").checked = s.loop;
  if (document.activeElement !== $("bpm")) $("bpm").value = s.bpm;
  $("r-latent").textContent = `x ${fmt(s.latent[0])}  y ${fmt(s.latent[1])}`;
  $("r-cc").textContent = `${s.cc[0]}, ${s.cc[1]}`;
  $("r-voices").textContent = s.voices;
  $("r-velocity").textContent = s.velocity || "–";
  $("r-decode").textContent = `${s.decode_ms.toFixed(2)} ms`;
  $("r-own-xruns").textContent = s.own_xruns;
}

async function showLandmarks(model) {
  // Where the model puts the real snares it was trained on; a page without them still plays.
  try {
    const response = await fetch(`/landmarks/${encodeURIComponent(model)}.json`);
    if (!response.ok || model !== mapModel) return;
    Pad.setLandmarks(await response.json());
    if (state) Pad.describe(state.cc[0], state.cc[1]);
  } catch {
    Pad.setLandmarks([]);
  }
}

// The old map stays under a veil, with a line saying what is coming, until the new one has loaded.
function showLoading(text) {
  $("loading").textContent = text;
  $("pad").classList.add("loading");
}

$("map").addEventListener("load", () => $("pad").classList.remove("loading"));
$("map").addEventListener("error", () => say(`the map for ${mapModel} could not be loaded`, "bad"));

const fmt = (v) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(3);

function placeDot(ccX, ccY) {
  $("dot").style.left = `${(ccX / CC_MAX) * 100}%`;
  $("dot").style.top = `${(1 - ccY / CC_MAX) * 100}%`;
  Pad.describe(ccX, ccY);
}

// --- the pad -----------------------------------------------------------------------------------

function padPosition(event) {
  // The map's square, not the pad's frame around it: a press on the frame is the nearest edge.
  const box = $("field").getBoundingClientRect();
  const clamp = (v) => Math.min(CC_MAX, Math.max(0, v));
  return [clamp(((event.clientX - box.left) / box.width) * CC_MAX), clamp((1 - (event.clientY - box.top) / box.height) * CC_MAX)];
}

function moveTo(ccX, ccY) {
  lastLocalMove = performance.now();
  placeDot(ccX, ccY);
  if (pendingMove === null) requestAnimationFrame(flushMove);
  pendingMove = [ccX, ccY];
}

function flushMove() {
  const [x, y] = pendingMove;
  pendingMove = null;
  send({ type: "move", x, y });
}

const pad = $("pad");
pad.addEventListener("pointerdown", (e) => {
  dragging = true;
  pad.classList.add("dragging");
  pad.setPointerCapture(e.pointerId);
  moveTo(...padPosition(e));
});
pad.addEventListener("pointermove", (e) => { if (dragging) moveTo(...padPosition(e)); });
for (const end of ["pointerup", "pointercancel"]) {
  pad.addEventListener(end, () => { dragging = false; pad.classList.remove("dragging"); });
}
pad.addEventListener("keydown", (e) => {
  const step = e.shiftKey ? 8 : 1;
  const delta = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[e.key];
  if (!delta || !state) return;
  e.preventDefault();
  const clamp = (v) => Math.min(CC_MAX, Math.max(0, v));
  const base = pendingMove || state.cc;
  moveTo(clamp(base[0] + delta[0]), clamp(base[1] + delta[1]));
});

// --- audition ----------------------------------------------------------------------------------

function hit() {
  const velocity = Number($("velocity").value);
  send({ type: "hit", velocity });
  if ($("browser-audio").checked) playInBrowser(velocity);
}

async function playInBrowser(velocity) {
  audioContext = audioContext || new AudioContext();
  const key = `${state.model} ${state.latent} ${velocity}`;
  if (key !== snareKey) {
    const response = await fetch(`/snare.wav?velocity=${velocity}`);
    snareBuffer = await audioContext.decodeAudioData(await response.arrayBuffer());
    snareKey = key;
  }
  const source = audioContext.createBufferSource();
  source.buffer = snareBuffer;
  source.connect(audioContext.destination);
  source.start();
}

$("hit").addEventListener("click", hit);
$("velocity").addEventListener("input", () => { $("velocity-out").textContent = $("velocity").value; });
document.addEventListener("keydown", (e) => {
  if (e.key === " " && !["INPUT", "SELECT", "BUTTON"].includes(document.activeElement.tagName)) {
    e.preventDefault();
    hit();
  }
});

// --- loop and model ----------------------------------------------------------------------------

function sendLoop(bpm) {
  lastLoopSent = performance.now();
  send({ type: "loop", on: $("loop").checked, bpm });
}

$("loop").addEventListener("change", () => sendLoop(Number($("bpm").value)));
$("bpm").addEventListener("change", () => {
  const bpm = Number($("bpm").value);
  if (bpm >= 20 && bpm <= 400) sendLoop(bpm);
  else say("tempo must be 20..400 bpm", "bad");
});
$("model").addEventListener("change", () => {
  showLoading(`loading ${$("model").value}…`);  // the switch itself takes a moment: say so at once
  send({ type: "model", name: $("model").value });
});

// --- drop a file -------------------------------------------------------------------------------

pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dropping"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dropping"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("dropping");
  const file = e.dataTransfer.files[0];
  if (file) upload(file);
});
$("file").addEventListener("change", () => { if ($("file").files[0]) upload($("file").files[0]); });

async function upload(file) {
  say(`finding ${file.name} on the pad…`);
  try {
    const response = await fetch("/upload", { method: "POST", body: file, headers: { "X-File-Name": encodeURIComponent(file.name) } });
    const reply = await response.json();
    if (reply.ok) {
      lastLocalMove = -Infinity;  // follow the server to where the file landed
      say(reply.message, "good");
    } else say(reply.error, "bad");
  } catch (err) {
    say(`${file.name}: upload failed (${err.message})`, "bad");
  }
}

// --- save, download, history -------------------------------------------------------------------

$("save").addEventListener("click", async () => {
  const reply = await (await fetch("/save", { method: "POST" })).json();
  if (!reply.ok) return say(reply.error, "bad");
  say(`saved #${reply.number}: ${reply.file}`, "good");
  const link = document.createElement("a");
  link.href = reply.url;
  link.download = reply.file;
  link.click();
  refreshHistory();
});

async function refreshHistory() {
  const entries = await (await fetch("/history")).json();
  $("history-empty").hidden = entries.length > 0;
  $("history").replaceChildren(...entries.map((e) => {
    const item = document.createElement("li");
    item.value = e.number;
    const recall = document.createElement("button");
    recall.textContent = "recall";
    recall.addEventListener("click", () => { lastLocalMove = -Infinity; send({ type: "recall", number: e.number }); });
    const link = document.createElement("a");
    link.href = `/saved/${e.number}`;
    link.download = e.file;
    link.textContent = e.file;
    item.append(recall, link);
    return item;
  }));
}

connect();
