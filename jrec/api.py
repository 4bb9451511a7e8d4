"""Checked, jitted conveniences on top of the pure samplers.

``jrec.encode(key, target, proposal, method=...)`` validates its inputs with
concrete values (outside jit), runs the sampler jitted (vmapped over a batch of
problems when ``key`` carries batch dimensions), and raises a clear
:class:`~jrec.core.JrecError` instead of returning a wrong answer:

* unsupported families, NaN/inf or non-positive parameters, a target that is not
  absolutely continuous w.r.t. the proposal;
* an unbounded density ratio (``D_inf = inf``) for a sampler that needs a bounded
  one -- the message says which samplers work instead;
* shape or dtype mismatches between keys, targets and proposals;
* ``ok=False`` results (a loop bound was hit).

Batching: one key per problem. With ``key`` of shape ``B + (2,)`` (raw keys) or
``B`` (typed keys) the target's leading batch dimensions ``B`` index problems; the
rest (if any) is the block of a multivariate sampler (``pfr``, ``orc``). The
proposal is shared, or carries the same leading ``B``.
"""

from __future__ import annotations

import functools
import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from jrec import dists
from jrec.batch import refill
from jrec.core import (
    Code,
    DtypeMismatchError,
    InfiniteDivergenceError,
    InvalidDistributionError,
    NonTerminationError,
    ShapeMismatchError,
    UnsupportedDistributionError,
)
from jrec.ratio import as_factorised, density_ratio
from jrec.registry import get

__all__ = ["encode", "decode", "validate"]

def _params(dist, shape):
    names = dists.FAMILIES[type(dist)]
    return tuple(jnp.broadcast_to(jnp.asarray(getattr(dist, n)), shape) for n in names)


def _key_batch_shape(key) -> tuple:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return tuple(key.shape)
    if key.dtype != jnp.uint32 or key.ndim < 1 or key.shape[-1] != 2:
        raise ShapeMismatchError(
            f"key must be a PRNG key (jax.random.key / PRNGKey) with one key per problem; "
            f"got dtype {key.dtype}, shape {key.shape}"
        )
    return tuple(key.shape[:-1])


def _float_leaves(dist):
    return [jnp.asarray(x) for x in jax.tree_util.tree_leaves(dist)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]


def _check_params(dist, role: str):
    # positivity first (on finite values): some distrax classes derive NaN constants at
    # construction from invalid parameters, which would otherwise read as "NaN parameters"
    for attr in ("scale", "concentration", "rate", "alpha", "beta"):
        v = getattr(dist, attr, None)
        if v is not None:
            v = jnp.asarray(v)
            if not bool(jnp.all((v > 0) | ~jnp.isfinite(v))):
                raise InvalidDistributionError(f"{role} {type(dist).__name__} needs {attr} > 0")
    for x in _float_leaves(dist):
        if not bool(jnp.all(jnp.isfinite(x))):
            raise InvalidDistributionError(f"{role} has NaN or infinite parameters: {type(dist).__name__}")
    if isinstance(dist, distrax.Uniform) and not bool(jnp.all(dist.high > dist.low)):
        raise InvalidDistributionError(f"{role} Uniform needs high > low")
    if isinstance(dist, dists.Triangular) and not bool(
        jnp.all((dist.low <= dist.peak) & (dist.peak <= dist.high) & (dist.low < dist.high))
    ):
        raise InvalidDistributionError(f"{role} Triangular needs low <= peak <= high and low < high")


