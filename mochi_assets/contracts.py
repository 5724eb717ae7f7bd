"""Column contracts (docs/strategy.md section 9, "Table columns") shared by several stages (defined once, imported everywhere)."""

# A trader's parameters, in the traders table's order after trader_id and scenario.
TRADER_PARAMETERS: tuple[str, ...] = (
    "direction",
    "entry_time",
    "offset_ticks",
    "stop_atr",
    "limit_atr",
    "duration_min",
    "timeout_min",
    "cost_ticks",
)
TRADER_COLUMNS: tuple[str, ...] = ("trader_id", "scenario", *TRADER_PARAMETERS)
