"""Open a report in a real headless Chromium and check what a person would see.

Chromium comes from Debian (scripts/install-test-deps). Without it the tests that use the
`chromium` fixture are skipped, unless SWEEP_REQUIRE_CHROMIUM=1 says it must run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from sweep.analysis.page import SECTION_IDS

WINDOW = (1280, 4000)
PNG_COUNT = 4
# Appended to a copy of the page only: the report itself carries no script. After the load
# event it records on every <img> whether Chromium decoded it, so --dump-dom can show it.
PROBE = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    img.dataset.decoded = String(img.complete && img.naturalWidth > 0);
    img.dataset.naturalWidth = String(img.naturalWidth);
  }
  document.body.dataset.probe = "done";
});
</script>"""


def find_chromium() -> str:
    """The browser binary, or a skip (a failure when SWEEP_REQUIRE_CHROMIUM=1)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("SWEEP_REQUIRE_CHROMIUM") == "1":
        pytest.fail("SWEEP_REQUIRE_CHROMIUM=1 but chromium is not installed: run scripts/install-test-deps")
    pytest.skip("chromium is not installed (scripts/install-test-deps installs it)")


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def assert_renders_non_blank(chromium: str, report_html: Path, tmp_path: Path) -> None:
    shot = tmp_path / "screenshot.png"
    run_chromium(chromium, tmp_path, f"--screenshot={shot}", report_html.as_uri())
    pixels = mpimg.imread(shot)[..., :3]  # floats in [0, 1]
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    non_white = np.any(pixels < 0.95, axis=-1)
    assert non_white.mean() > 0.05, "the page is (almost) blank"
    # Text alone is black and white: many distinct colours mean the plots were painted too.
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 500


def rendered_dom(chromium: str, report_html: Path, tmp_path: Path) -> str:
    """The DOM after load, with every section and image checked to be present and decoded."""
    probe = tmp_path / "probe.html"
    probe.write_text(report_html.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"), "utf-8")
    dom = run_chromium(chromium, tmp_path, "--dump-dom", "--virtual-time-budget=5000", probe.as_uri()).stdout
    assert 'data-probe="done"' in dom, "the page never finished loading"
    for section_id in SECTION_IDS:
        assert f'<section id="{section_id}">' in dom
    images = re.findall(r"<img [^>]*>", dom)
    assert len(images) == PNG_COUNT
    assert all('data-decoded="true"' in tag for tag in images), images
    widths = [int(re.search(r'data-natural-width="(\d+)"', tag).group(1)) for tag in images]
    assert min(widths) > 600
    return dom
