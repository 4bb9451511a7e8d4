"""Poisson functional representation (PFR) = global A* coding.

Li & El Gamal, "Strong functional representation lemma and applications to coding
theorems", IEEE Trans. IT 2018; Maddison, Tarlow & Minka, "A* sampling", NeurIPS
2014; Flamich, Markou & Hernandez-Lobato, "Fast relative entropy coding with A*
coding", ICML 2022.

With candidates ``X_n ~ P`` and arrival times ``T_n`` of a rate-1 Poisson process
(shared through the key, see :mod:`jrec.poisson`), the index

    N = argmin_n T_n / r(X_n)

gives ``X_N ~ Q`` exactly. The search stops once ``T_n / sup r`` exceeds the best
value so far, after ``E[steps] ~ exp(D_inf)`` candidates; ``N`` itself costs about
``D_KL + log(D_KL + 1)`` nats to transmit.

Works for any target/proposal pair jrec can form a density ratio for with a
finite ``sup r``: Normal pairs (also factorised blocks) and generic 1-D pairs.
Largest supported divergence: the loop stops at ``max_steps`` candidates (default
2^22), so D_inf well below ``log(max_steps)`` ~ 15 nats (22 bits) is needed for
``ok=True``; beyond it ``ok=False``.
"""

from __future__ import annotations

import jax.numpy as jnp

from jrec import poisson
from jrec.core import INDEX_DTYPE, MAX_INDEX, Code, sampling_distribution
from jrec.ratio import density_ratio

__all__ = ["encode", "decode"]

DEFAULT_MAX_STEPS = 2**22


def encode(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Code:
    """Select ``N = argmin_n T_n / r(X_n)``; ``code.sample ~ target`` exactly.

    Args:
      key: shared PRNG key.
      target, proposal: distrax distributions (see :mod:`jrec.ratio`).
      max_steps: bound on candidates examined (``ok=False`` when reached).
      chunk_size: candidates evaluated per loop iteration (does not change results).
    """
    _check_static(max_steps, chunk_size)
    ratio = density_ratio(target, proposal)
    dt = ratio.log_sup.dtype
    st = poisson.search(
        key,
        sampling_distribution(proposal, target),
        ratio.log_ratio,
        lambda log_t, x, lr: log_t - lr,
        mode="argmin",
        chunk_size=chunk_size,
        max_steps=max_steps,
        dtype=dt,
        log_bound=ratio.log_sup,
    )
    index = st.best_n.astype(INDEX_DTYPE)
    return Code(index, decode(key, index, proposal), st.steps, st.done & jnp.isfinite(ratio.log_sup))


def decode(key, index, proposal, **_static):
    """Regenerate ``X_index`` from the key (O(1))."""
    return poisson.candidate_sample(key, index, sampling_distribution(proposal))


def _check_static(max_steps, chunk_size):
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if not (isinstance(max_steps, int) and 1 <= max_steps <= MAX_INDEX - chunk_size):
        raise ValueError(f"max_steps must be an int in [1, 2^31 - 1 - chunk_size], got {max_steps!r}")
