"""Tails, quantiles, interval masses and truncated sampling."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jrec import dists


@pytest.mark.parametrize("dist,ref", [
    (distrax.Normal(0.5, 2.0), stats.norm(0.5, 2.0)),
    (distrax.Laplace(-1.0, 0.5), stats.laplace(-1.0, 0.5)),
    (distrax.Logistic(0.0, 1.5), stats.logistic(0.0, 1.5)),
    (distrax.Uniform(-2.0, 3.0), stats.uniform(-2.0, 5.0)),
    (dists.Triangular(0.0, 0.2, 1.0), stats.triang(0.2, 0.0, 1.0)),
    (distrax.Beta(2.0, 5.0), stats.beta(2.0, 5.0)),
])
def test_quantile_isf_sf(dist, ref):
    ps = np.array([1e-6, 1e-3, 0.1, 0.5, 0.9])
    np.testing.assert_allclose(np.asarray(dists.quantile(dist, jnp.asarray(ps, jnp.float32))),
                               ref.ppf(ps), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(dists.isf(dist, jnp.asarray(ps, jnp.float32))),
                               ref.isf(ps), rtol=2e-4, atol=2e-5)
    xs = ref.ppf(np.array([0.01, 0.5, 0.999]))
    np.testing.assert_allclose(np.asarray(dists.sf(dist, jnp.asarray(xs, jnp.float32))), ref.sf(xs),
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("a,b", [(-1.0, 1.0), (0.3, 0.3001), (5.0, 5.01), (8.0, 9.0), (-9.0, -8.5),
                                 (-np.inf, -6.0), (6.5, np.inf), (2.0, 2.0 + 1e-5)])
def test_interval_mass_normal_relative_accuracy(a, b):
    d = distrax.Normal(0.0, 1.0)
    a, b = float(np.float32(a)), float(np.float32(b))  # the interval float32 can represent
    want = stats.norm.sf(a) - stats.norm.sf(b) if a > 0 else stats.norm.cdf(b) - stats.norm.cdf(a)
    got = float(dists.interval_mass(d, jnp.float32(a), jnp.float32(b)))
    assert got == pytest.approx(want, rel=3e-4)


def test_truncated_quantile_in_tail_is_exact_in_law():
    d = distrax.Normal(0.0, 1.0)
    a, b = 4.0, 6.0
    u = jax.random.uniform(jax.random.PRNGKey(1), (20000,))
    x = np.asarray(dists.truncated_quantile(d, jnp.float32(a), jnp.float32(b), u), np.float64)
    assert np.all((x >= a) & (x <= b))
    ref = stats.truncnorm(a, b)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3


def test_triangular_distribution():
    t = dists.Triangular(0.2, 0.45, 0.7)
    x = np.asarray(t.sample(seed=jax.random.PRNGKey(0), sample_shape=20000), np.float64)
    assert stats.kstest(x, stats.triang(0.5, loc=0.2, scale=0.5).cdf).pvalue > 1e-3
    assert float(t.log_prob(0.45)) == pytest.approx(np.log(4.0), rel=1e-6)
    assert float(t.log_prob(0.8)) == -np.inf
