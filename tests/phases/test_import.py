"""`sigmabatch import`: bad rows are named by file, line and field; a bad file imports nothing."""

from __future__ import annotations

from datetime import date

import pytest

from shared.errors import BadInputError
from shared.importer import import_files
from shared.storage import models as m
from shared.storage import repository as repo
from shared.storage.db import transaction

PORTFOLIOS = "portfolio,equity_balance,currency\nalpha,100000,USD\nbeta,50000,usd\n"
POSITIONS = (
    "portfolio,symbol,quantity,entry_price,entry_date,exit_date,exit_price,position_type\n"
    "alpha,aapl,10,150,2026-01-05,,,\n"
    "alpha,MSFT,-5,300,2026-01-05,2026-02-02,310,\n"
    "beta,AAPL  261218C00150000,2,4.5,2026-01-06,,,LC\n"
)


def _stored(engine) -> tuple:
    with transaction(engine) as s:
        pf = repo.load_portfolios(s, active_only=False).drop(columns=["created_at"], errors="ignore")
        pos = repo.load_positions(s).drop(columns=["created_at", "updated_at"], errors="ignore")
        flows = repo.read_frame(s, m.EquityChange.__table__.select())
    return tuple(f.to_json(date_format="iso") for f in (pf, pos, flows))


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_import_and_reimport_is_a_no_op(engine, tmp_path):
    pf, pos = write(tmp_path, "p.csv", PORTFOLIOS), write(tmp_path, "q.csv", POSITIONS)
    with transaction(engine) as s:
        summary = import_files(s, pf, pos)
    assert (summary.portfolios, summary.positions, summary.unchanged) == (2, 3, 0)
    before = _stored(engine)
    with transaction(engine) as s:
        summary = import_files(s, pf, pos)
    assert (summary.portfolios, summary.positions, summary.unchanged, summary.updated) == (0, 0, 5, 0)
    assert _stored(engine) == before
    with transaction(engine) as s:
        positions = repo.load_positions(s).set_index("symbol")
    assert len(positions) == 3
    assert positions.loc["AAPL", "position_type"] == "LONG"
    assert positions.loc["MSFT", "position_type"] == "SHORT"
    opt = positions.loc["AAPL  261218C00150000"]
    assert opt.investment_class == "OPTIONS" and opt.underlying_symbol == "AAPL"


@pytest.mark.parametrize(("bad_row", "expected"), [
    ("alpha,AAPL,abc,150,2026-01-05,,,", "q.csv line 2, field quantity: 'abc' is not a number"),
    ("alpha,AAPL,10,-1,2026-01-05,,,", "q.csv line 2, field entry_price: -1 must be greater than 0"),
    ("alpha,AAPL,10,150,05/01/2026,,,", "q.csv line 2, field entry_date: '05/01/2026' is not a date"),
    ("gamma,AAPL,10,150,2026-01-05,,,", "q.csv line 2, field portfolio: unknown portfolio 'gamma'"),
    ("alpha,AAPL,10,150,2026-01-05,2026-01-01,,", "q.csv line 2, field exit_date: 2026-01-01 is before entry_date"),
    ("alpha,AAPL,-10,150,2026-01-05,,,LONG", "q.csv line 2, field quantity: -10 has the wrong sign for a LONG"),
    ("alpha,AAPL,10,150,2026-01-05,,,XYZ", "q.csv line 2, field position_type: 'XYZ' is not one of"),
    ("alpha,AAPL,10,150", "q.csv line 2, field *: expected 8 fields, found 4 (truncated or malformed row)"),
    ("alpha,,10,150,2026-01-05,,,", "q.csv line 2, field symbol: a symbol is required"),
    ("alpha,AAPL,1e30,175,2026-01-05,,,", "q.csv line 2, field quantity: 1e+30 x 175 is a notional of 1.75e+32, above"),
    ("alpha,AAPL,10,150,1900-01-02,,,", "q.csv line 2, field entry_date: 1900-01-02 is before 1990-01-02, the first "
     "session of the trading calendar"),
    ("alpha,AAPL,nan,150,2026-01-05,,,", "q.csv line 2, field quantity: 'nan' is not finite"),
])
def test_bad_position_rows_import_nothing(engine, tmp_path, bad_row, expected):
    pf = write(tmp_path, "p.csv", PORTFOLIOS)
    header, *good = POSITIONS.strip().splitlines()
    pos = write(tmp_path, "q.csv", "\n".join([header, bad_row, *good]) + "\n")
    with pytest.raises(BadInputError) as err, transaction(engine) as s:
        import_files(s, pf, pos)
    assert expected in str(err.value)
    with transaction(engine) as s:
        assert repo.load_portfolios(s, active_only=False).empty
        assert repo.load_positions(s).empty


