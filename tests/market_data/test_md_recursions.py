"""The first-order recursion gives the bits scipy.signal.lfilter gives."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import lfilter

from mochi_assets.market_data.recursions import first_order_filter

finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    x=arrays(np.float64, st.integers(1, 400), elements=finite),
    b0=st.floats(1e-6, 2.0),
    a1=st.floats(-0.999999, 0.999999),
    zi=finite,
)
def test_same_bits_as_lfilter(x, b0, a1, zi):
    expected = lfilter([b0], [1.0, a1], x, zi=[zi])[0]
    assert first_order_filter(b0, a1, x, zi).tobytes() == expected.tobytes()
    assert first_order_filter(b0, a1, x).tobytes() == lfilter([b0], [1.0, a1], x).tobytes()
