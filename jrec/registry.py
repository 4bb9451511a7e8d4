"""The sampler registry: names -> :class:`Sampler` descriptions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from jrec import dither, gprs, orc, pfr

__all__ = ["Sampler", "samplers", "get"]


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A registered sampler.

    Attributes:
      name: registry name.
      encode: ``encode(key, target, proposal, **static_options) -> Code`` (pure).
      decode: ``decode(key, index, proposal, **static_options) -> sample`` (pure).
      exact: whether ``code.sample`` is an exact draw from the target.
      requires: what the sampler needs of the (target, proposal) pair.
      bounded_ratio: needs ``D_inf[Q || P] < inf``.
      one_dimensional: scalar targets only (vmap over coordinates).
      index_shape: shape of ``code.index`` for one problem (``"d"``: like the sample).
      options: static options and their defaults.
      reference: the paper.
    """

    name: str
    encode: Callable
    decode: Callable
    exact: bool
    requires: tuple[str, ...]
    bounded_ratio: bool
    one_dimensional: bool
    index_shape: tuple | str
    options: dict
    reference: str


_REGISTRY = {
    s.name: s
    for s in [
        Sampler("pfr", pfr.encode, pfr.decode, True, ("log r", "sup log r"), True, False, (),
                {"max_steps": pfr.DEFAULT_MAX_STEPS, "chunk_size": 16},
                "Li & El Gamal 2018; Flamich, Markou & Hernandez-Lobato, ICML 2022"),
        Sampler("gprs", gprs.encode, gprs.decode, True, ("log r", "stretch function sigma"), True, True,
                (), {"max_steps": gprs.DEFAULT_MAX_STEPS, "chunk_size": 16},
                "Flamich, NeurIPS 2023 (global GPRS)"),
        Sampler("gprs_parallel", gprs.encode_parallel, gprs.decode_parallel, True,
                ("log r", "stretch function sigma"), True, True, (2,),
                {"num_shards": 4, "max_steps": gprs.DEFAULT_MAX_STEPS, "chunk_size": 8},
                "Flamich, NeurIPS 2023 (parallel GPRS)"),
        Sampler("gprs_bb", gprs.encode_bb, gprs.decode_bb, True,
                ("log r", "stretch function sigma", "unimodal r with its mode", "P's CDF and quantile"),
                True, True, (), {"max_steps": gprs.MAX_DEPTH},
                "Flamich, NeurIPS 2023 (branch and bound, split on sample)"),
        Sampler("orc", orc.encode, orc.decode, False, ("log r",), False, False, (),
                {"kappa": 16, "chunk_size": 256},
                "Theis & Yosri, ICML 2022; Guo et al. (COMBINER), NeurIPS 2023"),
        Sampler("dither", dither.encode, dither.decode, True, ("uniform target of width step",), False,
                False, "d", {"step": None}, "Ziv 1985; Agustsson & Theis, NeurIPS 2020"),
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
