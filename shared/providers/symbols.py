"""Pure symbol helpers: normalisation, the phase-1 skip rules (domain spec §3.1), provider spellings."""

from __future__ import annotations

import math
import re

#: Synthetic / private position names that never have market data.
SKIPPED_NAMES: frozenset[str] = frozenset({
    "HOME_EQUITY", "TREASURY_BILLS", "CRYPTO_BTC_ETH", "TWO_SIGMA_FUND", "A16Z_VC_FUND", "STARWOOD_REIT",
    "BX_PRIVATE_EQUITY", "RENTAL_SFH", "ART_COLLECTIBLES", "RENTAL_CONDO", "MONEY_MARKET", "EQ5D6A2D8F",
})
SKIPPED_PREFIXES: tuple[str, ...] = ("FO_", "EQ_")

#: OCC option symbol tail: YYMMDD, C or P, 8-digit strike (e.g. ``AAPL250117C00150000``).
_OCC_TAIL = re.compile(r"\d{6}[CP]\d{8}$")
#: What a listed ticker can look like (``AAPL``, ``BRK.B``, ``BF-B``, ``^VIX``): anything else is not asked for.
_TICKER = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-]{0,11}$")


def normalize_symbol(symbol: object) -> str:
    """Trimmed upper case (``" brk.b "`` -> ``"BRK.B"``); ``None``, NaN and ``pd.NA`` -> ``""`` (not ``"NAN"``)."""
    if symbol is None or (isinstance(symbol, float) and math.isnan(symbol)) or _is_pandas_na(symbol):
        return ""
    return str(symbol).strip().upper()


def _is_pandas_na(value: object) -> bool:
    return type(value).__name__ in ("NAType", "NaTType")


def is_option_symbol(symbol: object) -> bool:
    """True when the symbol ends like an OCC option symbol (YYMMDD + C/P + 8-digit strike)."""
    s = normalize_symbol(symbol)
    return len(s) >= 15 and _OCC_TAIL.search(s) is not None


def is_skipped_symbol(symbol: object) -> bool:
    """True for symbols phase 1 never fetches: empty, synthetic/private names, FO_/EQ_ prefixes, options."""
    s = normalize_symbol(symbol)
    return not s or s in SKIPPED_NAMES or s.startswith(SKIPPED_PREFIXES) or is_option_symbol(s)


def is_plausible_symbol(symbol: object) -> bool:
    """True when the symbol can be a listed ticker (letters, digits, ``.``/``-``, at most 12 characters)."""
    return _TICKER.match(normalize_symbol(symbol)) is not None


def yahoo_symbol(symbol: str) -> str:
    """Yahoo spelling of a provider-neutral symbol (``BRK.B`` -> ``BRK-B``)."""
    return normalize_symbol(symbol).replace(".", "-")
