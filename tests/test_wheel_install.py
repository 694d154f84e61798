"""The built wheel, installed into a fresh venv, is all of sweep: it runs from a folder outside the repository.

What the editable install hides: the templates and the job lock file are package data, `sweep.analysis`
is mapped from the repository's analysis/ folder, and every file a command reads is found through
importlib.resources. The fast tests here guard the pieces; the slow ones build, install and really
run a one-item sweep with TensorFlow in the packed environment (a cache hit in envs/cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweep import extras, resources
from sweep.cli import app

REPO = Path(__file__).resolve().parents[1]
ENV_CACHE = (
    REPO / "envs" / "cache"
)  # the environment built for this interpreter: a cache hit, not ~90 s of packing
# what a user's checkout may hold that is no source: setuptools reuses a stale build/lib, so the wheel
# is built from a copy without it (envs/cache is left out too; a small stand-in file takes its place)
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "sweeps", "demo"
)


# ---------------------------------------------------------------- fast: the pieces


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "sweep").rglob("__init__.py")
    }
    mapped = {"sweep.analysis", "sweep.envs", "sweep.submit_templates"}
    assert folders | mapped == listed  # a new sweep/ subpackage must be listed, or the wheel lacks it


def test_default_env_cache_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWEEP_ENV_CACHE_DIR", str(tmp_path / "mine"))
    assert resources.default_env_cache() == tmp_path / "mine"
    monkeypatch.delenv("SWEEP_ENV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resources.default_env_cache() == tmp_path / "xdg" / "sweep" / "envs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # the XDG spec says to ignore it
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resources.default_env_cache() == tmp_path / ".cache" / "sweep" / "envs"


def test_shipped_files_are_found_as_package_resources() -> None:
    assert "tensorflow-cpu==" in resources.job_requirements().read_text()
    assert (resources.templates() / "submit.sub.j2").is_file()
    assert (resources.package_root() / "sweep" / "job" / "__init__.py").is_file()


@pytest.mark.parametrize("command", [["report", "some-sweep"], ["demo"]])
def test_a_command_without_its_extra_names_it(monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    real = extras.find_spec
    monkeypatch.setattr(extras, "find_spec", lambda name: None if name == "scipy" else real(name))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2
    assert (
        f"sweep {command[0]} needs matplotlib and scipy: pip install 'sweep[report]' (scipy not installed)"
        in (" ".join(result.output.split()))
    )


# ---------------------------------------------------------------- slow: build, install, run


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path  # the fresh venv's bin/
    home: Path  # a folder outside the repository: the working directory of every command

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(SWEEP_ENV_CACHE_DIR=str(ENV_CACHE), PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}")
        return run_checked(*args, timeout=timeout, cwd=self.home, env=env)

    def sweep(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "sweep"), *args, timeout=timeout)


def run_checked(*args: str, timeout: float, **options: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **options)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def not_sources(folder: str, names: list[str]) -> set[str]:
    return set(NOT_SOURCES(folder, names)) | ({"cache"} if Path(folder) == REPO / "envs" else set())


def build_wheel(scratch: Path) -> Path:
    source = scratch / "checkout"
    shutil.copytree(REPO, source, ignore=not_sources)
    stand_in = source / "envs" / "cache" / "python-0123456789abcdef.json"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text("{}\n")  # a built environment's manifest: it must stay out of the wheel
    run_checked(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(scratch / "dist"),
        str(source),
        timeout=600,
    )
    (wheel,) = (scratch / "dist").glob("sweep-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    scratch = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(scratch)
    venv = scratch / "venv"
    run_checked(sys.executable, "-m", "venv", str(venv), timeout=120)
    # the report extra, not train: jobs bring TensorFlow in the packed environment;
    # --no-compile: byte-compiling SciPy, pandas and matplotlib would add about a minute
    run_checked(
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-compile",
        f"{wheel}[report]",
        timeout=900,
    )
    return Installed(wheel=wheel, bin=venv / "bin", home=tmp_path_factory.mktemp("user"))


@pytest.mark.slow
def test_wheel_holds_the_package_data_and_nothing_else(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for shipped in (
        "sweep/submit_templates/submit.sub.j2",
        "sweep/submit_templates/job_wrapper.sh.j2",
        "sweep/envs/requirements-job.txt",
        "sweep/analysis/report.py",
        "sweep/job/__main__.py",
        "sweep/py.typed",
    ):
        assert shipped in names, shipped
    version = installed.wheel.name.split("-")[1]
    assert {name.split("/")[0] for name in names} == {
        "sweep",
        f"sweep-{version}.dist-info",
    }  # no top-level analysis/
    assert [name for name in names if name.startswith("sweep/envs/")] == [
        "sweep/envs/__init__.py",
        "sweep/envs/requirements-job.txt",
    ]


@pytest.mark.slow
def test_installed_sweep_answers_from_outside_the_repository(installed: Installed) -> None:
    python = str(installed.bin / "python")
    assert "Usage: sweep" in installed.sweep("--help").stdout
    assert "Usage: sweep" in installed.run(python, "-m", "sweep", "--help").stdout
    where = installed.run(
        python,
        "-c",
        "import importlib.util as u, sweep.analysis.report as r; print(r.__file__, u.find_spec('analysis'))",
    ).stdout.split()
    assert where[0].startswith(str(installed.bin.parent)) and where[1] == "None"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_installed_sweep_runs_a_sweep_end_to_end(installed: Installed) -> None:
    installed.sweep("data", "synth", "source", "--images", "120", "--size", "16")
    installed.sweep("data", "shard", "source", "shards", "--size", "16")
    submit = [
        "submit",
        "--fractions",
        "1",
        "--replicas",
        "1",
        "--epochs",
        "1",
        "--data",
        "shards",
        "--name",
        "wheel",
    ]
    described = installed.sweep(*submit, "--dry-run").stdout
    assert str(ENV_CACHE) in described and "queue" in described  # the templates rendered, the cache followed
    installed.sweep(*submit, timeout=600)  # packs nothing: the environment of this lock is in ENV_CACHE
    installed.sweep("status", "wheel", "--watch", "--timeout", "600", timeout=700)
    items = json.loads(installed.sweep("status", "wheel", "--json").stdout)["items"]
    assert [item["state"] for item in items] == ["done"], items
    installed.sweep("collect", "wheel")
    reported = json.loads(installed.sweep("report", "wheel", "--json").stdout)
    assert reported["done"] == 1 and Path(installed.home, reported["files"]["report"]).is_file()
