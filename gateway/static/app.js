// The try-it page: pick a served model, then classify a file, a recording, or the live microphone.
// Talks only to this gateway: GET /models, POST /models/<id>, and the WebSocket /models/<id>/stream.
"use strict";

const $ = (id) => document.getElementById(id);
const LIVE_CHUNK_S = 0.1; // microphone audio is sent in chunks of this length
const TIMELINE_LENGTH = 24;

const tokenInput = $("token");
tokenInput.value = localStorage.getItem("gatewayToken") || "";

function authHeaders() {
  const token = tokenInput.value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorOf(response) {
  try {
    return (await response.json()).error || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function bar({ label, score }) {
  const item = document.createElement("li");
  item.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span>' +
    '<span class="score"></span>';
  item.querySelector(".label").textContent = label;
  item.querySelector(".label").title = label;
  item.querySelector(".fill").style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
  item.querySelector(".score").textContent = score.toFixed(3);
  return item;
}

function windowItem(event, best = false) {
  const top = event.predictions[0];
  const item = document.createElement("li");
  item.textContent = `${event.start_s.toFixed(1)}s ${top.label}`;
  item.className = `${top.score >= 0.5 ? "top" : ""}${best ? " best" : ""}`;
  return item;
}

// One result at a time: a new one (or an error, or a loading state) replaces the previous one whole.
function showResult({ title = "Results", status = "", error = "", predictions = [], windows = [], best = null }) {
  $("results-title").textContent = title;
  $("results-status").textContent = status;
  $("error").textContent = error;
  $("error").classList.toggle("hidden", !error);
  $("bars").replaceChildren(...predictions.slice(0, 10).map(bar));
  $("timeline").replaceChildren(...windows.map((w) => windowItem(w, w === best)));
}

function showError(message, title = "Results") {
  showResult({ title, error: message });
}

function parameters() {
  const result = {};
  const topK = parseInt($("top-k").value, 10);
  if (topK >= 1) result.top_k = topK;
  if ($("function").value) result.function_to_apply = $("function").value;
  return result;
}

function modelId() {
  return $("model").value.trim();
}

function currentModel() {
  return (models || []).find((m) => m.id === modelId() && m.ready);
}

let models = [];

async function loadModels() {
  const response = await fetch("../models", { headers: authHeaders() });
  if (!response.ok) {
    showError(await errorOf(response));
    return;
  }
  models = await response.json();
  const ready = models.filter((m) => m.ready);
  $("model-ids").replaceChildren(...models.map((m) => new Option(m.state === "loaded" ? "" : m.state, m.id)));
  if (!modelId() && ready.length) $("model").value = (ready.find((m) => m.default) || ready[0]).id;
  describeModel();
}

function describeModel() {
  const model = currentModel();
  const known = models.find((m) => m.id === modelId());
  $("model-info").textContent = model
    ? `${model.architecture} · ${model.labels.length} labels · ${model.sampling_rate / 1000} kHz · ` +
      `${model.precision}${model.window_seconds ? ` · window ${model.window_seconds} s` : ""}`
    : known ? `${known.id}: ${known.state}${known.error ? ` (${known.error})` : ""}`
    : modelId() ? `${modelId()} is not loaded: the gateway loads a Hub id on first use if its GATEWAY_AUTOLOAD allows it` : "";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// POST, riding out an on-demand model's loading: the HF API's 503 with estimated_time, shown, then retried.
async function postLoading(blob, title) {
  const query = new URLSearchParams(parameters()).toString();
  const url = `../models/${modelId()}${query ? `?${query}` : ""}`;
  const started = Date.now();
  for (;;) {
    const response = await fetch(url, { method: "POST", body: blob, headers: authHeaders() });
    const body = response.status === 503 ? await response.clone().json().catch(() => ({})) : {};
    if (body.estimated_time === undefined) return response;
    const waited = Math.round((Date.now() - started) / 1000);
    showResult({ title, status: `Loading ${modelId()}: about ${Math.ceil(body.estimated_time)} s left (waited ${waited} s) ...` });
    await sleep(1000 * Math.min(10, Math.max(1, Number(response.headers.get("Retry-After")) || 1)));
  }
}

async function classify(blob, title) {
  showResult({ title, status: "Classifying ..." });
  const response = await postLoading(blob, title);
  if (!response.ok) {
    showError(await errorOf(response), title);
    return;
  }
  showResult({ title, predictions: await response.json() });
  loadModels(); // an on-demand model may have just been loaded
}

// File: chooser or drag and drop.
const drop = $("drop");
$("file").addEventListener("change", () => $("file").files[0] && classify($("file").files[0], $("file").files[0].name));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer.files[0];
  if (file) classify(file, file.name);
});

// The microphone, as the gateway expects it: the signal untouched by voice processing.
const MICROPHONE = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };

// Record: MediaRecorder (WebM/Opus in Chrome and Firefox, MP4/AAC in Safari), then classified (classifyRecording).
let recorder = null;
$("record").addEventListener("click", async () => {
  if (recorder) {
    recorder.stop();
    return;
  }
  showResult({ title: "Recording" });
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(MICROPHONE);
  } catch (error) {
    showError(`microphone: ${error.message}`, "Recording");
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    $("record").textContent = "● Record";
    $("record").classList.remove("on");
    $("record-status").textContent = "Classifying the recording ...";
    const blob = new Blob(chunks, { type: recorder.mimeType });
    recorder = null;
    classifyRecording(blob).then(() => { $("record-status").textContent = "Done."; });
  };
  recorder.start();
  $("record").textContent = "■ Stop";
  $("record").classList.add("on");
  $("record-status").textContent = "Recording ... press Stop to classify.";
});

