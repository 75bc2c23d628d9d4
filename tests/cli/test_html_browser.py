"""The HTML report in a real browser: headless Chromium lays out every chart, non-empty.

Needs the `chromium` binary (Debian package `chromium`; `.ci/run` installs it). Without it
the test fails, naming what to install: a skipped check would hide a broken report.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uptake_cli.render_html import render_html

pytestmark = pytest.mark.browser

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
]

# Added to a copy of the report only: the report itself has no script. It measures every
# chart as laid out and writes the numbers into the DOM, which --dump-dom then prints.
_PROBE = """<script>
const charts = [...document.querySelectorAll("svg.chart")].map((svg) => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll("path, rect, circle")].filter((mark) => {
    const b = mark.getBBox();
    return b.width > 0 || b.height > 0;
  });
  return {cls: svg.getAttribute("class"), width: box.width, height: box.height,
          marks: marks.length, texts: svg.querySelectorAll("text").length};
});
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify({charts, scrollWidth: document.documentElement.scrollWidth});
document.body.appendChild(out);
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    pytest.fail(
        "headless Chromium is needed for this test and was not found: install it "
        "(Debian/Ubuntu: `apt-get install -y chromium`) or run .ci/run as root",
        pytrace=False,
    )


@pytest.fixture
def profile_dir() -> Iterator[Path]:
    directory = tempfile.mkdtemp(prefix="upchrome")
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run(args: list[str]) -> str:
    # A new session lets us kill Chromium's helper processes with it if it hangs.
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, f"chromium failed ({process.returncode}): {stderr[-2000:]}"
    return stdout


def _browser(profile_dir: Path, *extra: str) -> list[str]:
    return [_chromium(), *_FLAGS, f"--user-data-dir={profile_dir}", *extra]


def test_every_chart_is_laid_out_and_drawn(
    sample_report: dict[str, Any], profile_dir: Path, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(
        render_html(sample_report).replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    dom = _run(_browser(profile_dir, "--window-size=1280,2400", "--dump-dom", page.as_uri()))
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    probe = json.loads(html.unescape(dom[start : dom.index("</pre>", start)]))
    charts = {chart["cls"]: chart for chart in probe["charts"]}
    expected = (
        "trend",
        "bars",
        "utilization",
        "heatmap",
        "stacked",
        "lifecycle",
        "power",
        "matrix",
        "activation",
    )
    for kind in expected:
        matching = [chart for cls, chart in charts.items() if kind in cls.split()]
        assert matching, f"no {kind} chart in {sorted(charts)}"
        for chart in matching:
            assert chart["width"] > 300 and chart["height"] > 40, chart
            assert chart["marks"] > 0 and chart["texts"] > 0, chart
    assert not [cls for cls in charts if "empty" in cls.split()]
    assert probe["scrollWidth"] <= 1280  # nothing overflows a laptop-width window


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_screenshot_renders(
    sample_report: dict[str, Any], profile_dir: Path, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report), encoding="utf-8")
    shot = tmp_path / "report.png"
    _run(_browser(profile_dir, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()))
    assert _png_size(shot) == (1280, 2400)
    # A blank page compresses to a few KB; charts, tables and text make it far larger.
    assert shot.stat().st_size > 50_000
