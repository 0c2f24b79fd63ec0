"""One look for every chart: matplotlib (Agg) settings, colours, and the figure -> inline SVG step.

Text stays text in the SVG (``svg.fonttype = none``): the page is smaller, searchable, and the numbers
in titles and labels can be checked in tests. Each figure gets its own ``svg.hashsalt`` so the ids of
clip paths and markers are unique across the many SVGs inlined into one page (and stable from run to run);
matplotlib's per-figure group ids (``figure_1``, ``axes_1``, ``text_3`` …), the same in every SVG and never
referenced, are dropped, so every id in the page is unique.
"""

from __future__ import annotations

import io
import re
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from shared.report import fmt

INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e3e8ee"
PORTFOLIO = "#2563eb"
BENCHMARK = "#9aa5b1"
FORECAST = "#d97706"
POSITIVE = "#15803d"
NEGATIVE = "#b91c1c"
#: Width (inches) of charts that span the page; charts in the two-column grid are NARROW wide.
WIDE = 13.0
NARROW = 7.2
STATUS = {"ok": "#15803d", "completed": "#15803d", "partial": "#d97706", "skipped": "#9aa5b1",
          "failed": "#b91c1c", "running": "#2563eb"}

RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9,
    "axes.edgecolor": GRID,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "text.color": INK,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "figure.dpi": 100,
    "svg.fonttype": "none",
    "text.parse_math": False,  # "$" in names is a dollar sign, not mathtext
}

money_axis = FuncFormatter(lambda v, _pos: fmt.money_short(v))
count_axis = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
pct_axis = FuncFormatter(lambda v, _pos: f"{v * 100:.1f}%".replace(".0%", "%"))


@contextmanager
def figure(key: str, width: float = 7.0, height: float = 3.0, **subplots):
    """``with figure("equity-demo", 7, 3, nrows=2) as (fig, axes):`` in the house style."""
    with matplotlib.rc_context({**RC, "svg.hashsalt": key}):
        fig, axes = plt.subplots(figsize=(width, height), **subplots)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


_HEADER = re.compile(r"^.*?(?=<svg)", re.S)
#: matplotlib's numbered group ids (figure_1, axes_1, matplotlib.axis_2, line2d_7 …): not referenced.
_GROUP_ID = re.compile(r' id="[A-Za-z][\w.]*_\d+"')


def to_svg(fig, label: str) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), scalable, labelled for screen readers."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    svg = _GROUP_ID.sub("", _HEADER.sub("", buf.getvalue(), count=1))
    return svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{fmt.esc(label)}" ', 1)


def placeholder(label: str, reason: str) -> str:
    """What a chart slot shows when there is nothing to draw."""
    return f'<div class="nochart"><strong>{fmt.esc(label)}</strong>: {fmt.esc(reason)}</div>'
