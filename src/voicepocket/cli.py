"""The ``voicepocket`` command: say, voices list|add|rm, bench.

Every command reads the same ``VOICEPOCKET_*`` settings as the service and drives the
same engine, acting as the local operator (who sees every voice).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from voicepocket import audio
from voicepocket.chunks import AudioChunk, SynthesisParams
from voicepocket.engine import Engine
from voicepocket.errors import VoicePocketError
from voicepocket.settings import Settings

app = typer.Typer(help="VoicePocket: text to speech in your own voices.", no_args_is_help=True)
voices_app = typer.Typer(help="Manage registered voices.", no_args_is_help=True)
app.add_typer(voices_app, name="voices")
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
bases_app = typer.Typer(help="Manage training bases (what users' voices are fine-tuned from).",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(bases_app, name="bases")


def _fail(error: VoicePocketError) -> typer.Exit:
    typer.secho(f"error: {error.message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


@contextmanager
def _operator() -> Iterator[Engine]:
    """The operator's engine, started (nothing pre-warmed) and always closed; a
    ``VoicePocketError`` from it or from the block becomes the CLI's error exit."""
    try:
        engine = Engine(Settings())
        try:
            engine.start(prewarm=False)
            yield engine
        finally:
            engine.close()
    except VoicePocketError as error:
        raise _fail(error) from error


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (VOICEPOCKET_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (VOICEPOCKET_PORT).")] = None,
    cluster: Annotated[
        str | None,
        typer.Option(help="Run on Ray Serve: 'auto' (the local Ray cluster, or a new one), "
                     "'local' (always a new one) or a Ray address. Needs voicepocket[cluster]."),
    ] = None,
) -> None:
    """Run the HTTP service (OpenAI-compatible /v1/audio/speech and the rest)."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if cluster is not None:
        from voicepocket.cluster.app import serve_cluster
        from voicepocket.logs import configure_logging

        configure_logging()
        serve_cluster(settings, address=cluster)
        return
    from voicepocket.api.server import serve as run_server

    run_server(settings)


@app.command()
def say(
    text: Annotated[str | None, typer.Argument(help="Text to speak (or use --file).")] = None,
    voice: Annotated[str, typer.Option("--voice", "-v", help="owner/slug or slug.")] = "joe",
    output: Annotated[
        str, typer.Option("--output", "-o", help="Output file; '-' writes to stdout.")
    ] = "speech.wav",
    format: Annotated[
        str | None,
        typer.Option("--format", help="wav, mp3, opus, flac or pcm; default: from -o."),
    ] = None,
    speed: Annotated[float, typer.Option(min=0.25, max=4.0, help="Speaking rate.")] = 1.0,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the text from this file.")
    ] = None,
) -> None:
    """Speak TEXT in a voice and write the audio to a file or stdout."""
    if file is not None:
        text = file.read_text(encoding="utf-8")
    if not text:
        raise typer.BadParameter("give TEXT or --file")
    try:
        fmt = audio.check_format(format or audio.format_from_path(output))
    except VoicePocketError as error:
        raise _fail(error) from error
    with _operator() as engine:
        started = time.perf_counter()
        with engine.speak(voice, text, params=SynthesisParams(speed=speed)) as speech:
            chunks = _Timeline(speech)
            if output == "-" or len(speech.chunks) < 2:
                size = _write(chunks, fmt, output)
            else:
                with _progress_bar() as bar:
                    task = bar.add_task("Synthesizing", total=len(speech.chunks))
                    size = _write(_advancing(chunks, bar, task), fmt, output)
        elapsed = time.perf_counter() - started
    target = "stdout" if output == "-" else output
    typer.echo(
        f"{speech.record.ref}: {chunks.audio_s:.2f} s of audio in {elapsed:.2f} s "
        f"-> {target} ({fmt}, {size} bytes)",
        err=True,
    )


def _progress_bar() -> Progress:
    """Chunks done of total, on stderr (stdout may be the audio)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _advancing(
    chunks: Iterable[AudioChunk], bar: Progress, task: TaskID
) -> Iterator[AudioChunk]:
    for chunk in chunks:
        bar.advance(task)
        yield chunk


class _Timeline:
    """Passes chunks through, adding up their duration."""

    def __init__(self, chunks: Iterable[AudioChunk]) -> None:
        self._chunks = chunks
        self.audio_s = 0.0

    def __iter__(self) -> Iterator[AudioChunk]:
        for chunk in self._chunks:
            self.audio_s += chunk.duration_s
            yield chunk


