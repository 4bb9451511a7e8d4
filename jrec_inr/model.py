"""The Bayesian SIREN: an implicit neural representation with a Gaussian posterior per weight.

COMBINER (Guo, Flamich, He, Chen & Hernandez-Lobato, "Compression with Bayesian
implicit neural representations", NeurIPS 2023): a SIREN (Sitzmann et al., NeurIPS
2020; ``sin(w0 x)`` activations, ``w0 = 30``) on Fourier features of the pixel
coordinates, every weight and bias with a mean-field Gaussian posterior
``N(mean, softplus(rho)^2)``, trained with the local reparameterisation trick
(Kingma, Salimans & Welling, 2015) against a factorised Gaussian prior.

``Arch(linear=True)`` adds RECOMBINER's linear reparameterisation (He, Flamich, Guo &
Hernandez-Lobato, "RECOMBINER: robust and enhanced compression with Bayesian implicit
neural representations", ICLR 2024, section 3.1): a layer's weights and bias are
``[W; b] = H A`` with ``H`` the mean-field Gaussian latent that is coded and ``A`` a
``(out, out)`` matrix shared by every patch and image, learned with the prior and
shipped in the model (Flax collection ``"mix"``, initialised to the identity). The
pre-activation ``([x, 1] H) A`` keeps the local reparameterisation exact: ``[x, 1] H``
is drawn per pixel, then mixed by ``A``. A mean-field posterior over ``H`` is a
posterior over ``W`` whose output units are correlated through ``A``. (RECOMBINER's ``A``
is a full square matrix over a layer's flattened parameters, with one weight sample per
patch and step; this ``A`` acts on the output units only: ``out^2`` instead of
``(out (in + 1))^2`` parameters, and the per-pixel local reparameterisation stays exact.)

``Arch(pe_grid=G, pe_channels=C)`` adds learned positional encodings (RECOMBINER,
section 3): every patch carries a latent grid ``z`` of ``G x G x C`` values, part of
the coded weights (mean-field Gaussian posterior, factorised prior, coded block by
block like the rest), interpolated at each pixel and fed to the first layer beside the
Fourier features, so the network can adapt to local detail. RECOMBINER upsamples a
``4 x 4 x 128`` grid with a learned convolutional network; here the grid is
interpolated bilinearly (:func:`grid_features`), which costs nothing per pixel and
keeps random-pixel training possible on a CPU; the first (dense) layer is the learned
map from the interpolated latents to the network.

The parameters are a Flax pytree; :class:`Layout` flattens it to the vectors the codec
works with (posterior means / stds, prior means / stds, per-weight KL) and the shared
``"mix"`` collection to one vector.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jrec_inr import fastmath

__all__ = ["Arch", "BayesianDense", "BayesianSiren", "Layout", "fourier_features",
           "grid_features", "patch_coords", "kl_bits", "FROZEN_RHO"]

#: ``rho`` of a weight fixed to its coded value: ``softplus(FROZEN_RHO) == 0`` in float32.
FROZEN_RHO = -200.0


class Arch(NamedTuple):
    """Architecture of the per-patch INR (static; part of the model fingerprint).

    Attributes:
      hidden: width of the hidden layers.
      depth: number of hidden (sine) layers.
      num_freqs: Fourier feature frequencies ``2^l pi``, ``l < num_freqs``.
      patch: the patch one INR represents: an int ``s`` for a square ``s x s`` image patch
        (the image models' setting), or a tuple of sides, one per axis of the signal's grid
        (``(800,)``: 800 audio samples; ``(96,)``: 96 residues; ``(24, 16, 16)``: a video
        patch). :attr:`patch_shape` is always the tuple.
      channels: output channels (3 for RGB, 1 for mono audio, 3 for C-alpha coordinates).
      w0: SIREN frequency.
      rho_init: initial ``rho`` of the posterior (std = softplus(rho_init)).
      linear: RECOMBINER's linear reparameterisation ``[W; b] = H A`` of every layer.
      pe_grid: side ``G`` of each patch's latent positional-encoding grid (0: none).
      pe_channels: channels ``C`` of that grid.
    """

    hidden: int = 24
    depth: int = 3
    num_freqs: int = 3
    patch: int | tuple = 64
    channels: int = 3
    w0: float = 30.0
    rho_init: float = -6.0
    linear: bool = False
    pe_grid: int = 0
    pe_channels: int = 0

    def to_json(self) -> str:
        d = self._asdict()
        for k, default in _OPTIONAL.items():  # models from before an option keep their fingerprint
            if d[k] == default:
                del d[k]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> Arch:
        return cls.from_dict(json.loads(s))

    @classmethod
    def from_dict(cls, d: dict) -> Arch:
        """From :meth:`to_json`'s fields (a JSON list ``patch`` becomes a tuple)."""
        d = dict(d)
        if isinstance(d.get("patch"), list):
            d["patch"] = tuple(d["patch"])
        return cls(**d)

    @property
    def patch_shape(self) -> tuple[int, ...]:
        """The patch's sides, one per axis (an int ``patch`` is a square image patch)."""
        return (self.patch, self.patch) if isinstance(self.patch, int) else tuple(self.patch)

    @property
    def rank(self) -> int:
        """Number of coordinate axes (2 for images, 1 for audio and protein backbones)."""
        return len(self.patch_shape)

    @property
    def patch_size(self) -> int:
        """Grid points in one patch."""
        return math.prod(self.patch_shape)

    @property
    def num_inputs(self) -> int:
        return self.rank * (1 + 2 * self.num_freqs) + (self.pe_channels if self.pe_grid else 0)

    def check(self) -> Arch:
        """Validate the settings (``ValueError`` naming the bad one); returns ``self``."""
        p = self.patch
        if not (isinstance(p, int) or (isinstance(p, tuple) and 1 <= len(p) <= 3
                                      and all(isinstance(v, int) for v in p))):
            raise ValueError(f"patch must be an int (square image patch) or a tuple of 1-3 ints, got {p!r}")
        if min(self.hidden, self.depth, self.num_freqs + 1, *self.patch_shape, self.channels) < 1:
            raise ValueError(f"hidden, depth, patch and channels must be >= 1 and num_freqs >= 0: {self}")
        if (self.pe_grid == 0) != (self.pe_channels == 0) or self.pe_grid == 1 or self.pe_grid < 0:
            raise ValueError(f"a positional-encoding grid needs pe_grid >= 2 and pe_channels >= 1 "
                             f"(or both 0), got pe_grid={self.pe_grid}, pe_channels={self.pe_channels}")
        return self


_OPTIONAL = {"linear": False, "pe_grid": 0, "pe_channels": 0}


def fourier_features(coords, num_freqs: int):
    """``[x, sin(2^l pi x), cos(2^l pi x)]_{l < num_freqs}`` of coordinates in [-1, 1]."""
    freqs = (2.0 ** jnp.arange(num_freqs)) * jnp.pi
    ang = coords[..., :, None] * freqs  # (..., 2, L)
    ang = ang.reshape(*coords.shape[:-1], -1)
    return jnp.concatenate([coords, jnp.sin(ang), jnp.cos(ang)], axis=-1)


def grid_features(grid, coords):
    """Multilinear interpolation of a ``(G,) * d + (C,)`` grid at coordinates ``(..., d)`` in
    [-1, 1] (linear for d = 1, bilinear for d = 2, trilinear for d = 3).

    The grid's nodes sit at ``linspace(-1, 1, G)`` along each axis (``coords[..., 0]``
    indexes the first grid axis), so node values are reproduced exactly at the nodes.
    """
    d = coords.shape[-1]
    g = grid.shape[0]
    u = jnp.clip((coords + 1.0) * 0.5 * (g - 1), 0.0, g - 1.0)
    lo = jnp.minimum(jnp.floor(u), g - 2).astype(jnp.int32)
    t = u - lo  # (..., d) in [0, 1]

    def corner(axis, idx):  # interpolate axes axis.. with the first `axis` indices fixed
        if axis == d:
            return grid[tuple(idx)]
        ta = t[..., axis : axis + 1]
        i = lo[..., axis]
        return corner(axis + 1, idx + [i]) * (1 - ta) + corner(axis + 1, idx + [i + 1]) * ta

    return corner(0, [])


def patch_coords(patch):
    """Point-centre coordinates of a patch in [-1, 1], row-major, shape ``(prod(shape), d)``.

    ``patch``: an int (a square ``patch x patch`` image patch, ``d = 2``) or a tuple of
    sides (``d = len(patch)``).
    """
    shape = (patch, patch) if isinstance(patch, int) else tuple(patch)
    axes = [(jnp.arange(s, dtype=jnp.float32) + 0.5) / s * 2.0 - 1.0 for s in shape]
    mesh = jnp.meshgrid(*axes, indexing="ij")
    return jnp.stack([m.ravel() for m in mesh], axis=-1)


class BayesianDense(nn.Module):
    """Dense layer with a mean-field Gaussian posterior on its kernel and bias.

    ``__call__(x, key)`` returns a local-reparameterisation sample of the pre-activation
    (noise from :func:`jrec_inr.fastmath.normal`; ``key=None``: the pre-activation of the
    posterior means). With ``linear`` the kernel
    and bias are latents ``H`` mixed by the shared matrix ``A`` (variable ``("mix", "A")``):
    the pre-activation is ``([x, 1] H) A``.
    """

    features: int
    init_bound: float
    rho_init: float
    linear: bool = False

    @nn.compact
    def __call__(self, x, key=None):
        fan_in = x.shape[-1]
        uni = lambda b: (lambda k, s: jax.random.uniform(k, s, jnp.float32, -b, b))  # noqa: E731
        rho = nn.initializers.constant(self.rho_init)
        w_mean = self.param("kernel_mean", uni(self.init_bound), (fan_in, self.features))
        w_rho = self.param("kernel_rho", rho, (fan_in, self.features))
        b_mean = self.param("bias_mean", uni(1.0 / math.sqrt(fan_in)), (self.features,))
        b_rho = self.param("bias_rho", rho, (self.features,))
        out = x @ w_mean + b_mean
        if key is not None:
            var = (x * x) @ jnp.square(jax.nn.softplus(w_rho)) + jnp.square(jax.nn.softplus(b_rho))
            out = out + jnp.sqrt(var + 1e-12) * fastmath.normal(key, out.shape, out.dtype)
        if self.linear:
            mix = self.variable("mix", "A", lambda: jnp.eye(self.features, dtype=jnp.float32))
            out = out @ mix.value
        return out


class BayesianSiren(nn.Module):
    """SIREN on Fourier features; ``__call__(coords, key)`` -> ``(..., channels)`` values.

    With a ``key`` (the fitting's stochastic pass) the activations use
    :func:`jrec_inr.fastmath.sin`; without one (the decoder's pass, which fixes every
    ``.jrec`` file's pixels) they use ``jnp.sin``.

    Outputs are centred pixel values (the data are scaled to ``[-0.5, 0.5]``).
    """

    arch: Arch

    @nn.compact
    def __call__(self, coords, key=None):
        a = self.arch
        h = fourier_features(coords, a.num_freqs)
        n_keys = a.depth + 1 + bool(a.pe_grid)  # (the key use of grid-less models is unchanged)
        keys = [None] * n_keys if key is None else list(jax.random.split(key, n_keys))
        sin = jnp.sin if key is None else fastmath.sin  # the decoder's pass is plain jnp.sin
        if a.pe_grid:  # the latent grid: one reparameterised draw per call, shared by the pixels
            shape = (a.pe_grid,) * a.rank + (a.pe_channels,)
            z = self.param("pe_mean", nn.initializers.normal(0.1), shape)
            z_rho = self.param("pe_rho", nn.initializers.constant(a.rho_init), shape)
            if key is not None:
                z = z + jax.nn.softplus(z_rho) * fastmath.normal(keys[-1], shape, z.dtype)
            feats = grid_features(z, coords)
            h = jnp.concatenate([h, feats], axis=-1)
        for i in range(a.depth):
            bound = 1.0 / h.shape[-1] if i == 0 else math.sqrt(6.0 / h.shape[-1]) / a.w0
            h = sin(a.w0 * BayesianDense(a.hidden, bound, a.rho_init, a.linear)(h, keys[i]))
        bound = math.sqrt(6.0 / h.shape[-1]) / a.w0
        return BayesianDense(a.channels, bound, a.rho_init, a.linear)(h, keys[a.depth])


class Layout(NamedTuple):
    """Flat views of the variables: means and rhos as vectors of length ``size``, the
    shared ``"mix"`` collection as a vector of length ``mix_size`` (0 without ``linear``).

    Build with :meth:`of`; ``split(params) -> (mean, rho)``, ``join(mean, rho) -> params``
    (one INR; vmap for many); ``variables(mean, rho, mix) -> {"params", "mix"}``.
    """

    unravel: object  # raveled vector (2 * size,) -> params pytree
    mean_pos: tuple  # positions of the means in the raveled vector (static)
    rho_pos: tuple  # positions of the rhos
    size: int
    mix_unravel: object = None  # (mix_size,) -> the "mix" collection
    mix_size: int = 0

    @classmethod
    def of(cls, params, mix=None) -> Layout:
        """The layout of ``params`` (and ``mix``): arrays or ``jax.ShapeDtypeStruct`` leaves
        (only shapes are read, so ``jax.eval_shape`` of an initialisation is enough)."""
        leaves = jax.tree_util.tree_flatten_with_path(params)[0]
        is_mean = np.concatenate([np.full(math.prod(leaf.shape), str(path[-1].key).endswith("_mean"))
                                  for path, leaf in leaves])
        mix_unravel, mix_size = _unraveler(mix or {})
        return cls(_unraveler(params)[0], tuple(np.flatnonzero(is_mean).tolist()),
                   tuple(np.flatnonzero(~is_mean).tolist()), int(is_mean.sum()), mix_unravel, mix_size)

    def variables(self, mean, rho, mix):
        """The Flax variables of one INR: posterior ``(mean, rho)`` and the flat ``mix``."""
        v = {"params": self.join(mean, rho)}
        if self.mix_size:
            v["mix"] = self.mix_unravel(mix)
        return v

    def split(self, params):
        flat, _ = ravel_pytree(params)
        return flat[np.asarray(self.mean_pos)], flat[np.asarray(self.rho_pos)]

    def join(self, mean, rho):
        flat = jnp.zeros((2 * self.size,), mean.dtype)
        flat = flat.at[np.asarray(self.mean_pos)].set(mean).at[np.asarray(self.rho_pos)].set(rho)
        return self.unravel(flat)


def _unraveler(tree):
    """``(unravel, size)``: ``unravel`` maps a flat vector (the leaves of ``tree`` raveled and
    concatenated in ``tree_flatten`` order, as ``jax.flatten_util.ravel_pytree`` does) back
    to a pytree shaped like ``tree``, whose leaves may be arrays or shape structs."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    shapes = [tuple(leaf.shape) for leaf in leaves]
    ends = np.cumsum([math.prod(shape) for shape in shapes]).tolist()
    size = ends[-1] if ends else 0

    def unravel(flat):
        if flat.shape != (size,):
            raise ValueError(f"expected a flat vector of shape ({size},), got {flat.shape}")
        starts = [0] + ends[:-1]
        return treedef.unflatten([flat[a:b].reshape(shape)
                                  for a, b, shape in zip(starts, ends, shapes, strict=True)])

    return unravel, size


def kl_bits(mean, std, prior_mean, prior_std):
    """Elementwise ``KL(N(mean, std^2) || N(prior_mean, prior_std^2))`` in bits."""
    ratio = jnp.square(std / prior_std)
    nats = 0.5 * (ratio + jnp.square((mean - prior_mean) / prior_std) - 1.0 - jnp.log(ratio))
    return nats / math.log(2.0)

