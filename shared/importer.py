"""``sigmabatch import``: portfolios and positions from CSV, all or nothing.

Portfolios: ``portfolio,equity_balance[,currency,name]``. Positions:
``portfolio,symbol,quantity,entry_price,entry_date[,exit_date,exit_price,position_type,investment_class]``.
Quantities are signed (short < 0); the type defaults from the sign (LONG/SHORT) and, when given, must
agree with it (LC/LP long, SC/SP short options, multiplier 100). Every bad row is reported with its
file, line and field, and a file with any bad row imports nothing. Amounts are bounded by
:data:`MAX_AMOUNT` (1e12): a portfolio's ``equity_balance`` and a lot's notional |quantity x entry_price x
multiplier|; entry and exit dates lie between the calendar's first session (1990-01-02) and today.

Re-import is safe: a portfolio or lot (keyed by portfolio, symbol, type and entry date) that exists with
identical values is left alone; one that differs is refused (nothing written, the message names the
portfolio or lot, the field, the stored and the new value) unless ``update=True``. Even then the past is not
rewritten: a new inception equity is recorded as a dated capital flow (``equity_changes``, the difference
on ``flow_date``) and the stored inception equity stays; a new name or currency is updated; a changed lot
is updated (its history must be recomputed from its entry date: ``sigmabatch run --start-date … --force``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from shared.analytics.factors import OPTION_TYPES, POSITION_TYPES
from shared.errors import BadInputError
from shared.providers.symbols import normalize_symbol
from shared.storage import models as m
from shared.storage import repository as repo

PORTFOLIO_REQUIRED = ("portfolio", "equity_balance")
POSITION_REQUIRED = ("portfolio", "symbol", "quantity", "entry_price", "entry_date")
INVESTMENT_CLASSES = ("PUBLIC", "OPTIONS", "PRIVATE")
MAX_REPORTED = 25
#: The largest amount an import accepts, in the portfolio's currency: a portfolio's equity_balance, and a
#: lot's notional |quantity x entry_price x multiplier| (100 for options). One trillion: far above any
#: real book, far below the point where sums of such lots lose meaning (documented in the README).
MAX_AMOUNT = 1e12
OPTION_MULTIPLIER = 100


@dataclass
class ImportSummary:
    portfolios: int  # new portfolios written
    positions: int  # new lots written
    unchanged: int = 0  # portfolios and lots already stored with the same values
    updated: int = 0  # portfolios and lots updated (``update=True``)
    capital_flows: int = 0  # equity changes recorded for a new inception equity (``update=True``)
    notes: tuple[str, ...] = ()


class _Errors(list):
    def add(self, file: str, line: int, field: str, msg: str) -> None:
        self.append(f"{file} line {line}, field {field}: {msg}")

    def raise_if_any(self) -> None:
        if self:
            more = f"\n… and {len(self) - MAX_REPORTED} more" if len(self) > MAX_REPORTED else ""
            raise BadInputError("import rejected, nothing was written:\n  " + "\n  ".join(self[:MAX_REPORTED]) + more)


def read_text_file(path: Path) -> str:
    """The file's text (UTF-8, an optional BOM), or a one-line :class:`BadInputError` saying why not."""
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder, not a CSV file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BadInputError(f"{path}: is UTF-16 text; save the file as UTF-8 CSV")
    if b"\x00" in raw[:8192]:
        raise BadInputError(f"{path}: is a binary file, not a CSV text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadInputError(f"{path} line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                            f"{exc.start}); save the file as UTF-8 CSV") from None


