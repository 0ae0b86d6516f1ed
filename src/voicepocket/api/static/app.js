// VoicePocket page: plays speech while it is synthesized (16-bit PCM at 24 kHz streamed
// into the Web Audio API), uploads voices, lists stored syntheses. No framework, no CDN.
"use strict";

const PCM_RATE = 24000;
const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem("voicepocket.key") || "", playback: null, wav: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `Request failed (${response.status}).`;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.key}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) throw new Error(await apiError(response));
  return response;
}

// -- key and voices --------------------------------------------------------------------

async function loadVoices() {
  const select = $("voice");
  const previous = select.value;
  const voices = (await (await api("/v1/voices")).json()).data;
  select.replaceChildren(...voices.map((voice) => {
    const option = new Option(`${voice.id}${voice.public ? "" : " (private)"}`, voice.id);
    return option;
  }));
  if (voices.some((v) => v.id === previous)) select.value = previous;
  $("key-state").textContent = `Key accepted: ${voices.length} voice(s) available.`;
}

async function useKey(key) {
  state.key = key.trim();
  localStorage.setItem("voicepocket.key", state.key);
  showError("");
  try {
    await loadVoices();
    await loadSyntheses();
  } catch (error) {
    $("key-state").textContent = "";
    showError(error.message);
  }
}

// -- streamed playback -----------------------------------------------------------------

class Playback {
  constructor() {
    this.context = new AudioContext({ sampleRate: PCM_RATE });
    this.nextStart = 0;
    this.seconds = 0;
    this.pending = 0;
    this.carry = null; // an odd byte left between network chunks
    this.samples = [];
    this.ended = new Promise((resolve) => { this.resolveEnded = resolve; });
  }

  push(bytes) {
    if (this.carry) {
      const joined = new Uint8Array(this.carry.length + bytes.length);
      joined.set(this.carry);
      joined.set(bytes, this.carry.length);
      bytes = joined;
      this.carry = null;
    }
    if (bytes.length % 2) {
      this.carry = bytes.slice(bytes.length - 1);
      bytes = bytes.slice(0, bytes.length - 1);
    }
    if (!bytes.length) return;
    const ints = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
    const floats = Float32Array.from(ints, (v) => v / 32768);
    this.samples.push(ints.slice());
    const buffer = this.context.createBuffer(1, floats.length, PCM_RATE);
    buffer.copyToChannel(floats, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    const start = Math.max(this.context.currentTime + 0.02, this.nextStart);
    source.start(start);
    this.nextStart = start + buffer.duration;
    this.seconds += buffer.duration;
    this.pending += 1;
    source.onended = () => {
      this.pending -= 1;
      if (this.finished && this.pending === 0) this.resolveEnded();
    };
  }

  finish() {
    this.finished = true;
    if (this.pending === 0) this.resolveEnded();
  }

  stop() {
    this.context.close();
    this.finished = true;
    this.resolveEnded();
  }

  wavBlob() {
    const length = this.samples.reduce((n, s) => n + s.length, 0);
    const header = new DataView(new ArrayBuffer(44));
    const text = (offset, value) => [...value].forEach((c, i) =>
      header.setUint8(offset + i, c.charCodeAt(0)));
    text(0, "RIFF"); header.setUint32(4, 36 + length * 2, true); text(8, "WAVE");
    text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true);
    header.setUint16(22, 1, true); header.setUint32(24, PCM_RATE, true);
    header.setUint32(28, PCM_RATE * 2, true); header.setUint16(32, 2, true);
    header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, length * 2, true);
    return new Blob([header, ...this.samples], { type: "audio/wav" });
  }
}

function speechBody(format) {
  return JSON.stringify({
    model: "tts-1",
    voice: $("voice").value,
    input: $("text").value,
    response_format: format,
    speed: Number($("speed").value) || 1,
  });
}

