"""Shared randomness: candidates, arrival times and the chunked search loop.

Key derivation (the contract between encoder and decoder)
---------------------------------------------------------
* Global samplers: candidate ``n >= 1`` uses ``k_n = fold_in(key, n)`` and
  ``time_key, sample_key = split(k_n)``; ``X_n = proposal.sample(seed=sample_key)``
  and the inter-arrival time ``E_n ~ Exp(1)`` comes from ``time_key``. The arrival
  times of the rate-1 Poisson process are ``T_n = E_1 + ... + E_n``.
* Parallel shards: shard ``j`` uses ``fold_in(key, j)`` as its key (arrival times
  scaled by the number of shards).
* Branch and bound: depth ``d >= 1`` uses ``fold_in(key, d)`` split the same way, the
  second key giving the uniform that places ``X_d`` inside the search interval.

The search over candidates is :func:`search_init`, then :func:`search_first` (GPRS, global
and parallel: the first candidate of score ``<= 0``) or :func:`search_argmin` (PFR, ORC: the
least score; :func:`argmin_kernel` is their kernel) while :func:`search_running`.

Because candidate ``n`` depends on ``(key, n)`` only, the decoder rebuilds ``X_N``
in O(1), and the encoder may evaluate any number of candidates per loop iteration.
Arrival times are accumulated strictly sequentially (with Kahan compensation, so
that ``T_n`` keeps full precision for millions of candidates), so every ``T_n`` is
the same float whatever the chunk size; all other per-chunk reductions (min,
first-true) are exact. Hence indices do not depend on ``chunk_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp

from jrec import prng
from jrec.core import MAX_INDEX, Context, Kernel
from jrec.ratio import density_ratio, sampling_distribution

__all__ = [
    "candidate_keys",
    "candidate_sample",
    "candidate_samples",
    "candidates",
    "arrival_times",
    "SearchState",
    "search_init",
    "search_first",
    "search_argmin",
    "search_running",
    "check_search_options",
    "argmin_kernel",
]


def candidate_keys(key, n):
    """``(time_key, sample_key)`` of candidate (or depth) ``n``."""
    k = jax.random.fold_in(key, n)
    tk, sk = jax.random.split(k)
    return tk, sk


def candidate_sample(key, n, proposal):
    """X_n: the proposal sample of candidate ``n`` (what the decoder computes)."""
    _, sk = candidate_keys(key, n)
    return proposal.sample(seed=sk)


def _fused(key, proposal, dtype) -> bool:
    """Whether :mod:`jrec.prng`'s fused draws serve this search (a float32 Normal proposal
    under Threefry); they equal ``jax.random``'s bit for bit."""
    return (isinstance(proposal, distrax.Normal) and prng.supported(key, dtype)
            and prng.supported(key, jnp.result_type(proposal.loc, proposal.scale)))


def _fused_samples(sample_words, ns, proposal):
    """``proposal.sample(seed=k)`` for the sample keys' words of candidates ``ns``: distrax's
    ``scale * z + loc`` of one standard normal draw of shape ``(1, *batch_shape)``."""
    batch = tuple(proposal.batch_shape)
    z = prng.normal(sample_words, (1, *batch))
    return (proposal.scale * z + proposal.loc).reshape(ns.shape + batch)


def candidate_samples(key, ns, proposal):
    """``X_n`` for the candidate numbers ``ns`` (an encoder's search): equal bit for bit to
    :func:`candidate_sample` of each, which the decoder runs."""
    if _fused(key, proposal, jnp.float32):
        _, sw = prng.split(prng.fold_in(prng.key_words(key), ns))
        return _fused_samples(sw, ns, proposal)
    return jax.vmap(lambda n: candidate_sample(key, n, proposal))(ns)


def candidates(key, ns, proposal, dtype):
    """Exponential inter-arrival times and samples for candidate numbers ``ns``."""
    if _fused(key, proposal, dtype):
        tw, sw = prng.split(prng.fold_in(prng.key_words(key), ns))
        return prng.exponential(tw, ()), _fused_samples(sw, ns, proposal)
    tks, sks = jax.vmap(lambda n: candidate_keys(key, n))(ns)
    e = jax.vmap(lambda k: jax.random.exponential(k, (), dtype))(tks)
    x = jax.vmap(lambda k: proposal.sample(seed=k))(sks)
    return e, x


