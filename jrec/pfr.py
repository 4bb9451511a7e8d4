"""Poisson functional representation (PFR) = global A* coding.

Li & El Gamal, "Strong functional representation lemma and applications to coding
theorems", IEEE Trans. IT 2018; Maddison, Tarlow & Minka, "A* sampling", NeurIPS
2014; Flamich, Markou & Hernandez-Lobato, "Fast relative entropy coding with A*
coding", ICML 2022.

With candidates ``X_n ~ P`` and arrival times ``T_n`` of a rate-1 Poisson process
(shared through the key, see :mod:`jrec.poisson`), the index

    N = argmin_n T_n / r(X_n)

gives ``X_N ~ Q`` exactly. The search stops once ``T_n / sup r`` exceeds the best
value so far; ``num_steps`` counts the candidates examined including that last
arrival (``~exp(D_inf) + 1``). ``N`` itself costs about ``D_KL + log(D_KL + 1)`` nats.

Works for any target/proposal pair jrec can form a density ratio for with a
finite ``sup r``: Normal pairs (also factorised blocks) and generic 1-D pairs.
Largest supported divergence: the loop stops at ``max_steps`` candidates (default
2^22), so D_inf well below ``log(max_steps)`` ~ 15 nats (22 bits) is needed for
``ok=True``; beyond it ``ok=False``.
"""

from __future__ import annotations

from jrec import poisson
from jrec.core import INDEX_DTYPE, Code, Kernel, run
from jrec.ratio import sampling_distribution
from jrec.spec import Sampler

__all__ = ["SAMPLERS", "encode", "decode", "kernel"]

DEFAULT_MAX_STEPS = 2**22


def kernel(*, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Kernel:
    """PFR as a :class:`~jrec.core.Kernel` (see :func:`encode` for the options)."""

    def result(ctx, s):
        return s.best_n.astype(INDEX_DTYPE), s.steps, s.done

    return poisson.argmin_kernel(max_steps=max_steps, chunk_size=chunk_size, stopping=True, result=result,
                         decode=decode)


def encode(key, target, proposal, *, max_steps: int = DEFAULT_MAX_STEPS, chunk_size: int = 16) -> Code:
    """Select ``N = argmin_n T_n / r(X_n)``; ``code.sample ~ target`` exactly.

    Args:
      key: shared PRNG key.
      target, proposal: distrax distributions (see :mod:`jrec.ratio`).
      max_steps: bound on candidates examined (``ok=False`` when reached).
      chunk_size: candidates evaluated per loop iteration (does not change results).
    """
    return run(kernel(max_steps=max_steps, chunk_size=chunk_size), key, target, proposal)


def decode(key, index, proposal, **_static):
    """Regenerate ``X_index`` from the key (O(1))."""
    return poisson.candidate_sample(key, index, sampling_distribution(proposal))


SAMPLERS = (
    Sampler(
        "pfr", encode, decode, kernel, exact=True, requires=("log r", "sup log r"), bounded_ratio=True,
        one_dimensional=False, index_shape=(), options={"max_steps": DEFAULT_MAX_STEPS, "chunk_size": 16},
        reference="Li & El Gamal 2018; Flamich, Markou & Hernandez-Lobato, ICML 2022", container_id=0,
        index_range=lambda o: (1, o["max_steps"]),
    ),
)
