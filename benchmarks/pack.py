"""Packing and unpacking the real site-packages: sweep's way against plain `tar czf` / `tar xzf`.

    .venv/bin/python benchmarks/pack.py [--repeat N]

Both sides run on the same tree in the same run, alternating, so the ratios hold on a busy
machine even when the absolute times do not. The tree is the real job environment's
site-packages (built or found in envs/cache/ by `build_environment`, unpacked to a temp folder).
Targets: pack time / tar czf <= 0.15.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sweep.archive import write_tar_zstd
from sweep.elfscan import scan_tree
from sweep.envfiles import SITE_DIR, select_site_packages
from sweep.fs import sha256_file
from sweep.pack import build_environment

REPO = Path(__file__).resolve().parent.parent


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def run(command: list[str]) -> None:
    subprocess.run(command, check=True)


def fresh(folder: Path) -> Path:
    run(["rm", "-rf", str(folder)])
    folder.mkdir()
    return folder


def sweep_pack(root: Path, dest: Path) -> None:
    """What `sweep pack` does to a site-packages tree: select, tar | zstd -T0 -3, scan ELF files."""
    selection = select_site_packages(root / SITE_DIR)
    write_tar_zstd(selection.root, selection.relpaths, dest)
    scan_tree(selection.elf_candidates)


def count_files(tree: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files below `tree`."""
    sizes = [p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(sizes), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of each measurement (median shown)")
    args = parser.parse_args()
    env = build_environment(REPO / "envs" / "requirements-job.txt", REPO / "envs" / "cache").env
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as scratch:
        work = Path(scratch)
        tree = work / "tree"
        run([sys.executable, "-m", "sweep.job.unpack", str(env.site_packages.path),
             "--sha256", env.site_packages.sha256, "--dest", str(tree)])  # fmt: skip
        size, files = count_files(tree)
        print(f"site-packages: {size / 1e6:.0f} MB, {files} files (the slimmed job environment)")
        ours, gz = work / "ours.tar.zst", work / "theirs.tar.gz"
        times: dict[str, list[float]] = {"pack": [], "tar czf": [], "unpack": [], "tar xzf": []}
        for _ in range(args.repeat):
            times["pack"].append(timed(sweep_pack, tree, ours))
            times["tar czf"].append(timed(run, ["tar", "czf", str(gz), "-C", str(tree), SITE_DIR]))
        unpack = [
            sys.executable,
            "-m",
            "sweep.job.unpack",
            str(ours),
            "--sha256",
            sha256_file(ours),
            "--dest",
        ]
        for _ in range(args.repeat):
            ours_dest, gz_dest = fresh(work / "out-ours"), fresh(work / "out-gz")
            os.sync()  # the previous round's 3 GB of dirty pages must not be flushed on this round's clock
            times["unpack"].append(timed(run, [*unpack, str(ours_dest)]))
            os.sync()
            times["tar xzf"].append(timed(run, ["tar", "xzf", str(gz), "-C", str(gz_dest)]))
        ours_size, gz_size = ours.stat().st_size, gz.stat().st_size
    report("pack", "tar czf", times, "(target <= 0.15)")
    print(
        f"size:   sweep {ours_size / 1e6:6.0f} MB  tar czf {gz_size / 1e6:6.0f} MB  ratio {ours_size / gz_size:.3f}"
    )
    report("unpack", "tar xzf", times, "(sweep also checks sha256 and every member first)")
    print(
        f"rounds: {args.repeat}; "
        + ", ".join(f"{k} {[round(v, 1) for v in vs]} s" for k, vs in times.items())
    )


def report(ours: str, theirs: str, times: dict[str, list[float]], note: str) -> None:
    """Medians, and the median of the per-round ratios (each round measured both side by side)."""
    ratio = statistics.median(a / b for a, b in zip(times[ours], times[theirs], strict=True))
    print(f"{ours + ':':7} sweep {statistics.median(times[ours]):6.1f} s   {theirs} "
          f"{statistics.median(times[theirs]):6.1f} s   ratio {ratio:.3f}  {note}")  # fmt: skip


if __name__ == "__main__":
    main()
