"""RECOMBINER's hierarchical patch prior: the latent units of a signal and how they sum.

He, Flamich, Guo & Hernandez-Lobato, "RECOMBINER: robust and enhanced compression with
Bayesian implicit neural representations", ICLR 2024, section 3.3. The weights of patch
``p`` are the sum of three latents::

    w_p = h_p + h_{g(p)} + h_signal,

a patch-level latent, the latent of the patch's group (a block of neighbouring patches of
shape :attr:`Hierarchy.group` on the grid of patches) and one latent of the whole signal,
each with a mean-field Gaussian posterior and its own factorised Gaussian prior, learned
by EM (one closed-form M-step per level). What the patches of a group or of the signal
share is then coded once instead of once per patch. The levels are coded in order
signal, groups, patches, each with its own coding blocks.

A signal's latents are stacked as *units* ``(U, D)``: the ``P`` patches first (so unit
``p`` is patch ``p``, as without a hierarchy), then the ``G`` groups, then the signal.
:func:`units` gives the unit of each level for every patch and the level of every unit;
a stack of several signals (prior training) is :func:`stack` of theirs.
"""

import math
from typing import NamedTuple

import numpy as np

__all__ = ["PATCH", "GROUP", "SIGNAL", "LEVELS", "UPPER_RHO_INIT", "Units", "units", "stack", "group_of"]

#: Levels, numbered as the rows of :attr:`Units.parents` (coding order is the reverse).
PATCH, GROUP, SIGNAL = 0, 1, 2
LEVELS = ("patch", "group", "signal")

#: ``rho`` of the group and signal latents when a prior's training starts (std 4.5e-5, where
#: the patches start at the architecture's ``rho_init``, std 2.5e-3): shared latents start
#: (almost) noiseless, or their noise, added to every patch under them, holds a free fit of
#: 6 s of speech at 44.67 dB instead of 47.56 (``benchmarks/hierarchy_fit.py``).
UPPER_RHO_INIT = -10.0


class Units(NamedTuple):
    """The latent units of one signal (or of a stack of signals).

    Attributes:
      parents: ``(P, 3)`` int32: the unit of each level (:data:`PATCH`, :data:`GROUP`,
        :data:`SIGNAL`) whose latent patch ``p``'s weights sum.
      level: ``(U,)`` int32 level of each unit.
      signal: ``(U,)`` int32 signal (of a stack) each unit belongs to.
    """

    parents: np.ndarray
    level: np.ndarray
    signal: np.ndarray

    @property
    def num_patches(self) -> int:
        return int(self.parents.shape[0])

    @property
    def num_units(self) -> int:
        return int(self.level.shape[0])

    def lr_scale(self) -> np.ndarray:
        """``(U,)`` float32 learning-rate multiplier of each unit's posterior mean: one over
        the number of patches under it. Adam moves every parameter by about the learning
        rate whatever the size of its gradient, so a latent shared by ``n`` patches would
        otherwise move every one of them by a full step each iteration in the direction of
        their summed, mostly conflicting, gradients: a free fit of 6 s of speech reached
        33.57 dB so, 47.56 dB with this scaling and :data:`UPPER_RHO_INIT`, 48.30 dB with the
        patches alone (``benchmarks/hierarchy_fit.py``)."""
        kids = np.bincount(self.parents.ravel(), minlength=self.num_units)
        return (1.0 / np.maximum(kids, 1)).astype(np.float32)

    def of_level(self, lvl: int) -> np.ndarray:
        """The units of level ``lvl``, in order."""
        return np.flatnonzero(self.level == lvl)


def group_of(patch_grid: tuple[int, ...], group: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """``(P,)`` int32 group of every patch (row-major on the grid of patches, as
    :func:`jrec_inr.data.to_patches` orders them) and the number of groups: patch at grid
    position ``c`` belongs to group ``c // group`` (edge groups may be partial)."""
    if len(group) != len(patch_grid) or min(group) < 1:
        raise ValueError(f"a group of {group} patches on a grid of {patch_grid} patches")
    counts = tuple(-(-n // g) for n, g in zip(patch_grid, group, strict=True))
    pos = np.stack(np.unravel_index(np.arange(math.prod(patch_grid)), patch_grid), axis=-1)
    gid = np.ravel_multi_index(tuple((pos // np.asarray(group)).T), counts)
    return gid.astype(np.int32), math.prod(counts)


def units(patch_grid: tuple[int, ...], group: tuple[int, ...]) -> Units:
    """The units of a signal cut into a grid of ``patch_grid`` patches with groups of
    ``group`` patches."""
    gid, num_groups = group_of(tuple(patch_grid), tuple(group))
    p = gid.shape[0]
    parents = np.stack([np.arange(p), p + gid, np.full(p, p + num_groups)], axis=1).astype(np.int32)
    level = np.concatenate([np.full(p, PATCH), np.full(num_groups, GROUP), [SIGNAL]]).astype(np.int32)
    return Units(parents, level, np.zeros(level.shape[0], np.int32))


def stack(parts: list[Units]) -> Units:
    """Several signals' units as one set: units of signal ``i`` follow those of ``i - 1``;
    the targets are the signals' patches concatenated in the same order."""
    parents, level, signal, off = [], [], [], 0
    for i, u in enumerate(parts):
        parents.append(u.parents + off)
        level.append(u.level)
        signal.append(np.full(u.num_units, i, np.int32))
        off += u.num_units
    return Units(np.concatenate(parents).astype(np.int32), np.concatenate(level).astype(np.int32),
                 np.concatenate(signal).astype(np.int32))
