// VoicePocket page: plays speech while it is synthesized (16-bit PCM at 24 kHz streamed
// into the Web Audio API), uploads voices, lists stored syntheses, and records and trains
// a voice of the user's own. No framework, no CDN.
"use strict";

const PCM_RATE = 24000;
const $ = (id) => document.getElementById(id);
const state = { key: localStorage.getItem("voicepocket.key") || "", playback: null, wav: null };

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// An API error: the server's message, with its HTTP status, code and param.
class ApiError extends Error {
  constructor(message, status, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) {
      const { message, code, param } = body.error;
      return new ApiError(message, response.status, code, param);
    }
  } catch (_) { /* not JSON */ }
  return new ApiError(`Request failed (${response.status}).`, response.status);
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.key}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) throw await apiError(response);
  return response;
}

// A 44-byte RIFF/WAVE header for `frames` frames of 16-bit PCM mono at `rate` Hz.
function wavHeader(rate, frames) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => [...value].forEach((c, i) =>
    header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + frames * 2, true); text(8, "WAVE");
  text(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true);
  header.setUint16(22, 1, true); header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, frames * 2, true);
  return header;
}

// -- key and voices --------------------------------------------------------------------

async function loadVoices() {
  const select = $("voice");
  const previous = select.value;
  const voices = (await (await api("/v1/voices")).json()).data;
  select.replaceChildren(...voices.map((voice) => {
    const notReady = voice.ready === false; // a trained voice's draft cannot speak yet
    const label = `${voice.id}${voice.public ? "" : " (private)"}${notReady ? " (not trained yet)" : ""}`;
    const option = new Option(label, voice.id);
    option.disabled = notReady;
    return option;
  }));
  if (voices.some((v) => v.id === previous)) select.value = previous;
  $("key-state").textContent = `Key accepted: ${voices.length} voice(s) available.`;
}

