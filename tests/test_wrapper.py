"""The job wrapper, rendered and really run in a sandbox with an empty environment.

Fast tests use tiny real tarballs and the test's own Python as a stand-in interpreter; the
slow ones run the real packed environment (see test_pack.py for the build).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from sweep import names
from sweep.errors import RenderError
from sweep.pack import EnvManifest
from sweep.wrapper import render_job_wrapper

from packing_fakes import (
    FakeArchive,
    Sandbox,
    job_environment,
    link,
    make_sandbox,
    tiny_environment,
    write_gz,
    write_zst,
)

REPORT_ENV = """
import json, os, sys
os.makedirs("out", exist_ok=True)
keys = ["PYTHONPATH", "SWEEP_SITE_PACKAGES", "LD_LIBRARY_PATH", "TF_CPP_MIN_LOG_LEVEL", "PYTHONNOUSERSITE",
        "PYTHONSAFEPATH", "KERAS_HOME"]
with open("out/job.json", "w") as f:
    json.dump({"argv": sys.argv[1:], "pid": os.getpid(), "env": {k: os.environ.get(k) for k in keys}}, f)
sys.exit(int(os.environ.get("JOB_EXIT", "0")))
"""
PROBE_INTERPRETER = """
import json, os, sys, sysconfig
maps = open("/proc/self/maps").read().splitlines()
libpython = sorted({line.split()[-1] for line in maps if "libpython" in line})
with open("out/probe.json", "w") as f:
    json.dump({"path": sys.path, "prefix": sys.prefix, "libpython": libpython,
               "stdlib": sysconfig.get_paths()["stdlib"], "cwd": os.getcwd()}, f)
"""
# imports everything the job environment is for, fits, exports TFLite and runs it: proves the
# exclusions in sweep/envfiles.py on the UNPACKED tarballs
SMOKE_FIT = """
import json, os, sys, sysconfig, time
t0 = time.monotonic()
import numpy as np
import tensorflow as tf
import keras
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from sklearn.metrics import roc_auc_score
imported = time.monotonic() - t0
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 16, 16, 1)).astype("float32")
y = (x.mean(axis=(1, 2, 3)) > 0).astype("float32")[:, None]
model = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
auc = float(roc_auc_score(y[:, 0], model.predict(x, verbose=0)[:, 0]))
tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
lite = Interpreter(model_content=tflite)
lite.allocate_tensors()
lite.set_tensor(lite.get_input_details()[0]["index"], x[:1])
lite.invoke()
lite_out = float(lite.get_tensor(lite.get_output_details()[0]["index"])[0, 0])
os.makedirs("out", exist_ok=True)
Image.fromarray((x[0, :, :, 0] * 50 + 128).clip(0, 255).astype("uint8")).save("out/sample.png")
maps = open("/proc/self/maps").read().splitlines()
libpython = sorted({line.split()[-1] for line in maps if "libpython" in line})
with open("out/smoke.json", "w") as f:
    json.dump({"libpython": libpython, "path": sys.path, "stdlib": sysconfig.get_paths()["stdlib"], "tensorflow_file": tf.__file__,
       "tensorflow": tf.__version__, "keras": keras.__version__, "loss": history.history["loss"], "auc": auc,
       "tflite_bytes": len(tflite), "tflite_out": lite_out, "import_seconds": imported, "total_seconds": time.monotonic() - t0}, f)
