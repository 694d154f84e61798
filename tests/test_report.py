"""build_report on synthetic sweeps: the files, the page, and partial or failed sweeps."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep import results_schema as C
from sweep.analysis import files as F
from sweep.analysis import plots
from sweep.analysis.page import SECTION_IDS
from sweep.analysis.report import ReportSummary, analyse_sweep, build_report
from sweep.analysis.stats import t_interval
from sweep.errors import AnalysisError, SweepError

from report_synth import (
    EPOCHS,
    FAST,
    FRACTIONS,
    SIGILL_REASON,
    SLOW,
    make_results,
    make_sweep_info,
)

PNGS = (F.LEARNING_CURVE_PNG, F.PER_LABEL_PNG, F.RUNTIME_PNG, F.MACHINES_PNG)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESAMPLES = 200  # enough for an interval, quick enough for a unit test


def build(tmp_path: Path, results: pd.DataFrame, **info) -> ReportSummary:
    sweep_info = make_sweep_info(**info)
    return build_report(results, sweep_info, tmp_path / "report", bootstrap_resamples=RESAMPLES)


def read_html(summary: ReportSummary) -> str:
    return Path(summary.files["report"]).read_text(encoding="utf-8")


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.DOTALL)
    assert match, f"section {section_id} missing"
    return match.group(1)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    return build(tmp_path_factory.mktemp("full"), make_results())


# --- a complete sweep with a few failures ----------------------------------------------------


def test_every_file_is_written_and_the_pngs_are_pngs(full: ReportSummary) -> None:
    out = Path(full.files["report"]).parent
    for name in (F.REPORT_HTML, F.SUMMARY_CSV, *PNGS):
        assert (out / name).stat().st_size > 0, name
    for name in PNGS:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(Path(p).name for p in full.files.values()) == sorted((F.REPORT_HTML, F.SUMMARY_CSV, *PNGS))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_the_page_has_every_section_and_one_inline_image_per_png(full: ReportSummary) -> None:
    html = read_html(full)
    for section_id in SECTION_IDS:
        assert f'<section id="{section_id}">' in html
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == len(PNGS)
    for name in PNGS:
        assert sum(f'data-file="{name}"' in tag for tag in images) == 1
    assert all('src="data:image/png;base64,' in tag for tag in images)


def test_the_page_is_self_contained_and_escapes_user_strings(full: ReportSummary) -> None:
    html = read_html(full)
    assert not re.search(r'(src|href)="(https?:|//|file:)', html)
    assert "<link" not in html and "<script" not in html
    assert "chestxray-&lt;demo&gt;" in html and "chestxray-<demo>" not in html
    assert "(Microarch &gt;= &#34;x86_64-v3&#34;)" in section(html, "provenance")


def test_provenance_shows_spec_environment_and_data_manifest(full: ReportSummary) -> None:
    text = section(read_html(full), "provenance")
    info = make_sweep_info()
    for value in (info["env"]["site_packages"]["sha256"], info["data"]["content_hash"], "Pleural_Thickening"):
        assert value in text
    assert "78468" in text and "16GB" in text


def test_summary_csv_has_one_row_per_fraction_with_the_t_interval(full: ReportSummary) -> None:
    table = pd.read_csv(full.files["summary_csv"])
    assert list(table["fraction"]) == list(FRACTIONS)
    assert list(table["done"] + table["failed"]) == [3] * 10  # no pending, no cancelled
    assert table["failed"].sum() == full.failed == 3
    results = make_results()
    ok = results[(results[C.STATE] == C.DONE) & results[C.AUC_MACRO].notna()]
    row = table[table["fraction"] == 0.5].iloc[0]
    expected = t_interval(ok.loc[ok[C.FRACTION] == 0.5, C.AUC_MACRO].to_numpy())
    assert (row["mean_auc"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (expected.estimate, expected.low, expected.high), rel=1e-5
    )


def test_the_summary_answers_the_question_with_an_interval(full: ReportSummary) -> None:
    assert full.fit is not None and full.target_reached
    low, high = full.images_needed_interval
    assert low < full.images_needed < high
    # The generator's true curve reaches 0.75 at (6 / 0.09) ** (1 / 0.45) = 11,3xx images.
    assert low < (6 / 0.09) ** (1 / 0.45) < high
    data = json.loads(full.to_json())
    assert data["images_needed"] == pytest.approx(full.images_needed)
    assert data["fit"]["a_interval"][0] <= data["fit"]["a"] <= data["fit"]["a_interval"][1]
    assert set(data["files"]) == {"report", "summary_csv", "learning_curve_png", "per_label_auc_png",
                                  "runtime_png", "machines_png"}  # fmt: skip


def test_failures_are_listed_with_plain_reasons_and_machines(full: ReportSummary) -> None:
    text = section(read_html(full), "failures")
    assert "f0.3_r2" in text and "killed by signal 9 (SIGKILL)" in text
    assert "f0.6_r1" in text and SIGILL_REASON in text and "exec-old1 (x86_64-v2" in text
    assert "f0.9_r0" in text and "output problem: metrics.json truncated" in text


def test_machine_costs_recover_the_generators_training_speeds(tmp_path: Path) -> None:
    facts = analyse_sweep(make_results(), make_sweep_info(), 0.75, 0, 0)
    rates = dict(zip(facts.machines["microarch"], facts.machines["sec_per_image"], strict=True))
    # seconds per image per epoch x epochs; the generator adds 4 % noise per job
    assert rates[FAST[0]] == pytest.approx(FAST[3] * EPOCHS, rel=0.05)
    assert rates[SLOW[0]] == pytest.approx(SLOW[3] * EPOCHS, rel=0.05)
    hours = dict(zip(facts.machines["microarch"], facts.machines["sweep_hours"], strict=True))
    assert hours[FAST[0]] < hours[SLOW[0]]


# --- partial and failed sweeps -------------------------------------------------------------------


def test_a_whole_failed_fraction_is_marked_in_the_plot_and_the_tables(tmp_path: Path) -> None:
    results = make_results(failed_fractions=[0.2])
    facts = analyse_sweep(results, make_sweep_info(), 0.75, RESAMPLES, 0)
    markers = {m.fraction: m for m in plots.fraction_markers(facts.summary)}
    assert markers[0.2].entirely_failed and markers[0.2].text == "3/3 failed"
    assert math.isfinite(markers[0.2].images)  # drawn at an (estimated) size, not dropped
    fig = plots.learning_curve_figure(facts.curve, facts.summary, 0.75, 14)
    assert "3/3 failed" in [t.get_text() for t in fig.axes[0].texts]

    summary = build(tmp_path, results)
    table = pd.read_csv(summary.files["summary_csv"])
    row = table[table["fraction"] == 0.2].iloc[0]
    assert (row["done"], row["failed"]) == (0, 3) and math.isnan(row["mean_auc"])
    assert any("fraction 20%" in w for w in summary.warnings)
    html = read_html(summary)
    assert all(f"f0.2_r{r}" in section(html, "failures") for r in range(3))
    assert '<tr class="failed"><td>20%</td>' in section(html, "summary")


def test_a_single_fraction_builds_with_a_warning_and_no_fit(tmp_path: Path) -> None:
    summary = build(tmp_path, make_results(fractions=[0.5], failures={}), fractions=[0.5])
    assert summary.fit is None and summary.images_needed is None and summary.target_reached is None
    assert summary.statement.startswith("Unknown how many training images reach AUC 0.75")
    assert any("No learning curve was fitted" in w for w in summary.warnings)
    assert all(Path(p).exists() for p in summary.files.values())
    json.loads(summary.to_json())


def test_an_all_failed_sweep_still_builds_every_section(tmp_path: Path) -> None:
    summary = build(tmp_path, make_results(failed_fractions=FRACTIONS))
    assert summary.done == 0 and summary.failed == 30
    assert any("No item finished with an AUC" in w for w in summary.warnings)
    html = read_html(summary)
    assert all(f'<section id="{s}">' in html for s in SECTION_IDS)
    assert html.count("<img ") == len(PNGS)


def test_a_single_replica_sweep_has_a_curve_but_no_interval(tmp_path: Path) -> None:
    summary = build(tmp_path, make_results(replicas=1, failures={}), replicas=1)
    assert summary.fit is not None and summary.images_needed is not None
    assert summary.images_needed_interval is None
    assert any("single replica" in w for w in summary.warnings)


def test_pending_items_make_a_partial_report_not_failures(tmp_path: Path) -> None:
    results = make_results(failures={}, pending_fractions=[1.0])
    facts = analyse_sweep(results, make_sweep_info(), 0.75, 0, 0)
    assert [(m.fraction, m.text) for m in plots.fraction_markers(facts.summary)] == [(1.0, "3/3 pending")]
    assert facts.failures.empty
    assert any("3 of 30 items are still idle or running" in w for w in facts.warnings)


def test_done_items_without_train_images_fall_back_to_the_fraction(tmp_path: Path) -> None:
    results = make_results(failures={})
    results[C.TRAIN_IMAGES] = pd.array([pd.NA] * len(results), dtype="Int64")
    facts = analyse_sweep(results, make_sweep_info(), 0.75, 0, 0)
    assert facts.summary["images"].tolist() == pytest.approx([f * 78_468 for f in FRACTIONS])
    assert facts.summary["images_estimated"].all()


# --- errors a user can make -----------------------------------------------------------------------


def test_an_out_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    for out in (blocker, blocker / "report"):
        with pytest.raises(AnalysisError, match=re.escape(str(out))) as err:
            build_report(make_results(), make_sweep_info(), out, bootstrap_resamples=0)
        assert isinstance(err.value, SweepError)


def test_a_results_table_missing_columns_names_them(tmp_path: Path) -> None:
    results = make_results().drop(columns=[C.WALL_TIME, C.AUC_MACRO])
    with pytest.raises(AnalysisError, match="wall_time, auc_macro"):
        build_report(results, make_sweep_info(), tmp_path)


def test_unknown_states_and_bad_targets_are_errors(tmp_path: Path) -> None:
    results = make_results()
    results.loc[0, C.STATE] = "exploded"
    with pytest.raises(AnalysisError, match="'exploded'"):
        build_report(results, make_sweep_info(), tmp_path)
    with pytest.raises(AnalysisError, match="target AUC"):
        build_report(make_results(), make_sweep_info(), tmp_path, target_auc=1.5)


def test_rebuilding_replaces_the_files(tmp_path: Path) -> None:
    first = build(tmp_path, make_results(failures={}, noise=0.004))
    second = build(tmp_path, make_results(failures={}, noise=0.004, seed=8))
    assert first.files == second.files
    assert first.images_needed != second.images_needed
    assert np.isclose(pd.read_csv(second.files["summary_csv"])["failed"].sum(), 0)


def test_a_bare_sweep_info_still_builds(tmp_path: Path) -> None:
    # No spec, env or data manifest: labels come from the columns, sizes from the items.
    summary = build_report(make_results(), {}, tmp_path, bootstrap_resamples=0)
    assert summary.sweep_name == "unnamed sweep" and summary.fit is not None
    html = read_html(summary)
    assert "not recorded" in section(html, "provenance")
    facts = analyse_sweep(make_results(), {}, 0.75, 0, 0)
    assert [lb.name for lb in facts.labels][:2] == ["Atelectasis", "Cardiomegaly"]
    assert all(lb.prevalence is None for lb in facts.labels)
