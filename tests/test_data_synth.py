"""`sweep data synth`: the exact ChestX-ray14 layout, real imbalance, a learnable signal, determinism."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sweep import names
from sweep.cli import app
from sweep.data import layout, phantom
from sweep.data.synth import synthesize
from sweep.errors import DataError

from data_fixtures import synthetic_source


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_source(tmp_path_factory, images=2000, size=16)


def rows_of(folder: Path) -> list[list[str]]:
    with (folder / names.CXR_CSV).open(newline="") as handle:
        return list(csv.reader(handle))


def listed(folder: Path, file_name: str) -> set[str]:
    return set((folder / file_name).read_text().split())


def test_csv_has_the_original_header_and_twelve_columns(source: Path):
    text = (source / names.CXR_CSV).read_text()
    assert text.splitlines()[0] == (
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
    )
    rows = rows_of(source)
    assert {len(row) for row in rows} == {12}
    assert len(rows) == 2001


def test_every_row_names_an_existing_grayscale_png_of_its_patient(source: Path):
    for name, findings, follow_up, patient, *_ in rows_of(source)[1:]:
        match = layout.IMAGE_NAME.match(name)
        assert match and int(match.group(1)) == int(patient) and int(match.group(2)) == int(follow_up)
        assert findings == layout.NO_FINDING or set(findings.split("|")) <= set(layout.LABELS)
    sample = sorted((source / names.CXR_IMAGES_DIR).iterdir())[:20]
    for path in sample:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (16, 16))
    assert len(list((source / names.CXR_IMAGES_DIR).iterdir())) == 2000


def test_official_split_is_by_patient_and_covers_every_image_once(source: Path):
    train_val, test = listed(source, names.CXR_TRAIN_VAL_LIST), listed(source, names.CXR_TEST_LIST)
    assert not train_val & test
    assert train_val | test == {row[0] for row in rows_of(source)[1:]}
    assert not {n[:8] for n in train_val} & {n[:8] for n in test}
    assert 0.18 < len(test) / 2000 < 0.28  # the original: 22.8 %


def test_patients_have_several_images(source: Path):
    per_patient = Counter(row[3] for row in rows_of(source)[1:])
    assert 2.5 < 2000 / len(per_patient) < 5  # the original: 3.6
    assert max(per_patient.values()) > 5


def test_labels_follow_the_real_imbalance_and_the_test_split_has_positives(source: Path):
    rows = rows_of(source)[1:]
    counts = Counter(label for row in rows for label in layout.parse_findings(row[1]))
    for label in ("Infiltration", "Effusion", "Atelectasis", "Nodule", "Mass"):
        assert 0.5 < counts[label] / 2000 / layout.LABEL_PREVALENCE[label] < 1.6, label
    assert counts["Infiltration"] > 3 * counts["Cardiomegaly"] > 0
    assert 0.35 < sum(row[1] == layout.NO_FINDING for row in rows) / 2000 < 0.65
    test = listed(source, names.CXR_TEST_LIST)
    in_test = Counter(label for row in rows if row[0] in test for label in layout.parse_findings(row[1]))
    assert sum(in_test[label] > 0 for label in layout.LABELS) >= 12


def test_findings_leave_a_trace_a_linear_model_can_pick_up(source: Path):
    """The signal exists before any CNN: pixels separate positives of a finding from negatives."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rows = rows_of(source)[1:]
    pixels = np.stack(
        [
            np.asarray(Image.open(source / names.CXR_IMAGES_DIR / row[0]), np.float32).ravel() / 255
            for row in rows
        ]
    )
    test = listed(source, names.CXR_TEST_LIST)
    is_test = np.array([row[0] in test for row in rows])
    for label in ("Effusion", "Cardiomegaly"):
        y = np.array([label in layout.parse_findings(row[1]) for row in rows])
        model = LogisticRegression(C=0.1, max_iter=500, class_weight="balanced").fit(
            pixels[~is_test], y[~is_test]
        )
        assert roc_auc_score(y[is_test], model.decision_function(pixels[is_test])) > 0.6, label


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        synthesize(tmp_path / name, images=60, size=16, seed=seed)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")


def test_progress_reaches_the_total(tmp_path: Path):
    calls: list[tuple[int, int]] = []
    synthesize(tmp_path / "p", images=120, size=16, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (120, 120)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_cli_refuses_a_non_empty_out_and_leaves_it_alone(tmp_path: Path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["data", "synth", str(out), "--images", "40", "--size", "16"])
    assert result.exit_code == 2
    assert "not empty" in result.output and str(out) in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_cli_writes_into_an_empty_existing_out(tmp_path: Path):
    out = tmp_path / "empty"
    out.mkdir()
    result = CliRunner().invoke(app, ["data", "synth", str(out), "--images", "40", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert (out / names.CXR_CSV).is_file()


@pytest.mark.parametrize(
    ("option", "value", "message"), [("--images", "5", "--images 5"), ("--size", "4", "--size 4")]
)
def test_cli_refuses_out_of_range_arguments(tmp_path: Path, option: str, value: str, message: str):
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "o"), option, value])
    assert result.exit_code == 2
    assert message in result.output and "accepted" in result.output
    assert not (tmp_path / "o").exists()


def test_a_crash_half_way_leaves_no_out_and_no_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    real_render, drawn = phantom.render, []

    def render_then_fail(*args, **kwargs):
        drawn.append(1)
        if len(drawn) > 30:
            raise RuntimeError("disk on fire")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(phantom, "render", render_then_fail)
    with pytest.raises(RuntimeError):
        synthesize(tmp_path / "out", images=60, size=16)
    assert list(tmp_path.iterdir()) == []


def test_library_refuses_with_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="--images"):
        synthesize(tmp_path / "x", images=0)
