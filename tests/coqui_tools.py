"""coqui-tts side of the coqui tests and of ``bench/seed.py``; runs in the coqui environment.

    python tests/coqui_tools.py build OUT [--full]   checkpoints saved as coqui's trainer does
    python tests/coqui_tools.py base OUT [--full]    a training base (tiny, or full-size)
    python tests/coqui_tools.py reference JOBS.json   coqui's ids and Synthesizer.tts audio
    python tests/coqui_tools.py tokenize JOBS.json    our manifest + coqui's ids per config
    python tests/coqui_tools.py closeness JOB.json    log-mel DTW distances to recordings
    python tests/coqui_tools.py unsafe-load PTH       torch.load(weights_only=False): proves
                                                      a payload checkpoint really runs code

Checkpoints are built from coqui's own ``VitsConfig`` with random weights and saved like
``trainer.io.save_model`` (keys config, model, optimizer, scheduler, scaler, step, epoch,
date) plus ``copy_model_files`` (``config.json``), with ``model.config`` — the tokenizer
fills in the characters and ``num_chars`` there.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from trainer.io import copy_model_files, save_model
from TTS.tts.configs.shared_configs import CharactersConfig
from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
from TTS.tts.models.vits import Vits

HANGUL = "".join(chr(c) for c in range(0xAC00, 0xD7A4))
"""Every precomposed Hangul syllable: the Korean test voice's characters."""

SMALL_ARGS = dict(
    hidden_channels=32,
    hidden_channels_ffn_text_encoder=64,
    num_layers_text_encoder=2,
    num_layers_posterior_encoder=2,
    num_layers_flow=2,
    resblock_kernel_sizes_decoder=[3, 5],
    resblock_dilation_sizes_decoder=[[1, 3, 5], [1, 3, 5]],
    upsample_initial_channel_decoder=128,  # stage widths 64 (2-D) then 32, 16, 8 (1-D)
)
"""A VITS small enough for tests (a few MB) with every part of the full one."""


def vits_config(language: str, *, full: bool = False, **overrides: Any) -> VitsConfig:
    """The test/bench configs: English like coqui's LJSpeech recipe, characters only (no
    phonemes), or Korean over Hangul syllables."""
    args = VitsArgs() if full else VitsArgs(**SMALL_ARGS)
    if language == "ko":
        characters = CharactersConfig(
            characters_class="TTS.tts.models.vits.VitsCharacters",
            pad="<PAD>", eos=None, bos=None, blank="<BLNK>",
            characters=HANGUL, punctuations="!'(),-.:;? ", phonemes=None,
            is_unique=False, is_sorted=True,
        )  # fmt: skip
        settings: dict[str, Any] = dict(
            text_cleaner="basic_cleaners", characters=characters, languages=["ko"]
        )
    else:
        settings = dict(text_cleaner="english_cleaners")
    return VitsConfig(**{"model_args": args, "use_phonemes": False, "add_blank": True,
                         **settings, **overrides})  # fmt: skip


TINY_BASE_ARGS = dict(
    SMALL_ARGS,
    spec_segment_size=16,
    periods_multi_period_discriminator=[2],
)
"""A training base for the tests: the small generator, short training segments and one
period discriminator beside the scale one (14 M parameters against the full 47 M): about
a second per step on one CPU thread."""


def tiny_base_config() -> VitsConfig:
    """English characters at 16 kHz, as the tests' recordings are resampled to."""
    from TTS.config.shared_configs import BaseAudioConfig

    audio = BaseAudioConfig(
        sample_rate=16000, win_length=1024, hop_length=256, fft_size=1024, num_mels=80,
        mel_fmin=0, mel_fmax=None, do_trim_silence=False, resample=False,
    )  # fmt: skip
    return VitsConfig(model_args=VitsArgs(**TINY_BASE_ARGS), audio=audio, use_phonemes=False,
                      add_blank=True, text_cleaner="english_cleaners")  # fmt: skip


def build_base(out: Path, *, full: bool = False) -> list[str]:
    """A tiny English training base (``full``: coqui's full-size VITS at 22.05 kHz, for the
    bench), saved as coqui's trainer saves (discriminator too)."""
    torch.manual_seed(7)
    model = Vits.init_from_config(vits_config("en", full=True) if full else tiny_base_config())
    return [str(p) for p in save_checkpoint(model, out)]


def save_checkpoint(model: Vits, folder: Path, *, step: int = 1000) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    save_model(
        model.config, model, folder / "model.pth",
        current_step=step, epoch=step // 100, optimizer=[optimizer], scaler=None,
    )  # fmt: skip
    copy_model_files(model.config, folder, {})
    return folder / "model.pth", folder / "config.json"


def build_model(config: VitsConfig, seed: int) -> Vits:
    torch.manual_seed(seed)
    model = Vits.init_from_config(config)
    model.eval()
    return model


class _TouchMarker:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def build(out: Path, *, full: bool) -> dict[str, Any]:
    """Checkpoints for the tests (small) or the bench (``--full``, English only)."""
    made: dict[str, Any] = {}
    english = build_model(vits_config("en", full=full), seed=1)
    made["en"] = [str(p) for p in save_checkpoint(english, out / "en")]
    if full:
        return made
    korean = build_model(vits_config("ko"), seed=2)
    made["ko"] = [str(p) for p in save_checkpoint(korean, out / "ko")]
    # A real payload: unpickling the checkpoint would run `touch payload.marker`.
    payload = out / "payload"
    payload.mkdir()
    state = torch.load(out / "en" / "model.pth", weights_only=True)
    state["config"] = _TouchMarker(payload / "payload.marker")
    torch.save(state, payload / "model.pth")
    made["payload"] = [str(payload / "model.pth"), made["en"][1], str(payload / "payload.marker")]
    # Another architecture's checkpoint, in the trainer's format, beside a VITS config.
    other = out / "other"
    other.mkdir()
    net = torch.nn.Sequential(torch.nn.Embedding(100, 32), torch.nn.Linear(32, 513))
    state = {"config": {"model": "classifier"}, "model": net.state_dict(), "optimizer": None,
             "scheduler": None, "scaler": None, "step": 1, "epoch": 0, "date": "today"}  # fmt: skip
    torch.save(state, other / "model.pth")
    made["other"] = [str(other / "model.pth"), made["en"][1]]
    return made


