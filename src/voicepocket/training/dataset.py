"""A voice's accepted samples as a dataset in coqui's LJSpeech layout.

``wavs/{id}.wav`` and two metadata files of ``id|text|text`` lines: ``metadata_train.csv``
and ``metadata_eval.csv``. The eval split is chosen by us, not by coqui's random split, so
it is the same clips every time a round is resumed, and stays the same when samples are
added for another round (so one round's held-out loss compares with the next): the first
sample and every tenth after it, by upload order; never the only one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voicepocket.registry.training import Sample
from voicepocket.store import ObjectStore
from voicepocket.training.files import download

EVAL_EVERY = 10


@dataclass(frozen=True, slots=True)
class Dataset:
    folder: Path
    train_clips: int
    eval_clips: int


def split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """(train, eval): samples 0, ``EVAL_EVERY``, 2 * ``EVAL_EVERY``... held out; needs two."""
    held = samples[::EVAL_EVERY]
    return [s for s in samples if s not in held], held


def _line(sample: Sample) -> str:
    text = " ".join(sample.text.replace("|", " ").split())
    return f"{sample.id}|{text}|{text}"


def write_dataset(objects: ObjectStore, samples: list[Sample], folder: Path) -> Dataset:
    """Fetch the samples' audio and write the layout into ``folder``."""
    if len(samples) < 2:
        raise ValueError("a dataset needs at least two samples")
    train, held = split(samples)
    for sample in samples:
        target = folder / "wavs" / f"{sample.id}.wav"
        if not target.exists():
            download(objects, sample.storage_key, target)
    for name, part in (("metadata_train.csv", train), ("metadata_eval.csv", held)):
        (folder / name).write_text("".join(_line(s) + "\n" for s in part), encoding="utf-8")
    return Dataset(folder=folder, train_clips=len(train), eval_clips=len(held))
