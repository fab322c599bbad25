"""The feedback app in a real browser (Debian's chromium + chromium-driver through selenium).

Skipped where chromium or chromedriver is missing (`.ci/run` installs them). Screenshots are saved in the test's
temp dir (``review-1280x900.png``, ``variants-1280x900.png``, ..., ``injection-review.png``,
``injection-variants.png``); with
``FADE_SCREENSHOTS=DIR`` set they are copied there too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import unique_repo
from test_space import XSS, hostile_run, review_run, served_app  # noqa: F401 - fixtures
from test_space_variants import publish_variant, write_variant

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
WAIT = 40
SIZES = ((1280, 900), (390, 844))  # a laptop and a phone
TABS = ("Review", "My verdicts", "All modes", "Mitigated variants")

# Every visible table, gallery and image, and the page itself: content no wider than its box.
OVERFLOW = """
const bad = [];
const visible = (el) => el.offsetParent !== null || el === document.documentElement;
const check = (el, what) => {
  if (visible(el) && el.scrollWidth > el.clientWidth) bad.push(`${what}: ${el.scrollWidth} > ${el.clientWidth}`);
};
const boxes = '.virtual-table-viewport, .table-wrap, table, .grid-wrap, .grid-container, .gallery-container, ' +
  '.image-container, .image-frame';
