"""Compile a coqui-tts VITS checkpoint to ONNX + manifest: registration's only torch step.

Runs in the coqui environment (``voicepocket[coqui]``, ``make coqui``), started by
``CoquiVoice.convert`` as ``python -m voicepocket.voices.coqui_export CHECKPOINT CONFIG
--out DIR``; the serving process never imports torch or coqui-tts.

1. The config is checked without torch (``coqui_config.check_coqui_config``) and every
   path-valued field emptied, so coqui opens no file the uploader named.
2. The checkpoint is read with ``torch.load(weights_only=True)`` only: a checkpoint holding
   anything but tensors and plain data (a pickle payload) is refused and nothing in it runs.
3. Only the generator is built (``init_discriminator=False``; the discriminator is 56% of a
   trainer checkpoint and unused for inference) and its weights loaded strictly, so a
   checkpoint of another architecture or size fails here.
4. The HiFi-GAN waveform decoder (about 90% of inference time, all 1-D convolutions) is
   rebuilt, in its stages of 64 channels or more, with equivalent 2-D convolutions of
   height 1 over a 4-D tensor, which lets onnxruntime run them with its blocked-layout
   (NCHWc) convolution kernels instead of im2col + GEMM (``--plain`` skips this;
   ``bench/seed.py`` measures the gain).
5. coqui's own ``Vits.export_onnx`` writes the model (weight norm folded, the three noise and
   length scales as an input), and the manifest records what the tokenizer needs.

Exit status 0 prints one JSON line ``{"onnx": ..., "manifest": ...}``; status 3 prints
``{"error": message, "param": ...}`` for a refusal meant for the uploader; anything else is
a crash, reported to the uploader as a checkpoint that could not be converted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from voicepocket.errors import InvalidVoiceFiles
from voicepocket.voices.coqui_config import (
    CoquiManifest,
    TrimSilence,
    check_coqui_config,
    read_json,
    sanitized,
)

REFUSED = 3
"""Exit status of a refusal whose message is meant for the uploader."""

ONNX_NAME = "voice.onnx"
MANIFEST_NAME = "voice.onnx.json"
_BLOCK = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _refuse(message: str, param: str = "model") -> InvalidVoiceFiles:
    return InvalidVoiceFiles(message, param=param)


def load_weights(checkpoint: Path) -> dict[str, Any]:
    """The generator's tensors from a trainer checkpoint, read with ``weights_only=True``."""
    import torch

    try:
        try:  # mmap: the discriminator's half of the file is never read into memory
            state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:
        if type(exc).__name__ == "UnpicklingError" or "weights_only" in str(exc):
            raise _refuse(
                "The checkpoint holds Python objects besides tensors and plain data; it was "
                "refused without running them (checkpoints are read with weights_only)."
            ) from exc
        raise _refuse("The checkpoint is not a readable PyTorch file (truncated?).") from exc
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise _refuse("The checkpoint has no 'model' state dict (is it a coqui trainer file?).")
    return {
        name: tensor
        for name, tensor in weights.items()
        if not name.startswith("disc.") and "speaker_encoder" not in name
    }


def build_generator(raw_config: dict[str, Any], weights: dict[str, Any]) -> Any:
    """coqui's ``Vits`` without its discriminator, weights loaded strictly, in eval mode."""
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    config = VitsConfig()
    try:
        config.from_dict(sanitized(raw_config))
        config.model_args.init_discriminator = False
        model = Vits(config)
    except Exception as exc:  # coqpit and coqui raise assorted errors on odd configs
        raise _refuse("coqui-tts cannot build a VITS model from this config.", "config") from exc
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise _refuse(
            "The checkpoint's weights do not match its config (another architecture, or "
            "different sizes or vocabulary)."
        ) from exc
    model.eval()
    return model


NCHWC_MIN_CHANNELS = 64
"""Narrowest decoder stage run as 2-D convolutions. Measured on the full-size decoder (2
AVX2 cores): onnxruntime's NCHWc kernels run 64 to 256 channels at about 185 GFLOP/s, near
the machines' peak, against 150-165 for im2col + GEMM; at 32 channels they fall to 88,
below im2col's 126, so narrower stages stay 1-D."""


def decoder_as_2d(model: Any, *, min_channels: int = NCHWC_MIN_CHANNELS) -> bool:
    """Swap the 1-D convolutions of the waveform decoder's stages at least ``min_channels``
    wide for equal 2-D ones (kernel 1 x k) running on ``[B, C, 1, T]``; its other
    operations (leaky ReLU, sums, tanh) do not care about rank. The narrower stages that
    follow stay 1-D. Returns False, changing nothing, for decoders with parts this does not
    cover (speaker conditioning, a linear input layer, non-integer padding)."""
    import torch

    one_d = torch.nn.Conv1d | torch.nn.ConvTranspose1d
    decoder = model.waveform_decoder
    convs = [m for m in decoder.modules() if isinstance(m, one_d)]
    if (
        any(hasattr(decoder, name) for name in ("cond_layer", "lin_pre"))
        or getattr(decoder, "cond_in_each_up_layer", False)
        or any(isinstance(c.padding, str) or c.padding_mode != "zeros" for c in convs)
        or decoder.conv_pre.out_channels < min_channels
    ):
        return False
    # Stages narrow as they upsample: the first one under min_channels and all after it
    # stay 1-D.
    widths = [up.out_channels for up in decoder.ups]
    narrow = next((i for i, width in enumerate(widths) if width < min_channels), len(widths))
    size = decoder.num_kernels
    _to_2d(decoder, [decoder.conv_pre, *decoder.ups[:narrow], *decoder.resblocks[: narrow * size]])
    if narrow == len(widths):
        _to_2d(decoder, [decoder.conv_post])
    else:  # the first narrow stage takes the rank-4 tensor back to rank 3
        decoder.ups[narrow] = _from_rank4(decoder.ups[narrow])
    model.waveform_decoder = _rank4(decoder)
    return True


