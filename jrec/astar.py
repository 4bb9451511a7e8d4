"""A* coding with branch and bound, split on sample (AS*), for 1-D unimodal ratios.

Flamich, Markou & Hernandez-Lobato, "Fast relative entropy coding with A* coding",
ICML 2022; A* sampling: Maddison, Tarlow & Minka, NeurIPS 2014.

A* sampling searches the Gumbel process of P for the point maximising
``G + log r(X)``: a region ``B`` carries the maximum ``G_B`` of the Gumbel process over
``B`` and its location ``X_B ~ P|B``; a child ``C`` of ``B`` (split at ``X_B``) gets
``G_C = log P(C) - log(E + exp(log P(C) - G_B))``, ``E ~ Exp(1)`` (a Gumbel with
location ``log P(C)`` truncated at ``G_B``) and ``X_C ~ P|C``. Regions are expanded
best first by the upper bound ``G_B + M(B)`` with ``M(B) = log r(clip(m, a, b))`` (r
unimodal with mode m), and the search stops once the best value found,
``max G_B + log r(X_B)``, beats every bound left: that ``X_B`` is an exact sample of Q.

The index is the heap index of the winning region (root 1; children ``2h`` = left
``(a, X_B)`` and ``2h + 1`` = right ``(X_B, b)``); node ``h`` draws its randomness from
``fold_in(key, h)``, so the decoder replays the root-to-node path (O(depth)) without Q.
The queue is a fixed-capacity array inside ``lax.while_loop`` (``max_steps``
expansions, capacity ``max_steps + 1``); the heap index is int32, so regions deeper
than 31 cannot be created -- if one would have been needed, or the expansion budget
runs out, ``ok=False``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jrec import dists, poisson
from jrec.core import INDEX_DTYPE, Code, Kernel, bit_length, run, sampling_distribution
from jrec.ratio import density_ratio

__all__ = ["encode_bb", "decode_bb", "kernel_bb", "AStarState"]

DEFAULT_MAX_STEPS = 256
_MAX_HEAP = 2**30  # children 2h, 2h + 1 of h < 2^30 stay below 2^31


class AStarState(NamedTuple):
    valid: jax.Array  # (capacity,) queue slots in use
    ub: jax.Array  # upper bound G + M(B) of each queued region
    g: jax.Array  # Gumbel maximum of each region
    x: jax.Array  # its location
    a: jax.Array  # region (a, b)
    b: jax.Array
    h: jax.Array  # heap index
    lb: jax.Array  # best value found
    best: jax.Array  # its heap index
    steps: jax.Array  # regions expanded
    lost: jax.Array  # a needed region could not be created (depth or capacity)
    done: jax.Array


def _node(key, h, proposal, a, b, g_parent):
    """Gumbel maximum and location of region ``h = (a, b)`` given its parent's maximum."""
    tk, uk = poisson.candidate_keys(key, h)
    dt = a.dtype
    e = jax.random.exponential(tk, (), dt)
    u = jax.random.uniform(uk, (), dt)
    log_mass = jnp.log(dists.interval_mass(proposal, a, b))
    g = log_mass - jnp.log(e + jnp.exp(log_mass - g_parent))
    return g, dists.truncated_quantile(proposal, a, b, u)


def _prepare(target, proposal):
    ratio = density_ratio(target, proposal)
    if ratio.block:
        raise ValueError("astar_bb needs a scalar (1-D) target and proposal; vmap over coordinates")
    return ratio, sampling_distribution(proposal, target)