def validate(target, proposal, method: str, batch_shape: tuple = (), **options):
    """Raise a :class:`~jrec.core.JrecError` if ``method`` cannot code ``target`` with ``proposal``.

    Returns the factorised ``(target, proposal)`` the sampler will see.
    """
    sampler = get(method)
    t, _ = as_factorised(target)
    p, _ = as_factorised(proposal) if proposal is not None else (None, False)
    nb = len(batch_shape)
    t_shape = tuple(t.batch_shape) + tuple(t.event_shape)
    if t_shape[:nb] != tuple(batch_shape):
        raise ShapeMismatchError(
            f"target batch shape {t_shape} does not start with the key batch shape {batch_shape} "
            "(one key per problem)"
        )
    if method == "dither":
        if not isinstance(t, distrax.Uniform):
            raise UnsupportedDistributionError(
                "dither simulates a uniform-noise channel: the target must be distrax.Uniform, "
                f"got {type(t).__name__}"
            )
        _check_params(t, "target")
        step = options.get("step")
        if step is None:
            raise ValueError("dither needs the static option step= (the decoder needs it too)")
        if not np.allclose(np.asarray(t.high - t.low), step, rtol=1e-5):
            raise ShapeMismatchError(f"dither: target width high - low must equal step={step}")
        return t, p
    for d, role in ((t, "target"), (p, "proposal")):
        if type(d) not in dists.FAMILIES:
            raise UnsupportedDistributionError(
                f"{role}: the checked wrapper supports {', '.join(c.__name__ for c in dists.FAMILIES)} "
                f"(and diagonal Normal blocks), got {type(d).__name__}; call jrec.{method.split('_')[0]} "
                "directly for other distrax distributions"
            )
        _check_params(d, role)
    dts = {x.dtype for x in _float_leaves(t) + _float_leaves(p)}
    if len(dts) > 1:
        raise DtypeMismatchError(
            f"target and proposal parameters must share one floating dtype, got {sorted(map(str, dts))}"
        )
    p_shape = tuple(p.batch_shape) + tuple(p.event_shape)
    block = t_shape[nb:]
    if p_shape not in (block, tuple(batch_shape) + block):
        raise ShapeMismatchError(
            f"proposal shape {p_shape} must be {block} (shared) or {tuple(batch_shape) + block} "
            "(per problem); a block's proposal has the block's shape (the decoder draws from it)"
        )
    if sampler.one_dimensional and block:
        raise ShapeMismatchError(
            f"{method} codes scalar targets; got a block of shape {block}. Pass one key per "
            f"coordinate (key batch shape {tuple(batch_shape) + block}) or use pfr / orc for blocks"
        )
    both_normal = isinstance(t, distrax.Normal) and isinstance(p, distrax.Normal)
    if block and not both_normal:
        raise UnsupportedDistributionError(
            f"{method}: multivariate blocks need diagonal Normal target and proposal, "
            f"got {type(t).__name__} / {type(p).__name__}"
        )
    # absolute continuity: supp Q must lie inside supp P
    lo_t, hi_t = dists.support(t)
    lo_p, hi_p = dists.support(p)
    if not bool(jnp.all((lo_t >= lo_p) & (hi_t <= hi_p))):
        raise InvalidDistributionError(
            f"target {type(t).__name__} is not absolutely continuous w.r.t. the proposal "
            f"{type(p).__name__}: its support [{np.min(lo_t)}, {np.max(hi_t)}] leaves the proposal's "
            f"[{np.max(lo_p)}, {np.min(hi_p)}]"
        )
    if sampler.bounded_ratio:
        ct, cp = type(t), type(p)

        def log_sup(tp, pp):
            return density_ratio(ct(*tp), cp(*pp)).log_sup

        fn = log_sup
        for _ in t_shape if not block else batch_shape:
            fn = jax.vmap(fn)
        d_inf = fn(_params(t, t_shape), _params(p, t_shape))
        bad = ~np.isfinite(np.asarray(d_inf))
        if bad.any():
            where = np.argwhere(bad)[:3].tolist()
            raise InfiniteDivergenceError(
                f"{method} needs a bounded density ratio, but D_inf[Q||P] = inf for "
                f"{int(bad.sum())} problem(s) (e.g. at {where}): the target is wider than the "
                "proposal (Normal: target scale >= proposal scale) or has heavier tails. "
                "Use 'orc' (approximate, any ratio), or a wider proposal."
            )
    return t, p


@functools.lru_cache(maxsize=128)
def _compiled(method: str, kind: str, options: tuple, nbatch: int, t_cls, p_cls, p_batched: bool,
              lanes: int | None = None):
    """jit(vmap^nbatch(fn)) taking distribution *parameters* (rebuilt inside)."""
    sampler = get(method)
    opts = dict(options)

    if kind == "encode" and lanes is not None:
        def run_refill(key, tp, pp):
            target = jax.vmap(t_cls)(*tp)
            if p_batched:
                prop = jax.vmap(p_cls)(*pp)
            else:
                prop = p_cls(*pp) if p_cls else None
            return refill(sampler.kernel(**opts), key, target, prop, lanes=lanes,
                          proposal_axis=0 if p_batched else None)

        return jax.jit(run_refill)

    if kind == "encode":
        def fn(key, tp, pp):
            return sampler.encode(key, t_cls(*tp), p_cls(*pp) if p_cls else None, **opts)
    else:
        def fn(key, index, pp):
            return sampler.decode(key, index, p_cls(*pp) if p_cls else None, **opts)

    for _ in range(nbatch):
        fn = jax.vmap(fn, in_axes=(0, 0, 0 if p_batched else None))
    return jax.jit(fn)


