"""Phase 5 — sector tags: every position held on the run's last session tagged with its GICS sector.

Sector from the company profile, normalised to GICS names; ETFs are tagged "ETFs", options and private
positions "Unclassified", symbols without a profile "Uncategorized". Tags of the tagged positions are
replaced, so a re-run writes the same rows; a tag dated later than the run's last session is kept (current
state only moves forward: a backfill of older dates never rolls ``tagged_on`` back).
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


def run(ctx: PhaseContext) -> PhaseResult:
    end = ctx.range.end
    with ctx.transaction() as s:
        positions = repo.load_positions(s, [ctx.portfolio_id] if ctx.portfolio_id else None, start=end, end=end)
        positions = positions[positions["exit_date"].isna() | (pd.to_datetime(positions["exit_date"]) > pd.Timestamp(end))]
        profiles = repo.load_profiles(s, sorted(set(positions["symbol"])))
        tags = pd.DataFrame({"position_id": positions["id"], "portfolio_id": positions["portfolio_id"],
                             "sector": sector_labels(positions, profiles), "tagged_on": end})
        n = repo.replace_current(s, m.PositionSectorTag, tags, "position_id", "tagged_on")
    counts = tags["sector"].value_counts().to_dict() if not tags.empty else {}
    return PhaseResult(rows={"position_sector_tags": n}, details={"as_of": end.isoformat(), "sectors": counts})


main = entrypoint("sector-tags", "Phase 5: tag every position with its GICS sector.", run)

if __name__ == "__main__":
    raise SystemExit(main())
