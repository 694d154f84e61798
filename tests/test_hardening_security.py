"""Security: no user string adds a submit command, unpacking never writes outside its folder, files
get sane permissions, and no pool credential ends up in a sweep, a tarball or a report.

Covered elsewhere and not repeated here:
- unsafe members of the zstd tarball (absolute, `..`, symlinks and hard links out, writing through a
  symlink, devices): tests/test_unpack.py::test_unsafe_members_are_refused_before_anything_is_written
- absolute, `..` and symlinked members of the gzip tarballs the wrapper unpacks:
  tests/test_wrapper.py::test_unsafe_interpreter_member_exits_24_and_writes_nothing
- the wrapper's own values (tarball names, hashes, versions) cannot break the script:
  tests/test_wrapper.py::test_render_refuses_values_that_could_break_the_script
"""

from __future__ import annotations

import contextlib
import gzip
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import htcondor2
import pytest
import zstandard
from hardening_fixtures import TINY_CACHE, cli, settle, submit_args, world_writable
from test_render import CODE, DEMO, ENV, INTENDED_COMMANDS, plans_for

from sweep import names, submitting
from sweep.errors import RenderError, SpecError
from sweep.fs import atomic_write_text
from sweep.pack import pack_job_code
from sweep.render import SUBMIT_TEMPLATE, TEMPLATES_DIR, RenderedSubmission, SubmitTemplate, render_submission
from sweep.spec import parse_fractions

from condor_pool import PersonalPool
from data_fixtures import copy_of, shard_folder, synthetic_source
from local_fakes import FAKE_WRAPPER
from packing_fakes import link, make_sandbox, tiny_environment, write_gz

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shard_folder(tmp_path_factory, images=200, size=16)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


# ----------------------------------------------------------------------------- submit commands

EVIL = ["x\nqueue 5", "x\r\nexecutable = /bin/sh", 'x" && true || "', "x\\", "$(Cluster)", "$$(Memory)", "x\x00y",
        '+Owner = "root"', "a,b", "a b", "#x", "queue", "x'y", "x\u2028y", "x\nrequirements = true", "x; queue 2"]  # fmt: skip
ONE_ITEM = replace(DEMO, name="t", fractions=parse_fractions("1"), replicas=1)
UNFILTERED = (TEMPLATES_DIR / SUBMIT_TEMPLATE).read_text() + '+Project = "{{ name }}"\n'


def _render(evil: str, where: str) -> RenderedSubmission:
    """A one-item sweep rendered with `evil` at one place where a user's string enters the submit text."""
    spec, paths, extra = ONE_ITEM, {"sweep_dir": Path("/pool/sweeps/t"), "data_dir": Path("/pool/shards")}, {}
    if where == "sweep name":
        spec = replace(spec, name=evil)  # as if validate_name had been skipped: the filters must hold alone
    elif where == "requirements":
        spec = replace(spec, requirements=evil)
    elif where in ("data folder", "sweep folder"):
        paths["data_dir" if where == "data folder" else "sweep_dir"] = Path(f"/pool/{evil}")
    elif where == "job environment":
        extra = {"environment": {"SWEEP_TEST_SIGILL_BELOW": evil}}
    elif where == "submit option value":
        spec = replace(spec, submit_options=(("accounting_group", evil),))
    elif where == "custom attribute value":
        spec = replace(spec, submit_options=(("+Project", evil),))
    elif where == "submit option key":
        spec = replace(spec, submit_options=((evil, "1"),))
    elif where == "a template that does not filter it":
        spec, extra = replace(spec, name=evil), {"template": SubmitTemplate(UNFILTERED, "unfiltered.j2")}
    return render_submission(
        spec, ENV, CODE, plans_for(spec), wrapper=paths["sweep_dir"] / "job-wrapper.sh", **paths, **extra
    )  # type: ignore[arg-type]


ADDED = {"submit option value": {"accounting_group"}, "custom attribute value": {"MY.Project"},
         "a template that does not filter it": {"MY.Project"}}  # fmt: skip
PLACES = ["sweep name", "requirements", "data folder", "sweep folder", "job environment", "submit option value",
          "custom attribute value", "submit option key", "a template that does not filter it"]  # fmt: skip


@pytest.mark.parametrize("where", PLACES)
def test_no_user_string_adds_a_submit_command(where: str) -> None:
    accepted = []
    for evil in EVIL:
        try:
            rendered = _render(evil, where)
        except (RenderError, SpecError):
            continue  # refused with a message: fine
        submit = htcondor2.Submit(rendered.full_text())
        assert set(submit.keys()) == INTENDED_COMMANDS | ADDED.get(where, set()), (where, evil)
        assert len(list(submit.itemdata())) == 1, (where, evil)  # one queue statement, ours, with one item
        accepted.append(evil)
    assert (
        "x\nqueue 5" not in accepted and 'x" && true || "' not in accepted
    )  # the two classic ones never pass


