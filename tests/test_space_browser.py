"""The feedback app in a real browser (Debian's chromium + chromium-driver through selenium).

Skipped where chromium or chromedriver is missing (`.ci/run` installs them). Screenshots are saved in the
test's temp dir (``feedback-page.png``, ``injection-page.png``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import unique_repo
from test_space import XSS, hostile_run, image_run, served  # noqa: F401 - fixtures

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
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1700")
WAIT = 30


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


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(lambda d: condition(d), message)


def _value(driver, selector: str) -> str:
    return _css(driver, selector).get_attribute("value") or ""


def _rows(driver, table: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f"#{table} .virtual-row[role=row]")


def _click_row(driver, table: str, index: int, column: int = 1) -> None:
    """Click a cell of row ``index`` of a gradio Dataframe."""
    _css(driver, f'#{table} [data-testid="cell-{index}-{column}"]').click()


def test_review_a_mode_and_submit_a_verdict(browser, image_run, tmp_path):
    from fade_hub import feedback
    from fade_hub.feedback.app import AppConfig

    run_dir, repo = image_run
    feedback_repo = unique_repo("feedback")
    config = AppConfig(failures=repo, feedback_repo=feedback_repo, feedback_dir=str(tmp_path / "fb"), push_every=60)
    with served(config) as (app, url):
        browser.get(url)
        _wait(browser, lambda d: len(_rows(d, "mode-table")) > 2 and len(_rows(d, "examples-table")) > 0,
              "the failure-mode and example tables never filled")
        # select the second-worst failure mode by clicking its row
        second_mode = app.view.mode_choices()[1][1]
        _click_row(browser, "mode-table", 1)
        _wait(browser, lambda d: _value(d, "#mode-select input").startswith("#2 "),
              "clicking a mode row did not select it")
        _wait(browser, lambda d: _value(d, "#target-select input").startswith("the whole failure mode #2"),
              "the feedback target did not follow the selected mode")
        first_example = app.view.examples(second_mode)["query_id"].iloc[0]
        _wait(browser, lambda d: _css(d, '#examples-table [data-testid="cell-0-0"]').text == f"q{first_example}",
              "the examples of the selected mode were not shown")
        # clicking a gallery image makes that example the target
        examples = [f"q{q}" for q in app.view.examples(second_mode)["query_id"]]
        thumbnails = "#examples-gallery .thumbnail-item"
        _wait(browser, lambda d: len(d.find_elements("css selector", thumbnails)) == len(examples),
              "the gallery did not show the mode's images")
        browser.find_elements("css selector", thumbnails)[-1].click()
        _wait(browser, lambda d: _value(d, "#target-select input").startswith(f"example {examples[-1]}:"),
              "clicking a gallery image did not make it the feedback target")
        # pick its first example in the table, give the right label, a verdict and a note
        _click_row(browser, "examples-table", 0)
        _wait(browser, lambda d: _value(d, "#target-select input").startswith(f"example q{first_example}:"),
              "clicking an example did not make it the feedback target")
        expected = str(app.view.example(f"q{first_example}")["expected"])
        _wait(browser, lambda d: _value(d, "#model-output textarea") != "", "the example's output was not shown")
        _css(browser, "#correction input").click()
        option = f'#correction [data-testid="dropdown-option"][aria-label="{expected}"]'
        _wait(browser, lambda d: d.find_elements("css selector", option), "the label list did not open")
        _css(browser, option).click()
        _css(browser, '#verdict input[value="fix"]').click()
        _css(browser, "#note textarea").send_keys("shapes must survive this")
        _css(browser, "#submit").click()
        _wait(browser, lambda d: "Stored 'fix'" in _value(d, "#status textarea"), "no stored-record status appeared")
        status = _value(browser, "#status textarea")
        browser.save_screenshot(str(tmp_path / "feedback-page.png"))
        app.writer.flush()
    assert f"example q{first_example}" in status and "local-user" in status
    records = feedback.load(feedback_repo).records
    assert len(records) == 1
    record = records[0]
    assert (record.target, record.target_type, record.verdict) == (f"q{first_example}", "example", "fix")
    assert (record.correction, record.note, record.user) == (expected, "shapes must survive this", "local-user")
    assert (tmp_path / "feedback-page.png").stat().st_size > 10_000


def test_model_output_with_html_is_shown_as_text(browser, hostile_run, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from fade_hub.feedback.app import AppConfig

    _, repo = hostile_run
    with served(AppConfig(failures=repo, feedback_dir=str(tmp_path / "fb"))) as (app, url):
        browser.get(url)
        _wait(browser, lambda d: XSS in "\n".join(r.text for r in _rows(d, "examples-table")),
              "the hostile output never appeared as table text")
        _click_row(browser, "examples-table", 0)
        _wait(browser, lambda d: _value(d, "#model-output textarea") == XSS, "the output box did not show the raw text")
        _wait(browser, lambda d: "javascript:alert(3)" in _value(d, "#perturbed-input textarea"),
              "the perturbed input was not shown verbatim")
        browser.save_screenshot(str(tmp_path / "injection-page.png"))
        assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
        assert browser.find_elements(By.XPATH, "//script[contains(., 'alert(2)')]") == []
        assert browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:"]') == []
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - raises when no alert ran
        assert Path(tmp_path / "injection-page.png").stat().st_size > 10_000
