"""`sweep data synth`: a synthetic look-alike of NIH ChestX-ray14, in exactly its layout.

Same file names, CSV header, label names and prevalences, several images per patient and an
official split by patient, so that everything downstream (validation, sharding, subsets, the job)
runs on it as on the real data. Each finding leaves its own visual trace (sweep.data.phantom), so
a CNN can learn it and AUC rises with more data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sweep import names
from sweep.data import layout, phantom
from sweep.data.split import stratified_patient_split
from sweep.data.staging import staged_folder
from sweep.errors import DataError

Progress = Callable[[int, int], None]

MIN_IMAGES, MAX_IMAGES = 20, 1_000_000
MIN_SIZE, MAX_SIZE = layout.SYNTH_SIZES
MEAN_IMAGES_PER_PATIENT = 3.6  # 112,120 images of 30,805 patients
MAX_IMAGES_PER_PATIENT = 30  # the real tail is longer; capped so that no patient dominates a small set
# A patient who has a finding shows it on this share of their images: findings persist across
# follow-ups, so images of one patient correlate (and a random image split would leak).
PERSISTENCE = 0.6
# One seed for the dataset structure, derived ones for each patient's anatomy and each image, so
# an image depends only on (seed, patient, follow-up) and not on the order it is drawn in.
ANATOMY_STREAM, IMAGE_STREAM = 1, 2
PROGRESS_EVERY = 50


@dataclass(frozen=True)
class Patient:
    patient_id: int
    findings: tuple[tuple[str, ...], ...]  # one tuple of finding names per follow-up image
    age: int
    gender: str
    view: str


@dataclass(frozen=True)
class SynthSummary:
    folder: Path
    images: int
    patients: int
    size: int
    seed: int
    test_images: int
    label_counts: dict[str, int]
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.images} images ({self.size}x{self.size} px) of {self.patients} patients to {self.folder} "
            f"({self.test_images} in {names.CXR_TEST_LIST}) in {self.seconds:.1f} s"
        )


def synthesize(
    out: Path, images: int = 2000, size: int = 64, seed: int = 0, progress: Progress | None = None
) -> SynthSummary:
    """Write a new dataset folder OUT; refuses a non-empty OUT and leaves nothing behind on failure."""
    started = time.perf_counter()
    _check_arguments(images, size)
    rng = np.random.default_rng(seed)
    patients = _draw_patients(images, rng)
    test_patients = _official_split(patients, seed)
    with staged_folder(out) as staging:
        _write_images(staging / names.CXR_IMAGES_DIR, patients, size, seed, progress or _ignore)
        _write_csv(staging / names.CXR_CSV, patients, size)
        _write_lists(staging, patients, test_patients)
    return SynthSummary(
        folder=out,
        images=images,
        patients=len(patients),
        size=size,
        seed=seed,
        test_images=sum(len(p.findings) for p in patients if p.patient_id in test_patients),
        label_counts=_label_counts(patients),
        seconds=time.perf_counter() - started,
    )


def _ignore(done: int, total: int) -> None:
    pass


def _check_arguments(images: int, size: int) -> None:
    if not MIN_IMAGES <= images <= MAX_IMAGES:
        raise DataError(f"--images {images} is out of range; accepted: {MIN_IMAGES} to {MAX_IMAGES}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DataError(f"--size {size} is out of range; accepted: {MIN_SIZE} to {MAX_SIZE} pixels")


def _images_per_patient(images: int, rng: np.random.Generator) -> list[int]:
    counts: list[int] = []
    while sum(counts) < images:
        counts.append(int(min(rng.geometric(1 / MEAN_IMAGES_PER_PATIENT), MAX_IMAGES_PER_PATIENT)))
    counts[-1] -= sum(counts) - images
    return counts


def _draw_patients(images: int, rng: np.random.Generator) -> list[Patient]:
    patients = []
    carrier_probability = {name: min(1.0, p / PERSISTENCE) for name, p in layout.LABEL_PREVALENCE.items()}
    for index, count in enumerate(_images_per_patient(images, rng)):
        carried = [name for name, q in carrier_probability.items() if rng.random() < q]
        findings = tuple(tuple(name for name in carried if rng.random() < PERSISTENCE) for _ in range(count))
        patients.append(
            Patient(
                patient_id=index + 1,
                findings=findings,
                age=int(rng.integers(1, 95)),
                gender=str(rng.choice(["M", "F"])),
                view=str(rng.choice(["PA", "AP"], p=[0.6, 0.4])),
            )
        )
    return patients


def _positives(patient: Patient) -> list[int]:
    return [sum(name in image for image in patient.findings) for name in layout.LABELS]


def _official_split(patients: list[Patient], seed: int) -> frozenset[int]:
    """The test patients: ~23 % of the images, as in the original, with most labels on both sides."""
    return stratified_patient_split(
        positives={p.patient_id: _positives(p) for p in patients},
        images={p.patient_id: len(p.findings) for p in patients},
        share=layout.OFFICIAL_TEST_SHARE,
        seed=seed,
    )


def _write_images(folder: Path, patients: list[Patient], size: int, seed: int, progress: Progress) -> None:
    folder.mkdir()
    total, done = sum(len(p.findings) for p in patients), 0
    for patient in patients:
        anatomy = phantom.draw_anatomy(np.random.default_rng([seed, ANATOMY_STREAM, patient.patient_id]))
        for follow_up, findings in enumerate(patient.findings):
            rng = np.random.default_rng([seed, IMAGE_STREAM, patient.patient_id, follow_up])
            pixels = phantom.render(anatomy, list(findings), size, rng)
            Image.fromarray(pixels).save(folder / layout.image_name(patient.patient_id, follow_up))
            done += 1
            if done % PROGRESS_EVERY == 0 or done == total:
                progress(done, total)


def _write_csv(path: Path, patients: list[Patient], size: int) -> None:
    spacing = round(0.143 * 2500 / size, 3)  # the originals are ~2500 px at 0.143 mm
    lines = [layout.CSV_HEADER_LINE]
    for p in patients:
        for follow_up, findings in enumerate(p.findings):
            lines.append(
                f"{layout.image_name(p.patient_id, follow_up)},{layout.format_findings(list(findings))},"
                f"{follow_up},{p.patient_id},{p.age},{p.gender},{p.view},{size},{size},{spacing},{spacing},"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_lists(folder: Path, patients: list[Patient], test_patients: frozenset[int]) -> None:
    sides: dict[bool, list[str]] = {True: [], False: []}
    for p in patients:
        sides[p.patient_id in test_patients].extend(
            layout.image_name(p.patient_id, follow_up) for follow_up in range(len(p.findings))
        )
    (folder / names.CXR_TEST_LIST).write_text(
        "".join(f"{n}\n" for n in sorted(sides[True])), encoding="utf-8"
    )
    (folder / names.CXR_TRAIN_VAL_LIST).write_text(
        "".join(f"{n}\n" for n in sorted(sides[False])), encoding="utf-8"
    )


def _label_counts(patients: list[Patient]) -> dict[str, int]:
    return {name: sum(name in image for p in patients for image in p.findings) for name in layout.LABELS}
