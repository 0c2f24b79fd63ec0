"""Number and text formatting shared by the page and the charts (one place, so tests can reuse it)."""

from __future__ import annotations

import html
import math
from datetime import date, datetime
from typing import Any


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def money(value: Any, *, sign: bool = False) -> str:
    """Whole dollars with thousands separators: ``$1,234,567``, ``-$753,613`` (``–`` when missing)."""
    if missing(value):
        return "–"
    v = round(float(value))
    prefix = "-" if v < 0 else ("+" if sign and v > 0 else "")
    return f"{prefix}${abs(v):,}"


def money_short(value: float) -> str:
    """Axis ticks: ``$1.2B``, ``$12.5M``, ``$1,020k``, ``$2.5k``, ``-$750``."""
    v = float(value)
    a = abs(v)
    s = "-" if v < 0 else ""
    if a >= 1e9:
        return f"{s}${a / 1e9:,.1f}B".replace(".0B", "B")
    if a >= 1e7:
        return f"{s}${a / 1e6:,.1f}M".replace(".0M", "M")
    if a >= 1e5:
        return f"{s}${a / 1e3:,.0f}k"
    if a >= 1e3:
        return f"{s}${a / 1e3:.1f}k".replace(".0k", "k")
    return f"{s}${a:.0f}"


def pct(value: Any, digits: int = 2, *, sign: bool = False) -> str:
    """A fraction as a percentage: 0.1234 -> ``12.34%``."""
    if missing(value):
        return "–"
    return f"{float(value) * 100:{'+' if sign else ''}.{digits}f}%"


def num(value: Any, digits: int = 2) -> str:
    if missing(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def integer(value: Any) -> str:
    if missing(value):
        return "–"
    return f"{int(value):,}"


def seconds(value: Any) -> str:
    if missing(value):
        return "–"
    v = float(value)
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


def when(value: Any) -> str:
    if value is None or missing(value):
        return "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def esc(value: Any) -> str:
    """HTML-escaped text of anything (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def anchor(portfolio_id: str) -> str:
    """The id of a portfolio's section: ``p-`` + the id with anything but [A-Za-z0-9_-] replaced."""
    return "p-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in str(portfolio_id))
