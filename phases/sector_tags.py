"""Phase 5: tag every position with its GICS sector."""

from __future__ import annotations

from phases._runtime import entrypoint, not_implemented

run = not_implemented("sector-tags", "Phase 5")
main = entrypoint("sector-tags", "Phase 5: tag every position with its GICS sector.", run)

if __name__ == "__main__":
    raise SystemExit(main())
