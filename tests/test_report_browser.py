"""report.html opened in a real headless Chromium: it renders, every section is there, every image decodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweep.analysis.report import build_report

from browser import assert_renders_non_blank, find_chromium, rendered_dom
from report_synth import make_results, make_sweep_info


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser binary; requested before the report fixture so a skip costs no report build."""
    return find_chromium()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    summary = build_report(
        make_results(failed_fractions=[0.2]), make_sweep_info(), out, bootstrap_resamples=100
    )
    return Path(summary.files["report"])


def test_report_renders_as_a_non_blank_page(chromium: str, report_html: Path, tmp_path: Path) -> None:
    assert_renders_non_blank(chromium, report_html, tmp_path)


def test_every_section_and_image_is_in_the_rendered_dom(
    chromium: str, report_html: Path, tmp_path: Path
) -> None:
    dom = rendered_dom(chromium, report_html, tmp_path)
    assert "f0.2_r0" in dom  # the whole failed fraction is in the failures table
