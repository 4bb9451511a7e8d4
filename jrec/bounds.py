"""Theoretical bounds and expected runtimes, for benchmarks and users (bits unless noted)."""

from __future__ import annotations

import numpy as np

__all__ = ["li_el_gamal_bits", "kl_plus_log_bits", "expected_steps_global", "LOG2E"]

LOG2E = float(np.log2(np.e))


def kl_plus_log_bits(kl_bits):
    """``KL + log2(KL + 1) + 1``: the codelength the best causal samplers reach (bits)."""
    kl_bits = np.asarray(kl_bits, np.float64)
    return kl_bits + np.log2(kl_bits + 1) + 1


def li_el_gamal_bits(mutual_information_bits):
    """Li & El Gamal (2018) upper bound ``I + log2(I + 1) + 4`` bits."""
    i = np.asarray(mutual_information_bits, np.float64)
    return i + np.log2(i + 1) + 4


def expected_steps_global(dinf_nats):
    """E[N] = exp(D_inf) = sup r for global GPRS (and greedy rejection sampling)."""
    return np.exp(np.asarray(dinf_nats, np.float64))