async function useKey(key) {
  if (key.trim() !== state.key) resetCreate(); // a draft belongs to the key's owner
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
    return new Blob([wavHeader(PCM_RATE, length), ...this.samples], { type: "audio/wav" });
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

// -- create your voice -------------------------------------------------------------------
//
// Draft -> consent -> sentences -> training, each recording checked by the server at once.
// Audio: getUserMedia with the browser's echo cancellation, noise suppression and gain
// control off (they would put artefacts into the training data); an AnalyserNode drives
// the level meter (requestAnimationFrame); an AudioWorklet (static/recorder-worklet.js,
// not the deprecated ScriptProcessorNode) copies the mono float samples out, and the
// page encodes them as a 16-bit PCM mono WAV at the AudioContext's own rate, uploaded as
// the multipart file "audio" (sample.wav).

const MAX_RECORDING_S = 25; // the server keeps at most 20 s of speech per sample
const ACTIVE_TRAINING = new Set(["queued", "training", "compiling"]);
const POLL_MS = 1000;
const own = { draft: null, prompts: null, recorded: new Set(), index: 0, consent: false,
              recorder: null, target: null, poll: null, busy: false };

function voicePath(id) {
  return `/v1/voices/${id.split("/").map(encodeURIComponent).join("/")}`;
}

function wait(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

class Recorder {
  constructor() {
    this.chunks = [];
    this.frames = 0;
  }

  async start(onLevel) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("Recording needs a microphone and a secure page (https, or localhost).");
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
    } catch (error) {
      throw new Error(`The microphone is not available: ${error.message || error.name}.`);
    }
    try {
      this.context = new AudioContext();
      await this.context.audioWorklet.addModule("/static/recorder-worklet.js");
      await this.context.resume();
      const source = this.context.createMediaStreamSource(this.stream);
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 2048;
      this.node = new AudioWorkletNode(this.context, "voicepocket-recorder", {
        numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
        channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers",
      });
      this.done = new Promise((resolve) => {
        this.node.port.onmessage = (event) => {
          if (event.data instanceof Float32Array) {
            this.chunks.push(event.data);
            this.frames += event.data.length;
          } else if (event.data && event.data.done) {
            resolve();
          }
        };
      });
      // The worklet's output is silent (gain 0) but connected, so the graph pulls it.
      const mute = this.context.createGain();
      mute.gain.value = 0;
      source.connect(this.analyser);
      source.connect(this.node);
      this.node.connect(mute).connect(this.context.destination);
      this.started = performance.now();
      this.meter(onLevel);
    } catch (error) {
      this.release();
      throw error;
    }
  }

  meter(onLevel) {
    const buffer = new Float32Array(this.analyser.fftSize);
    const tick = () => {
      if (!this.analyser) return;
      this.analyser.getFloatTimeDomainData(buffer);
      let peak = 0;
      for (const v of buffer) peak = Math.max(peak, Math.abs(v));
      onLevel(peak, (performance.now() - this.started) / 1000);
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  async stop() {
    this.node.port.postMessage("stop");
    await Promise.race([this.done, wait(2000)]);
    const rate = this.context.sampleRate;
    this.release();
    return { blob: this.wavBlob(rate), seconds: this.frames / rate, rate };
  }

  release() {
    cancelAnimationFrame(this.frame);
    this.analyser = null;
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context && this.context.state !== "closed") this.context.close();
  }

  wavBlob(rate) {
    const pcm = new Int16Array(this.frames);
    let at = 0;
    for (const chunk of this.chunks) {
      for (const v of chunk) {
        const s = Math.max(-1, Math.min(1, v));
        pcm[at++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
      }
    }
    return new Blob([wavHeader(rate, this.frames), pcm], { type: "audio/wav" });
  }
}

// Peak level on a -60..0 dBFS scale, 0..1 (0: digital silence).
function meterLevel(peak) {
  if (peak <= 0) return 0;
  return Math.max(0, Math.min(1, 1 + (20 * Math.log10(peak)) / 60));
}

function setBusy(busy) {
  own.busy = busy;
  const recording = Boolean(own.recorder);
  $("record-button").disabled = busy || !own.prompts || own.index < 0;
  $("consent-record-button").disabled = busy;
  $("skip-button").disabled = busy || !own.prompts || own.index < 0;
  $("stop-button").disabled = !recording;
  $("create-button").disabled = busy;
  const again = $("record-again-button");
  if (again) again.disabled = busy;
}

function resetCreate() {
  if (own.recorder) own.recorder.release();
  clearTimeout(own.poll);
  Object.assign(own, { draft: null, prompts: null, recorded: new Set(), index: 0,
                       consent: false, recorder: null, target: null, poll: null, busy: false });
  $("create-steps").hidden = true;
  $("create-state").textContent = "";
  showResult(null);
}

async function createVoice(event) {
  event.preventDefault();
  showError("");
  if (!state.key) {
    showError("Save your API key first.");
    return;
  }
  const slug = $("create-slug").value.trim();
  const language = $("create-language").value;
  setBusy(true);
  $("create-state").textContent = "Creating…";
  try {
    let voice;
    try {
      voice = await (await api("/v1/voices/trained", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ slug, language, public: $("create-public").checked }),
      })).json();
    } catch (error) {
      if (error.code !== "voice_exists") throw error;
      voice = await existingDraft(slug, error);
    }
    await openDraft(voice);
  } catch (error) {
    $("create-state").textContent = "";
    showError(error.message);
  } finally {
    setBusy(false);
  }
}

// The caller's own trained voice `slug`, to carry on with (a bare slug resolves to the
// caller's own voice first); anything else is the original 409.
async function existingDraft(slug, conflict) {
  let voice;
  try {
    voice = await (await api(voicePath(slug))).json();
  } catch (_) {
    throw conflict;
  }
  if (!voice.training || voice.slug !== slug) throw conflict;
  return voice;
}

async function openDraft(voice) {
  const language = voice.training.language;
  own.draft = voice;
  own.prompts = await (await api(`/v1/voices/prompts?language=${encodeURIComponent(language)}`))
    .json();
  const samples = await (await api(`${voicePath(voice.id)}/samples`)).json();
  own.recorded = new Set(samples.data.filter((s) => s.kind === "sample" && s.prompt_id)
    .map((s) => s.prompt_id));
  own.consent = Boolean(voice.consent);
  own.index = nextPrompt(0);
  const resumed = voice.training.state !== "draft" || samples.data.length > 0;
  $("create-language").value = language;
  $("create-state").textContent = resumed
    ? `Carrying on with your voice ${voice.id}.`
    : `Draft ${voice.id} created: record the consent sentence and some sentences.`;
  $("consent-text").textContent = own.prompts.consent;
  $("consent-state").textContent = own.consent ? "Recorded." : "Not recorded yet.";
  $("prompt-count").textContent = String(own.prompts.prompts.length);
  showResult(null);
  $("create-steps").hidden = false;
  renderPrompt();
  renderVoice(voice);
  if (ACTIVE_TRAINING.has(voice.training.state)) pollTraining();
}

