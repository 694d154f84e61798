"""What every job of a sweep receives, as the sweep manifest records it: the environment and the job code.

`submit` writes it into sweep.json; `resubmit` reads it back to render the same jobs again.
One type owns both directions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.pack import EnvManifest, Tarball


def tarball_to_dict(tarball: Tarball) -> dict[str, object]:
    return {
        "path": str(tarball.path),
        "sha256": tarball.sha256,
        "bytes": tarball.bytes,
        "files": tarball.files,
        "compression": tarball.compression,
    }


def tarball_from_dict(data: Mapping[str, Any]) -> Tarball:
    return Tarball(
        path=Path(str(data["path"])),
        sha256=str(data["sha256"]),
        bytes=int(data["bytes"]),
        files=int(data["files"]),
        compression=data["compression"],
    )


@dataclass(frozen=True)
class ShippedEnvironment:
    """The packed environment and the job-code tarball that go to every job of one sweep."""

    env: EnvManifest
    code: Tarball

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.env.key,
            "python_version": self.env.python_version,
            "platform": self.env.platform,
            "glibc_min": self.env.glibc_min,
            "requirements": str(self.env.requirements),
            "interpreter": tarball_to_dict(self.env.interpreter),
            "site_packages": tarball_to_dict(self.env.site_packages),
            "code": tarball_to_dict(self.code),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShippedEnvironment:
        env = EnvManifest(
            key=str(data["key"]), python_version=str(data["python_version"]), platform=str(data["platform"]),
            glibc_min=str(data["glibc_min"]), interpreter=tarball_from_dict(data["interpreter"]),
            site_packages=tarball_from_dict(data["site_packages"]), requirements=Path(str(data["requirements"])),
        )  # fmt: skip
        return cls(env=env, code=tarball_from_dict(data["code"]))
