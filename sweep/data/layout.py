"""The NIH ChestX-ray14 layout as data: CSV header, label names and prevalences, file name rules.

Both the synthetic generator and the validator read these, so the look-alike and the checks can
never drift apart.
"""

from __future__ import annotations

import re

# Image sides (pixels) that `data synth` and `data shard` accept; the CLI shows them in --help.
SYNTH_SIZES = (16, 1024)
SHARD_SIZES = (8, 1024)

# Exactly the original header line: the commas inside the brackets and the trailing comma are
# part of the layout (a CSV reader sees 12 columns, the last one unnamed).
CSV_HEADER_LINE = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
COLUMN_IMAGE = "Image Index"
COLUMN_FINDINGS = "Finding Labels"
COLUMN_FOLLOW_UP = "Follow-up #"
COLUMN_PATIENT = "Patient ID"
REQUIRED_COLUMNS = (COLUMN_IMAGE, COLUMN_FINDINGS, COLUMN_PATIENT)

NO_FINDING = "No Finding"
LABEL_SEPARATOR = "|"

# The 14 findings with their image counts in the 112,120-image original, most common first.
# This order is the column order of every multi-hot label vector sweep writes.
LABEL_IMAGE_COUNTS: dict[str, int] = {
    "Infiltration": 19_894,
    "Effusion": 13_317,
    "Atelectasis": 11_559,
    "Nodule": 6_331,
    "Mass": 5_782,
    "Pneumothorax": 5_302,
    "Consolidation": 4_667,
    "Pleural_Thickening": 3_385,
    "Cardiomegaly": 2_776,
    "Emphysema": 2_516,
    "Edema": 2_303,
    "Fibrosis": 1_686,
    "Pneumonia": 1_431,
    "Hernia": 227,
}
ORIGINAL_IMAGES = 112_120
LABELS: tuple[str, ...] = tuple(LABEL_IMAGE_COUNTS)
LABEL_PREVALENCE: dict[str, float] = {
    name: count / ORIGINAL_IMAGES for name, count in LABEL_IMAGE_COUNTS.items()
}

# The official test list holds 25,596 of the 112,120 images.
OFFICIAL_TEST_SHARE = 25_596 / ORIGINAL_IMAGES

IMAGE_NAME = re.compile(r"^(\d{8})_(\d{3})\.png$")
IMAGE_NAME_RULE = "PPPPPPPP_FFF.png (8-digit patient id, 3-digit follow-up number)"


def image_name(patient_id: int, follow_up: int) -> str:
    return f"{patient_id:08d}_{follow_up:03d}.png"


def parse_findings(text: str) -> list[str]:
    """'A|B' -> ['A', 'B']; 'No Finding' -> []. Unknown names are returned as they are, for the validator."""
    if text == NO_FINDING:
        return []
    return text.split(LABEL_SEPARATOR)


def format_findings(labels: list[str]) -> str:
    return LABEL_SEPARATOR.join(labels) if labels else NO_FINDING