// The index of the first prompt not recorded yet, from `start` on (wrapping); -1: none left.
function nextPrompt(start) {
  const prompts = own.prompts.prompts;
  for (let i = 0; i < prompts.length; i += 1) {
    const index = (start + i) % prompts.length;
    if (!own.recorded.has(prompts[index].id)) return index;
  }
  return -1;
}

function renderPrompt() {
  const prompt = own.index < 0 ? null : own.prompts.prompts[own.index];
  $("prompt-text").textContent = prompt ? prompt.text : "Every sentence is recorded: thank you!";
  $("prompt-text").dataset.promptId = prompt ? prompt.id : "";
  $("prompt-number").textContent = prompt ? String(own.index + 1) : "–";
  setBusy(own.busy);
}

function skipPrompt() {
  if (own.index < 0) return;
  const next = nextPrompt(own.index + 1);
  own.index = next;
  showResult(null);
  renderPrompt();
}

function showResult(outcome, message = "", code = "") {
  const box = $("sample-result");
  box.className = outcome ? `result ${outcome}` : "result";
  box.dataset.outcome = outcome || "";
  box.dataset.code = code || "";
  box.replaceChildren();
  if (!outcome) return;
  const text = document.createElement("span");
  text.textContent = message;
  box.append(text);
  if (outcome === "rejected") {
    const again = document.createElement("button");
    again.type = "button";
    again.id = "record-again-button";
    again.textContent = "Record again";
    again.onclick = () => startRecording(own.target);
    box.append(again);
  }
}

async function startRecording(target) {
  if (own.recorder || own.busy || !own.draft) return;
  if (target === "prompt" && own.index < 0) return;
  showError("");
  own.target = target;
  const recorder = new Recorder();
  const meter = $("level-meter");
  meter.value = 0;
  meter.dataset.max = "0";
  showResult(null);
  setBusy(true);
  $("recording-time").textContent = "Starting the microphone…";
  try {
    await recorder.start((peak, seconds) => {
      const level = meterLevel(peak);
      meter.value = level;
      if (level > Number(meter.dataset.max)) meter.dataset.max = level.toFixed(3);
      $("recording-time").textContent = `Recording… ${seconds.toFixed(1)} s`;
      if (seconds > MAX_RECORDING_S && own.recorder === recorder) stopRecording();
    });
  } catch (error) {
    $("recording-time").textContent = "";
    setBusy(false);
    showError(error.message);
    return;
  }
  own.recorder = recorder;
  document.body.dataset.recording = target;
  setBusy(true);
  $("stop-button").focus();
}

async function stopRecording() {
  const recorder = own.recorder;
  if (!recorder) return;
  own.recorder = null;
  document.body.dataset.recording = "";
  $("stop-button").disabled = true;
  const { blob, seconds, rate } = await recorder.stop();
  $("level-meter").value = 0;
  $("recording-time").textContent = `Recorded ${seconds.toFixed(1)} s at ${rate} Hz; checking it…`;
  await submitRecording(own.target, blob);
}

async function submitRecording(target, blob) {
  const form = new FormData();
  form.append("audio", blob, "sample.wav");
  const prompt = target === "prompt" ? own.prompts.prompts[own.index] : null;
  if (prompt) form.append("prompt_id", prompt.id);
  const path = `${voicePath(own.draft.id)}/${target === "consent" ? "consent" : "samples"}`;
  try {
    const sample = await (await api(path, { method: "POST", body: form })).json();
    if (target === "consent") {
      own.consent = true;
      $("consent-state").textContent = "Recorded.";
      showResult("accepted", `Consent accepted (${sample.duration_s.toFixed(1)} s).`);
    } else {
      own.recorded.add(prompt.id);
      showResult("accepted", `Accepted: ${sample.duration_s.toFixed(1)} s of speech.`);
      own.index = nextPrompt(own.index + 1);
      renderPrompt();
    }
    await refreshVoice();
  } catch (error) {
    if (error.status === 422) {
      showResult("rejected", error.message, error.code);
    } else {
      showError(error.message);
    }
  } finally {
    $("recording-time").textContent = "";
    setBusy(false);
  }
}

