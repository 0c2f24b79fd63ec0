"""The HTML shell of the report: stylesheet, header, navigation and small table helpers.

No template engine: the page is a few f-strings, and every piece of data goes through :func:`fmt.esc`
(cells built with :func:`table` are escaped unless passed as :class:`Raw`). Nothing is loaded from the
network: styles are inline and charts are inline SVG.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.report import fmt

CSS = """
:root { --ink:#1f2933; --muted:#6b7785; --line:#e3e8ee; --bg:#f7f9fb; --card:#fff; --accent:#2563eb;
        --ok:#15803d; --warn:#b45309; --err:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#111827; color:#f9fafb; padding:18px 32px; }
header h1 { margin:0 0 4px; font-size:22px; }
header .meta { color:#cbd5e1; font-size:13px; }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line); padding:8px 32px;
      font-size:13px; }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; }
main { max-width:1440px; margin:0 auto; padding:8px 32px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:18px 0; }
h2 { font-size:18px; margin:0 0 12px; }
h3 { font-size:15px; margin:18px 0 8px; }
table { border-collapse:collapse; width:100%; font-size:13px; margin:6px 0 12px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { color:var(--muted); font-weight:600; background:#fafbfc; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.neg { color:var(--err); } .pos { color:var(--ok); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; }
.b-ok,.b-completed { background:var(--ok); } .b-partial,.b-running { background:var(--warn); }
.b-failed { background:var(--err); } .b-skipped,.b-unknown,.b-not-run { background:#9aa5b1; }
.kpis { display:flex; flex-wrap:wrap; gap:10px; margin:4px 0 10px; }
.kpi { border:1px solid var(--line); border-radius:6px; padding:6px 12px; min-width:130px; }
.kpi .v { font-size:17px; font-weight:650; font-variant-numeric:tabular-nums; }
.kpi .l { font-size:11px; color:var(--muted); text-transform:uppercase; letter-spacing:.03em; }
.grid { display:grid; grid-template-columns:repeat(2, minmax(0, 1fr)); gap:14px 24px; align-items:start; }
.wide { grid-column:1 / -1; }
figure { margin:0; }
figcaption { font-size:12px; color:var(--muted); margin-top:2px; }
svg.chart { width:100%; height:auto; display:block; }
figure.square svg.chart { max-width:680px; }
.nochart { border:1px dashed var(--line); border-radius:6px; padding:18px; color:var(--muted); }
ul.findings { list-style:none; padding:0; margin:6px 0; }
ul.findings li { padding:4px 0 4px 10px; border-left:4px solid #9aa5b1; margin:4px 0; }
ul.findings li.error { border-color:var(--err); } ul.findings li.warning { border-color:var(--warn); }
.muted { color:var(--muted); }
.top { float:right; font-size:12px; }
@media (max-width: 900px) { .grid { grid-template-columns:1fr; } }
@media print { nav { position:static; } section { break-inside:avoid; } }
"""


@dataclass(frozen=True)
class Raw:
    """Markup that is already safe (built by this package)."""

    html: str


@dataclass(frozen=True)
class Num:
    """A right-aligned number cell; ``tone`` colours it by sign."""

    text: str
    value: float | None = None

    @property
    def css(self) -> str:
        if self.value is None or fmt.missing(self.value) or self.value == 0:
            return "n"
        return "n neg" if self.value < 0 else "n pos"


def cell(value) -> str:
    if isinstance(value, Raw):
        return f"<td>{value.html}</td>"
    if isinstance(value, Num):
        return f'<td class="{value.css}">{fmt.esc(value.text)}</td>'
    return f"<td>{fmt.esc(value)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence], *, numeric: Iterable[int] = (), cls: str = "") -> str:
    numeric = set(numeric)
    head = "".join(f'<th class="n">{fmt.esc(h)}</th>' if i in numeric else f"<th>{fmt.esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table class="{fmt.esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def badge(status: str) -> str:
    return f'<span class="badge b-{fmt.esc(status)}">{fmt.esc(status)}</span>'


def kpis(items: Iterable[tuple[str, str]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><div class="v">{fmt.esc(v)}</div><div class="l">{fmt.esc(label)}</div></div>'
        for label, v in items) + "</div>"


def chart(svg: str, caption: str = "", *, wide: bool = False, ident: str = "", square: bool = False) -> str:
    classes = " ".join(c for c, on in (("wide", wide), ("square", square)) if on)
    attrs = (f' id="{fmt.esc(ident)}"' if ident else "") + (f' class="{classes}"' if classes else "")
    cap = f"<figcaption>{fmt.esc(caption)}</figcaption>" if caption else ""
    return f"<figure{attrs}>{svg}{cap}</figure>"


def document(*, title: str, header: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    links = "".join(f'<a href="#{fmt.esc(href)}">{fmt.esc(text)}</a>' for href, text in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{fmt.esc(title)}</title><style>{CSS}</style></head>\n"
        f'<body id="top"><header>{header}</header><nav>{links}</nav>\n<main>{body}</main></body></html>\n'
    )
