"""Single-path branch and bound on the residual (jrec.bb): restricted residual masses, GPRS's
dyadic level rule, the branch stream, dyadic GRC, and dyadic vs split-on-sample step counts."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import PAIRS, keys, ks_pvalue
from scipy import integrate

import jrec
from jrec import bb, gprs, grs, poisson
from jrec.divergences import log_stretch, stretch_table
from jrec.ratio import density_ratio

P = distrax.Normal(0.0, 1.0)


def _densities(ratio, proposal):
    """``(lo, hi) -> (x grid, q = r p, p)`` on 200,001 points (densities in float64 on the host)."""
    dens = jax.jit(lambda x: (ratio.log_ratio(x) + proposal.log_prob(x), proposal.log_prob(x)))

    def grid(lo, hi):
        xs = np.linspace(lo, hi, 200_001)
        lq, lp = dens(jnp.asarray(xs, jnp.float32))
        return xs, np.exp(np.asarray(lq, np.float64)), np.exp(np.asarray(lp, np.float64))

    return grid


@pytest.mark.parametrize("pair_name", ["normal_2bit", "laplace_laplace", "triangular_uniform"])
def test_restricted_residual_mass(pair_name):
    """g_B(h) = w_Q(h|B) - h w_P(h|B) on intervals that cut the level set on either side or not."""
    target, proposal, _ = PAIRS[pair_name]
    ratio = density_ratio(target, proposal)
    log_sup, m = float(ratio.log_sup), float(ratio.mode)
    lo, hi = (0.0, 1.0) if isinstance(proposal, distrax.Uniform) else (-12.0, 12.0)
    grid = _densities(ratio, proposal)
    excess = jax.jit(ratio.excess)
    for a, b in [(-np.inf, np.inf), (m - 0.3, m + 0.05), (m + 0.02, np.inf), (-np.inf, m - 0.05)]:
        xs, q, p = grid(max(a, lo), min(b, hi))
        for dlog in (np.inf, 2.0, 0.3, 0.02):
            log_h = log_sup - dlog
            got = float(excess(jnp.float32(a), jnp.float32(b), jnp.float32(log_h)))
            ref = integrate.trapezoid(np.maximum(q - np.exp(log_h) * p, 0.0), xs)
            assert abs(got - ref) <= 2e-4 * ref + 2e-6, (a, b, log_h, got, ref)


def test_dyadic_gprs_level_solves_the_restricted_stretch_equation():
    """The level eta after a node's arrival E solves int_h^eta P(B) / g_B = E (any regime)."""
    q = distrax.Normal(0.3, 0.8)
    ratio = density_ratio(q, P)
    ctx = (ratio, P, stretch_table(ratio))
    rule = jax.jit(gprs._level_rule)
    f32 = jnp.float32
    g = jax.jit(lambda a, b, lh: ratio.excess(a, b, lh))
    for a, b in [(-np.inf, np.inf), (0.0, np.inf), (-np.inf, 0.0), (0.0, 0.6745), (0.6745, np.inf)]:
        mass = float(jrec.dists.interval_mass(P, f32(a), f32(b)))
        for log_h in (-np.inf, -1.2, 0.0, 0.262):
            if float(g(f32(a), f32(b), f32(log_h))) <= 0:
                continue  # no residual left in B: such a node is never visited
            for e in (0.1, 1.0, 3.0):
                log_eta, log_t, ok = rule(ctx, f32(a), f32(b), f32(log_h), f32(e))
                assert bool(ok) and float(log_t) == float(log_eta)
                if np.isinf(log_h) and np.isinf(a) and np.isinf(b):  # the root: global GPRS, sigma(eta) = E
                    sig = float(jnp.exp(log_stretch(ctx[2], jnp.sqrt(ratio.log_sup - log_eta))))
                    assert abs(sig - e) < 1e-4 * e
                    continue
                # in y = log eta (the integrand mass * eta / g_B(eta) is smooth there)
                y0 = max(log_h, float(ratio.log_sup) - 80.0)
                u = integrate.quad(lambda y: mass * np.exp(y) / float(g(f32(a), f32(b), f32(y))),
                                   y0, float(log_eta), limit=400)[0]
                assert abs(u - e) < 1e-4 * e, (a, b, log_h, e, u)


