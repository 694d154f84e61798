"""`sweep data shard` refuses malformed folders: exit 2, a message naming the offender and what is
expected, and no OUT (nor a temporary folder) left behind. Each case runs the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweep import names
from sweep.cli import app

from data_fixtures import copy_of, synthetic_source


@pytest.fixture(scope="module")
def good_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_source(tmp_path_factory, images=80, size=16)


@pytest.fixture
def source(good_source: Path, tmp_path: Path) -> Path:
    return copy_of(good_source, tmp_path / "src")


def shard_cli(src: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["data", "shard", str(src), str(out), "--size", "16", *extra])
    return result.exit_code, result.output


def refused(src: Path, tmp_path: Path) -> str:
    """Run the CLI, check it refused cleanly, and return its message."""
    out = tmp_path / "out"
    code, output = shard_cli(src, out)
    assert code == 2, output
    assert "error:" in output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]
    return output


def csv_lines(src: Path) -> list[str]:
    return (src / names.CXR_CSV).read_text().splitlines()


def write_csv_lines(src: Path, lines: list[str]) -> None:
    (src / names.CXR_CSV).write_text("\n".join(lines) + "\n")


def multi_image_patient(src: Path) -> tuple[str, list[str]]:
    """A train_val patient with two or more images, and those image names."""
    train_val = sorted((src / names.CXR_TRAIN_VAL_LIST).read_text().split())
    by_patient: dict[str, list[str]] = {}
    for name in train_val:
        by_patient.setdefault(name[:8], []).append(name)
    patient = next(p for p, images in by_patient.items() if len(images) >= 2)
    return patient, by_patient[patient]


def test_good_source_passes(source: Path, tmp_path: Path):
    code, output = shard_cli(source, tmp_path / "out")
    assert code == 0, output
    assert (tmp_path / "out" / names.DATA_MANIFEST).is_file()


def test_missing_source_folder(tmp_path: Path):
    message = refused(tmp_path / "nowhere", tmp_path)
    assert "nowhere does not exist" in message and "Data_Entry_2017.csv" in message


def test_empty_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    message = refused(tmp_path / "empty", tmp_path)
    assert "empty is empty" in message and "expected a folder in the NIH ChestX-ray14 layout" in message


def test_folder_that_is_not_a_dataset(tmp_path: Path):
    folder = tmp_path / "holiday"
    folder.mkdir()
    (folder / "beach.jpg").write_bytes(b"\xff\xd8")
    (folder / "notes.txt").write_text("sun")
    message = refused(folder, tmp_path)
    assert "is not a ChestX-ray14-layout dataset" in message and "beach.jpg" in message
    assert "images/" in message and "test_list.txt" in message


def test_missing_csv(source: Path, tmp_path: Path):
    (source / names.CXR_CSV).unlink()
    message = refused(source, tmp_path)
    assert "lacks Data_Entry_2017.csv" in message


def test_missing_split_list(source: Path, tmp_path: Path):
    (source / names.CXR_TEST_LIST).unlink()
    assert "lacks test_list.txt" in refused(source, tmp_path)


def test_missing_column(source: Path, tmp_path: Path):
    lines = csv_lines(source)
    write_csv_lines(
        source, [",".join(line.split(",")[:3] + line.split(",")[4:]) for line in lines]
    )  # drop Patient ID
    message = refused(source, tmp_path)
    assert "lacks the column 'Patient ID'" in message
    assert "expected the header: Image Index,Finding Labels,Follow-up #,Patient ID" in message


def test_unknown_label(source: Path, tmp_path: Path):
    lines = csv_lines(source)
    fields = lines[5].split(",")
    fields[1] = "Pneumonitis|" + fields[1] if fields[1] != "No Finding" else "Pneumonitis"
    lines[5] = ",".join(fields)
    write_csv_lines(source, lines)
    message = refused(source, tmp_path)
    assert f"Data_Entry_2017.csv line 6: {fields[0]} has unknown label 'Pneumonitis'" in message
    assert "expected: Finding Labels: 'No Finding' or '|'-separated labels from: Infiltration" in message


def test_image_listed_but_missing(source: Path, tmp_path: Path):
    victim = sorted((source / names.CXR_IMAGES_DIR).iterdir())[7]
    victim.unlink()
    message = refused(source, tmp_path)
    assert f"images/{victim.name} is missing" in message
    assert "1 problem" in message and "expected: every image of Data_Entry_2017.csv in" in message


def test_image_listed_but_unreadable(source: Path, tmp_path: Path):
    victim = sorted((source / names.CXR_IMAGES_DIR).iterdir())[3]
    victim.write_bytes(b"<html>404 not found</html>")
    message = refused(source, tmp_path)
    assert f"images/{victim.name} cannot be read as an image" in message
    assert "expected: PNG" in message


def test_duplicate_row(source: Path, tmp_path: Path):
    lines = csv_lines(source)
    write_csv_lines(source, [*lines[:4], lines[3], *lines[4:]])
    name = lines[3].split(",")[0]
    message = refused(source, tmp_path)
    assert f"line 5: {name} is listed again (duplicate row)" in message
    assert "expected: each image listed once" in message


def test_patient_on_both_sides_of_the_official_split(source: Path, tmp_path: Path):
    patient, images = multi_image_patient(source)
    moved = images[-1]
    train_val = [n for n in (source / names.CXR_TRAIN_VAL_LIST).read_text().split() if n != moved]
    (source / names.CXR_TRAIN_VAL_LIST).write_text("\n".join(train_val) + "\n")
    with (source / names.CXR_TEST_LIST).open("a") as handle:
        handle.write(moved + "\n")
    message = refused(source, tmp_path)
    assert f"patient {patient} is on both sides of the official split" in message
    assert f"{moved} test" in message and "expected: all images of a patient on one side" in message


def test_image_in_neither_split_list(source: Path, tmp_path: Path):
    test = (source / names.CXR_TEST_LIST).read_text().split()
    (source / names.CXR_TEST_LIST).write_text("\n".join(test[1:]) + "\n")
    assert f"{test[0]} is in Data_Entry_2017.csv but in neither split list" in refused(source, tmp_path)


def test_patient_id_that_contradicts_the_image_name(source: Path, tmp_path: Path):
    lines = csv_lines(source)
    fields = lines[2].split(",")
    fields[3] = str(int(fields[3]) + 1)
    lines[2] = ",".join(fields)
    write_csv_lines(source, lines)
    assert f"Patient ID '{fields[3]}' does not match image {fields[0]}" in refused(source, tmp_path)


def test_many_offenders_lists_the_first_ten_and_the_count(source: Path, tmp_path: Path):
    for path in sorted((source / names.CXR_IMAGES_DIR).iterdir())[:25]:
        path.unlink()
    message = refused(source, tmp_path)
    assert "25 problems (the first 10 below)" in message
    assert message.count("\n  - ") == 10


def test_non_empty_out_is_refused_and_kept(source: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious").write_text("x")
    code, output = shard_cli(source, out)
    assert code == 2 and "not empty" in output
    assert [p.name for p in out.iterdir()] == ["precious"]


@pytest.mark.parametrize("size", ["4", "5000"])
def test_size_out_of_range(source: Path, tmp_path: Path, size: str):
    result = CliRunner().invoke(app, ["data", "shard", str(source), str(tmp_path / "out"), "--size", size])
    assert result.exit_code == 2 and f"--size {size} is out of range" in result.output
    assert not (tmp_path / "out").exists()
