"""Fraction specs, replicas, resources, names and seeds: exact values and clear refusals."""

from decimal import Decimal

import pytest

from sweep.errors import SpecError
from sweep.spec import (
    SweepSpec,
    derive_seed,
    parse_disk_kb,
    parse_fractions,
    parse_memory_mb,
    parse_positive_int,
    parse_replicas,
    validate_backend,
    validate_name,
)


def test_default_range_gives_exactly_ten_fractions_ending_at_one():
    fractions = parse_fractions("0.1..1.0")
    assert [str(f) for f in fractions] == [
        "0.1",
        "0.2",
        "0.3",
        "0.4",
        "0.5",
        "0.6",
        "0.7",
        "0.8",
        "0.9",
        "1.0",
    ]
    assert [float(f) for f in fractions][2] == 0.3  # no 0.30000000000000004


def test_range_with_step():
    fractions = parse_fractions("0.1..1.0:0.05")
    assert len(fractions) == 19
    assert fractions[0] == Decimal("0.1") and fractions[-1] == Decimal("1.0")


def test_range_stops_before_passing_the_end_like_seq():
    assert parse_fractions("0.1..1.0:0.4") == (Decimal("0.1"), Decimal("0.5"), Decimal("0.9"))


def test_list_is_sorted_and_single_value_allowed():
    assert parse_fractions("0.5,0.05,0.1") == (Decimal("0.05"), Decimal("0.1"), Decimal("0.5"))
    assert parse_fractions(" 1 ") == (Decimal("1"),)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("1..0.1", "backwards"),
        ("0..1", "0 is outside"),
        ("0.1..1.5", "1.5"),
        ("a..b", "'a'"),
        ("0.1..1.0:0", "step 0"),
        ("", "empty"),
        ("   ", "empty"),
        ("0.1,0.1", "more than once"),
        ("0.1,,0.2", "not a number"),
        ("-0.1", "-0.1"),
        ("nan", "finite"),
        ("0.1..1.0:-0.1", "step -0.1"),
    ],
)
def test_bad_fractions_name_the_value_and_the_accepted_forms(text, named):
    with pytest.raises(SpecError) as error:
        parse_fractions(text)
    message = str(error.value)
    assert named in message
    assert "accepted forms" in message


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", ""])
def test_bad_replicas(value):
    with pytest.raises(SpecError, match="replicas") as error:
        parse_replicas(value)
    assert ">= 1" in str(error.value)


def test_replicas_ok():
    assert parse_replicas("5") == 5


def test_sizes_in_condor_units():
    assert parse_memory_mb("4GB") == 4096
    assert parse_memory_mb("512") == 512
    assert parse_memory_mb("1.5g") == 1536
    assert parse_disk_kb("8GB") == 8 * 1024 * 1024
    for bad in ("lots", "4 XB", "-1GB", "0"):
        with pytest.raises(SpecError, match="accepted"):
            parse_memory_mb(bad)


def test_positive_int_bounds():
    assert parse_positive_int("epochs", "3") == 3
    with pytest.raises(SpecError, match="epochs 0"):
        parse_positive_int("epochs", "0")
    with pytest.raises(SpecError, match="<= 64"):
        parse_positive_int("request-cpus", "65", maximum=64)


@pytest.mark.parametrize(
    "name", ["my sweep", "a/b", "x'y", 'q"', "new\nline", "queue 5", "+Attr = 1", "", "-lead", "a" * 65]
)
def test_bad_names_refused(name):
    with pytest.raises(SpecError, match="accepted"):
        validate_name(name)


def test_good_names():
    for name in ("demo", "chestxray-2026.11_v2", "A1"):
        assert validate_name(name) == name


def test_backend():
    assert validate_backend("condor") == "condor"
    with pytest.raises(SpecError, match="local, condor"):
        validate_backend("slurm")


def test_items_have_stable_distinct_seeds_and_shared_subset_seed_per_replica():
    spec = SweepSpec(name="t", fractions=parse_fractions("0.1..1.0"), replicas=5, seed=7)
    items = spec.items()
    assert len(items) == 50
    assert len({item.seed for item in items}) == 50
    assert len({item.name for item in items}) == 50
    by_replica = {}
    for item in items:
        by_replica.setdefault(item.replica, set()).add(item.subset_seed)
    assert all(len(seeds) == 1 for seeds in by_replica.values())
    assert len({next(iter(s)) for s in by_replica.values()}) == 5
    # deterministic across runs and machines: pinned value
    assert derive_seed(7, "0.1", 0) == items[0].seed
    assert SweepSpec(name="t", fractions=spec.fractions, replicas=5, seed=7).items() == items
    assert SweepSpec(name="t", fractions=spec.fractions, replicas=5, seed=8).items()[0].seed != items[0].seed


def test_item_names_are_short_and_exact():
    spec = SweepSpec(name="t", fractions=parse_fractions("0.05,0.1,1.0"), replicas=1)
    assert [item.name for item in spec.items()] == ["f0.05_r0", "f0.1_r0", "f1_r0"]


def test_spec_round_trips_through_dict():
    spec = SweepSpec(name="t", fractions=parse_fractions("0.1..0.3"), replicas=2, seed=3, epochs=2)
    assert SweepSpec.from_dict(spec.to_dict()) == spec
