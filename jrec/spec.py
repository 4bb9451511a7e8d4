"""The declaration of a sampler: everything the rest of jrec needs to know about it.

Each sampler module ends with its declarations (``SAMPLERS``), written beside the code
they describe; :mod:`jrec.registry` collects them, and the checked API (:mod:`jrec.api`),
the index codes (:mod:`jrec.coding`), the ``.jrec`` container (:mod:`jrec.bitstream`) and
the runners (:mod:`jrec.batch`, :mod:`jrec.shard`) read them from there. Adding a sampler
is one module that declares itself, plus its name in the registry's list of modules.
This module imports nothing from jrec.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = ["Sampler", "INDEX_KINDS"]

#: How :mod:`jrec.coding` turns a sampler's indices into codeable values: ``"positive"``
#: (integers ``>= 1``), ``"shard"`` (``(shard, local >= 1)``), ``"fixed"`` (``[0, 2^kappa)``
#: or a heap index below ``2^kappa``, in ``kappa`` bits), ``"signed"`` (any int, zigzag).
INDEX_KINDS = ("positive", "shard", "fixed", "signed")


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A sampler's declaration.

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
      options: static options and their defaults (``encode``'s and ``kernel``'s keyword
        defaults; a test checks they agree).
      reference: the paper.
      container_id: the sampler's id in a ``.jrec`` header (0-31; never reused).
      index_kind: one of :data:`INDEX_KINDS`.
      default_code: the index code used when none is named (see :mod:`jrec.coding`).
      index_range: ``options -> (lo, hi)``: the values an index can take (the local part
        of a ``"shard"`` index); ``None``: any. The checked decoder refuses others.
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
    container_id: int
    index_kind: str = "positive"
    default_code: str = "gamma"
    index_range: Callable[[dict], tuple[int, int]] | None = None

    def __post_init__(self):
        if self.index_kind not in INDEX_KINDS:
            raise ValueError(f"{self.name}: index_kind must be one of {INDEX_KINDS}, got {self.index_kind!r}")
        if not 0 <= self.container_id < 32:
            raise ValueError(f"{self.name}: container_id must lie in [0, 32), got {self.container_id}")
