"""The job-side unpacker: hash check, member checks before any write, real extraction."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sweep.job import unpack

from packing_fakes import link, write_zst


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweep.job.unpack", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_unpacks_files_dirs_and_inner_symlinks(tmp_path: Path) -> None:
    archive = write_zst(
        tmp_path / "env.tar.zst",
        [("site-packages/pkg/__init__.py", b"X = 1\n"), ("site-packages/pkg/data/a.txt", b"a"),
         link("site-packages/pkg/alias.txt", "data/a.txt"), link("site-packages/pkg/up.txt", "../top.txt"),
         ("site-packages/top.txt", b"top")],
    )  # fmt: skip
    dest = tmp_path / "dest"
    result = run_cli(archive.path, "--sha256", archive.sha256, "--dest", dest)
    assert result.returncode == 0, result.stderr
    assert (dest / "site-packages/pkg/__init__.py").read_text() == "X = 1\n"
    assert (dest / "site-packages/pkg/alias.txt").read_text() == "a"
    assert (dest / "site-packages/pkg/up.txt").read_text() == "top"


def test_hash_mismatch_says_tampered_names_file_and_both_hashes(tmp_path: Path) -> None:
    archive = write_zst(tmp_path / "env.tar.zst", [("site-packages/a.py", b"")])
    wrong = "0" * 64
    dest = tmp_path / "dest"
    result = run_cli(archive.path, "--sha256", wrong, "--dest", dest)
    assert result.returncode == unpack.EXIT_TAMPERED
    assert "tampered or corrupt" in result.stderr
    assert str(archive.path) in result.stderr and wrong in result.stderr and archive.sha256 in result.stderr
    assert not dest.exists()


def test_a_flipped_byte_is_caught_even_when_decompression_fails(tmp_path: Path) -> None:
    archive = write_zst(tmp_path / "env.tar.zst", [("site-packages/a.py", b"x" * 5000)])
    good = archive.sha256
    data = bytearray(archive.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.path.write_bytes(bytes(data))
    result = run_cli(archive.path, "--sha256", good, "--dest", tmp_path / "dest")
    assert result.returncode == unpack.EXIT_TAMPERED
    assert not (tmp_path / "dest").exists()


def test_not_a_zstd_tarball_with_matching_hash_is_a_failure_not_tampering(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"this is not zstd")
    from packing_fakes import sha256_of

    result = run_cli(junk, "--sha256", sha256_of(junk), "--dest", tmp_path / "dest")
    assert result.returncode == unpack.EXIT_FAILED
    assert "not a readable zstd tarball" in result.stderr


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


UNSAFE = {
    "absolute path": [("/tmp/sweep-evil-abs.txt", b"x")],
    "dot-dot": [("site-packages/../../sweep-evil-dotdot.txt", b"x")],
    "symlink out (relative)": [link("site-packages/l", "../../etc")],
    "symlink out (absolute)": [link("site-packages/l", "/etc/passwd")],
    "write through a symlink": [link("site-packages/d", "sub"), ("site-packages/d/x.txt", b"x")],
    "hard link out": [link("site-packages/h", "../outside.txt", hard=True)],
    "device file": [_device("site-packages/dev")],
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path: Path, case: str) -> None:
    # the safe member comes FIRST: a one-pass unpacker would already have written it
    archive = write_zst(tmp_path / "evil.tar.zst", [("site-packages/ok.py", b"ok"), *UNSAFE[case]])
    dest = tmp_path / "dest"
    result = run_cli(archive.path, "--sha256", archive.sha256, "--dest", dest)
    assert result.returncode == unpack.EXIT_UNSAFE, result.stderr
    assert "refused, nothing was unpacked" in result.stderr
    assert not dest.exists()
    assert not Path("/tmp/sweep-evil-abs.txt").exists()
    assert not (tmp_path / "sweep-evil-dotdot.txt").exists()


def test_missing_archive(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "nope.tar.zst", "--sha256", "0" * 64, "--dest", tmp_path / "d")
    assert result.returncode == unpack.EXIT_FAILED
    assert "no such file" in result.stderr


def test_unpacker_imports_only_stdlib_zstandard_and_sweep_job() -> None:
    probe = (
        "import sys, json; before = set(sys.modules); import sweep.job.unpack; "
        "new = set(sys.modules) - before; "
        "print(json.dumps(sorted(m for m in new if m.split('.')[0] not in sys.stdlib_module_names)))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    foreign = set(json.loads(result.stdout))
    assert {m for m in foreign if not m.startswith("zstandard")} == {"sweep", "sweep.job", "sweep.job.unpack"}