def _read(path: Path, required: tuple[str, ...], errors: _Errors) -> list[tuple[int, dict[str, str]]]:
    text = read_text_file(path)
    if not text.strip():
        raise BadInputError(f"{path}: the file is empty")
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise BadInputError(f"{path} line 1: unreadable header ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise BadInputError(f"{path} line 1: missing required column(s) {', '.join(missing)} (found {', '.join(header)})")
    rows = []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                errors.add(path.name, line, "*", f"expected {len(header)} fields, found {len(fields)} "
                           "(truncated or malformed row)")
                continue
            rows.append((line, {h: f.strip() for h, f in zip(header, fields, strict=True)}))
    except csv.Error as exc:
        errors.add(path.name, reader.line_num, "*", f"malformed CSV: {exc}")
    if not text.endswith("\n") and rows and len(rows[-1][1]) != len(header):
        errors.add(path.name, rows[-1][0], "*", "file ends in the middle of a row (truncated)")
    return rows


def _num(value: str, file: str, line: int, field: str, errors: _Errors, *, positive: bool = False,
         nonzero: bool = False) -> float | None:
    try:
        x = float(value.replace(",", "")) if value else math.nan
    except ValueError:
        errors.add(file, line, field, f"{value!r} is not a number")
        return None
    if not math.isfinite(x):
        errors.add(file, line, field, "a number is required" if not value else f"{value!r} is not finite")
        return None
    if positive and x <= 0:
        errors.add(file, line, field, f"{value} must be greater than 0")
        return None
    if nonzero and x == 0:
        errors.add(file, line, field, "must not be 0")
        return None
    return x


def _date(value: str, file: str, line: int, field: str, errors: _Errors, *, required: bool) -> date | None:
    if not value:
        if required:
            errors.add(file, line, field, "a date (YYYY-MM-DD) is required")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.add(file, line, field, f"{value!r} is not a date (YYYY-MM-DD)")
        return None


def parse_portfolios(path: Path, errors: _Errors) -> pd.DataFrame:
    rows, out, seen = _read(path, PORTFOLIO_REQUIRED, errors), [], {}
    for line, r in rows:
        pid = r["portfolio"]
        if not pid:
            errors.add(path.name, line, "portfolio", "an id is required")
            continue
        if pid in seen:
            errors.add(path.name, line, "portfolio", f"{pid!r} already defined on line {seen[pid]}")
            continue
        seen[pid] = line
        eq = _num(r["equity_balance"], path.name, line, "equity_balance", errors, positive=True)
        if eq is not None and eq > MAX_AMOUNT:
            errors.add(path.name, line, "equity_balance", f"{eq:g} is above the limit of {MAX_AMOUNT:g}")
            eq = None
        cur = (r.get("currency") or "USD").upper()
        if len(cur) != 3 or not cur.isalpha():
            errors.add(path.name, line, "currency", f"{cur!r} is not a 3-letter currency code")
        out.append({"id": pid, "name": r.get("name") or pid, "equity_balance": eq, "currency": cur,
                    "is_active": True})
    return pd.DataFrame(out)


def _date_bounds(d: date | None, file: str, line: int, field: str, errors: _Errors, today: date | None) -> None:
    """Refuse a date the calendar does not cover, or one in the future."""
    if d is None:
        return
    from shared import calendar

    first = calendar.first_session()
    if d < first:
        errors.add(file, line, field, f"{d} is before {first}, the first session of the trading calendar")
    elif today is not None and d > today:
        errors.add(file, line, field, f"{d} is in the future (today is {today})")


def parse_positions(path: Path, known_portfolios: set[str], errors: _Errors, today: date | None = None) -> pd.DataFrame:
    """``today``: entry and exit dates after it are refused (``None``: not checked)."""
    rows, out, seen = _read(path, POSITION_REQUIRED, errors), [], {}
    f = path.name
    for line, r in rows:
        pid = r["portfolio"]
        if pid not in known_portfolios:
            errors.add(f, line, "portfolio", f"unknown portfolio {pid!r}")
        symbol = normalize_symbol(r["symbol"])
        if not symbol:
            errors.add(f, line, "symbol", "a symbol is required")
        qty = _num(r["quantity"], f, line, "quantity", errors, nonzero=True)
        px = _num(r["entry_price"], f, line, "entry_price", errors, positive=True)
        entry = _date(r["entry_date"], f, line, "entry_date", errors, required=True)
        exit_d = _date(r.get("exit_date", ""), f, line, "exit_date", errors, required=False)
        exit_px = _num(r["exit_price"], f, line, "exit_price", errors, positive=True) if r.get("exit_price") else None
        if exit_px is not None and exit_d is None:
            errors.add(f, line, "exit_date", "exit_price is given but exit_date is missing")
        _date_bounds(entry, f, line, "entry_date", errors, today)
        _date_bounds(exit_d, f, line, "exit_date", errors, today)
        if entry and exit_d and exit_d < entry:
            errors.add(f, line, "exit_date", f"{exit_d} is before entry_date {entry}")
        ptype = (r.get("position_type") or "").upper()
        if qty is not None:
            if not ptype:
                ptype = "LONG" if qty > 0 else "SHORT"
            elif ptype not in POSITION_TYPES:
                errors.add(f, line, "position_type", f"{ptype!r} is not one of {', '.join(sorted(POSITION_TYPES))}")
            elif (ptype in ("LONG", "LC", "LP")) != (qty > 0):
                errors.add(f, line, "quantity", f"{qty:g} has the wrong sign for a {ptype} position")
        if qty is not None and px is not None:
            notional = abs(qty) * px * (OPTION_MULTIPLIER if ptype in OPTION_TYPES else 1)
            if notional > MAX_AMOUNT:
                errors.add(f, line, "quantity", f"{qty:g} x {px:g} is a notional of {notional:.3g}, above the "
                           f"limit of {MAX_AMOUNT:g}")
        iclass = (r.get("investment_class") or ("OPTIONS" if ptype in OPTION_TYPES else "PUBLIC")).upper()
        if iclass not in INVESTMENT_CLASSES:
            errors.add(f, line, "investment_class", f"{iclass!r} is not one of {', '.join(INVESTMENT_CLASSES)}")
        key = (pid, symbol, ptype, entry)
        if key in seen:
            errors.add(f, line, "*", f"duplicate lot of line {seen[key]} (same portfolio, symbol, type, entry date)")
        seen[key] = line
        out.append({"portfolio_id": pid, "symbol": symbol, "position_type": ptype, "investment_class": iclass,
                    "quantity": qty, "entry_price": px, "entry_date": entry, "exit_date": exit_d,
                    "exit_price": exit_px, "underlying_symbol": _underlying(symbol) if ptype in OPTION_TYPES else None})
    return pd.DataFrame(out)


def _underlying(symbol: str) -> str | None:
    """The root of an OCC option symbol (``AAPL  261218C00150000`` -> ``AAPL``)."""
    s = symbol.replace(" ", "")
    return s[:-15] if len(s) > 15 and s[-9] in "CP" and s[-8:].isdigit() and s[-15:-9].isdigit() else None


PORTFOLIO_FIELDS = ("equity_balance", "currency", "name")
POSITION_FIELDS = ("quantity", "entry_price", "exit_date", "exit_price", "investment_class", "underlying_symbol")
LOT_KEY = ("portfolio_id", "symbol", "position_type", "entry_date")


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return b is not None and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return a == b


def _changes(new: pd.DataFrame, stored: pd.DataFrame, keys: tuple[str, ...], fields: tuple[str, ...]):
    """Rows of ``new`` split into (unchanged keys, {key: [(field, stored, new)]}) against ``stored``."""
    old = {tuple(r[k] for k in keys): r for r in stored.to_dict("records")}
    unchanged, changed = [], {}
    for r in new.to_dict("records"):
        key = tuple(r[k] for k in keys)
        if key not in old:
            continue
        diff = [(f, old[key].get(f), r.get(f)) for f in fields if f in r and not _same(old[key].get(f), r.get(f))]
        if diff:
            changed[key] = diff
        else:
            unchanged.append(key)
    return unchanged, changed


def import_files(session: Session, portfolios: Path | None, positions: Path | None, *, update: bool = False,
                 flow_date: date | None = None, today: date | None = None) -> ImportSummary:
    """Validate both files completely, then write them in the caller's transaction (see the module doc).

    ``flow_date``: the date of the capital flow recorded when ``update`` changes an inception equity.
    ``today``: entry and exit dates after it are refused (the command passes the New York date).
    """
    errors = _Errors()
    pf = parse_portfolios(Path(portfolios), errors) if portfolios else pd.DataFrame()
    stored_pf = repo.load_portfolios(session, active_only=False)
    known = set(stored_pf["id"]) | set(pf.get("id", []))
    pos = parse_positions(Path(positions), known, errors, today) if positions else pd.DataFrame()
    errors.raise_if_any()
    same_pf, diff_pf = _changes(pf, stored_pf, ("id",), PORTFOLIO_FIELDS) if not pf.empty else ([], {})
    stored_pos = repo.load_positions(session, sorted(set(pos["portfolio_id"]))) if not pos.empty else pd.DataFrame()
    if not stored_pos.empty:
        stored_pos["entry_date"] = pd.to_datetime(stored_pos["entry_date"]).dt.date
        stored_pos["exit_date"] = [None if pd.isna(x) else pd.Timestamp(x).date() for x in stored_pos["exit_date"]]
    same_pos, diff_pos = _changes(pos, stored_pos, LOT_KEY, POSITION_FIELDS) \
        if not pos.empty and not stored_pos.empty else ([], {})
    if (diff_pf or diff_pos) and not update:
        lines = [f"portfolio {k[0]!r}: {f} is {old!r} in the database, {new!r} in the file"
                 for k, diff in diff_pf.items() for f, old, new in diff]
        lines += [f"lot {k[0]!r} {k[1]} {k[2]} entered {k[3]}: {f} is {old!r} in the database, {new!r} in the file"
                  for k, diff in diff_pos.items() for f, old, new in diff]
        more = f"\n  … and {len(lines) - MAX_REPORTED} more" if len(lines) > MAX_REPORTED else ""
        raise BadInputError("import refused, nothing was written: it would change what is stored:\n  "
                            + "\n  ".join(lines[:MAX_REPORTED]) + more
                            + "\n(re-import with --update to apply: a new equity becomes a dated capital flow, "
                              "the inception equity is kept)")
    existing_pf = set(stored_pf["id"])
    new_pf = pf[~pf["id"].isin(existing_pf)] if not pf.empty else pf
    stored_keys = {tuple(r) for r in stored_pos[list(LOT_KEY)].itertuples(index=False)} if not stored_pos.empty else set()
    new_pos = pos[[tuple(r) not in stored_keys for r in pos[list(LOT_KEY)].itertuples(index=False)]] \
        if not pos.empty else pos
    n_pf = repo.upsert(session, m.Portfolio, new_pf)
    n_pos = repo.upsert(session, m.Position, new_pos, conflict=LOT_KEY)
    flows, notes, updated = [], [], 0
    if update:
        for (pid,), diff in diff_pf.items():
            fields = {f: new for f, _, new in diff if f != "equity_balance"}
            eq = next(((old, new) for f, old, new in diff if f == "equity_balance"), None)
            if eq is not None:
                if flow_date is None:
                    raise BadInputError("a new inception equity needs the date of its capital flow")
                when = flow_date
                flows.append({"portfolio_id": pid, "change_date": when, "amount": float(eq[1]) - float(eq[0]),
                              "notes": f"re-import: equity {eq[0]:g} -> {eq[1]:g} (inception equity kept)"})
                notes.append(f"portfolio {pid!r}: equity {eq[0]:g} -> {eq[1]:g} recorded as a capital flow of "
                             f"{float(eq[1]) - float(eq[0]):+,.2f} on {when}")
            if fields:
                repo.bulk_update(session, m.Portfolio, pd.DataFrame([{"id": pid, **fields}]))
            updated += 1
        if diff_pos:
            changed = pos[[tuple(r) in diff_pos for r in pos[list(LOT_KEY)].itertuples(index=False)]]
            repo.upsert(session, m.Position, changed, conflict=LOT_KEY)
            updated += len(changed)
            first = min(k[3] for k in diff_pos)
            notes.append(f"{len(changed)} lot(s) updated: recompute their history with "
                         f"`sigmabatch run --start-date {first} --force`")
        if flows:
            repo.insert(session, m.EquityChange, pd.DataFrame(flows))
    return ImportSummary(n_pf, n_pos, unchanged=len(same_pf) + len(same_pos), updated=updated,
                         capital_flows=len(flows), notes=tuple(notes))