for (const el of document.querySelectorAll(boxes)) check(el, `${el.closest('[id]')?.id} ${el.className}`);
for (const el of document.querySelectorAll('.block')) {
  if (el.querySelector('table, img, .grid-wrap')) check(el, `block ${el.id}`);
}
for (const img of document.querySelectorAll('img')) {
  const block = img.closest('.block');
  if (!visible(img) || !block) continue;
  const [r, b] = [img.getBoundingClientRect(), block.getBoundingClientRect()];
  if (r.left < b.left - 1 || r.right > b.right + 1) bad.push(`image in ${block.id} leaves its block`);
}
check(document.documentElement, 'page');
return bad;
"""


@pytest.fixture
def browser(tmp_path):
    """A headless chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _size(driver, width: int, height: int) -> None:
    """Emulate a screen of ``width`` x ``height`` CSS pixels (a phone below 600)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _text(driver, selector: str) -> str:
    found = driver.find_elements("css selector", selector)
    return found[0].text if found else ""


def _wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(lambda d: condition(d), message)


def _keys(driver, *keys: str) -> None:
    """Type keys into the page (no element clicked or focused)."""
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for key in keys:
        chain.send_keys(key)
    chain.perform()


def _tab(driver, name: str) -> None:
    """Open a tab by its title (also from the overflow menu a phone shows)."""
    driver.execute_script(
        "const b = [...document.querySelectorAll('button')].filter(b => b.textContent.trim() === arguments[0]);"
        "b[b.length - 1].click();", name)


def _shoot(driver, path: Path) -> Path:
    driver.save_screenshot(str(path))
    folder = os.environ.get("FADE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(folder) / path.name)
    return path


def _rows(driver, table: str) -> list:
    return driver.find_elements("css selector", f"#{table} .virtual-row[role=row]")


def _layout_problems(browser, url: str, tmp_path: Path, prefix: str, total: int) -> dict:
    """Every tab at every size in ``SIZES``: what overflows (empty when nothing does); screenshots on the way."""
    problems = {}
    for width, height in SIZES:
        _size(browser, width, height)
        browser.get(url)
        _wait(browser, lambda d: _text(d, "#mode-card").startswith("Mode "), "the page did not load again")
        _wait(browser, lambda d: d.find_elements("css selector", "#heatmap img"), "no heatmap")
        for tab in TABS:
            _tab(browser, tab)
            if tab == "Mitigated variants":
                _wait(browser, lambda d: _rows(d, "variant-examples"), "the variant's examples did not show")
                if _has(browser, "#variant-gallery"):
                    _wait(browser, lambda d: d.find_elements("css selector", "#variant-gallery .thumbnail-item img"),
                          "the variant's pictures did not show")
                _wait(browser, lambda d: d.find_elements("css selector", "#variant-plot img"), "no before/after plot")
                _shoot(browser, tmp_path / f"{prefix}variants-{width}x{height}.png")
            elif tab == "All modes":
                _wait(browser, lambda d: len(_rows(d, "mode-table")) == total, "the mode table did not fill")
                _shoot(browser, tmp_path / f"{prefix}modes-{width}x{height}.png")
            elif tab == "Review":
                _shoot(browser, tmp_path / f"{prefix}review-{width}x{height}.png")
                below = "#examples-gallery" if _has(browser, "#examples-gallery") else "#examples-table"
                browser.execute_script(f"document.querySelector('{below}').scrollIntoView()")
                _shoot(browser, tmp_path / f"{prefix}review-examples-{width}x{height}.png")
            found = browser.execute_script(OVERFLOW)
            if found:
                problems[(width, tab)] = found
    return problems


def _has(driver, selector: str) -> bool:
    """Whether the page has an element matching ``selector``."""
    return bool(driver.find_elements("css selector", selector))


@pytest.fixture
def variant_repo(review_run, tmp_path):
    """A mitigated variant of the review run, published with card metadata naming the run."""
    run_dir, repo = review_run
    return publish_variant(write_variant(tmp_path / "variant", run_dir, repo), unique_repo("shapes-faded"))


def test_review_three_modes_by_keyboard_and_nothing_overflows(browser, review_run, variant_repo, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = review_run
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served_app(config) as (app, url):
        modes, total = app.view.mode_ids, len(app.view.mode_ids)
        assert variant_repo in [variant.name for variant in app.variants] and total >= 4
        _size(browser, *SIZES[0])
        browser.get(url)
        _wait(browser, lambda d: _text(d, "#mode-card").startswith(f"Mode 1 of {total}:"), "the first mode never showed")
        assert _text(browser, "#submitting-as") == "Submitting as local-user"
        assert _text(browser, "#progress") == f"0 of {total} modes reviewed by you"
        _wait(browser, lambda d: len(d.find_elements("css selector", "#examples-gallery .thumbnail-item")) > 0,
              "the examples gallery stayed empty")
        _wait(browser, lambda d: d.find_elements("css selector", "#heatmap img"), "no heatmap")
        _shoot(browser, tmp_path / "review-1280x900.png")

        _keys(browser, "3")  # the shortcuts act on the form: pick a verdict, then change it before submitting
        _wait(browser, lambda d: _css(d, '#verdict input[value="not_a_failure"]').is_selected(), "key 3 did nothing")
        for done, key in enumerate(("1", "2", "1"), start=1):
            _keys(browser, key, "\ue007")  # then Enter submits
            _wait(browser, lambda d: _text(d, "#progress") == f"{done} of {total} modes reviewed by you",
                  f"the progress line did not count verdict {done}")
            _wait(browser, lambda d: _text(d, "#mode-card").startswith(f"Mode {done + 1} of {total}:"),
                  f"no advance to the next mode after verdict {done}")
            _wait(browser, lambda d: not any(e.is_selected() for e in d.find_elements("css selector", "#verdict input")),
                  "the verdict was not reset")
        assert "Stored **fix**" not in _text(browser, "#status") and "Stored fix on failure mode #3" in _text(browser, "#status")
        app.writer.flush()
        records = feedback.load(feedback_repo).records
        assert [(r.target, r.verdict, r.user) for r in records] == [
            (modes[0], "fix", "local-user"), (modes[1], "acceptable", "local-user"), (modes[2], "fix", "local-user")]

        _tab(browser, "My verdicts")  # change the verdict on the second mode
        _wait(browser, lambda d: len(_rows(d, "my-verdicts")) == 3, "my verdicts did not list three")
        assert _text(browser, "#submitting-as-mine") == "Submitting as local-user"
        row = next(i for i, r in enumerate(_rows(browser, "my-verdicts")) if r.text.startswith(f"{modes[1]}\n")
                   or r.text.split()[0] == modes[1])
        _css(browser, f'#my-verdicts [data-testid="cell-{row}-0"]').click()
        _wait(browser, lambda d: _css(d, "#edit-target input").get_attribute("value").startswith(f"{modes[1]}:"),
              "picking a row did not choose that verdict")
        _css(browser, '#edit-verdict input[value="not_a_failure"]').click()
        _css(browser, "#change-verdict").click()
        _wait(browser, lambda d: _text(d, "#edit-status").startswith("Changed: not a failure"), "no change confirmed")
        app.writer.flush()
        resolved = {(r.target, r.verdict) for r in feedback.load(feedback_repo).resolved()}
        assert resolved == {(modes[0], "fix"), (modes[1], "not_a_failure"), (modes[2], "fix")}
        assert len(feedback.load(feedback_repo)) == 4

        _tab(browser, "All modes")  # a row of the table opens that mode for review
        _wait(browser, lambda d: len(_rows(d, "mode-table")) == total, "the mode table did not fill")
        assert "1 not a failure" in _rows(browser, "mode-table")[1].text
        _css(browser, '#mode-table [data-testid="cell-5-1"]').click()
        _wait(browser, lambda d: _text(d, "#mode-card").startswith(f"Mode 6 of {total}:"), "the row did not open")

        problems = _layout_problems(browser, url, tmp_path, "", total)
    assert not problems, problems
    assert (tmp_path / "review-1280x900.png").stat().st_size > 20_000
    assert (tmp_path / "variants-390x844.png").stat().st_size > 20_000


def test_html_in_outputs_and_notes_is_shown_as_text(browser, hostile_run, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from fade_hub.feedback.app import AppConfig

    run_dir, repo = hostile_run
    variant = str(write_variant(tmp_path / "hostile-variant", run_dir, repo, hostile=True))
    config = AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"), adapters=[variant], find_adapters=False)
    with served_app(config) as (app, url):
        _size(browser, *SIZES[0])
        browser.get(url)
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "examples-table")),
              "the hostile output never appeared as table text")
        browser.find_element(By.CSS_SELECTOR, '#examples-table [data-testid="cell-0-0"]').click()
        _wait(browser, lambda d: _css(d, "#model-output textarea").get_attribute("value") == XSS,
              "the output box did not show the raw text")
        assert "javascript:alert(3)" in _css(browser, "#perturbed-input textarea").get_attribute("value")
        _css(browser, "#note textarea").send_keys(f"{XSS} [x](javascript:alert(4))")
        _css(browser, '#verdict input[value="fix"]').click()
        _css(browser, "#submit").click()
        _wait(browser, lambda d: _text(d, "#status").startswith("Stored fix on example"), "the verdict was not stored")
        _shoot(browser, tmp_path / "injection-review.png")
        _tab(browser, "My verdicts")
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "my-verdicts")), "the note was not listed")
        _tab(browser, "Mitigated variants")
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "variant-examples")),
              "the variant's hostile output was not shown as text")
        browser.execute_script("document.querySelector('#variant-examples').scrollIntoView()")
        _shoot(browser, tmp_path / "injection-variants.png")
        assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
        assert browser.find_elements(By.XPATH, "//script[contains(., 'alert(2)')]") == []
        assert browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:"]') == []
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - raises when no alert ran
        problems = _layout_problems(browser, url, tmp_path, "text-", len(app.view.mode_ids))
    assert not problems, problems
    assert json.dumps(app.writer.read().records[0].note).count("onerror") == 1
