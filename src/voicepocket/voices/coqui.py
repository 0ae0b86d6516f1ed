"""coqui-tts VITS voices, served from ONNX with onnxruntime alone.

A user's ``model.pth`` + ``config.json`` are compiled once, at registration, by
``convert`` (which runs ``voicepocket.voices.coqui_export`` in the coqui environment, the
only place torch exists) into ``voice.onnx`` + ``voice.onnx.json`` (a ``CoquiManifest``).
From then on the voice is these two files: text becomes ids through our torch-free port of
coqui's tokenizer (``coqui_text``), ids become audio through one ``InferenceSession``, and
each sentence's trailing silence is trimmed as coqui's Synthesizer does. What the seed's
Synthesizer did besides — append 10,000 zero samples per sentence, build Python lists —
is not done.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime

from voicepocket import children
from voicepocket.errors import EngineError, InferenceTimeout, InvalidVoiceFiles
from voicepocket.voices.base import AudioChunk, SynthesisParams, TextProfile
from voicepocket.voices.coqui_config import (
    CoquiManifest,
    TrimSilence,
    check_coqui_config,
    read_json,
)
from voicepocket.voices.coqui_export import REFUSED
from voicepocket.voices.coqui_text import english_cleaners
from voicepocket.voices.deadline import INFERENCE_DEADLINE_S, DeadlineSession
from voicepocket.voices.onnx_checks import (
    COMPILED_OPERATORS,
    check_onnx_model,
    initialize_onnxruntime,
)
from voicepocket.voices.piper import config_path_for  # the manifest sits beside the model

_LOGGER = logging.getLogger(__name__)

INPUTS = {"input", "input_lengths", "scales"}
"""The graph inputs coqui's ``export_onnx`` gives a single-speaker VITS model."""

CONVERT_TIMEOUT_S = 900.0
"""Longest a conversion may take (a full-size checkpoint takes about 10 s)."""

SAMPLE_TEXTS = {
    "ko": "안녕하세요. 오늘은 날씨가 맑고 바람이 시원해서 공원을 천천히 걸었습니다.",
    "en": "The quick brown fox jumps over the lazy dog, and then it rests.",
}


