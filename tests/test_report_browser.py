"""The HTML report in a real browser: headless Chromium loads it, decodes every plot, logs nothing to the console,
and takes a screenshot. Slow (a browser start); skipped with a reason when Chromium is not installed
(`apt-get install -y chromium`, see docs/report.md)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from reportdata import populate

from edgekit.report import Selection, build_report, open_store, write_report

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0")


WIDTH = 1400  # the screenshot's width, px: a laptop screen


def chromium() -> str | None:
    return os.environ.get("EDGEKIT_CHROMIUM") or next((p for b in BROWSERS if (p := shutil.which(b))), None)


needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium is not installed "
                                    "(apt-get install -y chromium; see docs/report.md)")


def open_page(page: Path, tmp: Path, *mode: str) -> tuple[str, list[str]]:
    """Run headless Chromium on a local page with a fresh profile; returns (stdout, console messages)."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    proc = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *mode, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@needs_chromium
def test_html_report_renders_in_chromium(tmp_path):
    populate(Path(os.environ["EDGEKIT_DB"]), tmp_path / "artifacts")
    store = open_store(None)
    try:
        report = build_report(store, Selection())
    finally:
        store.close()
    page = write_report(report, ["html"], tmp_path / "report")["html"]

    dom, console = open_page(page, tmp_path, f"--window-size={WIDTH},2600", "--dump-dom")
    assert console == [], f"the page logged to the console: {console}"
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    total = int(re.search(r'data-images-total="(\d+)"', body.group(1)).group(1))
    decoded = int(re.search(r'data-images-decoded="(\d+)"', body.group(1)).group(1))
    figures = re.findall(r'<figure id="plot-([\w-]+)"', dom)
    assert total == decoded == len(figures) >= 6, (total, decoded, figures)
    for plot in ("latency-local", "latency-rpi4", "pareto-local", "memory", "energy", "metrics"):
        assert plot in figures
    assert 'id="checks-table"' in dom and dom.count('class="sortable results"') == 1
    assert re.search(r'id="verdict"[^>]*>.*?FAIL', dom, re.S)
    width = int(re.search(r'data-page-width="(\d+)"', body.group(1)).group(1))
    assert width <= WIDTH, f"the page is {width} px wide at a {WIDTH} px window: it scrolls sideways"
    assert 'class="netron" href="https://netron.app"' in dom  # a link per artifact file, nothing uploaded

    shot = tmp_path / "report.png"
    _, console = open_page(page, tmp_path, f"--window-size={WIDTH},2600", f"--screenshot={shot}")
    assert console == [], console
    assert png_size(shot) == (WIDTH, 2600) and shot.stat().st_size > 100_000  # a rendered page, not a blank one
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels[..., :3].std() > 0.05, "the screenshot is (nearly) one colour"
    keep = os.environ.get("EDGEKIT_BROWSER_SHOT")
    if keep:
        shutil.copyfile(shot, keep)


@needs_chromium
def test_the_check_catches_a_broken_page(tmp_path):
    """The same check on a page with a script error and an undecodable image fails, so the test above can fail."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA"><script>'
                    'window.addEventListener("load", function () { document.body.dataset.imagesDecoded = '
                    'String(Array.from(document.images).filter(function (i) { return i.naturalWidth > 0; }).length);'
                    ' }); undefinedFunction();</script></body></html>')
    dom, console = open_page(page, tmp_path, "--dump-dom")
    assert any("Uncaught ReferenceError" in ln for ln in console), console
    assert 'data-images-decoded="0"' in dom
