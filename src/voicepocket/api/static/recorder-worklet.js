// AudioWorklet processor for "Create your voice": copies the microphone's mono float
// samples (the node is set to one channel, so the browser downmixes) to the page in
// blocks of BLOCK frames; the page encodes them as a 16-bit PCM WAV. On the message
// "stop" it sends what it still holds, then {done: true}, and stops processing.
"use strict";

const BLOCK = 4096;

class VoicePocketRecorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
    this.recording = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop" && this.recording) {
        this.recording = false;
        this.flush();
        this.port.postMessage({ done: true });
      }
    };
  }

  flush() {
    if (!this.filled) return;
    const out = this.block.slice(0, this.filled);
    this.port.postMessage(out, [out.buffer]);
    this.filled = 0;
  }

  process(inputs) {
    if (!this.recording) return false;
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let offset = 0;
      while (offset < channel.length) {
        const n = Math.min(channel.length - offset, BLOCK - this.filled);
        this.block.set(channel.subarray(offset, offset + n), this.filled);
        this.filled += n;
        offset += n;
        if (this.filled === BLOCK) this.flush();
      }
    }
    return true;
  }
}

registerProcessor("voicepocket-recorder", VoicePocketRecorder);
