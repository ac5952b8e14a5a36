"""report.html in a real browser: Debian's headless Chromium, driven by selenium.

The page of a small synthetic run (no training) must load without a console error (a blocked
script or image, a JavaScript error), every ``<img>`` must decode, each dataset must have its
headline chart, and the tables must sort when a header is clicked. A screenshot of the page is
written to the test's temporary folder. ``scripts/setup.sh`` installs ``chromium`` and
``chromium-driver`` (CI runs it); the tests are skipped, with the reason, only where they or
selenium are missing.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from latentbridge.experiments.report import COLUMNS, write_report

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - selenium is in the `test` extra
    webdriver = None

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(webdriver is None, reason="selenium is not installed (the `test` extra)"),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed (scripts/setup.sh)",
    ),
]

ENCODERS = ["enc-a", "enc-b", "wide"]  # "wide" has another dimension: absolute n/a with it
# name: (classes, stitched accuracy base per variant); first appearance order A, B, C
DATASETS: dict[str, tuple[int, dict[str, float | None]]] = {
    'A <&"data">': (4, {"absolute": 0.30, "cosine": 0.70, "l1": 0.55, "product:mlp_sum": 0.75}),
    "B": (10, {"absolute": None, "cosine": 0.90, "l1": 0.60, "product:mlp_sum": 0.80}),
    "C": (5, {"absolute": 0.60, "cosine": 0.50, "l1": 0.40, "product:mlp_sum": 0.45}),
}
BEST = {'A <&"data">': "product:mlp_sum", "B": "cosine", "C": "absolute"}
SEEDS = [0, 1]


def _value(base: float | None, a: str, b: str, seed: int, variant: str) -> float | None:
    if a == b:
        return 0.95 - 0.01 * seed
    if base is None or (variant == "absolute" and "wide" in (a, b)):
        return None
    return round(base + 0.01 * ENCODERS.index(a) - 0.01 * ENCODERS.index(b) + 0.002 * seed, 6)


def _rows() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for dataset, (_, bases) in DATASETS.items():
        for variant, a, b, seed in product(bases, ENCODERS, ENCODERS, SEEDS):
            value = _value(bases[variant], a, b, seed, variant)
            for metric, shift in (("accuracy", 0.0), ("macro_f1", -0.02)):
                v = "" if value is None else round(value + shift, 6)
                rows.append([dataset, a, b, variant, seed, metric, v])
            if a != b:  # the label-free anchor consistency of the stitched pairs
                consistency = 0.4 + 0.2 * ENCODERS.index(b) + 0.01 * seed
                rows.append([dataset, a, b, variant, seed, "anchor_consistency", consistency])
    return rows


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser-run")
    with (folder / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(_rows())
    datasets = [{"name": d, "synthetic": {"num_classes": c}} for d, (c, _) in DATASETS.items()]
    config = {"name": "browser", "task": "classification", "datasets": datasets, "seeds": SEEDS}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return write_report(folder)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, page: Path) -> None:
    driver.get(page.as_uri())
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"
        )
    )


def _console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_the_report_renders_in_chromium(browser: Any, report_file: Path, tmp_path: Path) -> None:
    _console_errors(browser)  # drop what an earlier page logged
    _open(browser, report_file)
    assert _console_errors(browser) == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.naturalWidth, i.naturalHeight])"
    )
    # per dataset: a headline, a scatter per real metric, a heatmap grid per real metric
    assert len(images) == len(DATASETS) * (1 + 2 + 2)
    assert all(width > 0 and height > 0 for _, width, height in images), images
    headlines = browser.execute_script(
        "return Array.from(document.querySelectorAll('figure.headline')).map(f => "
        "[f.getAttribute('data-dataset'), f.getAttribute('data-best'), "
        "f.querySelector('img').naturalWidth, f.getBoundingClientRect().top])"
    )
    assert [(d, best) for d, best, _, _ in headlines] == list(BEST.items())
    assert all(width > 0 for _, _, width, _ in headlines)
    first_table = browser.find_element(By.CSS_SELECTOR, "table").rect["y"]
    assert all(top < first_table for *_, top in headlines)  # the headlines open the page
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.scatter")) == 2 * len(DATASETS)
    config = browser.find_element(By.CSS_SELECTOR, "details")
    assert config.get_attribute("open") is None
    assert not browser.find_element(By.CSS_SELECTOR, "details pre").is_displayed()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 50, 12000))
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    assert _console_errors(browser) == []


def _column(driver: Any, table: Any, index: int) -> list[str]:
    script = "return Array.from(arguments[0].tBodies[0].rows).map(r => r.cells[arguments[1]]"
    return driver.execute_script(script + ".textContent)", table, index)


def _number(text: str) -> float:
    return float(text.split(" ")[0].rstrip("†"))


def test_tables_sort_by_a_clicked_header(browser: Any, report_file: Path) -> None:
    _open(browser, report_file)
    table = browser.find_elements(By.CSS_SELECTOR, "table.sortable")[1]  # stitched accuracy
    headers = [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers[:3] == ["Dataset", "Absolute", "Cosine"]
    names = list(DATASETS)
    assert _column(browser, table, 0) == names  # first appearance
    cosine = table.find_elements(By.CSS_SELECTOR, "thead th")[2]
    cosine.click()
    values = [_number(t) for t in _column(browser, table, 2)]
    assert values == sorted(values) and _column(browser, table, 0) == ["C", names[0], "B"]
    assert cosine.get_attribute("aria-sort") == "ascending"
    cosine.click()
    assert _column(browser, table, 0) == ["B", names[0], "C"]
    assert cosine.get_attribute("aria-sort") == "descending"
    # n/a (B's absolute) stays last in both directions; the keyboard sorts too
    absolute = table.find_elements(By.CSS_SELECTOR, "thead th")[1]
    absolute.send_keys(Keys.ENTER)
    assert _column(browser, table, 0) == [names[0], "C", "B"]
    assert cosine.get_attribute("aria-sort") is None
    absolute.click()
    assert _column(browser, table, 0) == ["C", names[0], "B"]
    assert _column(browser, table, 1)[-1] == "n/a"
    # names sort as text
    table.find_elements(By.CSS_SELECTOR, "thead th")[0].click()
    assert _column(browser, table, 0) == sorted(names)
    assert _console_errors(browser) == []


def test_the_checks_see_a_broken_page(browser: Any, report_file: Path, tmp_path: Path) -> None:
    """Negative control: a script the policy does not allow and an image that does not decode
    are what the checks above would report."""
    text = report_file.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    text = text.replace("script-src 'sha256-", "script-src 'sha256-x", 1)
    broken.write_text(text.replace("base64,iVBOR", "base64,AAAA", 1), encoding="utf-8")
    _console_errors(browser)
    _open(browser, broken)
    assert _console_errors(browser)  # the refused script
    widths = browser.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert widths.count(0) == 1
    table = browser.find_elements(By.CSS_SELECTOR, "table.sortable")[1]
    table.find_elements(By.CSS_SELECTOR, "thead th")[2].click()
    assert _column(browser, table, 0) == list(DATASETS)  # no script ran: no sorting
