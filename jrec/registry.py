"""The sampler registry: names -> :class:`Sampler` descriptions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jrec import astar, bb, dither, gprs, grs, orc, pfr

__all__ = ["Sampler", "samplers", "get"]


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A registered sampler.

    Attributes:
      name: registry name.
      encode: ``encode(key, target, proposal, **static_options) -> Code`` (pure).
      decode: ``decode(key, index, proposal, **static_options) -> sample`` (pure).
      kernel: ``kernel(**static_options) -> Kernel``, the resumable loop behind
        ``encode`` (used by the lane-refill runner in :mod:`jrec.batch`).
      exact: whether ``code.sample`` is an exact draw from the target.
      requires: what the sampler needs of the (target, proposal) pair.
      bounded_ratio: needs ``D_inf[Q || P] < inf``.
      one_dimensional: scalar targets only (vmap over coordinates).
      index_shape: shape of ``code.index`` for one problem (``"d"``: like the sample).
      options: static options and their defaults.
      reference: the paper.
      index_kind: how :mod:`jrec.coding` codes the index: ``"positive"`` (integers
        ``>= 1``), ``"shard"`` (``(shard, local >= 1)``), ``"fixed"`` (``[0, 2^kappa)``),
        ``"signed"`` (any int, zigzag mapped).
      default_code: the index code used when none is named (see :mod:`jrec.coding`).
    """

    name: str
    encode: Callable
    decode: Callable
    kernel: Callable
    exact: bool
    requires: tuple[str, ...]
    bounded_ratio: bool
    one_dimensional: bool
    index_shape: tuple | str
    options: dict
    reference: str
    index_kind: str = "positive"
    default_code: str = "gamma"


