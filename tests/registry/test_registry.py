"""Registration validates, probes, stores and records voices; bad voices leave nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx_models
import pytest
from conftest import joe_config, make_settings

from voicepocket.engine import Engine
from voicepocket.errors import (
    Conflict,
    InvalidVoiceFiles,
    InvalidVoiceId,
    PayloadTooLarge,
    QuotaExceeded,
    VoiceExists,
    VoiceNotFound,
    VoiceTooLarge,
)
from voicepocket.registry.repository import sha256_of


@pytest.fixture
def fresh(tmp_path: Path) -> Engine:
    """An engine on an empty home, not started (no default voice)."""
    engine = Engine(make_settings(tmp_path / "fresh"))
    engine.registry.migrate()
    yield engine
    engine.close()


def write_voice(folder: Path, model, config: dict | None = None, *, raw_config: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    model_path = onnx_models.save(model, folder / "v.onnx")
    text = raw_config if raw_config is not None else json.dumps(config or joe_config())
    (folder / "v.onnx.json").write_text(text)
    return model_path, folder / "v.onnx.json"


def assert_nothing_registered(engine: Engine) -> None:
    assert engine.registry.voices.list_voices(caller=None) == []
    models = engine.registry.models.objects
    assert models.list() == []
    assert models.staging_keys() == []
    assert list((engine.settings.home / "tmp").glob("*")) == []


def test_the_home_folder_is_private(fresh: Engine) -> None:
    """It holds the demo key, the SQLite registry, models and stored audio."""
    assert fresh.settings.home.stat().st_mode & 0o777 == 0o700


def test_register_records_checksums_and_measured_cost(fresh: Engine, joe_files) -> None:
    model, config = joe_files
    record = fresh.add_voice(
        owner="alice", slug="joe2", model_file=model, config_file=config, prewarm=False
    )
    assert record.ref == "alice/joe2" and record.kind == "piper" and not record.public
    assert record.model_sha256 == sha256_of(model)
    assert record.config_sha256 == sha256_of(config)
    assert record.sample_rate == 22050
    assert 80e6 < record.cost_bytes < 400e6  # measured RSS, not the 63 MB file size
    stored = fresh.registry.voices.model_path(record)
    assert sha256_of(stored) == record.model_sha256
    assert fresh.registry.voices.resolve("alice/joe2", caller="alice") == record


def test_duplicate_slug_conflicts_and_replace_swaps_files(fresh: Engine, tmp_path: Path) -> None:
    first = write_voice(tmp_path / "one", onnx_models.piper_shaped_model())
    fresh.add_voice(
        owner="alice", slug="tiny", model_file=first[0], config_file=first[1], prewarm=False
    )
    with pytest.raises(VoiceExists):
        fresh.add_voice(
            owner="alice", slug="tiny", model_file=first[0], config_file=first[1], prewarm=False
        )
    config = joe_config() | {"inference": {"noise_scale": 0.5, "length_scale": 1, "noise_w": 0.8}}
    second = write_voice(tmp_path / "two", onnx_models.failing_at_run_model(), config)
    with pytest.raises(InvalidVoiceFiles):
        fresh.add_voice(
            owner="alice",
            slug="tiny",
            model_file=second[0],
            config_file=second[1],
            replace=True,
            prewarm=False,
        )
    old = fresh.registry.voices.resolve("alice/tiny", caller=None)
    assert fresh.registry.voices.model_path(old).exists()  # a failed replace keeps the old voice
    model = onnx_models.piper_shaped_model()
    model.graph.initializer[0].float_data[:] = []
    model.graph.initializer[0].raw_data = b"\x00\x00\x80\x3f"
    third = write_voice(tmp_path / "three", model)
    new = fresh.add_voice(
        owner="alice",
        slug="tiny",
        model_file=third[0],
        config_file=third[1],
        replace=True,
        prewarm=False,
    )
    assert new.id == old.id and new.model_sha256 != old.model_sha256
    assert not fresh.registry.voices.model_path(old).exists()
    assert fresh.registry.voices.model_path(new).exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "not a readable ONNX"),
        ("external_data", "external data"),
        ("external_data_in_function", "external data"),
        ("custom_operator", "non-standard operator"),
        ("loop", r"operators a Piper or VITS voice does not: \['Loop'\]"),
        ("length_scale_huge", "length_scale must be a number from 0.25 to 4.0"),
        ("noise_negative", "noise_scale must be"),
        ("fails_when_run", "could not be loaded and run"),
        ("bad_json", "not valid JSON"),
        ("not_piper_config", "not a Piper config"),
        ("sample_rate_low", "Sample rate"),
        ("sample_rate_huge", "Sample rate"),
        ("phoneme_type_needing_downloads", "not supported"),
        ("ids_beyond_num_symbols", "below num_symbols"),
    ],
)
def test_bad_voices_are_refused_and_leave_nothing(
    fresh: Engine, tmp_path: Path, joe_files, case: str, message: str
) -> None:
    folder = tmp_path / case
    config = joe_config()
    model = onnx_models.piper_shaped_model()
    raw_config = None
    if case == "truncated":
        data = joe_files[0].read_bytes()
        folder.mkdir()
        (folder / "v.onnx").write_bytes(data[: len(data) // 3])
        (folder / "v.onnx.json").write_text(json.dumps(config))
        files = (folder / "v.onnx", folder / "v.onnx.json")
    else:
        model = {
            "external_data": onnx_models.external_data_model,
            "external_data_in_function": onnx_models.external_data_in_function_model,
            "custom_operator": onnx_models.custom_operator_model,
            "fails_when_run": onnx_models.failing_at_run_model,
            "loop": onnx_models.looping_model,
        }.get(case, lambda: model)()
        if case == "bad_json":
            raw_config = '{"audio": {"sample_rate": 22050'
        elif case == "not_piper_config":
            raw_config = json.dumps({"hello": "world"})
        elif case == "sample_rate_low":
            config["audio"] = {"sample_rate": 100}
        elif case == "sample_rate_huge":
            config["audio"] = {"sample_rate": 10_000_000}
        elif case == "phoneme_type_needing_downloads":
            config["phoneme_type"] = "pinyin"
        elif case == "length_scale_huge":
            config["inference"] = {**config["inference"], "length_scale": 200}
        elif case == "noise_negative":
            config["inference"] = {**config["inference"], "noise_scale": -1}
        elif case == "ids_beyond_num_symbols":
            config["phoneme_id_map"] = {"a": [999]}
        files = write_voice(folder, model, config, raw_config=raw_config)
    with pytest.raises(InvalidVoiceFiles, match=message) as info:
        fresh.add_voice(
            owner="mallory", slug="bad", model_file=files[0], config_file=files[1], prewarm=False
        )
    assert info.value.status == 422
    assert_nothing_registered(fresh)


@pytest.mark.parametrize(
    ("owner", "slug"),
    [
        ("alice", "../etc"),
        ("alice", "a/b"),
        ("../alice", "x"),
        ("Alice", "x"),
        ("alice", ""),
        ("alice", ".hidden"),
        ("alice", "x" * 65),
        ("al ice", "x"),
        ("alice", "joe\x00"),
    ],
)
def test_path_like_ids_are_refused(fresh: Engine, joe_files, owner: str, slug: str) -> None:
    with pytest.raises(InvalidVoiceId):
        fresh.add_voice(
            owner=owner, slug=slug, model_file=joe_files[0], config_file=joe_files[1], prewarm=False
        )
    assert_nothing_registered(fresh)


@pytest.mark.parametrize("ref", ["../x", "a/b/c", "/etc/passwd", "UPPER", "", "a/"])
def test_path_like_voice_refs_are_refused(fresh: Engine, ref: str) -> None:
    with pytest.raises(InvalidVoiceId):
        fresh.registry.voices.resolve(ref, caller="alice")


def test_upload_over_the_size_limit_is_refused(tmp_path: Path, joe_files) -> None:
    engine = Engine(make_settings(tmp_path / "small", max_upload_bytes=1_000_000))
    engine.registry.migrate()
    with pytest.raises(PayloadTooLarge):
        engine.add_voice(
            owner="alice",
            slug="big",
            model_file=joe_files[0],
            config_file=joe_files[1],
            prewarm=False,
        )
    assert_nothing_registered(engine)
    engine.close()


def test_a_config_too_large_or_too_deep_is_refused(tmp_path: Path, joe_files) -> None:
    """Over its own limit a config is refused before it is parsed (413); one nested deeper
    than any parser goes is an invalid config (422), not a server error."""
    engine = Engine(make_settings(tmp_path / "small", max_config_bytes=64 * 1024))
    engine.registry.migrate()
    large = tmp_path / "large.json"
    large.write_text(json.dumps({**joe_config(), "padding": "x" * 100_000}))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 30_000 + "]" * 30_000)
    for config, error, status in ((large, PayloadTooLarge, 413), (deep, InvalidVoiceFiles, 422)):
        with pytest.raises(error) as info:
            engine.add_voice(owner="alice", slug="odd", model_file=joe_files[0],
                             config_file=config, prewarm=False)  # fmt: skip
        assert info.value.status == status and info.value.param == "config", info.value
    assert_nothing_registered(engine)
    engine.close()


def test_voice_costing_more_than_the_pool_is_refused(tmp_path: Path, joe_files) -> None:
    engine = Engine(make_settings(tmp_path / "tight", pool_bytes=50_000_000))
    engine.registry.migrate()
    with pytest.raises(VoiceTooLarge, match="pool budget"):
        engine.add_voice(
            owner="alice",
            slug="joe",
            model_file=joe_files[0],
            config_file=joe_files[1],
            prewarm=False,
        )
    assert_nothing_registered(engine)
    engine.close()


def test_tenancy_and_bare_slug_resolution(fresh: Engine, tmp_path: Path) -> None:
    files = write_voice(tmp_path / "v", onnx_models.piper_shaped_model())
    add = dict(model_file=files[0], config_file=files[1], prewarm=False)
    fresh.add_voice(owner="demo", slug="joe", public=True, **add)
    fresh.add_voice(owner="alice", slug="joe", **add)
    fresh.add_voice(owner="alice", slug="secret", **add)
    assert fresh.registry.voices.resolve("joe", caller="alice").ref == "alice/joe"
    assert fresh.registry.voices.resolve("joe", caller="bob").ref == "demo/joe"
    assert fresh.registry.voices.resolve("demo/joe", caller="bob").ref == "demo/joe"
    for ref in ("alice/secret", "secret", "alice/joe", "nobody/joe"):
        with pytest.raises(VoiceNotFound):
            fresh.registry.voices.resolve(ref, caller="bob")
    assert [v.ref for v in fresh.registry.voices.list_voices(caller="bob")] == ["demo/joe"]
    assert [v.ref for v in fresh.registry.voices.list_voices(caller="alice")] == [
        "alice/joe",
        "alice/secret",
        "demo/joe",
    ]
    voices = fresh.registry.voices
    voices.set_public(voices.resolve("alice/secret", caller=None), True)
    assert fresh.registry.voices.resolve("alice/secret", caller="bob").public
    with pytest.raises(VoiceNotFound):
        fresh.delete_voice("alice/secret", caller="bob")  # public is not theirs to delete


def test_a_bare_slug_cannot_be_taken_over(fresh: Engine, tmp_path: Path) -> None:
    """A bare slug: the caller's own voice, else the default voice if it is its slug, else
    the public voice of that slug created first, which a replace does not make newer."""
    files = write_voice(tmp_path / "v", onnx_models.piper_shaped_model())
    add = dict(model_file=files[0], config_file=files[1], prewarm=False, public=True)
    voices = fresh.registry.voices
    fresh.add_voice(owner="bob", slug="joe", **add)  # older than the default voice
    fresh.add_voice(owner="demo", slug="joe", **add)
    assert voices.resolve("joe", caller="alice").ref == "demo/joe"
    assert voices.resolve("joe", caller="bob").ref == "bob/joe"
    fresh.add_voice(owner="carol", slug="twin", **add)
    fresh.add_voice(owner="dave", slug="twin", **add)
    fresh.add_voice(owner="carol", slug="twin", replace=True, **add)  # the same files again
    assert voices.resolve("twin", caller="eve").ref == "carol/twin"
    default = voices.resolve("demo/joe", caller=None)
    for change in (
        lambda: fresh.add_voice(owner="demo", slug="joe", replace=True, **add),
        lambda: voices.set_public(default, False),
        lambda: fresh.delete_voice("demo/joe", caller="demo"),
    ):
        with pytest.raises(Conflict, match="default voice"):
            change()
    assert voices.resolve("joe", caller="alice").model_sha256 == default.model_sha256


def test_delete_removes_row_files_and_pool_entry(fresh: Engine, tmp_path: Path) -> None:
    files = write_voice(tmp_path / "v", onnx_models.piper_shaped_model())
    record = fresh.add_voice(owner="alice", slug="tiny", model_file=files[0], config_file=files[1])
    assert fresh.voices.is_resident(record.pool_key)  # pre-warmed at registration
    path = fresh.registry.voices.model_path(record)
    fresh.delete_voice("tiny", caller="alice")
    assert not fresh.voices.is_resident(record.pool_key)
    assert not path.exists()
    with pytest.raises(VoiceNotFound):
        fresh.registry.voices.resolve("alice/tiny", caller="alice")


def test_postgresql_registry(tmp_path: Path, postgres_url: str) -> None:
    engine = Engine(make_settings(tmp_path / "pg", database_url=postgres_url))
    engine.registry.migrate()
    engine.registry.migrate()  # idempotent
    files = write_voice(tmp_path / "v", onnx_models.piper_shaped_model())
    record = engine.add_voice(
        owner="alice",
        slug="tiny",
        model_file=files[0],
        config_file=files[1],
        public=True,
        prewarm=False,
    )
    assert engine.registry.voices.resolve("tiny", caller="bob") == record
    with pytest.raises(VoiceExists):
        engine.add_voice(
            owner="alice", slug="tiny", model_file=files[0], config_file=files[1], prewarm=False
        )
    engine.delete_voice("alice/tiny", caller="alice")
    assert engine.registry.voices.list_voices(caller=None) == []
    engine.close()


def test_a_job_whose_runner_keeps_dying_fails_after_its_attempts(fresh: Engine) -> None:
    """A job that takes its process down with it is run ``JOB_ATTEMPTS`` times, then
    ``failed``: no crash loop. A runner stopping cleanly costs no attempt."""
    jobs = fresh.registry.jobs
    job = jobs.create(owner="ivan", voice="joe", text="Crash me.", fmt="wav", speed=1.0)
    claimed = jobs.claim_next()
    assert claimed is not None and claimed.attempts == 1
    jobs.requeue(job.id)  # a clean stop (SIGTERM): not an attempt
    for attempt in (1, 2, 3):
        claimed = jobs.claim_next()
        assert claimed is not None and claimed.attempts == attempt
        jobs.requeue_stale(lease_s=-1, attempts=3)  # its runner died
    assert jobs.claim_next() is None
    failed = jobs.get(job.id, owner="ivan")
    assert failed.status.value == "failed"
    assert "run 3 times" in (failed.error or "")


def test_jobs_are_taken_fairly_across_owners(fresh: Engine) -> None:
    """FIFO would run all of alice's book before bob's sentence: an owner with a job
    running waits behind owners without one, and owners take turns."""
    jobs = fresh.registry.jobs

    def queue(owner: str, n: int) -> str:
        return jobs.create(owner=owner, voice="joe", text=f"Job {n}.", fmt="wav", speed=1.0).id

    alice = [queue("alice", n) for n in range(3)]
    bob = queue("bob", 0)
    first = jobs.claim_next()
    second = jobs.claim_next()
    assert first is not None and first.id == alice[0]
    assert second is not None and second.id == bob  # alice has one running already
    jobs.finish(second.id)
    jobs.finish(first.id)  # alice's book ran longer
    later_bob = queue("bob", 1)
    third = jobs.claim_next()
    assert third is not None and third.id == later_bob  # bob's ran less recently
    jobs.finish(third.id)
    assert [jobs.claim_next().id for _ in range(2)] == alice[1:]  # type: ignore[union-attr]


def test_quotas_count_what_an_owner_keeps(fresh: Engine) -> None:
    usage = fresh.registry.usage
    usage.quotas = dataclasses.replace(usage.quotas, jobs=2)
    for n in range(2):
        usage.check("judy", "jobs")
        fresh.registry.jobs.create(owner="judy", voice="joe", text=f"{n}.", fmt="wav", speed=1.0)
    with pytest.raises(QuotaExceeded, match="2 of 2 jobs queued or running"):
        usage.check("judy", "jobs")
    usage.check("karl", "jobs")  # another owner's count is their own
    assert usage.of("judy").jobs == 2 and usage.of("karl").jobs == 0
