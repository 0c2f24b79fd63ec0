"""Phase 2: income statement, balance sheet and cash flow, fetched after earnings."""

from __future__ import annotations

from phases._runtime import entrypoint, not_implemented

run = not_implemented("fundamentals", "Phase 2")
main = entrypoint("fundamentals", "Phase 2: income statement, balance sheet and cash flow, fetched after earnings.", run)

if __name__ == "__main__":
    raise SystemExit(main())