def arrival_times(t, comp, e):
    """Sequentially accumulate increments ``e`` onto ``t`` (Kahan-compensated).

    Returns ``(times, t_new, comp_new)``; ``times[i] = t + e[0] + ... + e[i]``.
    """

    def step(carry, ei):
        t, c = carry
        y = ei - c
        tn = t + y
        c = (tn - t) - y
        return (tn, c), tn

    (t, comp), times = jax.lax.scan(step, (t, comp), e)
    return times, t, comp


class SearchState(NamedTuple):
    """State of the chunked global search (a pytree)."""

    n: jax.Array  # candidates generated so far
    t: jax.Array  # current arrival time T_n
    comp: jax.Array  # Kahan compensation of t
    best: jax.Array  # best (smallest) score so far
    best_n: jax.Array  # its candidate number (0: none)
    best_log_t: jax.Array  # log arrival time of the selected candidate
    steps: jax.Array  # candidates examined before stopping
    done: jax.Array  # the selection rule has stopped


def search_init(dtype) -> SearchState:
    """Initial :class:`SearchState` (no candidate examined)."""
    inf = jnp.asarray(jnp.inf, dtype)
    zero = jnp.zeros((), jnp.int32)
    return SearchState(zero, jnp.zeros((), dtype), jnp.zeros((), dtype), inf, zero, inf, zero,
                       jnp.asarray(False))


class _Chunk(NamedTuple):
    """The next ``chunk_size`` candidates of a search: numbers, samples, log arrival
    times (NaN when untimed), the running time and its Kahan compensation, scores."""

    ns: jax.Array
    log_t: jax.Array
    t: jax.Array
    comp: jax.Array
    score: jax.Array
    valid: jax.Array


def _next_chunk(key, s: SearchState, proposal, log_ratio, score, chunk_size: int, max_steps: int,
                time_scale=1.0, timed: bool = True) -> _Chunk:
    """Draw and score the next ``chunk_size`` candidates (``timed=False``: no arrival
    times; the candidates ``X_n`` are the same either way)."""
    dtype = s.t.dtype
    ns = s.n + jnp.arange(1, chunk_size + 1, dtype=jnp.int32)
    if timed:
        e, x = candidates(key, ns, proposal, dtype)
        times, t, comp = arrival_times(s.t, s.comp, e * time_scale)
        log_t = jnp.log(times)
    else:
        x = candidate_samples(key, ns, proposal)
        t, comp, log_t = s.t, s.comp, jnp.full(ns.shape, jnp.nan, dtype)
    return _Chunk(ns, log_t, t, comp, score(log_t, x, jax.vmap(log_ratio)(x)), ns <= max_steps)


def _advance(s: SearchState, c: _Chunk, i, take, steps, done) -> SearchState:
    return SearchState(n=c.ns[-1], t=c.t, comp=c.comp, best=jnp.where(take, c.score[i], s.best),
                       best_n=jnp.where(take, c.ns[i], s.best_n),
                       best_log_t=jnp.where(take, c.log_t[i], s.best_log_t), steps=steps, done=done)


def search_first(key, s: SearchState, proposal, log_ratio: Callable, score: Callable, *, chunk_size: int,
                 max_steps: int, time_scale=1.0, log_cap=None) -> SearchState:
    """One loop iteration of a search for the *first* candidate whose score is ``<= 0``
    (GPRS): examine the next ``chunk_size`` candidates.

    ``time_scale`` multiplies the inter-arrival times (a shard of ``J`` superposed
    processes); ``log_cap``: candidates arriving after ``exp(log_cap)`` are not counted in
    ``steps`` (a parallel shard stops there, after examining one arrival beyond it).
    """
    c = _next_chunk(key, s, proposal, log_ratio, score, chunk_size, max_steps, time_scale)
    hit = (c.score <= 0) & c.valid
    any_hit = jnp.any(hit)
    i = jnp.argmax(hit)
    counted = c.valid if log_cap is None else c.valid & (c.log_t <= log_cap)
    extra = 0 if log_cap is None else jnp.any(c.valid & ~counted).astype(jnp.int32)
    steps = jnp.where(any_hit, c.ns[i], s.n + jnp.sum(counted, dtype=jnp.int32) + extra)
    return _advance(s, c, i, any_hit, steps, any_hit)


