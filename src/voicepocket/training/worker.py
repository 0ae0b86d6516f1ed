"""The training worker: takes queued trainings one at a time and sees each to its end.

A thread in ``voicepocket serve`` (``VOICEPOCKET_TRAIN_WORKER``), or a process of its own
(``voicepocket train-worker``). The database row is the truth: the worker claims a queued
training, renews its lease every few seconds while it runs, and a training whose worker
died is queued again by whichever worker looks next (``requeue_stale``) and resumed from
its last checkpoint. One round:

1. the dataset (coqui's LJSpeech layout) from the accepted samples, the starting
   checkpoint (the voice's last finished round, else its base), and — when resuming on a
   machine that lacks the run folder — the round's last checkpoint from the store;
2. ``voicepocket.training.coqui_train`` in the coqui environment's Python
   (``VOICEPOCKET_COQUI_PYTHON``), its events read line by line into the row (step,
   loss, ETA) and each checkpoint copied to the model store;
3. a process that dies is started again with ``continue_path`` (its step count goes on),
   up to ``VOICEPOCKET_TRAIN_MAX_CRASHES`` deaths; a refusal (the base does not load)
   fails at once;
4. the best checkpoint by eval loss is compiled to ONNX, probed and registered in place of
   the voice's model — the old version keeps speaking until then — made warm, kept as the
   next round's start, and only then is the training ``ready``.

A cancelled or deleted training is noticed at the next heartbeat: its process is killed
and its run files removed; nothing half-registered is left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from voicepocket.children import child_env, kill_group
from voicepocket.engine import Engine
from voicepocket.errors import TrainingFailed, VoicePocketError
from voicepocket.registry.repository import file_blocks
from voicepocket.registry.training import Training, TrainingState
from voicepocket.settings import Settings
from voicepocket.training.bases import CONFIG, base_checkpoint
from voicepocket.training.coqui_train import EVENT_PREFIX, REFUSED
from voicepocket.training.dataset import write_dataset
from voicepocket.training.files import VoiceFiles, download

_LOGGER = logging.getLogger(__name__)

HEARTBEAT_S = 3.0
"""How often a running training's lease is renewed (and cancellation looked for)."""

LEASE_S = 30.0
"""A training whose lease is this old has lost its worker and is resumed elsewhere."""

POLL_S = 1.0


@dataclass
class _Progress:
    """What the training process has reported, for the row."""

    step: int = 0
    steps: int = 0
    loss: float | None = None
    step_times: list[float] = field(default_factory=list)
    best: Path | None = None
    config: Path | None = None
    refusal: str | None = None

    def eta_s(self) -> float | None:
        recent = self.step_times[-20:]
        if not recent or not self.steps:
            return None
        return max(0.0, self.steps - self.step) * sum(recent) / len(recent)


class _Stopped(Exception):
    """The training is no longer this worker's (cancelled, deleted, or the worker stops)."""


