"""The fitting's fast sine and Gaussian noise (jrec_inr.fastmath)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jrec_inr import fastmath
from jrec_inr.model import Arch, BayesianSiren, patch_coords


def test_sin_and_cos_match_float64_to_1e_6_with_cos_as_the_derivative():
    x = np.concatenate([np.linspace(-1e4, 1e4, 400_001), np.linspace(-7, 7, 70_001),
                        np.float32([0.0, np.pi / 2, -np.pi / 2, np.pi, 3 * np.pi / 2])]).astype(np.float32)
    x64 = x.astype(np.float64)
    assert np.abs(np.asarray(fastmath.sin(x)) - np.sin(x64)).max() < 1e-6
    assert np.abs(np.asarray(fastmath.cos(x)) - np.cos(x64)).max() < 1e-6
    g = jax.vmap(jax.grad(fastmath.sin))(x[::100])
    np.testing.assert_allclose(np.asarray(g), np.cos(x64[::100]), atol=1e-6)
    assert fastmath.sin(jnp.zeros(())) == 0.0  # odd: exact at 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_is_standard_normal(seed):
    z = np.asarray(fastmath.normal(jax.random.key(seed), (500, 401))).ravel()
    n = z.size
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.mean(z**4) - 3) < 5 * np.sqrt(96 / n)
    # both halves of the Box-Muller pairs, and their pairing, are uncorrelated
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)
    half = (n + 1) // 2
    assert abs(np.corrcoef(z[: n - half], z[half:])[0, 1]) < 5 / np.sqrt(n)
    # chi-square on 40 equiprobable bins
    edges = stats.norm.ppf(np.linspace(0, 1, 41)[1:-1])
    counts = np.bincount(np.searchsorted(edges, z), minlength=40)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_normal_keys_give_independent_reproducible_streams():
    k = jax.random.key(7)
    a = np.asarray(fastmath.normal(k, (100_001,)))
    np.testing.assert_array_equal(a, np.asarray(fastmath.normal(k, (100_001,))))
    ks = jax.random.split(k, 4)
    rows = np.asarray(jax.vmap(lambda kk: fastmath.normal(kk, (50_000,)))(ks))
    np.testing.assert_array_equal(rows[2], np.asarray(fastmath.normal(ks[2], (50_000,))))
    c = np.corrcoef(np.vstack([rows, a[None, :50_000]]))
    assert np.abs(c - np.eye(5)).max() < 5 / np.sqrt(50_000)
    assert fastmath.normal(k, (3, 5)).shape == (3, 5)  # odd sizes
    assert fastmath.normal(k, (3,), jnp.bfloat16).dtype == jnp.bfloat16


def test_the_decoders_pass_uses_jnp_sin_and_the_fit_the_fast_one():
    arch = Arch(hidden=8, depth=2, num_freqs=2, patch=8)
    net = BayesianSiren(arch)
    coords = patch_coords(arch.patch)
    params = net.init(jax.random.key(0), coords)
    plain = str(jax.make_jaxpr(lambda p: net.apply(p, coords))(params))
    fitted = str(jax.make_jaxpr(lambda p: net.apply(p, coords, jax.random.key(1)))(params))
    # one sin of the Fourier features, plus one per hidden layer in the decoder's pass only
    assert plain.count("= sin ") == 1 + arch.depth
    assert fitted.count("= sin ") == 1
    assert "erf_inv" not in fitted and "erf_inv" in str(jax.make_jaxpr(
        lambda k: jax.random.normal(k, (4,)))(jax.random.key(0)))
