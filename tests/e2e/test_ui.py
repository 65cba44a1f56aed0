"""The try-it page (/ui) in a real browser: Debian's headless Chromium, driven by Selenium, with its fake
microphone playing a real recording of "yes" after 1.5 s of quiet. A file upload, a recording (longer than
the model's 1 s window: classified window by window) and a live stream each show "yes" at the top, through the
real gateway and tritonserver; a new result or error replaces the previous one whole; a typed model id is
used. ``UI_SCREENSHOT=path`` keeps a screenshot of the live view (the README's picture)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from browser import RESULTS, chromium, needs_chromium
from helpers import running_gateway
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from local_triton.tritonserver import LocalTriton

ROOT = Path(__file__).resolve().parents[2]
YES = sorted((ROOT / "tests" / "data" / "speech_commands_validation" / "yes").glob("*.flac"))[0]
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def gateway(default_served: tuple[LocalTriton, str]) -> str:
    return default_served[1]


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone plays, once: 1.5 s of quiet, a real "yes", 2.5 s of quiet. The quiet first
    second is what a page that classified only a recording's first window would show."""
    spoken, rate = soundfile.read(YES, dtype="float32")
    quiet = np.random.default_rng(0).normal(0, 1e-4, int(0.5 * rate)).astype(np.float32)
    path = tmp_path_factory.mktemp("mic") / "yes.wav"
    soundfile.write(path, np.concatenate([np.tile(quiet, 3), spoken, np.tile(quiet, 5)]), rate, subtype="PCM_16")
    return path


@pytest.fixture
def browser(microphone: Path, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "profile", microphone) as driver:
        yield driver


def _results(driver: webdriver.Chrome) -> tuple[str, list[str], list[str]]:
    """The results' title, the labels of the bars (best first) and the windows' timeline (oldest first)."""
    title, labels, timeline, _, _ = driver.execute_script(RESULTS)
    return title, labels, timeline


def _error(driver: webdriver.Chrome, title_starts: str, timeout: float = 30) -> tuple[str, list[str], list[str]]:
    """The error shown under a title, once shown: (error, bars, timeline), which must be all of the result."""

    def shown(d: webdriver.Chrome) -> tuple[str, list[str], list[str]] | bool:
        title, labels, timeline, error, _ = d.execute_script(RESULTS)
        return (error, labels, timeline) if title.startswith(title_starts) and error else False

    return WebDriverWait(driver, timeout).until(shown)


def _top_label(driver: webdriver.Chrome, title_starts: str, timeout: float = 30) -> str:
    def shown(d: webdriver.Chrome) -> str | bool:
        title, labels, _ = _results(d)
        return labels[0] if title.startswith(title_starts) and labels else False

    return WebDriverWait(driver, timeout).until(shown)


def _open(driver: webdriver.Chrome, gateway: str) -> None:
    driver.get(f"{gateway}/ui")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model-ids option"))
    assert driver.find_element(By.ID, "model").get_attribute("value") == "keyword-spotter"


def test_the_page_preselects_the_gateways_default_model(browser: webdriver.Chrome, triton: LocalTriton) -> None:
    """Among many served models, the one POST / uses (GATEWAY_DEFAULT_MODEL), not the alphabetically first."""
    with running_gateway(triton.grpc_url, default_model="hubert") as url:
        browser.get(f"{url}/ui")
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model-ids option"))
        options = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#model-ids option")]
        assert options[0] != "org/hubert-ks" and "org/hubert-ks" in options
        assert browser.find_element(By.ID, "model").get_attribute("value") == "org/hubert-ks"


def test_upload_a_file(browser: webdriver.Chrome, gateway: str) -> None:
    _open(browser, gateway)
    browser.find_element(By.ID, "file").send_keys(str(ROOT / "samples" / "yes.wav"))
    assert _top_label(browser, "yes.wav") == "yes"
    assert len(_results(browser)[1]) == 10  # twelve labels, the ten best shown as bars


def test_a_bad_file_shows_the_gateways_error_in_place_of_the_last_result(
    browser: webdriver.Chrome, gateway: str, tmp_path: Path
) -> None:
    _open(browser, gateway)
    browser.find_element(By.ID, "file").send_keys(str(ROOT / "samples" / "yes.wav"))
    assert _top_label(browser, "yes.wav") == "yes"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    browser.find_element(By.ID, "file").send_keys(str(junk))
    error, bars, timeline = _error(browser, "junk.wav")
    assert error.startswith("could not decode the audio (16 bytes)") and bars == [] and timeline == []


