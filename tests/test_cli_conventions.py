"""CLI conventions: typed integer options with ranges in --help, --backend choices, completion, --json
on every command that reports something, `python -m sweep`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hardening_fixtures import cli, settle, submit_args

from sweep import submitting

from data_fixtures import shard_folder
from local_fakes import FAKE_WRAPPER

pytestmark = pytest.mark.timeout(300)


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_help_shows_integer_ranges_backend_choices_and_completion() -> None:
    assert "--install-completion" in cli("--help").output
    submit_help = flat(cli("submit", "--help").output)
    for option, accepted in [
        ("--replicas", "1..10000"),
        ("--epochs", "1..10000"),
        ("--batch-size", "1..65536"),
        ("--request-cpus", "1..1024"),
        ("--max-retries", "0..100"),
    ]:
        assert option in submit_help and f"(range {accepted})" in submit_help, option
    assert "local|condor" in submit_help
    assert "(range 16..1024)" in flat(cli("data", "synth", "--help").output)
    assert "(range 8..1024)" in flat(cli("data", "shard", "--help").output)


def test_data_commands_report_in_json(tmp_path: Path) -> None:
    synth = cli("data", "synth", tmp_path / "raw", "--images", "60", "--size", "16", "--json")
    assert synth.code == 0, synth.output
    made = json.loads(synth.stdout)
    assert made["images"] == 60 and made["folder"] == str(tmp_path / "raw")
    shard = cli("data", "shard", tmp_path / "raw", tmp_path / "shards", "--size", "16", "--json")
    assert shard.code == 0, shard.output
    shards = json.loads(shard.stdout)
    assert sum(shards["splits"].values()) == 60 and shards["image_size"] == 16 and shards["shards"] >= 3


def test_submit_and_cancel_report_in_json(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submitting, "wrapper_text", lambda env, code: FAKE_WRAPPER)  # a stand-in job: 0.2 s
    sweeps = tmp_path / "sweeps"
    ran = cli(*submit_args(shard_folder(tmp_path_factory, images=200, size=16), sweeps), "--json")
    assert ran.code == 0, ran.output
    submitted = json.loads(ran.stdout)
    assert (
        submitted["name"] == "t"
        and submitted["backend"] == "local"
        and sorted(submitted["items"]) == ["f0.5_r0", "f1_r0"]
    )
    assert submitted["folder"] == str((sweeps / "t").resolve())
    settle(sweeps, "t")
    cancelled = cli("cancel", "t", "--sweeps-dir", sweeps, "--json")
    assert cancelled.code == 0 and json.loads(cancelled.stdout) == {"name": "t", "cancelled": []}


def test_piped_tables_keep_each_row_on_one_line() -> None:
    from sweep.cli_common import out

    assert out.width == 240  # pytest captures stdout: not a terminal


def test_submit_export_tflite_reaches_every_job(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    shards = shard_folder(tmp_path_factory, images=200, size=16)
    common = ["submit", "--fractions", "0.5,1", "--replicas", "1", "--data", shards, "--dry-run"]
    asked = cli(*common, "--export", "tflite")
    assert asked.code == 0, asked.output
    assert "--export tflite" in next(
        line for line in asked.stdout.splitlines() if line.startswith("arguments")
    )
    assert "--export" not in cli(*common).stdout
    assert cli(*common, "--export", "onnx").code == 2
