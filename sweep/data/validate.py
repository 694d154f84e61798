"""Check a folder in the NIH ChestX-ray14 layout before anything is written, and index it.

Every check collects its offenders, so one run tells the user the first few problems and how
many there are in all, instead of one problem per attempt. Cheap checks (files, CSV, lists,
image existence) run here; whether each image decodes is checked in the sharding pass, which
reads every image anyway, and reported the same way before the output folder appears.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from sweep import names
from sweep.data import layout
from sweep.data.problems import MAX_LISTED, Problems
from sweep.errors import DataError

LAYOUT_PIECES = (names.CXR_CSV, names.CXR_IMAGES_DIR + "/", names.CXR_TRAIN_VAL_LIST, names.CXR_TEST_LIST)
LAYOUT_HINT = "expected a folder in the NIH ChestX-ray14 layout: " + ", ".join(LAYOUT_PIECES)
LABELS_HINT = f"'{layout.NO_FINDING}' or '{layout.LABEL_SEPARATOR}'-separated labels from: " + ", ".join(
    layout.LABELS
)


@dataclass(frozen=True)
class SourceImage:
    name: str  # the Image Index, e.g. 00000001_000.png
    patient_id: int
    labels: tuple[int, ...]  # multi-hot, in layout.LABELS order
    test: bool  # on the test side of the official split


@dataclass(frozen=True)
class SourceDataset:
    folder: Path
    images: tuple[SourceImage, ...]
    csv_sha256: str


def validate_source(src: Path) -> SourceDataset:
    """Index a ChestX-ray14-layout folder, or raise DataError naming the offenders."""
    _check_folder(src)
    header, rows, csv_sha256 = _read_csv(src / names.CXR_CSV)
    entries = _parse_rows(src, header, rows)
    train_val = _read_list(src, names.CXR_TRAIN_VAL_LIST)
    test = _read_list(src, names.CXR_TEST_LIST)
    _check_split(src, entries, train_val, test)
    _check_images_exist(src, entries)
    images = tuple(
        SourceImage(name=name, patient_id=patient, labels=labels, test=name in test)
        for name, (patient, labels) in sorted(entries.items())
    )
    return SourceDataset(folder=src, images=images, csv_sha256=csv_sha256)


def _check_folder(src: Path) -> None:
    if not src.exists():
        raise DataError(f"{src} does not exist; {LAYOUT_HINT}")
    if not src.is_dir():
        raise DataError(f"{src} is not a folder; {LAYOUT_HINT}")
    present = sorted(entry.name for entry in src.iterdir())
    if not present:
        raise DataError(f"{src} is empty; {LAYOUT_HINT}")
    missing = [piece for piece in LAYOUT_PIECES if not (src / piece.rstrip("/")).exists()]
    if len(missing) == len(LAYOUT_PIECES):
        found = ", ".join(present[:MAX_LISTED]) + (", ..." if len(present) > MAX_LISTED else "")
        raise DataError(f"{src} is not a ChestX-ray14-layout dataset (it holds {found}); {LAYOUT_HINT}")
    if missing:
        raise DataError(f"{src} lacks {', '.join(missing)}; {LAYOUT_HINT}")
    if not (src / names.CXR_IMAGES_DIR).is_dir():
        raise DataError(f"{src / names.CXR_IMAGES_DIR} is not a folder; {LAYOUT_HINT}")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], str]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path} is not UTF-8 text ({error}); expected the CSV with header: {layout.CSV_HEADER_LINE}"
        ) from None
    table = list(csv.reader(text.splitlines()))
    if not table:
        raise DataError(f"{path} is empty; expected the header line: {layout.CSV_HEADER_LINE}")
    header = [column.strip() for column in table[0]]
    missing = [column for column in layout.REQUIRED_COLUMNS if column not in header]
    if missing:
        raise DataError(
            f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
            f"(its header is: {table[0] and ','.join(table[0])}); expected the header: {layout.CSV_HEADER_LINE}"
        )
    rows = [row for row in table[1:] if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path} lists no images; expected one row per image after the header")
    return header, rows, hashlib.sha256(data).hexdigest()


def _parse_rows(
    src: Path, header: list[str], rows: list[list[str]]
) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Image name -> (patient id, multi-hot labels); every bad row is collected first."""
    where = {column: header.index(column) for column in layout.REQUIRED_COLUMNS}
    needed = max(where.values()) + 1
    problems, entries = Problems(), {}
    for line_number, row in enumerate(rows, start=2):
        at = f"{names.CXR_CSV} line {line_number}"
        if len(row) < needed:
            problems.add(
                f"{at}: {len(row)} fields, too few for {header[needed - 1]!r}", "one field per header column"
            )
            continue
        name, findings, patient_text = (row[where[c]].strip() for c in layout.REQUIRED_COLUMNS)
        parsed = _parse_row(at, name, findings, patient_text, problems)
        if parsed is None:
            continue
        if name in entries:
            problems.add(f"{at}: {name} is listed again (duplicate row)", "each image listed once")
            continue
        entries[name] = parsed
    problems.raise_if_any(f"{src / names.CXR_CSV} has bad rows")
    return entries


