"""One self-contained HTML page: escaped text, sortable tables, figure links and notices.

The page carries its own style and its ~20-line sorting script; it loads nothing from a network
and links the figures beside it by relative paths, so that it opens from the disk and keeps working
when its folder is copied or zipped. What cannot be shown (a missing table, an unreadable figure)
becomes a visible notice instead of a broken element.
"""

from __future__ import annotations

import csv
import html
import itertools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from PIL import Image

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .2em .55em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; } table.sortable th:hover { background: #e4e4e4; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
.scroll { max-height: 32em; overflow: auto; display: inline-block; max-width: 100%; }
.notice { background: #fff3cd; border: 1px solid #e0c36c; padding: .5em .8em; display: inline-block; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; }
.gallery figure { margin: 0; width: 380px; } .gallery img { width: 100%; border: 1px solid #ccc; }
figcaption { font-size: .9em; color: #555; } .muted { color: #666; }
.big td { font-size: 1.15em; }
"""

# Click a header to sort by that column (numbers by value, text alphabetically); click again to reverse.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-value");
        var n = parseFloat(v === null ? cell.textContent : v);
        return isNaN(n) ? cell.textContent : n;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), c;
        if (typeof x === "number" && typeof y === "number") c = x - y;
        else c = String(x).localeCompare(String(y));
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def url(rel: str) -> str:
    """A relative file path as an attribute value: percent-encoded, so that a legal file name with a
    character that means something in a URL ('#', '?', '%', ':', a space) still names the file."""
    return esc(quote(rel, safe="/"))


def number(value: object) -> float | None:
    """The value as a number (int, float or numeric text), or None for text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def cell_text(value: object, digits: int | None = 4) -> str:
    """How a table shows a value: whole numbers as written (also a count stored as a float, 169.0),
    other numbers rounded to ``digits`` decimals (``None``: as written), "n/a" for NaN, text as it is."""
    n = number(value)
    if n is None or digits is None:
        return "" if value is None else str(value)
    if math.isnan(n):
        return "n/a"
    if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return str(value)
    if n.is_integer() and abs(n) >= 2:  # a count that went through a float (169.0), never a fraction
        return str(int(n))
    return f"{n:.{digits}f}"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    sortable: bool = True,
    digits: int | None = 4,
    css: str = "",
) -> str:
    """An HTML table; a number's cell keeps its exact value in ``data-value`` (what sorting and
    checks read)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="text">{esc(cell_text(v))}</td>'
            if number(v) is None
            else f'<td data-value="{esc(v)}">{esc(cell_text(v, digits))}</td>'
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    classes = " ".join(c for c in ("sortable" if sortable else "", css) if c)
    return (
        f'<div class="scroll"><table class="{classes}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def notice(text: str) -> str:
    return f'<p class="notice">{esc(text)}</p>'


def read_csv(path: Path, limit: int | None = None) -> tuple[list[str], list[list[str]]] | str:
    """(header, rows) of a CSV file (the first ``limit`` rows), or a sentence saying why it cannot be shown."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(itertools.islice(csv.reader(f), None if limit is None else limit + 1))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return f"{path.name} could not be read ({err})"
    if not rows:
        return f"{path.name} is empty"
    return rows[0], rows[1:]


def count_rows(path: Path) -> int:
    """The number of rows (below the header) of a readable CSV file."""
    with open(path, newline="", encoding="utf-8") as f:
        return max(0, sum(1 for _ in csv.reader(f)) - 1)


def csv_table(path: Path, link: str | None = None, limit: int | None = None) -> str:
    """A CSV file as a sortable table (with a link to the file; its first ``limit`` rows), or the
    notice why it is not shown."""
    read = read_csv(path, limit)
    if isinstance(read, str):
        return notice(read)
    header, rows = read
    href = link if link is not None else path.name
    total = count_rows(path) if limit is not None and len(rows) == limit else len(rows)
    shown = f"the first {len(rows)} of {total} rows" if total > len(rows) else f"{total} rows"
    return (
        f'<p class="muted">{shown}, from <a href="{url(href)}">{esc(path.name)}</a>; click a '
        f"column to sort</p>" + table(header, rows)
    )


def readable_image(path: Path) -> str | None:
    """None when ``path`` is an image a browser can show, else why not."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as err:  # noqa: BLE001 - any decoder failure means the same to the reader
        return f"{path.name} could not be read as an image ({type(err).__name__})"
    return None


def figure(folder: Path, rel: str, caption: str) -> str:
    """A thumbnail linking to the full-size picture ``folder/rel``, or a notice where it is unreadable."""
    problem = readable_image(folder / rel)
    if problem:
        return f"<figure>{notice(problem)}<figcaption>{esc(caption)}</figcaption></figure>"
    return (
        f'<figure><a href="{url(rel)}"><img src="{url(rel)}" alt="{esc(caption)}"></a>'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, subtitle: str, sections: Iterable[tuple[str, str]]) -> str:
    """The whole document: a title, a table of contents and the (heading, html) sections."""
    sections = list(sections)
    anchors = [f"s{i}" for i in range(len(sections))]
    toc = " · ".join(f'<a href="#{a}">{esc(h)}</a>' for a, (h, _) in zip(anchors, sections))
    body = "".join(
        f'<section id="{a}"><h2>{esc(h)}</h2>{content}</section>' for a, (h, content) in zip(anchors, sections)
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p><nav>{toc}</nav>{body}'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
