"""Phase 1.75: symbol returns (1d, MTD, YTD, 1m, 3m, 1y), valuations and data quality."""

from __future__ import annotations

from phases._runtime import entrypoint, not_implemented

run = not_implemented("symbol-metrics", "Phase 1.75")
main = entrypoint("symbol-metrics", "Phase 1.75: symbol returns (1d, MTD, YTD, 1m, 3m, 1y), valuations and data quality.", run)

if __name__ == "__main__":
    raise SystemExit(main())
