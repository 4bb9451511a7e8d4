"""A VAE with a REC bottleneck on scikit-learn's digits: ELBO-estimated vs real coded bits.

The pattern of the A* coding paper's MNIST experiment (Flamich, Markou &
Hernandez-Lobato, "Fast relative entropy coding with A* coding", ICML 2022: 1.43 bpd
estimated vs 1.53 coded with 20 latents), on scikit-learn's bundled digits (1,797 8x8
images, 17 grey levels; 1,500 train / 297 test, seeded split). Encoder and decoder are
MLPs (Flax), trained with Optax on the negative ELBO in bits; the latent goes through
:class:`jrec.nn.GaussianBottleneck`.

Coding a test image, losslessly: the latent's index with the bottleneck's sampler
(``gprs_bb`` per dimension, exact, or ORC blocks), all test images' indices in one
``.jrec`` container; then the pixels with ``constriction``'s ANS under the decoder's
categorical probabilities at the *decoded* latent (so encoder and decoder use the same
numbers). Coded bpd = (container bytes + ANS bytes) * 8 / (images * 64); the decoder
rebuilds every pixel exactly (checked).

Used by ``benchmarks/vae_digits.py`` (the measured table) and by
``notebooks/03_rec_bottleneck_vae.ipynb``; needs scikit-learn (``pip install jrec[test]``).

Example::

    from jrec.examples import vae_digits as ex
    x_train, x_test = ex.load_digits()
    model = ex.VAE(latents=8)
    params = ex.train(model, x_train, steps=2000)
    est = ex.elbo_bpd(model, params, x_test)      # (-ELBO, KL, NLL) in bits per dimension
    stats = ex.code(model, params, x_test)         # real file sizes; stats["lossless"]
"""

from __future__ import annotations

import math
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jrec.nn import GaussianBottleneck, from_bytes, to_bytes

__all__ = ["LEVELS", "KAPPA", "load_digits", "VAE", "bottleneck_of", "train", "elbo_bpd", "code", "run"]

LEVELS = 17  #: grey levels of a digits pixel (0..16)
KAPPA = 14  #: ORC's bits per latent block (run(): one block per image; test KL is 9-12 bits per image)


def load_digits(seed=0):
    """``(train, test)`` int arrays ``(n, 64)`` in ``[0, 16]`` (1,500 / 297, seeded split)."""
    from sklearn.datasets import load_digits as _load

    x = _load().data.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    return x[perm[:1500]], x[perm[1500:]]


def bottleneck_of(model: VAE) -> GaussianBottleneck:
    """The model's bottleneck module (the same one inside the model and for :func:`jrec.nn.to_bytes`)."""
    return GaussianBottleneck(model.latents, method=model.method, block_size=model.block_size, kappa=KAPPA)


class VAE(nn.Module):
    """MLP encoder -> :class:`~jrec.nn.GaussianBottleneck` -> MLP decoder (17-way categorical pixels).

    Attributes:
      latents: latent dimensions.
      method: the bottleneck's coding method (``"gprs_bb"``, ``"orc"``, ``"pfr"``).
      block_size: latent dimensions per coded block (``orc`` / ``pfr``).
      hidden: width of the hidden layers.
    """

    latents: int
    method: str = "gprs_bb"
    block_size: int = 1
    hidden: int = 256

    def setup(self):
        self.enc = [nn.Dense(self.hidden), nn.Dense(self.hidden), nn.Dense(2 * self.latents)]
        self.dec = [nn.Dense(self.hidden), nn.Dense(self.hidden), nn.Dense(64 * LEVELS)]
        self.bottleneck = bottleneck_of(self)

    def posterior(self, x):
        """Posterior mean and std of the latent for pixels ``x`` (ints in [0, 16], ``(..., 64)``)."""
        h = x.astype(jnp.float32) / 16.0 - 0.5
        h = nn.gelu(self.enc[0](h))
        h = nn.gelu(self.enc[1](h))
        mean, pre = jnp.split(self.enc[2](h), 2, axis=-1)
        return mean, jax.nn.softplus(pre) + 1e-3

    def logits(self, z):
        """Decoder logits ``(..., 64, LEVELS)`` at latent ``z``."""
        h = nn.gelu(self.dec[0](z))
        h = nn.gelu(self.dec[1](h))
        return self.dec[2](h).reshape(z.shape[:-1] + (64, LEVELS))

    def __call__(self, x, key):
        """Negative ELBO in bits per image: ``(nll_bits, kl_bits)``."""
        mean, std = self.posterior(x)
        z, kl = self.bottleneck(mean, std, key)
        logp = jax.nn.log_softmax(self.logits(z))
        nll = -jnp.take_along_axis(logp, x[..., None], -1)[..., 0].sum(-1) / math.log(2)
        return nll, kl

    def encode_latents(self, x, keys):
        """Code the latents of ``x`` (one key per example): a :class:`jrec.Code`."""
        mean, std = self.posterior(x)
        return self.bottleneck.encode(mean, std, keys)


