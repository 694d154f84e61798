"""Why an idle HTCondor job matches no slot, in the manner of `condor_q -better-analyze`.

HTCondor's own analysis splits a job's Requirements at its top-level `&&` and evaluates each
clause against every slot ad in the collector; a clause no slot satisfies is the one to name.
That is done here with HTCondor's own ClassAd evaluator (classad2), so the answer is the
pool's, not a guess: the same expression, the same slot ads, the same MY/TARGET scoping.
Pure functions of ads: the backend fetches the ads, the tests hand in their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def requirement_clauses(expression: str) -> list[str]:
    """The conjuncts of a ClassAd expression: `(a && b) && c` -> ['a', 'b', 'c'].

    Parentheses that wrap a whole conjunct are dropped and their `&&` split too, as
    condor_q -better-analyze does; `||`, function calls and strings are left whole.
    """
    text = _strip_outer_parens(expression.strip())
    parts = _split_top_level_and(text)
    if len(parts) == 1:
        return [text] if text else []
    return [clause for part in parts for clause in requirement_clauses(part)]


def _split_top_level_and(text: str) -> list[str]:
    parts: list[str] = []
    depth, start, i, quoted = 0, 0, 0, False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1  # an escaped character inside a string, e.g. \"
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith("&&", i):
            parts.append(text[start:i].strip())
            start = i + 2
            i += 1
        i += 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _strip_outer_parens(text: str) -> str:
    """'((a && b))' -> 'a && b'; '(a) && (b)' stays as it is (the parentheses are not one pair)."""
    while text.startswith("(") and text.endswith(")") and _closing_paren(text) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing_paren(text: str) -> int:
    depth, quoted, i = 0, False, 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


@dataclass(frozen=True)
class ClauseCount:
    clause: str
    slots_true: int  # slots on which the clause evaluates to true
    job_values: str = ""  # the job's own attributes the clause uses, e.g. "RequestMemory = 2048"

    def describe(self, slots: int) -> str:
        values = f" ({self.job_values})" if self.job_values else ""
        return f"`{self.clause}`{values} is true on none of {slots} slots"


@dataclass(frozen=True)
class MatchAnalysis:
    """One job against the pool's slots, now."""

    slots: int  # slot ads the collector knows
    clauses: tuple[ClauseCount, ...]  # the job's requirements, clause by clause
    match_job: int  # slots on which the whole job Requirements is true
    match_both: int  # ... and whose own START/Requirements accepts the job
    match_unclaimed: int  # ... and that are free right now

    @property
    def matches_nothing(self) -> bool:
        return self.match_both == 0

    @property
    def failing_clauses(self) -> list[ClauseCount]:
        return [count for count in self.clauses if count.slots_true == 0]

    def explain(self) -> str:
        """Plain words for an idle job; '' when it simply waits for a free slot."""
        if self.slots == 0:
            return "no slot matches: the pool's collector knows no execute slots"
        if not self.matches_nothing:
            return ""
        if self.match_job == 0:
            failing = self.failing_clauses
            if failing:
                named = "; ".join(count.describe(self.slots) for count in failing)
                return f"no slot matches its requirements: {named}"
            partial = ", ".join(
                f"`{c.clause}` on {c.slots_true}" for c in self.clauses if c.slots_true < self.slots
            )
            return (
                f"no slot matches its requirements: each clause holds on some of {self.slots} slots, "
                f"never all at once ({partial})"
            )
        return (
            f"{self.match_job} of {self.slots} slots meet its requirements but refuse the job "
            "by their own START policy"
        )


def analyze_job(job: Any, slots: Sequence[Any]) -> MatchAnalysis:
    """Evaluate `job`'s Requirements (and each slot's own) against every slot ad (classad2.ClassAd)."""
    import classad2

    requirements = job.lookup("Requirements") if "Requirements" in job else classad2.ExprTree("true")
    clauses = requirement_clauses(str(requirements))
    counts = []
    for clause in clauses:
        expression = classad2.ExprTree(clause)
        counts.append(ClauseCount(clause, _count_true(expression, job, slots), _job_values(job, expression)))
    matching = [slot for slot in slots if _is_true(requirements, job, slot)]
    both = [slot for slot in matching if _slot_accepts(slot, job)]
    unclaimed = [slot for slot in both if str(slot.get("State", "")) == "Unclaimed"]
    return MatchAnalysis(
        slots=len(slots),
        clauses=tuple(counts),
        match_job=len(matching),
        match_both=len(both),
        match_unclaimed=len(unclaimed),
    )


def _job_values(job: Any, expression: Any) -> str:
    """'RequestMemory = 2048' for the job attributes an expression refers to, as condor_q -better-analyze lists them."""
    try:
        names = sorted(set(job.internalRefs(expression)))
        return ", ".join(f"{name} = {job.eval(name)}" for name in names if name in job)
    except Exception:  # a value that cannot be shown is left out, the clause is still named
        return ""


def _count_true(expression: Any, job: Any, slots: Iterable[Any]) -> int:
    return sum(1 for slot in slots if _is_true(expression, job, slot))


def _is_true(expression: Any, scope: Any, target: Any) -> bool:
    try:
        return expression.eval(scope=scope, target=target) is True
    except Exception:  # classad2 raises on an ERROR value: not true, as in matchmaking
        return False


def _slot_accepts(slot: Any, job: Any) -> bool:
    if "Requirements" not in slot:
        return True
    return _is_true(slot.lookup("Requirements"), slot, job)
