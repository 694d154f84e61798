"""Collect every offender a check finds, then raise one DataError that lists the first few.

One run then tells the user the first problems and how many there are in all, instead of one
problem per attempt.
"""

from __future__ import annotations

from sweep.errors import DataError

MAX_LISTED = 10


class Problems:
    """Offenders found by one check, turned into one DataError that lists the first few."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.expectations: dict[str, None] = {}  # ordered set

    def add(self, line: str, expected: str) -> None:
        self.lines.append(line)
        self.expectations[expected] = None

    def raise_if_any(self, what: str) -> None:
        if not self.lines:
            return
        count = len(self.lines)
        shown = self.lines[:MAX_LISTED]
        head = f"{what}: {count} problem{'s' if count != 1 else ''}"
        head += f" (the first {len(shown)} below)" if count > len(shown) else ""
        body = "".join(f"\n  - {line}" for line in shown)
        expected = "".join(f"\n  expected: {text}" for text in self.expectations)
        raise DataError(head + body + expected)
