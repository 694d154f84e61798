"""SweepSpec: what a sweep is, parsed and validated from what a user typed.

Fractions are parsed with Decimal so that ``0.1..1.0`` gives exactly 0.1, 0.2, ..., 1.0:
float stepping drifts (0.30000000000000004) and can lose the end point.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sweep.errors import SpecError

FRACTION_FORMS = (
    "accepted forms: a range START..END (step 0.1), a range with a step START..END:STEP, "
    "or a list F1,F2,...; every fraction in (0, 1], e.g. 0.1..1.0, 0.1..1.0:0.05, 0.05,0.1,0.5"
)
DEFAULT_STEP = Decimal("0.1")
MAX_ITEMS = 100_000  # far above any sane sweep; stops "0.000001..1:0.000001" from eating memory

# What the TensorFlow wheels in the job environment need of the CPU: the job wrapper checks
# these very flags (exit 132 if one is missing), and the default requirement asks the startd's
# has_<flag> attributes for them and nothing else. Not `Microarch >= "x86_64-v3"`: that level
# also needs abm, movbe, bmi1/2, f16c, fma and xsave in /proc/cpuinfo, which hypervisors often
# hide on CPUs that do have AVX2; such a pool then matches no slot and every job stays idle.
REQUIRED_CPU_FLAGS = ("avx", "avx2")
# `=?=` so that machines which do not advertise an attribute at all do not match by accident.
DEFAULT_REQUIREMENTS = " && ".join(f"(has_{flag} =?= true)" for flag in REQUIRED_CPU_FLAGS)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_RULE = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"

MEMORY_UNITS_MB = {
    "": 1,
    "K": 1 / 1024,
    "KB": 1 / 1024,
    "M": 1,
    "MB": 1,
    "G": 1024,
    "GB": 1024,
    "T": 1024**2,
    "TB": 1024**2,
}
DISK_UNITS_KB = {
    "": 1,
    "K": 1,
    "KB": 1,
    "M": 1024,
    "MB": 1024,
    "G": 1024**2,
    "GB": 1024**2,
    "T": 1024**3,
    "TB": 1024**3,
}
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]B?)?\s*$", re.IGNORECASE)


def _decimal(text: str, whole: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SpecError(f"fractions {whole!r}: {text.strip()!r} is not a number; {FRACTION_FORMS}") from None
    if not value.is_finite():
        raise SpecError(f"fractions {whole!r}: {text.strip()!r} is not a finite number; {FRACTION_FORMS}")
    return value


def _check_fraction(value: Decimal, whole: str) -> None:
    if not (Decimal(0) < value <= Decimal(1)):
        raise SpecError(f"fractions {whole!r}: {value} is outside (0, 1]; {FRACTION_FORMS}")


def parse_fractions(text: str) -> tuple[Decimal, ...]:
    """Parse a fraction spec into exact, sorted, distinct fractions in (0, 1]."""
    whole = text
    text = text.strip()
    if not text:
        raise SpecError(f"fractions {whole!r} is empty; {FRACTION_FORMS}")
    if ".." in text:
        return _parse_range(text, whole)
    values = [_decimal(part, whole) for part in text.split(",")]
    for value in values:
        _check_fraction(value, whole)
    if len(set(values)) != len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        raise SpecError(f"fractions {whole!r}: {', '.join(repeated)} given more than once; {FRACTION_FORMS}")
    return tuple(sorted(values))


def _parse_range(text: str, whole: str) -> tuple[Decimal, ...]:
    bounds, _, step_text = text.partition(":")
    start_text, _, end_text = bounds.partition("..")
    start, end = _decimal(start_text, whole), _decimal(end_text, whole)
    step = _decimal(step_text, whole) if step_text else DEFAULT_STEP
    _check_fraction(start, whole)
    _check_fraction(end, whole)
    if start > end:
        raise SpecError(f"fractions {whole!r}: the range runs backwards ({start} > {end}); {FRACTION_FORMS}")
    if step <= 0:
        raise SpecError(f"fractions {whole!r}: the step {step} must be greater than 0; {FRACTION_FORMS}")
    count = int((end - start) / step) + 1
    if count > MAX_ITEMS:
        raise SpecError(f"fractions {whole!r}: {count} fractions is more than {MAX_ITEMS}; use a larger step")
    # Like `seq`: every START + k*STEP that does not pass END, computed exactly.
    return tuple(start + k * step for k in range(count))


def parse_replicas(value: int | str) -> int:
    try:
        replicas = int(str(value).strip())
    except ValueError:
        raise SpecError(f"replicas {value!r} is not a whole number; accepted: a whole number >= 1") from None
    if replicas < 1:
        raise SpecError(f"replicas {replicas} is too small; accepted: a whole number >= 1")
    return replicas


def parse_positive_int(what: str, value: int | str, maximum: int | None = None, minimum: int = 1) -> int:
    """A count such as epochs or request_cpus: a whole number >= minimum (and <= maximum)."""
    accepted = f"a whole number >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SpecError(f"{what} {value!r} is not a whole number; accepted: {accepted}") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise SpecError(f"{what} {number} is out of range; accepted: {accepted}")
    return number


def _parse_size(what: str, value: str, units: Mapping[str, float], unit_name: str) -> int:
    match = SIZE_PATTERN.match(str(value))
    if not match:
        raise SpecError(
            f"{what} {value!r} is not a size; accepted: a number with an optional unit K, M, G or T "
            f"(e.g. 4GB, 512MB; a bare number means {unit_name})"
        )
    number, unit = float(match.group(1)), (match.group(2) or "").upper()
    size = int(round(number * units[unit]))
    if size < 1:
        raise SpecError(f"{what} {value!r} is too small; accepted: at least 1 {unit_name}")
    return size


def parse_memory_mb(value: str) -> int:
    """HTCondor's request_memory is in MiB."""
    return _parse_size("request-memory", value, MEMORY_UNITS_MB, "MB")


