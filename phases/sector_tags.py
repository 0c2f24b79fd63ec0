"""Phase 5 — sector tags: every position held on the run's last session tagged with its GICS sector.

Sector from the company profile, normalised to GICS names; ETFs are tagged "ETFs", options and private
positions "Unclassified", symbols without a profile "Uncategorized". Tags of the tagged positions are
replaced, so a re-run writes the same rows; a tag dated later than the run's last session is kept (current
state only moves forward: a backfill of older dates never rolls ``tagged_on`` back). A portfolio shard
(``--shard K/N``) tags, reads and replaces the positions of its own portfolios only
(:attr:`PhaseContext.portfolio_scope`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phases._runtime import PhaseContext, PhaseResult, entrypoint
from shared.analytics.factors import normalize_sector
from shared.storage import models as m
from shared.storage import repository as repo


def sector_labels(positions: pd.DataFrame, profiles: pd.DataFrame) -> pd.Series:
    prof = profiles.set_index("symbol") if not profiles.empty else pd.DataFrame(columns=["sector", "is_etf"])
    sector = positions["symbol"].map(prof["sector"]).map(normalize_sector)
    is_etf = positions["symbol"].map(prof["is_etf"]).fillna(False).astype(bool)
    klass = positions["investment_class"].fillna("PUBLIC").str.upper()
    out = np.where(klass.isin(["OPTIONS", "PRIVATE"]), "Unclassified",
                   np.where(is_etf, "ETFs", sector.fillna("Uncategorized")))
    return pd.Series(out, index=positions.index)


#: The columns of a position the tag depends on (and the keys it is stored under).
POSITION_COLUMNS = ["id", "portfolio_id", "symbol", "investment_class", "exit_date"]


def run(ctx: PhaseContext) -> PhaseResult:
    end = ctx.range.end
    scope = ctx.portfolio_scope  # --portfolio, the shard's portfolios, or None (every portfolio)
    with ctx.transaction() as s:
        positions = repo.load_positions(s, scope, start=end, end=end, columns=POSITION_COLUMNS)
        positions = positions[positions["exit_date"].isna() | (pd.to_datetime(positions["exit_date"]) > pd.Timestamp(end))]
        profiles = repo.load_profiles(s, sorted(set(positions["symbol"])))
        tags = pd.DataFrame({"position_id": positions["id"], "portfolio_id": positions["portfolio_id"],
                             "sector": sector_labels(positions, profiles), "tagged_on": end})
        # reads and replaces the tags of the scope's portfolios only: another shard's are never touched
        n = repo.replace_current(s, m.PositionSectorTag, tags, "position_id", "tagged_on",
                                 within=None if scope is None else {"portfolio_id": scope})
    counts = tags["sector"].value_counts().to_dict() if not tags.empty else {}
    return PhaseResult(rows={"position_sector_tags": n}, details={"as_of": end.isoformat(), "sectors": counts})


main = entrypoint("sector-tags", "Phase 5: tag every position with its GICS sector.", run)

if __name__ == "__main__":
    raise SystemExit(main())
