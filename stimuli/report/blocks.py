"""What a report page is made of (sections of tables, images and notes) and how it is written."""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from stimuli.io import write_atomic
from stimuli.report.canvas import to_png

log = logging.getLogger(__name__)
NOT_AVAILABLE = "not available"
MISSING = "—"


@dataclass
class Cell:
    text: str
    colspan: int = 1
    numeric: bool = False


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    kind: str = "table"


@dataclass
class Image:
    data_uri: str
    alt: str
    kind: str = "image"


@dataclass
class Note:
    text: str
    kind: str = "note"


Block = Table | Image | Note


@dataclass
class Section:
    title: str
    id: str
    blocks: list[Block] = field(default_factory=list)


def fmt(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list | tuple):
        if len(value) <= 12:
            return ", ".join(fmt(v) for v in value)
        nums = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(nums) == len(value):
            return f"{len(value)} values, {fmt(min(nums))} … {fmt(max(nums))}"
        return f"{len(value)} values: {', '.join(fmt(v) for v in value[:12])}, …"
    return str(value)


def cell(value: Any, colspan: int = 1) -> Cell:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return Cell(fmt(value), colspan, numeric)


def flatten(tree: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts (and lists of dicts) to `a.b.c` keys; lists of scalars stay one value."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{sep}{k}" if prefix else str(k), sep))
        return out
    if isinstance(tree, list | tuple) and any(isinstance(v, Mapping | list) for v in tree):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{sep}{i}" if prefix else str(i), sep))
        return out
    return {prefix or "value": tree}


def key_values(tree: Mapping, caption: str = "", skip: Iterable[str] = ()) -> Table:
    skip = set(skip)
    rows = [[Cell(k), cell(v)] for k, v in flatten(tree).items() if k.split(".")[0] not in skip]
    return Table(["key", "value"], rows, caption)


def grid(
    rows: Mapping[str, Mapping], columns: Sequence[str], first: str, caption: str = ""
) -> Table:
    """One row per key of `rows`, one column per name in `columns` (missing → —)."""
    body = [[Cell(str(name)), *(cell(r.get(c)) for c in columns)] for name, r in rows.items()]
    return Table([first, *columns], body, caption)


def ordered(keys: Iterable[str], first: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    return [k for k in first if k in keys] + [k for k in keys if k not in first]


def image(draw: Callable[[], Any], alt: str) -> Block:
    """A figure as an embedded PNG; a figure that fails becomes a note, not a failed report."""
    try:
        png = to_png(draw())
    except Exception as err:  # a report must not cost a finished run
        log.warning("report figure %r failed", alt, exc_info=True)
        return Note(f"{alt}: figure failed ({type(err).__name__}: {err})")
    return Image("data:image/png;base64," + base64.b64encode(png).decode("ascii"), alt)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("stimuli.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_page(
    path: Path, title: str, facts: Sequence[tuple[str, str]], sections: Sequence[Section]
) -> Path:
    html = (
        _environment()
        .get_template("page.html.j2")
        .render(
            title=title,
            facts=facts,
            sections=sections,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
    return write_atomic(path, html.encode("utf-8"))
