"""Everything a run report shows, loaded once through :mod:`shared.storage.repository`.

The run: its ``batch_run_history`` row and its ``batch_phase_runs`` rows in DAG order. Per portfolio:
up to ``history_days`` of snapshots ending on the run's last session (equity curve, P&L, volatility),
and on that session its factor exposures, stress results and correlation summary. The heatmap is drawn
for the largest portfolio (highest equity on the last session) from its stored pairwise correlations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from shared.errors import BadInputError
from shared.storage import repository as repo

HISTORY_DAYS = 365


@dataclass
class PhaseRow:
    name: str
    number: str
    title: str
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    rows: dict[str, int]
    details: dict[str, Any]
    error: str | None

    @property
    def retries(self) -> int:
        return max(int(self.attempt or 1) - 1, 0)


@dataclass
class RunData:
    run_id: str
    trigger: str
    status: str
    start: date | None
    end: date | None
    sessions: int
    portfolio_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    errors: list
    coverage: dict
    phases: list[PhaseRow]

    @property
    def phase_outcome(self) -> str:
        """completed / partial / failed from the phases recorded so far (the history row says ``running``
        until record-run closes it, which happens after the report)."""
        statuses = {p.status for p in self.phases}
        if "failed" in statuses:
            return "partial" if statuses & {"ok", "partial"} else "failed"
        return "partial" if "partial" in statuses else "completed"

    @property
    def rows_total(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for p in self.phases:
            for k, v in (p.rows or {}).items():
                total[k] = total.get(k, 0) + int(v or 0)
        return dict(sorted(total.items(), key=lambda kv: -kv[1]))

    def phase(self, name: str) -> PhaseRow | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def steps_to_come(self) -> list[str]:
        """DAG steps of a running run with no record yet, other than the report itself and record-run
        (both finish after the page is written). Empty when the report step renders its own run: the
        outcome of the phases is then final, only its recording in the run history is still to come."""
        if self.status != "running":
            return []
        from workflows import dag

        have = {p.name for p in self.phases}
        return [s.name for s in dag.STEPS if s.name not in have and s.name != "report"]


@dataclass
class PortfolioData:
    id: str
    name: str
    currency: str
    inception_equity: float
    history: pd.DataFrame  # snapshots, ascending by date, plus return_index and drawdown
    factors: pd.DataFrame
    stress: pd.DataFrame
    stress_summary: dict | None
    correlation: dict | None

    @property
    def last(self) -> pd.Series | None:
        return None if self.history.empty else self.history.iloc[-1]

    @property
    def run_window(self) -> pd.DataFrame:
        """Snapshots from the run's own sessions (set by :func:`load_report_data`)."""
        return self.history[self.history["in_run"]] if not self.history.empty else self.history

    @property
    def equity(self) -> float | None:
        last = self.last
        return None if last is None else float(last["equity_balance"])


@dataclass
class ReportData:
    run: RunData
    as_of: date | None
    portfolios: list[PortfolioData]
    heatmap_portfolio: str | None = None
    heatmap: pd.DataFrame | None = None  # square correlation matrix, symbols on both axes
    heatmap_meta: dict = field(default_factory=dict)
    generated_at: datetime | None = None
    #: Portfolios in scope; only the ``MAX_PORTFOLIO_SECTIONS`` largest get a section (big books stay readable).
    portfolios_total: int = 0


