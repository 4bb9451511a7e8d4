"""Dithered (universal) quantisation: an exact uniform-noise channel in one step.

Ziv, "On universal quantization", IEEE Trans. IT 1985; Agustsson & Theis,
"Universally quantized neural compression", NeurIPS 2020.

Encoder and decoder share a dither ``U ~ U(0, 1)`` (from the key). To send a
sample of the target ``Q = U(low, low + step)`` the encoder transmits the integer

    K = ceil((low - step * U) / step)

and both sides output ``X = step * (U + K)``, which lies in ``[low, low + step)``
and is exactly uniform there (for every ``low``). The index is an integer, to be
entropy coded with the proposal (the marginal of X, e.g. prior convolved with the
noise): its cost is about ``-log2 P(cell)``, ``I(Y; Y + noise)`` on average.

Works element-wise on vectors (a batched ``distrax.Uniform``); ``step`` is the
width of the target, a static option the decoder needs. Limit: ``|K| < 2^30``
(beyond it ``ok=False``).
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp

from jrec import dists
from jrec.core import INDEX_DTYPE, Code, Kernel, UnsupportedDistributionError, run
from jrec.spec import Sampler

__all__ = ["SAMPLERS", "encode", "decode", "kernel"]


def _dither(key, shape, dtype):
    return jax.random.uniform(jax.random.fold_in(key, 0), shape, dtype)


def kernel(*, step: float) -> Kernel:
    """Dithered quantisation as a (one-iteration) :class:`~jrec.core.Kernel`."""
    if step is None or not float(step) > 0:
        raise ValueError(f"dither needs a positive static step (the decoder needs it), got {step!r}")

    def prepare(target, proposal):
        if not isinstance(target, distrax.Uniform):
            raise UnsupportedDistributionError(
                "dither needs a distrax.Uniform target (the uniform-noise channel), "
                f"got {type(target).__name__}")
        return target.low

    def init(_key, low):
        return jnp.zeros(low.shape, INDEX_DTYPE), jnp.asarray(False), jnp.asarray(False)

    def one_step(key, low, _state):
        u = _dither(key, low.shape, low.dtype)
        k = jnp.ceil(low / jnp.asarray(step, low.dtype) - u)
        ok = jnp.all(jnp.abs(k) < 2.0**30)  # the index code (zigzag + Elias gamma) covers |K| < 2^30
        index = jnp.clip(k, -(2.0**30) + 1, 2.0**30 - 1).astype(INDEX_DTYPE)
        return index, ok, jnp.asarray(True)

    def running(_low, state):
        return ~state[2]

    def result(_low, state):
        return state[0], jnp.ones((), INDEX_DTYPE), state[1]

    def dec(key, index, proposal, **_static):
        return decode(key, index, proposal, step=step)

    return Kernel(prepare, init, one_step, running, result, dec)


def encode(key, target, proposal=None, *, step: float) -> Code:
    """Quantise with a shared dither; ``code.sample ~ U(low, low + step)`` exactly.

    Args:
      key: shared PRNG key.
      target: ``distrax.Uniform(low, low + step)`` (possibly batched).
      proposal: the entropy model of the index; also fixes the output dtype.
      step: the quantiser step, a static option the decoder needs too.
    """
    return run(kernel(step=step), key, target, proposal if proposal is not None else target)


def decode(key, index, proposal=None, *, step: float):
    """``X = step * (U + index)`` with the shared dither ``U`` (dtype of the proposal)."""
    index = jnp.asarray(index, INDEX_DTYPE)
    dtype = dists.dtype_of(proposal) if proposal is not None else jnp.float32
    u = _dither(key, index.shape, dtype)
    return jnp.asarray(step, dtype) * (u + index.astype(dtype))


SAMPLERS = (
    Sampler(
        "dither", encode, decode, kernel, exact=True, requires=("uniform target of width step",),
        bounded_ratio=False, one_dimensional=False, index_shape="d", options={"step": None},
        reference="Ziv 1985; Agustsson & Theis, NeurIPS 2020", container_id=5, index_kind="signed",
    ),
)