def parse_disk_kb(value: str) -> int:
    """HTCondor's request_disk is in KiB."""
    return _parse_size("request-disk", value, DISK_UNITS_KB, "KB")


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise SpecError(f"sweep name {name!r} is not allowed; accepted: {NAME_RULE}")
    return name


def derive_seed(base: int, *parts: object) -> int:
    """A stable 31-bit seed for (base, parts...): the same on every machine and Python version."""
    digest = hashlib.sha256(":".join(str(p) for p in (base, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def fraction_label(fraction: Decimal) -> str:
    """0.1 -> '0.1', 1.0 -> '1', 0.05 -> '0.05': short, exact, safe in file names."""
    return format(fraction.normalize(), "f")


@dataclass(frozen=True)
class Item:
    """One training job: a fraction of the training data and one replica of it."""

    fraction: Decimal
    replica: int
    seed: int  # weights, shuffling: differs for every item
    subset_seed: int  # which patients: the same for all fractions of a replica, so subsets nest

    @property
    def name(self) -> str:
        return f"f{fraction_label(self.fraction)}_r{self.replica}"


@dataclass(frozen=True)
class Resources:
    cpus: int = 1
    memory_mb: int = 2048  # measured: ~1 GB peak RSS for the small CNN
    disk_kb: int = 3 * 1024 * 1024  # ~1.5 GB unpacked environment + its tarballs + the data files


@dataclass(frozen=True)
class SweepSpec:
    name: str
    fractions: tuple[Decimal, ...]
    replicas: int
    seed: int = 0
    epochs: int = 5
    batch_size: int = 32
    resources: Resources = field(default_factory=Resources)
    requirements: str | None = DEFAULT_REQUIREMENTS  # None: no CPU requirement at all
    backend: str = "local"
    submit_options: tuple[tuple[str, str], ...] = ()  # (key, value) added to the submit description
    export: str | None = None  # "tflite": every job also converts its model (default: only `sweep export`)

    def items(self) -> list[Item]:
        return [
            Item(
                fraction=fraction,
                replica=replica,
                seed=derive_seed(self.seed, fraction_label(fraction), replica),
                subset_seed=derive_seed(self.seed, "subset", replica),
            )
            for fraction in self.fractions
            for replica in range(self.replicas)
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "fractions": [fraction_label(f) for f in self.fractions],
            "replicas": self.replicas,
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "resources": {
                "cpus": self.resources.cpus,
                "memory_mb": self.resources.memory_mb,
                "disk_kb": self.resources.disk_kb,
            },
            "requirements": self.requirements,
            "backend": self.backend,
            "submit_options": [list(option) for option in self.submit_options],
            "export": self.export,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SweepSpec:
        return cls(
            name=data["name"],
            fractions=tuple(Decimal(f) for f in data["fractions"]),
            replicas=int(data["replicas"]),
            seed=int(data["seed"]),
            epochs=int(data["epochs"]),
            batch_size=int(data["batch_size"]),
            resources=Resources(**data["resources"]),
            requirements=data["requirements"],
            backend=data["backend"],
            submit_options=tuple((str(key), str(value)) for key, value in data.get("submit_options", [])),
            export=data.get("export"),
        )


BACKENDS = ("local", "condor")


def validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise SpecError(f"backend {backend!r} is unknown; accepted: {', '.join(BACKENDS)}")
    return backend
