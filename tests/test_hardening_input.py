"""Bad input: every case exits 2 with one message that names what was wrong and what is accepted,
and leaves nothing behind: no sweep, no half-written file, no temporary folder. Each case runs the CLI.

Covered elsewhere and not repeated here:
- each malformed ChestX-ray14 source folder of `sweep data shard` (missing files or columns, unknown
  labels, duplicate rows, split leaks, unreadable images), an empty folder and a folder that is not a
  dataset: tests/test_data_validate.py (test_empty_folder, test_folder_that_is_not_a_dataset, ...)
- every fraction form: tests/test_spec.py::test_bad_fractions_name_the_value_and_the_accepted_forms
- a requirements file without hashes, and hashed locks pip --require-hashes refuses (unpinned, a dependency
  missing, a changed file): tests/test_pack.py (test_requirements_without_hashes_are_refused_before_pip,
  test_pip_refuses_a_lock_that_is_not_complete_or_does_not_match); its exit 2 at the CLI is below
- names and requirements that try to inject, rendered and parsed: tests/test_render.py
  (test_a_sweep_name_cannot_add_submit_commands, test_bad_requirements_are_refused); the whole table of
  user strings: tests/test_hardening_security.py::test_no_user_string_adds_a_submit_command
- a report folder that is a file: tests/test_report.py::test_an_out_dir_that_is_a_file_is_a_clear_error
"""

from __future__ import annotations

import json
from pathlib import Path

import htcondor2
import pytest
from hardening_fixtures import (
    TINY_REQUIREMENTS,
    cli,
    entries,
    fill,
    free_pages,
    needs_root,
    refused,
    settle,
    submit_args,
    tmpfs,
)
from test_render import INTENDED_COMMANDS

from sweep import names
from sweep.data.manifest import load_data_manifest
from sweep.render import SUBMIT_TEMPLATE, TEMPLATES_DIR

from data_fixtures import copy_of, shard_folder, synthetic_source
from local_fakes import make_fake_sweep

pytestmark = pytest.mark.timeout(180)
BUILTIN_TEMPLATE = (TEMPLATES_DIR / SUBMIT_TEMPLATE).read_text()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=200, size=16)


@pytest.fixture
def sweeps(tmp_path: Path) -> Path:
    return tmp_path / "sweeps"


def dry_run(*args: object) -> htcondor2.Submit:
    """`sweep submit ... --dry-run`, parsed by HTCondor's own parser."""
    ran = cli(*args, "--dry-run")
    assert ran.code == 0, ran.output
    return htcondor2.Submit(ran.stdout)


# ----------------------------------------------------------------------------- malformed values