@pytest.mark.parametrize(("text", "expected"), [
    ("portfolio,equity_balance\nalpha,0\n", "p.csv line 2, field equity_balance: 0 must be greater than 0"),
    ("portfolio,equity_balance\nalpha,1\nalpha,2\n", "p.csv line 3, field portfolio: 'alpha' already defined on line 2"),
    ("portfolio,equity\nalpha,1\n", "missing required column(s) equity_balance"),
    ("", "the file is empty"),
])
def test_bad_portfolio_files(engine, tmp_path, text, expected):
    pf = write(tmp_path, "p.csv", text)
    with pytest.raises(BadInputError) as err, transaction(engine) as s:
        import_files(s, pf, None)
    assert expected in str(err.value)


def test_reimport_with_another_equity_or_name_is_refused_and_writes_nothing(engine, tmp_path):
    """Issue 14: a re-import that would change a stored portfolio (inception equity, name, currency) or lot
    is refused, naming the portfolio, the field, the stored and the new value."""
    pf, pos = write(tmp_path, "p.csv", PORTFOLIOS), write(tmp_path, "q.csv", POSITIONS)
    with transaction(engine) as s:
        import_files(s, pf, pos)
    before = _stored(engine)
    changed = write(tmp_path, "p2.csv", "portfolio,equity_balance,currency,name\nalpha,123,USD,Alpha fund\n"
                                        "beta,50000,EUR,beta\n")
    with pytest.raises(BadInputError) as err, transaction(engine) as s:
        import_files(s, changed, None)
    msg = str(err.value)
    assert "import refused, nothing was written" in msg
    assert "portfolio 'alpha': equity_balance is 100000.0 in the database, 123.0 in the file" in msg
    assert "portfolio 'alpha': name is 'alpha' in the database, 'Alpha fund' in the file" in msg
    assert "portfolio 'beta': currency is 'USD' in the database, 'EUR' in the file" in msg
    lot = write(tmp_path, "q2.csv", POSITIONS.replace("alpha,aapl,10,150", "alpha,aapl,12,150"))
    with pytest.raises(BadInputError) as err, transaction(engine) as s:
        import_files(s, None, lot)
    assert "lot 'alpha' AAPL LONG entered 2026-01-05: quantity is 10.0 in the database, 12.0 in the file" in str(err.value)
    assert _stored(engine) == before


def test_reimport_with_update_keeps_inception_equity_and_records_a_capital_flow(engine, tmp_path):
    pf = write(tmp_path, "p.csv", PORTFOLIOS)
    with transaction(engine) as s:
        import_files(s, pf, None)
    changed = write(tmp_path, "p2.csv", "portfolio,equity_balance,currency,name\nalpha,150000,USD,Alpha fund\n")
    with transaction(engine) as s:
        summary = import_files(s, changed, None, update=True, flow_date=date(2026, 3, 2))
    assert (summary.updated, summary.capital_flows) == (1, 1)
    assert "capital flow of +50,000.00 on 2026-03-02" in summary.notes[0]
    with transaction(engine) as s:
        alpha = repo.load_portfolios(s, "alpha").iloc[0]
        flows = repo.load_equity_changes(s, ["alpha"], date(2026, 1, 1), date(2026, 12, 31))
    assert alpha["equity_balance"] == 100_000.0 and alpha["name"] == "Alpha fund"  # inception equity kept
    assert flows[["change_date", "amount"]].astype(str).values.tolist() == [["2026-03-02", "50000.0"]]
