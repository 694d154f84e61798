"""The self-contained HTML page: one Jinja template, autoescaped, images inlined as base64 PNG.

The page gets ready-formatted strings; every one of them is HTML-escaped by the template engine,
so names, reasons and hashes from the sweep cannot inject markup.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2

# The stable ids of the page's sections, in order (tests and links rely on them).
SECTION_IDS = (
    "summary",
    "learning-curve",
    "fit",
    "per-label",
    "runtime",
    "machines",
    "failures",
    "provenance",
)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    numeric: frozenset[int] = frozenset()  # indices of right-aligned columns
    css_class: str = ""
    row_classes: tuple[str, ...] = ()  # one CSS class per row ("" for none); e.g. "failed"


@dataclass(frozen=True)
class Image:
    png: bytes
    alt: str
    file_name: str

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    facts: Mapping[str, Any] | None = None  # nested key/value data shown as nested tables
    notes: list[str] = field(default_factory=list)  # shown as a highlighted list (warnings)


@dataclass(frozen=True)
class Page:
    title: str
    subtitle: str
    sections: list[Section]


def render_page(page: Page) -> str:
    ids = [s.id for s in page.sections]
    if ids != list(SECTION_IDS):
        raise ValueError(f"sections must be {SECTION_IDS}, got {ids}")  # a programming error, not the user's
    return _template().render(page=page)


def _template() -> jinja2.Template:
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.tests["mapping_like"] = lambda v: isinstance(v, Mapping)
    env.tests["list_like"] = lambda v: isinstance(v, list | tuple)
    return env.from_string(_TEMPLATE)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page.title }}</title>
<style>
  body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 1.5em;
         color: #1d1d1f; line-height: 1.45; }
  h1 { margin-bottom: 0.1em; } .subtitle { color: #555; margin-top: 0; }
  nav a { margin-right: 1em; }
  section { border-top: 1px solid #ddd; padding-top: 0.6em; margin-top: 1.4em; }
  img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; border: 1px solid #eee; }
  table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
  th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
  th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.failed td { background: #fbeaea; }
  .notes { background: #fff6e0; border-left: 4px solid #e0a100; padding: 0.5em 1em 0.5em 2em; }
  .answer { font-size: 1.15em; font-weight: bold; }
  table.facts td:first-child { font-weight: bold; white-space: nowrap; }
  code, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; word-break: break-all; }
</style>
</head>
<body>
<h1>{{ page.title }}</h1>
<p class="subtitle">{{ page.subtitle }}</p>
<nav>{% for s in page.sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
{% macro facts(value) %}
{% if value is mapping_like %}
<table class="facts">{% for k, v in value.items() %}<tr><td>{{ k }}</td><td>{{ facts(v) }}</td></tr>{% endfor %}</table>
{% elif value is list_like %}
<span class="mono">{{ value | join(", ") }}</span>
{% else %}
<span class="mono">{{ value }}</span>
{% endif %}
{% endmacro %}
{% for s in page.sections %}
<section id="{{ s.id }}">
<h2>{{ s.title }}</h2>
{% for p in s.paragraphs %}<p{% if loop.first and s.id == "summary" %} class="answer"{% endif %}>{{ p }}</p>
{% endfor %}
{% if s.notes %}<ul class="notes">{% for n in s.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% for img in s.images %}<img src="{{ img.data_uri }}" alt="{{ img.alt }}" data-file="{{ img.file_name }}">
{% endfor %}
{% for t in s.tables %}
<table class="{{ t.css_class }}"><thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr{% if t.row_classes and t.row_classes[loop.index0] %} class="{{ t.row_classes[loop.index0] }}"{% endif %}>{% for cell in row %}<td{% if loop.index0 in t.numeric %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table>
{% endfor %}
{% if s.facts is not none %}{{ facts(s.facts) }}{% endif %}
</section>
{% endfor %}
</body>
</html>
"""
