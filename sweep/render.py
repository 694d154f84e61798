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
from typing import TYPE_CHECKING, Protocol

import jinja2
from jinja2 import meta

from sweep import __version__, names, resources
from sweep.errors import RenderError
from sweep.pack import EnvManifest, Tarball
from sweep.reasons import CPU_LACKS_AVX2
from sweep.spec import Item, SweepSpec, fraction_label

if TYPE_CHECKING:
    import htcondor2

TEMPLATES_DIR = resources.templates()  # the package data sweep.submit_templates, in a wheel or the checkout
SUBMIT_TEMPLATE = "submit.sub.j2"

# HTCondor file lists are split on commas and white space, `$(` starts a macro and `#` a
# comment: a path may hold none of them. Other characters are refused to keep lists parseable.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+@%:~=-]*$")
SAFE_WORD = re.compile(r"^[A-Za-z0-9_.:+@%/=-]+$")
QUEUE_VARIABLES = (
    "item",
    "fraction",
    "replica",
    "seed",
    "subset_seed",
    "inputs",
)  # inputs last: it takes the rest of the line


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
        raise RenderError(
            f"{text!r} cannot be a ClassAd string; accepted: printable text without quotes or backslashes"
        )
    return f'"{text}"'


def submit_expression(
    expression: object, what: str = "requirements", example: str = "(has_avx2 =?= true) && (Memory >= 4096)"
) -> str:
    """A ClassAd expression on one line that parses on its own (so it cannot smuggle in commands)."""
    text = str(expression).strip()
    # a trailing backslash continues the line: the next command (or the queue statement) would join the value
    if not text or any(ch in text for ch in "\n\r\0") or text.endswith("\\") or "$(" in text or "$$(" in text:
        raise RenderError(
            f"{what} {text!r} is not a single-line ClassAd expression; accepted: e.g. {example}"
        )
    import classad2

    try:
        classad2.ExprTree(text)
    except Exception:  # classad2 raises its own ClassAdException for every parse failure
        raise RenderError(
            f"{what} {text!r} does not parse as a ClassAd expression; accepted: e.g. {example}"
        ) from None
    return text


# --- what a user may add to the submit description (--submit-option, --submit-template)

# Commands sweep writes itself (with the option that sets each, where there is one), and getenv.
RESERVED_KEYS = {
    "universe": "", "executable": "", "arguments": "", "initialdir": "", "log": "", "output": "", "error": "",
    "should_transfer_files": "", "when_to_transfer_output": "", "environment": "",
    "getenv": "never: it would copy the submitting shell's environment, credentials included, into every job",
    "job_machine_attrs": "", "job_machine_attrs_history_length": "", "queue": "",
    "requirements": "use --require", "request_cpus": "use --request-cpus", "request_memory": "use --request-memory",
    "request_disk": "use --request-disk", "max_retries": "use --max-retries", "batch_name": "use --name",
}  # fmt: skip
RESERVED_PREFIXES = ("transfer_", "on_exit_", "+sweep", "my.sweep")
_WORD = ("word", "letters, digits and _ . : + @ % / = -")
_NUMBER = ("number", "a whole number")
_EXPRESSION = ("expression", "a one-line ClassAd expression")
# Known submit commands a sweep may set, and the kind of value each takes; a typo must not be
# accepted silently (HTCondor would take it as a macro of its own and do nothing with it).
SUBMIT_OPTIONS = {
    "accounting_group": _WORD, "accounting_group_user": _WORD, "priority": _NUMBER, "nice_user": _EXPRESSION,
    "notification": _WORD, "notify_user": _WORD, "concurrency_limits": _WORD, "rank": _EXPRESSION,
    "request_gpus": _NUMBER, "allowed_job_duration": _NUMBER, "allowed_execute_duration": _NUMBER,
    "job_max_vacate_time": _NUMBER, "periodic_hold": _EXPRESSION, "periodic_release": _EXPRESSION,
    "periodic_remove": _EXPRESSION,
}  # fmt: skip
_CUSTOM_ATTRIBUTE = re.compile(r"^(\+|MY\.)([A-Za-z_][A-Za-z0-9_]*)$", re.IGNORECASE)
_NUMBER_TEXT = re.compile(r"^-?\d+$")


def _reserved_listing() -> str:
    keys = [f"{key} ({hint})" if hint else key for key, hint in RESERVED_KEYS.items()]
    return ", ".join([*keys, "transfer_*", "on_exit_*", "+Sweep*"])


def check_submit_key(key: str) -> str:
    """A key a user may add: a known submit command or a custom attribute (+Name), never one sweep sets."""
    lowered = key.strip().lower()
    if lowered in RESERVED_KEYS or lowered.startswith(RESERVED_PREFIXES):
        raise RenderError(
            f"submit key {key!r} is reserved: sweep sets it itself; reserved: {_reserved_listing()}"
        )
    if lowered not in SUBMIT_OPTIONS and not _CUSTOM_ATTRIBUTE.match(key.strip()):
        raise RenderError(
            f"submit key {key!r} is unknown; accepted: {', '.join(SUBMIT_OPTIONS)}, "
            'or a custom job attribute +Name (its value a ClassAd expression, e.g. +ProjectName = "chest")'
        )
    return key.strip()


def check_submit_option(key: str, value: str) -> tuple[str, str]:
    """(key, value) for one line `key = value` that adds exactly that one command."""
    key = check_submit_key(key)
    kind, accepted = SUBMIT_OPTIONS.get(key.lower(), _EXPRESSION)
    value = value.strip()
    if kind == "expression":
        return key, submit_expression(value, what=f"the value of {key}", example='"chest" or (Memory > 2048)')
    pattern = SAFE_WORD if kind == "word" else _NUMBER_TEXT
    if not pattern.match(value):
        raise RenderError(f"the value {value!r} of submit option {key} is not allowed; accepted: {accepted}")
    return key, value