def test_branch_stream_is_independent_of_the_node_draws():
    """The child choice must not reuse the node's keys (split(k) == fold_in(k, 0/1) in JAX)."""
    def draws(key):
        tk, uk = poisson.candidate_keys(key, 3)
        return (jax.random.exponential(tk, ()), jax.random.uniform(uk, ()),
                bb._branch_uniform(key, 3, jnp.float32))

    e, u, c = (np.asarray(v) for v in jax.vmap(draws)(keys(20_000)))
    corr = np.corrcoef([e, u, c])
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 0.03), corr


@pytest.mark.slow
def test_dyadic_grc_is_exact():
    """GRC with dyadic splits (grs.encode_bb(split="dyadic"); the registry's grc_bb splits on sample)."""
    for name in ("laplace_laplace",):  # generic path; Normal pairs: the same kernel as gprs_bb_dyadic
        target, proposal, ref = PAIRS[name]
        enc = jax.jit(jax.vmap(lambda k: grs.encode_bb(k, target, proposal, split="dyadic")))
        code = enc(keys(20_000))
        assert bool(jnp.all(code.ok))
        dec = jax.jit(jax.vmap(lambda k, i: grs.decode_bb(k, i, proposal, split="dyadic")))(keys(20_000),
                                                                                          code.index)
        np.testing.assert_array_equal(np.asarray(dec), np.asarray(code.sample))
        assert ks_pvalue(code.sample, ref) > 1e-3


@pytest.mark.slow
def test_dyadic_gprs_takes_fewer_steps_and_codes_shorter_than_split_on_sample():
    """The GPRS paper's comparison, on the same problems and keys."""
    t = distrax.Normal(2.0, 0.1)
    res = {}
    for m in ("gprs_bb", "gprs_bb_dyadic"):
        s = jrec.get(m)
        code = jax.jit(jax.vmap(lambda k, s=s: s.encode(k, t, P)))(keys(4000))
        assert bool(jnp.all(code.ok))
        res[m] = (np.asarray(code.num_steps, np.float64),
                  np.asarray(jrec.coding.index_bits(m, code.index), np.float64))
    for i in range(2):
        a, d = res["gprs_bb"][i], res["gprs_bb_dyadic"][i]
        se = np.sqrt(a.var() / a.size + d.var() / d.size)
        assert d.mean() < a.mean() - 3 * se, (i, d.mean(), a.mean(), se)


@pytest.mark.parametrize("pair_name", ["triangular_uniform", "uniform_uniform"])
def test_dyadic_gprs_root_level_is_global_gprs(pair_name):
    """At the root the level is sigma^-1(E) (piecewise-linear r; a flat top, where the level set
    meets B in a fixed interval and the closed-form piece must use its slope P(I) / P(B))."""
    target, proposal, _ = PAIRS[pair_name]
    ctx = gprs._prepare("gprs_bb_dyadic")(target, proposal)
    lo, hi = jrec.dists.support(proposal, jnp.float32)
    es = jnp.asarray(np.geomspace(1e-5, 30, 64), jnp.float32)
    log_eta = jax.jit(jax.vmap(lambda e: gprs._level_rule(ctx, lo, hi, jnp.float32(-jnp.inf), e)[0]))(es)
    depth = jnp.sqrt(jnp.maximum(ctx[0].log_sup - log_eta, 0.0))
    sig = np.asarray(jnp.exp(log_stretch(ctx[2], depth)))
    np.testing.assert_allclose(sig, np.asarray(es), rtol=1e-4)
