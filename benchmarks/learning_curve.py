"""Does AUC rise with the amount of training data? A small sweep, run locally, job by job.

Synthesizes a ChestX-ray14 look-alike, shards it, and runs `python -m sweep.job` for every
fraction x replica exactly as an execute node would: in a sandbox folder holding only the files
the item's data plan lists, side by side. Prints each job's test macro AUC, how many labels get
positive predictions at the validation-chosen thresholds, the bytes the plan moves, and the
mean and spread of AUC per fraction.

    .venv/bin/python benchmarks/learning_curve.py [--images 2000] [--size 64] [--epochs 3]
        [--replicas 3] [--fractions 0.1,0.5,1.0] [--keep DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import prepare_shards

from sweep import names
from sweep.data.manifest import DataManifest
from sweep.data.plan import plan_item_inputs
from sweep.spec import Item, SweepSpec, fraction_label, parse_fractions


def sandbox_for(item: Item, manifest: DataManifest, root: Path) -> tuple[Path, int]:
    """A folder with the item's planned files in it, flat, as HTCondor would transfer them."""
    plan = plan_item_inputs(manifest, item.fraction, item.subset_seed)
    sandbox = root / item.name
    sandbox.mkdir(parents=True)
    for file in plan.files:
        try:
            os.link(manifest.folder / file, sandbox / file)
        except OSError:
            shutil.copy2(manifest.folder / file, sandbox / file)
    return sandbox, plan.bytes


def run_item(item: Item, sandbox: Path, epochs: int, batch_size: int, threads: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "sweep.job",
        "--data",
        ".",
        "--out",
        names.JOB_OUTPUT_DIR,
        "--fraction",
        str(item.fraction),
        "--replica",
        str(item.replica),
        "--seed",
        str(item.seed),
        "--subset-seed",
        str(item.subset_seed),
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, cwd=sandbox, env=env, capture_output=True, text=True, check=False)
    out = sandbox / names.JOB_OUTPUT_DIR
    if result.returncode != 0:
        error = out / names.ERROR
        raise RuntimeError(error.read_text() if error.exists() else result.stderr[-3000:])
    return json.loads((out / names.METRICS).read_text())


def summarize(metrics: dict[str, Any], plan_bytes: int) -> dict[str, Any]:
    youden = metrics["thresholds"]["youden"]
    rates = [
        entry["predicted_positive_rate"] for entry in youden.values() if entry.get("threshold") is not None
    ]
    return {
        "fraction": metrics["fraction"],
        "replica": metrics["replica"],
        "train_images": metrics["train_images"],
        "plan_bytes": plan_bytes,
        "auc_macro": metrics["auc_macro"],
        "auc_labels_evaluated": metrics["auc_labels_evaluated"],
        "labels_thresholded": len(rates),
        "labels_predicting_positives": metrics["labels_predicting_positives"],
        "mean_predicted_positive_rate_youden": statistics.mean(rates) if rates else None,
        "train_seconds": metrics["timings"]["train"],
        "total_seconds": metrics["timings"]["total"],
    }


def print_row(row: dict[str, Any]) -> None:
    predicting = row["labels_predicting_positives"]
    print(
        f"  f={row['fraction']:<5} r={row['replica']}  train {row['train_images']:5d} images  "
        f"plan {row['plan_bytes'] / 1e6:5.2f} MB  AUC {row['auc_macro']:.3f} over {row['auc_labels_evaluated']} labels  "
        f"positives predicted for {predicting['youden']}/{row['labels_thresholded']} (Youden), "
        f"{predicting['lowest_positive']} (lowest positive), {predicting['fixed_0.5']} (0.5)  "
        f"train {row['train_seconds']:.1f} s, job {row['total_seconds']:.1f} s",
        flush=True,
    )


def print_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    print("\nper fraction: mean test macro AUC (sd) over replicas")
    summary = {}
    for fraction in sorted({row["fraction"] for row in rows}):
        group = [row for row in rows if row["fraction"] == fraction]
        aucs = [row["auc_macro"] for row in group]
        spread = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
        summary[fraction] = {
            "auc_mean": statistics.mean(aucs),
            "auc_sd": spread,
            "aucs": aucs,
            "plan_bytes": statistics.mean(row["plan_bytes"] for row in group),
            "train_images": statistics.mean(row["train_images"] for row in group),
        }
        print(
            f"  {fraction:<5} AUC {statistics.mean(aucs):.3f} (sd {spread:.3f})  "
            f"[{', '.join(f'{a:.3f}' for a in aucs)}]  {summary[fraction]['train_images']:.0f} train images, "
            f"{summary[fraction]['plan_bytes'] / 1e6:.2f} MB moved"
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--fractions", default="0.1,0.5,1.0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", default="2", help="OMP_NUM_THREADS of each job")
    parser.add_argument(
        "--keep", type=Path, help="work here and keep everything (default: a temporary folder)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows and the summary here")
    args = parser.parse_args()
    spec = SweepSpec(
        name="curve",
        fractions=parse_fractions(args.fractions),
        replicas=args.replicas,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
    )
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = args.keep or Path(scratch_dir)
        prepared = prepare_shards(scratch, args.images, args.size, seed=args.seed)
        print(
            f"synth {args.images} images at {args.size} px: {prepared.synth_seconds:.1f} s; "
            f"shard: {prepared.shard_seconds:.1f} s ({prepared.manifest.summary()})"
        )
        print(
            f"{len(spec.items())} jobs: fractions {', '.join(fraction_label(f) for f in spec.fractions)} x "
            f"{args.replicas} replicas, {args.epochs} epochs, batch {args.batch_size}, {args.threads} threads each"
        )
        rows = []
        for item in spec.items():
            sandbox, plan_bytes = sandbox_for(item, prepared.manifest, scratch / "items")
            rows.append(
                summarize(run_item(item, sandbox, args.epochs, args.batch_size, args.threads), plan_bytes)
            )
            print_row(rows[-1])
        summary = print_summary(rows)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "rows": rows,
                        "summary": summary,
                        "synth_seconds": prepared.synth_seconds,
                        "shard_seconds": prepared.shard_seconds,
                    },
                    indent=2,
                )
            )


if __name__ == "__main__":
    main()
