"""Tiny synthetic requests for the automation tests (seven weeks, short ATRs, small grids)."""

FAMILIES = {
    "breakout-long": {"direction": "long", "offset_ticks": [0, 10], "stop_atr": [1.0], "limit_atr": [1.0]},
    "breakout-short": {"direction": "short", "offset_ticks": [0, 10], "stop_atr": [1.0], "limit_atr": [1.0]},
    "fade-long": {"direction": "long", "offset_ticks": [-10], "stop_atr": [1.0], "limit_atr": [2.0]},
}


def small_request(scenarios: int = 2, short: int = 3) -> dict:
    """A SYN:GOLD request of about seven weeks with `scenarios` tiny scenario families."""
    return {
        "ticker": "SYN:GOLD",
        "start": "2024-03-01",
        "end": "2024-04-19",
        "atr": {"short": short, "long": 5, "alpha": 0.5},
        "entry_times": ["09:30"],
        "duration_min": 90,
        "scenarios": dict(list(FAMILIES.items())[:scenarios]),
    }