def kernel_bb(*, max_steps: int = DEFAULT_MAX_STEPS) -> Kernel:
    """AS* (A* coding with branch and bound, split on sample) as a :class:`~jrec.core.Kernel`."""
    if not (isinstance(max_steps, int) and 1 <= max_steps <= 4096):
        raise ValueError(f"max_steps (expansions) must be an int in [1, 4096], got {max_steps!r}")
    cap = max_steps + 1

    def bound(ratio, a, b):
        return ratio.log_ratio(jnp.clip(ratio.mode, a, b))

    def init(key, ctx):
        ratio, p = ctx
        dt = ratio.log_sup.dtype
        lo, hi = dists.support(p, dt)
        one = jnp.ones((), INDEX_DTYPE)
        g, x = _node(key, one, p, lo, hi, jnp.asarray(jnp.inf, dt))
        z = jnp.zeros((cap,), dt)
        return AStarState(
            valid=jnp.zeros((cap,), bool).at[0].set(True), ub=z.at[0].set(g + ratio.log_sup),
            g=z.at[0].set(g), x=z.at[0].set(x), a=z.at[0].set(lo), b=z.at[0].set(hi),
            h=jnp.zeros((cap,), INDEX_DTYPE).at[0].set(1), lb=jnp.asarray(-jnp.inf, dt),
            best=jnp.zeros((), INDEX_DTYPE), steps=jnp.zeros((), jnp.int32), lost=jnp.asarray(False),
            done=jnp.asarray(False))

    def step(key, ctx, s):
        ratio, p = ctx
        ub = jnp.where(s.valid, s.ub, -jnp.inf)
        k = jnp.argmax(ub)
        stop = ub[k] <= s.lb  # nothing left can beat the best value (or the queue is empty)
        val = s.g[k] + ratio.log_ratio(s.x[k])
        better = ~stop & (val > s.lb)
        lb = jnp.where(better, val, s.lb)
        best = jnp.where(better, s.h[k], s.best)
        valid = s.valid.at[k].set(s.valid[k] & stop)
        # children of region k, split at its sample
        hk = s.h[k]
        can = hk < _MAX_HEAP
        kids = []
        for side in (0, 1):
            ca = jnp.where(side == 0, s.a[k], s.x[k])
            cb = jnp.where(side == 0, s.x[k], s.b[k])
            ch = (2 * jnp.where(can, hk, 1) + side).astype(INDEX_DTYPE)
            g, x = _node(key, ch, p, ca, cb, s.g[k])
            cub = g + bound(ratio, ca, cb)
            kids.append((cub > lb, cub, g, x, ca, cb, ch))
        lost = s.lost
        fields = [valid, s.ub, s.g, s.x, s.a, s.b, s.h]
        for want, cub, g, x, ca, cb, ch in kids:
            want = want & ~stop
            free = ~fields[0]
            slot = jnp.argmax(free)
            ok_slot = free[slot] & can
            put = want & ok_slot
            lost = lost | (want & ~ok_slot)
            new = (True, cub, g, x, ca, cb, ch)
            fields = [f.at[slot].set(jnp.where(put, v, f[slot])) for f, v in zip(fields, new, strict=True)]
        valid, ub_, g_, x_, a_, b_, h_ = fields
        return AStarState(valid, ub_, g_, x_, a_, b_, h_, lb, best,
                          s.steps + jnp.where(stop, 0, 1).astype(jnp.int32), lost, stop)

    def running(_ctx, s):
        return (~s.done) & (s.steps < max_steps)

    def result(ctx, s):
        ok = s.done & ~s.lost & (s.best >= 1) & jnp.isfinite(ctx[0].log_sup)
        return s.best, s.steps, ok

    return Kernel(_prepare, init, step, running, result, decode_bb)


def encode_bb(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS) -> Code:
    """AS*: best-first search of the Gumbel process; ``index`` = heap index of the winner."""
    return run(kernel_bb(max_steps=max_steps), key, target, proposal)


def decode_bb(key, index, proposal, **_static):
    """Replay the root-to-node path of heap index ``index``; return the region's ``X``."""
    p = sampling_distribution(proposal)
    index = jnp.asarray(index, INDEX_DTYPE)
    dt = dists.dtype_of(p)
    depth = bit_length(index)
    lo, hi = dists.support(p, dt)
    g0, x0 = _node(key, jnp.ones((), INDEX_DTYPE), p, lo, hi, jnp.asarray(jnp.inf, dt))

    def body(d, s):
        a, b, g, x = s
        h = (index >> (depth - d)).astype(INDEX_DTYPE)  # the node at depth d on the path
        right = (h & 1) == 1
        a = jnp.where(right, x, a)
        b = jnp.where(right, b, x)
        g, x = _node(key, h, p, a, b, g)
        return a, b, g, x

    _, _, _, x = jax.lax.fori_loop(2, depth + 1, body, (lo, hi, g0, x0))
    return jnp.where(depth >= 1, x, jnp.nan)
