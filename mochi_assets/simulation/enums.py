"""Codes, column layouts and constants shared by the simulation kernels (nb.py) and their API (api.py).

numba freezes these values into nb.py's cached machine code and its cache only notices edits to
nb.py itself: after changing a constant here, clear the cache (__pycache__/*.nbi, *.nbc).
"""

# Exit reasons: the kernel writes the code, the trades table holds the name.
EXIT_STOP = 0
EXIT_LIMIT = 1
EXIT_TIME = 2
EXIT_END = 3
EXIT_REASONS: tuple[str, ...] = ("stop", "limit", "time", "end")

# Direction codes of the trader parameter arrays.
LONG = 1
SHORT = -1

MICROS_PER_MINUTE = 60_000_000
MICROS_PER_DAY = 86_400_000_000

# The kernels emit trades as columns (struct-of-arrays): a float64 block with one row per name of
# FLOAT_COLUMNS and an int64 block with one row per name of INT_COLUMNS (timestamps as
# microseconds), beside int32 session days and int8 EXIT_* codes. F_* and I_* are the row numbers.
FLOAT_COLUMNS: tuple[str, ...] = ("entry_price", "exit_price", "pnl", "pnl_ticks", "r", "mae", "mfe")
F_ENTRY_PRICE, F_EXIT_PRICE, F_PNL, F_PNL_TICKS, F_R, F_MAE, F_MFE = range(len(FLOAT_COLUMNS))
INT_COLUMNS: tuple[str, ...] = ("entry_ts", "exit_ts", "bars_held")
I_ENTRY_TS, I_EXIT_TS, I_BARS_HELD = range(len(INT_COLUMNS))
