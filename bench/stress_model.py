"""``python -m bench.stress_model``: the stress model before and after issue 15, on real books.

Three sets of books, each run through the actual batch (the "after" numbers are the stored
``stress_test_results``), the "before" numbers recomputed from the same stored exposures with the formula of
``main`` before issue 15 (commit 85bc042: correlated = Σ_S Σ_F E_F · s_S · ρ(S, F) over the market-beta and
style exposures, ρ the clipped EWMA correlation, plus IR beta × −D·Δy):

* ``demo``: the five demo portfolios over the synthetic market, every session of a 21-session run;
* ``S``: the bench's S universe (``bench/universe.py``, nightly state, 100 books of 20 lots, 80 % long) plus,
  for every bench book, a long-only unlevered twin (its long lots, equity = their cost), on the last session;
* ``sp500``: the issue's measurement: real S&P 500 closes (``arch.data.sp500``, 2018) with synthetic style
  ETFs correlated 0.81-0.95 with it and TLT at -0.23; a long S&P book over the last 63 sessions (exposures
  from the phase-1.5 kernel, no database).

Prints markdown (the tables of ``docs/risk-model.md``): per scenario the distribution of correlated /
direct (books × sessions with |direct| ≥ 0.1 % of equity), before and after, and how many long-only
unlevered books hit the −99 % loss cap. SQLite, one BLAS thread; about 5 minutes on 2 cores.

    python -m bench.stress_model [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sqlalchemy import text  # noqa: E402

from shared.analytics.factors import STYLE_FACTORS  # noqa: E402
from shared.analytics.returns import simple_returns  # noqa: E402
from shared.analytics.stress import FACTORS, ewma_covariance, stress_test  # noqa: E402
from shared.analytics.symbol_betas import compute_symbol_betas  # noqa: E402
from shared.scenarios import load_scenarios  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ETFS = dict(zip(FACTORS, ("SPY", *STYLE_FACTORS.values(), "TLT"), strict=True))
ACTIVE = load_scenarios(active_only=True)
DURATION = 17.0


# --- the model before issue 15 (main at 85bc042), for the "before" column ------------------------------

def old_correlation(R: pd.DataFrame, decay: float = 0.94, min_obs: int = 30, clip: float = 0.95) -> pd.DataFrame:
    """The former ``ewma_factor_correlation``: pairwise weighted Pearson, clipped to ±0.95."""
    X = R.to_numpy(np.float64)
    T = X.shape[0]
    valid = ~np.isnan(X)
    w = decay ** np.arange(T - 1, -1, -1, dtype=np.float64)
    w /= w.sum()
    M = valid.astype(np.float64)
    Y = np.where(valid, X - np.where(valid, X, 0.0).sum(0) / np.maximum(M.sum(0), 1.0), 0.0)
    Mw, Yw = M * w[:, None], Y * w[:, None]
    sw, sx, sxx, sxy, n = Mw.T @ M, Yw.T @ M, (Yw * Y).T @ M, Yw.T @ Y, M.T @ M
    vx = sw * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (sw * sxy - sx * sx.T) / np.sqrt(vx * vx.T)
    rho[~np.isfinite(rho) | (vx <= 0) | (vx.T <= 0) | (n < min_obs)] = 0.0
    np.clip(rho, -clip, clip, out=rho)
    np.fill_diagonal(rho, 1.0)
    return pd.DataFrame(rho, index=R.columns, columns=R.columns)


def old_stress(exposures: pd.DataFrame, equity: pd.Series, rho: pd.DataFrame) -> pd.DataFrame:
    """(direct, correlated) per (portfolio, scenario) with the former formula, loss cap included."""
    keys = ["Market", *STYLE_FACTORS]
    names = ["Market Beta (90D)", *STYLE_FACTORS]
    E = np.nan_to_num(exposures.reindex(columns=names).to_numpy(np.float64))
    e_ir = np.nan_to_num(exposures.reindex(columns=["IR Beta"]).to_numpy(np.float64)[:, 0])
    Sh = np.array([[sc.shocks.get(k, 0.0) for k in keys] for sc in ACTIVE])
    dy = np.array([sc.shocks.get("Interest_Rate", 0.0) for sc in ACTIVE])
    r = rho.loc[keys, keys].to_numpy()
    ir = e_ir[:, None] * (-DURATION * dy)[None, :]
    direct, corr = E @ Sh.T + ir, E @ (Sh @ r).T + ir
    floor = np.where(equity.to_numpy() > 0, -0.99 * equity.to_numpy(), -np.inf)[:, None]
    capped = (corr < floor) | (direct < floor)
    return pd.DataFrame({"portfolio_id": np.repeat(exposures.index.to_numpy(), len(ACTIVE)),
                         "scenario_id": np.tile([s.id for s in ACTIVE], len(exposures)),
                         "direct_pnl": np.maximum(direct, floor).ravel(),
                         "correlated_pnl": np.maximum(corr, floor).ravel(), "loss_capped": capped.ravel()})


def factor_returns(closes: pd.DataFrame) -> pd.DataFrame:
    fret = simple_returns(closes[list(ETFS.values())])
    fret.columns = list(FACTORS)
    return fret


def old_rho(fret: pd.DataFrame, d) -> pd.DataFrame:
    end = fret.index.get_indexer([pd.Timestamp(d)])[0]
    window = fret.iloc[max(1, end - 251): end + 1].rename(columns={"Rates": "Interest_Rate"})
    return old_correlation(window)


# --- the databases --------------------------------------------------------------------------------

def _env(db_url: str, artifacts: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env.update({"PYTHONPATH": str(ROOT), "SIGMABATCH_DATABASE_URL": db_url, "SIGMABATCH_ARTIFACTS": str(artifacts),
                "SIGMABATCH_PROVIDER": "synthetic", "SIGMABATCH_LOG_LEVEL": "WARNING", "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra})
    return env


def _sigmabatch(env: dict[str, str], cwd: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "shared.cli", "run", "--no-progress", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"sigmabatch run exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def demo_db(workdir: Path) -> tuple[str, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'demo.db'}"
    env = _env(url, workdir / "demo-artifacts", SIGMABATCH_SYNTHETIC_SYMBOLS="30", SIGMABATCH_DEFAULT_SESSIONS="20",
               SIGMABATCH_NOW="2026-11-27T18:00:00-05:00")
    _sigmabatch(env, workdir)
    return url, next((workdir / "var").rglob("price_cache.parquet"), None) or next(
        (workdir / "demo-artifacts").rglob("price_cache.parquet"))


def bench_s_db(workdir: Path) -> tuple[str, Path]:
    from bench.pipeline import Database, run_pipeline
    from bench.universe import NOW, Plan, _prev_snapshots, load
    from shared.providers.synthetic import SyntheticMarket
    from shared.storage import models as m
    from shared.storage import repository as repo
    from shared.storage.db import get_engine, transaction

    plan = Plan.of("S")
    workdir.mkdir(parents=True, exist_ok=True)
    db = Database.create("sqlite", "stress_s", workdir)
    db.migrate()
    load(plan, "nightly", db.url, None)
    engine = get_engine(db.url)
    market = SyntheticMarket(plan.symbols, seed=7, as_of=plan.end)
    with transaction(engine) as s:  # a long-only, unlevered twin of every bench book: its open long lots, equity =
        pos = repo.load_positions(s)  # their value at the previous close (the nightly state's last snapshot)
        longs = pos[(pos["quantity"] > 0) & pos["exit_date"].isna()].copy()
        longs["portfolio_id"] = longs["portfolio_id"] + "-long"
        longs["id"] = np.arange(len(longs)) + int(pos["id"].max()) + 1
        prev_close = market.close_matrix(sorted(set(longs["symbol"])), plan.prev, plan.prev).iloc[-1]
        value = (longs["quantity"] * longs["symbol"].map(prev_close)).groupby(longs["portfolio_id"]).sum()
        twins = pd.DataFrame({"id": value.index, "name": value.index, "currency": "USD",
                              "equity_balance": value.round(2).to_numpy(), "is_active": True})
        repo.upsert(s, m.Portfolio, twins)
        repo.upsert(s, m.Position, longs.drop(columns=[c for c in ("created_at", "updated_at") if c in longs]))
        prev = _prev_snapshots(twins, plan.prev, pd.Timestamp(NOW).to_pydatetime())
        repo.upsert(s, m.PortfolioSnapshot, prev)
    engine.dispose()
    _, run = run_pipeline(db, plan, plan.end.isoformat(), plan.end.isoformat(), workdir, floor=False)
    return db.url, run.run_dir / "price_cache.parquet"


def read_books(url: str, cache: Path, last_only: bool) -> dict:
    """Stored exposures, equity, stress results and long-only/unlevered flags per (portfolio, date)."""
    from shared.storage.db import get_engine
    from shared.storage.price_cache import read_price_cache

    eng = get_engine(url)
    with eng.connect() as c:
        q = lambda sql: pd.DataFrame(c.execute(text(sql)).mappings().all())  # noqa: E731
        fe = q("select e.portfolio_id, e.calculation_date, d.name as factor, e.exposure_dollar "
               "from factor_exposures e join factor_definitions d on d.id = e.factor_id")
        snaps = q("select portfolio_id, snapshot_date, equity_balance, gross_exposure, short_value "
                  "from portfolio_snapshots")
        res = q("select portfolio_id, calculation_date, scenario_id, direct_pnl, correlated_pnl, "
                "calculation_metadata from stress_test_results")
        pos = q("select portfolio_id, quantity, position_type from positions")
    eng.dispose()
    for f, col in ((fe, "calculation_date"), (snaps, "snapshot_date"), (res, "calculation_date")):
        f[col] = pd.to_datetime(f[col]).dt.date
    if last_only:
        last = res["calculation_date"].max()
        fe, res = fe[fe["calculation_date"] == last], res[res["calculation_date"] == last]
    shorts = set(pos.loc[(pos["quantity"] < 0) | pos["position_type"].isin(["SHORT", "SC", "SP"]), "portfolio_id"])
    snaps = snaps.set_index(["portfolio_id", "snapshot_date"])
    snaps["long_only_unlevered"] = (~snaps.index.get_level_values(0).isin(shorts)) & (
        snaps["gross_exposure"] <= snaps["equity_balance"] * 1.001)
    closes = read_price_cache(cache).wide(list(ETFS.values()))
    return {"fe": fe, "snaps": snaps, "res": res, "fret": factor_returns(closes)}


def before_after(books: dict) -> pd.DataFrame:
    """One row per (portfolio, date, scenario): equity, flags, before and after direct / correlated."""
    rows = []
    for d, grp in books["fe"].groupby("calculation_date"):
        expo = grp.pivot_table(index="portfolio_id", columns="factor", values="exposure_dollar")
        eq = books["snaps"]["equity_balance"].xs(d, level="snapshot_date").reindex(expo.index)
        old = old_stress(expo, eq, old_rho(books["fret"], d))
        old["calculation_date"] = d
        rows.append(old)
    before = pd.concat(rows).set_index(["portfolio_id", "calculation_date", "scenario_id"])
    after = books["res"].set_index(["portfolio_id", "calculation_date", "scenario_id"])
    out = after[["direct_pnl", "correlated_pnl"]].merge(before, left_index=True, right_index=True,
                                                        suffixes=("", "_before"))
    snap = books["snaps"].rename_axis(["portfolio_id", "calculation_date"])
    out = out.join(snap[["equity_balance", "long_only_unlevered"]], on=["portfolio_id", "calculation_date"])
    return out.reset_index()


def sp500_book() -> pd.DataFrame:
    """The issue's data: arch's S&P 500 closes (2018) + synthetic style ETFs and TLT; a long S&P book."""
    from arch.data import sp500

    spx = sp500.load()["Adj Close"]
    spx = spx[(spx.index >= "2017-01-01") & (spx.index <= "2018-12-31")]
    r = spx.pct_change().to_numpy()[1:]
    rng = np.random.default_rng(2018)
    target = np.array([0.93, 0.90, 0.81, 0.95, 0.86, 0.88])      # correlation of each style with the index
    sd = r.std()
    noise = rng.normal(0, 1, (len(r), 6)) * sd * np.sqrt(1 / target**2 - 1)
    styles = r[:, None] + noise
    tlt = -0.23 * r / sd * 0.009 + rng.normal(0, 0.009 * np.sqrt(1 - 0.23**2), len(r))
    rets = np.column_stack([r, styles, tlt])
    idx = pd.DatetimeIndex(spx.index[1:]).normalize()
    prices = pd.DataFrame(100 * np.cumprod(1 + rets, axis=0), index=idx, columns=list(ETFS.values()))
    prices = pd.concat([pd.DataFrame(100.0, index=[spx.index[0].normalize()], columns=prices.columns), prices])
    dates = [d.date() for d in prices.index[-63:]]
    betas = compute_symbol_betas(prices, dates)
    fret = factor_returns(prices)
    rows = []
    for d in dates:
        b = betas[betas["calculation_date"] == d].pivot_table(index="symbol", columns="factor", values="beta_value")
        expo = b.loc[["SPY"]] * 1e6
        expo.index = ["sp500"]
        eq = pd.Series({"sp500": 1e6})
        end = fret.index.get_indexer([pd.Timestamp(d)])[0]
        cov = ewma_covariance(fret.iloc[max(0, end - 251): end + 1])
        new = stress_test(expo, ACTIVE, cov, eq, spy_betas=b.loc["SPY"],
                          tlt_market_beta=float(b.loc["TLT", "Market Beta (90D)"]), factor_impacts=False)
        old = old_stress(expo, eq, old_rho(fret, d))
        new = new.set_index(["portfolio_id", "scenario_id"])[["direct_pnl", "correlated_pnl"]]
        both = new.merge(old.set_index(["portfolio_id", "scenario_id"]), left_index=True, right_index=True,
                         suffixes=("", "_before")).reset_index()
        both["calculation_date"], both["equity_balance"], both["long_only_unlevered"] = d, 1e6, True
        rows.append(both)
    return pd.concat(rows, ignore_index=True)


# --- the tables -----------------------------------------------------------------------------------

def _ratio_stats(direct: pd.Series, corr: pd.Series, equity: pd.Series) -> str:
    ok = direct.abs() >= 1e-3 * equity.abs()
    r = (corr[ok] / direct[ok]).to_numpy()
    if not len(r):
        return f"– (direct ≈ 0 in {int((~ok).sum())})"
    p5, p50, p95 = np.percentile(r, [5, 50, 95])
    extra = f"; direct ≈ 0 in {int((~ok).sum())}" if (~ok).any() else ""
    return f"{p50:.2f} [{p5:.2f}, {p95:.2f}] n={len(r)}{extra}"


def ratio_table(df: pd.DataFrame) -> str:
    lines = ["| scenario | before: median [p5, p95] | after: median [p5, p95] |", "|---|---|---|"]
    for sc in ACTIVE:
        g = df[df["scenario_id"] == sc.id]
        lines.append(f"| {sc.name} | {_ratio_stats(g['direct_pnl_before'], g['correlated_pnl_before'], g['equity_balance'])}"
                     f" | {_ratio_stats(g['direct_pnl'], g['correlated_pnl'], g['equity_balance'])} |")
    return "\n".join(lines)


def cap_table(df: pd.DataFrame) -> str:
    lo = df[df["long_only_unlevered"]]
    n = lo.groupby(["portfolio_id", "calculation_date"]).ngroups
    lines = [f"Long-only, unlevered books: {n} (book × session); correlated P&L as % of equity:", "",
             "| scenario | capped before | median before | worst before | capped after | median after | worst after |",
             "|---|---|---|---|---|---|---|"]
    for sc in ACTIVE:
        g = lo[lo["scenario_id"] == sc.id]
        pb = g["correlated_pnl_before"] / g["equity_balance"]
        pa = g["correlated_pnl"] / g["equity_balance"]
        lines.append(f"| {sc.name} | {int((pb <= -0.99 + 1e-9).sum())} | {pb.median():+.1%} | {pb.min():+.1%} | "
                     f"{int((pa <= -0.99 + 1e-9).sum())} | {pa.median():+.1%} | {pa.min():+.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stress_model", description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default="", help="where the databases go (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--only", choices=("demo", "S", "sp500"), action="append", help="only these sets")
    args = p.parse_args(argv)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sigmabatch-stress-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sets = args.only or ["sp500", "demo", "S"]
    try:
        for name in sets:
            if name == "sp500":
                df = sp500_book()
                title = "sp500: a long S&P 500 book (arch's 2018 closes, synthetic styles and TLT), 63 sessions"
            elif name == "demo":
                url, cache = demo_db(workdir / "demo")
                df = before_after(read_books(url, cache, last_only=False))
                title = "demo: the five demo portfolios, 21 sessions"
            else:
                url, cache = bench_s_db(workdir / "S")
                df = before_after(read_books(url, cache, last_only=True))
                title = "S: the bench's S universe (100 books) and their 100 long-only unlevered twins, last session"
            (workdir / f"{name}.csv").parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(workdir / f"{name}.csv", index=False)
            print(f"\n#### {title}\n\ncorrelated / direct, books × sessions with |direct| ≥ 0.1 % of equity:\n")
            print(ratio_table(df))
            print()
            print(cap_table(df))
            sys.stdout.flush()
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n(generated by `python -m bench.stress_model` on {date.today().isoformat()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