def _write(chunks: Iterable[AudioChunk], fmt: str, output: str) -> int:
    """Stream to stdout as audio is made; a file gets exact headers and appears whole."""
    if output == "-":
        written = 0
        for block in audio.encode_stream(chunks, fmt):
            sys.stdout.buffer.write(block)
            written += len(block)
        sys.stdout.buffer.flush()
        return written
    data = audio.encode_all(chunks, fmt)
    partial = Path(f"{output}.partial")
    partial.write_bytes(data)
    partial.replace(output)
    return len(data)


@voices_app.command("list")
def voices_list() -> None:
    """List every registered voice."""
    with _operator() as engine:
        records = engine.registry.voices.list_voices(caller=None)
    typer.echo(f"{'VOICE':<32} {'KIND':<7} {'PUBLIC':<6} {'RATE':>6} {'RESIDENT':>9}  SHA256")
    for r in records:
        typer.echo(
            f"{r.ref:<32} {r.kind:<7} {'yes' if r.public else 'no':<6} {r.sample_rate:>6} "
            f"{r.cost_bytes / 1e6:>7.0f}MB  {r.model_sha256[:12]}"
        )


@voices_app.command("add")
def voices_add(
    model: Annotated[Path, typer.Argument(help="The voice's .onnx file (--coqui: model.pth).")],
    owner: Annotated[str, typer.Option(help="Owner name.")],
    coqui_config: Annotated[
        Path | None,
        typer.Argument(help="With --coqui: its config.json (default: beside the model)."),
    ] = None,
    slug: Annotated[str | None, typer.Option(help="Voice name; default: from the file.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="Its config; default: <model>.json beside it.")
    ] = None,
    public: Annotated[bool, typer.Option(help="Let every user speak with it.")] = False,
    replace: Annotated[bool, typer.Option(help="Replace an existing voice's files.")] = False,
    coqui: Annotated[
        bool, typer.Option("--coqui", help="A coqui-tts VITS checkpoint, compiled to ONNX.")
    ] = False,
) -> None:
    """Register a Piper voice, or with --coqui a coqui-tts checkpoint (model.pth +
    config.json); validated, probed, stored in the model repository."""
    if coqui:
        config = config or coqui_config or model.with_name("config.json")
    config = config or model.with_name(model.name + ".json")
    slug = slug or _slug_from(model)
    with _operator() as engine:
        record = engine.add_voice(
            owner=owner, slug=slug, model_file=model, config_file=config,
            public=public, replace=replace, prewarm=False, kind="coqui" if coqui else "piper",
        )  # fmt: skip
    typer.echo(
        f"registered {record.ref} ({record.cost_bytes / 1e6:.0f} MB resident, "
        f"sha256 {record.model_sha256[:12]})"
    )


def _slug_from(model: Path) -> str:
    stem = model.name.removesuffix(".onnx").removesuffix(".pth").lower()
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in stem)[:64].strip("-_")


@voices_app.command("rm")
def voices_rm(voice: Annotated[str, typer.Argument(help="owner/slug")]) -> None:
    """Delete a voice: its registry row, its files and its place in the pool."""
    with _operator() as engine:
        record = engine.delete_voice(voice, caller=None)
    typer.echo(f"deleted {record.ref}")


@keys_app.command("create")
def keys_create(owner: Annotated[str, typer.Option(help="Owner the key acts as.")]) -> None:
    """Create an API key for OWNER and print it (it is stored hashed: shown only now)."""
    with _operator() as engine:
        _, key = engine.registry.keys.create(owner)
    typer.echo(key)


