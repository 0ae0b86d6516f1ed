"""The "Create your voice" section in real headless Chromium against a real ``voicepocket
serve`` with a training base: the page records through Chromium's fake microphone, which
plays a WAV of the bundled joe voice reading the first English prompt, encodes it as WAV
in the browser and uploads it; the server's checks (VAD, SNR, Whisper tiny.en) accept it,
and refuse the same recording offered for the next sentence."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf
from playwright.sync_api import Browser, Page, expect, sync_playwright
from server import Server
from training_support import Joe, wav

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"]  # fmt: skip
PAD_S = 0.5
"""Silence before and after the sentence in the fake microphone's file."""


@pytest.fixture(scope="module")
def prompts(training_server: Server) -> dict[str, Any]:
    response = httpx.get(f"{training_server.url}/v1/voices/prompts", params={"language": "en"})
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.fixture(scope="module")
def microphone(
    tmp_path_factory: pytest.TempPathFactory, prompts: dict[str, Any], joe: Joe
) -> Path:
    """Joe reading the first English prompt: 22.05 kHz mono 16-bit PCM, 0.5 s of silence
    either side (what Chromium's fake capture device plays)."""
    first = prompts["prompts"][0]
    path = tmp_path_factory.mktemp("microphone") / "first-prompt.wav"
    path.write_bytes(wav(joe.read(first["text"], pad_s=PAD_S)))
    return path


@pytest.fixture(scope="module")
def browser(microphone: Path) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian chromium is installed by `make test`"
    fake_file = f"--use-file-for-fake-audio-capture={microphone}%noloop"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable,
                                              args=[*CHROMIUM_FLAGS, fake_file])  # fmt: skip
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, training_server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=training_server.url, permissions=["microphone"])
    opened = context.new_page()
    opened.on("console", lambda message: print(f"console.{message.type}: {message.text}"))
    opened.on("response", lambda r: print("HTTP", r.status, r.url) if r.status >= 400 else None)
    yield opened
    context.close()


# The meter's highest value over `ms` milliseconds, sampled every 20 ms in the page.
HIGHEST_LEVEL = """(ms) => new Promise((resolve) => {
  const meter = document.getElementById("level-meter");
  const until = performance.now() + ms;
  let highest = 0;
  const sample = () => {
    highest = Math.max(highest, meter.value);
    if (performance.now() < until) setTimeout(sample, 20); else resolve(highest);
  };
  sample();
})"""


def test_record_the_first_prompt_through_the_microphone(
    page: Page, training_server: Server, prompts: dict[str, Any], microphone: Path
) -> None:
    listed = prompts["prompts"]
    page.goto("/")
    page.get_by_label("Key", exact=True).fill(training_server.key("maker"))
    page.get_by_role("button", name="Save key").click()
    expect(page.locator("#key-state")).to_contain_text("Key accepted")

    page.locator("#create-slug").fill("my-voice")
    page.locator("#create-language").select_option("en")
    page.locator("#create-button").click()
    expect(page.locator("#create-steps")).to_be_visible()
    expect(page.locator("#create-state")).to_contain_text("maker/my-voice")
    expect(page.locator("#consent-text")).to_have_text(str(prompts["consent"]))
    expect(page.locator("#prompt-text")).to_have_text(listed[0]["text"])
    expect(page.locator("#dataset-seconds")).to_have_text("0.0")

    seconds = sf.info(str(microphone)).duration
    page.locator("#record-button").click()
    expect(page.locator("body[data-recording='prompt']")).to_have_count(1)
    highest = page.evaluate(HIGHEST_LEVEL, round((seconds + 0.5) * 1000))
    page.locator("#stop-button").click()

    result = page.locator("#sample-result:not([data-outcome=''])")
    expect(result).to_have_count(1, timeout=30_000)
    outcome = result.get_attribute("data-outcome")
    if outcome != "accepted":
        print(f"sample refused ({result.get_attribute('data-code')}): {result.inner_text()}")
    assert outcome == "accepted", result.inner_text()
    expect(result).to_contain_text("Accepted:")
    assert highest > 0, "the level meter never moved while recording"
    assert float(page.locator("#level-meter").get_attribute("data-max") or 0) > 0

    shown = float(page.locator("#dataset-seconds").inner_text())
    assert shown > 0
    voice = training_server.client("maker").get("/v1/voices/maker/my-voice").json()
    assert voice["dataset_duration_s"] == pytest.approx(shown, abs=0.05)
    assert 1.0 < shown < seconds
    expect(page.locator("#prompt-text")).to_have_text(listed[1]["text"])  # the next one
    expect(page.locator("#sample-count")).to_have_text("1")

    # The same recording again, for the next sentence: the recognizer hears another one.
    page.locator("#record-button").click()
    expect(page.locator("body[data-recording='prompt']")).to_have_count(1)
    page.wait_for_timeout(round((seconds + 0.5) * 1000))
    page.locator("#stop-button").click()
    expect(result).to_have_count(1, timeout=30_000)
    assert result.get_attribute("data-outcome") == "rejected", result.inner_text()
    assert result.get_attribute("data-code") == "text_mismatch", result.inner_text()
    expect(result).to_contain_text("please read the sentence as written")
    expect(page.locator("#record-again-button")).to_be_enabled()
    expect(page.locator("#prompt-text")).to_have_text(listed[1]["text"])  # still this one
    expect(page.locator("#sample-count")).to_have_text("1")

    page.locator("#train-button").click()  # no consent yet: the server says so
    expect(page.locator("#training-message")).to_contain_text("consent")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "create-voice.png"), full_page=True)
