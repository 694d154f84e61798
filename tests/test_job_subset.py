"""The training subset of one job, and the files the submit side sends it."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from sweep import names
from sweep.data.manifest import load_data_manifest
from sweep.data.plan import plan_item_inputs
from sweep.errors import DataError
from sweep.job.subset import select_training_subset
from sweep.spec import SweepSpec, parse_fractions

from data_fixtures import shard_folder

FRACTIONS = [float(f) for f in parse_fractions("0.1..1.0")]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=2000, size=16)


@pytest.fixture(scope="module")
def manifest_dict(shards: Path) -> dict:
    return json.loads((shards / names.DATA_MANIFEST).read_text())


def train_patients(manifest: dict) -> dict[int, int]:
    return {p: n for shard in manifest["splits"]["train"]["shards"] for p, n in shard["patients"]}


def test_same_item_and_seed_give_the_same_subset(manifest_dict: dict):
    item = SweepSpec(name="s", fractions=(Decimal("0.3"),), replicas=2, seed=11).items()[1]
    first = select_training_subset(manifest_dict, item.fraction, item.subset_seed)
    again = select_training_subset(json.loads(json.dumps(manifest_dict)), item.fraction, item.subset_seed)
    assert first == again
    assert select_training_subset(manifest_dict, 0.3, item.subset_seed + 1).patients != first.patients


def test_subsets_nest_across_fractions_for_one_subset_seed(manifest_dict: dict):
    for subset_seed in (0, 12345, 2**31 - 1):
        subsets = [set(select_training_subset(manifest_dict, f, subset_seed).patients) for f in FRACTIONS]
        for smaller, larger in itertools.pairwise(subsets):
            assert smaller < larger


def test_fraction_one_is_every_training_patient(manifest_dict: dict):
    subset = select_training_subset(manifest_dict, 1.0, 99)
    assert set(subset.patients) == train_patients(manifest_dict).keys()
    assert subset.images == manifest_dict["splits"]["train"]["images"]
    assert len(subset.shards) == len(manifest_dict["splits"]["train"]["shards"])


def test_a_subset_is_whole_patients_just_reaching_the_target(manifest_dict: dict):
    per_patient = train_patients(manifest_dict)
    total = sum(per_patient.values())
    for fraction in FRACTIONS:
        subset = select_training_subset(manifest_dict, fraction, 5)
        target = math.ceil(Decimal(str(fraction)) * total)
        assert subset.images == sum(per_patient[p] for p in subset.patients)
        assert target <= subset.images < target + max(per_patient.values())
        assert list(subset.patients) == sorted(set(subset.patients))


def test_target_is_computed_exactly_not_with_float_error():
    manifest = {"splits": {"train": {"shards": [{"file": "t0", "patients": [[p, 1] for p in range(1300)]}]}}}
    assert select_training_subset(manifest, 0.1, 0).images == 130  # float: ceil(130.00000000000003) = 131
    assert select_training_subset(manifest, Decimal("0.7"), 0).images == 910


def test_a_small_fraction_touches_few_shards(manifest_dict: dict):
    shard_count = len(manifest_dict["splits"]["train"]["shards"])
    for subset_seed in range(5):
        assert (
            len(select_training_subset(manifest_dict, 0.1, subset_seed).shards)
            <= math.ceil(0.1 * shard_count) + 1
        )


def test_replicas_draw_different_patients(manifest_dict: dict):
    spec = SweepSpec(name="s", fractions=(Decimal("0.2"),), replicas=3, seed=0)
    subsets = [
        set(select_training_subset(manifest_dict, i.fraction, i.subset_seed).patients) for i in spec.items()
    ]
    assert len({frozenset(s) for s in subsets}) == 3
    assert all(len(a & b) < 0.6 * len(a) for a in subsets for b in subsets if a is not b)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.01, float("nan"), "a lot"])
def test_bad_fractions_are_refused(manifest_dict: dict, fraction):
    with pytest.raises(ValueError, match="fraction"):
        select_training_subset(manifest_dict, fraction, 0)


def test_a_manifest_without_train_shards_is_refused():
    with pytest.raises(ValueError, match="train shard list"):
        select_training_subset({"splits": {}}, 0.5, 0)


# ---- the data plan of one item


def test_plan_lists_the_manifest_the_subset_shards_and_all_evaluation_shards(
    shards: Path, manifest_dict: dict
):
    manifest = load_data_manifest(shards)
    plan = plan_item_inputs(manifest, Decimal("0.3"), 42)
    subset = select_training_subset(manifest_dict, 0.3, 42)
    evaluation = [s.file for split in ("validation", "test") for s in manifest.splits[split].shards]
    assert plan.files == (names.DATA_MANIFEST, *subset.shards, *evaluation)
    assert plan.bytes == (shards / names.DATA_MANIFEST).stat().st_size + sum(
        (shards / f).stat().st_size for f in plan.files[1:]
    )
    assert (plan.train_images, plan.train_patients) == (subset.images, len(subset.patients))


def test_a_tenth_moves_far_fewer_bytes_than_the_whole(shards: Path):
    manifest = load_data_manifest(shards)
    tenth, whole = plan_item_inputs(manifest, 0.1, 7), plan_item_inputs(manifest, 1.0, 7)
    evaluation = manifest.splits["validation"].bytes + manifest.splits["test"].bytes
    fixed = evaluation + (shards / names.DATA_MANIFEST).stat().st_size
    assert (tenth.bytes - fixed) < 0.15 * (whole.bytes - fixed)  # training bytes: ~10 % (+ one partial shard)
    assert tenth.bytes < 0.5 * whole.bytes  # all of validation and test are always sent
    assert whole.bytes == fixed + manifest.splits["train"].bytes


def test_plan_turns_a_bad_fraction_into_a_data_error(shards: Path):
    with pytest.raises(DataError, match="cannot select a training subset: fraction 2"):
        plan_item_inputs(load_data_manifest(shards), 2, 0)


def test_the_data_and_subset_code_paths_do_not_import_tensorflow():
    """Fast paths (synth, validate, shard, plan, subset) stay free of TensorFlow; the job side stays free
    of the CLI side."""
    code = (
        "import sys, sweep.data.synth, sweep.data.shard, sweep.data.plan, sweep.job.subset\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    job_side = (
        "import sys, sweep.job.subset\n"
        "bad = [m for m in sys.modules if m.startswith(('sweep.data', 'sweep.cli', 'typer', 'sweep.errors'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", job_side], check=True)
