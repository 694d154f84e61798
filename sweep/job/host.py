"""Facts about the machine a job ran on, and the test switch that plays an old CPU.

Recorded with every result because the origin of this project lost all of its 20 % jobs to
`Illegal instruction` on CPUs without AVX: a result must say which CPU level it ran on.
No TensorFlow here: the SIGILL switch must act before TensorFlow is imported.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
from collections.abc import Mapping
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
REPORTED_FLAGS = ("avx", "avx2", "avx512f", "sse4_2")

# The x86-64 micro-architecture levels (psABI), as the flags /proc/cpuinfo shows for them.
LEVEL_FLAGS: dict[int, frozenset[str]] = {
    1: frozenset({"lm", "cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2"}),
    2: frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}),
    3: frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}),
    4: frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}),
}
LEVEL_NAME = re.compile(r"^x86[-_]64[-_]v([1-4])$", re.IGNORECASE)

# The wrapper passes the machine ad's Microarch here; the test switch names the lowest level
# that still "has" the instructions TensorFlow needs.
ENV_MACHINE_MICROARCH = "SWEEP_MACHINE_MICROARCH"
ENV_TEST_SIGILL_BELOW = "SWEEP_TEST_SIGILL_BELOW"


def read_cpuinfo(path: Path = CPUINFO) -> tuple[str | None, frozenset[str]]:
    """(model name, flags) of the first processor; (None, empty) where there is no /proc/cpuinfo."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, frozenset()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    return (model.group(1).strip() if model else None), frozenset(flags.group(1).split() if flags else ())


def microarch_from_flags(flags: frozenset[str]) -> str | None:
    """The highest x86-64 level whose flags (and all lower levels' flags) are all present."""
    level = 0
    for candidate in sorted(LEVEL_FLAGS):
        if not LEVEL_FLAGS[candidate] <= flags:
            break
        level = candidate
    return f"x86_64-v{level}" if level else None


def microarch_level(name: str | None) -> int | None:
    """'x86_64-v3' -> 3; anything else (empty, unknown, another architecture) -> None."""
    match = LEVEL_NAME.match((name or "").strip())
    return int(match.group(1)) if match else None


def should_play_old_cpu(env: Mapping[str, str]) -> bool:
    """The test switch: the machine's Microarch is known and below SWEEP_TEST_SIGILL_BELOW."""
    threshold = microarch_level(env.get(ENV_TEST_SIGILL_BELOW))
    machine = microarch_level(env.get(ENV_MACHINE_MICROARCH))
    return threshold is not None and machine is not None and machine < threshold


def play_old_cpu_if_asked(env: Mapping[str, str] = os.environ) -> None:
    """Die of SIGILL exactly as `import tensorflow` does on a CPU without the needed instructions."""
    if should_play_old_cpu(env):
        signal.signal(signal.SIGILL, signal.SIG_DFL)
        signal.raise_signal(signal.SIGILL)


def threads_to_use(env: Mapping[str, str] = os.environ) -> int:
    """HTCondor sets OMP_NUM_THREADS to request_cpus; otherwise every core we may run on."""
    try:
        requested = int(env.get("OMP_NUM_THREADS", ""))
    except ValueError:
        requested = 0
    return requested if requested > 0 else len(os.sched_getaffinity(0))


def host_facts(cores_used: int, tensorflow_version: str | None, env: Mapping[str, str] = os.environ) -> dict:
    model, flags = read_cpuinfo()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": model,
        "cpu_flags": {flag: flag in flags for flag in REPORTED_FLAGS},
        "microarch_measured": microarch_from_flags(flags),
        "machine_microarch": env.get(ENV_MACHINE_MICROARCH) or None,
        "cores_used": cores_used,
        "cores_visible": len(os.sched_getaffinity(0)),
        "tensorflow": tensorflow_version,
        "python": platform.python_version(),
    }
