"""Greedy rejection sampling (GRS), global.

Harsha, Jain, McAllester & Radhakrishnan, "The communication complexity of
correlation", CCC 2007; for general spaces Flamich & Theis, "Adaptive greedy
rejection sampling", ISIT 2023.

Candidates ``X_1, X_2, ... ~ P`` with uniforms ``U_i`` are examined against a
staircase of levels: ``h_0 = 0``, ``p*_0 = 0``,

    h_i = h_{i-1} + (1 - p*_{i-1}),   p*_i = E_P[min(r, h_i)] = 1 - g(h_i),

where ``g(h) = E_P[(r - h)_+] = int_h^sup r w_P`` is the probability mass not yet
placed. Candidate ``i`` is accepted with probability
``(min(r, h_i) - min(r, h_{i-1})) / g(h_{i-1})``: always when ``r(X_i) >= h_i``, with
probability ``(r - h_{i-1}) / g(h_{i-1})`` when ``h_{i-1} < r <= h_i``, never below
``h_{i-1}``. The accepted ``X_N`` is an exact sample of Q and ``E[N] = exp(D_inf)``
(= sup r); the index is ``N``, and the decoder regenerates ``X_N`` in O(1) exactly as
for global GPRS.

Numerics: levels are carried as ``a_i = log(sup r / h_i)`` (accurate as
``h_i -> sup r``, where the staircase accumulates), updated by
``a_i = a_{i-1} - log1p(g_{i-1} / h_{i-1})``; ``g`` comes from the table of
:func:`jrec.divergences.stretch_table` (``log_excess``, relative error ~1e-6 in
float32), and ``r - h_{i-1} = r (1 - exp(-(a_{i-1} - a(X))))``. Levels of a chunk are
computed by a sequential scan, so indices do not depend on ``chunk_size``.
Requirements and limits as global GPRS: a 1-D pair with bounded ratio; the search
stops at ``max_steps`` candidates (``ok=False``).

**Greedy rejection coding** (:func:`encode_bb`; Flamich, Markou & Hernandez-Lobato,
"Faster relative entropy coding with greedy rejection coding", NeurIPS 2023): the same
greedy step on a search path through a tree of intervals (:mod:`jrec.bb`), for 1-D
unimodal r. At node ``B`` with residual ``(r - h)_+ dP`` on B, ``X ~ P|B`` is accepted with
probability ``min(1, (r(X) - h)_+ P(B) / g_B(h))`` (``g_B`` the residual mass of B, from
the width functions restricted to B), the level rises to ``h' = h + g_B(h) / P(B)``, and
a rejection goes to the part of B left of ``X`` or right of it (split on sample; dyadic
splits with ``split="dyadic"``) with probability proportional to its residual mass at
``h'``. The index is the heap index of the accepting node, ``E[depth] = O(D_KL)``;
the decoder replays the path (it never needs Q), exactly like GPRS's.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jrec import bb, dists, poisson
from jrec.core import INDEX_DTYPE, Code, Context, Kernel, run
from jrec.divergences import log_excess, stretch_table
from jrec.ratio import density_ratio, sampling_distribution
from jrec.spec import Sampler

__all__ = ["SAMPLERS", "encode", "decode", "kernel", "GRSState", "encode_bb", "decode_bb", "kernel_bb"]

DEFAULT_MAX_STEPS = 2**22


class GRSState(NamedTuple):
    n: jax.Array  # candidates examined
    a: jax.Array  # a_n = log(sup r / h_n)  (+inf for h_0 = 0)
    log_g: jax.Array  # log g(h_n)
    index: jax.Array  # accepted candidate (0: none yet)
    done: jax.Array


def _prepare(target, proposal):
    ratio = density_ratio(target, proposal)
    if ratio.block:
        raise ValueError("grs needs a scalar (1-D) target and proposal; vmap over coordinates")
    return Context(ratio, sampling_distribution(proposal, target), stretch_table(ratio))


def _next_level(table, a_prev, log_g_prev):
    """(a_i, log g(h_i)) from (a_{i-1}, log g(h_{i-1})): h_i = h_{i-1} + g(h_{i-1})."""
    log_h_prev = table.log_sup - a_prev
    start = jnp.isinf(a_prev)  # h_0 = 0: h_1 = g(0) = 1
    a = jnp.where(start, table.log_sup,
                  a_prev - jnp.log1p(jnp.exp(log_g_prev - jnp.where(start, 0.0, log_h_prev))))
    a = jnp.maximum(a, 0.0)  # h_i >= sup r: everything above h_{i-1} is accepted
    return a, log_excess(table, jnp.sqrt(a))


def kernel(*, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Kernel:
    """Global greedy rejection sampling as a :class:`~jrec.core.Kernel`."""
    poisson.check_search_options(max_steps, chunk_size)

    def init(_key, ctx):
        dt = ctx.ratio.log_sup.dtype
        return GRSState(jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, dt), jnp.zeros((), dt),
                        jnp.zeros((), INDEX_DTYPE), jnp.zeros((), bool))

    def step(key, ctx, s):
        ratio, p, table = ctx
        dt = ratio.log_sup.dtype
        ns = s.n + 1 + jnp.arange(chunk_size, dtype=jnp.int32)
        e, x = poisson.candidates(key, ns, p, dt)  # log U_i = -E_i

        def level(carry, _):
            a_prev, lg_prev = carry
            a, lg = _next_level(table, a_prev, lg_prev)
            return (a, lg), (a_prev, lg_prev, a)

        (a_last, lg_last), (a_prev, lg_prev, a_now) = jax.lax.scan(level, (s.a, s.log_g), None,
                                                                    length=chunk_size)
        log_r = jax.vmap(ratio.log_ratio)(x)
        a_x = ratio.log_sup - log_r
        gap = jnp.where(jnp.isinf(a_prev), jnp.inf, a_prev - a_x)  # log(h_{i-1}) < log r  <=>  gap > 0
        log_num = log_r + jnp.log(-jnp.expm1(-jnp.maximum(gap, 0.0)))  # log(r - h_{i-1})
        accept = (gap > 0) & ((a_x <= a_now) | (-e < log_num - lg_prev))
        accept = accept & (ns <= max_steps)
        first = jnp.argmax(accept)
        hit = jnp.any(accept)
        n_new = jnp.where(hit, ns[first], jnp.minimum(s.n + chunk_size, max_steps))
        return GRSState(n_new.astype(jnp.int32), a_last, lg_last,
                        jnp.where(hit, ns[first], s.index).astype(INDEX_DTYPE), hit)

    def running(_ctx, s):
        return (~s.done) & (s.n < max_steps)

    def result(ctx, s):
        return s.index, s.n, s.done

    return Kernel(_prepare, init, step, running, result, decode, bounded_ratio=True)


def encode(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Code:
    """Global GRS: the first candidate accepted by the greedy staircase; ``index = N``."""
    return run(kernel(max_steps=max_steps, chunk_size=chunk_size), key, target, proposal)


# -- greedy rejection coding (branch and bound) ---------------------------------------------


def decode(key, index, proposal, **_static):
    """Regenerate ``X_index`` from the key (O(1)): the candidate of the shared Poisson process."""
    return poisson.candidate_sample(key, index, sampling_distribution(proposal))


def _prepare_bb(target, proposal):
    ratio = density_ratio(target, proposal)
    if ratio.block:
        raise ValueError("grc_bb needs a scalar (1-D) target and proposal; vmap over coordinates")
    return Context(ratio, sampling_distribution(proposal, target))


def _level_rule(ctx, a, b, log_h, e):
    """The greedy step on node ``[a, b]``: threshold ``h + U g_B(h)/P(B)``, level ``h + g_B(h)/P(B)``."""
    ratio, p = ctx.ratio, ctx.proposal
    log_step = jnp.log(ratio.excess(a, b, log_h)) - jnp.log(dists.interval_mass(p, a, b))
    return jnp.logaddexp(log_h, log_step - e), jnp.logaddexp(log_h, log_step), jnp.asarray(True)


def kernel_bb(*, max_steps: int = bb.MAX_DEPTH, split: str = "sample") -> Kernel:
    """Greedy rejection coding (branch and bound) as a :class:`~jrec.core.Kernel`."""
    return bb.kernel(_prepare_bb, _level_rule, split, max_steps,
                     lambda key, index, proposal, **_: decode_bb(key, index, proposal, split=split))


def encode_bb(key, target, proposal, *, max_steps: int = bb.MAX_DEPTH, split: str = "sample") -> Code:
    """Greedy rejection coding with branch and bound (GRC; split on sample by default); heap index."""
    return run(kernel_bb(max_steps=max_steps, split=split), key, target, proposal)


def decode_bb(key, index, proposal, *, split: str = "sample", **_static):
    """Replay the path of the heap index (as for split-on-sample GPRS); the accepted ``X``."""
    return bb.decode(key, index, proposal, split)


SAMPLERS = (
    Sampler(
        "grs", encode, decode, kernel, exact=True, requires=("log r", "excess mass g(h) = E_P[(r - h)+]"),
        bounded_ratio=True, one_dimensional=True, index_shape=(),
        options={"max_steps": DEFAULT_MAX_STEPS, "chunk_size": 16},
        reference="Harsha et al., CCC 2007; Flamich & Theis, ISIT 2023 (greedy rejection sampling)",
        container_id=6, index_range=lambda o: (1, o["max_steps"]),
    ),
    Sampler(
        "grc_bb", encode_bb, decode_bb, kernel_bb, exact=True,
        requires=("log r", "residual mass of intervals (restricted w_P, w_Q)", "unimodal r with its mode",
                  "P's CDF and quantile"),
        bounded_ratio=True, one_dimensional=True, index_shape=(), options={"max_steps": bb.MAX_DEPTH},
        reference=("Flamich, Markou & Hernandez-Lobato, NeurIPS 2023 "
                   "(greedy rejection coding, split on sample)"),
        container_id=11, default_code="delta", index_range=lambda o: (1, 2 ** o["max_steps"] - 1),
    ),
)
