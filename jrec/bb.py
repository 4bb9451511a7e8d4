"""Branch and bound on the residual of a greedy sampler (GPRS, GRC), for 1-D unimodal ratios.

Flamich, "Greedy Poisson Rejection Sampling", NeurIPS 2023 (branch-and-bound GPRS with
split-on-sample and dyadic partitions); Flamich, Markou & Hernandez-Lobato, "Faster
relative entropy coding with greedy rejection coding", NeurIPS 2023 (GRC).

The machinery shared by :func:`jrec.gprs.encode_bb`, :func:`jrec.gprs.encode_bb_dyadic` and
:func:`jrec.grs.encode_bb`: one search path down a binary tree of intervals, the node
draws, the branch choice and the decoder.

Both greedy samplers leave, after any number of rejections, a *residual* of the
target of the form ``(r - h)_+ dP`` for a level ``h`` (greedy rejection sampling: its
staircase level; GPRS: ``h = sigma^{-1}(T)`` at time ``T``, by the survival identity
``P(no acceptance by sigma(h)) = g(h)`` of the GPRS paper). Restricted to an interval
``B = [a, b]`` its mass is

    g_B(h) = E_P[(r - h)_+ ; B] = w_Q(h | B) - h w_P(h | B),

the width functions restricted to B (:meth:`jrec.ratio.DensityRatio.excess`). One path
through the tree samples Q exactly, by induction on the depth:

  node B at level h (given the path so far, the answer has law ``(r - h)_+ dP`` on B,
  normalised; the root is P's support at ``h = 0``, i.e. Q itself): draw
  ``X ~ P|B`` and ``E ~ Exp(1)``; the sampler's *level rule* gives a threshold ``t`` and
  the level ``h' > h`` of the residual left after a rejection; accept ``X`` if
  ``r(X) >= t``; otherwise split B at ``c`` into ``B_0 = (a, c)`` and ``B_1 = (c, b)`` and
  go to ``B_i`` with probability ``g_{B_i}(h') / g_B(h')``, at level ``h'``.

The split point is the sample (``split="sample"``: for GPRS the side away from the mode
then holds no residual, so the branch is deterministic -- the paper's Algorithm 3) or
the P-median of B (``split="dyadic"``, a dyadic partition of P's quantile space). The
index is the heap index of the accepting node (root 1, children ``2i`` = ``B_0``,
``2i + 1`` = ``B_1``); node randomness comes from ``fold_in(key, depth)``
(:func:`jrec.poisson.candidate_keys`), so the decoder replays the path from the index
bits alone and never needs Q: dyadic splits need only P's quantiles, split on sample
redraws the node samples on the path. Depth is capped at 31 (int32 heap index);
reaching it, or a level rule reporting a numerical failure, gives ``ok=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jrec import dists, poisson
from jrec.core import INDEX_DTYPE, Kernel, bit_length
from jrec.ratio import sampling_distribution

__all__ = ["PathState", "SPLITS", "MAX_DEPTH", "node", "split_point", "descend", "kernel", "decode",
           "check_depth"]

MAX_DEPTH = 31
SPLITS = ("sample", "dyadic")


class PathState(NamedTuple):
    """State of a single-path branch and bound."""

    depth: jax.Array
    a: jax.Array  # current interval [a, b]
    b: jax.Array
    log_h: jax.Array  # level of the residual (-inf at the root)
    heap: jax.Array  # heap index of the current node
    done: jax.Array
    lost: jax.Array  # a level rule could not be evaluated accurately


def node(key, depth, proposal, a, b):
    """``E ~ Exp(1)`` and ``X ~ P|[a, b]`` of the node at ``depth`` (encoder and decoder)."""
    tk, uk = poisson.candidate_keys(key, depth)
    dt = jnp.result_type(a)
    e = jax.random.exponential(tk, (), dt)
    u = jax.random.uniform(uk, (), dt)
    return e, dists.truncated_quantile(proposal, a, b, u)


# The child-choice stream of a node. Not 0 or 1: with partitionable threefry (JAX's
# default) ``split(k)`` is ``(fold_in(k, 0), fold_in(k, 1))``, the node's own time and
# sample keys, and a shared uniform would couple the branch to the sample.
_BRANCH_STREAM = 0x2545F491


def _branch_uniform(key, depth, dt):
    """The uniform that picks the child (encoder only: the index records the choice)."""
    k = jax.random.fold_in(jax.random.fold_in(key, depth), _BRANCH_STREAM)
    return jax.random.uniform(k, (), dt)


def split_point(proposal, a, b, x, split: str):
    """Where ``(a, b)`` with node sample ``x`` is split: at ``x`` or at its P-median."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return x if split == "sample" else dists.truncated_quantile(proposal, a, b, jnp.asarray(0.5, a.dtype))