def session_options(threads: int) -> onnxruntime.SessionOptions:
    """How every coqui voice's session is built (measured in ``bench/seed.py``)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # As for Piper voices: the arena would keep the peak of every input length it has seen,
    # which the pool's byte budget cannot account for.
    options.enable_cpu_mem_arena = False
    # Idle intra-op threads sleep instead of spinning: a spinning thread burns a core that
    # another request (or the other thread of this one) needs on a small, shared machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def find_endpoint(samples: np.ndarray, trim: TrimSilence) -> int:
    """coqui's ``find_endpoint``: the end of the first hop-aligned window of ``trim.window``
    samples whose maximum (not absolute) stays under the threshold, plus one hop."""
    hop = int(trim.window / 4)
    for start in range(hop, len(samples) - trim.window, hop):
        if np.max(samples[start : start + trim.window]) < trim.threshold:
            return start + hop
    return len(samples)


def _scales(manifest: CoquiManifest, params: SynthesisParams) -> np.ndarray:
    noise = manifest.noise_scale if params.noise_scale is None else params.noise_scale
    noise_dp = manifest.noise_scale_dp if params.noise_w is None else params.noise_w
    return np.array([noise, manifest.length_scale / params.speed, noise_dp], dtype=np.float32)


def _output(out_dir: Path, reported: object) -> Path:
    """A file the compile child says it wrote: only a regular file in its output folder
    is taken (a child tricked into naming ``/etc/passwd`` or a link gets nothing)."""
    path = Path(str(reported))
    if (
        not isinstance(reported, str)
        or path.parent.resolve() != out_dir.resolve()
        or path.is_symlink()
        or not path.is_file()
    ):
        raise InvalidVoiceFiles("The checkpoint's compile reported files outside its folder.")
    return path


class CoquiVoice:
    """A loaded coqui VITS voice; ``synthesize`` yields one chunk per text chunk."""

    kind = "coqui"

    def __init__(self, session: DeadlineSession, manifest: CoquiManifest) -> None:
        self._session: DeadlineSession | None = session
        self.manifest = manifest
        self.tokenizer = manifest.tokenizer()
        self.sample_rate: int = manifest.sample_rate
        self.symbols: frozenset[str] = manifest.symbols
        self.language: str = manifest.text_language
        """Primary language of the voice's text ("ko", "en"), for text normalization."""

    # -- registration --------------------------------------------------------------------

    @staticmethod
    def convert(
        checkpoint: Path, config: Path, *, out_dir: Path, python: Path
    ) -> tuple[Path, Path]:
        """Compile a coqui checkpoint + config into ``voice.onnx`` + manifest in ``out_dir``,
        running ``coqui_export`` with ``python`` (the coqui environment's interpreter)."""
        check_coqui_config(read_json(config, param="config"))  # cheap refusals first
        if not python.exists():
            raise EngineError(
                "Registering coqui-tts checkpoints needs the coqui environment, which this "
                "server lacks (run `make coqui`, or set VOICEPOCKET_COQUI_PYTHON)."
            )
        command = [
            str(python), "-m", "voicepocket.voices.coqui_export",
            str(checkpoint), str(config), "--out", str(out_dir),
        ]  # fmt: skip
        try:
            completed = children.run(command, timeout_s=CONVERT_TIMEOUT_S, cwd=out_dir.parent)
        except subprocess.TimeoutExpired as exc:
            raise InvalidVoiceFiles("Converting the checkpoint took too long.") from exc
        lines = completed.stdout.strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            result = {}
        if completed.returncode == REFUSED and "error" in result:
            raise InvalidVoiceFiles(result["error"], param=result.get("param"))
        if completed.returncode != 0 or "onnx" not in result:
            _LOGGER.warning("coqui export failed (%d): %s", completed.returncode,
                            completed.stderr[-2000:])  # fmt: skip
            raise InvalidVoiceFiles(
                "The checkpoint could not be converted; it is not a working coqui VITS model."
            )
        _LOGGER.info("Converted coqui checkpoint: load %.1f s, export %.1f s",
                     result.get("load_s", 0.0), result.get("export_s", 0.0))  # fmt: skip
        return _output(out_dir, result["onnx"]), _output(out_dir, result.get("manifest"))

    @staticmethod
    def validate_files(model_path: Path) -> None:
        """Static checks of a converted voice: manifest sane, ONNX standard-only with
        exactly coqui's single-speaker inputs."""
        CoquiManifest.read(config_path_for(model_path))
        inputs = check_onnx_model(model_path, operators=COMPILED_OPERATORS)
        if inputs != INPUTS:
            raise InvalidVoiceFiles(
                f"The ONNX model's inputs are {sorted(inputs)}, not {sorted(INPUTS)}.",
                param="model",
            )

    # -- serving -------------------------------------------------------------------------

    @staticmethod
    def read_profile(path: Path) -> TextProfile:
        """The text profile of the voice at ``path``, from its manifest alone."""
        manifest = CoquiManifest.read(config_path_for(path))
        return TextProfile(symbols=manifest.symbols, language=manifest.text_language)

    @classmethod
    def load(
        cls, path: Path, *, threads: int = 1, deadline_s: float = INFERENCE_DEADLINE_S
    ) -> CoquiVoice:
        """Load ``path`` (``voice.onnx``; its manifest is ``<path>.json``) into a session."""
        manifest = CoquiManifest.read(config_path_for(path))
        try:
            session = onnxruntime.InferenceSession(
                str(path), sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )  # fmt: skip
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError("The voice model could not be loaded.") from exc
        return cls(DeadlineSession(session, deadline_s=deadline_s), manifest)

    @staticmethod
    def initialize_runtime() -> None:
        """Set up what every coqui voice in a process shares (onnxruntime's environment,
        the English cleaner's inflect), so the probe does not count it as one voice's cost."""
        initialize_onnxruntime()
        english_cleaners("It cost $1,234.50 at 10:05 on the 3rd.")

    def sample_text(self) -> str:
        """A sentence in the voice's own symbols, for warm-up and probing."""
        text = SAMPLE_TEXTS.get(self.language, SAMPLE_TEXTS["en"])
        kept = "".join(c for c in text if c in self.symbols or c.lower() in self.symbols)
        return kept if kept.strip() else "".join(sorted(self.symbols))[:40]

    def text_to_ids(self, text: str) -> list[int]:
        """Token ids of ``text``, exactly as coqui's tokenizer makes them."""
        return self.tokenizer.text_to_ids(text)

    def ids_to_audio(self, ids: list[int], params: SynthesisParams | None = None) -> np.ndarray:
        """One inference: float32 PCM for ``ids``, trailing silence trimmed as coqui does."""
        if not ids:
            return np.zeros(0, dtype=np.float32)
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": _scales(self.manifest, params or SynthesisParams()),
        }
        if self._session is None:
            raise EngineError("The voice was closed.")
        try:
            output = self._session.run(None, inputs)[0]
        except InferenceTimeout:
            raise
        except Exception as exc:  # onnxruntime errors are untyped
            raise EngineError("Speech synthesis failed.") from exc
        samples = np.asarray(output, dtype=np.float32).reshape(-1)
        trim = self.manifest.trim_silence
        return samples if trim is None else samples[: find_endpoint(samples, trim)]

    def synthesize(
        self, chunks: Iterable[str], params: SynthesisParams | None = None
    ) -> Iterator[AudioChunk]:
        """Yield one chunk of speech per text chunk."""
        for text in chunks:
            samples = self.ids_to_audio(self.text_to_ids(text), params)
            yield AudioChunk(samples=samples, sample_rate=self.sample_rate, text=text)

    def close(self) -> None:
        """Drop the session; onnxruntime frees its memory when the last reference goes."""
        self._session = None
