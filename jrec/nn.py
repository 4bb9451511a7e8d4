"""A relative-entropy-coding bottleneck for Flax models (diagonal Gaussian latents).

The REC counterpart of an entropy bottleneck: in training, :class:`GaussianBottleneck`
returns a reparameterised sample of the posterior ``N(mean, std^2)`` and its KL to the
prior in bits (the rate term of a beta-VAE / ELBO); in coding mode it sends an *exact*
(or, for ORC, fixed-budget) sample of the posterior with a :mod:`jrec` sampler, so the
rate is ``KL + O(log KL)`` bits per latent block instead of a quantisation rate
(Flamich, Havasi & Hernandez-Lobato, "Compressing images by encoding their latent
representations with relative entropy coding", NeurIPS 2020; Flamich, Markou &
Hernandez-Lobato, "Fast relative entropy coding with A* coding", ICML 2022).

Methods: ``"gprs_bb"`` (default; exact, each latent dimension coded on its own with
branch-and-bound GPRS, heap index), ``"orc"`` (blocks of ``block_size`` dimensions,
``2^kappa`` candidates, fixed ``kappa``-bit index: approximate) and ``"pfr"`` (blocks,
exact). The exact methods need a bounded density ratio, so they code the posterior with
its std capped at ``SHRINK = 0.9`` times the prior's (see :data:`SHRINK`): unused
latents, whose posterior is the prior, cost 0.015 bits instead of being uncodable.

Keys: one PRNG key per example; block ``b`` of an example uses ``fold_in(key, b)``, so
an example's indices do not depend on the batch it is coded in.

Example::

    bn = GaussianBottleneck(num_latents=16)
    variables = bn.init(jax.random.key(0), mean, std, key)            # prior parameters
    out = bn.apply(variables, mean, std, key)                         # z, kl_bits (train)
    code = bn.apply(variables, mean, std, keys, method=bn.encode)     # jrec.Code, jit/vmap ok
    data = to_bytes(bn, variables, code, keys)                        # .jrec bytes
    z = from_bytes(bn, variables, data, keys)                         # == code.sample
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jrec import bitstream, gprs, orc, pfr
from jrec.core import Code, NonTerminationError

__all__ = ["GaussianBottleneck", "BottleneckOutput", "to_bytes", "from_bytes", "METHODS", "SHRINK"]

METHODS = ("gprs_bb", "orc", "pfr")

#: Exact methods code ``N(mean, min(std, SHRINK * prior_scale))``: a bounded density
#: ratio for posteriors as wide as the prior (e.g. unused latents). A cap just below 1
#: would not do: D_inf = mu^2 / (2 (1 - s^2)) - log s (standardised mean mu, std ratio s)
#: explodes as s -> 1 unless mu = 0; at s = 0.9 it is at most 2.6 mu^2 + 0.11 nats,
#: and narrowing a prior-wide posterior to 0.9 costs 0.015 bits.
SHRINK = 0.9


class BottleneckOutput(NamedTuple):
    """Training-mode output: ``z`` (reparameterised posterior sample) and ``kl_bits`` (per example)."""

    z: jax.Array
    kl_bits: jax.Array


def _normal_kl_bits(mean, std, loc, scale):
    ratio = jnp.square(std / scale)
    return 0.5 * (ratio + jnp.square((mean - loc) / scale) - 1.0 - jnp.log(ratio)) / math.log(2.0)


class GaussianBottleneck(nn.Module):
    """REC bottleneck over the last axis (``num_latents``) of ``mean`` / ``std``.

    Attributes:
      num_latents: latent dimensions.
      method: ``"gprs_bb"``, ``"orc"`` or ``"pfr"`` (see the module docstring).
      block_size: dimensions per coded block for ``orc`` / ``pfr`` (``gprs_bb``: 1).
      kappa: ORC's bits per block.
      learn_prior: learn the prior's per-dimension location and log scale (else N(0, 1)).
    """

    num_latents: int
    method: str = "gprs_bb"
    block_size: int = 1
    kappa: int = 16
    learn_prior: bool = True

    def setup(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "gprs_bb" and self.block_size != 1:
            raise ValueError("gprs_bb codes each dimension on its own: block_size must be 1")
        zeros = nn.initializers.zeros
        if self.learn_prior:
            self.prior_loc = self.param("prior_loc", zeros, (self.num_latents,))
            self.prior_log_scale = self.param("prior_log_scale", zeros, (self.num_latents,))

    @property
    def num_blocks(self) -> int:
        return -(-self.num_latents // self.block_size)

    def prior(self) -> distrax.Normal:
        """The prior (the samplers' proposal), ``(num_latents,)``."""
        if self.learn_prior:
            return distrax.Normal(self.prior_loc, jnp.exp(self.prior_log_scale))
        return distrax.Normal(jnp.zeros(self.num_latents), jnp.ones(self.num_latents))

    def _check(self, mean, std):
        chex.assert_equal_shape([mean, std])
        chex.assert_axis_dimension(mean, -1, self.num_latents)
        chex.assert_type([mean, std], float)

    def __call__(self, mean, std, key) -> BottleneckOutput:
        """Training: ``z = mean + std * eps`` and ``KL(N(mean, std^2) || prior)`` in bits (per example)."""
        self._check(mean, std)
        p = self.prior()
        z = mean + std * jax.random.normal(key, mean.shape, mean.dtype)
        kl = jnp.sum(_normal_kl_bits(mean, std, p.loc, p.scale), axis=-1)
        return BottleneckOutput(z, kl)

    def _blocks(self, x, fill):
        """``(..., L)`` -> ``(..., num_blocks, block_size)``, padded with ``fill``."""
        pad = self.num_blocks * self.block_size - self.num_latents
        x = jnp.concatenate([x, jnp.broadcast_to(fill, x.shape[:-1] + (pad,)).astype(x.dtype)], -1)
        return x.reshape(x.shape[:-1] + (self.num_blocks, self.block_size))

    def _prior_blocks(self):
        p = self.prior()
        return self._blocks(p.loc, 0.0), self._blocks(p.scale, 1.0)

    def encode(self, mean, std, key) -> Code:
        """Coding: a :class:`~jrec.Code` per example; ``index`` is ``(..., num_blocks)``.

        ``key`` has the examples' batch shape (typed keys), one key per example.
        ``code.sample`` is ``(..., num_latents)``. Pure: jit / vmap it as you like.
        """
        self._check(mean, std)
        chex.assert_shape(key, mean.shape[:-1])
        ploc, pscale = self._prior_blocks()
        m = self._blocks(mean, 0.0)
        s = self._blocks(std, 1.0)
        # padded dimensions carry (almost) no information: target = the prior, narrowed as below
        pad = jnp.arange(self.num_blocks * self.block_size).reshape(self.num_blocks, -1) >= self.num_latents
        m = jnp.where(pad, ploc, m)
        s = jnp.where(pad, pscale, s)
        if self.method != "orc":
            # exact samplers need a bounded density ratio: std strictly below the prior's
            s = jnp.minimum(s, pscale * SHRINK)

        def one_block(k, mb, sb, lb, cb):
            if self.method == "gprs_bb":
                return gprs.encode_bb(k, distrax.Normal(mb[0], sb[0]), distrax.Normal(lb[0], cb[0]))
            enc = orc.encode if self.method == "orc" else pfr.encode
            opts = {"kappa": self.kappa} if self.method == "orc" else {}
            return enc(k, distrax.Normal(mb, sb), distrax.Normal(lb, cb), **opts)

        def one_example(k, mx, sx):
            keys = jax.vmap(lambda b: jax.random.fold_in(k, b))(jnp.arange(self.num_blocks))
            return jax.vmap(one_block)(keys, mx, sx, ploc, pscale)

        lead = mean.shape[:-1]
        flat = (-1, self.num_blocks, self.block_size)
        codes = jax.vmap(one_example)(key.reshape(-1), m.reshape(flat), s.reshape(flat))
        sample = codes.sample.reshape(codes.sample.shape[0], -1)[:, : self.num_latents]
        per_block = lead + (self.num_blocks,)
        index = codes.index.reshape(lead + codes.index.shape[1:])
        return Code(index, sample.reshape(lead + sample.shape[1:]), codes.num_steps.reshape(per_block),
                    codes.ok.reshape(per_block))

    def decode(self, index, key):
        """Decoder: ``(..., num_blocks)`` indices + one key per example -> ``(..., num_latents)`` latents."""
        chex.assert_shape(key, index.shape[: key.ndim])
        ploc, pscale = self._prior_blocks()

        def one_block(k, i, lb, cb):
            if self.method == "gprs_bb":
                return gprs.decode_bb(k, i, distrax.Normal(lb[0], cb[0]))[None]
            dec = orc.decode if self.method == "orc" else pfr.decode
            return dec(k, i, distrax.Normal(lb, cb))

        def one_example(k, idx):
            keys = jax.vmap(lambda b: jax.random.fold_in(k, b))(jnp.arange(self.num_blocks))
            return jax.vmap(one_block)(keys, idx, ploc, pscale).reshape(-1)[: self.num_latents]

        lead = key.shape
        flat_idx = index.reshape((-1,) + index.shape[len(lead):])
        z = jax.vmap(one_example)(key.reshape(-1), flat_idx)
        return z.reshape(lead + (self.num_latents,))


def _options(bn: GaussianBottleneck) -> dict:
    return {"kappa": bn.kappa} if bn.method == "orc" else {}


def _proposal(bn: GaussianBottleneck, variables):
    p = bn.apply(variables, method=GaussianBottleneck.prior)
    return distrax.Normal(jnp.asarray(p.loc), jnp.asarray(p.scale))


def _model(bn: GaussianBottleneck) -> dict:
    return {"bottleneck": "gaussian", "num_latents": bn.num_latents, "block_size": bn.block_size}


def to_bytes(bn: GaussianBottleneck, variables, code: Code, key) -> bytes:
    """The ``.jrec`` bytes of a batch of codes (refused if any ``ok`` is False).

    The prior's parameters and the bottleneck's shape are fingerprinted, so
    :func:`from_bytes` with another prior raises :class:`~jrec.ModelMismatchError`.
    """
    if not bool(np.all(np.asarray(code.ok))):
        raise NonTerminationError(f"{int(np.sum(~np.asarray(code.ok)))} latent block(s) hit the "
                                  f"{bn.method} loop bound (ok=False); nothing was written")
    return bitstream.to_bytes(np.asarray(code.index), method=bn.method, key=key,
                              proposal=_proposal(bn, variables), model=_model(bn), **_options(bn))


def from_bytes(bn: GaussianBottleneck, variables, data: bytes, key):
    """Decode :func:`to_bytes` output back to the latents (``code.sample``)."""
    f = bitstream.from_bytes(data, key=key, proposal=_proposal(bn, variables), model=_model(bn),
                             method=bn.method, **_options(bn))
    decode = jax.jit(lambda v, i, k: bn.apply(v, i, k, method=GaussianBottleneck.decode))
    return decode(variables, jnp.asarray(f.index), key)