def train(model: VAE, x_train, steps: int, seed: int = 0, batch: int = 128, x_val=None,
          eval_every: int = 250, log=print):
    """Adam (cosine-decayed 2e-3) on the negative ELBO in bits; returns the parameters.

    With ``x_val`` (held-out images), the parameters with the lowest validation -ELBO
    (checked every ``eval_every`` steps) are returned: 1,500 digits overfit a 256-wide
    MLP within ~1,000 steps (test -ELBO rises from 2.1 to 6+ bpd by 4,000 steps).
    """
    x_train = jnp.asarray(x_train)
    key = jax.random.key(seed)
    params = model.init(key, x_train[:2], key)
    opt = optax.adam(optax.cosine_decay_schedule(2e-3, steps, alpha=0.05))
    state = opt.init(params)

    @jax.jit
    def step(params, state, k):
        kb, kz = jax.random.split(k)
        idx = jax.random.randint(kb, (batch,), 0, x_train.shape[0])
        def loss(p):
            nll, kl = model.apply(p, x_train[idx], kz)
            return jnp.mean(nll + kl)
        val, g = jax.value_and_grad(loss)(params)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, val

    if x_val is not None:
        x_val = jnp.asarray(x_val)
        val_loss = jax.jit(lambda p, k: jnp.mean(sum(model.apply(p, x_val, k))))
    best, best_loss, best_step = params, np.inf, 0
    for i in range(steps):
        params, state, val = step(params, state, jax.random.fold_in(key, i))
        if x_val is not None and ((i + 1) % eval_every == 0 or i + 1 == steps):
            v = float(val_loss(params, jax.random.fold_in(key, 2**31)))
            if v < best_loss:
                best, best_loss, best_step = params, v, i + 1
        if log and (i + 1) % max(1, steps // 5) == 0:
            msg = f"  step {i + 1}: train -ELBO {float(val) / 64:.3f} bpd"
            if x_val is not None:
                msg += f", best validation {best_loss / 64:.3f} at step {best_step}"
            log(msg)
    return best if x_val is not None else params


def elbo_bpd(model, params, x, samples=16, seed=1):
    """Test negative ELBO in bits per dimension (NLL averaged over ``samples`` posterior draws)."""
    x = jnp.asarray(x)
    f = jax.jit(lambda k: model.apply(params, x, k))
    nll = np.mean([np.asarray(f(jax.random.key(seed * 1000 + s))[0]) for s in range(samples)], axis=0)
    kl = np.asarray(f(jax.random.key(seed))[1])
    return float((nll + kl).mean() / 64), float(kl.mean() / 64), float(nll.mean() / 64)


def _probs(model, params, z):
    logits = jax.jit(lambda z: model.apply(params, z, method=VAE.logits))(z)
    p = np.asarray(jax.nn.softmax(logits.astype(jnp.float32)), np.float64)
    return p.reshape(-1, LEVELS)


def code(model, params, x, seed=2):
    """Lossless coding of ``x`` (latents by REC, pixels by ANS) and decoding; returns a stats dict.

    Keys: ``latent_bits_per_dim``, ``pixel_bits_per_dim``, ``coded_bpd`` (from the real
    byte counts), ``encode_seconds``, ``decode_seconds`` and ``lossless`` (decoded == x).
    """
    import constriction

    x = jnp.asarray(x)
    bn = bottleneck_of(model)
    bvars = {"params": params["params"]["bottleneck"]}
    keys = jax.random.split(jax.random.key(seed), x.shape[0])
    t0 = time.perf_counter()
    c = jax.jit(lambda p, x, k: model.apply(p, x, k, method=VAE.encode_latents))(params, x, keys)
    latent_bytes = to_bytes(bn, bvars, c, keys)
    z = from_bytes(bn, bvars, latent_bytes, keys)  # the decoder's latents, used on both sides
    cat = constriction.stream.model.Categorical(perfect=False)
    enc = constriction.stream.stack.AnsCoder()
    enc.encode_reverse(np.asarray(x, np.int32).reshape(-1), cat, _probs(model, params, z))
    words = enc.get_compressed()
    t_enc = time.perf_counter() - t0
    # decoder: bytes -> latents -> probabilities -> pixels
    t0 = time.perf_counter()
    z2 = from_bytes(bn, bvars, latent_bytes, keys)
    dec = constriction.stream.stack.AnsCoder(words)
    pix = dec.decode(cat, _probs(model, params, z2)).reshape(x.shape)
    t_dec = time.perf_counter() - t0
    n = x.size
    stats = {"latent_bits_per_dim": 8 * len(latent_bytes) / n, "pixel_bits_per_dim": 32 * words.size / n,
             "coded_bpd": (8 * len(latent_bytes) + 32 * words.size) / n, "encode_seconds": t_enc,
             "decode_seconds": t_dec, "lossless": bool(np.array_equal(pix, np.asarray(x)))}
    return stats


def run(latents=(4, 8, 16), steps=4000, methods=("gprs_bb", "orc"), log=print):
    """Train one VAE per latent size, estimate its -ELBO and code it with each method; one row each.

    The coding method changes nothing in training (the bottleneck's parameters are the
    prior's), so every method codes the same trained model.
    """
    x_train, x_test = load_digits()
    rows = []
    for L in latents:
        t0 = time.perf_counter()
        if log:
            log(f"{L} latents:")
        # the last 200 training images pick the stopping step (the test set stays unseen)
        params = train(VAE(L), x_train[:-200], steps, x_val=x_train[-200:], log=log)
        train_seconds = time.perf_counter() - t0
        for m in methods:
            # ORC: the whole latent in one kappa-bit block (PFR blocks of 8+ dimensions need
            # ~exp(D_inf) steps, which the 0.9 std cap keeps finite but not small)
            block = 1 if m == "gprs_bb" else L
            model = VAE(L, method=m, block_size=block)
            est, kl, nll = elbo_bpd(model, params, x_test)
            st = code(model, params, x_test)
            row = {"method": m, "latents": L, "block_size": block, "elbo_bpd": est, "kl_bpd": kl,
                   "nll_bpd": nll, **st, "train_seconds": train_seconds, "steps": steps}
            rows.append(row)
            if log:
                log(f"  {m}: ELBO {est:.3f} bpd (KL {kl:.3f}) vs coded {st['coded_bpd']:.3f} bpd "
                    f"(latents {st['latent_bits_per_dim']:.3f}), lossless {st['lossless']}")
    return rows
