"""A* coding with branch and bound for 1-D unimodal ratios: AS*, AD* and depth-limited AD*.

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

Three ways to split a region ``(a, b)`` into children:

* AS* (``encode_bb``, split on sample): at ``X_B``; neither child holds ``X_B``,
  so both draw a fresh truncated Gumbel and location.
* AD* (``encode_bb_dyadic``, dyadic): at the P-median of the region (a dyadic
  partition of P's quantile space). ``X_B`` lies inside a child, but the rest of the
  process (below ``G_B``) is again Poisson, so both children still draw a fresh
  truncated Gumbel and location: every node of the tree carries its own point.
* depth-limited AD* (``encode_dl``, approximate): AD* on the tree cut at depth
  ``kappa - 1``: the search returns the best of its ``2^kappa - 1`` points (one per
  node, the deeper ones confined to ever smaller quantile ranges), like importance
  sampling with that many candidates. The index is a heap index ``< 2^kappa``, sent in a fixed
  ``kappa`` bits; the sample is biased unless ``kappa`` exceeds D_KL by a few bits
  (measured in the tests and ``benchmarks/samplers.py``, as for ORC).

The index is the heap index of the winning region (root 1; children ``2h`` = left
``(a, c)`` and ``2h + 1`` = right ``(c, b)``, ``c`` the split point); node ``h`` draws
its randomness from ``fold_in(key, h)``, so the decoder replays the root-to-node path
(O(depth)) without Q. The queue is a fixed-capacity array inside ``lax.while_loop``
(``max_steps`` expansions, capacity ``max_steps + 1``); the heap index is int32, so
regions deeper than 31 cannot be created -- if one would have been needed (exact
variants), or the expansion budget runs out, ``ok=False``.
"""


from typing import NamedTuple

import jax
import jax.numpy as jnp

from jrec import bb, dists
from jrec.core import INDEX_DTYPE, Code, Context, Kernel, bit_length, run
from jrec.ratio import density_ratio, sampling_distribution
from jrec.spec import Sampler

__all__ = ["SAMPLERS",
    "encode_bb", "decode_bb", "kernel_bb",
    "encode_bb_dyadic", "decode_bb_dyadic", "kernel_bb_dyadic",
    "encode_dl", "decode_dl", "kernel_dl",
    "AStarState", "Region", "SPLITS",
]

DEFAULT_MAX_STEPS = 256
DEFAULT_DL_KAPPA = 12
_MAX_HEAP = 2**30  # children 2h, 2h + 1 of h < 2^30 stay below 2^31
SPLITS = bb.SPLITS


class Region(NamedTuple):
    """A region of A* coding's search (one queue slot, or a ``(capacity,)`` array of them)."""

    ub: jax.Array  # upper bound G + M(B) on the best value inside
    g: jax.Array  # Gumbel maximum of its top point
    x: jax.Array  # that point's location
    a: jax.Array  # the interval (a, b)
    b: jax.Array
    h: jax.Array  # heap index


class AStarState(NamedTuple):
    valid: jax.Array  # (capacity,) queue slots in use
    queue: Region  # (capacity,) queued regions
    lb: jax.Array  # best value found
    best: jax.Array  # its heap index
    steps: jax.Array  # regions expanded
    lost: jax.Array  # a needed region could not be created (depth or capacity)
    done: jax.Array


def _pop(valid, queue: Region):
    """The queued region of largest upper bound: ``(slot, region, queue empty or bound -inf)``."""
    ub = jnp.where(valid, queue.ub, -jnp.inf)
    k = jnp.argmax(ub)
    return k, jax.tree_util.tree_map(lambda f: f[k], queue), ub[k]


def _push(valid, queue: Region, region: Region, want):
    """Queue ``region`` where ``want``, in the first free slot: ``(valid, queue, had_slot)``."""
    free = ~valid
    slot = jnp.argmax(free)
    put = want & free[slot]
    queue = jax.tree_util.tree_map(lambda f, v: f.at[slot].set(jnp.where(put, v, f[slot])), queue, region)
    return valid.at[slot].set(jnp.where(put, True, valid[slot])), queue, free[slot]


def _node(key, h, proposal, a, b, g_parent):
    """Gumbel maximum and location of region ``h = (a, b)`` given its parent's maximum: the
    branch-and-bound node draws (:func:`jrec.bb.node`) of the shared randomness."""
    e, x = bb.node(key, h, proposal, a, b)
    log_mass = jnp.log(dists.interval_mass(proposal, a, b))
    return log_mass - jnp.log(e + jnp.exp(log_mass - g_parent)), x


