"""Small helpers that assemble one self-contained HTML page.

The page needs nothing but itself: CSS is inline, PNGs are ``data:image/png;base64,…`` URIs, and no
URL of any kind (script, font, stylesheet, link) leaves the file, so it opens the same offline, from
an e-mail attachment or from an archived run. Every piece of text that comes from a file goes
through :func:`escape`; helpers that return HTML say so, and take only text otherwise.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from visionbench.engine.checkpoint import atomic_write

CSS = """
:root { --fg: #1d232a; --muted: #5f6b76; --line: #d9dee3; --band: #f4f6f8; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0 auto; max-width: 1180px; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
.subtitle { color: var(--muted); margin: 0 0 14px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 14px; padding: 8px 0;
      border-top: 1px solid var(--line); border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 6px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 180px; background: var(--band); }
.card .name { font-size: 13px; color: var(--muted); }
.card .value { font-size: 24px; font-weight: 600; }
.card .ci { font-size: 12px; color: var(--muted); }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.row { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: flex-start; }
.row img { min-width: 0; }
.note { color: var(--muted); font-size: 14px; margin: 4px 0; }
.skipped { border-left: 3px solid var(--line); padding: 4px 12px; margin: 12px 0; }
.warnings { border-left: 3px solid #c77700; background: #fff6e5; padding: 4px 12px; margin: 12px 0; }
.verdict { font-size: 16px; font-weight: 600; }
"""


def escape(value: Any) -> str:
    """``value`` as HTML text: ``&``, ``<``, ``>``, ``"`` and ``'`` escaped."""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A value for a table cell: floats to ``digits`` decimals, ``None``/NaN as ``—`` (plain text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.4g}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0000"


def interval(ci: Sequence[Any] | None, digits: int = 4) -> str:
    """A 95% interval as ``low – high`` (plain text); ``—`` when missing."""
    if not ci or len(ci) != 2:
        return "—"
    return f"{number(ci[0], digits)} – {number(ci[1], digits)}"


def direction(higher_is_better: Any) -> str:
    """``↑ higher`` / ``↓ lower`` (is better), or an empty string when unknown (plain text)."""
    if higher_is_better is None:
        return ""
    return "↑ higher" if higher_is_better else "↓ lower"


def image(png: bytes, alt: str) -> str:
    """An ``<img>`` with the PNG inlined as a base64 data URI (HTML)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def row(*items: str) -> str:
    """HTML items side by side, wrapping onto new lines when the page is too narrow (HTML)."""
    return f'<div class="row">{"".join(items)}</div>'


def paragraph(text: str, css_class: str | None = None) -> str:
    """One escaped paragraph (HTML)."""
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return f"<p{attribute}>{escape(text)}</p>"


def note(text: str) -> str:
    """A one-line, muted note (HTML)."""
    return paragraph(text, "note")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Iterable[int] = ()) -> str:
    """A table of escaped text (HTML); columns in ``numeric`` are right-aligned.

    Args:
        headers: column titles.
        rows: cells as plain text (anything ``str()`` turns into text).
        numeric: indices of the columns to right-align.
    """
    numeric = set(numeric)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    cell_open = ["<td>", '<td class="num">']
    body = "".join(
        "<tr>" + "".join(f"{cell_open[i in numeric]}{escape(cell)}</td>" for i, cell in enumerate(row)) + "</tr>\n"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def section(anchor: str, title: str, body: str) -> str:
    """A ``<section>`` with an ``<h2>`` title (escaped) and an HTML ``body``."""
    return f'<section id="{escape(anchor)}">\n<h2>{escape(title)}</h2>\n{body}\n</section>'


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The scalar metrics of a ``metrics.json``: entries shaped ``{"value", "ci95", "higher_is_better"}``."""
    return {name: entry for name, entry in metrics.items() if isinstance(entry, Mapping) and "value" in entry}


def _interval_or_reason(entry: Mapping[str, Any]) -> str:
    """The interval of a metric, or why it is undefined (``entry["undefined"]``, e.g. "no large
    objects in the test set") when its value is missing or NaN (plain text)."""
    value = entry.get("value")
    if (value is None or (isinstance(value, float) and math.isnan(value))) and entry.get("undefined"):
        return f"undefined: {entry['undefined']}"
    return interval(entry.get("ci95"))


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """Name, value, 95% interval (or why the value is undefined) and direction of every scalar metric (HTML)."""
    rows = [
        (name, number(entry.get("value")), _interval_or_reason(entry), direction(entry.get("higher_is_better")))
        for name, entry in scalar_metrics(metrics).items()
    ]
    return table(("metric", "value", "95% CI (low – high)", "better"), rows, numeric=(1, 2))


def cards(metrics: Mapping[str, Any], names: Sequence[str]) -> str:
    """Headline boxes (value and interval) for the metrics in ``names`` that exist (HTML)."""
    scalars = scalar_metrics(metrics)
    boxes = [
        f'<div class="card"><div class="name">{escape(name)} {escape(direction(scalars[name].get("higher_is_better"))[:1])}'
        f'</div><div class="value">{escape(number(scalars[name].get("value")))}</div>'
        f'<div class="ci">{escape(_card_note(scalars[name]))}</div></div>'
        for name in names if name in scalars
    ]
    return f'<div class="cards">{"".join(boxes)}</div>' if boxes else ""


def _card_note(entry: Mapping[str, Any]) -> str:
    """Under a headline value: its 95% interval, or why it is undefined (plain text)."""
    text = _interval_or_reason(entry)
    return text if text.startswith("undefined") else f"95% CI {text}"


def config_table(config: Mapping[str, Any]) -> str:
    """One row per configuration option (HTML); nested values shown as JSON."""
    def text(value: Any) -> str:  # as YAML/JSON spells it: true, null, [1, 2]
        return json.dumps(value) if isinstance(value, (dict, list, bool)) or value is None else str(value)

    return table(("option", "value"), ((name, text(value)) for name, value in config.items()))


def warnings(messages: Any) -> str:
    """The run's warnings (``metrics.json["warnings"]``), one line each, above everything else
    (HTML); an empty string when there are none."""
    if not messages or not isinstance(messages, list):
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in messages)
    return f'<div class="warnings"><strong>Warnings:</strong><ul>{items}</ul></div>'


def skipped(notes: Sequence[str]) -> str:
    """The list of sections left out, one line each with the reason (HTML)."""
    if not notes:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in notes)
    return f'<div class="skipped note"><strong>Not in this report:</strong><ul>{items}</ul></div>'


def page(title: str, subtitle: str, header: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document (HTML).

    Args:
        title: page and ``<h1>`` title (escaped).
        subtitle: one line under the title (escaped).
        header: HTML placed after the navigation (headline cards, skipped-section notes).
        sections: ``(anchor, title, body_html)`` in display order; each gets a navigation link.
    """
    nav = "".join(f'<a href="#{escape(anchor)}">{escape(name)}</a>' for anchor, name, _ in sections)
    body = "\n".join(section(anchor, name, content) for anchor, name, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n<p class=\"subtitle\">{escape(subtitle)}</p>\n<nav>{nav}</nav>\n"
        f"{header}\n{body}\n</body>\n</html>\n"
    )


def write_page(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file, then rename); returns ``path``."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