async function refreshVoice() {
  const voice = await (await api(voicePath(own.draft.id))).json();
  own.draft = voice;
  renderVoice(voice);
  return voice;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function renderVoice(voice) {
  const training = voice.training;
  const seconds = voice.dataset_duration_s || 0;
  $("dataset-seconds").textContent = seconds.toFixed(1);
  $("sample-count").textContent = String(own.recorded.size);
  $("training-state").textContent = training.state;
  $("training-step").textContent = training.steps ? `${training.step} / ${training.steps}` : "–";
  const losses = [];
  if (training.loss !== null && training.loss !== undefined) losses.push(training.loss.toFixed(3));
  if (training.eval_loss !== null && training.eval_loss !== undefined) {
    losses.push(`held-out ${training.eval_loss.toFixed(3)}`);
  }
  $("training-loss").textContent = losses.length ? losses.join(" · ") : "–";
  $("training-eta").textContent = ACTIVE_TRAINING.has(training.state)
    ? duration(training.eta_s) : "–";
  const progress = $("training-progress");
  progress.hidden = !training.steps;
  progress.max = training.steps || 1;
  progress.value = training.step || 0;
  const active = ACTIVE_TRAINING.has(training.state);
  $("train-button").disabled = active;
  $("train-button").textContent = training.rounds > 0 ? "Train again" : "Start training";
  $("cancel-training-button").hidden = !active;
  const message = $("training-message");
  message.className = training.state === "failed" ? "bad" : "muted";
  if (training.message) message.textContent = training.message;
  else if (active) message.textContent = "Training… you can leave this page open to follow it.";
  else if (training.state === "ready") message.textContent = `Your voice ${voice.id} is ready.`;
}

async function startTraining() {
  if (!own.draft) return;
  showError("");
  const message = $("training-message");
  $("train-button").disabled = true;
  try {
    const voice = await (await api(`${voicePath(own.draft.id)}/train`, { method: "POST" }))
      .json();
    own.draft = voice;
    message.textContent = "";
    renderVoice(voice);
    pollTraining();
  } catch (error) {
    message.className = "bad";
    message.textContent = error.message; // e.g. how many seconds training needs
    $("train-button").disabled = false;
  }
}

async function cancelTraining() {
  if (!own.draft) return;
  try {
    renderVoice(await (await api(`${voicePath(own.draft.id)}/train`, { method: "DELETE" }))
      .json());
  } catch (error) {
    showError(error.message);
  }
}

// Progress by polling: the server also offers GET .../training/events (server-sent
// events), but EventSource cannot send the Authorization header, so the page polls
// GET /v1/voices/{owner}/{slug} with the key once a second while the training runs.
function pollTraining() {
  clearTimeout(own.poll);
  const id = own.draft && own.draft.id;
  const tick = async () => {
    if (!own.draft || own.draft.id !== id) return;
    let voice;
    try {
      voice = await refreshVoice();
    } catch (error) {
      showError(error.message);
      own.poll = setTimeout(tick, POLL_MS * 5);
      return;
    }
    if (ACTIVE_TRAINING.has(voice.training.state)) {
      own.poll = setTimeout(tick, POLL_MS);
    } else if (voice.training.state === "ready") {
      await voiceReady(voice);
    }
  };
  own.poll = setTimeout(tick, POLL_MS);
}

async function voiceReady(voice) {
  try {
    await loadVoices();
    $("voice").value = voice.id;
    $("training-message").textContent =
      `Your voice ${voice.id} is ready: it is selected in Speak above.`;
  } catch (error) {
    showError(error.message);
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
$("create-form").addEventListener("submit", createVoice);
$("consent-record-button").addEventListener("click", () => startRecording("consent"));
$("record-button").addEventListener("click", () => startRecording("prompt"));
$("stop-button").addEventListener("click", stopRecording);
$("skip-button").addEventListener("click", skipPrompt);
$("train-button").addEventListener("click", startTraining);
$("cancel-training-button").addEventListener("click", cancelTraining);
if (state.key) {
  $("api-key").value = state.key;
  useKey(state.key);
}
