"""Batch runner with lane refill: the cost of a batch tracks the mean step count.

A plain ``jax.vmap`` of an encoder runs every lane of its ``while_loop`` as long as the
slowest one, and REC step counts are heavy-tailed (global samplers: around
``exp(D_inf)`` with a long tail), so a batch of 10^4 waits for its worst member.
:func:`refill` keeps ``lanes`` problems in flight inside one jitted loop: when a lane's
problem finishes, its result is written out and the lane takes the next problem.

It drives the same :class:`~jrec.core.Kernel` functions as ``encode`` (``prepare``,
``init``, ``step``, ``running``, ``result``), so indices are those of
``jax.vmap(encode)``; samples are decoded from the indices at the end, in one
vmapped call, exactly as the receiver does.

Memory: the per-problem constants (``prepare``: density ratio, GPRS stretch table,
~7.4 kB per problem in float32) are built for a *block* of problems at a time
(``block=65536`` problems, ~0.5 GB for GPRS); blocks run one after another with
``lax.map``, so memory does not grow with ``N``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jrec.core import Code, Kernel, outcome
from jrec.registry import get

__all__ = ["refill", "encode"]


def _take(tree, idx):
    return jax.tree_util.tree_map(lambda x: x[idx], tree)


def _select(mask, a, b):
    def sel(x, y):
        return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)), x, y)

    return jax.tree_util.tree_map(sel, a, b)


def refill(kernel: Kernel, keys, target, proposal, *, lanes: int = 256, proposal_axis=None,
           block: int = 65536) -> Code:
    """Encode ``N`` problems with ``lanes`` lanes, refilling finished lanes (pure, jittable).

    Args:
      kernel: a sampler's kernel, e.g. ``jrec.gprs.kernel()``.
      keys: ``N`` keys, one per problem (leading axis).
      target: batched target (leading axis ``N``, vmappable with ``in_axes=0``).
      proposal: shared proposal (``proposal_axis=None``) or batched (``0``).
      lanes: problems in flight at once (static).
      block: problems whose constants are built at once (static; bounds memory).

    Returns:
      a :class:`~jrec.core.Code` with leading axis ``N``, identical to
      ``jax.vmap(encode)(keys, target, proposal)``.
    """
    n = keys.shape[0]
    if n > block:
        nb = -(-n // block)

        def blocks(tree):
            def one(x):
                x = jnp.concatenate([x, jnp.repeat(x[-1:], nb * block - n, axis=0)], axis=0)
                return x.reshape((nb, block) + x.shape[1:])

            return jax.tree_util.tree_map(one, tree)

        batched_p = proposal_axis is not None
        # the last block is padded (with copies of the last problem, for valid shapes); its
        # count keeps the padding out of the loop, which would otherwise run every copy
        counts = jnp.minimum(block, n - block * jnp.arange(nb, dtype=jnp.int32))
        args = (blocks(keys), blocks(target), blocks(proposal) if batched_p else None, counts)

        def run_block(a):
            return _refill(kernel, a[0], a[1], a[2] if batched_p else proposal, lanes, proposal_axis,
                           count=a[3])

        out = jax.lax.map(run_block, args)
        return jax.tree_util.tree_map(lambda x: x.reshape((nb * block,) + x.shape[2:])[:n], out)
    return _refill(kernel, keys, target, proposal, lanes, proposal_axis)


def _refill(kernel: Kernel, keys, target, proposal, lanes, proposal_axis, count=None) -> Code:
    """One block: problems ``0 .. count - 1`` of ``keys`` / ``target`` are run (``count``:
    traced, default all); the outputs of the rest (padding) are left unspecified."""
    n = keys.shape[0]
    count = n if count is None else count
    num_lanes = max(1, min(int(lanes), n))
    ctxs = jax.vmap(kernel.prepare, in_axes=(0, proposal_axis))(target, proposal)
    v_init = jax.vmap(kernel.init)
    v_step = jax.vmap(kernel.step)
    v_running = jax.vmap(kernel.running)
    v_result = jax.vmap(lambda c, s: outcome(kernel, c, s))

    pid0 = jnp.arange(num_lanes, dtype=jnp.int32)
    state0 = v_init(keys[pid0], _take(ctxs, pid0))
    res_shape = jax.eval_shape(v_result, _take(ctxs, pid0), state0)
    outs0 = jax.tree_util.tree_map(lambda a: jnp.zeros((n,) + a.shape[1:], a.dtype), res_shape)

    def cond(carry):
        pid, _, _, _ = carry
        return jnp.any(pid < count)

    def body(carry):
        pid, nxt, state, outs = carry
        live = pid < count
        pc = jnp.minimum(pid, n - 1)
        ctx, k = _take(ctxs, pc), keys[pc]
        go = live & v_running(ctx, state)
        state = _select(go, v_step(k, ctx, state), state)
        fin = live & ~v_running(ctx, state)
        res = v_result(ctx, state)
        dest = jnp.where(fin, pid, n)  # out of range: dropped
        outs = jax.tree_util.tree_map(lambda o, r: o.at[dest].set(r, mode="drop"), outs, res)
        new_pid = jnp.where(fin, nxt + jnp.cumsum(fin.astype(jnp.int32)) - 1, pid)
        nxt = nxt + jnp.sum(fin.astype(jnp.int32))
        npc = jnp.minimum(new_pid, n - 1)
        state = _select(fin, v_init(keys[npc], _take(ctxs, npc)), state)
        return new_pid, nxt, state, outs

    carry = (pid0, jnp.asarray(num_lanes, jnp.int32), state0, outs0)
    _, _, _, (index, steps, ok) = jax.lax.while_loop(cond, body, carry)
    samples = jax.vmap(kernel.decode, in_axes=(0, 0, proposal_axis))(keys, index, proposal)
    return Code(index, samples, steps, ok)


def encode(method: str, keys, target, proposal, *, lanes: int = 256, proposal_axis=None,
           block: int = 65536, **options) -> Code:
    """:func:`refill` for a registry sampler: ``jrec.batch.encode("gprs", keys, targets, prior)``."""
    return refill(get(method).kernel(**options), keys, target, proposal, lanes=lanes,
                  proposal_axis=proposal_axis, block=block)