// A recording longer than the model's window goes through the stream path, window by window (its scores are
// those of POSTing each window); the page shows the best window and every window in order.
const BACKGROUND = /^_.*_$/; // Speech Commands' convention for what is not a word: _silence_, _unknown_

function bestWindow(windows) {
  const score = (w) => w.predictions[0].score;
  const words = windows.filter((w) => !BACKGROUND.test(w.predictions[0].label));
  return (words.length ? words : windows).reduce((a, b) => (score(b) > score(a) ? b : a));
}

function streamUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const base = location.pathname.replace(/\/ui\/?.*$/, "");
  return `${scheme}://${location.host}${base}/models/${modelId()}/stream`;
}

function streamConfig(rate, extra = {}) {
  const token = tokenInput.value.trim();
  return JSON.stringify({
    sampling_rate: rate, encoding: "pcm_f32le", parameters: parameters(), ...extra, ...(token ? { token } : {}),
  });
}

async function classifyWindows(samples, rate, window, title) {
  const windows = [];
  let error = "";
  await new Promise((resolve) => {
    const socket = new WebSocket(streamUrl());
    socket.onopen = () => {
      socket.send(streamConfig(rate, { window_s: window, hop_s: window / 2 }));
      for (let start = 0; start < samples.length; start += rate) socket.send(samples.slice(start, start + rate).buffer);
      socket.send(JSON.stringify({ event: "end" }));
    };
    socket.onmessage = ({ data }) => {
      const message = JSON.parse(data);
      if (message.error) error = message.error;
      else {
        windows.push(message);
        showResult({ title, status: `${windows.length} windows ...`, windows });
      }
    };
    socket.onerror = () => { error = error || "the stream failed"; };
    socket.onclose = resolve;
  });
  if (error || !windows.length) {
    showError(error || "no window was classified", title);
    return;
  }
  const best = bestWindow(windows);
  showResult({
    title: `${title}: best window ${best.start_s.toFixed(1)}–${best.end_s.toFixed(1)} s`,
    status: `${windows.length} windows of ${window} s, every ${window / 2} s`,
    predictions: best.predictions, windows, best,
  });
}

