"""The CLI contract: every command and its --help, --dry-run, refusals with exit 2, `sweep pack` twice."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import htcondor2
import pytest
from typer.testing import CliRunner

from sweep import names
from sweep.cli import app
from sweep.fs import sha256_file
from sweep.pack import find_environment, manifest_path
from sweep.resources import default_env_cache, job_requirements

from data_fixtures import shard_folder

COMMANDS = ["pack", "data", "submit", "status", "collect", "report", "resubmit", "cancel", "demo"]
SWEEP = str(Path(sys.executable).parent / "sweep")
runner = CliRunner()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=200, size=16)


def test_help_lists_every_command_and_each_help_works() -> None:
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in COMMANDS:
        assert re.search(rf"│ {command}\b", top.output), command
        assert runner.invoke(app, [command, "--help"]).exit_code == 0, command
    for sub in ("synth", "shard"):
        assert runner.invoke(app, ["data", sub, "--help"]).exit_code == 0


def test_dry_run_prints_a_parsable_description_of_fifty_items_and_creates_nothing(
    shards: Path, tmp_path: Path
) -> None:
    sweeps, cache = tmp_path / "sweeps", tmp_path / "cache"
    done = subprocess.run(
        [SWEEP, "submit", "--dry-run", "--fractions", "0.1..1.0", "--replicas", "5", "--data", str(shards),
         "--name", "demo", "--sweeps-dir", str(sweeps), "--cache", str(cache)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    submit = htcondor2.Submit(done.stdout)
    rows = list(submit.itemdata())
    assert len(rows) == 50 and len({(r["fraction"], r["replica"]) for r in rows}) == 50
    assert submit["requirements"] == "(has_avx =?= true) && (has_avx2 =?= true)"
    assert "ExitSignal =?= 4" in submit["on_exit_hold"] and "lacks AVX2" in submit["on_exit_hold_reason"]
    inputs = submit["transfer_input_files"]
    assert ".tar.gz" in inputs and ".tar.zst" in inputs and names.CODE_TARBALL in inputs
    assert all(str(shards) in row["inputs"] for row in rows)
    assert not sweeps.exists() and not cache.exists()  # nothing created: no sweep, no tarball


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--fractions", "1..0.1"], "1..0.1"),
        (["--fractions", "0..1"], "0..1"),
        (["--fractions", "0.1..1.5"], "1.5"),
        (["--fractions", "a..b"], "a..b"),
        (["--fractions", "0.1..1.0:0"], "0.1..1.0:0"),
        (["--fractions", ""], "''"),
        (["--replicas", "0"], "replicas 0"),
        (["--replicas", "-1"], "replicas -1"),
        (["--replicas", "x"], "replicas 'x'"),
    ],
)
def test_bad_fractions_and_replicas_exit_2_and_create_nothing(
    args: list[str], named: str, shards: Path, tmp_path: Path
) -> None:
    options = {"--fractions": "0.1..1.0", "--replicas": "2"}
    options[args[0]] = args[1]
    sweeps, cache = tmp_path / "sweeps", tmp_path / "cache"
    result = runner.invoke(
        app,
        [
            "submit",
            *[x for kv in options.items() for x in kv],
            "--data",
            str(shards),
            "--name",
            "bad",
            "--sweeps-dir",
            str(sweeps),
            "--cache",
            str(cache),
        ],
    )
    assert result.exit_code == 2, result.output
    assert named in result.output and "accepted" in result.output
    assert not sweeps.exists() and not cache.exists()


@pytest.mark.slow
def test_pack_twice_is_a_cache_hit_in_under_a_second_and_the_manifest_hash_matches() -> None:
    first = subprocess.run(
        [SWEEP, "pack", "--json"], capture_output=True, text=True, timeout=1800, check=False
    )
    assert first.returncode == 0, first.stderr
    started = time.monotonic()
    second = subprocess.run(
        [SWEEP, "pack", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["cache_hit"] is True and report["seconds"] < 1.0
    assert elapsed < 5.0  # the whole process, interpreter start-up included
    env = find_environment(job_requirements(), default_env_cache())
    assert env is not None and env.key == report["key"]
    for tarball in (env.interpreter, env.site_packages):
        manifest = json.loads(manifest_path(tarball.path).read_text())
        assert manifest["sha256"] == sha256_file(tarball.path) == tarball.sha256


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--node-env-cache", "/tmp/envs"], "for --backend condor"),
        (
            ["--backend", "condor", "--node-env-cache", "relative/envs"],
            "'relative/envs' is not an absolute path",
        ),
        (["--backend", "condor", "--node-env-cache", "/tmp/my envs"], "cannot go into a submit description"),
    ],
)
def test_node_env_cache_is_checked(args: list[str], named: str, shards: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "submit",
            "--fractions",
            "1",
            "--replicas",
            "1",
            "--data",
            str(shards),
            "--dry-run",
            "--cache",
            str(tmp_path / "cache"),
            *args,
        ],
    )
    assert result.exit_code == 2 and named in result.output, result.output


def test_node_env_cache_reaches_the_job_environment(shards: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "submit",
            "--fractions",
            "1",
            "--replicas",
            "1",
            "--data",
            str(shards),
            "--dry-run",
            "--backend",
            "condor",
            "--node-env-cache",
            "/tmp/sweep-envs",
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "SWEEP_ENV_CACHE=/tmp/sweep-envs" in htcondor2.Submit(result.output)["environment"]