def test_a_typed_model_id_is_used(browser: webdriver.Chrome, gateway: str) -> None:
    """Any id can be typed (an on-demand Hub id is loaded by the gateway where GATEWAY_AUTOLOAD allows it);
    one the gateway does not serve gets its 404, naming the served ones."""
    _open(browser, gateway)
    model = browser.find_element(By.ID, "model")
    model.clear()
    model.send_keys("org/not-served")
    assert "org/not-served is not loaded" in browser.find_element(By.ID, "model-info").text
    browser.find_element(By.ID, "file").send_keys(str(ROOT / "samples" / "yes.wav"))
    error, bars, _ = _error(browser, "yes.wav")
    assert "'org/not-served' is not served" in error and "keyword-spotter" in error and bars == []


def test_a_recording_longer_than_the_window_is_classified_window_by_window(
    browser: webdriver.Chrome, gateway: str
) -> None:
    _open(browser, gateway)
    browser.find_element(By.CSS_SELECTOR, '[data-tab="record"]').click()
    browser.find_element(By.ID, "record").click()
    WebDriverWait(browser, 10).until(lambda d: "Recording" in d.find_element(By.ID, "record-status").text)
    time.sleep(3.5)  # the fake microphone says "yes" from 1.5 s to 2.5 s
    browser.find_element(By.ID, "record").click()
    assert _top_label(browser, "Recording: best window") == "yes"
    title, _, windows = _results(browser)
    assert len(windows) >= 5 and windows[0].endswith(" _silence_"), windows  # oldest first: the quiet start
    assert any(w.endswith(" yes") for w in windows) and title.endswith(" s"), (title, windows)


def test_live_mode_streams_the_microphone(browser: webdriver.Chrome, gateway: str) -> None:
    _open(browser, gateway)
    browser.find_element(By.CSS_SELECTOR, '[data-tab="live"]').click()
    browser.find_element(By.ID, "live").click()
    WebDriverWait(browser, 30).until(lambda d: any(w.endswith(" yes") for w in _results(d)[2]))
    if os.environ.get("UI_SCREENSHOT"):
        browser.save_screenshot(os.environ["UI_SCREENSHOT"])
    WebDriverWait(browser, 30).until(lambda d: len(_results(d)[2]) >= 6)
    windows = _results(browser)[2]
    starts = [float(w.split("s ")[0]) for w in windows]
    assert starts == sorted(starts) and windows[0].endswith(" _silence_"), windows  # oldest first
    browser.find_element(By.ID, "live").click()  # stop: the page sends the end, the server closes with 1000
    WebDriverWait(browser, 30).until(lambda d: "closed (1000)" in d.find_element(By.ID, "live-status").text)
    assert browser.find_element(By.ID, "error").text == ""


_CROSS_ORIGIN_PAGE = """<!doctype html><title>elsewhere</title><pre id="out">waiting</pre><script>
const gateway = new URLSearchParams(location.search).get("gateway");
(async () => {
  const audio = await (await fetch("yes.wav")).arrayBuffer();
  try {  // a JSON body and an Authorization-free request id header: both need the preflight
    const answer = await fetch(`${gateway}/models/keyword-spotter?top_k=1`, {
      method: "POST", body: audio, headers: { "X-Request-Id": "from-elsewhere" },
    });
    const predictions = await answer.json();
    document.getElementById("out").textContent =
      `${answer.status} ${predictions[0].label} ${answer.headers.get("X-Request-Id")} ` +
      answer.headers.get("x-compute-type");
  } catch (error) {
    document.getElementById("out").textContent = `blocked: ${error}`;
  }
})();
</script>"""


@contextlib.contextmanager
def _page_elsewhere(folder: Path) -> Iterator[str]:
    """A static page (and the sample it sends) on another origin: another port of this machine."""
    (folder / "index.html").write_text(_CROSS_ORIGIN_PAGE)
    shutil.copy(ROOT / "samples" / "yes.wav", folder / "yes.wav")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _page_says(driver: webdriver.Chrome) -> str:
    return WebDriverWait(driver, 30).until(lambda d: (text := d.find_element(By.ID, "out").text) != "waiting" and text)


def test_a_page_on_another_origin_calls_the_gateway_only_where_cors_allows_it(
    browser: webdriver.Chrome, default_served: tuple[LocalTriton, str], tmp_path: Path
) -> None:
    triton, plain_gateway = default_served
    with _page_elsewhere(tmp_path) as origin:
        browser.get(f"{origin}/index.html?gateway={plain_gateway}")
        assert _page_says(browser).startswith("blocked: TypeError")  # no GATEWAY_CORS_ORIGINS: the browser refuses
        with running_gateway(triton.grpc_url, cors_origins=origin) as gateway:
            browser.get(f"{origin}/index.html?gateway={gateway}")
            assert _page_says(browser) == "200 yes from-elsewhere cpu"  # the exposed headers readable too