# ----------------------------------------------------------------------------- unpacking


def _device(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


HIDDEN_WAYS_OUT = {
    "a file named 'x -> y/../..'": ("python/x -> y/../../../escape", b"x"),
    "a file named 'x link to ../..'": ("python/x link to ../../../escape", b"x"),
    "a hard link out": link("python/h", "../../escape", hard=True),
    "a device": _device("python/disk", tarfile.CHRTYPE),
    "a fifo": _device("python/pipe", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("case", list(HIDDEN_WAYS_OUT))
def test_the_wrapper_refuses_members_that_hide_a_way_out(case: str, tmp_path: Path) -> None:
    sandbox = make_sandbox(tmp_path, {"noop": "pass\n"})
    # the safe member first: an unpacker that checked while writing would already have written it
    sandbox.interpreter = write_gz(
        sandbox.interpreter.path, [("python/bin/ok", b"ok"), HIDDEN_WAYS_OUT[case]]
    )  # type: ignore[list-item]
    sandbox.render(job_module="sweep.job.noop")
    result = sandbox.run()
    assert result.returncode == 24, result.stderr  # 24: unsafe member (not 25, a failed unpack)
    assert (
        "unsafe" in result.stderr and "unpack_interpreter" in (sandbox.path / "out" / names.ERROR).read_text()
    )
    assert not (sandbox.path / ".sweep" / "python").exists()  # refused before anything was written
    assert not list(tmp_path.rglob("escape*"))


# ----------------------------------------------------------------------------- permissions


def test_a_whole_sweep_has_no_world_writable_file_under_a_normal_umask(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submitting, "wrapper_text", lambda env, code: FAKE_WRAPPER)  # a stand-in job: 0.2 s
    sweeps = tmp_path / "sweeps"
    with umask(0o022):
        assert cli(*submit_args(shards, sweeps)).code == 0
        settle(sweeps, "t")
        assert cli("report", "t", "--sweeps-dir", sweeps).code == 0  # collects first
    sweep = sweeps / "t"
    assert world_writable(sweep) == []
    modes = {path: oct(path.stat().st_mode & 0o777) for path in (
        sweep, sweep / names.JOB_WRAPPER, sweep / names.SWEEP_MANIFEST, sweep / names.SUBMIT_DESCRIPTION,
        sweep / names.RESULTS_CSV, sweep / names.REPORT_DIR / "report.html", sweep / names.ITEMS_DIR / "f1_r0")}  # fmt: skip
    assert list(modes.values()) == ["0o755", "0o755", "0o644", "0o644", "0o644", "0o644", "0o755"], modes


def test_shards_and_packed_files_have_no_world_writable_file_under_a_normal_umask(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with umask(0o022):
        ran = cli(
            "data",
            "shard",
            synthetic_source(tmp_path_factory, images=80, size=16),
            tmp_path / "shards",
            "--size",
            "16",
        )
        assert ran.code == 0, ran.output
        code = pack_job_code(tmp_path / "cache")  # the writers `sweep pack` uses for tarballs and manifests
        atomic_write_text(tmp_path / "cache" / "manifest.json", "{}\n")
    assert world_writable(tmp_path / "shards") == [] and world_writable(tmp_path / "cache") == []
    assert oct(code.path.stat().st_mode & 0o777) == "0o644"


@pytest.mark.condor
def test_the_pool_token_is_readable_by_its_owner_only(condor_pool: PersonalPool) -> None:
    tokens = Path(htcondor2.param["SEC_TOKEN_DIRECTORY"])
    assert oct(tokens.stat().st_mode & 0o777) == "0o700"
    files = list(tokens.iterdir())
    assert files and all(path.stat().st_mode & 0o077 == 0 for path in files)


# ----------------------------------------------------------------------------- credentials


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, content) of every member of a .tar.gz or .tar.zst, names included as content too."""
    with open(path, "rb") as raw:
        stream = (
            gzip.GzipFile(fileobj=raw)
            if path.name.endswith(".gz")
            else zstandard.ZstdDecompressor().stream_reader(raw)
        )
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.isfile() else None
                yield (
                    member.name,
                    member.name.encode() + member.linkname.encode() + (handle.read() if handle else b""),
                )


def _everything_under(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield str(path), path.read_bytes()
            if path.name.endswith((".tar.gz", ".tar.zst")):
                yield from ((f"{path}:{name}", data) for name, data in _tar_members(path))


def find_credentials(needles: dict[str, str], *roots: Path) -> list[str]:
    """'what: where' for every needle found in a file, a tarball member or a file name under `roots`
    (the needle itself is never printed: it may be a real token)."""
    encoded = {what: needle.encode() for what, needle in needles.items()}
    return [f"{what}: {where}" for root in roots for where, data in _everything_under(root)
            for what, needle in encoded.items() if needle in data or needle in where.encode()]  # fmt: skip


def _submit_collect_report(args: list[object], sweeps: Path) -> None:
    ran = cli(*args)
    assert ran.code == 0, ran.output
    settle(sweeps, "t", timeout=240)
    assert cli("report", "t", "--sweeps-dir", sweeps).code == 0


def test_no_credential_reaches_a_sweep_a_tarball_or_a_report(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(24)  # a token-shaped value only this test knows
    tokens = tmp_path / "creds" / "tokens.d"
    tokens.mkdir(parents=True, mode=0o700)
    (tokens / "pool").write_text(secret)
    config = tmp_path / "creds" / "condor_config"
    config.write_text(f"SEC_TOKEN_DIRECTORY = {tokens}\n")
    for variable, value in {
        "CONDOR_CONFIG": config,
        "_CONDOR_SEC_TOKEN_DIRECTORY": tokens,
        "SWEEP_PROBE": secret,
    }.items():
        monkeypatch.setenv(variable, str(value))  # seen by the CLI and its runner, never by the jobs
    cache = tmp_path / "cache"  # a copy of the tiny environment's tarballs: scanned whole
    tiny_environment()
    shutil.copytree(TINY_CACHE, cache, ignore=shutil.ignore_patterns("unpacked", ".lock-*"))
    sweeps = tmp_path / "sweeps"
    # the real wrapper and job code: the job fails (the tiny environment has no numpy) and leaves its traces
    _submit_collect_report(
        [*submit_args(shards, sweeps), "--requirements", cache / "requirements.txt", "--cache", cache], sweeps
    )
    needles = {"the token": secret, "the token folder": str(tokens), "CONDOR_CONFIG's path": str(config),
               "a file in a tokens.d": "tokens.d/"}  # fmt: skip
    assert (
        sweeps / "t" / names.ITEMS_DIR / "f1_r0" / "job.err"
    ).stat().st_size > 0  # there was something to scan
    assert find_credentials(needles, sweeps, cache) == []


def _pool_needles(condor_pool: PersonalPool) -> dict[str, str]:
    tokens = Path(htcondor2.param["SEC_TOKEN_DIRECTORY"])
    needles = {f"the pool token {path.name}": path.read_text().strip() for path in tokens.iterdir()}
    return {**needles, "the token folder": str(tokens), "CONDOR_CONFIG's path": str(condor_pool.condor_config),
            "a file in a tokens.d": "tokens.d/"}  # fmt: skip


@pytest.mark.condor
def test_no_pool_credential_reaches_a_condor_sweep_its_tarballs_or_its_report(
    condor_pool: PersonalPool, pool_root: Path, shards: Path
) -> None:
    tiny_environment()
    cache = pool_root / "cache"
    shutil.copytree(TINY_CACHE, cache, ignore=shutil.ignore_patterns("unpacked", ".lock-*"))
    sweeps = pool_root / "sweeps"
    args = [*submit_args(copy_of(shards, pool_root / "shards"), sweeps), "--requirements", cache / "requirements.txt",
            "--cache", cache, "--backend", "condor"]  # fmt: skip
    _submit_collect_report(
        args, sweeps
    )  # real wrapper on the pool: the job fails there (no numpy), outputs return
    assert (sweeps / "t" / names.EVENT_LOG).stat().st_size > 0
    assert find_credentials(_pool_needles(condor_pool), sweeps, cache) == []


@pytest.mark.slow
@pytest.mark.condor
def test_the_job_environment_tarballs_hold_no_pool_credential(condor_pool: PersonalPool) -> None:
    from packing_fakes import job_environment

    env = job_environment()  # the TensorFlow environment: ~1.5 GB to read through
    needles = _pool_needles(condor_pool)
    found = [f"{what}: {env_file}:{name}" for env_file in (env.interpreter.path, env.site_packages.path)
             for name, data in _tar_members(env_file) for what, needle in needles.items() if needle.encode() in data]  # fmt: skip
    assert found == []
