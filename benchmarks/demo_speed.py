"""Is the demo sweep faster than the code before the job-speed work? One run, side by side.

Runs the demo's sweep (10 fractions x 3 replicas, 3 epochs, 64 px, 1 CPU per job, local backend)
twice on the same shards: once with this checkout's `sweep`, once with the code of an older commit
(default 82132e1, main just before the job-speed work of issue 12), and prints each sweep's wall time
from `submit` to the last item finished, their ratio (target >= 3), the mean stage times per item and
the mean test macro AUC per fraction of both (the speed must not cost accuracy).

The old code is built from `git archive REV` into a scratch folder and run with this interpreter
(its dependencies are this venv's); its jobs use the environment its own lock file names, packed
into the shared cache on first use. With --make-demo it also times `make demo` in a fresh clone of
this repository (warm pip cache, environment cache shared): what a new user waits for.

    .venv/bin/python benchmarks/demo_speed.py [--baseline-rev 82132e1] [--order old,new] [--make-demo]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import prepare_shards

from sweep.results_schema import T_EVALUATE, T_EXPORT, T_IMPORT, T_LOAD, T_TRAIN, T_UNPACK, WALL_TIME

STAGE_COLUMNS = (T_UNPACK, T_IMPORT, T_LOAD, T_TRAIN, T_EVALUATE, T_EXPORT, WALL_TIME)

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def build_old_code(rev: str, scratch: Path) -> Path:
    """The old commit installed (not editable) into a folder that goes first on PYTHONPATH."""
    source, target = scratch / "old-src", scratch / "old-pkg"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        check=True,
    )  # fmt: skip
    return target


def sweep_command(pythonpath: Path | None) -> tuple[list[str], dict[str, str]]:
    # run from the scratch folder (cwd): from the repository, `python -m` would import ./sweep first
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return [sys.executable, "-m", "sweep"], env


def run_sweep(label: str, pythonpath: Path | None, shards: Path, sweeps: Path, grid: list[str]) -> float:
    command, env = sweep_command(pythonpath)
    where = subprocess.run(
        [*command[:1], "-c", "import sweep; print(sweep.__file__)"], env=env, cwd=sweeps.parent, capture_output=True, text=True, check=True
    )  # fmt: skip
    print(f"{label}: sweep from {Path(where.stdout.strip()).parent}; start {load()}", flush=True)
    common = ["--sweeps-dir", str(sweeps)]
    started = time.perf_counter()
    subprocess.run(
        [*command, "submit", *grid, "--request-cpus", "1", "--data", str(shards), "--name", label, "--backend", "local", *common],
        env=env, cwd=sweeps.parent, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    subprocess.run(
        [*command, "status", label, "--watch", *common],
        env=env,
        cwd=sweeps.parent,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    subprocess.run(
        [*command, "collect", label, *common],
        env=env,
        cwd=sweeps.parent,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"{label}: {seconds:.0f} s; end {load()}", flush=True)
    return seconds


def item_summary(sweep_dir: Path) -> tuple[dict[str, float], pd.Series]:
    """Mean seconds per item of each stage (the collected t_* columns) and mean test macro AUC per fraction."""
    results = pd.read_csv(sweep_dir / "results.csv")
    stages = {
        column.removeprefix("t_"): float(results[column].mean())
        for column in STAGE_COLUMNS
        if column in results
    }
    return stages, results.groupby("fraction")["auc_macro"].mean()


def time_make_demo(scratch: Path) -> float:
    clone = scratch / "fresh-clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    print(f"make demo in a fresh clone: start {load()}", flush=True)
    started = time.perf_counter()
    subprocess.run(["make", "demo"], cwd=clone, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    print(f"make demo in a fresh clone: {seconds:.0f} s; end {load()}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="82132e1", help="the older commit to compare with")
    parser.add_argument("--order", default="old,new", help="which sweep runs first")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--fractions", default="0.1..1.0")
    parser.add_argument("--replicas", default="3")
    parser.add_argument("--epochs", default="3")
    parser.add_argument("--make-demo", action="store_true", help="also time `make demo` in a fresh clone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="demo-speed-") as scratch_dir:
        scratch = Path(scratch_dir)
        prepare_shards(scratch, args.images, args.size)  # the same shards for both
        code = {"old": build_old_code(args.baseline_rev, scratch), "new": None}
        grid = ["--fractions", args.fractions, "--replicas", args.replicas, "--epochs", args.epochs]
        seconds = {
            label: run_sweep(label, code[label], scratch / "shards", scratch / "sweeps", grid)
            for label in args.order.split(",")
        }
        summaries = {label: item_summary(scratch / "sweeps" / label) for label in seconds}
        print(
            f"\ndemo sweep ({args.fractions} x {args.replicas}, 2 slots) old {args.baseline_rev}: {seconds['old']:.0f} s, new: {seconds['new']:.0f} s"
        )
        print(f"speed-up old / new             : {seconds['old'] / seconds['new']:.2f}   (target >= 3)")
        for label, (stages, _) in summaries.items():
            print(
                f"{label} mean per item (s): "
                + ", ".join(f"{stage} {value:.1f}" for stage, value in stages.items())
            )
        aucs = pd.DataFrame({label: auc for label, (_, auc) in summaries.items()})
        print("mean test macro AUC per fraction:\n" + aucs.round(4).to_string())
        if args.make_demo:
            minutes = time_make_demo(scratch) / 60
            print(f"make demo, fresh clone, warm pip cache: {minutes:.1f} min   (target <= 5 min)")


if __name__ == "__main__":
    main()