@keys_app.command("list")
def keys_list(owner: Annotated[str | None, typer.Option(help="Only this owner's.")] = None) -> None:
    """List API keys (their prefixes, never the keys)."""
    with _operator() as engine:
        keys = engine.registry.keys.list(owner)
    typer.echo(f"{'ID':<32}  {'PREFIX':<10}  {'OWNER':<16}  {'CREATED':<19}  STATE")
    for key in keys:
        state = "revoked" if key.revoked_at else "live"
        created = key.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{key.id:<32}  {key.prefix:<10}  {key.owner:<16}  {created}  {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id or prefix.")]) -> None:
    """Revoke an API key; it stops working at once."""
    with _operator() as engine:
        key = engine.registry.keys.revoke(key_id)
    typer.echo(f"revoked {key.prefix}… of {key.owner}")


@bases_app.command("add")
def bases_add(
    checkpoint: Annotated[Path, typer.Argument(help="A coqui-tts VITS model.pth (trainer's).")],
    config: Annotated[Path, typer.Argument(help="Its config.json.")],
    name: Annotated[str, typer.Option(help="The base's name (VOICEPOCKET_TRAIN_BASES).")],
    language: Annotated[str, typer.Option(help="en or ko.")],
) -> None:
    """Validate (compile to ONNX in the coqui environment) and store a training base."""
    from voicepocket.training.bases import add_base

    with _operator() as engine:
        base = add_base(
            engine.registry, name=name, language=language, checkpoint=checkpoint.resolve(),
            config=config.resolve(), coqui_python=engine.settings.coqui_python,
            work_dir=engine.settings.home / "tmp",
        )  # fmt: skip
    typer.echo(f"added base {base.name} ({base.language}, {base.sample_rate} Hz)")


@bases_app.command("list")
def bases_list() -> None:
    """The training bases on this server."""
    with _operator() as engine:
        bases = engine.registry.training.bases()
    typer.echo(f"{'NAME':<24} {'LANG':<5} {'RATE':>6}  CHECKPOINT")
    for base in bases:
        typer.echo(f"{base.name:<24} {base.language:<5} {base.sample_rate:>6}  "
                   f"{base.checkpoint_sha256[:16]}")  # fmt: skip


@app.command("train-worker")
def train_worker() -> None:
    """Run queued trainings, one at a time, until interrupted (beside `serve`, or on a
    machine with a GPU)."""
    from voicepocket.training.worker import TrainingWorker

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with _operator() as engine:
        worker = TrainingWorker(engine, prewarm=False)
        worker.start()
        typer.echo(f"training worker {worker.name} started; Ctrl-C stops it")
        stopping.wait()
        worker.stop()  # a running training goes back to the queue, resumed later


@app.command()
def gc(
    days: Annotated[
        float | None,
        typer.Option(help="Days of audio to keep (default: VOICEPOCKET_AUDIO_RETENTION_DAYS)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be deleted.")] = False,
) -> None:
    """Delete stored audio older than the retention period, with its synthesis records,
    and unfinished writes (a killed writer's leftovers) in the audio and model stores."""
    settings = Settings()
    days = settings.audio_retention_days if days is None else days
    with _operator() as engine:
        now = datetime.now(UTC)
        aborted = 0 if dry_run else _abort_unfinished_writes(engine, now)
        if days <= 0:
            typer.echo("audio retention is off (VOICEPOCKET_AUDIO_RETENTION_DAYS=0): no audio "
                       f"deleted; unfinished uploads aborted: {aborted}")  # fmt: skip
            return
        report = engine.archive.expire(older_than=timedelta(days=days), now=now, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {len(report.deleted)} audio objects older than {days:g} days "
        f"(kept {report.kept}; unfinished uploads aborted: {aborted})"
    )


UNFINISHED_WRITE_AGE = timedelta(days=1)
"""An unfinished write this old is a killed writer's leftover: no upload takes a day."""


def _abort_unfinished_writes(engine: Engine, now: datetime) -> int:
    stores = (engine.audio.objects, engine.registry.models.objects)
    return sum(s.abort_pending_writes(older_than=UNFINISHED_WRITE_AGE, now=now) for s in stores)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    runs: Annotated[
        int | None, typer.Option(help="Timed runs per row (default: the suite's).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Our intra-op threads (default: all cores, as Piper).")
    ] = None,
    suite: Annotated[
        str,
        typer.Option(help="bench/<suite>.py: core, api, jobs, seed, cluster, train."),
    ] = "core",
) -> None:
    """Benchmark the engine against a Piper user's way (needs a source checkout: bench/).

    Runs ``python -m bench.<suite>`` in the checkout, as one would by hand; options it
    does not know go to the suite (e.g. ``--suite cluster --requests 100``)."""
    if not suite.isidentifier():
        raise typer.BadParameter(f"no bench suite {suite!r}")
    root = Path(__file__).resolve().parents[2]
    script = root / "bench" / f"{suite}.py"
    if not script.exists():
        raise typer.BadParameter(f"{script} not found: run from a source checkout")
    command = [sys.executable, "-m", f"bench.{suite}"]
    if runs is not None:
        command += ["--runs", str(runs)]
    if threads is not None:
        command += ["--threads", str(threads)]
    command += ctx.args
    # The suites drive real servers with the tests' helpers, on pytest's own pythonpath.
    paths = [str(root / "tests"), str(root / "tests" / "api"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    returncode = subprocess.run(command, cwd=root, env=env, check=False).returncode
    if returncode != 0:
        raise typer.Exit(code=returncode)


if __name__ == "__main__":
    app()
