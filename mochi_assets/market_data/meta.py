"""Ticker metadata (tick size, asset class, timezone, trading session) and its documented fallbacks.

Polygon's reference data (`/v3/reference/tickers/{ticker}`) gives the market (`stocks`, `otc`,
`fx`, `crypto`, `indices`), the name and the currencies, but no tick size. What it lacks comes from
this table, chosen by market (or, without reference data, by the ticker's prefix: `C:` forex,
`X:` crypto, `I:` index, anything else a US stock):

| asset class | tick size                         | session calendar (sessions.py)                         |
|-------------|-----------------------------------|--------------------------------------------------------|
| stocks, otc | 0.01 (US minimum increment >= $1) | `us-equity`: 09:30-16:00 New York, Mon-Fri             |
| forex       | 0.00001; 0.001 when JPY is quoted | `forex`: Sunday 17:00 to Friday 17:00 New York         |
| metals      | 0.01 (XAU, XAG, XPT, XPD pairs)   | `forex`                                                |
| crypto      | 0.01                              | `crypto`: 24x7, UTC days                               |
| indices     | 0.01                              | `us-equity`                                            |

The timezone is the calendar's. A request's `tick_size` overrides the tick size in every case,
and its `session` the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass

from mochi_assets.market_data.sessions import default_session

METALS = ("XAU", "XAG", "XPT", "XPD")

_TICK_SIZES = {"stocks": 0.01, "forex": 0.00001, "metals": 0.01, "crypto": 0.01, "indices": 0.01}
_MARKETS = {"stocks": "stocks", "otc": "stocks", "fx": "forex", "crypto": "crypto", "indices": "indices"}


@dataclass(frozen=True)
class TickerInfo:
    """What the ticker meta table says about an instrument, and where it came from."""

    tick_size: float
    timezone: str  # the instrument's own zone
    asset_class: str
    trading_session: str
    name: str | None = None
    meta_source: str = "fallback"  # "polygon reference", "fallback (ticker prefix)", "import", "synthetic"


def asset_class_of(ticker: str, market: str | None = None) -> str:
    """stocks | forex | metals | crypto | indices, from the reference market or else the ticker prefix."""
    symbol = ticker.upper()
    klass = _MARKETS.get((market or "").lower())
    if klass is None:
        prefix = symbol.split(":", 1)[0] if ":" in symbol else ""
        klass = {"C": "forex", "X": "crypto", "I": "indices"}.get(prefix, "stocks")
    if klass == "forex" and symbol.removeprefix("C:")[:3] in METALS:
        return "metals"
    return klass


def fallback_info(ticker: str, market: str | None = None, name: str | None = None,
                  meta_source: str = "fallback (ticker prefix)") -> TickerInfo:
    """TickerInfo from the table of the module docstring."""
    klass = asset_class_of(ticker, market)
    tick = _TICK_SIZES[klass]
    if klass == "forex" and ticker.upper().removeprefix("C:")[3:6] == "JPY":
        tick = 0.001
    calendar = default_session(klass, "UTC")
    return TickerInfo(tick_size=tick, timezone=calendar.timezone, asset_class=klass,
                      trading_session=calendar.describe(), name=name, meta_source=meta_source)


def polygon_info(ticker: str, reference: dict | None) -> TickerInfo:
    """TickerInfo from Polygon reference `results` (None: the ticker prefix decides)."""
    if not reference:
        return fallback_info(ticker)
    return fallback_info(
        ticker,
        market=reference.get("market"),
        name=reference.get("name"),
        meta_source="polygon reference",
    )
