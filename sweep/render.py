"""Pure rendering: (spec, environment, data plans) -> submit description text + item rows.

Nothing here touches the file system or a schedd. Every value that enters the submit text
passes a filter that refuses what could end a line, open a quote or start a macro, so no user
string can add a submit command; the result is parsed with htcondor2.Submit before anyone
sees or submits it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import jinja2

from sweep import __version__, names
from sweep.errors import RenderError
from sweep.pack import EnvManifest, Tarball
from sweep.spec import Item, SweepSpec, fraction_label

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "submit_templates"
SUBMIT_TEMPLATE = "submit.sub.j2"

# HTCondor file lists are split on commas and white space, `$(` starts a macro and `#` a
# comment: a path may hold none of them. Other characters are refused to keep lists parseable.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+@%:~=-]*$")
SAFE_WORD = re.compile(r"^[A-Za-z0-9_.:+@%/=-]+$")
SIGILL_HOLD_REASON = "this machine's CPU lacks AVX2, TensorFlow cannot run there"
QUEUE_VARIABLES = ("item", "fraction", "replica", "seed", "subset_seed", "inputs")  # inputs last: it takes the rest of the line


class ItemPlan(Protocol):
    """What render needs of a data plan: the shard-folder files one item reads."""

    @property
    def files(self) -> Sequence[str]: ...


def submit_path(value: object) -> str:
    text = str(value)
    if not SAFE_PATH.match(text):
        raise RenderError(
            f"path {text!r} cannot go into a submit description; accepted: an absolute path of letters, digits "
            "and _ . / + @ % : ~ = - (no spaces, commas, quotes, $ or #); move or link the folder to such a path"
        )
    return text


def submit_word(value: object) -> str:
    text = str(value)
    if not SAFE_WORD.match(text):
        raise RenderError(
            f"value {text!r} cannot go into a submit description; accepted: letters, digits and _ . : + @ % / = -"
        )
    return text


def classad_string(value: object) -> str:
    text = str(value)
    if any(ch in text for ch in '"\\\n\r\0') or not text.isprintable():
        raise RenderError(f"{text!r} cannot be a ClassAd string; accepted: printable text without quotes or backslashes")
    return f'"{text}"'


def submit_expression(expression: object) -> str:
    """A ClassAd expression on one line that parses on its own (so it cannot smuggle in commands)."""
    text = str(expression).strip()
    if not text or any(ch in text for ch in "\n\r\0") or "$(" in text or "$$(" in text:
        raise RenderError(
            f"requirements {text!r} are not a single-line ClassAd expression; accepted: e.g. "
            '(has_avx2 =?= true) && (Microarch >= "x86_64-v3")'
        )
    import classad2

    try:
        classad2.ExprTree(text)
    except Exception:  # classad2 raises its own ClassAdException for every parse failure
        raise RenderError(
            f"requirements {text!r} do not parse as a ClassAd expression; accepted: e.g. "
            '(has_avx2 =?= true) && (Microarch >= "x86_64-v3")'
        ) from None
    return text


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # submit text, not HTML: the filters above do the escaping that matters
    )
    env.filters.update(
        submit_path=submit_path,
        submit_word=submit_word,
        classad_string=classad_string,
        submit_expression=submit_expression,
    )
    return env


def job_arguments(spec: SweepSpec, *, fraction: str, replica: str, seed: str, subset_seed: str) -> list[str]:
    """The job's command line: the one source for the submit description and the local backend."""
    return [
        "--data", ".",
        "--out", names.JOB_OUTPUT_DIR,
        "--fraction", fraction,
        "--replica", replica,
        "--seed", seed,
        "--subset-seed", subset_seed,
        "--epochs", str(spec.epochs),
        "--batch-size", str(spec.batch_size),
    ]  # fmt: skip


def item_arguments(spec: SweepSpec, row: Mapping[str, str]) -> list[str]:
    return job_arguments(
        spec, fraction=row["fraction"], replica=row["replica"], seed=row["seed"], subset_seed=row["subset_seed"]
    )


@dataclass(frozen=True)
class RenderedSubmission:
    """The submit description (without a queue statement) and one row of item data per job."""

    submit_text: str
    rows: list[dict[str, str]]
    common_inputs: tuple[str, ...]

    def full_text(self) -> str:
        """A complete description that condor_submit accepts as is: the text plus `queue ... from (rows)`."""
        lines = [" ".join(row[key] for key in QUEUE_VARIABLES) for row in self.rows]
        return self.submit_text + f"queue {', '.join(QUEUE_VARIABLES)} from (\n" + "\n".join(lines) + "\n)\n"


def item_row(item: Item, plan: ItemPlan, data_dir: Path) -> dict[str, str]:
    return {
        "item": item.name,
        "fraction": fraction_label(item.fraction),
        "replica": str(item.replica),
        "seed": str(item.seed),
        "subset_seed": str(item.subset_seed),
        "inputs": ",".join(submit_path(data_dir / name) for name in plan.files),
    }


def render_submission(
    spec: SweepSpec,
    env: EnvManifest,
    code: Tarball,
    plans: Mapping[str, ItemPlan],
    *,
    sweep_dir: Path,
    data_dir: Path,
    wrapper: Path,
    max_retries: int = 1,
    environment: Mapping[str, str] | None = None,
    submit_token: str = "dry-run",
) -> RenderedSubmission:
    """Render the sweep's one submission. Paths must be absolute; `plans` maps item name -> data plan."""
    if max_retries < 0:
        raise RenderError(f"max retries {max_retries} is negative; accepted: a whole number >= 0")
    items = spec.items()
    missing = [item.name for item in items if item.name not in plans]
    if missing:
        raise RenderError(f"no data plan for items {', '.join(missing[:5])}")
    common_inputs = tuple(submit_path(p) for p in (env.interpreter.path, env.site_packages.path, code.path))
    arguments = " ".join(
        job_arguments(spec, fraction="$(fraction)", replica="$(replica)", seed="$(seed)", subset_seed="$(subset_seed)")
    )
    text = _environment().get_template(SUBMIT_TEMPLATE).render(
        name=spec.name,
        sweep_version=__version__,
        item_count=len(items),
        fraction_count=len(spec.fractions),
        replicas=spec.replicas,
        wrapper=wrapper,
        arguments=arguments,
        sweep_dir=sweep_dir,
        event_log=sweep_dir / names.EVENT_LOG,
        items_dir=names.ITEMS_DIR,
        job_output_dir=names.JOB_OUTPUT_DIR,
        common_inputs=common_inputs,
        request_cpus=spec.resources.cpus,
        request_memory_mb=spec.resources.memory_mb,
        request_disk_kb=spec.resources.disk_kb,
        requirements=spec.requirements,
        environment=sorted((environment or {}).items()),
        sigill_hold_reason=SIGILL_HOLD_REASON,
        max_retries=max_retries,
        submit_token=submit_token,
    )
    rows = [item_row(item, plans[item.name], data_dir) for item in items]
    rendered = RenderedSubmission(submit_text=text, rows=rows, common_inputs=common_inputs)
    parse_submission(rendered.full_text())
    return rendered


def parse_submission(text: str) -> object:
    """Parse with HTCondor's own parser; anything it rejects never reaches a schedd or a user."""
    import htcondor2

    try:
        return htcondor2.Submit(text)
    except Exception as error:  # the bindings raise HTCondorException subclasses or ValueError
        raise RenderError(f"the rendered submit description does not parse: {error}") from None
