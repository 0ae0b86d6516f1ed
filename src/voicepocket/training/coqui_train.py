"""One training round of a user's voice: coqui-tts's ``Trainer`` fine-tuning a ``Vits``.

Runs in the coqui environment (torch, coqui-tts), in its own process, started by the
training worker as ``python -m voicepocket.training.coqui_train SPEC.json``; the serving
process never imports it. The spec (written by ``voicepocket.training.worker``) names the
checkpoint to start from (a base, or the voice's last round), the dataset (coqui's
LJSpeech layout, split into train and eval files by us so a resumed run evaluates on the
same clips), the run folder and the budget.

- Fine-tune: the base's own config, with our dataset, a lowered learning rate, eval every
  epoch, the best model by eval loss kept (``best_model.pth``), a checkpoint every
  ``checkpoint_steps`` steps (two kept). Epochs are sized so the round ends after ``steps``.
- Resume: if the run folder holds a checkpoint, ``continue_path`` picks it up: weights,
  optimizers and the step count continue where the killed process left them.
- Where: CUDA when torch sees a GPU (mixed precision); else the CPU with ``threads``
  threads, at idle priority so serving on the same machine keeps its cores.
- Output: one JSON object per line prefixed ``@voicepocket`` on stdout (coqui's own log
  goes there too): ``start``, ``step``, ``eval``, ``checkpoint`` and ``done`` events. Exit
  status 3 prints ``{"error": ...}``: a refusal (the base does not load) that no retry
  fixes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

EVENT_PREFIX = "@voicepocket "
"""Marks our event lines among coqui's console output."""

REFUSED = 3
"""Exit status of a failure no retry fixes (the base or dataset is unusable)."""

