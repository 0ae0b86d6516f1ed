"""Registering coqui checkpoints: bad input gets a clear error and leaves nothing behind;
a checkpoint carrying a pickle payload is refused without running it; the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import make_settings
from coqui_support import run_coqui
from server import start_server
from typer.testing import CliRunner

from voicepocket.children import ADDRESS_SPACE_LIMIT
from voicepocket.cli import app
from voicepocket.engine import Engine
from voicepocket.errors import EngineError, InvalidVoiceFiles, PayloadTooLarge


@pytest.fixture
def fresh(tmp_path: Path) -> Engine:
    """An engine on an empty home, not started (no default voice)."""
    engine = Engine(make_settings(tmp_path / "fresh", max_upload_bytes=50 * 1024**2))
    engine.registry.migrate()
    yield engine
    engine.close()


def assert_nothing_registered(engine: Engine) -> None:
    assert engine.registry.voices.list_voices(caller=None) == []
    assert engine.registry.models.objects.list() == []
    assert list((engine.settings.home / "tmp").glob("*")) == []


def register(engine: Engine, model: Path, config: Path) -> None:
    engine.add_voice(owner="mallory", slug="voice", kind="coqui", model_file=model,
                     config_file=config, prewarm=False)  # fmt: skip


def edited_config(source: Path, folder: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    raw = json.loads(source.read_text())
    edit(raw)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.json"
    target.write_text(json.dumps(raw))
    return target


def test_pickle_payload_is_refused_and_never_runs(
    tmp_path: Path, coqui_checkpoints, roomy: Engine
) -> None:
    engine = roomy
    model, config, marker = coqui_checkpoints["payload"]
    with pytest.raises(InvalidVoiceFiles, match="weights_only"):
        register(engine, model, config)
    assert not marker.exists()
    assert_nothing_registered(engine)
    # The payload is real: the seed's torch.load (weights_only=False) runs it.
    copy = tmp_path / "payload.pth"
    shutil.copyfile(model, copy)
    assert run_coqui("unsafe-load", str(copy)) == "loaded"
    assert marker.exists()


@pytest.fixture
def roomy(tmp_path: Path) -> Engine:
    """An engine whose upload limit lets the ~190 MB test checkpoints through."""
    engine = Engine(make_settings(tmp_path / "home"))
    engine.registry.migrate()
    yield engine
    engine.close()


def test_another_architectures_checkpoint_is_refused(roomy, coqui_checkpoints):
    model, config = coqui_checkpoints["other"]
    with pytest.raises(InvalidVoiceFiles, match="do not match its config"):
        register(roomy, model, config)
    assert_nothing_registered(roomy)


def test_config_not_matching_the_weights_is_refused(
    roomy, coqui_checkpoints, tmp_path: Path
) -> None:
    model, config = coqui_checkpoints["en"]

    def wider(raw: dict) -> None:
        raw["model_args"]["hidden_channels"] = 48

    with pytest.raises(InvalidVoiceFiles, match="do not match its config"):
        register(roomy, model, edited_config(config, tmp_path / "c", wider))
    assert_nothing_registered(roomy)


def test_bos_eos_without_such_tokens_is_refused(roomy, coqui_checkpoints, tmp_path) -> None:
    """coqui would feed the model ids past its vocabulary (VitsCharacters has no bos/eos)."""
    model, config = coqui_checkpoints["ko"]

    def with_bos_eos(raw: dict) -> None:
        raw["enable_eos_bos_chars"] = True

    with pytest.raises(InvalidVoiceFiles, match="bos/eos tokens"):
        register(roomy, model, edited_config(config, tmp_path / "c", with_bos_eos))
    assert_nothing_registered(roomy)


def test_truncated_checkpoint_is_refused(roomy, coqui_checkpoints, tmp_path):
    model, config = coqui_checkpoints["en"]
    truncated = tmp_path / "model.pth"
    truncated.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(InvalidVoiceFiles, match="not a readable PyTorch file"):
        register(roomy, truncated, config)
    assert_nothing_registered(roomy)


def test_oversized_upload_is_refused(fresh: Engine, coqui_checkpoints) -> None:
    model, config = coqui_checkpoints["en"]
    with pytest.raises(PayloadTooLarge):
        register(fresh, model, config)  # ~190 MB against a 50 MB limit
    assert_nothing_registered(fresh)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw.update(model="glow_tts"), "Only coqui-tts VITS"),
        (lambda raw: raw.update(use_phonemes=True, phonemizer="espeak"), "phonemizer 'espeak'"),
        (lambda raw: raw.update(use_phonemes=True, phonemizer=None), "not available"),
        (lambda raw: raw.update(text_cleaner="chinese_mandarin_cleaners"), "not supported"),
        (lambda raw: raw["model_args"].update(use_speaker_embedding=True), "Multi-speaker"),
        (lambda raw: raw["model_args"].update(speakers_file="/etc/passwd"), "another file"),
        (lambda raw: raw["characters"].update(characters_class="os.system"), "not supported"),
        (lambda raw: raw.update(audio=None), "no audio object"),
        (lambda raw: raw["model_args"].update(hidden_channels=100_000), "hidden_channels must"),
        (lambda raw: raw["model_args"].update(upsample_rates_decoder=[8] * 100), "upsample_rates"),
        (lambda raw: raw["audio"].update(fft_size=2**30), "audio.fft_size must"),
    ],
)
def test_configs_we_cannot_serve_are_refused_before_torch(
    fresh: Engine, coqui_checkpoints, tmp_path: Path, edit, message: str
) -> None:
    _, config = coqui_checkpoints["en"]
    small = tmp_path / "model.pth"
    small.write_bytes(b"never read")  # refused before the checkpoint is opened
    with pytest.raises(InvalidVoiceFiles, match=message):
        register(fresh, small, edited_config(config, tmp_path / "c", edit))
    assert_nothing_registered(fresh)


def test_the_compile_child_gets_no_secrets_a_memory_limit_and_only_its_folder(
    coqui_checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compile child (here a stand-in for a subverted one) sees none of the server's
    secrets, runs under the address-space limit, and the files it names outside its
    output folder are not taken."""
    monkeypatch.setenv("VOICEPOCKET_S3_SECRET_KEY", "s3-secret-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    report = tmp_path / "report"
    report.mkdir()
    child = tmp_path / "python"
    child.write_text(
        "#!/bin/sh\n"
        f"env > {report}/env\n"
        f"cat /proc/$$/limits > {report}/limits\n"
        """echo '{"onnx": "/etc/passwd", "manifest": "/etc/hostname"}'\n"""
    )
    child.chmod(0o755)
    engine = Engine(make_settings(tmp_path / "h", coqui_python=child))
    engine.registry.migrate()
    try:
        with pytest.raises(InvalidVoiceFiles, match="outside its folder"):
            register(engine, *coqui_checkpoints["en"])
        assert_nothing_registered(engine)
    finally:
        engine.close()
    env = (report / "env").read_text()
    assert "secret-value" not in env and "VOICEPOCKET_" not in env
    assert "PATH=" in env
    address_space = next(line for line in (report / "limits").read_text().splitlines()
                         if line.startswith("Max address space"))  # fmt: skip
    assert str(ADDRESS_SPACE_LIMIT) in address_space


def test_not_json_config_is_refused(fresh: Engine, tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(b"x")
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(InvalidVoiceFiles, match="not valid JSON"):
        register(fresh, tmp_path / "model.pth", tmp_path / "config.json")
    assert_nothing_registered(fresh)


def test_missing_coqui_environment_is_a_server_error(tmp_path: Path, coqui_checkpoints) -> None:
    engine = Engine(make_settings(tmp_path / "h", coqui_python=tmp_path / "no-python"))
    engine.registry.migrate()
    try:
        with pytest.raises(EngineError, match="make coqui"):
            register(engine, *coqui_checkpoints["en"])
        assert_nothing_registered(engine)
    finally:
        engine.close()


def test_cli_adds_a_coqui_voice(coqui_checkpoints, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOICEPOCKET_HOME", str(tmp_path / "cli-home"))
    model, config = coqui_checkpoints["ko"]
    runner = CliRunner()
    added = runner.invoke(
        app, ["voices", "add", "--coqui", str(model), str(config), "--owner", "minji"]
    )
    assert added.exit_code == 0, added.output
    assert "registered minji/model" in added.output
    listed = runner.invoke(app, ["voices", "list"])
    assert "minji/model" in listed.output and "coqui" in listed.output
    spoken = runner.invoke(
        app, ["say", "안녕하세요, 3시에 만나요.", "--voice", "minji/model",
              "-o", str(tmp_path / "hi.wav")],
    )  # fmt: skip
    assert spoken.exit_code == 0, spoken.output
    assert (tmp_path / "hi.wav").stat().st_size > 1000
    refused = runner.invoke(
        app, ["voices", "add", "--coqui", str(model), str(tmp_path / "missing.json"),
              "--owner", "minji", "--slug", "other"],
    )  # fmt: skip
    assert refused.exit_code == 2 and "error:" in refused.output


def test_http_upload_of_a_coqui_checkpoint(coqui_checkpoints, tmp_path: Path) -> None:
    """``POST /v1/voices`` with ``kind=coqui``: compiled, warm and speaking Korean at 201;
    an unknown kind (400) and a truncated checkpoint (422) are clear errors that leave
    nothing behind."""
    model, config = coqui_checkpoints["ko"]
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    server = start_server(tmp_path / "home")
    try:
        with server.client("minji") as client:

            def upload(model: Path, slug: str, kind: str = "coqui") -> httpx.Response:
                with model.open("rb") as m, config.open("rb") as c:
                    return client.post(
                        "/v1/voices",
                        files={"model": ("model.pth", m), "config": ("config.json", c)},
                        data={"slug": slug, "kind": kind},
                    )

            created = upload(model, "seoul")
            assert created.status_code == 201, created.text
            assert created.json()["id"] == "minji/seoul" and created.json()["kind"] == "coqui"
            speech = client.post("/v1/audio/speech", json={
                "input": "2023년 5월 3일, 안녕하세요.", "voice": "seoul",
                "response_format": "wav"})  # fmt: skip
            assert speech.status_code == 200 and speech.content[:4] == b"RIFF"
            assert len(speech.content) > 10_000

            refusals = [(upload(model, "odd", kind="tacotron"), 400, "kind"),
                        (upload(truncated, "broken"), 422, "model")]  # fmt: skip
            for response, status, param in refusals:
                assert response.status_code == status, response.text
                error = response.json()["error"]
                assert error["param"] == param and error["message"], error
            voices = [v["id"] for v in client.get("/v1/voices").json()["data"]]
            assert "minji/seoul" in voices and "minji/broken" not in voices
        assert list((tmp_path / "home" / "tmp").glob("*")) == []
        assert server.process.poll() is None
    finally:
        server.stop()
