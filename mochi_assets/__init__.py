"""Mochi: a backtest platform as a Dagster code location (see definitions.py)."""

import warnings

from mochi_assets.memory import fix_mmap_threshold
from mochi_resources.errors import MochiError

try:
    fix_mmap_threshold()
except MochiError as exc:  # `mochi backtest` refuses such a value with its one-line error
    warnings.warn(f"{exc}; glibc's default mmap threshold stays", stacklevel=1)
