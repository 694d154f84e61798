"""Stage timings of one job, and which stage it was in when something failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("import", "data_load", "train", "evaluate", "export")


class Stages:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.current = "start"
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; a stage entered twice (data_load: manifest, then shards) adds up."""
        self.current = name
        began = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def timings(self) -> dict[str, float]:
        timings = {name: round(self.seconds.get(name, 0.0), 3) for name in STAGES}
        return {**timings, "total": round(time.perf_counter() - self.started, 3)}
