"""First-order linear recursions (Wilder's ATR, AR(1) paths) without scipy.signal.

``scipy.signal.lfilter`` costs nothing to run on a few thousand daily values, but importing
``scipy.signal`` imports ``scipy.stats`` too: about a second at the start of every `mochi` process.
The recursion here does what lfilter does for ``b = [b0]`` and ``a = [1, a1]``, operation for
operation in the same order (its direct form II transposed: output first, then the one delay), so
the results are the same bits; ``tests/market_data`` compares them with lfilter itself.
"""

from __future__ import annotations

import numpy as np


def first_order_filter(b0: float, a1: float, x: np.ndarray, zi: float = 0.0) -> np.ndarray:
    """``scipy.signal.lfilter([b0], [1.0, a1], x, zi=[zi])[0]``: y[n] = b0*x[n] - a1*y[n-1], with
    the delay before x[0] holding ``zi``."""
    values = np.asarray(x, dtype=np.float64).tolist()
    out = np.empty(len(values), dtype=np.float64)
    b0, a1, delay = float(b0), float(a1), float(zi)
    for i, value in enumerate(values):
        y = delay + b0 * value
        out[i] = y
        delay = value * 0.0 - y * a1  # lfilter's last delay: x*b[1] - y*a[1], with b[1] = 0
    return out