"""
KILL_WITH_SIGILL = "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n"
STAGES = ["verify", "unpack_interpreter", "unpack_code", "unpack_site", "interpreter_start", "total"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path, {"report_env": REPORT_ENV, "sigill": KILL_WITH_SIGILL})


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def error_of(sandbox: Sandbox) -> dict:
    return read_json(sandbox.path / names.JOB_OUTPUT_DIR / names.ERROR)


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_runs_the_job_with_args_env_and_timings(sandbox: Sandbox, shell: str) -> None:
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    sandbox.render(job_module="sweep.job.report_env", cpu_flags=("sse2",))
    result = sandbox.run("--fraction", "0.25", "two words", shell=shell)
    assert result.returncode == 0, result.stderr
    job = read_json(sandbox.path / "out" / "job.json")
    assert job["argv"] == ["--fraction", "0.25", "two words"]
    work = sandbox.path / ".sweep"
    assert job["env"] == {
        "PYTHONPATH": str(work / "code"),
        "SWEEP_SITE_PACKAGES": str(work / "site-packages"),
        "LD_LIBRARY_PATH": str(work / "python" / "lib"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONNOUSERSITE": "1",
        "PYTHONSAFEPATH": "1",
        "KERAS_HOME": str(work / "keras"),
    }
    assert (work / "site-packages" / "marker_pkg.py").is_file()
    timings = read_json(sandbox.path / "out" / names.WRAPPER_TIMINGS)
    assert all(isinstance(timings[stage], float) for stage in STAGES)
    assert timings["hostname"] == os.uname().nodename
    assert timings["glibc"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert timings["env_cache"] == "off"


def test_execs_python_so_pid_and_exit_status_are_the_jobs(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.report_env")
    proc = subprocess.Popen(
        ["env", "-i", "PATH=/usr/bin:/bin", "JOB_EXIT=7", "sh", "job-wrapper.sh"], cwd=sandbox.path
    )
    assert proc.wait(timeout=120) == 7
    # env(1) execs sh, and sh execs python: one process from start to end
    assert read_json(sandbox.path / "out" / "job.json")["pid"] == proc.pid


def test_sigill_in_python_reaches_the_parent_as_signal_4(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.sigill")
    result = sandbox.run()
    assert result.returncode == -signal.SIGILL  # a signal, not exit status 132


def test_missing_cpu_flag_exits_132_with_a_message(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.report_env", cpu_flags=("sse2", "avx9999"))
    result = sandbox.run()
    assert result.returncode == 132
    assert "this machine's CPU lacks AVX9999" in result.stderr
    error = error_of(sandbox)
    assert error["stage"] == "cpu" and error["exit_code"] == 132 and "AVX9999" in error["message"]
    assert not (sandbox.path / ".sweep" / "python").exists()  # checked before unpacking anything


def test_old_glibc_exits_21(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.report_env", glibc_min="2.999")
    result = sandbox.run()
    assert result.returncode == 21
    assert error_of(sandbox)["stage"] == "glibc"
    assert "needs glibc >= 2.999" in result.stderr


def test_tampered_code_tarball_exits_23(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.report_env")
    with sandbox.code.path.open("ab") as f:
        f.write(b"\0")
    result = sandbox.run()
    assert result.returncode == 23
    error = error_of(sandbox)
    assert error["stage"] == "verify" and "tampered or corrupt" in error["message"]
    assert sandbox.code.sha256 in error["message"] and sandbox.code.name in error["message"]


def test_missing_tarball_exits_22(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.report_env")
    sandbox.interpreter.path.unlink()
    assert sandbox.run().returncode == 22
    assert sandbox.interpreter.name in error_of(sandbox)["message"]


def test_tampered_site_packages_exits_23_via_the_unpacker(sandbox: Sandbox) -> None:
    write_zst(sandbox.site_packages.path, [("site-packages/other.py", b"")])  # same name, new bytes
    sandbox.render(job_module="sweep.job.report_env")
    result = sandbox.run()
    assert result.returncode == 23
    assert error_of(sandbox)["stage"] == "unpack_site"
    assert "tampered or corrupt" in result.stderr


@pytest.mark.parametrize(
    "member",
    [("/tmp/sweep-wrapper-evil.txt", b"x"), ("python/../../sweep-wrapper-evil.txt", b"x"),
     link("python/bin/evil", "/etc/passwd"), link("python/bin/evil", "../../../x")],
    ids=["absolute", "dotdot", "symlink-absolute", "symlink-dotdot"],
)  # fmt: skip
def test_unsafe_interpreter_member_exits_24_and_writes_nothing(sandbox: Sandbox, member: object) -> None:
    evil = write_gz(sandbox.interpreter.path, [("python/bin/ok", b"ok"), member])  # type: ignore[list-item]
    sandbox.interpreter = evil
    sandbox.render(job_module="sweep.job.report_env")
    result = sandbox.run()
    assert result.returncode == 24, result.stderr
    assert error_of(sandbox)["stage"] == "unpack_interpreter"
    assert not (sandbox.path / ".sweep" / "python").exists()
    assert not Path("/tmp/sweep-wrapper-evil.txt").exists()


def test_interpreter_that_does_not_start_exits_26(sandbox: Sandbox) -> None:
    broken = write_gz(
        sandbox.interpreter.path, [("python/bin/python3", b"#!/bin/sh\necho broken >&2\nexit 1\n")]
    )
    sandbox.interpreter = broken
    sandbox.render(job_module="sweep.job.report_env")
    result = sandbox.run()
    assert result.returncode == 26
    assert "broken" in error_of(sandbox)["message"]


def test_error_json_stays_valid_json_with_quotes_and_backslashes(tmp_path: Path) -> None:
    odd = tmp_path / 'a "quoted" \\ back\\slash'
    odd.mkdir()
    sandbox = make_sandbox(odd, {"report_env": REPORT_ENV})
    sandbox.render(job_module="sweep.job.report_env")
    sandbox.site_packages.path.unlink()
    assert sandbox.run().returncode == 22
    assert str(sandbox.path) in error_of(sandbox)["message"]


def test_env_cache_unpacks_once_and_is_reused(sandbox: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "env-cache"
    sandbox.render(job_module="sweep.job.report_env")
    first = sandbox.run(env={"SWEEP_ENV_CACHE": str(cache)})
    assert first.returncode == 0, first.stderr
    assert read_json(sandbox.path / "out" / names.WRAPPER_TIMINGS)["env_cache"] == (
        "unpack_interpreter:miss unpack_site:miss"
    )
    env = read_json(sandbox.path / "out" / "job.json")["env"]
    assert env["SWEEP_SITE_PACKAGES"] == str(cache / sandbox.site_packages.sha256 / "site-packages")
    assert env["LD_LIBRARY_PATH"] == str(cache / sandbox.interpreter.sha256 / "python" / "lib")
    # a cache hit needs neither tarball any more
    sandbox.interpreter.path.unlink()
    sandbox.site_packages.path.unlink()
    second = sandbox.run(env={"SWEEP_ENV_CACHE": str(cache)})
    assert second.returncode == 0, second.stderr
    assert read_json(sandbox.path / "out" / names.WRAPPER_TIMINGS)["env_cache"] == (
        "unpack_interpreter:hit unpack_site:hit"
    )
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [sandbox.interpreter.sha256, sandbox.site_packages.sha256]
    )


def test_env_cache_with_concurrent_jobs(tmp_path: Path) -> None:
    sandboxes = [make_sandbox(tmp_path / f"job{i}", {"report_env": REPORT_ENV}) for i in range(4)]
    cache = tmp_path / "env-cache"
    results: list[subprocess.CompletedProcess[str]] = []
    for box in sandboxes:
        box.render(job_module="sweep.job.report_env")
    threads = [
        threading.Thread(target=lambda b=box: results.append(b.run(env={"SWEEP_ENV_CACHE": str(cache)})))
        for box in sandboxes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    states = [read_json(b.path / "out" / names.WRAPPER_TIMINGS)["env_cache"] for b in sandboxes]
    assert sum(s.count("unpack_interpreter:miss") for s in states) == 1
    assert sum(s.count("unpack_site:miss") for s in states) == 1
    assert len(list(cache.iterdir())) == 2  # two unpacked trees; no locks or temp folders left


def test_stale_lock_of_a_dead_job_is_broken(sandbox: Sandbox, tmp_path: Path) -> None:
    cache = tmp_path / "env-cache"
    lock = cache / f"{sandbox.interpreter.sha256}.lock"
    lock.mkdir(parents=True)
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    (lock / "pid").write_text(dead)
    (cache / f".tmp-{sandbox.interpreter.sha256}-{dead}").mkdir()  # its half-done unpack
    sandbox.render(job_module="sweep.job.report_env")
    result = sandbox.run(env={"SWEEP_ENV_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert len(list(cache.iterdir())) == 2


def test_unwritable_env_cache_falls_back_to_the_sandbox(sandbox: Sandbox) -> None:
    sandbox.render(job_module="sweep.job.report_env")
    result = sandbox.run(env={"SWEEP_ENV_CACHE": "/dev/null/cache"})
    assert result.returncode == 0, result.stderr
    assert read_json(sandbox.path / "out" / names.WRAPPER_TIMINGS)["env_cache"].startswith("off: ")
    assert (sandbox.path / ".sweep" / "site-packages" / "marker_pkg.py").is_file()


def test_render_refuses_values_that_could_break_the_script() -> None:
    ok = FakeArchive(Path("python-x.tar.gz"), "a" * 64)
    render_job_wrapper(ok, ok, ok, "2.35", "3.11.7", ["avx2"])
    bad_name = FakeArchive(Path("x'; rm -rf ~; '.tar.gz"), "a" * 64)
    for call in [
        lambda: render_job_wrapper(bad_name, ok, ok, "2.35", "3.11.7", []),
        lambda: render_job_wrapper(ok, ok, FakeArchive(Path("c.tar.gz"), "XYZ"), "2.35", "3.11.7", []),
        lambda: render_job_wrapper(ok, ok, ok, "2.35\nrm", "3.11.7", []),
        lambda: render_job_wrapper(ok, ok, ok, "2.35", "3.11.7", ["avx2 $(reboot)"]),
        lambda: render_job_wrapper(ok, ok, ok, "2.35", "3.11.7", [], job_module="os; reboot"),
    ]:
        with pytest.raises(RenderError):
            call()


def test_rendered_wrapper_is_valid_posix_sh(tmp_path: Path) -> None:
    ok = FakeArchive(Path("python-x.tar.gz"), "a" * 64)
    script = tmp_path / "w.sh"
    script.write_text(render_job_wrapper(ok, ok, ok, "2.35", "3.11.7", ["avx", "avx2"]))
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            subprocess.run([shell, "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "sh", str(script)], check=True)


def env_sandbox(root: Path, env: EnvManifest, job_modules: dict[str, str]) -> Sandbox:
    """A sandbox holding a packed environment's real tarballs (linked, hashes from the manifest)."""
    return make_sandbox(
        root, job_modules,
        interpreter=env.interpreter.path, interpreter_sha256=env.interpreter.sha256,
        site_packages=env.site_packages.path, site_sha256=env.site_packages.sha256,
    )  # fmt: skip


