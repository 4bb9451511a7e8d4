"""Fixed-budget ordered random coding (ORC), as used by COMBINER.

Theis & Yosri, "Algorithms for the communication of samples", ICML 2022; used for
Bayesian INR weights in Guo, Flamich, He, Chen & Hernandez-Lobato, "Compression
with Bayesian implicit neural representations" (COMBINER), NeurIPS 2023.

``2^kappa`` candidates ``X_1 .. X_{2^kappa} ~ P`` with Poisson arrival times
``T_n``; the selected index is ``argmax_n log r(X_n) - log T_n`` -- PFR truncated
to a fixed budget (the candidates and times are those of :mod:`jrec.pfr`). The
index is sent in exactly ``kappa`` bits (``index = n - 1`` in ``[0, 2^kappa)``).

Approximate: the selected sample's law approaches Q as ``kappa`` grows past
``D_KL / log 2`` bits; for total variation ``eps`` about
``exp((D_KL + O(1)) / eps)`` candidates are needed (Flamich & Wells 2024). Works
for multivariate blocks (diagonal Normal targets and proposals, a batched
``distrax.Normal`` or ``MultivariateNormalDiag``) and any 1-D pair, including
unbounded ratios. ``kappa`` at most 30.
"""

from __future__ import annotations

import jax.numpy as jnp

from jrec import poisson
from jrec.core import INDEX_DTYPE, Code, sampling_distribution
from jrec.ratio import density_ratio

__all__ = ["encode", "decode"]


def encode(key, target, proposal, *, kappa: int = 16, chunk_size: int = 256) -> Code:
    """Pick the best of ``2^kappa`` candidates; ``index`` is a kappa-bit integer."""
    _check_static(kappa, chunk_size)
    ratio = density_ratio(target, proposal)
    dt = ratio.log_sup.dtype
    st = poisson.search(
        key,
        sampling_distribution(proposal, target),
        ratio.log_ratio,
        lambda log_t, x, lr: log_t - lr,
        mode="argmin",
        chunk_size=min(chunk_size, 2**kappa),
        max_steps=2**kappa,
        dtype=dt,
        log_bound=None,
    )
    index = (st.best_n - 1).astype(INDEX_DTYPE)
    ok = st.best_n >= 1
    return Code(index, decode(key, index, proposal), jnp.asarray(2**kappa, INDEX_DTYPE), ok)


def decode(key, index, proposal, **_static):
    """Regenerate candidate ``index + 1``."""
    return poisson.candidate_sample(key, index + 1, sampling_distribution(proposal))


def _check_static(kappa, chunk_size):
    if not (isinstance(kappa, int) and 0 <= kappa <= 30):
        raise ValueError(f"kappa must be an int in [0, 30], got {kappa!r}")
    if not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
