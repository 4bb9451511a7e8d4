"""The sampler registry: names -> :class:`~jrec.spec.Sampler` declarations, collected from
the ``SAMPLERS`` of each sampler module (:data:`MODULES`)."""

from __future__ import annotations

from jrec import astar, dither, gprs, grs, orc, pfr
from jrec.spec import Sampler

__all__ = ["Sampler", "samplers", "get", "by_container_id"]

#: The modules whose ``SAMPLERS`` make the registry, in the order :func:`samplers` lists them.
MODULES = (pfr, gprs, astar, grs, orc, dither)


def _collect(modules) -> dict[str, Sampler]:
    found = [s for m in modules for s in m.SAMPLERS]
    names = [s.name for s in found]
    ids = [s.container_id for s in found]
    if len(set(names)) != len(names) or len(set(ids)) != len(ids):
        pairs = sorted(zip(ids, names, strict=True))
        raise RuntimeError(f"duplicate sampler names or container ids: {pairs}")
    return {s.name: s for s in found}


_REGISTRY = _collect(MODULES)
_BY_ID = {s.container_id: s for s in _REGISTRY.values()}


def samplers() -> tuple[str, ...]:
    """Names of the registered samplers."""
    return tuple(_REGISTRY)


def get(name: str) -> Sampler:
    """The :class:`Sampler` registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown sampler {name!r}; available: {', '.join(_REGISTRY)}") from None


def by_container_id(container_id: int) -> Sampler | None:
    """The sampler of a ``.jrec`` header's sampler id (``None``: no such sampler)."""
    return _BY_ID.get(container_id)
