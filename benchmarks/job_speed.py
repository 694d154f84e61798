"""Is a job's time its training? One run, side by side, on the demo data (2,000 images, 64 px, 3 epochs).

Runs the job itself (`python -m sweep.job`, no wrapper) on a 10 % and a 100 % item in alternating
rounds, and a plain Keras `fit` of the same model on in-memory arrays with the same threads, and prints:

- train stage of the 100 % item / that of the 10 % item            (target >= 5; issue 12 measured ~1.3)
- in the 10 % item, wall time outside the train stage / wall time   (target <= 30 %)
- steady-state training images/s, job / plain Keras fit             (target >= 0.8)
- what --export tflite (the old default) adds to a 10 % item
- with --baseline DIR (a folder holding an older `sweep` package, e.g. from `git archive OLD sweep | tar -x -C DIR`):
  the same two figures for that code's job, run in the same rounds

    .venv/bin/python benchmarks/job_speed.py [--images 2000] [--size 64] [--epochs 3] [--rounds 2] [--threads 2]
                                             [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import prepare_shards

from sweep import names
from sweep.job.subset import select_training_subset

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = ("0.1", "1.0")
BATCH = 32


@dataclass(frozen=True)
class Item:
    wall: float  # the python process, import included
    metrics: dict[str, Any]

    @property
    def timings(self) -> dict[str, float]:
        return self.metrics["timings"]


def run_item(
    shards: Path, out: Path, fraction: str, epochs: int, threads: int, *extra: str, code: Path = REPO
) -> Item:
    """One job as a node runs it (minus the wrapper), with the slot's OMP_NUM_THREADS; code: where `sweep` is."""
    args = [
        "--data",
        str(shards),
        "--out",
        str(out),
        "--fraction",
        fraction,
        "--replica",
        "0",
        "--seed",
        "1",
        "--subset-seed",
        "11",
        "--epochs",
        str(epochs),
        "--batch-size",
        str(BATCH),
        *extra,
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(code),
    }
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "sweep.job", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=code,
    )  # -m puts the cwd first on sys.path
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"job {fraction} failed: {result.stderr[-2000:]}")
    return Item(wall, json.loads((out / names.METRICS).read_text()))