RUN_NAME = "round"


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def lower_priority() -> None:
    """Idle CPU priority for this process and every thread it starts after this."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(19)


def read_with_soundfile(path: str) -> Any:
    """coqui's VITS dataset reads clips with ``torchaudio.load``, which needs torchcodec's
    native libraries (not loadable beside the CPU torch here); our clips are plain WAV."""
    import soundfile
    import torch

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(data.T.copy()), rate


def skip_figures(*_: Any, **__: Any) -> None:
    """Stands in for ``Vits.train_log``/``eval_log``: their matplotlib figures and audio for
    tensorboard took a third of each CPU step (1.4 s of 4.3 s on the tests' base); the
    losses still reach the log and our events."""


def last_round_folder(run_dir: Path) -> Path | None:
    """The trainer's folder of an earlier, killed process of this round, if it left a
    checkpoint to continue from."""
    for folder in sorted(run_dir.glob(f"{RUN_NAME}-*"), reverse=True):
        if any(folder.glob("checkpoint_*.pth")):
            return folder
    return None


def build_config(spec: dict[str, Any], *, cuda: bool) -> Any:
    from TTS.config.shared_configs import BaseDatasetConfig
    from TTS.tts.configs.vits_config import VitsConfig

    from voicepocket.voices.coqui_config import read_json, sanitized

    config = VitsConfig()
    config.from_dict(sanitized(read_json(Path(spec["base_config"]), param="config")))
    language = config.datasets[0].language if config.datasets else ""
    config.datasets = [
        BaseDatasetConfig(
            formatter="ljspeech", path=spec["dataset"], meta_file_train="metadata_train.csv",
            meta_file_val="metadata_eval.csv", language=language,
        )
    ]  # fmt: skip
    steps_per_epoch = math.ceil(spec["train_clips"] / spec["batch_size"])
    config.epochs = max(1, math.ceil(spec["steps"] / steps_per_epoch))
    config.batch_size = spec["batch_size"]
    config.eval_batch_size = max(1, min(spec["batch_size"], spec["eval_clips"]))
    config.lr_gen = config.lr_disc = spec["learning_rate"]
    config.run_name = RUN_NAME
    config.output_path = spec["run_dir"]
    config.run_eval = True
    config.test_delay_epochs = 10**9  # no test sentences: the worker probes the result
    config.test_sentences = []
    config.print_step = 1
    config.print_eval = False
    config.save_step = spec["checkpoint_steps"]
    config.save_n_checkpoints = 2
    config.save_best_after = 0
    config.save_all_best = False
    config.num_loader_workers = 0
    config.num_eval_loader_workers = 0
    config.mixed_precision = cuda
    config.training_seed = spec["seed"]
    config.min_audio_len = 1
    config.max_audio_len = int(config.audio.sample_rate * 30)
    config.min_text_len = 1
    config.max_text_len = 10_000
    config.dashboard_logger = "tensorboard"
    return config


def train(spec: dict[str, Any]) -> None:
    lower_priority()
    import torch

    torch.set_num_threads(spec["threads"])
    import TTS.tts.models.vits as vits_module
    from trainer import Trainer, TrainerArgs
    from TTS.tts.datasets import load_tts_samples
    from TTS.tts.models.vits import Vits

    vits_module.load_audio = read_with_soundfile
    cuda = torch.cuda.is_available()
    config = build_config(spec, cuda=cuda)
    train_samples, eval_samples = load_tts_samples(config, eval_split=True)
    run_dir = Path(spec["run_dir"])
    previous = last_round_folder(run_dir)
    if previous is not None:
        args = TrainerArgs(continue_path=str(previous))
    else:
        args = TrainerArgs(restore_path=spec["start_checkpoint"])
    model = Vits.init_from_config(config)
    model.train_log = model.eval_log = skip_figures
    steps_total = config.epochs * math.ceil(spec["train_clips"] / spec["batch_size"])
    timing = {"last": time.monotonic()}

    def on_step(trainer: Any) -> None:
        now = time.monotonic()
        averages = trainer.keep_avg_train.avg_values
        step = trainer.total_steps_done
        emit("step", step=step, steps=steps_total,
             loss=averages.get("avg_loss_mel"), step_s=now - timing["last"])  # fmt: skip
        timing["last"] = now
        saved = step - 1
        if saved > 0 and saved % config.save_step == 0:
            path = trainer.output_path / f"checkpoint_{saved}.pth"
            emit("checkpoint", step=saved, path=str(path))

    saved_rng: list[Any] = []

    def before_eval(trainer: Any) -> None:
        # VITS evaluates random slices of each clip; the same slices every time make one
        # evaluation comparable with the next.
        saved_rng.append(torch.get_rng_state())
        torch.manual_seed(spec["seed"])

    def on_epoch_end(trainer: Any) -> None:
        if saved_rng:
            torch.set_rng_state(saved_rng.pop())
        if trainer.keep_avg_eval is not None:
            averages = trainer.keep_avg_eval.avg_values
            emit("eval", step=trainer.total_steps_done, loss_mel=averages.get("avg_loss_mel"))

    try:
        trainer = Trainer(
            args, config, str(run_dir), model=model, train_samples=train_samples,
            eval_samples=eval_samples, parse_command_line_args=False,
            callbacks={"on_train_step_end": on_step, "on_train_epoch_end": before_eval,
                       "on_epoch_end": on_epoch_end},
        )  # fmt: skip
    except (RuntimeError, KeyError, ValueError) as exc:
        refuse(f"The training could not start from its checkpoint: {exc}"[:500])
    emit("start", step=trainer.total_steps_done, steps=steps_total,
         device="cuda" if cuda else "cpu", resumed=previous is not None)  # fmt: skip
    trainer.fit()
    best = trainer.output_path / "best_model.pth"
    if not best.exists():
        best = max(trainer.output_path.glob("checkpoint_*.pth"), key=os.path.getmtime)
    emit("done", step=trainer.total_steps_done, best=str(best),
         config=str(trainer.output_path / "config.json"))  # fmt: skip


def refuse(message: str) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps({"event": "error", "error": message}) + "\n")
    sys.stdout.flush()
    sys.exit(REFUSED)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spec = json.loads(Path(sys.argv[1]).read_text())
    train(spec)


if __name__ == "__main__":
    main()
