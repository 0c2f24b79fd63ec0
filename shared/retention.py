"""Which sessions keep rows that are not stored for every session: a rule on the date, never on the run.

The pairwise correlation matrix of every portfolio is large (about 1.6 M rows a session at 10,000
portfolios), so it is kept only for the latest ``keep`` sessions (``SIGMABATCH_PAIRWISE_SESSIONS``,
default 1), counted back from the last completed session at the run's reference time. Whether session
``d`` has pairwise rows therefore depends on ``d`` and on when the batch ran, never on the range of the run
that computed it: a forced re-run of three old sessions adds no matrix the full run did not have.

Risk-correlations deletes the older matrices of the portfolios it computes; record-run then applies the
same rule to every portfolio (:func:`prune_history`). The other large dated result tables (:data:`RETAINED`)
keep everything unless ``SIGMABATCH_RETAIN_SESSIONS`` is set: then record-run deletes, at the end of every
run, their rows dated before the latest that many sessions (the same rule on the date; a re-run of an
older session writes them again and its record-run deletes them). Not in it: ``portfolio_snapshots`` (the
P&L chain and planning read the previous snapshot), ``market_data_cache`` (the windows of every step), the
run records. Every delete is a range scan of an index that starts with the date (migration 0008).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy.orm import Session

from shared import calendar
from shared.storage import models as m
from shared.storage import repository as repo

__all__ = ["RETAINED", "first_kept_session", "kept_sessions", "prune_history"]

#: The dated tables ``SIGMABATCH_RETAIN_SESSIONS`` bounds: model -> its date column.
RETAINED: dict[type[m.Base], str] = {
    m.SymbolFactorExposure: "calculation_date",
    m.SymbolVolatility: "calculation_date",
    m.SymbolDailyMetrics: "metrics_date",
    m.FactorExposure: "calculation_date",
    m.StressTestPnl: "calculation_date",
    m.StressExposure: "calculation_date",
    m.StressScenarioSession: "calculation_date",
    m.StressTestSummary: "calculation_date",
    m.CorrelationCalculation: "calculation_date",
    m.CorrelationCluster: "calculation_date",
}


def first_kept_session(latest: date, keep: int) -> date:
    """The oldest session that keeps its rows: ``keep - 1`` sessions before ``latest`` (its session)."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    return calendar.shift_sessions_clamped(latest, -(keep - 1))


def kept_sessions(sessions: Iterable[date], latest: date, keep: int) -> list[date]:
    """The sessions among ``sessions`` inside the latest ``keep`` sessions up to ``latest``, ascending."""
    lo = first_kept_session(latest, keep)
    return sorted(d for d in set(sessions) if lo <= d <= latest)


def prune_history(session: Session, latest: date, keep: int, pairwise_keep: int | None = None) -> dict[str, int]:
    """Delete the rows of :data:`RETAINED` dated before the latest ``keep`` sessions up to ``latest``
    (every portfolio and symbol; ``keep`` 0 keeps everything) and, with ``pairwise_keep``, the pairwise
    matrices before the latest ``pairwise_keep`` sessions of every portfolio (risk-correlations prunes
    only the portfolios it computed: one not in the run, a scoped run or a book not booked, would keep
    old matrices). Returns the rows deleted per table."""
    out = {}
    if pairwise_keep is not None:
        out[m.PairwiseCorrelation.__tablename__] = repo.delete_dated_before(
            session, m.PairwiseCorrelation, "calculation_date", first_kept_session(latest, pairwise_keep))
    if keep < 1:
        return out
    before = first_kept_session(latest, keep)
    return out | {model.__tablename__: repo.delete_dated_before(session, model, column, before)
                  for model, column in RETAINED.items()}
