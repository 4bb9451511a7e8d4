"""The density ratio r = dQ/dP between a target Q and a proposal P.

Every REC sampler works with r: its logarithm at candidates, its supremum, and,
for the 1-D methods, its level sets {x : r(x) >= h}. :func:`density_ratio`
builds a :class:`DensityRatio` pytree from two distrax distributions:

* **Normal / Normal** (any locations and scales; also factorised blocks, i.e. a
  batched ``distrax.Normal`` or ``distrax.MultivariateNormalDiag``): closed forms.
  Standardising by the proposal, with ``mu = (m_q - m_p) / s_p`` and
  ``s = s_q / s_p < 1``: the mode of r is ``nu = mu / (1 - s^2)``,
  ``log sup r = mu^2 / (2 (1 - s^2)) - log s`` and
  ``log r = log sup r - (z - nu)^2 / (2 kappa)`` with ``kappa = s^2 / (1 - s^2)``.
* **generic 1-D**: any scalar target and proposal with ``log_prob`` and a CDF whose
  ratio is unimodal (e.g. Triangular / Uniform, Laplace / Laplace, Beta / Uniform,
  Uniform / Uniform). The mode is found by golden-section search and level sets by
  bisection.

Levels are parameterised by the *depth* ``v = sqrt(log sup r - log r)``: ``v = 0``
at the mode, growing away from it. For Normal pairs ``v`` is linear in ``x``, so
the search and tabulation in :mod:`jrec.divergences` are well conditioned near
the top, where the GPRS stretch function diverges.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

from jrec import dists

__all__ = ["sampling_distribution", "DensityRatio", "density_ratio", "as_factorised"]

_GOLDEN_ITERS = 90
_BISECT_ITERS = 60
_EXCESS_NODES = 8


def as_factorised(dist):
    """Return ``(dist_1d, block)``: a factorised view and whether it is a block.

    ``MultivariateNormalDiag`` and ``Independent`` wrappers become the underlying
    element-wise distribution; a batched scalar distribution is treated as a
    block of independent coordinates.
    """
    if isinstance(dist, distrax.MultivariateNormalDiag):
        return distrax.Normal(dist.loc, dist.scale_diag), True
    if isinstance(dist, distrax.Independent):
        return dist.distribution, True
    return dist, len(dist.batch_shape) > 0 or len(dist.event_shape) > 0


@jax.tree_util.register_pytree_node_class
class DensityRatio:
    """r = dQ/dP for a (target, proposal) pair.

    Attributes:
      target, proposal: the (factorised) distrax distributions.
      log_sup: log sup r (``+inf`` when unbounded), i.e. D_inf[Q || P] in nats.
      mode: a maximiser of r (1-D pairs; the per-coordinate mode for blocks).
      kind: ``"normal"`` (closed forms) or ``"generic"`` (numerical), static.
      block: whether x is a vector of independent coordinates (static).
    """

    def __init__(self, target, proposal, log_sup, mode, kind: str, block: bool):
        self.target = target
        self.proposal = proposal
        self.log_sup = log_sup
        self.mode = mode
        self.kind = kind
        self.block = block

    def tree_flatten(self):
        return (self.target, self.proposal, self.log_sup, self.mode), (self.kind, self.block)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    # -- standardised Normal parameters -------------------------------------------------
    def _std(self):
        p, q = self.proposal, self.target
        mu = (q.loc - p.loc) / p.scale
        s = q.scale / p.scale
        one_m = 1 - s * s
        nu = mu / one_m
        kappa = s * s / one_m
        return mu, s, nu, kappa

    # -- log ratio and depth ------------------------------------------------------------
    def log_ratio_elementwise(self, x):
        """log r per coordinate (no sum over a block)."""
        if self.kind == "normal":
            p, q = self.proposal, self.target
            zp = (x - p.loc) / p.scale
            zq = (x - q.loc) / q.scale
            return jnp.log(p.scale / q.scale) - 0.5 * (zq - zp) * (zq + zp)
        lq = self.target.log_prob(x)
        lp = self.proposal.log_prob(x)
        # Outside the target's support r = 0 even where P has no mass either.
        return jnp.where(lq == -jnp.inf, -jnp.inf, lq - lp)

    def log_ratio(self, x):
        """log r(x); sums over the coordinates of a block."""
        lr = self.log_ratio_elementwise(x)
        return jnp.sum(lr) if self.block else lr

    def depth(self, x):
        """v(x) = sqrt(log sup r - log r(x)) >= 0 (1-D pairs); ``inf`` where r = 0."""
        if self.kind == "normal":
            _, _, nu, kappa = self._std()
            z = (x - self.proposal.loc) / self.proposal.scale
            return jnp.abs(z - nu) / jnp.sqrt(2 * kappa)
        gap = self.log_sup - self.log_ratio(x)
        return jnp.sqrt(jnp.maximum(gap, 0.0))

    # -- level sets -----------------------------------------------------------------------
    def level_set(self, v):
        """Endpoints (L, U) of {x : depth(x) <= v}, i.e. {r >= sup r * exp(-v^2)}."""
        if self.kind == "normal":
            _, _, nu, kappa = self._std()
            half = jnp.sqrt(2 * kappa) * v
            p = self.proposal
            return p.loc + p.scale * (nu - half), p.loc + p.scale * (nu + half)
        lo, hi = _bracket(self.target, self.proposal)
        level = self.log_sup - v * v
        m = self.mode

        def side(edge):
            inside_edge = self.log_ratio(edge) >= level

            def body(_, ab):
                a, b = ab  # a: inside (r >= h) side, b: outside side
                mid = 0.5 * (a + b)
                ins = self.log_ratio(mid) >= level
                return jnp.where(ins, mid, a), jnp.where(ins, b, mid)

            a, b = jax.lax.fori_loop(0, _BISECT_ITERS, body, (m, edge))
            return jnp.where(inside_edge, edge, a)  # the inside end: r >= level there

        return side(lo), side(hi)

    def log_ratio_gap(self, t, x):
        """log r(t) - log r(x), without the cancellation of two large logs (Normal pairs)."""
        if self.kind == "normal":
            _, _, nu, kappa = self._std()
            zt = (t - self.proposal.loc) / self.proposal.scale
            zx = (x - self.proposal.loc) / self.proposal.scale
            return -(zt - zx) * (zt + zx - 2 * nu) / (2 * kappa)
        return self.log_ratio(t) - self.log_ratio(x)

    def excess_on(self, lo, hi, log_h, at=None):
        """``int_lo^hi (r - h) dP`` on an interval where ``r >= h`` (1-D pairs).

        ``Q([lo, hi]) - h P([lo, hi])``, or, where that difference would cancel (the
        interval sits near the top of r, ``h P > Q / 2``), Gauss-Legendre quadrature of
        ``p (r - h)`` with ``r - h = h expm1(log r - log h)``; ``at``, a point with
        ``r(at) = h`` (when the level is the ratio at a known point), makes
        ``log r - log h`` exact to rounding (:meth:`log_ratio_gap`).
        """
        lo = jnp.asarray(lo)
        hi = jnp.maximum(lo, hi)
        h = jnp.exp(log_h)
        mq = dists.interval_mass(self.target, lo, hi)
        mp = dists.interval_mass(self.proposal, lo, hi)
        quad_ok = (h * mp > 0.5 * mq) & jnp.isfinite(lo) & jnp.isfinite(hi) & jnp.isfinite(log_h)
        t, w = dists.gauss_legendre(_EXCESS_NODES, lo.dtype)
        lo_f, hi_f = jnp.where(quad_ok, lo, 0.0), jnp.where(quad_ok, hi, 1.0)
        mid = jnp.clip(jnp.where(jnp.isfinite(self.mode), self.mode, lo_f), lo_f, hi_f)
        safe_log_h = jnp.where(quad_ok, log_h, 0.0)[..., None]
        quad = 0.0
        for u, v in ((lo_f, mid), (mid, hi_f)):  # r may have a kink at its mode (generic pairs)
            xs = u[..., None] + (v - u)[..., None] * t
            gap = self.log_ratio_gap(xs, at[..., None]) if at is not None else self.log_ratio(xs) - safe_log_h
            dens = jnp.exp(self.proposal.log_prob(xs) + safe_log_h)
            quad = quad + (v - u) * jnp.sum(w * dens * jnp.expm1(jnp.maximum(gap, 0.0)), axis=-1)
        return jnp.maximum(jnp.where(quad_ok, quad, mq - h * mp), 0.0)

    def excess(self, a, b, log_h):
        """The residual mass ``g_B(h) = E_P[(r - h)_+ ; B]`` of the interval ``B = [a, b]``.

        ``= w_Q(h | B) - h w_P(h | B)`` with the width functions restricted to B,
        ``w_P(h | B) = P(B and r >= h)``, ``w_Q(h | B) = Q(B and r >= h)``; for unimodal r
        ``{r >= h}`` is an interval (:meth:`level_set`), so both are interval masses.
        ``log_h = -inf`` gives ``Q(B)``.
        """
        lo_l, hi_l = self.level_set(jnp.sqrt(jnp.maximum(self.log_sup - log_h, 0.0)))
        lo, hi = jnp.maximum(a, lo_l), jnp.minimum(b, hi_l)
        return jnp.where(hi > lo, self.excess_on(lo, jnp.maximum(lo, hi), log_h), 0.0)

    def width_p(self, v):
        """w_P at depth v: P(r(X) >= sup r * exp(-v^2))."""
        lo, hi = self.level_set(v)
        return dists.interval_mass(self.proposal, lo, hi)

    def width_q(self, v):
        """w_Q at depth v: Q(r(X) >= sup r * exp(-v^2))."""
        lo, hi = self.level_set(v)
        return dists.interval_mass(self.target, lo, hi)


def _bracket(target, proposal):
    """A finite interval holding essentially all mass of both distributions."""
    lo_p, hi_p = dists.support(proposal)
    lo_q, hi_q = dists.support(target)
    lo = jnp.maximum(lo_p, lo_q)
    hi = jnp.minimum(hi_p, hi_q)
    mq, sq = target.mean(), target.stddev()
    lo = jnp.where(jnp.isfinite(lo), lo, mq - 40 * sq)
    hi = jnp.where(jnp.isfinite(hi), hi, mq + 40 * sq)
    return lo, hi


def _golden_max(fn, lo, hi):
    g = (jnp.sqrt(5.0) - 1) / 2

    def body(_, ab):
        a, b = ab
        c = b - g * (b - a)
        d = a + g * (b - a)
        left = fn(c) >= fn(d)
        return jnp.where(left, a, c), jnp.where(left, d, b)

    a, b = jax.lax.fori_loop(0, _GOLDEN_ITERS, body, (lo, hi))
    return 0.5 * (a + b)


def density_ratio(target, proposal) -> DensityRatio:
    """Build the :class:`DensityRatio` of ``target`` with respect to ``proposal``.

    Pure and jittable; the branch taken depends only on the distribution types.
    """
    t, t_block = as_factorised(target)
    p, p_block = as_factorised(proposal)
    block = t_block or p_block
    if isinstance(t, distrax.Normal) and isinstance(p, distrax.Normal):
        dt = jnp.result_type(t.loc, t.scale, p.loc, p.scale)
        shape = jnp.broadcast_shapes(t.batch_shape, p.batch_shape)

        def normal(d):
            return distrax.Normal(jnp.broadcast_to(d.loc, shape).astype(dt),
                                  jnp.broadcast_to(d.scale, shape).astype(dt))

        t, p = normal(t), normal(p)
        ratio = DensityRatio(t, p, jnp.zeros((), dt), jnp.zeros(shape, dt), "normal", block)
        mu, s, nu, _ = ratio._std()
        bounded = s < 1
        one_m = jnp.where(bounded, 1 - s * s, 1.0)
        log_sup_el = jnp.where(bounded, 0.5 * mu * mu / one_m - jnp.log(s), jnp.inf)
        mode = jnp.where(bounded, p.loc + p.scale * nu, jnp.nan)
        log_sup = jnp.sum(log_sup_el) if block else log_sup_el
        return DensityRatio(t, p, log_sup, mode, "normal", block)
    if block:
        raise NotImplementedError(
            "blocks (multivariate targets) are supported for diagonal Normal pairs; "
            f"got {type(t).__name__} / {type(p).__name__}"
        )
    dt = jnp.result_type(dists.dtype_of(t), dists.dtype_of(p))
    if isinstance(t, dists.Triangular) and isinstance(p, distrax.Uniform):
        mode = t.peak.astype(dt)
    else:
        lo, hi = _bracket(t, p)
        probe = DensityRatio(t, p, jnp.zeros((), dt), jnp.zeros((), dt), "generic", False)
        mode = _golden_max(probe.log_ratio, lo.astype(dt), hi.astype(dt))
    probe = DensityRatio(t, p, jnp.zeros((), dt), mode, "generic", False)
    log_sup = probe.log_ratio(mode)
    # An unbounded ratio shows up as the maximiser sitting on an open end.
    lo_p, hi_p = dists.support(p)
    lo, hi = _bracket(t, p)
    at_edge = ((mode <= lo + 1e-6 * (hi - lo)) & ~jnp.isfinite(lo_p)) | (
        (mode >= hi - 1e-6 * (hi - lo)) & ~jnp.isfinite(hi_p)
    )
    log_sup = jnp.where(at_edge, jnp.inf, log_sup)
    return DensityRatio(t, p, log_sup, mode, "generic", False)


def sampling_distribution(proposal, target=None):
    """The distribution candidates are drawn from (identical in encoder and decoder).

    With ``target`` given (encoders), checks at trace time that candidates have the
    target's shape: a block's proposal must carry the block's shape, since the
    decoder draws from it alone.
    """
    p = as_factorised(proposal)[0]
    if target is not None:
        t = as_factorised(target)[0]
        if tuple(t.batch_shape) != tuple(p.batch_shape):
            raise ValueError(
                f"target shape {tuple(t.batch_shape)} != proposal shape {tuple(p.batch_shape)}: "
                "candidates are drawn from the proposal, so give it the target's shape"
            )
    return p
