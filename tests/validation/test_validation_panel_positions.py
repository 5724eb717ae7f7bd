"""The panel's key lookup (trader ids, session dates) against a plain binary search."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mochi_assets.validation.panel import _positions


def _reference(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.searchsorted(sorted_values, values)
    if len(sorted_values) == 0:
        return pos, np.ones(len(values), dtype=bool)
    return pos, sorted_values[np.minimum(pos, len(sorted_values) - 1)] != values


@settings(max_examples=300, deadline=None)
@given(
    keys=st.sets(st.integers(-60, 60), max_size=25),
    picks=st.lists(st.integers(-90, 90), max_size=300),
    dtype=st.sampled_from([np.int64, np.int32]),
)
def test_same_positions_and_misses_as_a_binary_search(keys, picks, dtype):
    sorted_values = np.array(sorted(keys), dtype=dtype)
    values = np.array(picks, dtype=dtype)  # mostly over 4 per key: the lookup table path
    pos, missing = _positions(sorted_values, values)
    ref_pos, ref_missing = _reference(sorted_values, values)
    np.testing.assert_array_equal(missing, ref_missing)
    np.testing.assert_array_equal(pos, ref_pos)


def test_large_keys_and_wide_spans_take_the_search():
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 2**40, 50))  # spread far too wide for a table
    values = np.concatenate([rng.choice(keys, 500), rng.integers(0, 2**40, 100)])
    for got, want in zip(_positions(keys, values), _reference(keys, values)):
        np.testing.assert_array_equal(got, want)