def _options(method, options):
    defaults = get(method).options
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"{method}: unknown option(s) {sorted(unknown)}; known: {sorted(defaults)}")
    merged = {**defaults, **options}
    return tuple(sorted(merged.items()))


def encode(key, target, proposal, *, method: str = "gprs", lanes: int | None = None, **options) -> Code:
    """Checked, jitted encode (see module docstring). Raises on ``ok=False``.

    ``lanes``: for a 1-D batch of problems, run the lane-refill batch runner
    (:mod:`jrec.batch`) with that many lanes instead of a plain vmap (same results,
    cost tracking the mean rather than the maximum step count).
    """
    batch = _key_batch_shape(key)
    if lanes is not None and len(batch) != 1:
        raise ShapeMismatchError(f"lanes= needs a 1-D batch of keys, got batch shape {batch}")
    opts = _options(method, options)
    t, p = validate(target, proposal, method, batch, **dict(opts))
    p_batched = bool(batch) and p is not None and tuple(p.batch_shape)[: len(batch)] == batch
    t_shape = tuple(t.batch_shape)
    p_shape = tuple(p.batch_shape) if p is not None else ()
    tp = _params(t, t_shape)
    pp = _params(p, p_shape) if p is not None else ()
    fn = _compiled(method, "encode", opts, len(batch), type(t), type(p) if p is not None else None,
                   p_batched, lanes)
    code = fn(key, tp, pp)
    ok = np.asarray(code.ok)
    if not ok.all():
        n_bad = int((~ok).sum())
        raise NonTerminationError(
            f"{method}: {n_bad} of {ok.size} problem(s) hit a loop bound (options {dict(opts)}); "
            f"their samples are not exact. Raise max_steps, lower the divergence, or use a "
            f"branch-and-bound sampler. Failing positions: {np.argwhere(~ok)[:5].tolist()}"
        )
    return code


def _check_index_range(method: str, index: np.ndarray, opts: dict):
    """Indices a sampler can never produce are refused (instead of decoding garbage)."""
    sampler = get(method)
    if index.size == 0 or sampler.index_range is None:
        return
    vals = index
    if sampler.index_kind == "shard":
        if not (index[..., 0].min() >= 0 and index[..., 0].max() < opts["num_shards"]):
            raise ShapeMismatchError(f"{method}: shard ids must lie in [0, {opts['num_shards']})")
        vals = index[..., 1]
    lo, hi = sampler.index_range(opts)
    if vals.min() < lo or vals.max() > hi:
        raise ShapeMismatchError(
            f"{method}: indices must lie in [{lo}, {hi}], got [{vals.min()}, {vals.max()}]")


def decode(key, index, proposal, *, method: str = "gprs", **options):
    """Jitted decode, batched like :func:`encode`."""
    batch = _key_batch_shape(key)
    opts = _options(method, options)
    sampler = get(method)
    index = jnp.asarray(index)
    if index.dtype != jnp.int32:
        raise ShapeMismatchError(f"index must be int32, got {index.dtype}")
    extra = () if sampler.index_shape == "d" else tuple(sampler.index_shape)
    if sampler.index_shape != "d" and tuple(index.shape) != tuple(batch) + extra:
        raise ShapeMismatchError(f"{method}: index shape {index.shape} != {tuple(batch) + extra}")
    _check_index_range(method, np.asarray(index), dict(opts))
    p = as_factorised(proposal)[0] if proposal is not None else None
    if p is not None and type(p) not in dists.FAMILIES:
        raise UnsupportedDistributionError(
            f"proposal {type(p).__name__} is not supported by the checked wrapper")
    p_batched = bool(batch) and p is not None and tuple(p.batch_shape)[: len(batch)] == batch
    if math.prod(batch) == 0:
        raise ShapeMismatchError("empty batch")
    pp = _params(p, tuple(p.batch_shape)) if p is not None else ()
    fn = _compiled(method, "decode", opts, len(batch), None, type(p) if p is not None else None,
                   p_batched)
    return fn(key, index, pp)
