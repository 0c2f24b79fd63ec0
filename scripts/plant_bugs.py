"""Plant the bugs of issue 20 one at a time and report which tests catch each (not collected by pytest).

For every bug: a fresh copy of the repository's tracked files in a temporary folder, one text substitution
in one source file (the original text must occur exactly once), then the relevant tests run in that copy
(``python -m pytest``, this interpreter, the copy first on ``PYTHONPATH``). A bug is *caught* when at least
one test fails; the failing test ids are listed. Run it niced, one bug after another::

    nice .venv/bin/python scripts/plant_bugs.py            # all bugs, a Markdown table at the end
    nice .venv/bin/python scripts/plant_bugs.py ir-beta    # only the bugs whose id contains "ir-beta"

Exit code 1 when a bug survives (no test failed) or a substitution no longer applies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORACLE = "tests/oracle"
PLANNING = "tests/phases/test_planning_calendar.py"
NIGHTLY = "tests/workflows/test_nightly_sequence.py"
DAG = "tests/workflows/test_dag_data.py"
STRESS = "tests/analytics/test_stress.py"


@dataclass(frozen=True)
class Bug:
    id: str
    what: str  # the wording
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS: tuple[Bug, ...] = (
    Bug("pnl-inception-equity", "phase 3 starts from the inception equity instead of the previous snapshot's equity",
        "phases/pnl_snapshots.py", 'state.loc[has, "equity"] = prev.loc[ids, "equity_balance"].to_numpy()',
        'state.loc[has, "equity"] = state.loc[has, "equity"].to_numpy()', (NIGHTLY, ORACLE)),
    Bug("ir-beta-from-market", "the position IR beta is the market beta (the view of migration 0007)",
        "shared/storage/migrations/versions/0007_per_symbol_facts_views.py", '"IR Beta", "calculation_date",',
        '"Market Beta (90D)", "calculation_date",', (ORACLE,)),
    Bug("vol-window-early", "6b's volatility window ends one session before the calculation date",
        "phases/risk_volatility.py", "window = returns.iloc[max(1, end - WINDOW + 1): end + 1]",
        "window = returns.iloc[max(1, end - WINDOW): end]", (ORACLE,)),
    Bug("symbol-vol-window-early", "6b's symbol volatility windows end one session before the calculation date",
        "shared/analytics/volatility.py", "offsets = np.arange(-window + 1, 1)", "offsets = np.arange(-window, 0)",
        (ORACLE, "tests/analytics/test_volatility.py")),
    Bug("ewma-window-early", "6d's EWMA window ends one session before the calculation date",
        "phases/stress_tests.py", "window = fret.iloc[max(0, end - COVARIANCE_SESSIONS + 1): end + 1]",
        "window = fret.iloc[max(0, end - COVARIANCE_SESSIONS): end]", (ORACLE,)),
    Bug("corr-window-89", "6c's correlation window is 89 sessions instead of 90",
        "phases/risk_correlations.py", "window = logret.iloc[max(1, end - WINDOW + 1): end + 1]",
        "window = logret.iloc[max(1, end - WINDOW + 2): end + 1]", (ORACLE,)),
    Bug("ridge-alpha-0", "the ridge regressions run with α = 0 while 1.0 is reported",
        "shared/analytics/symbol_betas.py", "alpha=RIDGE_ALPHA, cap=BETA_CAP", "alpha=0.0, cap=BETA_CAP", (ORACLE,)),
    Bug("best-is-min", "the stress summary's best P&L is the minimum",
        "shared/analytics/stress.py", '"best_pnl": c.max(),', '"best_pnl": c.min(),', (ORACLE, STRESS)),
    Bug("cap-flag-direct-only", "the loss-cap flag ignores the correlated P&L",
        "shared/analytics/stress.py", "capped = (direct < floor) | (correlated < floor)", "capped = direct < floor",
        (STRESS, ORACLE)),
    Bug("cap-at-zero-equity", "a loss cap at zero equity caps every loss at $0",
        "shared/analytics/stress.py", "floor = np.where(eq > 0, -loss_cap * eq, -np.inf)",
        "floor = np.where(eq >= 0, -loss_cap * eq, -np.inf)", (STRESS, ORACLE)),
    Bug("top10-sums-11", "top-10 concentration sums 11 positions",
        "shared/analytics/concentration.py", 'per_sym["w_top10"] = np.where(rank < 10, w, 0.0)',
        'per_sym["w_top10"] = np.where(rank < 11, w, 0.0)', (ORACLE,)),
    Bug("mtd-from-first", "MTD is measured from the 1st of the month instead of the prior month-end",
        "shared/analytics/metrics.py", '"return_mtd": _row_on_or_before(idx, cd.to_period("M").start_time - '
        'pd.Timedelta(days=1)),', '"return_mtd": _row_on_or_before(idx, cd.to_period("M").start_time),', (ORACLE,)),
    Bug("stale-limit-off-by-one", "the stale-price limit is off by one",
        "shared/analytics/metrics.py", "np.arange(n_rows)[:, None] - last >= MAX_STALE_SESSIONS",
        "np.arange(n_rows)[:, None] - last > MAX_STALE_SESSIONS", (ORACLE,)),
    Bug("highest-watermark", "missed-session detection uses the highest watermark instead of the lowest",
        "shared/planning.py", "return calendar.next_session(min(lasts))", "return calendar.next_session(max(lasts))",
        (PLANNING, NIGHTLY)),
    Bug("completed-before-close", "a session counts as completed before its close",
        "shared/calendar.py", "+ timedelta(minutes=SETTLE_MINUTES)", "- timedelta(minutes=SETTLE_MINUTES)",
        (PLANNING,)),
    Bug("weekend-rows-kept", "price validation keeps rows dated on weekends/holidays",
        "shared/validation.py", "    df = df[on_session]\n", "", (PLANNING,)),
    Bug("dag-edge-dropped", "the symbol-factors -> risk-exposures edge is dropped (and the YAML re-rendered)",
        "workflows/dag.py", '"phases.risk_exposures", ("symbol-factors", "pnl-snapshots", "company-profiles"),',
        '"phases.risk_exposures", ("pnl-snapshots", "company-profiles"),', (DAG,)),
)


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target)


def plant(bug: Bug) -> tuple[bool, list[str], float, str]:
    """(caught, failing test ids, seconds, note)."""
    with tempfile.TemporaryDirectory(prefix=f"plant-{bug.id}-") as tmp:
        root = Path(tmp)
        copy_repo(root)
        src = root / bug.path
        text = src.read_text()
        if text.count(bug.old) != 1:
            return False, [], 0.0, f"substitution does not apply ({text.count(bug.old)} matches)"
        src.write_text(text.replace(bug.old, bug.new))
        if bug.id == "dag-edge-dropped":  # as the issue did: re-render the committed YAML from the broken DAG
            subprocess.run([sys.executable, "-m", "workflows.argo", "render", "--out", "charts/sigmabatch/files"],
                           cwd=root, env={**_env(root)}, check=True, capture_output=True)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *bug.tests],
                              cwd=root, env=_env(root), capture_output=True, text=True)
        seconds = time.monotonic() - t0
        failed = sorted({m.group(1) for m in re.finditer(r"^FAILED (\S+)", proc.stdout, re.M)})
        errors = sorted({m.group(1) for m in re.finditer(r"^ERROR (\S+)", proc.stdout, re.M)})
        note = "" if proc.returncode in (0, 1) else f"pytest exit {proc.returncode}: {proc.stdout[-400:]}"
        return bool(failed), failed + [f"{e} (error)" for e in errors], seconds, note


def _env(root: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGMABATCH_")}
    env["PYTHONPATH"] = str(root)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def main(argv: list[str]) -> int:
    bugs = [b for b in BUGS if not argv or any(a in b.id for a in argv)]
    rows, survived = [], 0
    for bug in bugs:
        caught, failed, seconds, note = plant(bug)
        survived += not caught
        shown = ", ".join(f"`{Path(f.split('::', 1)[0]).name}::{f.split('::', 1)[1]}`" if "::" in f else f"`{f}`"
                          for f in failed[:4])
        if len(failed) > 4:
            shown += f" (+{len(failed) - 4} more)"
        rows.append(f"| {bug.what} | `{bug.path}` | {'caught' if caught else '**NOT CAUGHT**'} | {shown or note} |")
        print(f"{bug.id}: {'caught' if caught else 'NOT CAUGHT'} in {seconds:.0f}s by {failed or note}", flush=True)
    print()
    print("| planted bug | file | result | failing tests |")
    print("|---|---|---|---|")
    print("\n".join(rows))
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