MALFORMED = {
    "fraction 0": (["--fractions", "0..1"], "fractions '0..1': 0 is outside (0, 1]", "accepted forms: a range"),
    "fraction word": (["--fractions", "0.1,ten"], "'ten' is not a number", "accepted forms: a range"),
    "replicas 0": (["--replicas", "0"], "--replicas 0 is out of range", "accepted: a whole number >= 1"),
    "replicas word": (["--replicas", "two"], "--replicas 'two' is not a whole number", "accepted: a whole number >= 1"),
    "epochs 1.5": (["--epochs", "1.5"], "--epochs '1.5' is not a whole number", "accepted: a whole number >= 1 and <= 10000"),
    "epochs 0": (["--epochs", "0"], "--epochs 0 is out of range", "accepted: a whole number >= 1"),
    "batch size": (["--batch-size", "-3"], "--batch-size -3 is out of range", "accepted: a whole number >= 1"),
    "cpus": (["--request-cpus", "2000"], "--request-cpus 2000 is out of range", "and <= 1024"),
    "memory": (["--request-memory", "lots"], "request-memory 'lots' is not a size", "accepted: a number with an optional unit K, M, G or T"),
    "disk": (["--request-disk", "0KB"], "request-disk '0KB' is too small", "accepted: at least 1 KB"),
    "retries": (["--max-retries", "-1"], "--max-retries -1 is out of range", "accepted: a whole number >= 0"),
    "backend": (["--backend", "slurm"], "Invalid value for '--backend'", "'slurm' is not one of 'local', 'condor'"),
    "schedd on local": (["--schedd", "s1"], "--schedd and --pool are for --backend condor", "accepted: drop them"),
    "contradiction": (["--require", "true", "--no-require-avx"], "contradict each other", "accepted: one of them, or neither"),
    "requirements": (["--require", "true\nqueue 100"], "is not a single-line ClassAd expression", "accepted: e.g."),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_values_are_refused_before_anything_is_made(case: str, shards: Path, sweeps: Path) -> None:
    override, wrong, accepted = MALFORMED[case]
    refused(cli(*submit_args(shards, sweeps), *override), wrong, accepted)  # the last value of an option wins
    assert not sweeps.exists()


@pytest.mark.parametrize(
    "name",
    ["my sweep", "a/b", "../escape", "x'y", 'q"', "new\nline", "queue 5", "+Attr = 1", "$(Cluster)", "a\\b"],
)
def test_a_name_that_could_inject_or_escape_is_refused(name: str, shards: Path, tmp_path: Path) -> None:
    sweeps = tmp_path / "sweeps"
    refused(
        cli(*submit_args(shards, sweeps, name)),
        "sweep name",
        "is not allowed; accepted: 1-64 characters: letters, digits",
    )
    assert not sweeps.exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("name", ["queue", "executable", "log"])
def test_a_name_that_is_a_submit_keyword_stays_a_plain_value(name: str, shards: Path, sweeps: Path) -> None:
    submit = dry_run(*submit_args(shards, sweeps, name))
    assert set(submit.keys()) == INTENDED_COMMANDS  # exactly the intended commands, no more
    assert submit["batch_name"] == name and submit["MY.SweepName"] == f'"{name}"'
    assert len(list(submit.itemdata())) == 2
    assert not sweeps.exists()  # a dry run creates nothing


# ----------------------------------------------------------------------------- dataset folders


def _not_shards(kind: str, tmp_path: Path, factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path / kind.replace(" ", "-")
    if kind == "a ChestX-ray14 source, not its shards":
        return synthetic_source(factory, images=80, size=16)
    if kind != "missing":
        folder.mkdir()
    if kind == "not a dataset":
        (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    return folder


@pytest.mark.parametrize(
    "kind", ["empty", "not a dataset", "a ChestX-ray14 source, not its shards", "missing"]
)
def test_data_that_is_not_a_shard_folder_is_refused(
    kind: str, tmp_path: Path, sweeps: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = _not_shards(kind, tmp_path, tmp_path_factory)
    refused(
        cli(*submit_args(folder, sweeps)),
        f"{folder} has no manifest.json",
        "make a shard folder with `sweep data shard SRC OUT`",
    )
    assert not sweeps.exists()


def test_a_truncated_or_missing_shard_is_found_by_its_size(
    shards: Path, tmp_path: Path, sweeps: Path
) -> None:
    folder = copy_of(shards, tmp_path / "shards")
    manifest = load_data_manifest(folder)
    cut, gone = manifest.splits["train"].shards[0], manifest.splits["test"].shards[0]
    with open(folder / cut.file, "r+b") as handle:
        handle.truncate(cut.bytes - 10)
    (folder / gone.file).unlink()
    refused(
        cli(*submit_args(folder, sweeps)),
        "shard files do not match manifest.json",
        f"{cut.file} has {cut.bytes - 10} bytes, the manifest says {cut.bytes}",
        f"{gone.file} is missing",
        "expected: the shard folder exactly as `sweep data shard` wrote it",
    )
    assert not sweeps.exists()


def test_a_shard_changed_in_place_is_found_with_verify_data(
    shards: Path, tmp_path: Path, sweeps: Path
) -> None:
    folder = copy_of(shards, tmp_path / "shards")
    changed = load_data_manifest(folder).splits["train"].shards[0]
    data = bytearray((folder / changed.file).read_bytes())
    data[40] ^= 0xFF  # same size: only a hash sees it
    (folder / changed.file).write_bytes(bytes(data))
    dry_run(*submit_args(folder, sweeps))  # the default check is sizes only (README: Failure modes, the cost)
    refused(
        cli(*submit_args(folder, sweeps), "--verify-data"),
        f"{changed.file} has changed (its sha256 differs from the manifest)",
        "expected: the shard folder exactly as",
    )
    assert not sweeps.exists()


# ----------------------------------------------------------------------------- environment


def test_requirements_pip_cannot_install_stop_the_submit_before_a_sweep_exists(
    shards: Path, tmp_path: Path, sweeps: Path
) -> None:
    requirements = tmp_path / "req.txt"
    requirements.write_text(f"nonexistent-package-xyz==1.0 --hash=sha256:{'0' * 64}\n")
    cache = tmp_path / "cache"
    ran = cli(*submit_args(shards, sweeps), "--requirements", requirements, "--cache", cache)
    refused(ran, f"pip install failed for {requirements}", "ERROR:", "nonexistent-package-xyz")
    assert not sweeps.exists()
    assert [name for name in entries(cache) if not name.startswith(".lock-")] == []


def test_a_requirements_file_that_is_not_a_hashed_lock_names_it_and_the_command_that_makes_one(
    tmp_path: Path,
) -> None:
    requirements = tmp_path / "req.txt"
    requirements.write_text("zstandard==0.25.0\nnumpy\n")  # pinned or not: without hashes it is no lock
    cache = tmp_path / "cache"
    refused(
        cli("pack", "--requirements", requirements, "--cache", cache),
        f"{requirements} is not a hashed lock: 2 requirement(s) have no --hash (zstandard==0.25.0, numpy)",
        "Make one with: uv pip compile --generate-hashes",
        f"NEEDS.in -o {requirements}",
    )
    assert [name for name in entries(cache) if not name.startswith(".lock-")] == []


# ----------------------------------------------------------------------------- --submit-template


def test_a_template_with_an_unknown_variable_names_it_and_lists_the_available_ones(
    shards: Path, tmp_path: Path, sweeps: Path
) -> None:
    template = tmp_path / "mine.sub.j2"
    template.write_text(BUILTIN_TEMPLATE + "+Project = {{ project_name }}\n")
    ran = cli(
        *submit_args(shards, sweeps), "--submit-template", template
    )  # a real submit: it renders in the build
    refused(
        ran,
        f"the submit template {template} uses unknown variable project_name",
        "available: arguments, common_inputs, environment, event_log",
        "submit_token",
    )
    assert entries(sweeps) == []  # the half-built sweep folder went with the error


TEMPLATE_FAULTS = {
    "syntax error": (BUILTIN_TEMPLATE + "{% if %}\n", f"does not parse: line {BUILTIN_TEMPLATE.count(chr(10)) + 1}:"),
    "a queue statement": (BUILTIN_TEMPLATE + "queue 1\n", "holds a queue statement; accepted: none, sweep adds"),
    "the event log moved": (BUILTIN_TEMPLATE.replace("{{ event_log | submit_path }}", "/tmp/elsewhere.log"),
                            "changes or drops commands sweep relies on: log; accepted: these exactly as submit.sub.j2"),
    "the token dropped": ("\n".join(line for line in BUILTIN_TEMPLATE.splitlines() if "SubmitToken" not in line) + "\n",
                          "changes or drops commands sweep relies on: MY.SweepSubmitToken"),
    "a reserved key added": (BUILTIN_TEMPLATE + "getenv = true\n", "submit key 'getenv' is reserved"),
    "an unknown key added": (BUILTIN_TEMPLATE + "acounting_group = x\n", "submit key 'acounting_group' is unknown; accepted: accounting_group"),
    "an undefined attribute": (BUILTIN_TEMPLATE + "+P = {{ name.nope }}\n", "uses something undefined ('str object' has no attribute 'nope'); available:"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TEMPLATE_FAULTS))
def test_a_template_whose_output_breaks_the_rules_is_refused(
    case: str, shards: Path, tmp_path: Path, sweeps: Path
) -> None:
    text, message = TEMPLATE_FAULTS[case]
    template = tmp_path / "mine.sub.j2"
    template.write_text(text)
    refused(
        cli(*submit_args(shards, sweeps), "--submit-template", template, "--dry-run"), str(template), message
    )
    assert not sweeps.exists()


def test_a_template_file_that_cannot_be_read(shards: Path, tmp_path: Path, sweeps: Path) -> None:
    refused(
        cli(*submit_args(shards, sweeps), "--submit-template", tmp_path / "nowhere.j2"),
        f"cannot read the submit template {tmp_path / 'nowhere.j2'}: No such file or directory",
        "accepted: a UTF-8 Jinja file like submit_templates/submit.sub.j2",
    )
    assert not sweeps.exists()


def test_a_template_may_add_accepted_commands_and_nothing_else(
    shards: Path, tmp_path: Path, sweeps: Path
) -> None:
    template = tmp_path / "mine.sub.j2"
    template.write_text(BUILTIN_TEMPLATE + 'accounting_group = physics\n+ProjectName = "xray-{{ name }}"\n')
    submit = dry_run(*submit_args(shards, sweeps), "--submit-template", template)
    assert set(submit.keys()) == INTENDED_COMMANDS | {"accounting_group", "MY.ProjectName"}
    assert submit["MY.ProjectName"] == '"xray-t"' and len(list(submit.itemdata())) == 2


# ----------------------------------------------------------------------------- --submit-option

RESERVED = ["executable=/bin/sh", "Arguments=-c", "transfer_input_files=/etc/passwd", "transfer_output_remaps=x",
            "log=/tmp/l", "output=o", "error=e", "initialdir=/", "queue=5", "requirements=true",
            "on_exit_remove=true", "max_retries=9", "batch_name=x", '+SweepName="x"', "MY.SweepItem=1",
            "getenv=true", "environment=A=1", "request_memory=1"]  # fmt: skip


@pytest.mark.parametrize("option", RESERVED)
def test_a_reserved_submit_option_is_refused_with_the_list(option: str, shards: Path, sweeps: Path) -> None:
    key = option.partition("=")[0]
    refused(
        cli(*submit_args(shards, sweeps), "--submit-option", option),
        f"submit key {key!r} is reserved: sweep sets it itself; reserved: universe, executable",
        "requirements (use --require)",
        "transfer_*, on_exit_*, +Sweep*",
    )
    assert not sweeps.exists()


BAD_OPTIONS = {
    "acounting_group=x": "submit key 'acounting_group' is unknown; accepted: accounting_group, accounting_group_user",
    "accounting_group=a b": "the value 'a b' of submit option accounting_group is not allowed; accepted: letters",
    "accounting_group=x\\": "the value 'x\\\\' of submit option accounting_group is not allowed",
    "+Project=$(Cluster)": "is not a single-line ClassAd expression; accepted: e.g.",
    '+Project="unclosed': "does not parse as a ClassAd expression",
    "priority=high": "the value 'high' of submit option priority is not allowed; accepted: a whole number",
    "no-equals-sign": "--submit-option 'no-equals-sign' is not KEY=VALUE; accepted: e.g. accounting_group=physics",
}


@pytest.mark.parametrize("option", list(BAD_OPTIONS))
def test_an_unknown_key_or_a_bad_value_is_refused(option: str, shards: Path, sweeps: Path) -> None:
    refused(cli(*submit_args(shards, sweeps), "--submit-option", option), BAD_OPTIONS[option])
    assert not sweeps.exists()


def test_an_option_given_twice_is_refused(shards: Path, sweeps: Path) -> None:
    ran = cli(*submit_args(shards, sweeps), "--submit-option", "priority=1", "--submit-option", "Priority=2")
    refused(ran, "submit option priority given more than once; accepted: each key once")


def test_accepted_options_add_exactly_their_commands(shards: Path, sweeps: Path) -> None:
    submit = dry_run(
        *submit_args(shards, sweeps),
        "--submit-option",
        "accounting_group=physics.alice",
        "--submit-option",
        '+ProjectName="chest"',
        "--submit-option",
        "priority=5",
    )
    assert set(submit.keys()) == INTENDED_COMMANDS | {"accounting_group", "MY.ProjectName", "priority"}
    assert (submit["accounting_group"], submit["MY.ProjectName"], submit["priority"]) == (
        "physics.alice",
        '"chest"',
        "5",
    )
    assert len(list(submit.itemdata())) == 2


# ----------------------------------------------------------------------------- folders that cannot be written


@needs_root
def test_a_sweeps_dir_on_a_read_only_file_system(shards: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        for sweeps in (ro, ro / "sweeps"):  # the folder itself, and one that would have to be created
            refused(
                cli(*submit_args(shards, sweeps)),
                f"cannot create a sweep in {sweeps}: Read-only file system",
                "accepted: a folder you can write to",
            )
        assert entries(ro) == []


@needs_root
def test_a_shard_folder_on_a_read_only_file_system(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = synthetic_source(tmp_path_factory, images=80, size=16)
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        refused(
            cli("data", "shard", source, ro / "out", "--size", "16"),
            f"cannot write {ro / 'out'}: Read-only file system",
            "accepted: a new folder in a folder you can write to",
        )
        assert entries(ro) == []


@needs_root
def test_a_report_folder_on_a_read_only_file_system(tmp_path: Path) -> None:
    sweep, _ = make_fake_sweep(tmp_path, fractions="0.1,0.2")
    settle(sweep.path.parent, sweep.name)
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        refused(
            cli("report", "fake", "--sweeps-dir", sweep.path.parent, "--out", ro / "report"),
            f"cannot write the report to {ro / 'report'}: Read-only file system",
        )
        assert entries(ro) == []


@needs_root
def test_a_pack_cache_on_a_read_only_file_system(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        refused(
            cli("pack", "--requirements", TINY_REQUIREMENTS, "--cache", ro / "cache"),
            f"cannot write to the environment cache {ro / 'cache'}: Read-only file system",
            "accepted: --cache FOLDER you can write to",
        )
        assert entries(ro) == []


# ----------------------------------------------------------------------------- a disk that fills up


@needs_root
@pytest.mark.parametrize(
    ("size", "where"), [("2m", "venv"), ("60m", "tarball")], ids=["in-venv", "in-tarball"]
)
def test_pack_on_a_full_disk_says_so_and_keeps_nothing(size: str, where: str, tmp_path: Path) -> None:
    # 2 MB fills while the build venv is made (ensurepip alone says only "exit status 1"); 60 MB holds
    # the venv (~45 MB) but not the interpreter tarball beside it (~25 MB)
    with tmpfs(tmp_path / "disk", size) as disk:
        ran = cli("pack", "--requirements", TINY_REQUIREMENTS, "--cache", disk / "cache")
        refused(
            ran,
            f"no space left on the device of the environment cache {disk / 'cache'} while packing",
            "nothing of this environment was kept there; free space, or use --cache on another disk",
        )
        assert ("the step that failed: python -m venv" in ran.output) == (where == "venv")
        assert [name for name in entries(disk / "cache") if not name.startswith(".lock-")] == []


@needs_root
def test_data_shard_on_a_full_disk_leaves_no_out(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = synthetic_source(tmp_path_factory, images=80, size=16)
    with tmpfs(tmp_path / "disk", "16k") as disk:  # the shards of 80 tiny images need more
        refused(
            cli("data", "shard", source, disk / "out", "--size", "16"),
            f"writing {disk / 'out'} failed (No space left on device); nothing was left there",
        )
        assert entries(disk) == []


def _results(sweeps: Path) -> tuple[Path, Path]:
    return sweeps / "fake" / names.RESULTS_PARQUET, sweeps / "fake" / names.RESULTS_CSV


def _temporary_files(sweeps: Path) -> list[str]:
    return [name for name in entries(sweeps / "fake") if name.endswith(".tmp")]


@needs_root
def test_collect_on_a_full_disk_writes_both_result_files_or_neither(tmp_path: Path) -> None:
    import pandas as pd

    with tmpfs(tmp_path / "disk", "8m") as disk:
        sweep, _ = make_fake_sweep(disk, fractions="0.1,0.2,0.3")
        settle(sweep.path.parent, sweep.name)
        sweeps, (parquet, csv) = sweep.path.parent, _results(sweep.path.parent)
        filler = fill(disk)
        # space comes back a page at a time: on the way, room for the parquet file but not the csv
        for _ in range(64):
            ran = cli("collect", "fake", "--sweeps-dir", sweeps)
            assert _temporary_files(sweeps) == []
            if ran.code == 0:
                break
            refused(
                ran,
                "no space left on the device while writing",
                "nothing was written there; free space and retry",
            )
            assert not parquet.exists() and not csv.exists()
            free_pages(filler, 1)
        assert ran.code == 0, ran.output
        assert (
            list(pd.read_parquet(parquet)["item"])
            == list(pd.read_csv(csv)["item"])
            == ["f0.1_r0", "f0.2_r0", "f0.3_r0"]
        )
        # a later collect that finds the disk full keeps the previous pair whole
        before = parquet.read_bytes(), csv.read_bytes()
        metrics = sweep.item_output("f0.1_r0") / names.METRICS
        metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "auc_macro": 0.9}))
        fill(disk, "more")
        refused(cli("collect", "fake", "--sweeps-dir", sweeps), "no space left on the device")
        assert (parquet.read_bytes(), csv.read_bytes()) == before and _temporary_files(sweeps) == []
