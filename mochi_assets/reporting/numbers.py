"""Numbers as a reader sees them: labels formatted to the magnitude of the values shown together."""

from __future__ import annotations

import math
from collections.abc import Iterable


def value_labels(values: Iterable[float | None], significant: int = 3) -> list[str]:
    """Labels for numbers shown together, with one number of decimals for all of them.

    The decimals give the largest magnitude ``significant`` significant digits (none from 100 up;
    thousands separators from 1,000 up), so 0.0042 and -0.0011 read "0.00420" and "-0.00110",
    1234.5 reads "1,235" and 3.14159 reads "3.14". Nulls and non-finite values read "-"; all
    zeros "0".
    """
    numbers = [float("nan") if v is None else float(v) for v in values]
    largest = max((abs(v) for v in numbers if math.isfinite(v)), default=0.0)
    decimals = 0 if largest == 0.0 else max(0, significant - 1 - math.floor(math.log10(largest)))
    return [f"{v:,.{decimals}f}" if math.isfinite(v) else "-" for v in numbers]
