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

function showError(message) {
  $("error").textContent = message;
  $("error").classList.toggle("hidden", !message);
}

async function errorOf(response) {
  try {
    return (await response.json()).error || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function showPredictions(predictions, title) {
  $("results-title").textContent = title;
  const bars = $("bars");
  bars.replaceChildren(
    ...predictions.slice(0, 10).map(({ label, score }) => {
      const item = document.createElement("li");
      item.innerHTML = '<span class="label"></span><span class="track"><span class="fill"></span></span>' +
        '<span class="score"></span>';
      item.querySelector(".label").textContent = label;
      item.querySelector(".label").title = label;
      item.querySelector(".fill").style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
      item.querySelector(".score").textContent = score.toFixed(3);
      return item;
    }),
  );
}

function parameters() {
  const result = {};
  const topK = parseInt($("top-k").value, 10);
  if (topK >= 1) result.top_k = topK;
  if ($("function").value) result.function_to_apply = $("function").value;
  return result;
}

async function loadModels() {
  const response = await fetch("../models", { headers: authHeaders() });
  if (!response.ok) {
    showError(await errorOf(response));
    return;
  }
  showError("");
  const models = (await response.json()).filter((m) => m.ready);
  const select = $("model");
  const previous = select.value;
  select.replaceChildren(...models.map((m) => new Option(m.id, m.id)));
  if (models.some((m) => m.id === previous)) select.value = previous;
  select.models = models;
  describeModel();
}

function describeModel() {
  const model = ($("model").models || []).find((m) => m.id === $("model").value);
  $("model-info").textContent = model
    ? `${model.architecture} · ${model.labels.length} labels · ${model.sampling_rate / 1000} kHz · ` +
      `${model.precision}${model.window_seconds ? ` · live window ${model.window_seconds} s` : ""}`
    : "";
}

async function classify(blob, title) {
  showError("");
  const query = new URLSearchParams(parameters()).toString();
  const url = `../models/${$("model").value}${query ? `?${query}` : ""}`;
  const response = await fetch(url, { method: "POST", body: blob, headers: authHeaders() });
  if (!response.ok) {
    showError(await errorOf(response));
    return;
  }
  showPredictions(await response.json(), title);
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

// Record: MediaRecorder (WebM/Opus in Chrome and Firefox, MP4/AAC in Safari), then one POST.
let recorder = null;
$("record").addEventListener("click", async () => {
  if (recorder) {
    recorder.stop();
    return;
  }
  showError("");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(MICROPHONE);
  } catch (error) {
    showError(`microphone: ${error.message}`);
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
    classify(blob, "Recording").then(() => { $("record-status").textContent = "Done."; });
  };
  recorder.start();
  $("record").textContent = "■ Stop";
  $("record").classList.add("on");
  $("record-status").textContent = "Recording ... press Stop to classify.";
});

// Live: an AudioWorklet taps the microphone; 100 ms chunks of Float32 PCM go over the WebSocket.
let live = null;

function addToTimeline(event) {
  const top = event.predictions[0];
  const item = document.createElement("li");
  item.textContent = `${event.start_s.toFixed(1)}s ${top.label}`;
  item.className = top.score >= 0.5 ? "top" : "";
  const timeline = $("timeline");
  timeline.prepend(item);
  while (timeline.children.length > TIMELINE_LENGTH) timeline.lastChild.remove();
}

async function startLive() {
  showError("");
  $("timeline").replaceChildren();
  const stream = await navigator.mediaDevices.getUserMedia(MICROPHONE);
  const context = new AudioContext();
  await context.audioWorklet.addModule("pcm-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const tap = new AudioWorkletNode(context, "pcm-tap");
  source.connect(tap);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const base = location.pathname.replace(/\/ui\/?.*$/, "");
  const socket = new WebSocket(`${scheme}://${location.host}${base}/models/${$("model").value}/stream`);
  socket.binaryType = "arraybuffer";
  const chunk = Math.round(context.sampleRate * LIVE_CHUNK_S);
  let pending = [];
  let pendingLength = 0;
  live = { stream, context, socket };
  socket.onopen = () => {
    const token = tokenInput.value.trim();
    socket.send(JSON.stringify({
      sampling_rate: context.sampleRate, encoding: "pcm_f32le", parameters: parameters(), ...(token ? { token } : {}),
    }));
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
      showError(message.error);
      return;
    }
    showPredictions(message.predictions, `Live: ${message.start_s.toFixed(1)}–${message.end_s.toFixed(1)} s`);
    addToTimeline(message);
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
  else startLive().catch((error) => { stopLive(false); showError(`live: ${error.message}`); });
});

// Tabs, settings.
document.querySelectorAll(".tabs button").forEach((button) => {
  button.addEventListener("click", () => {
    document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b === button));
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("hidden", t.id !== `tab-${button.dataset.tab}`));
  });
});
$("model").addEventListener("change", describeModel);
tokenInput.addEventListener("change", () => {
  localStorage.setItem("gatewayToken", tokenInput.value.trim());
  loadModels();
});
loadModels();
