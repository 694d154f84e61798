"""`sweep demo`: synthesize -> shard -> pack -> submit (local) -> watch -> collect -> report.

Each step is the library call the matching command makes; finished steps are reused on a
second run (the dataset and shards are found by their parameters, the environment by its hash),
and the sweep itself is replaced, so the demo can be run again and again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sweep import names
from sweep.spec import Resources, SweepSpec, parse_fractions

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    images: int = 2000
    size: int = 64
    seed: int = 0
    fractions: str = "0.1..1.0"
    replicas: int = 3
    epochs: int = 3
    name: str = "demo"


@dataclass(frozen=True)
class DemoResult:
    sweep_dir: Path
    results_csv: Path
    report_html: Path
    counts: dict[str, int]


def dataset_dir(settings: DemoSettings) -> Path:
    return settings.workdir / f"chestxray-synth-{settings.images}x{settings.size}-seed{settings.seed}"


def shards_dir(settings: DemoSettings) -> Path:
    return settings.workdir / f"shards-{settings.images}x{settings.size}-seed{settings.seed}"


def ensure_dataset(settings: DemoSettings, say: Say) -> Path:
    from sweep.data.synth import synthesize

    folder = dataset_dir(settings)
    if (folder / "Data_Entry_2017.csv").is_file():
        say(f"dataset: reusing {folder}")
        return folder
    say(f"dataset: synthesizing {settings.images} images of {settings.size} px into {folder}")
    synthesize(folder, images=settings.images, size=settings.size, seed=settings.seed)
    return folder


def ensure_shards(settings: DemoSettings, source: Path, say: Say) -> Path:
    from sweep.data.shard import shard_dataset

    folder = shards_dir(settings)
    if (folder / names.DATA_MANIFEST).is_file():
        say(f"shards: reusing {folder}")
        return folder
    say(f"shards: writing TFRecords into {folder}")
    shard_dataset(source, folder, size=settings.size)
    return folder


def run_demo(
    settings: DemoSettings,
    *,
    requirements_file: Path,
    env_cache: Path,
    say: Say,
    watch: Callable[[Path, str], None],
) -> DemoResult:
    from sweep.collect import collect_sweep
    from sweep.submitting import SubmitRequest, submit_sweep

    settings.workdir.mkdir(parents=True, exist_ok=True)
    shards = ensure_shards(settings, ensure_dataset(settings, say), say)
    spec = SweepSpec(
        name=settings.name, fractions=parse_fractions(settings.fractions), replicas=settings.replicas,
        seed=settings.seed, epochs=settings.epochs, resources=Resources(cpus=1, memory_mb=2048, disk_kb=4 * 1024**2),
    )  # fmt: skip
    sweeps_dir = settings.workdir / "sweeps"
    request = SubmitRequest(
        spec=spec,
        data_dir=shards.resolve(),
        sweeps_dir=sweeps_dir,
        requirements_file=requirements_file,
        env_cache=env_cache,
        backend={"name": "local"},
        replace_existing=True,
    )
    sweep, manifest = submit_sweep(request, progress=say)
    say(f"sweep: {len(manifest.items)} items running on this machine")
    watch(sweeps_dir, settings.name)
    collected = collect_sweep(sweeps_dir, settings.name)
    say(f"collected {collected.rows} rows into {collected.csv}")
    report_html = make_report(sweeps_dir, settings.name, say)
    return DemoResult(
        sweep_dir=sweep.path, results_csv=collected.csv, report_html=report_html, counts=collected.counts
    )


def make_report(sweeps_dir: Path, name: str, say: Say) -> Path:
    from sweep.reporting import report_sweep

    html = Path(report_sweep(sweeps_dir, name).files["report"])
    say(f"report: {html}")
    return html