def synthesizer(checkpoint: str, config: str) -> Any:
    from TTS.utils.synthesizer import Synthesizer

    synth = Synthesizer(tts_checkpoint=checkpoint, tts_config_path=config)
    synth.tts_model.inference_noise_scale = 0.0
    synth.tts_model.inference_noise_scale_dp = 0.0
    return synth


def coqui_ids(model: Any, text: str) -> list[int]:
    """The ids ``BaseTTS.synthesize`` feeds the model (same language rule)."""
    names = model.language_manager.language_names
    language = names[0] if len(names) == 1 else None
    return [int(i) for i in model.tokenizer.text_to_ids(text, language=language)]


def reference(jobs: list[dict[str, Any]]) -> None:
    """Per job: coqui ids and ``Synthesizer.tts`` (noise 0) for each text, saved as .npz."""
    torch.set_num_threads(1)
    for job in jobs:
        synth = synthesizer(job["checkpoint"], job["config"])
        arrays: dict[str, np.ndarray] = {}
        for i, text in enumerate(job["texts"]):
            arrays[f"ids{i}"] = np.array(coqui_ids(synth.tts_model, text), dtype=np.int64)
            arrays[f"wav{i}"] = np.array(synth.tts(text), dtype=np.float32)
        np.savez(job["out"], **arrays)


def tokenize(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per config variant: the manifest our exporter writes, and coqui's ids of each text."""
    from voicepocket.voices.coqui_export import manifest_of

    results = []
    for job in jobs:
        model = build_model(vits_config(job["language"], **job["overrides"]), seed=3)
        manifest = json.loads(manifest_of(model, sources={}).to_json())
        ids = [coqui_ids(model, text) for text in job["texts"]]
        results.append({"manifest": manifest, "ids": ids})
    return results


def log_mel(samples: np.ndarray, rate: int) -> np.ndarray:
    import librosa

    if rate != 16000:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=16000)
    samples, _ = librosa.effects.trim(samples, top_db=40)
    mel = librosa.feature.melspectrogram(y=samples, sr=16000, n_fft=1024, hop_length=256,
                                         n_mels=80)  # fmt: skip
    return np.log(np.maximum(mel, 1e-5))


def mel_distance(audio: np.ndarray, rate: int, recording: np.ndarray, recording_rate: int) -> float:
    """Mean L1 distance between the log-mel frames (80 bands at 16 kHz) of ``audio`` and
    ``recording`` along their DTW alignment: how far a voice's output is from what was read,
    whatever the two speaking rates. Leading and trailing silence is trimmed from both
    first: silence matches silence at no cost, so padding would count as closeness."""
    import librosa

    a, b = log_mel(audio, rate), log_mel(recording, recording_rate)
    cost = np.abs(a[:, :, None] - b[:, None, :]).mean(axis=0)
    total, path = librosa.sequence.dtw(C=cost)
    return float(total[-1, -1] / len(path))


def closeness(job: dict[str, Any]) -> dict[str, list[float]]:
    """Distances to each recording in ``job["recordings"]`` (WAV paths, with its text): of
    the checkpoint's ``Synthesizer.tts`` output (noise 0) as ``"checkpoint"``, and of each
    ``job["outputs"][name]`` (WAV paths, same order)."""
    import soundfile

    torch.set_num_threads(1)
    synth = synthesizer(job["checkpoint"], job["config"])
    rate = synth.output_sample_rate
    result: dict[str, list[float]] = {"checkpoint": []}
    for name in job["outputs"]:
        result[name] = []
    for i, (path, text) in enumerate(job["recordings"]):
        recording, recording_rate = soundfile.read(path, dtype="float32")
        own = np.array(synth.tts(text), dtype=np.float32)
        result["checkpoint"].append(mel_distance(own, rate, recording, recording_rate))
        for name, outputs in job["outputs"].items():
            audio, audio_rate = soundfile.read(outputs[i], dtype="float32")
            result[name].append(mel_distance(audio, audio_rate, recording, recording_rate))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build")
    build_cmd.add_argument("out", type=Path)
    build_cmd.add_argument("--full", action="store_true")
    base_cmd = commands.add_parser("base")
    base_cmd.add_argument("out", type=Path)
    base_cmd.add_argument("--full", action="store_true")
    for name in ("reference", "tokenize", "closeness", "unsafe-load"):
        commands.add_parser(name).add_argument("path", type=Path)
    args = parser.parse_args()
    if args.command == "build":
        result: Any = build(args.out, full=args.full)
    elif args.command == "base":
        result = build_base(args.out, full=args.full)
    elif args.command == "reference":
        reference(json.loads(args.path.read_text()))
        result = "ok"
    elif args.command == "tokenize":
        result = tokenize(json.loads(args.path.read_text()))
    elif args.command == "closeness":
        result = closeness(json.loads(args.path.read_text()))
    else:
        torch.load(args.path, weights_only=False)  # what the seed would have done
        result = "loaded"
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
