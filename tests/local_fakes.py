"""A sweep directory whose job wrapper is a small shell stand-in, for fast tests of the local backend.

The real wrapper, tarballs and TensorFlow job run in the end-to-end tests; here the stand-in
lets the runner's scheduling, retries, holds, kills and cancellation be tested in seconds.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sweep import names
from sweep.pack import EnvManifest, Tarball
from sweep.recovery import submit_or_undo
from sweep.render import render_submission
from sweep.shipped import ShippedEnvironment
from sweep.spec import SweepSpec, parse_fractions
from sweep.state import SweepDir, SweepManifest, create_sweep_dir
from sweep.submitting import NewSweep, manifest_items, write_sweep_files

# The stand-in job: reads its fraction from the arguments and behaves as FAKE_BEHAVIOUR says.
FAKE_WRAPPER = r"""#!/bin/sh
fraction=""; while [ $# -gt 0 ]; do [ "$1" = "--fraction" ] && fraction="$2"; shift; done
mkdir -p out
echo "{\"unpack_site\": 0.5}" > out/wrapper.json
behaviour=$(sed -n "s/^$fraction=//p" behaviour.txt 2>/dev/null)
case "$behaviour" in
  fail) echo '{"schema":"sweep.error/1","stage":"train","type":"ValueError","message":"bad batch"}' > out/error.json; exit 1 ;;
  sigill) kill -ILL $$ ;;
  sleep) sleep 60 ;;
  slow) sleep 6 ;;
  truncated) printf '{"schema": "sweep.met' > out/metrics.json; exit 0 ;;
esac
sleep 0.2
cat > out/metrics.json <<EOF
{"schema": "sweep.metrics/1", "auc_macro": 0.75, "auc_labels_evaluated": 2, "train_images": 10,
 "train_patients": 4, "auc_per_label": {"Effusion": 0.6, "Hernia": null},
 "timings": {"import": 1.0, "data_load": 0.1, "train": 2.0, "evaluate": 0.3, "export": 0.2, "total": 3.6},
 "host": {"hostname": "fakehost", "cpu_model": "Fake CPU", "machine_microarch": "x86_64-v3"}}
EOF
touch out/model.keras
"""


@dataclass(frozen=True)
class Plan:
    """An item's data plan for two tiny files; sizes unknown (the fake job reports its own)."""

    files: tuple[str, ...]
    bytes: int | None = None
    train_images: int | None = None
    train_patients: int | None = None


def _tarball(path: Path) -> Tarball:
    path.write_bytes(b"not really a tarball")
    return Tarball(path=path, sha256="0" * 64, bytes=20, files=1, compression="gzip")


def make_fake_sweep(
    root: Path,
    *,
    fractions: str = "0.1,0.2,0.3",
    replicas: int = 1,
    max_retries: int = 0,
    behaviour: dict[str, str] | None = None,
    name: str = "fake",
    backend: dict[str, str] | None = None,
) -> tuple[SweepDir, SweepManifest]:
    """Create and submit a sweep (local backend unless told otherwise) whose jobs are FAKE_WRAPPER."""
    backend = backend or {"name": "local"}
    envs = root / "envs"
    envs.mkdir(exist_ok=True)
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "manifest.json").write_text("{}")
    (data / "behaviour.txt").write_text("".join(f"{k}={v}\n" for k, v in (behaviour or {}).items()))
    env = EnvManifest(
        key="fake",
        python_version="3.11.7",
        platform="linux-x86_64",
        glibc_min="2.17",
        interpreter=_tarball(envs / "python-fake.tar.gz"),
        site_packages=_tarball(envs / "site-fake.tar.zst"),
        requirements=envs / "requirements.txt",
    )
    spec = SweepSpec(name=name, fractions=parse_fractions(fractions), replicas=replicas)
    plans = {item.name: Plan(("manifest.json", "behaviour.txt")) for item in spec.items()}
    sweeps_dir = root / "sweeps"
    final = (sweeps_dir / name).resolve()
    token = secrets.token_hex(4)

    def build(tmp: Path) -> NewSweep:
        code = _tarball(tmp / names.CODE_TARBALL)
        code = Tarball(
            path=final / names.CODE_TARBALL, sha256=code.sha256, bytes=20, files=1, compression="gzip"
        )
        rendered = render_submission(
            spec,
            env,
            code,
            plans,
            sweep_dir=final,
            data_dir=data.resolve(),
            wrapper=final / names.JOB_WRAPPER,
            max_retries=max_retries,
            submit_token=token,
        )
        manifest = SweepManifest(
            name=name,
            spec=spec,
            backend=backend,
            env=ShippedEnvironment(env, code).to_dict(),
            data={"labels": ["Effusion", "Hernia"], "folder": str(data)},
            items=manifest_items(rendered, plans),
            max_retries=max_retries,
        )
        write_sweep_files(tmp, manifest, rendered, FAKE_WRAPPER)
        return NewSweep(manifest=manifest, rendered=rendered)

    sweep, new = create_sweep_dir(sweeps_dir, name, build)
    from sweep.backends import get_backend

    submit_or_undo(get_backend(backend), sweep, new.manifest, new.rendered, token)
    return sweep, sweep.load()
