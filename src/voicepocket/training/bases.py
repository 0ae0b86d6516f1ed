"""Training bases: coqui-tts VITS trainer checkpoints that users' voices are fine-tuned from.

An operator brings one (``voicepocket bases add model.pth config.json --name --language``);
none is downloaded at run time and none ships with the package. Adding one validates it
exactly as an uploaded coqui voice is validated — compiled to ONNX in the coqui
environment, ``weights_only``, strict weights, the tokenizer's manifest written — and
stores the checkpoint (discriminator included: fine-tuning needs it), its config and that
manifest, which tells serving-side checks which characters the base can say.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from voicepocket.errors import RequestError
from voicepocket.registry import Registry
from voicepocket.registry.ids import check_name
from voicepocket.registry.models import utcnow
from voicepocket.registry.repository import file_blocks, sha256_of
from voicepocket.registry.training import BaseModel
from voicepocket.training.files import base_key, download
from voicepocket.training.prompts import LANGUAGES
from voicepocket.voices import CoquiVoice
from voicepocket.voices.coqui_config import CoquiManifest

CHECKPOINT = "model.pth"
CONFIG = "config.json"
MANIFEST = "voice.onnx.json"


def add_base(
    registry: Registry,
    *,
    name: str,
    language: str,
    checkpoint: Path,
    config: Path,
    coqui_python: Path,
    work_dir: Path,
) -> BaseModel:
    """Validate (compile in the coqui environment), store and record a base."""
    check_name(name, param="name")
    if language not in LANGUAGES:
        raise RequestError(f"language must be one of {', '.join(LANGUAGES)}.", param="language")
    work_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="base-", dir=work_dir))
    try:
        _, manifest_path = CoquiVoice.convert(
            checkpoint, config, out_dir=staging / "compiled", python=coqui_python
        )
        manifest = CoquiManifest.read(manifest_path)
        checkpoint_sha = sha256_of(checkpoint)
        key = f"{base_key(name)}/{checkpoint_sha[:16]}"
        objects = registry.models.objects
        for source, target in ((checkpoint, CHECKPOINT), (config, CONFIG),
                               (manifest_path, MANIFEST)):  # fmt: skip
            objects.put(f"{key}/{target}", file_blocks(source))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    base = BaseModel(
        name=name, language=language, files_key=key,
        checkpoint_sha256=checkpoint_sha, sample_rate=manifest.sample_rate,
        created_at=utcnow(),
    )  # fmt: skip
    return registry.training.add_base(base)


def _fetched(registry: Registry, base: BaseModel, name: str, cache_dir: Path) -> Path:
    """One of the base's files, fetched once into ``cache_dir`` (keyed by the checkpoint's
    hash)."""
    path = cache_dir / base.checkpoint_sha256 / name
    if not path.exists():
        download(registry.models.objects, f"{base.files_key}/{name}", path)
    return path


def base_checkpoint(registry: Registry, base: BaseModel, *, cache_dir: Path) -> tuple[Path, Path]:
    """The base's checkpoint and config on local disk, to train from."""
    return (_fetched(registry, base, CHECKPOINT, cache_dir),
            _fetched(registry, base, CONFIG, cache_dir))  # fmt: skip


def base_manifest(registry: Registry, base: BaseModel, *, cache_dir: Path) -> CoquiManifest:
    """What the base's tokenizer says (for the sample checks): its manifest alone, never
    the checkpoint."""
    return _manifest(_fetched(registry, base, MANIFEST, cache_dir))


@cache
def _manifest(path: Path) -> CoquiManifest:
    return CoquiManifest.read(path)


def unsayable(manifest: CoquiManifest, text: str) -> str:
    """The characters of ``text`` the base's tokenizer would drop, once cleaned as it
    cleans (empty when it can say all of it)."""
    tokenizer = manifest.tokenizer()
    known = tokenizer.char_to_id
    return "".join(sorted({c for c in tokenizer.clean(text) if c not in known}))
