"""Record dtypes and constants shared by the simulation kernels (nb.py) and their API (api.py).

numba freezes these values into nb.py's cached machine code and its cache only notices edits to
nb.py itself: after changing a constant here, clear the cache (__pycache__/*.nbi, *.nbc).
"""

import numpy as np

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

# One simulated trade as the kernel emits it: bar and session indices, not timestamps, so the
# kernel never sees dates or time zones; api.py turns indices into the trades table columns.
trade_dt = np.dtype(
    [
        ("trader", np.int64),  # row of the trader in its chunk
        ("session", np.int64),  # index into the valid-session arrays
        ("entry_idx", np.int64),  # bar index of the fill
        ("exit_idx", np.int64),  # bar index of the exit
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("exit_reason", np.int64),  # EXIT_* code
        ("pnl", np.float64),
        ("pnl_ticks", np.float64),
        ("r", np.float64),
        ("mae", np.float64),
        ("mfe", np.float64),
        ("ambiguous", np.bool_),  # the exit bar reached both levels and the stop-first rule decided
    ],
    align=True,
)
