"""Lane-refill batching gives exactly the results of plain vmap."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import OPTIONS, encoder, keys

import jrec
import jrec.batch

OPTS = {**OPTIONS, "dither": {"step": 0.3}}  # (orc: as the other batch-64 tests, the same programs)


def _mixed_targets(n, method):
    """A batch with very different difficulties (KL from ~0.1 to ~6 bits)."""
    rng = np.random.default_rng(0)
    loc = jnp.asarray(rng.normal(size=n) * 0.8, jnp.float32)
    if method == "dither":
        return lambda lo: distrax.Uniform(lo, lo + 0.3), loc
    scale = jnp.asarray(np.exp(rng.uniform(np.log(0.02), np.log(0.9), size=n)), jnp.float32)
    return (lambda m, s: distrax.Normal(m, s)), (loc, scale)


# The runner is under test, not the sampler: one sampler per kernel (gprs_bb_dyadic runs
# grc_bb's jrec.bb kernel, astar_bb_dyadic and astar_dl astar_bb's with another split and
# a depth limit). Lanes that do not divide the batch for each; one lane (each problem
# refills the lane at once) for a sampler of each kind of loop: candidate search with a
# stopping rule (pfr) and with a fixed budget (orc), branch and bound (gprs_bb), none (dither).
LANES = {"pfr": (1, 7), "gprs_bb": (1, 7), "orc": (1, 7), "dither": (1, 7)}


@pytest.mark.parametrize("method", ["pfr", "gprs", "gprs_parallel", "gprs_bb", "grs", "grc_bb", "astar_bb",
                                    "orc", "dither"])
def test_refill_equals_vmap(method):
    n = 64
    make, params = _mixed_targets(n, method)
    params = params if isinstance(params, tuple) else (params,)
    p = distrax.Normal(0.0, 1.0)
    opts = OPTS.get(method, {})
    ks = keys(n, seed=5)
    plain = encoder(method, **opts)(ks, jax.vmap(make)(*params))
    lane_counts = LANES.get(method, (7,))
    # (the lane counts' runners in one program: fewer compiles)
    codes = jax.jit(lambda k, *a: [jrec.batch.encode(method, k, jax.vmap(make)(*a), p, lanes=lanes, **opts)
                                   for lanes in lane_counts])(ks, *params)
    for lanes, code in zip(lane_counts, codes, strict=True):
        for name in ("index", "num_steps", "ok", "sample"):
            np.testing.assert_array_equal(np.asarray(getattr(code, name)), np.asarray(getattr(plain, name)),
                                          err_msg=f"{name}, {lanes} lanes")


def test_refill_stuck_lane_does_not_corrupt_others():
    """A problem that hits max_steps is reported (ok=False) and the others are unaffected."""
    n = 50
    loc = jnp.zeros(n).at[7].set(2.5)
    scale = jnp.full(n, 0.5).at[7].set(0.01)  # D_inf ~ 7.8 nats: needs ~2500 steps
    p = distrax.Normal(0.0, 1.0)
    code = jax.jit(lambda k, m, s: jrec.batch.encode("gprs", k, distrax.Normal(m, s), p, lanes=4,
                                                    max_steps=64))(keys(n), loc, scale)
    ok = np.asarray(code.ok)
    assert not ok[7] and ok[np.arange(n) != 7].all()
    plain = jax.jit(jax.vmap(lambda k, m, s: jrec.gprs.encode(k, distrax.Normal(m, s), p, max_steps=64)))(
        keys(n), loc, scale)
    np.testing.assert_array_equal(np.asarray(code.index), np.asarray(plain.index))


@pytest.mark.parametrize("method", ["gprs"])  # (the blocks are the runner's: any kernel)
def test_refill_in_blocks_equals_one_block(method):
    """Problems processed in blocks (bounded memory for the per-problem tables): same results."""
    n = 100
    make, (loc, scale) = _mixed_targets(n, method)
    p = distrax.Normal(0.0, 1.0)
    ks = keys(n, seed=9)
    one = jax.jit(lambda k, a, b: jrec.batch.encode(method, k, make(a, b), p, lanes=16))(ks, loc, scale)
    blocked = jax.jit(lambda k, a, b: jrec.batch.encode(method, k, make(a, b), p, lanes=16, block=32))(
        ks, loc, scale)
    for name in ("index", "num_steps", "ok", "sample"):
        np.testing.assert_array_equal(np.asarray(getattr(blocked, name)), np.asarray(getattr(one, name)),
                                      err_msg=name)


def test_padding_of_the_last_block_takes_no_steps():
    """With ``N`` not a multiple of ``block`` the last block is padded to shape; the loop
    runs the ``N`` real problems only (it used to run every padded copy of the last one:
    81,000 problems of block 65,536 cost 12x more than 80,000)."""
    from jrec.core import Kernel

    steps_run = []

    def step(key, ctx, s):
        jax.debug.callback(lambda: steps_run.append(1))
        return s + 1

    # problem i needs need[i] steps; its "index" is the number of steps it took
    toy = Kernel(prepare=lambda t, p: t, init=lambda k, ctx: jnp.int32(0), step=step,
                 running=lambda ctx, s: s < ctx, result=lambda ctx, s: (s, s, jnp.bool_(True)),
                 decode=lambda k, i, p: i.astype(jnp.float32))
    n, block = 70, 32  # 3 blocks, the last one 6 problems and 26 padding
    need = jnp.asarray(1 + np.arange(n) % 5, jnp.int32)
    code = jax.jit(lambda k, t: jrec.batch.refill(toy, k, t, None, lanes=1, block=block))(keys(n), need)
    jax.effects_barrier()
    np.testing.assert_array_equal(np.asarray(code.index), np.asarray(need))
    assert bool(jnp.all(code.ok))
    # one lane: one step per loop iteration, and a problem's last step also refills the lane
    assert len(steps_run) == int(need.sum()), (len(steps_run), int(need.sum()))
