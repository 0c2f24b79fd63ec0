"""Charts of the run itself: the phase timeline (Gantt) and the rows written per table."""

from __future__ import annotations

from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter

from shared.report import fmt
from shared.report.data import PhaseRow
from shared.report.style import MUTED, PORTFOLIO, STATUS, WIDE, count_axis, figure, placeholder, to_svg


def timeline(phases: list[PhaseRow]) -> str:
    """One bar per phase from its start to its end (seconds after the first phase started), coloured by
    status, annotated with the duration and retries."""
    label = "Phase timeline"
    timed = [p for p in phases if p.started_at is not None]
    if not timed:
        return placeholder(label, "no phase recorded for this run")
    t0 = min(p.started_at for p in timed)
    height = 0.9 + 0.32 * len(timed)
    with figure("timeline", WIDE, height) as (fig, ax):
        ends = []
        for i, p in enumerate(timed):
            start = (p.started_at - t0).total_seconds()
            dur = p.seconds if p.seconds is not None else 0.0
            ax.barh(i, max(dur, 0.05), left=start, height=0.6, color=STATUS.get(p.status, MUTED))
            note = fmt.seconds(dur) + (f"  ·  {p.retries} retr{'y' if p.retries == 1 else 'ies'}" if p.retries else "")
            ax.text(start + dur, i, "  " + note, va="center", ha="left", fontsize=8, color=MUTED)
            ends.append(start + dur)
        ax.set_yticks(range(len(timed)), [f"{p.number}  {p.name}" if p.number != "-" else p.name for p in timed])
        ax.invert_yaxis()
        ax.set_xlim(0, max(ends) * 1.18 + 0.5)
        ax.set_xlabel("seconds after the first phase started")
        ax.grid(axis="y", visible=False)
        ax.set_title(f"Phases: {len(timed)} recorded, wall time {fmt.seconds(max(ends))}")
        used = sorted({p.status for p in timed})
        ax.legend(handles=[Patch(color=STATUS.get(s, MUTED), label=s) for s in used], loc="lower right", ncols=len(used))
        return to_svg(fig, label)


def rows_written(totals: dict[str, int]) -> str:
    label = "Rows written per table"
    totals = {k: v for k, v in totals.items() if v > 0}
    if not totals:
        return placeholder(label, "no rows written")
    names = list(totals)
    values = [totals[n] for n in names]
    with figure("rows", WIDE, 0.8 + 0.26 * len(names)) as (fig, ax):
        ax.barh(range(len(names)), values, color=PORTFOLIO, height=0.6)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(count_axis)
        ax.xaxis.set_minor_formatter(NullFormatter())
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,}", va="center", fontsize=8, color=MUTED)
        ax.set_xlim(right=max(values) * 4)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("rows (log scale)")
        ax.set_title(f"Rows written: {sum(values):,} in {len(values)} tables")
        return to_svg(fig, label)