def parse_submit_option(text: str) -> tuple[str, str]:
    """KEY=VALUE as typed after --submit-option."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise RenderError(
            f"--submit-option {text!r} is not KEY=VALUE; accepted: e.g. accounting_group=physics"
        )
    return check_submit_option(key, value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=resources.template_loader(),
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
        *(["--export", spec.export] if spec.export else []),
    ]  # fmt: skip


def item_arguments(spec: SweepSpec, row: Mapping[str, str]) -> list[str]:
    return job_arguments(
        spec,
        fraction=row["fraction"],
        replica=row["replica"],
        seed=row["seed"],
        subset_seed=row["subset_seed"],
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


@dataclass(frozen=True)
class SubmitTemplate:
    """A user's Jinja template rendered instead of submit_templates/submit.sub.j2 (--submit-template)."""

    text: str
    origin: str  # where it came from, for messages


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
    template: SubmitTemplate | None = None,
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
        job_arguments(
            spec, fraction="$(fraction)", replica="$(replica)", seed="$(seed)", subset_seed="$(subset_seed)"
        )
    )
    context = {
        "name": spec.name,
        "sweep_version": __version__,
        "item_count": len(items),
        "fraction_count": len(spec.fractions),
        "replicas": spec.replicas,
        "wrapper": wrapper,
        "arguments": arguments,
        "sweep_dir": sweep_dir,
        "event_log": sweep_dir / names.EVENT_LOG,
        "items_dir": names.ITEMS_DIR,
        "job_output_dir": names.JOB_OUTPUT_DIR,
        "job_stdout": names.JOB_STDOUT,
        "job_stderr": names.JOB_STDERR,
        "sigill_exit_code": names.SIGILL_EXIT_CODE,
        "common_inputs": common_inputs,
        "request_cpus": spec.resources.cpus,
        "request_memory_mb": spec.resources.memory_mb,
        "request_disk_kb": spec.resources.disk_kb,
        "requirements": spec.requirements,
        "environment": sorted((environment or {}).items()),
        "sigill_hold_reason": CPU_LACKS_AVX2,  # status recognises the hold by these words
        "max_retries": max_retries,
        "submit_token": submit_token,
        "submit_options": _checked_options(spec.submit_options),
    }
    rows = [item_row(item, plans[item.name], data_dir) for item in items]
    rendered = RenderedSubmission(
        submit_text=_render(context, template), rows=rows, common_inputs=common_inputs
    )
    submit = parse_submission(rendered.full_text())
    if template is not None or spec.submit_options:
        builtin = parse_submission(_render({**context, "submit_options": []}, None))
        check_user_commands(submit, builtin, len(rows), template.origin if template else "--submit-option")
    return rendered


def _checked_options(options: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    checked = [check_submit_option(key, value) for key, value in options]
    keys = [key.lower() for key, _ in checked]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise RenderError(f"submit option {', '.join(twice)} given more than once; accepted: each key once")
    return checked


def _render(context: Mapping[str, object], template: SubmitTemplate | None) -> str:
    environment = _environment()
    if template is None:
        return environment.get_template(SUBMIT_TEMPLATE).render(context)
    available = f"available: {', '.join(sorted(context))}"
    try:
        parsed = environment.parse(template.text)
        unknown = sorted(meta.find_undeclared_variables(parsed) - set(context) - set(environment.globals))
        if unknown:
            raise RenderError(
                f"the submit template {template.origin} uses unknown variable "
                f"{', '.join(unknown)}; {available}"
            )
        text = environment.from_string(template.text).render(context)
    except jinja2.TemplateSyntaxError as error:
        raise RenderError(
            f"the submit template {template.origin} does not parse: line {error.lineno}: {error.message}"
        ) from None
    except jinja2.UndefinedError as error:
        raise RenderError(
            f"the submit template {template.origin} uses something undefined ({error.message}); {available}"
        ) from None
    if parse_submission(text).getQArgs():  # a second queue statement would be ignored, and ours with it
        raise RenderError(
            f"the submit template {template.origin} holds a queue statement; accepted: none, "
            "sweep adds `queue item, ... from (...)` itself"
        )
    return text


def check_user_commands(submit: htcondor2.Submit, builtin: Mapping[str, str], rows: int, origin: str) -> None:
    """The intended-commands check for what a user added: new commands of accepted keys only, and
    every command of the built-in description unchanged (the event log, the token, the files...)."""
    changed = [key for key in builtin if submit.get(key) != builtin[key]]
    if changed:
        raise RenderError(
            f"{origin} changes or drops commands sweep relies on: {', '.join(changed)}; "
            f"accepted: these exactly as {SUBMIT_TEMPLATE} writes them"
        )
    for key in submit:
        if key not in builtin:
            try:
                check_submit_key(key)
            except RenderError as error:
                raise RenderError(f"{origin}: {error}") from None
    if len(list(submit.itemdata() or ())) != rows:
        raise RenderError(f"{origin} changes the queue statement; accepted: {rows} items, queued by sweep")


def parse_submission(text: str) -> htcondor2.Submit:
    """Parse with HTCondor's own parser; anything it rejects never reaches a schedd or a user."""
    import htcondor2

    try:
        return htcondor2.Submit(text)
    except Exception as error:  # the bindings raise HTCondorException subclasses or ValueError
        raise RenderError(f"the rendered submit description does not parse: {error}") from None
