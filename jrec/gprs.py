"""Greedy Poisson rejection sampling (GPRS): global, parallel, branch and bound.

Flamich, "Greedy Poisson Rejection Sampling", NeurIPS 2023.

With w_P(h) = P(r(X) >= h), w_Q(h) = Q(r(X) >= h), the *stretch function*
``sigma(h) = int_0^h d eta / (w_Q(eta) - eta w_P(eta))`` (see
:mod:`jrec.divergences` for how it is tabulated and how accurately) turns the
graph of r into an acceptance region for a rate-1 Poisson process on
``(0, inf) x Omega``:

* **global** (:func:`encode`): ``N = min{n : T_n <= sigma(r(X_n))}``;
  ``E[N] = exp(D_inf)`` = sup r. Decoding regenerates ``X_N`` in O(1).
* **parallel** (:func:`encode_parallel`): ``J`` independent processes of rate
  ``1/J`` (arrival times scaled by ``J``), the same sigma on each; the earliest
  accepted arrival over all shards wins and the index is ``(j, N_j)``. A shard
  stops at its first acceptance or once its time passes the best accepted time.
* **branch and bound, split on sample** (:func:`encode_bb`), for 1-D r that is
  unimodal with mode m: at depth d, ``T_d = T_{d-1} + E_d / P(B)`` and
  ``X_d ~ P|B`` on the current interval B = (a, b); accept if
  ``T_d <= sigma(r(X_d))``, otherwise keep the side of ``X_d`` holding m. The
  index is the heap index of the accepted node (root 1, children 2h, 2h + 1; the
  right child 2h + 1 is taken when ``X_d < m``). ``E[depth] = O(D_KL)``. The
  decoder replays the branches from the index bits alone; it never needs Q.

Requirements: sigma needs a 1-D pair with a bounded ratio (``D_inf < inf``);
targets wider than the proposal (Normal ``s_q >= s_p``) make ``sup r`` infinite and
are refused by the checked wrapper (use ``orc``, or widen the proposal). Limits:
global/parallel stop at ``max_steps`` candidates (default 2^22, so D_inf must be
well below ~15 nats); branch and bound at depth 31 (int32 heap index), which
covers D_KL up to roughly 20 bits with overwhelming probability. Hitting a limit
gives ``ok=False``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jrec import bb, dists, poisson
from jrec.core import INDEX_DTYPE, Code, Context, Kernel, run
from jrec.divergences import NODES_PER_PANEL, bary_eval, log_stretch, stretch_table
from jrec.ratio import density_ratio, sampling_distribution
from jrec.spec import Sampler

__all__ = ["SAMPLERS",
    "encode", "decode", "kernel",
    "encode_parallel", "decode_parallel", "kernel_parallel",
    "encode_bb", "decode_bb", "kernel_bb",
    "encode_bb_dyadic", "decode_bb_dyadic", "kernel_bb_dyadic",
]

DEFAULT_MAX_STEPS = 2**22
MAX_DEPTH = bb.MAX_DEPTH


def _prepare(name):
    """Per-problem constants shared by the three variants: ratio, proposal, sigma table."""

    def prepare(target, proposal):
        ratio = density_ratio(target, proposal)
        if ratio.block:
            raise ValueError(f"{name} needs a scalar (1-D) target and proposal; vmap over coordinates")
        return Context(ratio, sampling_distribution(proposal, target), stretch_table(ratio))

    return prepare


def _score(ctx):
    ratio, table = ctx.ratio, ctx.table

    def score(log_t, x, _lr):
        return log_t - log_stretch(table, ratio.depth(x))

    return score


# -- global -------------------------------------------------------------------------------


def kernel(*, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Kernel:
    """Global GPRS as a :class:`~jrec.core.Kernel`."""
    poisson.check_search_options(max_steps, chunk_size)

    def init(_key, ctx):
        return poisson.search_init(ctx.ratio.log_sup.dtype)

    def step(key, ctx, s):
        ratio, p = ctx.ratio, ctx.proposal
        return poisson.search_first(key, s, p, ratio.log_ratio, _score(ctx), chunk_size=chunk_size,
                                    max_steps=max_steps)

    def running(_ctx, s):
        return poisson.search_running(s, max_steps)

    def result(ctx, s):
        return s.best_n.astype(INDEX_DTYPE), s.steps, s.done

    return Kernel(_prepare("gprs"), init, step, running, result, decode, bounded_ratio=True)


def encode(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Code:
    """Global GPRS: the first candidate with ``T_n <= sigma(r(X_n))``."""
    return run(kernel(max_steps=max_steps, chunk_size=chunk_size), key, target, proposal)


def decode(key, index, proposal, **_static):
    """Regenerate ``X_index`` (O(1))."""
    return poisson.candidate_sample(key, index, sampling_distribution(proposal))


# -- parallel -----------------------------------------------------------------------------


def shards_per_device(num_shards: int, devices: int, axis_name: str) -> int:
    """``num_shards / devices``; a clear error unless the devices divide the shards."""
    if num_shards % devices:
        raise ValueError(f"num_shards={num_shards} must be a multiple of the {devices} devices on "
                         f"mesh axis {axis_name!r}")
    return num_shards // devices


def kernel_parallel(
    *, num_shards: int = 4, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 8,
    axis_name: str | None = None,
) -> Kernel:
    """Parallel GPRS as a :class:`~jrec.core.Kernel`; the state holds one search per shard.

    With ``axis_name`` (inside ``shard_map`` over a mesh axis of ``D`` devices, ``D``
    dividing ``num_shards``), device ``d`` runs shards ``d J/D ... (d + 1) J/D - 1``
    and the devices agree on the best accepted time and on the winner with ``pmin``
    collectives, so every device count gives the same index (and steps) as one.
    """
    poisson.check_search_options(max_steps, chunk_size)
    if not (isinstance(num_shards, int) and num_shards >= 1):
        raise ValueError(f"num_shards must be a positive int, got {num_shards!r}")

    def local_shards():
        if axis_name is None:
            return jnp.arange(num_shards)
        per = shards_per_device(num_shards, jax.lax.axis_size(axis_name), axis_name)
        return jax.lax.axis_index(axis_name) * per + jnp.arange(per)

    def global_min(x):
        return x if axis_name is None else jax.lax.pmin(x, axis_name)

    def init(_key, ctx):
        return jax.vmap(lambda _: poisson.search_init(ctx.ratio.log_sup.dtype))(local_shards())

    def active(s, best):
        return (~s.done) & (s.n < max_steps) & (jnp.log(s.t) < best)

    def step(key, ctx, s):
        ratio, p = ctx.ratio, ctx.proposal
        score = _score(ctx)
        scale = jnp.asarray(num_shards, ratio.log_sup.dtype)

        def one(j, sj, cap):
            return poisson.search_first(jax.random.fold_in(key, j), sj, p, ratio.log_ratio, score,
                                        chunk_size=chunk_size, max_steps=max_steps, time_scale=scale,
                                        log_cap=cap)

        best = global_min(jnp.min(s.best_log_t))
        new = jax.vmap(one, in_axes=(0, 0, None))(local_shards(), s, best)
        act = active(s, best)
        return jax.tree_util.tree_map(
            lambda a, b: jnp.where(act.reshape(act.shape + (1,) * (a.ndim - 1)), a, b), new, s)

    def running(_ctx, s):
        any_active = jnp.any(active(s, global_min(jnp.min(s.best_log_t)))).astype(jnp.int32)
        return -global_min(-any_active) > 0  # any device

    def result(ctx, s):
        shards = local_shards()
        best = global_min(jnp.min(s.best_log_t))
        k = jnp.argmin(s.best_log_t)
        mine = s.best_log_t[k] == best
        j = global_min(jnp.where(mine, shards[k], num_shards)).astype(INDEX_DTYPE)  # ties: lowest j
        n = global_min(jnp.where(mine & (shards[k] == j), s.best_n[k], jnp.iinfo(INDEX_DTYPE).max))
        steps = -global_min(-jnp.max(s.steps))
        done = -global_min(-jnp.any(s.done).astype(jnp.int32)) > 0
        index = jnp.stack([j, n.astype(INDEX_DTYPE)])
        return index, steps, done

    return Kernel(_prepare("gprs_parallel"), init, step, running, result, decode_parallel, bounded_ratio=True)


def encode_parallel(
    key, target, proposal, *, num_shards: int = 4, max_steps: int = DEFAULT_MAX_STEPS,
    chunk_size: int = 8,
) -> Code:
    """Parallel GPRS over ``num_shards`` superposed processes; ``index = (j, N_j)``.

    ``num_steps`` is the largest number of candidates any shard examined (the
    parallel running time). Shards advance in chunks of ``chunk_size`` and learn the
    best accepted time between chunks, so this is an upper bound, within about
    ``chunk_size``, on the count a shard strictly needs (``chunk_size=1`` makes it
    exact). Indices do not depend on it.
    """
    k = kernel_parallel(num_shards=num_shards, max_steps=max_steps, chunk_size=chunk_size)
    return run(k, key, target, proposal)


def decode_parallel(key, index, proposal, **_static):
    """Regenerate candidate ``index[1]`` of shard ``index[0]``."""
    shard_key = jax.random.fold_in(key, index[0])
    return poisson.candidate_sample(shard_key, index[1], sampling_distribution(proposal))


# -- branch and bound ---------------------------------------------------------------------


class BBState(NamedTuple):
    """State of split-on-sample branch and bound."""

    depth: jax.Array
    a: jax.Array  # search interval [a, b]
    b: jax.Array
    t: jax.Array  # arrival time (Kahan-compensated)
    comp: jax.Array
    heap: jax.Array  # heap index of the current node
    done: jax.Array


def kernel_bb(*, max_steps: int = MAX_DEPTH) -> Kernel:
    """Split-on-sample branch-and-bound GPRS as a :class:`~jrec.core.Kernel`."""
    bb.check_depth(max_steps)

    def init(_key, ctx):
        ratio, p = ctx.ratio, ctx.proposal
        dt = ratio.log_sup.dtype
        lo, hi = dists.support(p, dt)
        zero = jnp.zeros((), dt)
        return BBState(jnp.zeros((), INDEX_DTYPE), lo, hi, zero, zero, jnp.ones((), INDEX_DTYPE),
                       jnp.asarray(False))

    def step(key, ctx, s):
        ratio, p, table = ctx
        d = s.depth + 1
        e, x = bb.node(key, d, p, s.a, s.b)
        mass = dists.interval_mass(p, s.a, s.b)
        times, t, comp = poisson.arrival_times(s.t, s.comp, (e / mass)[None])
        accept = jnp.log(times[0]) <= log_stretch(table, ratio.depth(x))
        a, b, heap = bb.descend(s.a, s.b, s.heap, accept, x < ratio.mode, x, d, max_steps)
        return BBState(depth=d, a=a, b=b, t=t, comp=comp, heap=heap, done=accept)

    def running(_ctx, s):
        return (~s.done) & (s.depth < max_steps)

    def result(ctx, s):
        return s.heap, s.depth, s.done

    return Kernel(_prepare("gprs_bb"), init, step, running, result, decode_bb, bounded_ratio=True)


def encode_bb(key, target, proposal, *, max_steps: int = MAX_DEPTH) -> Code:
    """Split-on-sample branch-and-bound GPRS for a unimodal 1-D ratio; heap index."""
    return run(kernel_bb(max_steps=max_steps), key, target, proposal)


def decode_bb(key, index, proposal, **_static):
    """Replay the branches encoded in the heap index; return the accepted ``X``."""
    return bb.decode(key, index, proposal, "sample")


# -- branch and bound, dyadic ---------------------------------------------------------------

_PANELS = 8  # quadrature panels (8 Gauss-Legendre nodes each) for the clipped part of a node
_W_CAP = 40.0
_LOG_H_FLOOR = 80.0  # levels below sup r * exp(-80) count as 0
_NEWTON = 20


def _bary(values, tau):
    """Barycentric interpolation of values at the 8 GL nodes of [0, 1], at ``tau``."""
    t, _ = dists.gauss_legendre(NODES_PER_PANEL, values.dtype)
    return bary_eval(values, tau, t)


def _solve_increasing(fn, dfn, lo, hi, x0):
    """Root of an increasing ``fn`` on ``[lo, hi]``: Newton steps kept inside a shrinking
    bracket (a bisection where Newton would leave it), ``_NEWTON`` iterations."""

    def body(_, s):
        x, lo, hi = s
        f = fn(x)
        lo, hi = jnp.where(f < 0, x, lo), jnp.where(f < 0, hi, x)
        step = x - f / dfn(x)
        inside = (step >= lo) & (step <= hi) & jnp.isfinite(step)
        return jnp.where(inside, step, 0.5 * (lo + hi)), lo, hi

    x, _, _ = jax.lax.fori_loop(0, _NEWTON, body, (jnp.clip(x0, lo, hi), lo, hi))
    return x


def _solve_bracketed(fn, lo, hi):
    """Root of an increasing ``fn`` on ``[lo, hi]`` without derivatives: the Illinois variant
    of false position (superlinear, never leaves the bracket), ``_NEWTON`` iterations.
    ``fn`` may be -inf / +inf (or NaN, read as -inf) towards the ends."""

    def f(x):
        v = fn(x)
        return jnp.where(jnp.isnan(v), -jnp.inf, v)

    def body(_, s):
        lo, hi, flo, fhi, last = s
        x = (lo * fhi - hi * flo) / (fhi - flo)
        x = jnp.where(jnp.isfinite(x) & (x > lo) & (x < hi), x, 0.5 * (lo + hi))
        fx = f(x)
        left = fx < 0  # the root lies right of x
        # Illinois: halve the function value kept at the end that did not move twice
        fhi = jnp.where(left & (last == 1), 0.5 * fhi, fhi)
        flo = jnp.where(~left & (last == -1), 0.5 * flo, flo)
        return (jnp.where(left, x, lo), jnp.where(left, hi, x), jnp.where(left, fx, flo),
                jnp.where(left, fhi, fx), jnp.where(left, 1, -1))

    lo, hi, flo, fhi, _ = jax.lax.fori_loop(0, _NEWTON, body, (lo, hi, f(lo), f(hi), 0))
    return jnp.where(jnp.abs(flo) < jnp.abs(fhi), lo, hi)


def _level_rule(ctx, a, b, log_h, e):
    """GPRS's level after the node's arrival at time ``E / P(B)``: ``eta`` with

        int_h^eta P(B) d eta' / g_B(eta') = E,

    (``g_B`` the residual mass of B, :meth:`~jrec.ratio.DensityRatio.excess`); accept iff
    ``r(X) >= eta``. With ``far`` / ``near`` the ends of B with the lower / higher ratio,
    the level set ``{r >= eta}`` meets B in three regimes as ``eta`` grows:

    1. while ``B`` meets the level set in the same interval ``I`` (``eta < r(far)``, or a
       flat top of r): ``g_B / P(B) = (Q(I) - eta P(I)) / P(B)``, linear in ``eta`` with
       slope ``-c = -P(I) / P(B)``, so ``eta = h + g_B(h) / (c P(B)) (1 - exp(-c E))``;
    2. up to ``r(near)`` (mode in B) or ``sup_B r = r(near)`` (mode outside): the
       interval from the level set's far-side end ``x`` to ``near``; parameterised by
       ``x = near + (x_s - near) exp(-w)`` (so the integrand stays smooth where it
       diverges at ``sup_B r``) and integrated by Gauss-Legendre panels, then inverted
       inside the panel where ``E`` falls;
    3. mode in B, ``eta >= r(near)``: the level set lies inside B, ``g_B = g``, and the
       integral is ``P(B) (sigma(eta) - sigma(r(near)))`` with the global stretch table.

    Returns ``(log eta, log eta, ok)``; ``ok`` is False when ``E`` lands beyond what the
    dtype resolves below ``sup_B r`` (a level within ~1e-5 (float32) of the top of a
    node whose region excludes the mode).
    """
    ratio, p, table = ctx
    dt = a.dtype
    # h = 0 (the root) as a level far below anything that matters: keeps level-set ends finite
    log_h = jnp.maximum(log_h, ratio.log_sup - _LOG_H_FLOOR)
    mass = dists.interval_mass(p, a, b)
    log_mass = jnp.log(mass)
    m = jnp.asarray(ratio.mode, dt)
    fa, fb = jnp.isfinite(a), jnp.isfinite(b)
    lra = jnp.where(fa, ratio.log_ratio(jnp.where(fa, a, m)), -jnp.inf)
    lrb = jnp.where(fb, ratio.log_ratio(jnp.where(fb, b, m)), -jnp.inf)
    m_in = (a <= m) & (m <= b)
    near_b = jnp.where(m_in, lrb >= lra, m > b)
    near = jnp.where(near_b, b, a)
    lr_near = jnp.where(near_b, lrb, lra)

    def depth_of(log_level):
        return jnp.sqrt(jnp.maximum(ratio.log_sup - log_level, 0.0))

    def far_end(log_level):  # far-side end of the level set {r >= level}
        lo, hi = ratio.level_set(depth_of(log_level))
        return jnp.where(near_b, lo, hi)

    # 1. while the part I of B in the level set stays the same (all of B, or a flat top)
    h = jnp.exp(log_h)
    lo_l, hi_l = ratio.level_set(depth_of(log_h))
    lo_i, hi_i = jnp.maximum(a, lo_l), jnp.minimum(b, hi_l)
    lr_lo = jnp.where(lo_i <= a, lra, ratio.log_ratio(lo_i))
    lr_hi = jnp.where(hi_i >= b, lrb, ratio.log_ratio(hi_i))
    lr1 = jnp.minimum(lr_lo, lr_hi)  # I is {r >= eta} within B up to this level
    in1 = log_h < lr1
    hi_i = jnp.maximum(lo_i, hi_i)
    g_h = jnp.where(hi_i > lo_i, ratio.excess_on(lo_i, hi_i, log_h), 0.0) / mass
    c = jnp.clip(dists.interval_mass(p, lo_i, hi_i) / mass, 1e-30, 1.0)  # -d g_B/d eta / P(B)
    frac = jnp.clip(c * (jnp.exp(lr1) - h) / g_h, 0.0, 1.0)
    u1 = jnp.where(in1, -jnp.log1p(-frac) / c, 0.0)
    land1 = in1 & (e < u1)
    log_eta1 = jnp.log(h + g_h / c * -jnp.expm1(-c * e))
    e2 = e - u1

    # 2. the level set's far end x moves from x_s towards near (ends at x_e)
    log_h2 = jnp.where(in1, lr1, log_h)
    # its start: I's far end after piece 1, else the level set's far end at h (computed above)
    x_s = jnp.clip(jnp.where(near_b, jnp.where(in1, lo_i, lo_l), jnp.where(in1, hi_i, hi_l)), a, b)
    active2 = (log_h2 < lr_near) & jnp.isfinite(x_s) & jnp.isfinite(near) & (x_s != near)
    x_s = jnp.where(active2, x_s, jnp.where(jnp.isfinite(near), near, 0.0) - 1)
    span = jnp.abs(near - x_s)
    eps = jnp.finfo(dt).eps
    w_cap = jnp.clip(jnp.log(span / (64 * eps * (jnp.abs(near) + span * eps))), 0.0, _W_CAP)
    x_e = far_end(lr_near)
    w_end = jnp.where(m_in, jnp.log(span / jnp.maximum(jnp.abs(near - x_e), span * jnp.exp(-w_cap))), w_cap)
    w_end = jnp.clip(w_end, 0.0, w_cap)
    near_s = jnp.where(active2, near, 0.0)
    # panel edges w_end (k / K)^2: fine where x leaves x_s (the level set's far end may lie
    # far out when h is small), wider towards near, where the integrand grows like e^w
    edges = w_end * (jnp.arange(_PANELS + 1, dtype=dt) / _PANELS) ** 2
    dws = jnp.diff(edges)
    t, wts = dists.gauss_legendre(NODES_PER_PANEL, dt)
    ws = edges[:-1, None] + dws[:, None] * t  # (panels, nodes)

    def log_integrand(w):
        x = near_s + (x_s - near_s) * jnp.exp(-w)
        lr = ratio.log_ratio(x)
        lo, hi = jnp.minimum(x, near_s), jnp.maximum(x, near_s)
        g = ratio.excess_on(lo, hi, lr, at=x)
        slope = jnp.abs(jax.grad(ratio.log_ratio)(x))
        return jnp.log(jnp.abs(near_s - x)) + jnp.log(slope) + lr + log_mass - jnp.log(g)

    log_f = jax.vmap(jax.vmap(log_integrand))(ws)
    log_f = jnp.where(jnp.isnan(log_f), jnp.inf, log_f)
    panel = dws * jnp.sum(wts * jnp.exp(log_f), axis=1)
    cum = jnp.cumsum(panel)
    total2 = jnp.where(active2, cum[-1], 0.0)
    land2 = ~land1 & active2 & (e2 < total2)
    k = jnp.argmax(cum > e2)
    before = jnp.where(k > 0, cum[jnp.maximum(k - 1, 0)], 0.0)
    lf_k = log_f[k]
    rest = e2 - before

    def partial(tau):  # int over the first tau of panel k, of the interpolated integrand
        return dws[k] * tau * jnp.sum(wts * jnp.exp(jax.vmap(lambda s: _bary(lf_k, s))(tau * t)))

    tau = _solve_increasing(lambda u: partial(u) - rest, lambda u: dws[k] * jnp.exp(_bary(lf_k, u)),
                            jnp.zeros((), dt), jnp.ones((), dt),
                            jnp.clip(rest / jnp.maximum(panel[k], 1e-30), 0.0, 1.0))
    w_star = edges[k] + tau * dws[k]
    x_star = near_s + (x_s - near_s) * jnp.exp(-w_star)
    log_eta2 = ratio.log_ratio(x_star)
    ok2 = jnp.all(jnp.isfinite(lf_k))

    # 3. level set inside B: the global stretch function, time running at rate P(B)
    e3 = e2 - total2
    l3 = jnp.where(active2, lr_near, jnp.where(in1, lr1, log_h))  # where pieces 1-2 ended
    v3 = depth_of(l3)
    log_sig3 = log_stretch(table, v3)
    target = jnp.logaddexp(log_sig3, jnp.log(jnp.maximum(e3, 0.0)) - log_mass)
    v_hi = jnp.minimum(v3, jnp.sqrt(jnp.maximum(ratio.log_sup, 0.0) + 60.0))

    # sigma decreases with the depth v, like a power of v near the top: solve in log v
    neg = lambda z: target - log_stretch(table, jnp.exp(z))  # noqa: E731
    z_lo, z_hi = jnp.log(jnp.asarray(1e-6, dt)), jnp.log(v_hi)
    vs = jnp.exp(_solve_bracketed(neg, z_lo, z_hi))
    log_eta3 = ratio.log_sup - vs * vs

    # mode outside B and E beyond the resolvable part of piece 2: the top of the grid
    x_top = near_s + (x_s - near_s) * jnp.exp(-w_end)
    log_eta_top = ratio.log_ratio(x_top)
    log_eta = jnp.where(land1, log_eta1, jnp.where(land2, log_eta2, jnp.where(m_in, log_eta3, log_eta_top)))
    ok = land1 | (land2 & ok2) | (~land2 & m_in)
    return log_eta, log_eta, ok


def kernel_bb_dyadic(*, max_steps: int = MAX_DEPTH) -> Kernel:
    """Branch-and-bound GPRS with dyadic splits as a :class:`~jrec.core.Kernel` (see :mod:`jrec.bb`)."""
    return bb.kernel(_prepare("gprs_bb_dyadic"), _level_rule, "dyadic", max_steps, decode_bb_dyadic)


def encode_bb_dyadic(key, target, proposal, *, max_steps: int = MAX_DEPTH) -> Code:
    """Branch-and-bound GPRS splitting each interval at its P-median; heap index.

    Unlike split on sample, both halves of a rejected interval may hold the residual
    target, so the path goes to each with probability proportional to its residual
    mass, and each node runs GPRS for the residual restricted to its interval (the
    stretch function of ``w_P, w_Q`` restricted to it): see :mod:`jrec.bb` and
    :func:`_level_rule` for how that level is computed.
    """
    return run(kernel_bb_dyadic(max_steps=max_steps), key, target, proposal)


def decode_bb_dyadic(key, index, proposal, **_static):
    """Walk the dyadic splits of the heap index (P's quantiles only); the last node's sample."""
    return bb.decode(key, index, proposal, "dyadic")


SAMPLERS = (
    Sampler(
        "gprs", encode, decode, kernel, exact=True, requires=("log r", "stretch function sigma"),
        bounded_ratio=True, one_dimensional=True, index_shape=(),
        options={"max_steps": DEFAULT_MAX_STEPS, "chunk_size": 16},
        reference="Flamich, NeurIPS 2023 (global GPRS)", container_id=1,
        index_range=lambda o: (1, o["max_steps"]),
    ),
    Sampler(
        "gprs_parallel", encode_parallel, decode_parallel, kernel_parallel, exact=True,
        requires=("log r", "stretch function sigma"), bounded_ratio=True, one_dimensional=True,
        index_shape=(2,),
        options={"num_shards": 4, "max_steps": DEFAULT_MAX_STEPS, "chunk_size": 8},
        reference="Flamich, NeurIPS 2023 (parallel GPRS)", container_id=2, index_kind="shard",
        index_range=lambda o: (1, o["max_steps"]),
    ),
    Sampler(
        "gprs_bb", encode_bb, decode_bb, kernel_bb, exact=True,
        requires=("log r", "stretch function sigma", "unimodal r with its mode", "P's CDF and quantile"),
        bounded_ratio=True, one_dimensional=True, index_shape=(), options={"max_steps": MAX_DEPTH},
        reference="Flamich, NeurIPS 2023 (branch and bound, split on sample)", container_id=3,
        default_code="delta", index_range=lambda o: (1, 2 ** o["max_steps"] - 1),
    ),
    Sampler(
        "gprs_bb_dyadic", encode_bb_dyadic, decode_bb_dyadic, kernel_bb_dyadic, exact=True,
        requires=("log r", "stretch function sigma", "residual mass of intervals (restricted w_P, w_Q)",
                  "unimodal r with its mode", "P's CDF and quantile"),
        bounded_ratio=True, one_dimensional=True, index_shape=(), options={"max_steps": MAX_DEPTH},
        reference="Flamich, NeurIPS 2023 (branch and bound, dyadic splits)", container_id=10,
        default_code="delta", index_range=lambda o: (1, 2 ** o["max_steps"] - 1),
    ),
)