def _ts(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _day(value: Any) -> date | None:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _phases(frame: pd.DataFrame) -> list[PhaseRow]:
    from workflows import dag

    known = {s.name: (i, s) for i, s in enumerate((*dag.STEPS, dag.EXIT_STEP))}
    out = []
    for r in frame.itertuples():
        i, step = known.get(r.phase, (len(known), None))
        out.append((_ts(r.started_at) or datetime.max, i, PhaseRow(
            name=r.phase, number=step.phase if step else "-", title=step.title if step else r.phase,
            status=r.status, attempt=int(r.attempt or 1), started_at=_ts(r.started_at),
            finished_at=_ts(r.finished_at), seconds=None if pd.isna(r.duration_seconds) else float(r.duration_seconds),
            rows={k: int(v or 0) for k, v in (r.rows_written or {}).items()}, details=r.details or {},
            error=r.error)))
    return [p for _, _, p in sorted(out, key=lambda t: (t[0], t[1]))]


def load_run_data(session: Session, run_id: str) -> RunData:
    row = repo.load_run(session, run_id)
    phases = repo.load_phase_runs(session, run_id)
    if row is None and phases.empty:
        raise BadInputError(f"no run {run_id!r} in the database (see `sigmabatch status`)")
    row = row or {}
    return RunData(
        run_id=run_id, trigger=row.get("triggered_by") or "-", status=row.get("status") or "unknown",
        start=_day(row.get("start_date")), end=_day(row.get("end_date")), sessions=int(row.get("sessions") or 0),
        portfolio_id=row.get("portfolio_id"), started_at=_ts(row.get("started_at")),
        completed_at=_ts(row.get("completed_at")), errors=list(row.get("error_summary") or []),
        coverage=dict(row.get("data_coverage") or {}), phases=_phases(phases),
    )


def _history(snaps: pd.DataFrame, start: date | None) -> pd.DataFrame:
    h = snaps.sort_values("snapshot_date").reset_index(drop=True).copy()
    h["snapshot_date"] = pd.to_datetime(h["snapshot_date"])
    r = pd.to_numeric(h["daily_return"], errors="coerce").fillna(0.0)
    h["return_index"] = (1.0 + r).cumprod()
    h["drawdown"] = h["return_index"] / h["return_index"].cummax() - 1.0
    h["in_run"] = h["snapshot_date"].dt.date >= start if start else True
    return h


def _matrix(pairs: pd.DataFrame) -> pd.DataFrame:
    symbols = sorted(set(pairs["symbol_1"]) | set(pairs["symbol_2"]))
    mat = pd.DataFrame(np.eye(len(symbols)), index=symbols, columns=symbols)
    for r in pairs.itertuples():
        mat.loc[r.symbol_1, r.symbol_2] = mat.loc[r.symbol_2, r.symbol_1] = float(r.correlation_value)
    return mat


MAX_PORTFOLIO_SECTIONS = 25


def load_report_data(session: Session, run_id: str, *, history_days: int = HISTORY_DAYS,
                     generated_at: datetime | None = None) -> ReportData:
    run = load_run_data(session, run_id)
    portfolios = repo.load_portfolios(session, run.portfolio_id or None,
                                      columns=["id", "name", "currency", "equity_balance"])
    ids = list(portfolios["id"]) if not portfolios.empty else []
    as_of = run.end
    if as_of is None and ids:
        marks = repo.snapshot_watermarks(session, ids)["last_snapshot"].dropna()
        as_of = _day(max(marks)) if not marks.empty else None
    data = ReportData(run=run, as_of=as_of, portfolios=[], generated_at=generated_at, portfolios_total=len(ids))
    if as_of is None or not ids:
        return data
    if len(ids) > MAX_PORTFOLIO_SECTIONS:  # the largest on the last session, chosen in SQL (not the book's snapshots)
        ids = repo.largest_portfolios(session, as_of, MAX_PORTFOLIO_SECTIONS) or ids[:MAX_PORTFOLIO_SECTIONS]
        portfolios = portfolios[portfolios["id"].isin(ids)]
    snaps = repo.load_snapshots(session, ids, as_of - timedelta(days=history_days), as_of)
    factors = repo.load_factor_exposures(session, ids, as_of)
    stress = repo.load_stress_results(session, ids, as_of)
    summaries = repo.load_stress_summaries(session, ids, as_of)
    corr = repo.load_correlation_calculations(session, ids, as_of)
    for p in portfolios.itertuples():
        mine = snaps[snaps["portfolio_id"] == p.id]
        summ = summaries[summaries["portfolio_id"] == p.id]
        calc = corr[corr["portfolio_id"] == p.id].sort_values("duration_days")
        data.portfolios.append(PortfolioData(
            id=p.id, name=p.name, currency=p.currency, inception_equity=float(p.equity_balance),
            history=_history(mine, run.start) if not mine.empty else mine,
            factors=factors[factors["portfolio_id"] == p.id].reset_index(drop=True),
            stress=stress[stress["portfolio_id"] == p.id].reset_index(drop=True),
            stress_summary=summ.iloc[0].to_dict() if not summ.empty else None,
            correlation=calc.iloc[-1].to_dict() if not calc.empty else None,
        ))
    sized = [p for p in data.portfolios if p.equity is not None]
    if sized:
        largest = max(sized, key=lambda p: p.equity)
        pairs = repo.load_pairwise_correlations(session, largest.id, as_of)
        data.heatmap_portfolio = largest.id
        if not pairs.empty:
            data.heatmap = _matrix(pairs)
            data.heatmap_meta = {"calculation_date": _day(pairs["calculation_date"].iloc[0]),
                                 "window": int(pairs["duration_days"].iloc[0]),
                                 "min_points": int(pairs["data_points"].min()) if pairs["data_points"].notna().any()
                                 else None}
    return data
