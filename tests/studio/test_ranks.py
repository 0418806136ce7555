"""The numpy Spearman of the explorer against scipy's (which the explorer no longer imports: 0.7 s at start)."""
import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from addrop.studio.explore.ranks import average_ranks, spearman_rows


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 4, 9), (1, 1)])
def test_average_ranks_match_scipy_with_ties(shape):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=shape).astype(np.float32)  # many ties
    np.testing.assert_array_equal(average_ranks(x), rankdata(x, axis=-1))
    y = rng.normal(size=shape)
    np.testing.assert_array_equal(average_ranks(y), rankdata(y, axis=-1))


def test_spearman_rows_match_scipy_row_by_row():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, size=(6, 11)).astype(float)
    b = a + rng.normal(scale=2.0, size=a.shape)
    b[2] = 3.0  # a constant row: undefined
    got = spearman_rows(a, b)
    for i in range(a.shape[0]):
        want = np.nan if i == 2 else spearmanr(a[i], b[i]).statistic
        np.testing.assert_allclose(got[i], want, rtol=1e-12, equal_nan=True)
    assert np.isnan(spearman_rows(a[:, :1], b[:, :1])).all()