def _parse_row(
    at: str, name: str, findings: str, patient_text: str, problems: Problems
) -> tuple[int, tuple[int, ...]] | None:
    match = layout.IMAGE_NAME.match(name)
    if not match:
        problems.add(
            f"{at}: image name {name!r} has the wrong form", f"image names like {layout.IMAGE_NAME_RULE}"
        )
        return None
    if not patient_text.isdigit() or int(patient_text) != int(match.group(1)):
        problems.add(
            f"{at}: Patient ID {patient_text!r} does not match image {name}",
            "Patient ID equal to the 8-digit prefix of the image name",
        )
        return None
    labels = layout.parse_findings(findings)
    unknown = [label for label in labels if label not in layout.LABELS]
    if unknown:
        problems.add(
            f"{at}: {name} has unknown label{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}",
            f"Finding Labels: {LABELS_HINT}",
        )
        return None
    return int(patient_text), tuple(int(label in labels) for label in layout.LABELS)


def _read_list(src: Path, file_name: str) -> set[str]:
    lines = [line.strip() for line in (src / file_name).read_text(encoding="utf-8").splitlines()]
    names_listed = [line for line in lines if line]
    repeated = [name for name, count in Counter(names_listed).items() if count > 1]
    problems = Problems()
    for name in repeated:
        problems.add(f"{file_name}: {name} is listed more than once", "each image once in its split list")
    problems.raise_if_any(f"{src / file_name} has repeated images")
    return set(names_listed)


def _check_split(
    src: Path, entries: dict[str, tuple[int, tuple[int, ...]]], train_val: set[str], test: set[str]
) -> None:
    problems = Problems()
    expected = (
        f"every image of {names.CXR_CSV} in exactly one of {names.CXR_TRAIN_VAL_LIST}, {names.CXR_TEST_LIST}"
    )
    for name in sorted(train_val & test):
        problems.add(f"{name} is in both {names.CXR_TRAIN_VAL_LIST} and {names.CXR_TEST_LIST}", expected)
    for name in sorted((train_val | test) - entries.keys()):
        problems.add(f"{name} is in a split list but not in {names.CXR_CSV}", expected)
    for name in sorted(entries.keys() - train_val - test):
        problems.add(f"{name} is in {names.CXR_CSV} but in neither split list", expected)
    by_patient: dict[int, list[str]] = defaultdict(list)
    for name, (patient, _) in sorted(entries.items()):
        if name in train_val or name in test:
            by_patient[patient].append(name)
    for patient, listed in sorted(by_patient.items()):
        if len({name in test for name in listed}) < 2:
            continue
        problems.add(
            f"patient {patient:08d} is on both sides of the official split "
            f"({', '.join(n + (' test' if n in test else ' train_val') for n in listed[:4])}"
            f"{', ...' if len(listed) > 4 else ''})",
            "all images of a patient on one side of the split (a patient on both sides leaks into the test)",
        )
    problems.raise_if_any(f"{src} has an inconsistent official split")


def _check_images_exist(src: Path, entries: dict[str, tuple[int, tuple[int, ...]]]) -> None:
    images_dir = src / names.CXR_IMAGES_DIR
    on_disk = {entry.name for entry in images_dir.iterdir() if entry.is_file()}
    problems = Problems()
    for name in sorted(entries.keys() - on_disk):
        problems.add(
            f"{names.CXR_IMAGES_DIR}/{name} is missing", f"every image of {names.CXR_CSV} in {images_dir}"
        )
    problems.raise_if_any(f"{src} lacks images listed in {names.CXR_CSV}")
