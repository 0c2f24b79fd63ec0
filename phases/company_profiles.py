"""Phase 0: refresh company profiles older than the configured age."""

from __future__ import annotations

from phases._runtime import entrypoint, not_implemented

run = not_implemented("company-profiles", "Phase 0")
main = entrypoint("company-profiles", "Phase 0: refresh company profiles older than the configured age.", run)

if __name__ == "__main__":
    raise SystemExit(main())
