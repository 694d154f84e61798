"""`sweep data shard` on a good folder: counts, patient split, shard files and manifest.json."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sweep import names
from sweep.data import layout
from sweep.data.manifest import load_data_manifest
from sweep.data.shard import shard_dataset
from sweep.data.tfrecord import crc32c, encode_example, pure_crc32c
from sweep.errors import DataError

from data_fixtures import copy_of, read_tfrecord_payloads, shard_folder, synthetic_source

IMAGES, SIZE = 600, 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_source(tmp_path_factory, images=IMAGES, size=SIZE)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=IMAGES, size=SIZE)


def source_rows(source: Path) -> dict[str, list[str]]:
    with (source / names.CXR_CSV).open(newline="") as handle:
        return {row[0]: row for row in list(csv.reader(handle))[1:]}


def test_crc32c_matches_the_standard_check_value():
    for crc in (crc32c, pure_crc32c):
        assert crc(b"123456789") == 0xE3069283  # RFC 3720 / the CRC catalogue's check value
        assert crc(b"") == 0


def test_the_crc32c_library_is_used_and_agrees_with_the_pure_fallback():
    import crc32c as library

    assert crc32c is library.crc32c  # a dependency of sweep: the fallback is only for nodes without it
    blob = np.random.default_rng(0).integers(0, 256, 100_003, dtype=np.uint8).tobytes()
    assert crc32c(blob) == pure_crc32c(blob)


def test_example_encoding_is_deterministic_and_name_ordered():
    a = encode_example({"b": 1, "a": b"x"})
    assert a == encode_example({"a": b"x", "b": 1})
    assert a.index(b"\x0a\x01a") < a.index(b"\x0a\x01b")


def test_manifest_verifies_and_counts_every_image_once(source: Path, shards: Path):
    manifest = load_data_manifest(shards, verify=True)
    assert manifest.to_dict()["schema"] == "sweep.data/1"
    assert manifest.labels == layout.LABELS and manifest.image_size == SIZE
    assert sum(split.images for split in manifest.splits.values()) == IMAGES
    test_list = set((source / names.CXR_TEST_LIST).read_text().split())
    assert manifest.splits["test"].images == len(test_list)
    assert 0.05 < manifest.splits["validation"].images / (IMAGES - len(test_list)) < 0.2


def test_label_counts_agree_with_the_csv(source: Path, shards: Path):
    manifest = load_data_manifest(shards)
    rows = source_rows(source)
    total = {
        label: sum(label in layout.parse_findings(row[1]) for row in rows.values()) for label in layout.LABELS
    }
    assert {
        label: sum(s.label_counts[label] for s in manifest.splits.values()) for label in layout.LABELS
    } == total
    prevalence = manifest.label_prevalence("train")
    assert (
        prevalence["Infiltration"]
        == manifest.splits["train"].label_counts["Infiltration"] / manifest.splits["train"].images
    )


def test_no_test_patient_is_in_train_and_train_patients_are_whole(source: Path, shards: Path):
    manifest = load_data_manifest(shards)
    test_patients = {int(name[:8]) for name in (source / names.CXR_TEST_LIST).read_text().split()}
    train_images_per_patient: dict[int, int] = {}
    for shard in manifest.splits["train"].shards:
        for patient, count in shard.patients:
            assert patient not in train_images_per_patient, "a patient split over two shards"
            train_images_per_patient[patient] = count
    assert not test_patients & train_images_per_patient.keys()
    rows = source_rows(source)
    for patient, count in train_images_per_patient.items():
        assert count == sum(int(row[3]) == patient for row in rows.values())


def test_every_shard_holds_the_records_the_manifest_says_with_valid_checksums(shards: Path):
    manifest = load_data_manifest(shards)
    for shard in manifest.shards():
        payloads = read_tfrecord_payloads(shards / shard.file)
        assert len(payloads) == shard.records
        assert all(PNG_SIGNATURE in p for p in payloads)
    assert len(manifest.splits["train"].shards) >= 20


def test_same_source_gives_the_same_content_hash(source: Path, shards: Path, tmp_path: Path):
    again = shard_dataset(source, tmp_path / "again", size=SIZE)
    assert again.content_hash == load_data_manifest(shards).content_hash


def test_resizes_to_the_requested_size_and_reports_progress(source: Path, tmp_path: Path):
    calls: list[tuple[int, int]] = []
    manifest = shard_dataset(source, tmp_path / "s8", size=8, progress=lambda d, t: calls.append((d, t)))
    assert manifest.image_size == 8
    first = manifest.splits["test"].shards[0]
    payloads = read_tfrecord_payloads(tmp_path / "s8" / first.file)
    assert all(Image.open(io.BytesIO(p[p.index(PNG_SIGNATURE) :])).size == (8, 8) for p in payloads)
    assert calls[0] == (0, IMAGES) and calls[-1] == (IMAGES, IMAGES)


def test_verify_finds_a_changed_and_a_missing_shard(shards: Path, tmp_path: Path):
    folder = copy_of(shards, tmp_path / "copy")
    manifest = load_data_manifest(folder)
    changed, missing = manifest.splits["train"].shards[0], manifest.splits["test"].shards[0]
    data = bytearray((folder / changed.file).read_bytes())
    data[100] ^= 0xFF
    (folder / changed.file).write_bytes(bytes(data))
    (folder / missing.file).unlink()
    load_data_manifest(folder)  # without verify only the manifest itself is checked
    with pytest.raises(DataError) as error:
        load_data_manifest(folder, verify=True)
    assert f"{changed.file} has changed" in str(error.value) and f"{missing.file} is missing" in str(
        error.value
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(schema="sweep.data/99"), "schema 'sweep.data/99' is not understood"),
        (lambda m: m.pop("labels"), "field 'labels' is missing"),
        (lambda m: m["splits"]["train"].update(images=1), "splits.train says 1 images"),
        (lambda m: m.update(content_hash="sha256:0"), "content_hash does not match"),
        (
            lambda m: m["splits"]["test"]["shards"][0].update(records="many"),
            "records' is 'many'; expected a int",
        ),
    ],
)
def test_a_broken_manifest_is_refused_by_name(shards: Path, tmp_path: Path, edit, message: str):
    folder = copy_of(shards, tmp_path / "copy")
    data = json.loads((folder / names.DATA_MANIFEST).read_text())
    edit(data)
    (folder / names.DATA_MANIFEST).write_text(json.dumps(data))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_data_manifest(folder)


def test_a_folder_without_manifest_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(DataError, match="has no manifest.json; make a shard folder with `sweep data shard"):
        load_data_manifest(tmp_path)
