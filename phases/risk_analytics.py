"""Phase 6: portfolio betas, factor exposures, sectors, volatility, correlations, stress tests."""

from __future__ import annotations

from phases._runtime import entrypoint, not_implemented

run = not_implemented("risk-analytics", "Phase 6")
main = entrypoint("risk-analytics", "Phase 6: portfolio betas, factor exposures, sectors, volatility, correlations, stress tests.", run)

if __name__ == "__main__":
    raise SystemExit(main())