async function classifyRecording(blob) {
  const model = currentModel();
  if (!model || !model.window_seconds) return classify(blob, "Recording");
  let audio;
  try { // decoded at the model's rate, mono: what the stream sends
    audio = await new OfflineAudioContext(1, 1, model.sampling_rate).decodeAudioData(await blob.arrayBuffer());
  } catch {
    return classify(blob, "Recording"); // a format this browser cannot decode: the gateway may
  }
  if (audio.duration <= model.window_seconds) return classify(blob, "Recording");
  const samples = new Float32Array(audio.length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    audio.getChannelData(c).forEach((v, i) => { samples[i] += v / audio.numberOfChannels; });
  }
  return classifyWindows(samples, model.sampling_rate, model.window_seconds, "Recording");
}

// Live: an AudioWorklet taps the microphone; 100 ms chunks of Float32 PCM go over the WebSocket. The timeline
// reads oldest to newest and keeps the last TIMELINE_LENGTH windows.
let live = null;

async function startLive() {
  showResult({ title: "Live", status: "Starting ..." });
  const liveWindows = [];
  const stream = await navigator.mediaDevices.getUserMedia(MICROPHONE);
  const context = new AudioContext();
  await context.audioWorklet.addModule("pcm-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const tap = new AudioWorkletNode(context, "pcm-tap");
  source.connect(tap);
  const socket = new WebSocket(streamUrl());
  socket.binaryType = "arraybuffer";
  const chunk = Math.round(context.sampleRate * LIVE_CHUNK_S);
  let pending = [];
  let pendingLength = 0;
  live = { stream, context, socket };
  socket.onopen = () => {
    socket.send(streamConfig(context.sampleRate));
    tap.port.onmessage = ({ data }) => {
      pending.push(data);
      pendingLength += data.length;
      if (pendingLength < chunk || socket.readyState !== WebSocket.OPEN) return;
      const joined = new Float32Array(pendingLength);
      let offset = 0;
      for (const part of pending) { joined.set(part, offset); offset += part.length; }
      pending = [];
      pendingLength = 0;
      socket.send(joined.buffer);
    };
    $("live-status").textContent = `Listening at ${context.sampleRate} Hz ...`;
  };
  socket.onmessage = ({ data }) => {
    const message = JSON.parse(data);
    if (message.error) {
      showError(message.error, "Live");
      return;
    }
    liveWindows.push(message);
    if (liveWindows.length > TIMELINE_LENGTH) liveWindows.shift();
    const title = `Live: ${message.start_s.toFixed(1)}–${message.end_s.toFixed(1)} s`;
    showResult({ title, predictions: message.predictions, windows: liveWindows });
  };
  socket.onclose = (event) => {
    stopLive(false);
    $("live-status").textContent = `Stream closed (${event.code}).`;
  };
  $("live").textContent = "■ Stop live";
  $("live").classList.add("on");
}

function stopLive(sendEnd = true) {
  if (!live) return;
  const { stream, context, socket } = live;
  live = null;
  stream.getTracks().forEach((t) => t.stop());
  context.close();
  if (sendEnd && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ event: "end" }));
  $("live").textContent = "▶ Start live";
  $("live").classList.remove("on");
}

$("live").addEventListener("click", () => {
  if (live) stopLive();
  else startLive().catch((error) => { stopLive(false); showError(`live: ${error.message}`, "Live"); });
});

// Tabs, settings.
document.querySelectorAll(".tabs button").forEach((button) => {
  button.addEventListener("click", () => {
    document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b === button));
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("hidden", t.id !== `tab-${button.dataset.tab}`));
  });
});
$("model").addEventListener("input", describeModel);
tokenInput.addEventListener("change", () => {
  localStorage.setItem("gatewayToken", tokenInput.value.trim());
  loadModels();
});
loadModels();