_REGISTRY = {
    s.name: s
    for s in [
        Sampler(
            "pfr", pfr.encode, pfr.decode, pfr.kernel, exact=True,
            requires=("log r", "sup log r"), bounded_ratio=True, one_dimensional=False, index_shape=(),
            options={"max_steps": pfr.DEFAULT_MAX_STEPS, "chunk_size": 16},
            reference="Li & El Gamal 2018; Flamich, Markou & Hernandez-Lobato, ICML 2022",
        ),
        Sampler(
            "gprs", gprs.encode, gprs.decode, gprs.kernel, exact=True,
            requires=("log r", "stretch function sigma"), bounded_ratio=True, one_dimensional=True,
            index_shape=(), options={"max_steps": gprs.DEFAULT_MAX_STEPS, "chunk_size": 16},
            reference="Flamich, NeurIPS 2023 (global GPRS)",
        ),
        Sampler(
            "gprs_parallel", gprs.encode_parallel, gprs.decode_parallel, gprs.kernel_parallel, exact=True,
            requires=("log r", "stretch function sigma"), bounded_ratio=True, one_dimensional=True,
            index_shape=(2,), options={"num_shards": 4, "max_steps": gprs.DEFAULT_MAX_STEPS, "chunk_size": 8},
            reference="Flamich, NeurIPS 2023 (parallel GPRS)", index_kind="shard",
        ),
        Sampler(
            "gprs_bb", gprs.encode_bb, gprs.decode_bb, gprs.kernel_bb, exact=True,
            requires=("log r", "stretch function sigma", "unimodal r with its mode", "P's CDF and quantile"),
            bounded_ratio=True, one_dimensional=True, index_shape=(), options={"max_steps": gprs.MAX_DEPTH},
            reference="Flamich, NeurIPS 2023 (branch and bound, split on sample)",
            default_code="delta",
        ),
        Sampler(
            "gprs_bb_dyadic", gprs.encode_bb_dyadic, gprs.decode_bb_dyadic, gprs.kernel_bb_dyadic, exact=True,
            requires=("log r", "stretch function sigma", "residual mass of intervals (restricted w_P, w_Q)",
                      "unimodal r with its mode", "P's CDF and quantile"),
            bounded_ratio=True, one_dimensional=True, index_shape=(), options={"max_steps": gprs.MAX_DEPTH},
            reference="Flamich, NeurIPS 2023 (branch and bound, dyadic splits)",
            default_code="delta",
        ),
        Sampler(
            "astar_bb", astar.encode_bb, astar.decode_bb, astar.kernel_bb, exact=True,
            requires=("log r", "unimodal r with its mode", "P's CDF and quantile"), bounded_ratio=True,
            one_dimensional=True, index_shape=(), options={"max_steps": astar.DEFAULT_MAX_STEPS},
            reference="Flamich, Markou & Hernandez-Lobato, ICML 2022 (AS*: A* coding, split on sample)",
            default_code="delta",
        ),
        Sampler(
            "astar_bb_dyadic", astar.encode_bb_dyadic, astar.decode_bb_dyadic, astar.kernel_bb_dyadic,
            exact=True, requires=("log r", "unimodal r with its mode", "P's CDF and quantile"),
            bounded_ratio=True, one_dimensional=True, index_shape=(),
            options={"max_steps": astar.DEFAULT_MAX_STEPS},
            reference="Flamich, Markou & Hernandez-Lobato, ICML 2022 (AD*: A* coding, dyadic splits)",
            default_code="delta",
        ),
        Sampler(
            "astar_dl", astar.encode_dl, astar.decode_dl, astar.kernel_dl, exact=False,
            requires=("log r", "unimodal r with its mode", "P's CDF and quantile"),
            bounded_ratio=True, one_dimensional=True, index_shape=(),
            options={"kappa": astar.DEFAULT_DL_KAPPA, "max_steps": astar.DEFAULT_MAX_STEPS},
            reference="Flamich, Markou & Hernandez-Lobato, ICML 2022 (depth-limited AD*, approximate)",
            index_kind="fixed", default_code="fixed",
        ),
        Sampler(
            "grs", grs.encode, grs.decode, grs.kernel, exact=True,
            requires=("log r", "excess mass g(h) = E_P[(r - h)+]"), bounded_ratio=True, one_dimensional=True,
            index_shape=(), options={"max_steps": grs.DEFAULT_MAX_STEPS, "chunk_size": 16},
            reference="Harsha et al., CCC 2007; Flamich & Theis, ISIT 2023 (greedy rejection sampling)",
        ),
        Sampler(
            "grc_bb", grs.encode_bb, grs.decode_bb, grs.kernel_bb, exact=True,
            requires=("log r", "residual mass of intervals (restricted w_P, w_Q)", "unimodal r with its mode",
                      "P's CDF and quantile"),
            bounded_ratio=True, one_dimensional=True, index_shape=(), options={"max_steps": bb.MAX_DEPTH},
            reference=("Flamich, Markou & Hernandez-Lobato, NeurIPS 2023 "
                       "(greedy rejection coding, split on sample)"),
            default_code="delta",
        ),
        Sampler(
            "orc", orc.encode, orc.decode, orc.kernel, exact=False, requires=("log r",),
            bounded_ratio=False, one_dimensional=False, index_shape=(),
            options={"kappa": 16, "chunk_size": 256, "greedy": False},
            reference="Theis & Yosri, ICML 2022; Guo et al. (COMBINER), NeurIPS 2023",
            index_kind="fixed", default_code="fixed",
        ),
        Sampler(
            "dither", dither.encode, dither.decode, dither.kernel, exact=True,
            requires=("uniform target of width step",), bounded_ratio=False, one_dimensional=False,
            index_shape="d", options={"step": None}, reference="Ziv 1985; Agustsson & Theis, NeurIPS 2020",
            index_kind="signed",
        ),
    ]
}


def samplers() -> tuple[str, ...]:
    """Names of the registered samplers."""
    return tuple(_REGISTRY)


def get(name: str) -> Sampler:
    """The :class:`Sampler` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown sampler {name!r}; available: {', '.join(_REGISTRY)}") from None