def _to_2d(decoder: Any, parts: list[Any]) -> None:
    """Replace every 1-D convolution in ``parts`` (modules of ``decoder``) by its 2-D twin."""
    import torch

    one_d = torch.nn.Conv1d | torch.nn.ConvTranspose1d
    targets = {id(m) for part in parts for m in part.modules() if isinstance(m, one_d)}
    for parent in list(decoder.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in targets:
                setattr(parent, name, _as_2d(child))


def _rank4(inner: Any) -> Any:
    import torch

    class Rank4(torch.nn.Module):  # type: ignore[misc]
        """The decoder on ``x.unsqueeze(2)``, its output back to ``[B, 1, T]``."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any, g: Any = None) -> Any:
            out = self.inner(x.unsqueeze(2), g=g)
            return out.squeeze(2) if out.dim() == 4 else out

    return Rank4()


def _from_rank4(inner: Any) -> Any:
    import torch

    class FromRank4(torch.nn.Module):  # type: ignore[misc]
        """A 1-D module fed by a 2-D stage: squeezes the height of 1 first."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner(x.squeeze(2))

    return FromRank4()


def _as_2d(conv: Any) -> Any:
    import torch

    transposed = isinstance(conv, torch.nn.ConvTranspose1d)
    cls = torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d
    extra = {"output_padding": (0, conv.output_padding[0])} if transposed else {}
    flat = cls(
        conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]),
        stride=(1, conv.stride[0]), padding=(0, conv.padding[0]),
        dilation=(1, conv.dilation[0]), groups=conv.groups, bias=conv.bias is not None, **extra,
    )  # fmt: skip
    with torch.no_grad():  # conv.weight is the weight-normed weight, computed
        flat.weight.copy_(conv.weight.detach().unsqueeze(2))
        if conv.bias is not None:
            flat.bias.copy_(conv.bias.detach())
    return flat


def manifest_of(model: Any, *, sources: dict[str, str]) -> CoquiManifest:
    """The manifest of a built model, read from coqui's own tokenizer and audio processor."""
    from TTS.utils.audio.numpy_transforms import db_to_amp

    tokenizer, characters, ap = model.tokenizer, model.tokenizer.characters, model.ap
    if tokenizer.use_phonemes:
        raise _refuse("Phoneme-based configs are not supported here.", "config")
    names = model.language_manager.language_names
    audio = model.config.audio
    trim = None
    if audio.get("do_trim_silence"):
        window = int(ap.sample_rate * 0.8)  # coqui's find_endpoint(min_silence_sec=0.8)
        threshold = float(db_to_amp(x=-ap.trim_db, gain=ap.spec_gain, base=ap.base))
        trim = TrimSilence(window=window, threshold=threshold)
    manifest = CoquiManifest(
        sample_rate=int(audio["sample_rate"]),
        vocab=tuple(characters.vocab),
        pad=characters.pad or None,
        blank=characters.blank or None,
        bos=characters.bos or None,
        eos=characters.eos or None,
        blank_id=int(characters.blank_id),
        bos_id=int(characters.bos_id),
        eos_id=int(characters.eos_id),
        add_blank=bool(tokenizer.add_blank),
        use_eos_bos=bool(tokenizer.use_eos_bos),
        text_cleaner=model.config.text_cleaner if tokenizer.text_cleaner is not None else None,
        language=names[0] if len(names) == 1 else None,
        noise_scale=float(model.inference_noise_scale),
        length_scale=float(model.length_scale),
        noise_scale_dp=float(model.inference_noise_scale_dp),
        trim_silence=trim,
        source=sources,
    )
    return CoquiManifest.from_dict(json.loads(manifest.to_json()))  # the checks serving runs


def export(
    checkpoint: Path,
    config_path: Path,
    out_dir: Path,
    *,
    plain: bool = False,
    min_channels: int = NCHWC_MIN_CHANNELS,
) -> dict[str, Any]:
    """Validate, load, export; returns paths and timings."""
    import torch
    import TTS

    started = time.perf_counter()
    raw = read_json(config_path, param="config")
    check_coqui_config(raw)
    weights = load_weights(checkpoint)
    model = build_generator(raw, weights)
    del weights
    loaded = time.perf_counter()
    sources = {
        "checkpoint_sha256": _sha256(checkpoint),
        "config_sha256": _sha256(config_path),
        "coqui_tts": TTS.__version__,
        "torch": torch.__version__,
    }
    manifest = manifest_of(model, sources=sources)
    decoder_2d = False if plain else decoder_as_2d(model, min_channels=min_channels)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, manifest_path = out_dir / ONNX_NAME, out_dir / MANIFEST_NAME
    model.export_onnx(output_path=str(onnx_path), verbose=False)
    manifest_path.write_text(manifest.to_json(), encoding="utf-8")
    return {
        "onnx": str(onnx_path),
        "manifest": str(manifest_path),
        "load_s": loaded - started,
        "export_s": time.perf_counter() - loaded,
        "decoder_2d": decoder_2d,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plain", action="store_true", help="coqui's export as it is")
    parser.add_argument(
        "--nchwc-min-channels", type=int, default=NCHWC_MIN_CHANNELS, metavar="N",
        help="narrowest decoder stage made 2-D (1: every stage; for bench/seed.py)",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        result = export(args.checkpoint, args.config, args.out, plain=args.plain,
                        min_channels=args.nchwc_min_channels)  # fmt: skip
    except InvalidVoiceFiles as refusal:
        print(json.dumps({"error": refusal.message, "param": refusal.param}))
        sys.exit(REFUSED)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