def test_real_interpreter_is_relocated_and_adds_site_packages_after_the_stdlib(tmp_path: Path) -> None:
    tiny_env = tiny_environment()
    sandbox = env_sandbox(tmp_path, tiny_env, {"probe": PROBE_INTERPRETER})
    sandbox.render(
        job_module="sweep.job.probe", glibc_min=tiny_env.glibc_min, python_version=tiny_env.python_version
    )
    result = sandbox.run()
    assert result.returncode == 0, result.stderr
    probe = read_json(sandbox.path / "out" / "probe.json")
    work = sandbox.path / ".sweep"
    assert probe["prefix"] == str(work / "python")
    # the loader took the shipped libpython, not the build machine's (the binary's RUNPATH)
    assert probe["libpython"] == [str(work / "python" / "lib" / "libpython3.11.so.1.0")]
    path = probe["path"]
    assert path[0] == str(work / "code")
    assert path.index(probe["stdlib"]) < path.index(str(work / "site-packages"))  # as in a venv
    assert str(sandbox.path) not in path and "" not in path  # data files cannot shadow modules


@pytest.fixture(scope="session")
def shared_env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("env-cache")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_environment_imports_tensorflow_and_fits(tmp_path: Path) -> None:
    real_env = job_environment()
    sandbox = env_sandbox(tmp_path, real_env, {"smoke_fit": SMOKE_FIT})
    sandbox.render(job_module="sweep.job.smoke_fit", glibc_min=real_env.glibc_min,
                   python_version=real_env.python_version, cpu_flags=("avx", "avx2"))  # fmt: skip
    result = sandbox.run()  # env -i, PATH=/usr/bin:/bin, no SWEEP_ENV_CACHE: the HTCondor path
    assert result.returncode == 0, result.stderr[-3000:]
    smoke = read_json(sandbox.path / "out" / "smoke.json")
    work = sandbox.path / ".sweep"
    assert smoke["tensorflow"] == "2.21.0"
    assert smoke["tensorflow_file"].startswith(str(work / "site-packages"))
    assert smoke["libpython"] == [str(work / "python" / "lib" / "libpython3.11.so.1.0")]
    assert smoke["path"].index(smoke["stdlib"]) < smoke["path"].index(str(work / "site-packages"))
    assert len(smoke["loss"]) == 2 and smoke["tflite_bytes"] > 0 and 0 <= smoke["tflite_out"] <= 1
    assert (sandbox.path / "out" / "sample.png").stat().st_size > 0
    timings = read_json(sandbox.path / "out" / names.WRAPPER_TIMINGS)
    assert all(timings[stage] > 0 for stage in STAGES)
    assert timings["env_cache"] == "off"
    print("wrapper timings:", json.dumps(timings), "job:", json.dumps(
        {k: smoke[k] for k in ("import_seconds", "total_seconds", "tflite_bytes")}))  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_real_sigill_after_exec_is_signal_4_and_env_cache_hits(
    tmp_path: Path, shared_env_cache: Path
) -> None:
    real_env = job_environment()
    jobs = {"sigill": KILL_WITH_SIGILL, "report_env": REPORT_ENV}
    first = env_sandbox(tmp_path / "first", real_env, jobs)
    first.render(
        job_module="sweep.job.sigill", glibc_min=real_env.glibc_min, python_version=real_env.python_version
    )
    result = first.run(env={"SWEEP_ENV_CACHE": str(shared_env_cache)})
    assert result.returncode == -signal.SIGILL, result.stderr[-3000:]  # signal 4, not exit 132
    assert read_json(first.path / "out" / names.WRAPPER_TIMINGS)["env_cache"] == (
        "unpack_interpreter:miss unpack_site:miss"
    )
    second = env_sandbox(tmp_path / "second", real_env, jobs)
    second.render(job_module="sweep.job.report_env", glibc_min=real_env.glibc_min,
                  python_version=real_env.python_version)  # fmt: skip
    result = second.run(env={"SWEEP_ENV_CACHE": str(shared_env_cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    timings = read_json(second.path / "out" / names.WRAPPER_TIMINGS)
    assert timings["env_cache"] == "unpack_interpreter:hit unpack_site:hit"
    assert timings["unpack_site"] < 1.0
    print("cache-hit wrapper timings:", json.dumps(timings))


@pytest.mark.slow
def test_real_environment_on_a_cpu_without_the_flag_exits_132(tmp_path: Path) -> None:
    real_env = job_environment()
    sandbox = env_sandbox(tmp_path, real_env, {"report_env": REPORT_ENV})
    sandbox.render(job_module="sweep.job.report_env", glibc_min=real_env.glibc_min,
                   python_version=real_env.python_version, cpu_flags=("avx", "avx9999"))  # fmt: skip
    result = sandbox.run()
    assert result.returncode == 132
    assert "this machine's CPU lacks AVX9999" in result.stderr
