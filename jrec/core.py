"""Types shared by every sampler: the :class:`Code` result and jrec's exceptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "Code",
    "JrecError",
    "InvalidDistributionError",
    "UnsupportedDistributionError",
    "InfiniteDivergenceError",
    "ShapeMismatchError",
    "DtypeMismatchError",
    "NonTerminationError",
    "Context",
    "Kernel",
    "outcome",
    "run",
    "INDEX_DTYPE",
    "MAX_INDEX",
    "bit_length",
    "BitstreamError",
    "CodingError",
]

INDEX_DTYPE = jnp.int32
MAX_INDEX = 2**31 - 1


class Code(NamedTuple):
    """Result of an encoder (a pytree, so it vmaps and jits).

    Attributes:
      index: what is transmitted. ``int32``; shape ``()`` for candidate numbers and
        heap indices, ``(2,)`` = ``(shard, local index)`` for parallel GPRS,
        ``(d,)`` for dithered quantisation of a ``d``-vector.
      sample: the selected sample, equal (bit for bit, by construction) to what
        ``decode(key, index, proposal)`` returns.
      num_steps: candidates (or tree nodes) examined.
      ok: ``False`` when a bound (``max_steps``, index range) was hit; the sample
        is then not an exact draw from the target.
    """

    index: jax.Array
    sample: jax.Array
    num_steps: jax.Array
    ok: jax.Array


class JrecError(Exception):
    """Base class of jrec's errors."""


class InvalidDistributionError(JrecError, ValueError):
    """NaN/inf/non-positive parameters, or a target not absolutely continuous w.r.t. P."""


class UnsupportedDistributionError(JrecError, TypeError):
    """The sampler has no path for this (target, proposal) family."""


class InfiniteDivergenceError(JrecError, ValueError):
    """The sampler needs a bounded density ratio (finite D_inf) and it is not."""


class ShapeMismatchError(JrecError, ValueError):
    """Shapes of keys, targets, proposals or indices do not fit together."""


class DtypeMismatchError(JrecError, TypeError):
    """Target and proposal parameters have different floating dtypes."""


class NonTerminationError(JrecError, RuntimeError):
    """A bounded loop hit its bound (``ok=False``): the result is not exact."""


class BitstreamError(JrecError, ValueError):
    """Bytes or bits that cannot be decoded (see :mod:`jrec.bitstream` for the subclasses)."""


class CodingError(BitstreamError):
    """A value cannot be index-coded, or a bit string does not hold what was asked for."""


def bit_length(n):
    """Number of bits of a non-negative int32/uint32 array (``0`` for ``n <= 0``), in JAX."""
    n = jnp.maximum(jnp.asarray(n), 0).astype(jnp.uint32)
    return (32 - jax.lax.clz(n)).astype(INDEX_DTYPE)


class Context(NamedTuple):
    """A problem's constants, computed once by a kernel's ``prepare``.

    Attributes:
      ratio: the density ratio r = dQ/dP (:class:`jrec.ratio.DensityRatio`).
      proposal: the distribution candidates are drawn from (the factorised proposal).
      table: the sampler's own table (GPRS's stretch function, GRS's excess mass, ...);
        ``None`` when it has none.
    """

    ratio: Any
    proposal: Any
    table: Any = None


class Kernel(NamedTuple):
    """A sampler written as a resumable loop.

    ``encode`` is :func:`run` of the sampler's kernel; the lane-refill batch runner
    (:mod:`jrec.batch`) drives the same functions, so both give identical indices.

    Attributes:
      prepare: ``(target, proposal) -> ctx``: per-problem constants (density ratio,
        stretch table, ...), a pytree.
      init: ``(key, ctx) -> state``, a pytree.
      step: ``(key, ctx, state) -> state``: one loop iteration.
      running: ``(ctx, state) -> bool``: loop condition (bounded by the options).
      result: ``(ctx, state) -> (index, num_steps, ok)``.
      decode: ``(key, index, proposal) -> sample`` (what the receiver runs).
      bounded_ratio: the loop assumes ``sup r < inf``: ``ok`` also needs a finite
        ``ctx.ratio.log_sup`` (added once, by :func:`outcome`).
    """

    prepare: Callable
    init: Callable
    step: Callable
    running: Callable
    result: Callable
    decode: Callable
    bounded_ratio: bool = False


def outcome(kernel: Kernel, ctx, state):
    """``(index, num_steps, ok)`` of a finished (or stopped) loop: the kernel's result, with
    ``ok`` false where a bounded-ratio sampler met an unbounded ratio."""
    index, steps, ok = kernel.result(ctx, state)
    if kernel.bounded_ratio:
        ok = ok & jnp.isfinite(ctx.ratio.log_sup)
    return index, steps, ok


def run(kernel: Kernel, key, target, proposal) -> Code:
    """Run a kernel to completion for one problem; ``sample = decode(key, index)``."""
    ctx = kernel.prepare(target, proposal)
    state = jax.lax.while_loop(
        lambda s: kernel.running(ctx, s), lambda s: kernel.step(key, ctx, s), kernel.init(key, ctx)
    )
    index, steps, ok = outcome(kernel, ctx, state)
    return Code(index, kernel.decode(key, index, proposal), steps, ok)