class TrainingWorker:
    """Runs queued trainings, one at a time, until stopped."""

    def __init__(self, engine: Engine, *, prewarm: bool = True) -> None:
        self.engine = engine
        self.settings: Settings = engine.settings
        self.name = f"{os.uname().nodename[:40]}-{uuid.uuid4().hex[:8]}"
        self._prewarm = prewarm
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[str] | None = None
        self._work = self.settings.home / "training"

    # -- life ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="training-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop: a running training is put back in the queue (resumed later)."""
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        trainings = self.engine.registry.training
        while not self._stop.is_set():
            try:
                trainings.requeue_stale(lease_s=LEASE_S)
                claimed = trainings.claim_next(self.name)
            except Exception:  # a database hiccup must not end the worker
                _LOGGER.exception("Training worker could not poll the queue")
                claimed = None
            if claimed is None:
                self._stop.wait(POLL_S)
                continue
            try:
                self.train(claimed)
            except Exception:  # e.g. the voice was deleted the moment it was claimed
                _LOGGER.exception("Training worker could not run %s", claimed.voice_id)

    # -- one training ----------------------------------------------------------------

    def train(self, training: Training) -> None:
        """See one claimed training to its end (or hand it back when stopping)."""
        registry = self.engine.registry
        record = registry.voices.resolve_id(training.voice_id)
        files = VoiceFiles(registry.models.objects, record.owner, record.slug)
        work = self._work / training.voice_id
        beat = _Heartbeat(self, training.voice_id)
        try:
            beat.start()
            best, config = self._fit(training, files, work, beat)
            beat.update(state=TrainingState.COMPILING.value, eta_s=None,
                        message="Compiling the trained model.")  # fmt: skip
            self._register(record.owner, record.slug, best, config, files, training)
            if registry.training.finish(training.voice_id, self.name, state=TrainingState.READY):
                _LOGGER.info("Training of %s is ready", record.ref)
        except _Stopped:
            if self._stop.is_set():
                registry.training.release(training.voice_id, self.name)
                return  # resumed from its checkpoint by the next worker
        except VoicePocketError as exc:
            _LOGGER.warning("Training of %s failed: %s", record.ref, exc.message)
            registry.training.finish(training.voice_id, self.name, state=TrainingState.FAILED,
                                     message=exc.message)  # fmt: skip
        except Exception:
            _LOGGER.exception("Training of %s failed", record.ref)
            registry.training.finish(training.voice_id, self.name, state=TrainingState.FAILED,
                                     message="The training failed on the server.")  # fmt: skip
        finally:
            beat.stop()
        self._clean(training, files, work)

    def _fit(
        self, training: Training, files: VoiceFiles, work: Path, beat: _Heartbeat
    ) -> tuple[Path, Path]:
        """Run the training process until it finishes, resuming it after each death."""
        registry = self.engine.registry
        samples = registry.training.samples(training.voice_id)
        dataset = write_dataset(registry.models.objects, samples, work / "dataset")
        start, config = self._starting_point(training, files, work)
        run_dir = work / "runs" / str(training.run_key)
        self._fetch_checkpoint(files, training, run_dir)
        spec = {
            "start_checkpoint": str(start), "base_config": str(config),
            "dataset": str(dataset.folder), "run_dir": str(run_dir),
            "train_clips": dataset.train_clips, "eval_clips": dataset.eval_clips,
            "steps": training.steps or self._budget(sum(s.duration_s for s in samples)),
            "checkpoint_steps": self.settings.train_checkpoint_steps,
            "batch_size": self.settings.train_batch_size,
            "learning_rate": self.settings.train_learning_rate,
            "seed": self.settings.train_seed, "threads": self.settings.train_threads,
        }  # fmt: skip
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        while True:
            progress = self._run_process(spec_path, files, training, beat)
            if progress.best is not None and progress.config is not None:
                return progress.best, progress.config
            if progress.refusal is not None:
                raise TrainingFailed(progress.refusal)
            if self._stop.is_set() or beat.lost:
                raise _Stopped
            if not registry.training.crashed(
                training.voice_id, self.name, max_crashes=self.settings.train_max_crashes,
                message="The training process stopped unexpectedly",
            ):  # fmt: skip
                raise _Stopped
            _LOGGER.warning("Training process for %s died; resuming", training.voice_id)

    def _budget(self, speech_s: float) -> int:
        """Steps for ``speech_s`` seconds of accepted speech, within the cap."""
        budget = round(speech_s / 60 * self.settings.train_steps_per_minute)
        return max(1, min(self.settings.train_max_steps, budget))

    def _starting_point(
        self, training: Training, files: VoiceFiles, work: Path
    ) -> tuple[Path, Path]:
        """The voice's last finished round if it has one, else its base."""
        objects = self.engine.registry.models.objects
        if training.rounds > 0 and objects.exists(f"{files.trained}/model.pth"):
            folder = work / "start"
            download(objects, f"{files.trained}/model.pth", folder / "model.pth")
            download(objects, f"{files.trained}/{CONFIG}", folder / CONFIG)
            return folder / "model.pth", folder / CONFIG
        base = self.engine.registry.training.base(training.base)
        cache = self.settings.home / "cache" / "bases"
        return base_checkpoint(self.engine.registry, base, cache_dir=cache)

    def _fetch_checkpoint(self, files: VoiceFiles, training: Training, run_dir: Path) -> None:
        """A round resumed where its run folder is missing continues from the store's copy
        of its last checkpoint."""
        objects = self.engine.registry.models.objects
        key = files.run(str(training.run_key))
        if any(run_dir.glob("round-*/checkpoint_*.pth")):
            return
        if not objects.exists(f"{key}/state.json"):
            return
        step = json.loads(objects.read_bytes(f"{key}/state.json"))["step"]
        folder = run_dir / "round-resumed"
        download(objects, f"{key}/checkpoint.pth", folder / f"checkpoint_{step}.pth")
        download(objects, f"{key}/{CONFIG}", folder / CONFIG)

    def _run_process(
        self, spec: Path, files: VoiceFiles, training: Training, beat: _Heartbeat
    ) -> _Progress:
        command = [str(self.settings.coqui_python), "-m", "voicepocket.training.coqui_train",
                   str(spec)]  # fmt: skip
        progress = _Progress()
        log = (spec.parent / "train.log").open("a")
        try:
            self._process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=spec.parent,
                env=child_env(), start_new_session=True,
            )  # fmt: skip
            deadline = time.monotonic() + self.settings.train_timeout_s
            assert self._process.stdout is not None
            for line in self._lines(self._process.stdout, log):
                self._on_event(json.loads(line), progress, files, training, beat)
                if time.monotonic() > deadline:
                    self._kill()
                    raise TrainingFailed("The training took longer than the server allows.")
            self._process.wait()
            if self._process.returncode == REFUSED and progress.refusal is None:
                progress.refusal = "The training could not start."
        finally:
            self._process = None
            log.close()
        return progress

    @staticmethod
    def _lines(stdout: IO[str], log: IO[str]) -> Any:
        for line in stdout:
            if line.startswith(EVENT_PREFIX):
                yield line[len(EVENT_PREFIX):]
            else:
                log.write(line)

    def _on_event(
        self, event: dict[str, Any], progress: _Progress, files: VoiceFiles,
        training: Training, beat: _Heartbeat,
    ) -> None:  # fmt: skip
        kind = event["event"]
        if kind in ("start", "step"):
            progress.step, progress.steps = int(event["step"]), int(event["steps"])
            if event.get("loss") is not None:
                progress.loss = float(event["loss"])
            if event.get("step_s") is not None:
                progress.step_times.append(float(event["step_s"]))
            beat.update(step=progress.step, steps=progress.steps, loss=progress.loss,
                        eta_s=progress.eta_s(), message=None)  # fmt: skip
        elif kind == "eval":
            beat.record_eval(int(event["step"]), event.get("loss_mel"))
        elif kind == "checkpoint":
            self._store_checkpoint(files, training, Path(event["path"]), int(event["step"]))
        elif kind == "done":
            progress.best, progress.config = Path(event["best"]), Path(event["config"])
        elif kind == "error":
            progress.refusal = str(event["error"])

    def _store_checkpoint(
        self, files: VoiceFiles, training: Training, path: Path, step: int
    ) -> None:
        objects = self.engine.registry.models.objects
        key = files.run(str(training.run_key))
        objects.put(f"{key}/checkpoint.pth", file_blocks(path))
        objects.put(f"{key}/{CONFIG}", file_blocks(path.parent / CONFIG))
        objects.put_bytes(f"{key}/state.json", json.dumps({"step": step}).encode())

    def _register(
        self, owner: str, slug: str, best: Path, config: Path, files: VoiceFiles,
        training: Training,
    ) -> None:  # fmt: skip
        """Compile, probe and swap in the new model; keep its checkpoint for next time."""
        self.engine.add_voice(
            owner=owner, slug=slug, kind="coqui", model_file=best, config_file=config,
            replace=True, prewarm=self._prewarm,
        )  # fmt: skip
        objects = self.engine.registry.models.objects
        objects.put(f"{files.trained}/model.pth", file_blocks(best))
        objects.put(f"{files.trained}/{CONFIG}", file_blocks(config))

    def _clean(self, training: Training, files: VoiceFiles, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)
        try:
            self.engine.registry.models.objects.delete(files.run(str(training.run_key)))
        except VoicePocketError:
            _LOGGER.warning("Could not remove the run files of %s", training.voice_id)

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            kill_group(process)


