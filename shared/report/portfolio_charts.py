"""Charts of one portfolio: equity and drawdown, daily P&L, factor exposures, sectors vs the benchmark,
realized vs forecast volatility, stress tests; and the correlation heatmap.

Each function takes the data it draws and a ``key`` (unique per figure in the page) and returns an inline
SVG, or a placeholder when there is nothing to draw. Sessions of the run itself are shaded.
"""

from __future__ import annotations

import matplotlib.dates as mdates
import numpy as np
import pandas as pd

from shared.report import fmt
from shared.report.style import (
    BENCHMARK,
    FORECAST,
    INK,
    MUTED,
    NARROW,
    NEGATIVE,
    PORTFOLIO,
    POSITIVE,
    WIDE,
    figure,
    money_axis,
    pct_axis,
    placeholder,
    to_svg,
)

RUN_SHADE = "#eef2ff"


def _shade_run(ax, h: pd.DataFrame) -> None:
    run = h[h["in_run"]]
    if not run.empty and len(run) < len(h):
        ax.axvspan(run["snapshot_date"].iloc[0], run["snapshot_date"].iloc[-1], color=RUN_SHADE, zorder=0, lw=0)


def _dates(ax, x: pd.Series) -> None:
    """Concise date ticks over the history's dates (a 5 % margin, at least a day): the data limits of a
    series with one valid point would span years, where the automatic locator finds no interval."""
    lo, hi = pd.Timestamp(min(x)), pd.Timestamp(max(x))
    pad = max((hi - lo) * 0.05, pd.Timedelta(days=1))
    ax.set_xlim(lo - pad, hi + pad)
    loc = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def equity_drawdown(key: str, h: pd.DataFrame) -> str:
    label = "Equity and drawdown"
    if h.empty:
        return placeholder(label, "no snapshot")
    with figure(key, NARROW, 3.8, nrows=2, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}) as (fig, (ax, dd)):
        x = h["snapshot_date"]
        ax.plot(x, h["equity_balance"], color=PORTFOLIO, lw=1.8)
        _shade_run(ax, h)
        last = h.iloc[-1]
        ax.yaxis.set_major_formatter(money_axis)
        ax.set_title(f"Equity {fmt.money(last['equity_balance'])}  ·  cumulative P&L "
                     f"{fmt.money(last['cumulative_pnl'], sign=True)}  ·  max drawdown {fmt.pct(h['drawdown'].min(), 1)}")
        dd.fill_between(x, h["drawdown"], 0, color=NEGATIVE, alpha=0.25, lw=0)
        dd.plot(x, h["drawdown"], color=NEGATIVE, lw=1)
        _shade_run(dd, h)
        dd.yaxis.set_major_formatter(pct_axis)
        dd.set_ylim(top=0.0, bottom=min(float(h["drawdown"].min()) * 1.15, -0.01))
        dd.set_ylabel("drawdown")
        _dates(dd, x)
        fig.align_ylabels()
        return to_svg(fig, label)


def daily_pnl(key: str, h: pd.DataFrame) -> str:
    label = "Daily P&L"
    if h.empty:
        return placeholder(label, "no snapshot")
    with figure(key, NARROW, 3.8) as (fig, ax):
        x, y = h["snapshot_date"], h["daily_pnl"].astype(float)
        _shade_run(ax, h)
        width = 0.8 if len(h) < 90 else 1.0
        ax.bar(x, y, width=width, color=np.where(y >= 0, POSITIVE, NEGATIVE))
        ax.axhline(0, color=MUTED, lw=0.8)
        ax.yaxis.set_major_formatter(money_axis)
        last = h.iloc[-1]
        ax.set_title(f"Daily P&L  ·  last session {fmt.money(last['daily_pnl'], sign=True)} "
                     f"({fmt.pct(last['daily_return'], 2, sign=True)})")
        _dates(ax, x)
        return to_svg(fig, label)


def factor_bars(key: str, factors: pd.DataFrame) -> str:
    label = "Factor exposures"
    if factors.empty:
        return placeholder(label, "no factor exposures on the last session")
    f = factors.sort_values("display_order")
    vals = f["exposure_value"].astype(float).to_numpy()
    with figure(key, NARROW, 0.8 + 0.3 * len(f)) as (fig, ax):
        y = np.arange(len(f))
        ax.barh(y, vals, color=np.where(vals >= 0, PORTFOLIO, NEGATIVE), height=0.62)
        ax.set_yticks(y, f["factor"])
        ax.invert_yaxis()
        ax.axvline(0, color=MUTED, lw=0.8)
        span = max(np.abs(vals).max(), 0.1)
        ax.set_xlim(min(vals.min(), 0) - 0.3 * span, max(vals.max(), 0) + 0.3 * span)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.2f} " if v >= 0 else f" {v:.2f} ", va="center", ha="left" if v >= 0 else "right",
                    fontsize=7.5, color=MUTED)
        ax.grid(axis="y", visible=False)
        ax.set_title("Factor exposures (beta)")
        return to_svg(fig, label)


