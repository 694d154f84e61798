"""How well the local backend packs real jobs into its slots, and what the wrapper costs per item.

    .venv/bin/python benchmarks/local_backend.py [--images 600] [--size 32] [--replicas 2] [--epochs 1]

Runs a real small sweep (synthetic data, the packed environment, TensorFlow training) and prints,
measured in that one run:
- the sweep's wall time / (sum of item wall times / parallel slots)   target <= 1.2
- the per-item overhead of the wrapper (unpack + interpreter start + TensorFlow import) as a share
  of the item's wall time, median over items (the first item also pays the one-time unpack into
  the shared environment cache; it is printed on its own).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from sweep.backends.local import local_slots
from sweep.collect import collect_sweep
from sweep.data.shard import shard_dataset
from sweep.data.synth import synthesize
from sweep.fs import read_json
from sweep.resources import default_env_cache, job_requirements
from sweep.spec import SweepSpec, parse_fractions
from sweep.submitting import SubmitRequest, submit_sweep
from sweep.tracking import wait_for_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        synthesize(root / "source", images=args.images, size=args.size, seed=0)
        shard_dataset(root / "source", root / "shards", size=args.size)
        spec = SweepSpec(
            name="bench",
            fractions=parse_fractions("0.25..1:0.25"),
            replicas=args.replicas,
            epochs=args.epochs,
        )
        request = SubmitRequest(
            spec=spec,
            data_dir=root / "shards",
            sweeps_dir=root / "sweeps",
            requirements_file=job_requirements(),
            env_cache=default_env_cache(),
            backend={"name": "local"},
        )
        started = time.monotonic()
        sweep, manifest = submit_sweep(request)
        statuses = wait_for_sweep(root / "sweeps", "bench", lambda *_: None, interval=0.2)
        sweep_wall = time.monotonic() - started
        results = pd.read_csv(collect_sweep(root / "sweeps", "bench").csv)
        starts = {}
        for item in results["item"]:
            wrapper = read_json(sweep.item_output(item) / "wrapper.json")
            starts[item] = float(wrapper.get("interpreter_start") or 0.0)  # type: ignore[union-attr]
    slots = local_slots(spec.resources.cpus)
    busy = sum(s.wall_time or 0.0 for s in statuses.values())
    results["overhead"] = (
        results["t_unpack"].fillna(0) + results["item"].map(starts) + results["t_import"].fillna(0)
    )
    results["share"] = results["overhead"] / results["wall_time"]
    first = results.loc[results["t_unpack"].idxmax()]
    print(f"items: {len(results)} ({results['state'].value_counts().to_dict()}), slots: {slots}")
    print(f"sweep wall time: {sweep_wall:.1f} s; sum of item wall times: {busy:.1f} s")
    print(f"sweep wall / (sum of item walls / slots): {sweep_wall / (busy / slots):.2f} (target <= 1.2)")
    print(
        f"wrapper overhead (unpack + interpreter + TensorFlow import) / item wall, median: "
        f"{statistics.median(results['share']):.2f} (median overhead {statistics.median(results['overhead']):.1f} s "
        f"of {statistics.median(results['wall_time']):.1f} s)"
    )
    print(
        f"largest unpack (the item that filled the shared environment cache, if it was empty): {first['t_unpack']:.1f} s, "
        f"overhead share {first['share']:.2f}"
    )


if __name__ == "__main__":
    main()