async function speak(event) {
  event.preventDefault();
  showError("");
  if (state.playback) state.playback.stop();
  const playback = new Playback();
  state.playback = playback;
  const speakButton = $("speak");
  speakButton.disabled = true;
  $("stop").disabled = false;
  $("download").hidden = true;
  $("ttfa").textContent = "–";
  $("received").textContent = "0.0 s";
  $("speak-state").textContent = "Synthesizing…";
  document.body.dataset.played = "";
  const started = performance.now();
  try {
    const response = await api("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: speechBody("pcm"),
    });
    const reader = response.body.getReader();
    let first = true;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (playback !== state.playback) { reader.cancel(); return; }
      if (first && value.length) {
        first = false;
        const ttfa = Math.round(performance.now() - started);
        $("ttfa").textContent = `${ttfa} ms`;
        document.body.dataset.ttfaMs = String(ttfa);
        $("speak-state").textContent = "Playing while synthesizing…";
      }
      playback.push(value);
      $("received").textContent = `${playback.seconds.toFixed(1)} s`;
    }
    playback.finish();
    const link = $("download");
    link.href = URL.createObjectURL(playback.wavBlob());
    link.hidden = false;
    $("speak-state").textContent = `Received ${playback.seconds.toFixed(1)} s; playing…`;
    await playback.ended;
    if (playback === state.playback) {
      $("speak-state").textContent = `Played ${playback.seconds.toFixed(1)} s of audio.`;
      document.body.dataset.played = playback.seconds.toFixed(3);
    }
  } catch (error) {
    $("speak-state").textContent = "";
    showError(error.message);
  } finally {
    speakButton.disabled = false;
    $("stop").disabled = true;
  }
}

function stop() {
  if (state.playback) state.playback.stop();
  state.playback = null;
  $("speak-state").textContent = "Stopped.";
  $("stop").disabled = true;
}

// -- stored syntheses ------------------------------------------------------------------

async function save() {
  showError("");
  $("speak-state").textContent = "Synthesizing and storing…";
  try {
    const response = await api("/v1/syntheses", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: speechBody($("format").value),
    });
    const stored = await response.json();
    $("speak-state").textContent = `Stored ${stored.duration_s.toFixed(1)} s as ${stored.format}.`;
    await loadSyntheses();
  } catch (error) {
    $("speak-state").textContent = "";
    showError(error.message);
  }
}

async function loadSyntheses() {
  const list = $("syntheses");
  const items = (await (await api("/v1/syntheses")).json()).data;
  list.replaceChildren(...items.map(synthesisItem));
  if (!items.length) {
    const empty = document.createElement("li");
    empty.textContent = "Nothing stored yet: press Save.";
    list.append(empty);
  }
}

function synthesisItem(item) {
  const li = document.createElement("li");
  li.dataset.id = item.id;
  const label = document.createElement("span");
  const when = new Date(item.created_at).toLocaleString();
  label.textContent = `${item.voice} · ${item.format} · ${item.duration_s.toFixed(1)} s · ${when}`;
  const play = document.createElement("button");
  play.type = "button";
  play.textContent = "Play";
  play.setAttribute("aria-label", `Play synthesis from ${when}`);
  play.onclick = () => playStored(item);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete synthesis from ${when}`);
  remove.onclick = () => deleteStored(item);
  li.append(label, play, remove);
  return li;
}

async function playStored(item) {
  showError("");
  try {
    const blob = await (await api(item.url)).blob();
    const player = $("player");
    player.src = URL.createObjectURL(blob);
    player.hidden = false;
    await player.play().catch(() => {});
  } catch (error) {
    showError(error.message);
  }
}

async function deleteStored(item) {
  showError("");
  try {
    await api(`/v1/syntheses/${item.id}`, { method: "DELETE" });
    await loadSyntheses();
  } catch (error) {
    showError(error.message);
  }
}

// -- upload ------------------------------------------------------------------------------

async function upload(event) {
  event.preventDefault();
  showError("");
  const form = new FormData();
  form.append("model", $("model-file").files[0]);
  form.append("config", $("config-file").files[0]);
  form.append("slug", $("slug").value);
  form.append("public", $("public").checked ? "true" : "false");
  $("upload").disabled = true;
  $("upload-state").textContent = "Uploading, validating and warming up the voice…";
  try {
    const voice = await (await api("/v1/voices", { method: "POST", body: form })).json();
    $("upload-state").textContent = `Voice ${voice.id} is ready.`;
    await loadVoices();
    $("voice").value = voice.id;
  } catch (error) {
    $("upload-state").textContent = "";
    showError(error.message);
  } finally {
    $("upload").disabled = false;
  }
}

// -- wiring ------------------------------------------------------------------------------

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useKey($("api-key").value);
});
$("speak-form").addEventListener("submit", speak);
$("stop").addEventListener("click", stop);
$("save").addEventListener("click", save);
$("refresh").addEventListener("click", () => loadSyntheses().catch((e) => showError(e.message)));
$("upload-form").addEventListener("submit", upload);
if (state.key) {
  $("api-key").value = state.key;
  useKey(state.key);
}
