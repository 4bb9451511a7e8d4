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

from jrec import dists, poisson
from jrec.core import INDEX_DTYPE, Code, Kernel, bit_length, run, sampling_distribution
from jrec.divergences import log_stretch, stretch_table
from jrec.ratio import density_ratio

__all__ = [
    "encode", "decode", "kernel",
    "encode_parallel", "decode_parallel", "kernel_parallel",
    "encode_bb", "decode_bb", "kernel_bb",
]

DEFAULT_MAX_STEPS = 2**22
MAX_DEPTH = 31


def _prepare(name):
    """Per-problem constants shared by the three variants: ratio, proposal, sigma table."""

    def prepare(target, proposal):
        ratio = density_ratio(target, proposal)
        if ratio.block:
            raise ValueError(f"{name} needs a scalar (1-D) target and proposal; vmap over coordinates")
        return ratio, sampling_distribution(proposal, target), stretch_table(ratio)

    return prepare


def _score(ctx):
    ratio, _, table = ctx

    def score(log_t, x, _lr):
        return log_t - log_stretch(table, ratio.depth(x))

    return score


# -- global -------------------------------------------------------------------------------


def kernel(*, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Kernel:
    """Global GPRS as a :class:`~jrec.core.Kernel`."""
    poisson.check_search_options(max_steps, chunk_size)

    def init(_key, ctx):
        return poisson.search_init(ctx[0].log_sup.dtype)

    def step(key, ctx, s):
        ratio, p, _ = ctx
        return poisson.search_step(key, s, p, ratio.log_ratio, _score(ctx), mode="first",
                                   chunk_size=chunk_size, max_steps=max_steps)

    def running(_ctx, s):
        return poisson.search_running(s, max_steps)

    def result(ctx, s):
        return s.best_n.astype(INDEX_DTYPE), s.steps, s.done & jnp.isfinite(ctx[0].log_sup)

    return Kernel(_prepare("gprs"), init, step, running, result, decode)


def encode(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Code:
    """Global GPRS: the first candidate with ``T_n <= sigma(r(X_n))``."""
    return run(kernel(max_steps=max_steps, chunk_size=chunk_size), key, target, proposal)


def decode(key, index, proposal, **_static):
    """Regenerate ``X_index`` (O(1))."""
    return poisson.candidate_sample(key, index, sampling_distribution(proposal))


# -- parallel -----------------------------------------------------------------------------


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
        d = jax.lax.axis_size(axis_name)
        if num_shards % d:
            raise ValueError(f"num_shards={num_shards} must be a multiple of the {d} devices on "
                             f"mesh axis {axis_name!r}")
        per = num_shards // d
        return jax.lax.axis_index(axis_name) * per + jnp.arange(per)

    def global_min(x):
        return x if axis_name is None else jax.lax.pmin(x, axis_name)

    def init(_key, ctx):
        return jax.vmap(lambda _: poisson.search_init(ctx[0].log_sup.dtype))(local_shards())

    def active(s, best):
        return (~s.done) & (s.n < max_steps) & (jnp.log(s.t) < best)

    def step(key, ctx, s):
        ratio, p, _ = ctx
        score = _score(ctx)
        scale = jnp.asarray(num_shards, ratio.log_sup.dtype)

        def one(j, sj, cap):
            return poisson.search_step(jax.random.fold_in(key, j), sj, p, ratio.log_ratio, score,
                                       mode="first", chunk_size=chunk_size, max_steps=max_steps,
                                       time_scale=scale, log_cap=cap)

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
        return index, steps, done & jnp.isfinite(ctx[0].log_sup)

    return Kernel(_prepare("gprs_parallel"), init, step, running, result, decode_parallel)


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


def _bb_node(key, depth, proposal, a, b):
    """Arrival-time increment and ``X_d ~ P|[a, b]`` at ``depth`` (shared by both sides)."""
    tk, uk = poisson.candidate_keys(key, depth)
    dt = a.dtype
    e = jax.random.exponential(tk, (), dt)
    u = jax.random.uniform(uk, (), dt)
    x = dists.truncated_quantile(proposal, a, b, u)
    return e, x


def kernel_bb(*, max_steps: int = MAX_DEPTH) -> Kernel:
    """Split-on-sample branch-and-bound GPRS as a :class:`~jrec.core.Kernel`."""
    if not (isinstance(max_steps, int) and 1 <= max_steps <= MAX_DEPTH):
        raise ValueError(f"max_steps (depth) must be an int in [1, {MAX_DEPTH}], got {max_steps!r}")

    def init(_key, ctx):
        ratio, p, _ = ctx
        dt = ratio.log_sup.dtype
        lo, hi = dists.support(p, dt)
        zero = jnp.zeros((), dt)
        return BBState(jnp.zeros((), INDEX_DTYPE), lo, hi, zero, zero, jnp.ones((), INDEX_DTYPE),
                       jnp.asarray(False))

    def step(key, ctx, s):
        ratio, p, table = ctx
        d = s.depth + 1
        e, x = _bb_node(key, d, p, s.a, s.b)
        mass = dists.interval_mass(p, s.a, s.b)
        times, t, comp = poisson.arrival_times(s.t, s.comp, (e / mass)[None])
        accept = jnp.log(times[0]) <= log_stretch(table, ratio.depth(x))
        right = x < ratio.mode
        keep = accept | (d >= max_steps)  # never grow the heap index past the last depth (int32)
        return BBState(
            depth=d,
            a=jnp.where(accept | ~right, s.a, x),
            b=jnp.where(accept | right, s.b, x),
            t=t,
            comp=comp,
            heap=jnp.where(keep, s.heap, 2 * s.heap + right.astype(INDEX_DTYPE)),
            done=accept,
        )

    def running(_ctx, s):
        return (~s.done) & (s.depth < max_steps)

    def result(ctx, s):
        return s.heap, s.depth, s.done & jnp.isfinite(ctx[0].log_sup)

    return Kernel(_prepare("gprs_bb"), init, step, running, result, decode_bb)


def encode_bb(key, target, proposal, *, max_steps: int = MAX_DEPTH) -> Code:
    """Split-on-sample branch-and-bound GPRS for a unimodal 1-D ratio; heap index."""
    return run(kernel_bb(max_steps=max_steps), key, target, proposal)


def decode_bb(key, index, proposal, **_static):
    """Replay the branches encoded in the heap index; return the accepted ``X``."""
    p = sampling_distribution(proposal)
    index = jnp.asarray(index, INDEX_DTYPE)
    dt = dists.dtype_of(p)
    depth = bit_length(index)
    lo, hi = dists.support(p, dt)

    def body(d, s):
        a, b, _ = s
        _, x = _bb_node(key, d, p, a, b)
        go_right = ((index >> (depth - d - 1)) & 1) == 1
        last = d == depth
        a = jnp.where(~last & go_right, x, a)
        b = jnp.where(~last & ~go_right, x, b)
        return a, b, x

    _, _, x = jax.lax.fori_loop(1, depth + 1, body, (lo, hi, jnp.zeros((), dt)))
    return jnp.where(depth >= 1, x, jnp.nan)
