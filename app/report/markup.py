"""HTML building blocks shared by the report's sections: escaping, cells and tables."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from app.report.data import points


def esc(value: object) -> str:
    """Escape anything for text and attribute positions."""
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Cell:
    """A table cell with a CSS class (both escaped on output)."""

    text: str
    css: str = ""


def delta_cell(delta: float | None) -> Cell:
    css = "" if delta is None else ("neg" if delta < 0 else "pos" if delta > 0 else "")
    return Cell(points(delta), css)


def table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str | Cell]]) -> str:
    head = "".join(f'<th class="{"text" if i == 0 else ""}">{esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cell = value if isinstance(value, Cell) else Cell(value, "text" if i == 0 else "")
            cells.append(f'<td class="{esc(cell.css)}">{esc(cell.text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
