"""Packing: keys, manifests, the cache, atomic writes, the code tarball, and real builds."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from sweep import archive, elfscan, fs, locks, names, pack
from sweep.envfiles import select_site_packages
from sweep.errors import PackError
from sweep.pack import (
    build_environment,
    environment_key,
    find_environment,
    load_environment,
    pack_job_code,
    verify_environment,
)

from packing_fakes import TINY_LOCK, job_environment, job_source_root, tiny_environment


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def leftovers(cache: Path) -> list[str]:
    """Anything in the cache folder except the per-key lock files."""
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith(".lock-"))


# ----------------------------------------------------------------------------- keys


def test_key_ignores_comments_and_follows_pins(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("# header\nzstandard==0.25.0\n")
    key = environment_key(req)
    req.write_text("# another header\n\nzstandard==0.25.0  # why\n")
    assert environment_key(req) == key
    req.write_text("zstandard==0.24.0\n")
    assert environment_key(req) != key
    assert re.fullmatch(r"[0-9a-f]{16}", key)


def test_key_of_a_hashed_lock_follows_pins_and_hashes_not_notes(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    lock = "# header\nzstandard==0.25.0 \\\n    --hash=sha256:{a} \\\n    --hash=sha256:{b}\n    # via -r in.txt\n"
    req.write_text(lock.format(a="1" * 64, b="2" * 64))
    key = environment_key(req)
    assert locks.locked_lines(req) == [f"zstandard==0.25.0 --hash=sha256:{'1' * 64} --hash=sha256:{'2' * 64}"]
    req.write_text(lock.format(a="1" * 64, b="2" * 64).replace("# via -r in.txt", "# via sweep"))
    assert environment_key(req) == key
    req.write_text(lock.format(a="1" * 64, b="3" * 64))  # another file behind the same version
    assert environment_key(req) != key


def test_unreadable_requirements_is_a_pack_error(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="cannot read the requirements file .*missing.txt"):
        build_environment(tmp_path / "missing.txt", tmp_path / "cache")


def test_requirements_without_hashes_are_refused_before_pip(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text("# a hand-made list: neither pinned nor hashed\nzstandard==0.25.0\nnumpy>=1.26\n")
    with pytest.raises(PackError) as caught:
        build_environment(req, tmp_path / "cache")
    message = str(caught.value)
    assert (
        f"{req} is not a hashed lock: 2 requirement(s) have no --hash (zstandard==0.25.0, numpy>=1.26)"
        in message
    )
    assert f"Make one with: {locks.lock_command(req)}" in message
    assert locks.lock_command(req).startswith("uv pip compile --generate-hashes --python-version 3.")
    assert f"--python-platform x86_64-manylinux_2_28 NEEDS.in -o {req}" in locks.lock_command(req)
    assert leftovers(tmp_path / "cache") == []


# Each a lock with hashes that pip --require-hashes still refuses: what pip enforces, not sweep.
REQUESTS_ALONE = ("requests==2.34.2 --hash=sha256:2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0 "
                  "--hash=sha256:f288924cae4e29463698d6d60bc6a4da69c89185ad1e0bcc4104f584e960b9ed\n")  # fmt: skip
REFUSED_BY_PIP = {
    "unpinned": (lambda tiny: tiny.replace("zstandard==0.25.0", "zstandard>=0.25"),
                 "all requirements must have their versions pinned with ==", "zstandard>=0.25"),
    "a dependency missing": (lambda tiny: REQUESTS_ALONE,
                             "all requirements must have their versions pinned with ==", "from requests==2.34.2"),
    "a changed file": (lambda tiny: f"zstandard==0.25.0 --hash=sha256:{'0' * 64}\n",
                       "DO NOT MATCH THE HASHES", "Expected sha256 " + "0" * 64),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED_BY_PIP, ids=list(REFUSED_BY_PIP))
def test_pip_refuses_a_lock_that_is_not_complete_or_does_not_match(case: str, tmp_path: Path) -> None:
    edit, pip_says, named = REFUSED_BY_PIP[case]
    req = tmp_path / "req.txt"
    req.write_text(edit(TINY_LOCK.read_text()))
    with pytest.raises(PackError) as caught:
        build_environment(req, tmp_path / "cache")
    message = str(caught.value)
    assert f"pip install failed for {req}" in message and pip_says in message and named in message, message
    if case != "a changed file":  # that one is tampering or a re-upload: regenerating is not the answer
        assert f"{req} is not a complete hashed lock; make one with: {locks.lock_command(req)}" in message
    assert leftovers(tmp_path / "cache") == []


# ----------------------------------------------------------------------------- failures leave nothing


def test_failed_pip_install_names_the_file_and_pips_error_and_leaves_nothing(tmp_path: Path) -> None:
    req = tmp_path / "req.txt"
    req.write_text(f"nonexistent-package-xyz==1.0 --hash=sha256:{'0' * 64}\n")
    cache = tmp_path / "cache"
    with pytest.raises(PackError) as caught:
        build_environment(req, cache)
    message = str(caught.value)
    assert str(req) in message
    assert "ERROR:" in message and "nonexistent-package-xyz" in message
    assert leftovers(cache) == []


def test_interrupt_during_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    req = tmp_path / "req.txt"
    req.write_text(TINY_LOCK.read_text())
    cache = tmp_path / "cache"

    def interrupted(requirements: Path, venv: Path, report: object) -> Path:
        venv.mkdir(parents=True)
        (venv / "half-installed").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(pack, "install_lock", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_environment(req, cache)
    assert leftovers(cache) == []


def test_atomic_path_removes_the_temp_file_on_interrupt(tmp_path: Path) -> None:
    dest = tmp_path / "big.tar.zst"
    with pytest.raises(KeyboardInterrupt), fs.atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_interrupted_tar_stream_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "site-packages"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "a.py").write_bytes(os.urandom(1 << 20))
    out = tmp_path / "out"
    out.mkdir()

    class Exploding:
        def __init__(self, **kwargs: object) -> None:
            pass

        def copy_stream(self, *args: object, **kwargs: object) -> tuple[int, int]:
            raise KeyboardInterrupt

    monkeypatch.setattr(archive.zstandard, "ZstdCompressor", Exploding)
    with pytest.raises(KeyboardInterrupt):
        archive.write_tar_zstd(tmp_path, ["site-packages", "site-packages/pkg", "site-packages/pkg/a.py"],
                               out / "x.tar.zst")  # fmt: skip
    assert list(out.iterdir()) == []


def test_stale_leftovers_of_a_killed_build_are_removed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / ".build-abcd1234abcd1234-xyz").mkdir(parents=True)
    (cache / ".python-abcd1234abcd1234.tar.gz.tmp-1-2").write_text("half")
    (cache / ".python-ffff000011112222.tar.gz.tmp-1-2").write_text("another key: not ours")
    pack._remove_leftovers(cache, "abcd1234abcd1234")
    assert leftovers(cache) == [".python-ffff000011112222.tar.gz.tmp-1-2"]


def test_load_environment_of_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no packed environment 0123456789abcdef"):
        load_environment(tmp_path, "0123456789abcdef")


# ----------------------------------------------------------------------------- the code tarball


def test_code_tarball_is_deterministic_and_holds_only_job_code(tmp_path: Path) -> None:
    root = job_source_root(tmp_path / "src", {"standin": "print('hi')\n"})
    (root / "sweep" / "job" / "__pycache__").mkdir()
    (root / "sweep" / "job" / "__pycache__" / "standin.cpython-311.pyc").write_bytes(b"junk")
    (root / "sweep" / "cli.py").write_text("# CLI side: never shipped\n")
    first = pack_job_code(tmp_path / "a", source_root=root)
    for path in root.rglob("*.py"):
        os.utime(path, (1, 1))  # another checkout, other mtimes
    second = pack_job_code(tmp_path / "b", source_root=root)
    assert first.sha256 == second.sha256
    assert first.name == names.CODE_TARBALL
    with tarfile.open(first.path) as tar:
        members = tar.getmembers()
    member_names = [m.name for m in members]
    assert member_names == sorted(member_names)
    assert "sweep/__init__.py" in member_names and "sweep/names.py" in member_names
    assert "sweep/job/unpack.py" in member_names and "sweep/job/standin.py" in member_names
    assert not any("__pycache__" in n or n.endswith(".pyc") or n == "sweep/cli.py" for n in member_names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert first.files == len(members)
    (root / "sweep" / "job" / "standin.py").write_text("print('changed')\n")
    assert pack_job_code(tmp_path / "c", source_root=root).sha256 != first.sha256


def test_code_tarball_of_this_checkout(tmp_path: Path) -> None:
    tarball = pack_job_code(tmp_path)
    with gzip.open(tarball.path) as raw, tarfile.open(fileobj=raw) as tar:
        assert "sweep/job/unpack.py" in tar.getnames()


# ----------------------------------------------------------------------------- what is shipped


def test_site_packages_rules(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    files = [
        "tensorflow/__init__.py", "tensorflow/include/tensorflow/core/x.h",
        "tensorflow/_api/v2/test/__init__.py", "keras/src/backend/tests/__init__.py",
        "scipy/stats/tests/test_x.py", "scipy/stats/__init__.py", "numpy/__pycache__/x.cpython-311.pyc",
        "pip/__init__.py", "pip-23.2.1.dist-info/METADATA", "setuptools/__init__.py",
        "pkg_resources/__init__.py", "_distutils_hack/__init__.py", "distutils-precedence.pth",
        "clang/native/libclang.so", "libclang-18.1.1.dist-info/METADATA", "wheel/__init__.py",
        "numpy-2.4.6.dist-info/METADATA", "joblib/test/test_x.py",
    ]  # fmt: skip
    for rel in files:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text("")
    kept = {p.removeprefix("site-packages/") for p in select_site_packages(site).relpaths}
    assert {
        "tensorflow/__init__.py", "tensorflow/_api/v2/test/__init__.py", "keras/src/backend/tests/__init__.py",
        "scipy/stats/__init__.py", "numpy/__pycache__/x.cpython-311.pyc", "numpy-2.4.6.dist-info/METADATA",
        "joblib/test/test_x.py",
    } <= kept  # fmt: skip
    dropped = {"tensorflow/include", "scipy/stats/tests", "pip", "pip-23.2.1.dist-info", "setuptools",
               "pkg_resources", "_distutils_hack", "distutils-precedence.pth", "clang",
               "libclang-18.1.1.dist-info", "wheel"}  # fmt: skip
    assert not {k for k in kept if any(k == d or k.startswith(d + "/") for d in dropped)}


def test_glibc_versions_read_from_elf_match_readelf() -> None:
    libpython = Path(sys.base_prefix) / "lib" / "libpython3.11.so.1.0"
    target = libpython if libpython.exists() else Path(os.path.realpath(sys.executable))
    needs = elfscan.read_elf_needs(target)
    assert needs is not None and "GLIBC" in needs.versions
    assert elfscan.read_elf_needs(Path(pack.__file__)) is None
    if shutil.which("readelf"):
        listing = subprocess.run(
            ["readelf", "-V", str(target)], capture_output=True, text=True, check=True
        ).stdout
        newest = max(tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", listing))
        assert needs.versions["GLIBC"] == newest


# ----------------------------------------------------------------------------- a real (small) build


def test_tiny_env_manifests_and_cache_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_env = tiny_environment()
    cache = tiny_env.interpreter.path.parent
    for tarball, compression in ((tiny_env.interpreter, "gzip"), (tiny_env.site_packages, "zstd")):
        manifest = json.loads(pack.manifest_path(tarball.path).read_text())
        assert manifest["sha256"] == tarball.sha256 and manifest["bytes"] == tarball.path.stat().st_size
        assert manifest["key"] == tiny_env.key and manifest["compression"] == compression
        assert manifest["python_version"] == tiny_env.python_version
        assert re.fullmatch(r"\d+\.\d+", manifest["glibc_min"])
    manifests = [
        json.loads(pack.manifest_path(t.path).read_text())
        for t in (tiny_env.interpreter, tiny_env.site_packages)
    ]
    assert tiny_env.glibc_min == max((m["glibc_min"] for m in manifests), key=version)

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"a cache hit must not hash {path}")

    monkeypatch.setattr(pack, "sha256_file", no_hashing)
    started = time.monotonic()
    result = build_environment(tiny_env.requirements, cache)
    assert result.cache_hit and time.monotonic() - started < 1.0
    assert result.env == tiny_env


def test_tiny_interpreter_layout() -> None:
    tiny_env = tiny_environment()
    with tarfile.open(tiny_env.interpreter.path) as tar:
        member_names = set(tar.getnames())
    version = "python" + ".".join(tiny_env.python_version.split(".")[:2])
    assert {f"python/bin/{version}", "python/bin/python3", f"python/lib/{version}/os.py",
            f"python/lib/{version}/site-packages/zstandard/__init__.py",
            f"python/lib/{version}/site-packages/_sweep_site.pth"} <= member_names  # fmt: skip
    for dropped in ("test", "idlelib", "tkinter", "ensurepip", "turtledemo", "config-"):
        assert not any(n.startswith(f"python/lib/{version}/{dropped}") for n in member_names), dropped
    assert not any(n.endswith((".opt-1.pyc", ".opt-2.pyc")) for n in member_names)
    site_packages = [n for n in member_names if "/site-packages/" in n]
    assert all("zstandard" in n or n.endswith("_sweep_site.pth") for n in site_packages)


def test_verify_detects_a_changed_tarball_that_the_cache_still_trusts(tmp_path: Path) -> None:
    tiny_env = tiny_environment()
    cache = tmp_path / "cache"
    shutil.copytree(tiny_env.interpreter.path.parent, cache)
    env = load_environment(cache, tiny_env.key)
    verify_environment(env)
    data = bytearray(env.site_packages.path.read_bytes())
    data[100] ^= 0xFF
    env.site_packages.path.write_bytes(bytes(data))
    assert find_environment(tiny_env.requirements, cache) is not None  # same size: trusted, not hashed
    with pytest.raises(PackError) as caught:
        verify_environment(env)
    message = str(caught.value)
    assert str(env.site_packages.path) in message and env.site_packages.sha256 in message
    assert pack.sha256_file(env.site_packages.path) in message
    env.site_packages.path.write_bytes(bytes(data[:-10]))
    assert find_environment(tiny_env.requirements, cache) is None  # size differs: rebuild


# ----------------------------------------------------------------------------- the real environment


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_environment_manifest_and_slimming() -> None:
    real_env = job_environment()
    site_manifest = json.loads(pack.manifest_path(real_env.site_packages.path).read_text())
    interp_manifest = json.loads(pack.manifest_path(real_env.interpreter.path).read_text())
    assert site_manifest["glibc_min"] == "2.27"  # the pinned tensorflow-cpu 2.21 wheels
    assert real_env.glibc_min == max(site_manifest["glibc_min"], interp_manifest["glibc_min"], key=version)
    assert real_env.interpreter.compression == "gzip" and real_env.site_packages.compression == "zstd"
    assert real_env.site_packages.files > 10_000
    started = time.monotonic()
    again = build_environment(real_env.requirements, real_env.interpreter.path.parent)
    assert again.cache_hit and time.monotonic() - started < 1.0
    verify_environment(real_env)
    with real_env.site_packages.path.open("rb") as raw:
        stream = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            member_names = {m.name for m in tar}
    assert "site-packages/tensorflow/_api/v2/test/__init__.py" in member_names
    for dropped in ("tensorflow/include/", "pip/", "clang/", "setuptools/", "scipy/stats/tests/"):
        assert not any(n.startswith("site-packages/" + dropped) for n in member_names), dropped
    assert any(n.endswith(".cpython-311.pyc") for n in member_names)