def sector_bars(key: str, sectors: dict | None) -> str:
    label = "Sector weights vs benchmark"
    if not sectors:
        return placeholder(label, "no sector exposure on the last session")
    rows = sorted(sectors.items(), key=lambda kv: -max(kv[1].get("portfolio_weight") or 0,
                                                       kv[1].get("benchmark_weight") or 0))
    names = [k for k, _ in rows]
    port = np.array([v.get("portfolio_weight") or 0.0 for _, v in rows], dtype=float)
    bench = np.array([v.get("benchmark_weight") or 0.0 for _, v in rows], dtype=float)
    with figure(key, NARROW, 0.8 + 0.3 * len(names)) as (fig, ax):
        y = np.arange(len(names))
        ax.barh(y - 0.19, port, height=0.38, color=PORTFOLIO, label="portfolio")
        ax.barh(y + 0.19, bench, height=0.38, color=BENCHMARK, label="benchmark (S&P 500)")
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(pct_axis)
        ax.axvline(0, color=MUTED, lw=0.8)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right")
        ax.set_title("Sector weights vs benchmark")
        return to_svg(fig, label)


def volatility(key: str, h: pd.DataFrame) -> str:
    label = "Realized vs forecast volatility"
    cols = ["realized_volatility_21d", "realized_volatility_63d", "expected_volatility_21d"]
    if h.empty or h[cols].isna().all().all():
        return placeholder(label, "no volatility computed")
    with figure(key, WIDE, 3.0) as (fig, ax):
        x = h["snapshot_date"]
        _shade_run(ax, h)
        ax.plot(x, h["realized_volatility_21d"], color=PORTFOLIO, lw=1.6, label="realized 21d")
        ax.plot(x, h["realized_volatility_63d"], color=BENCHMARK, lw=1.4, label="realized 63d")
        ax.plot(x, h["expected_volatility_21d"], color=FORECAST, lw=1.6, ls="--", label="HAR forecast, next 21d")
        ax.yaxis.set_major_formatter(pct_axis)
        ax.set_ylim(bottom=0)
        last = h.iloc[-1]
        ax.set_title(f"Volatility (annualized)  ·  realized 21d {fmt.pct(last['realized_volatility_21d'], 1)}, "
                     f"forecast {fmt.pct(last['expected_volatility_21d'], 1)}")
        ax.legend(loc="lower left", ncols=3)
        _dates(ax, x)
        return to_svg(fig, label)


def stress_bars(key: str, stress: pd.DataFrame, equity: float | None) -> str:
    label = "Stress tests"
    if stress.empty:
        return placeholder(label, "no stress-test results on the last session")
    s = stress.sort_values("correlated_pnl")
    vals = s["correlated_pnl"].astype(float).to_numpy()
    direct = s["direct_pnl"].astype(float).to_numpy()
    with figure(key, WIDE, 1.0 + 0.26 * len(s)) as (fig, ax):
        y = np.arange(len(s))
        ax.barh(y, vals, height=0.62, color=np.where(vals >= 0, POSITIVE, NEGATIVE), label="with correlations")
        ax.scatter(direct, y, marker="|", s=90, color=INK, label="direct only", zorder=3)
        ax.set_yticks(y, s["name"])
        ax.invert_yaxis()
        ax.axvline(0, color=MUTED, lw=0.8)
        ax.xaxis.set_major_formatter(money_axis)
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncols=2)
        worst = s.iloc[0]
        share = f" ({fmt.pct(worst['correlated_pnl'] / equity, 1)} of equity)" if equity else ""
        ax.set_title(f"Stress P&L  ·  worst {fmt.money(worst['correlated_pnl'])}{share}: {worst['name']}")
        return to_svg(fig, label)


def heatmap(key: str, matrix: pd.DataFrame, title: str) -> str:
    label = "Correlation heatmap"
    if matrix is None or matrix.empty:
        return placeholder(label, "no pairwise correlations stored")
    n = len(matrix)
    size = min(max(3.6, 0.42 * n + 1.8), 9.0)
    with figure(key, size + 0.9, size) as (fig, ax):
        im = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(n), matrix.columns, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), matrix.index)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if n <= 16:
            for i in range(n):
                for j in range(n):
                    v = float(matrix.iat[i, j])
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 else INK)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="correlation")
        ax.set_title(title)
        return to_svg(fig, label)
