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

``greedy=True`` selects ``argmax_n log r(X_n)`` instead: the candidate most likely
under Q relative to P, no longer a sample of Q. The index still costs ``kappa`` bits
and decodes the same way. For lossy compression at a fixed index rate this is the
random-codebook encoder of rate-distortion theory (the codeword of least distortion
when ``Q ∝ P exp(-distortion / beta)``): a lower distortion than a sample, at the
price of the exactness that ORC only approximates anyway.
"""

from __future__ import annotations

import jax.numpy as jnp

from jrec import poisson
from jrec.core import INDEX_DTYPE, Code, Kernel, run
from jrec.ratio import sampling_distribution
from jrec.spec import Sampler

__all__ = ["SAMPLERS", "encode", "decode", "kernel"]


def kernel(*, kappa: int = 16, chunk_size: int = 256, greedy: bool = False) -> Kernel:
    """ORC as a :class:`~jrec.core.Kernel`: PFR's search with a fixed budget (see :func:`encode`)."""
    if not (isinstance(kappa, int) and 0 <= kappa <= 30):
        raise ValueError(f"kappa must be an int in [0, 30], got {kappa!r}")
    if not isinstance(greedy, bool):
        raise ValueError(f"greedy must be a bool, got {greedy!r}")
    budget = 2**kappa
    chunk = min(chunk_size, budget) if isinstance(chunk_size, int) else chunk_size

    def result(_ctx, s):
        return (s.best_n - 1).astype(INDEX_DTYPE), jnp.asarray(budget, INDEX_DTYPE), s.best_n >= 1

    # the greedy score ignores arrival times: they are not drawn (the candidates are the same)
    return poisson.argmin_kernel(max_steps=budget, chunk_size=chunk, stopping=False, result=result,
                                 decode=decode, score=_greedy_score if greedy else None, timed=not greedy)


def _greedy_score(_log_t, _x, log_r):
    return -log_r


def encode(key, target, proposal, *, kappa: int = 16, chunk_size: int = 256, greedy: bool = False) -> Code:
    """Pick the best of ``2^kappa`` candidates; ``index`` is a kappa-bit integer.

    ``greedy``: the candidate of largest density ratio (not a sample of Q; see the
    module docstring) instead of ORC's ``argmax log r(X_n) - log T_n``.
    """
    return run(kernel(kappa=kappa, chunk_size=chunk_size, greedy=greedy), key, target, proposal)


def decode(key, index, proposal, **_static):
    """Regenerate candidate ``index + 1``."""
    return poisson.candidate_sample(key, index + 1, sampling_distribution(proposal))


SAMPLERS = (
    Sampler(
        "orc", encode, decode, kernel, exact=False, requires=("log r",), bounded_ratio=False,
        one_dimensional=False, index_shape=(), options={"kappa": 16, "chunk_size": 256, "greedy": False},
        reference="Theis & Yosri, ICML 2022; Guo et al. (COMBINER), NeurIPS 2023", container_id=4,
        index_kind="fixed", default_code="fixed", index_range=lambda o: (0, 2 ** o["kappa"] - 1),
    ),
)
