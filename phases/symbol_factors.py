"""Phase 1.5: symbol factor betas (ridge, spreads, market and rate OLS) for every session."""

from __future__ import annotations

from phases._runtime import entrypoint, not_implemented

run = not_implemented("symbol-factors", "Phase 1.5")
main = entrypoint("symbol-factors", "Phase 1.5: symbol factor betas (ridge, spreads, market and rate OLS) for every session.", run)

if __name__ == "__main__":
    raise SystemExit(main())
