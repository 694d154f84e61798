"""One 1,000-item submit transaction versus 1,000 single-item submits, side by side on one schedd.

Run against a pool (the project's: scripts/personal-pool up; eval "$(scripts/personal-pool env)"):
    .venv/bin/python benchmarks/submit.py [--items 1000]
The jobs are rendered by sweep itself with requirements that no machine matches, timed, then removed.
Targets: the transaction <= 2 s and >= 20x faster than single submits. Two baselines: single
submits from one process (bindings and security session reused), and one process per submit
(how per-job submit files are usually sent: a few of them timed, the median scaled to --items).
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
import time
from dataclasses import dataclass
from pathlib import Path

import htcondor2

from sweep.backends.condor import CondorBackend
from sweep.pack import EnvManifest, Tarball
from sweep.render import render_submission
from sweep.spec import SweepSpec, parse_fractions


@dataclass(frozen=True)
class Plan:
    files: tuple[str, ...]


def rendered_sweep(folder: Path, items: int):
    def tarball(name: str) -> Tarball:
        (folder / name).write_bytes(b"x")
        return Tarball(path=folder / name, sha256="0" * 64, bytes=1, files=1, compression="gzip")

    env = EnvManifest(
        key="bench",
        python_version="3.11",
        platform="linux-x86_64",
        glibc_min="2.17",
        interpreter=tarball("python.tar.gz"),
        site_packages=tarball("site.tar.zst"),
        requirements=folder / "requirements.txt",
    )
    replicas = 10
    step = 1 / (items // replicas)
    spec = SweepSpec(
        name="bench-submit",
        fractions=parse_fractions(f"{step:g}..1:{step:g}"),
        replicas=replicas,
        requirements="false",
    )  # never matches: the benchmark measures submission only
    (folder / "manifest.json").write_text("{}")
    plans = {item.name: Plan(("manifest.json",)) for item in spec.items()}
    (folder / "items").mkdir()
    return render_submission(
        spec,
        env,
        tarball("code.tar.gz"),
        plans,
        sweep_dir=folder,
        data_dir=folder,
        wrapper=folder / "job-wrapper.sh",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument(
        "--process-samples", type=int, default=20, help="single submits timed in new processes"
    )
    args = parser.parse_args()
    shared = Path(os.environ.get("SWEEP_POOL_SHARED", tempfile.gettempdir()))
    schedd = CondorBackend().schedd()
    # the schedd keeps logging the removals into the folder for a moment: tolerate that at clean-up
    with tempfile.TemporaryDirectory(dir=shared, ignore_cleanup_errors=True) as scratch:
        os.chmod(scratch, 0o777)
        rendered = rendered_sweep(Path(scratch), args.items)
        rows = rendered.rows
        description = htcondor2.Submit(rendered.submit_text)
        clusters = []
        try:
            start = time.perf_counter()
            clusters.append(schedd.submit(description, itemdata=iter(rows)).cluster())
            transaction = time.perf_counter() - start
            start = time.perf_counter()
            for row in rows:
                clusters.append(
                    schedd.submit(htcondor2.Submit(rendered.submit_text), itemdata=iter([row])).cluster()
                )
            singles = time.perf_counter() - start
            per_process = [
                _submit_in_new_process(Path(scratch), rendered.submit_text, row, clusters)
                for row in rows[: args.process_samples]
            ]
        finally:
            schedd.act(
                htcondor2.JobAction.Remove, " || ".join(f"ClusterId == {c}" for c in clusters) or "false"
            )
    time.sleep(2)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"items: {len(rows)}")
    print(f"one transaction with itemdata: {transaction:.3f} s (target <= 2 s)")
    print(f"{len(rows)} single-item submits: {singles:.3f} s")
    print(f"speed-up over single submits from one process: {singles / transaction:.1f}x (target >= 20x)")
    estimate = statistics.median(per_process) * len(rows)
    print(
        f"one process per submit (a loop of condor_submit-like calls; median of {len(per_process)} timed, "
        f"x {len(rows)}): {estimate:.0f} s; speed-up {estimate / transaction:.0f}x"
    )


SUBMIT_ONE = """
import json, sys, htcondor2
text, row = json.loads(sys.stdin.read())
print(htcondor2.Schedd().submit(htcondor2.Submit(text), itemdata=iter([row])).cluster())
"""


def _submit_in_new_process(folder: Path, text: str, row: dict[str, str], clusters: list[int]) -> float:
    """One job submitted by a fresh process, as a shell loop over per-job submit files does it."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SUBMIT_ONE],
        input=json.dumps([text, row]),
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
    )
    elapsed = time.perf_counter() - start
    clusters.append(int(done.stdout.strip()))
    return elapsed


if __name__ == "__main__":
    main()