def _prepare(target, proposal):
    ratio = density_ratio(target, proposal)
    if ratio.block:
        raise ValueError("astar_bb needs a scalar (1-D) target and proposal; vmap over coordinates")
    return Context(ratio, sampling_distribution(proposal, target))


def _child(key, h, p, a, b, g, c, side: int):
    """Region, Gumbel maximum and location of child ``h`` (``side`` 0: ``(a, c)``, 1: ``(c, b)``).

    Given its parent's point, the rest of the Gumbel process on the parent's region is a
    Poisson process below ``g``: whatever the split, each child's top point is a Gumbel of
    its mass truncated at ``g``, located by ``P`` restricted to the child.
    """
    ca, cb = (a, c) if side == 0 else (c, b)
    gn, xn = _node(key, h, p, ca, cb, g)
    return ca, cb, gn, xn


def _kernel(max_steps: int, split: str, leaf_heap: int | None) -> Kernel:
    """A* search of the Gumbel process (see the module docstring).

    ``leaf_heap``: nodes with heap index ``>= leaf_heap`` get no children (the depth
    limit of :func:`kernel_dl`); ``None``: exact search (regions up to depth 30).
    """
    if not (isinstance(max_steps, int) and 1 <= max_steps <= 4096):
        raise ValueError(f"max_steps (expansions) must be an int in [1, 4096], got {max_steps!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    cap = max_steps + 1
    limit = _MAX_HEAP if leaf_heap is None else leaf_heap

    def bound(ratio, a, b):
        return ratio.log_ratio(jnp.clip(ratio.mode, a, b))

    def init(key, ctx):
        ratio, p = ctx.ratio, ctx.proposal
        dt = ratio.log_sup.dtype
        lo, hi = dists.support(p, dt)
        one = jnp.ones((), INDEX_DTYPE)
        g, x = _node(key, one, p, lo, hi, jnp.asarray(jnp.inf, dt))
        z = jnp.zeros((cap,), dt)
        empty = Region(z, z, z, z, z, jnp.zeros((cap,), INDEX_DTYPE))
        valid, queue, _ = _push(jnp.zeros((cap,), bool), empty, Region(g + ratio.log_sup, g, x, lo, hi, one),
                                jnp.asarray(True))
        return AStarState(valid, queue, lb=jnp.asarray(-jnp.inf, dt), best=jnp.zeros((), INDEX_DTYPE),
                          steps=jnp.zeros((), jnp.int32), lost=jnp.asarray(False), done=jnp.asarray(False))

    def step(key, ctx, s):
        ratio, p = ctx.ratio, ctx.proposal
        k, r, top = _pop(s.valid, s.queue)
        stop = top <= s.lb  # nothing left can beat the best value (or the queue is empty)
        val = r.g + ratio.log_ratio(r.x)
        better = ~stop & (val > s.lb)
        lb = jnp.where(better, val, s.lb)
        best = jnp.where(better, r.h, s.best)
        valid = s.valid.at[k].set(s.valid[k] & stop)  # expanded: out of the queue
        can = r.h < limit
        c = bb.split_point(p, r.a, r.b, r.x, split)
        queue, lost = s.queue, s.lost
        for side in (0, 1):
            ch = (2 * jnp.where(can, r.h, 1) + side).astype(INDEX_DTYPE)
            ca, cb, g, x = _child(key, ch, p, r.a, r.b, r.g, c, side)
            cub = g + bound(ratio, ca, cb)
            want = (cub > lb) & ~stop
            valid, queue, had_slot = _push(valid, queue, Region(cub, g, x, ca, cb, ch), want & can)
            # a region the search needed but could not queue: past the heap's depth (exact
            # variants) or out of queue slots; below the depth limit of the DL variant it is
            # simply not part of the (truncated) tree
            lost = lost | (want & ~had_slot if leaf_heap is not None else want & ~(had_slot & can))
        steps = s.steps + jnp.where(stop, 0, 1).astype(jnp.int32)
        return AStarState(valid, queue, lb, best, steps, lost, stop)

    def running(_ctx, s):
        return (~s.done) & (s.steps < max_steps)

    def result(ctx, s):
        ok = s.done & ~s.lost & (s.best >= 1)
        return s.best, s.steps, ok

    decoders = {"sample": decode_bb, "dyadic": decode_bb_dyadic}
    return Kernel(_prepare, init, step, running, result, decode_dl if leaf_heap else decoders[split],
                  bounded_ratio=True)


def kernel_bb(*, max_steps: int = DEFAULT_MAX_STEPS) -> Kernel:
    """AS* (A* coding with branch and bound, split on sample) as a :class:`~jrec.core.Kernel`."""
    return _kernel(max_steps, "sample", None)


def kernel_bb_dyadic(*, max_steps: int = DEFAULT_MAX_STEPS) -> Kernel:
    """AD* (A* coding with branch and bound, dyadic splits) as a :class:`~jrec.core.Kernel`."""
    return _kernel(max_steps, "dyadic", None)


def _check_kappa(kappa):
    if not (isinstance(kappa, int) and 1 <= kappa <= 30):
        raise ValueError(f"kappa (index bits) must be an int in [1, 30], got {kappa!r}")


def kernel_dl(*, kappa: int = DEFAULT_DL_KAPPA, max_steps: int = DEFAULT_MAX_STEPS) -> Kernel:
    """Depth-limited AD* (tree depth ``kappa - 1``, ``kappa``-bit index) as a Kernel."""
    _check_kappa(kappa)
    return _kernel(max_steps, "dyadic", 2 ** (kappa - 1))


def encode_bb(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS) -> Code:
    """AS*: best-first search of the Gumbel process; ``index`` = heap index of the winner."""
    return run(kernel_bb(max_steps=max_steps), key, target, proposal)


def encode_bb_dyadic(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS) -> Code:
    """AD*: as :func:`encode_bb` with regions split at their P-median."""
    return run(kernel_bb_dyadic(max_steps=max_steps), key, target, proposal)


def encode_dl(key, target, proposal, *, kappa: int = DEFAULT_DL_KAPPA,
              max_steps: int = DEFAULT_MAX_STEPS) -> Code:
    """Depth-limited AD* (approximate): the best of the ``2^kappa - 1`` tree points; ``kappa``-bit index.

    ``max_steps`` bounds the expansions (the tree has ``2^kappa - 1`` nodes, but the
    search typically expands O(D_KL) of them); running out gives ``ok=False``.
    """
    return run(kernel_dl(kappa=kappa, max_steps=max_steps), key, target, proposal)


def _decode(key, index, proposal, split: str):
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
        c = bb.split_point(p, a, b, x, split)
        go_right = (h & 1) == 1  # only the child on the path is drawn
        a, b = jnp.where(go_right, c, a), jnp.where(go_right, b, c)
        g, x = _node(key, h, p, a, b, g)
        return a, b, g, x

    _, _, _, x = jax.lax.fori_loop(2, depth + 1, body, (lo, hi, g0, x0))
    return jnp.where(depth >= 1, x, jnp.nan)


def decode_bb(key, index, proposal, **_static):
    """AS* decoder: the sample of heap index ``index``."""
    return _decode(key, index, proposal, "sample")


def decode_bb_dyadic(key, index, proposal, **_static):
    """AD* decoder: the sample of heap index ``index``."""
    return _decode(key, index, proposal, "dyadic")


#: Depth-limited AD* decodes on the same tree as AD*.
decode_dl = decode_bb_dyadic


_ASTAR_REQUIRES = ("log r", "unimodal r with its mode", "P's CDF and quantile")
SAMPLERS = (
    Sampler(
        "astar_bb", encode_bb, decode_bb, kernel_bb, exact=True, requires=_ASTAR_REQUIRES, bounded_ratio=True,
        one_dimensional=True, index_shape=(), options={"max_steps": DEFAULT_MAX_STEPS},
        reference="Flamich, Markou & Hernandez-Lobato, ICML 2022 (AS*: A* coding, split on sample)",
        container_id=7, default_code="delta", index_range=lambda o: (1, 2**31 - 1),
    ),
    Sampler(
        "astar_bb_dyadic", encode_bb_dyadic, decode_bb_dyadic, kernel_bb_dyadic, exact=True,
        requires=_ASTAR_REQUIRES, bounded_ratio=True, one_dimensional=True, index_shape=(),
        options={"max_steps": DEFAULT_MAX_STEPS},
        reference="Flamich, Markou & Hernandez-Lobato, ICML 2022 (AD*: A* coding, dyadic splits)",
        container_id=8, default_code="delta", index_range=lambda o: (1, 2**31 - 1),
    ),
    Sampler(
        "astar_dl", encode_dl, decode_dl, kernel_dl, exact=False, requires=_ASTAR_REQUIRES,
        bounded_ratio=True, one_dimensional=True, index_shape=(),
        options={"kappa": DEFAULT_DL_KAPPA, "max_steps": DEFAULT_MAX_STEPS},
        reference="Flamich, Markou & Hernandez-Lobato, ICML 2022 (depth-limited AD*, approximate)",
        container_id=9, index_kind="fixed", default_code="fixed",
        index_range=lambda o: (1, 2 ** o["kappa"] - 1),  # heap index of a node of the depth-(kappa - 1) tree
    ),
)
