"""Theoretical bounds and expected runtimes, for benchmarks and users (bits unless noted).

* Codelength: ``KL + log2(KL + 1) + 1`` (what the Zeta code of a global sampler's
  index reaches, see ``benchmarks/codelength.py``) and the Li & El Gamal (2018) bound
  ``I + log2(I + 1) + 4``.
* Index entropy of causal rejection samplers (Goc & Flamich, ISIT 2024):
  ``D_CS <= H[N] <= D_CS + log2(e + 1)``, with D_CS from
  :func:`jrec.divergences.channel_simulation_divergence`, and
  ``D_KL <= D_CS <= D_KL + log2(D_KL + 1) + 1``.
* Runtime: ``E[N] = exp(D_inf)`` for global GPRS (Flamich 2023) and greedy rejection
  sampling (Harsha et al. 2007); parallel GPRS with ``J`` shards needs about
  ``exp(D_inf) / J`` candidates per shard; any general-purpose exact sampler needs
  ``exp(D_KL)`` or more on some problems (Agustsson & Theis 2020).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "li_el_gamal_bits",
    "kl_plus_log_bits",
    "dcs_bounds_bits",
    "causal_entropy_bounds_bits",
    "expected_steps_global",
    "expected_steps_parallel",
    "LOG2E",
]

LOG2E = float(np.log2(np.e))


def kl_plus_log_bits(kl_bits):
    """``KL + log2(KL + 1) + 1``: the codelength the best causal samplers reach (bits)."""
    kl_bits = np.asarray(kl_bits, np.float64)
    return kl_bits + np.log2(kl_bits + 1) + 1


def li_el_gamal_bits(mutual_information_bits):
    """Li & El Gamal (2018) upper bound ``I + log2(I + 1) + 4`` bits."""
    i = np.asarray(mutual_information_bits, np.float64)
    return i + np.log2(i + 1) + 4


def dcs_bounds_bits(kl_bits):
    """``(D_KL, D_KL + log2(D_KL + 1) + 1)``: where D_CS lies (bits; Goc & Flamich 2024)."""
    kl_bits = np.asarray(kl_bits, np.float64)
    return kl_bits, kl_plus_log_bits(kl_bits)


def causal_entropy_bounds_bits(dcs_bits):
    """``(D_CS, D_CS + log2(e + 1))``: the index entropy of a causal rejection sampler (bits)."""
    dcs_bits = np.asarray(dcs_bits, np.float64)
    return dcs_bits, dcs_bits + np.log2(np.e + 1)


def expected_steps_global(dinf_nats):
    """E[N] = exp(D_inf) = sup r for global GPRS and greedy rejection sampling."""
    return np.exp(np.asarray(dinf_nats, np.float64))


def expected_steps_parallel(dinf_nats, num_shards: int):
    """About ``exp(D_inf) / J`` candidates per shard for parallel GPRS (its parallel runtime)."""
    return expected_steps_global(dinf_nats) / num_shards