class _Heartbeat:
    """Renews a running training's lease on a timer and with each progress report; kills
    the training process when the row says it is no longer this worker's."""

    def __init__(self, worker: TrainingWorker, voice_id: str) -> None:
        self._worker = worker
        self._voice_id = voice_id
        self._pending: dict[str, object] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="training-heartbeat", daemon=True)
        self.lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)

    def update(self, **progress: object) -> None:
        with self._lock:
            self._pending.update(progress)
        self._beat()

    def record_eval(self, step: int, loss_mel: float | None) -> None:
        if loss_mel is not None:
            _LOGGER.info("Training %s: eval loss_mel %.3f at step %d", self._voice_id,
                         loss_mel, step)  # fmt: skip
            self.update(eval_loss=float(loss_mel))

    def _run(self) -> None:
        while not self._done.wait(HEARTBEAT_S):
            self._beat()

    def _beat(self) -> None:
        with self._lock:
            progress, self._pending = self._pending, {}
        try:
            state = self._worker.engine.registry.training.heartbeat(
                self._voice_id, self._worker.name, **progress
            )
        except Exception:
            _LOGGER.exception("Training heartbeat failed")
            return
        if state is None or state not in (TrainingState.TRAINING, TrainingState.COMPILING):
            self.lost = True
            self._worker._kill()