def plain_fit_rate(shards: Path, size: int, epochs: int, threads: int) -> float:
    """Steady-state images/s of model.fit(arrays) of the job's model: the epochs after the first."""
    from sweep.job.run import import_tensorflow

    import_tensorflow(threads)  # the job's thread settings, before the first op
    import keras

    from sweep.job import dataset, imbalance, model

    manifest = json.loads((shards / names.DATA_MANIFEST).read_text())
    subset = select_training_subset(manifest, 1.0, 11)
    arrays = dataset.read_split(
        [shards / name for name in subset.shards], size, size, len(manifest["labels"])
    )
    images, labels = arrays.images, arrays.labels.astype("float32")
    keras.utils.set_random_seed(1)
    network = model.build_model(size, labels.shape[1], seed=1)
    model.compile_model(
        network, *imbalance.balanced_weights(labels.sum(axis=0).astype(int).tolist(), len(images)), 3e-3
    )
    timer = model.EpochTimer()
    network.fit(images, labels, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return len(images) * (epochs - 1) / sum(timer.seconds[1:])


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def median(items: list[Item], key: str) -> float:
    return statistics.median(item.timings[key] for item in items)


def trains(runs: list[Item]) -> str:
    return ", ".join(f"{r.timings['train']:.1f}" for r in runs)


def report_baseline(items: dict[str, list[Item]]) -> None:
    small, full = items["0.1"], items["1.0"]
    shares = [(r.wall - r.timings["train"]) / r.wall for r in small]
    print(
        f"baseline: train 100 % / 10 %   : {median(full, 'train'):6.1f} s / {median(small, 'train'):5.1f} s = "
        f"{median(full, 'train') / median(small, 'train'):5.2f}; 10 % item outside train "
        f"{statistics.median(shares):.1%} of wall (walls {', '.join(f'{r.wall:.1f}' for r in small)} s; "
        f"train per round {trains(small)} | {trains(full)} s; "
        f"AUC {small[0].metrics['auc_macro']:.4f} / {full[0].metrics['auc_macro']:.4f})"
    )


def report(items: dict[str, list[Item]], plain: list[float]) -> None:
    small, full = items["0.1"], items["1.0"]
    for fraction, runs in items.items():
        first = runs[0].metrics
        print(
            f"{fraction:>4} item: {first['train_images']} images; per round: "
            + " | ".join(
                f"wall {r.wall:5.1f} s, train {r.timings['train']:5.1f} (first epoch {r.timings['train_first_epoch']:4.1f}, "
                f"steady {r.timings['train_steady']:4.1f}, validation {r.timings['train_validation']:3.1f}), "
                f"import {r.timings['import']:3.1f}, data {r.timings['data_load']:3.1f}, "
                f"evaluate {r.timings['evaluate']:3.1f}, export {r.timings['export']:3.1f}, AUC {r.metrics['auc_macro']:.4f}"
                for r in runs
            )
        )
    ratio = median(full, "train") / median(small, "train")
    print(
        f"train stage 100 % / 10 %       : {median(full, 'train'):6.1f} s / {median(small, 'train'):5.1f} s = "
        f"{ratio:5.2f}   (target >= 5)"
    )
    shares = [(r.wall - r.timings["train"]) / r.wall for r in small]
    print(
        f"10 % item outside train stage  : median {statistics.median(shares):6.1%} of its wall time "
        f"(rounds: {', '.join(f'{s:.0%}' for s in shares)})   (target <= 30 %)"
    )
    job_rates = [r.metrics["train_steady_images_per_second"] for r in full]
    print(
        f"steady images/s, job 100 % item: median {statistics.median(job_rates):6.1f} "
        f"(rounds: {', '.join(f'{v:.0f}' for v in job_rates)})"
    )
    print(
        f"steady images/s, plain fit     : median {statistics.median(plain):6.1f} "
        f"(rounds: {', '.join(f'{v:.0f}' for v in plain)})"
    )
    print(
        f"ratio job / plain fit          : {statistics.median(job_rates) / statistics.median(plain):6.3f}   "
        f"(target >= 0.8)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of (10 %, 100 %, plain fit)"
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument(
        "--baseline", type=Path, default=None, help="a folder with an older sweep package to compare"
    )
    args = parser.parse_args()
    print(
        f"start: {load()}; {args.threads} threads, {args.images} images at {args.size} px, {args.epochs} epochs"
    )
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        prepare_shards(scratch, args.images, args.size)
        shards = scratch / "shards"
        items: dict[str, list[Item]] = {fraction: [] for fraction in FRACTIONS}
        baseline: dict[str, list[Item]] = {fraction: [] for fraction in FRACTIONS}
        plain: list[float] = []
        for round_ in range(args.rounds):
            for fraction in FRACTIONS:
                items[fraction].append(
                    run_item(
                        shards, scratch / f"out-{fraction}-{round_}", fraction, args.epochs, args.threads
                    )
                )
                if args.baseline:
                    baseline[fraction].append(
                        run_item(
                            shards,
                            scratch / f"old-{fraction}-{round_}",
                            fraction,
                            args.epochs,
                            args.threads,
                            code=args.baseline.resolve(),
                        )
                    )
            plain.append(_plain_in_subprocess(shards, args))
        exported = run_item(
            shards, scratch / "out-export", "0.1", args.epochs, args.threads, "--export", "tflite"
        )
        report(items, plain)
        if args.baseline:
            report_baseline(baseline)
        print(
            f"10 % item with --export tflite : export stage {exported.timings['export']:.1f} s, wall {exported.wall:.1f} s "
            f"(vs {statistics.median(i.timings['export'] for i in items['0.1']):.1f} s for model.keras alone)"
        )
    print(f"end: {load()}")


def _plain_in_subprocess(shards: Path, args: argparse.Namespace) -> float:
    """The plain fit in its own process, so that it starts as cold as a job and holds no memory between rounds."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from job_speed import plain_fit_rate; from pathlib import Path; "
        "print(plain_fit_rate(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))"
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(Path(__file__).parent),
            str(shards),
            str(args.size),
            str(args.epochs),
            str(args.threads),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"plain fit failed: {result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