def descend(a, b, heap, accept, right, c, depth, max_steps: int):
    """Stay at an accepting node, else go to child ``(c, b)`` (``right``) or ``(a, c)``.

    Returns the new ``(a, b, heap)``; the heap index stops growing at ``max_steps`` (int32).
    """
    keep = accept | (depth >= max_steps)
    return (jnp.where(accept | ~right, a, c), jnp.where(accept | right, b, c),
            jnp.where(keep, heap, 2 * heap + right.astype(INDEX_DTYPE)))


def check_depth(max_steps):
    """Validate a branch-and-bound sampler's depth bound ``max_steps`` (static)."""
    if not (isinstance(max_steps, int) and 1 <= max_steps <= MAX_DEPTH):
        raise ValueError(f"max_steps (depth) must be an int in [1, {MAX_DEPTH}], got {max_steps!r}")


def kernel(prepare: Callable, level_rule: Callable, split: str, max_steps: int, decoder: Callable) -> Kernel:
    """The single-path search as a :class:`~jrec.core.Kernel`.

    Args:
      prepare: ``(target, proposal) -> ctx``, a :class:`~jrec.core.Context`.
      level_rule: ``(ctx, a, b, log_h, e) -> (log_t, log_h_next, ok)``.
      split: ``"sample"`` or ``"dyadic"``.
      max_steps: depth bound (at most 31).
      decoder: the matching decoder.
    """
    check_depth(max_steps)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

    def init(_key, ctx):
        ratio, p = ctx.ratio, ctx.proposal
        dt = ratio.log_sup.dtype
        lo, hi = dists.support(p, dt)
        return PathState(jnp.zeros((), INDEX_DTYPE), lo, hi, jnp.asarray(-jnp.inf, dt),
                         jnp.ones((), INDEX_DTYPE), jnp.asarray(False), jnp.asarray(False))

    def step(key, ctx, s):
        ratio, p = ctx.ratio, ctx.proposal
        dt = s.a.dtype
        d = s.depth + 1
        e, x = node(key, d, p, s.a, s.b)
        log_t, log_hn, rule_ok = level_rule(ctx, s.a, s.b, s.log_h, e)
        accept = ratio.log_ratio(x) >= log_t
        c = split_point(p, s.a, s.b, x, split)
        # residual of each child at the new level: both intersect the same level set
        lo_l, hi_l = ratio.level_set(jnp.sqrt(jnp.maximum(ratio.log_sup - log_hn, 0.0)))

        def part(u, v):
            lo, hi = jnp.maximum(u, lo_l), jnp.minimum(v, hi_l)
            return jnp.where(hi > lo, ratio.excess_on(lo, jnp.maximum(lo, hi), log_hn), 0.0)

        g0, g1 = part(s.a, c), part(c, s.b)
        total = g0 + g1
        right = jnp.where(total > 0, _branch_uniform(key, d, dt) * total < g1, x < ratio.mode)
        a, b, heap = descend(s.a, s.b, s.heap, accept, right, c, d, max_steps)
        return PathState(d, a, b, log_hn, heap, accept, s.lost | ~rule_ok)

    def running(_ctx, s):
        return (~s.done) & (s.depth < max_steps)

    def result(ctx, s):
        return s.heap, s.depth, s.done & ~s.lost

    return Kernel(prepare, init, step, running, result, decoder, bounded_ratio=True)


def decode(key, index, proposal, split: str):
    """Replay the path of heap index ``index``; return the accepted node's sample.

    Dyadic splits depend on P alone, so only the last node draws its sample; split
    on sample redraws the sample of every node on the path (it is the split point).
    """
    p = sampling_distribution(proposal)
    index = jnp.asarray(index, INDEX_DTYPE)
    dt = dists.dtype_of(p)
    depth = bit_length(index)
    lo, hi = dists.support(p, dt)

    if split == "sample":
        def body(d, s):
            a, b, _ = s
            _, x = node(key, d, p, a, b)
            go_right = ((index >> (depth - d - 1)) & 1) == 1
            last = d == depth
            return jnp.where(~last & go_right, x, a), jnp.where(~last & ~go_right, x, b), x

        _, _, x = jax.lax.fori_loop(1, depth + 1, body, (lo, hi, jnp.zeros((), dt)))
    else:
        def body(d, s):
            a, b = s
            c = split_point(p, a, b, None, "dyadic")
            go_right = ((index >> (depth - d - 1)) & 1) == 1
            return jnp.where(go_right, c, a), jnp.where(go_right, b, c)

        a, b = jax.lax.fori_loop(1, depth, body, (lo, hi))
        _, x = node(key, depth, p, a, b)
    return jnp.where(depth >= 1, x, jnp.nan)