def search_argmin(key, s: SearchState, proposal, log_ratio: Callable, score: Callable, *, chunk_size: int,
                  max_steps: int, log_bound=None, timed: bool = True) -> SearchState:
    """One loop iteration of a search for the candidate of *least* score (PFR, ORC):
    examine the next ``chunk_size`` candidates.

    ``log_bound`` (PFR's stopping rule, needs ``timed``): stop at the first arrival with
    ``log T_n - log_bound`` above the best score so far (no later candidate can win; that
    arrival is counted in ``steps``). ``timed=False``: the score ignores arrival times
    (passed as NaN), which are not drawn; the state's ``t`` stays 0, ``best_log_t`` NaN.
    """
    c = _next_chunk(key, s, proposal, log_ratio, score, chunk_size, max_steps, timed=timed)
    inf = jnp.asarray(jnp.inf, s.t.dtype)
    sc = jnp.where(c.valid, c.score, inf)
    if log_bound is None:
        considered = c.valid
    else:
        prev_best = jnp.minimum(s.best, _exclusive_cummin(sc, inf))
        stop = (c.log_t - log_bound > prev_best) & c.valid
        considered = c.valid & (jnp.cumsum(stop.astype(jnp.int32)) == 0)
    sc = jnp.where(considered, sc, inf)
    i = jnp.argmin(sc)
    done = jnp.any(c.valid & ~considered) if log_bound is not None else jnp.asarray(False)
    steps = s.n + jnp.sum(considered, dtype=jnp.int32) + done.astype(jnp.int32)
    return _advance(s, c._replace(score=sc), i, sc[i] < s.best, steps, done)


def search_running(s: SearchState, max_steps: int):
    """Loop condition of the search: not stopped and candidates left."""
    return (~s.done) & (s.n < max_steps)


def _exclusive_cummin(x, fill):
    inc = jax.lax.cummin(x)
    return jnp.concatenate([jnp.reshape(fill, (1,)), inc[:-1]])


def check_search_options(max_steps, chunk_size):
    """Validate the static options of the candidate-search samplers."""
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not (isinstance(max_steps, int) and 1 <= max_steps <= MAX_INDEX - chunk_size):
        raise ValueError(f"max_steps must be an int in [1, 2^31 - 1 - chunk_size], got {max_steps!r}")


# -- the argmin search as a sampler's kernel (PFR, ORC) ----------------------------------------


def _score(log_t, _x, lr):
    return log_t - lr


def argmin_kernel(*, max_steps: int, chunk_size: int, stopping: bool, result, decode,
                  score=None, timed: bool = True) -> Kernel:
    """The candidate search selecting ``argmin_n log T_n - log r(X_n)`` (PFR, ORC).

    ``stopping``: stop once ``T_n / sup r`` exceeds the best value (PFR, exact);
    otherwise examine all ``max_steps`` candidates (ORC, fixed budget).
    ``score(log_t, x, log_r)``: the minimised score (default ``log_t - log_r``).
    ``timed=False``: ``score`` ignores ``log_t`` (no arrival times are drawn; needs
    ``stopping=False``).
    """
    score = _score if score is None else score
    check_search_options(max_steps, chunk_size)
    if stopping and not timed:
        raise ValueError("the stopping rule needs arrival times (timed=True)")

    def prepare(target, proposal):
        return Context(density_ratio(target, proposal), sampling_distribution(proposal, target))

    def init(_key, ctx):
        return search_init(ctx.ratio.log_sup.dtype)

    def step(key, ctx, s):
        ratio, p = ctx.ratio, ctx.proposal
        return search_argmin(key, s, p, ratio.log_ratio, score, chunk_size=chunk_size, max_steps=max_steps,
                             log_bound=ratio.log_sup if stopping else None, timed=timed)

    def running(_ctx, s):
        return search_running(s, max_steps)

    return Kernel(prepare, init, step, running, result, decode, bounded_ratio=stopping)
