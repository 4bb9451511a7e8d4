"""Beta-controlled variational fitting of many patch INRs at once (vmap over patches).

The loss of one patch is the COMBINER objective (Guo et al., NeurIPS 2023, eq. 4)

    loss = MSE(patch, INR_w(coords)),  w ~ posterior (local reparameterisation)
           + sum_b beta_b * KL_b / num_pixels,

with ``KL_b`` the KL in bits of the posterior to the prior over the weights of coding
block ``b``. Every ``beta_every`` steps each ``log beta_b`` moves by
``beta_gain * (KL_b - target_b) / target_b``, clipped to ``+-log(beta_factor)``
(COMBINER's multiplicative rule far from the target, proportional near it), so that
each block ends up carrying about its target KL (kappa = 16 bits when coding; the
whole bit budget in one block when learning a prior).

With RECOMBINER's linear reparameterisation (``Arch(linear=True)``) the shared mixing
matrices (the flat ``mix`` vector of the state) are fixed when coding an image and
learned with the prior (``FitConfig.mix_lr > 0``): their gradient is the sum of every
patch's gradient, applied by its own Adam.

Frozen weights (already coded; progressive coding) keep their coded value: their
``rho`` is :data:`~jrec_inr.model.FROZEN_RHO` (std exactly 0), they add no KL and the
optimiser's updates are overwritten after every step.

With RECOMBINER's hierarchical prior (:mod:`jrec_inr.hierarchy`, ``Problem.parents``) the
state's leading axis is the signal's latent *units* (patches, groups, the signal): patch
``p``'s weights are the sum of its three units' latents, whose Gaussian posteriors sum to
the Gaussian ``N(sum of means, sum of variances)`` that the local reparameterisation
draws from; the loss is the patches' MSEs plus each unit's KL to its level's prior, and
each unit's gradient the sum over the patches under it.

The state is a NamedTuple of arrays with a leading patch (unit) axis; :func:`fit_loop` runs
a given number of steps of :func:`make_step` in one jitted loop, so the Python loop
around it (progress bar, checkpoints) stays thin.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jrec_inr.model import FROZEN_RHO, Arch, BayesianSiren, Layout, kl_bits, patch_coords

__all__ = ["FitConfig", "FitState", "Problem", "init_state", "make_step", "fit", "fit_loop", "losses",
           "inverse_softplus", "rows_of", "weight_betas", "block_kls", "pixel_sampler"]


class FitConfig(NamedTuple):
    """Optimisation settings (static).

    Attributes:
      lr: Adam learning rate of the posterior means.
      rho_lr_mult: learning-rate multiplier of the ``rho`` (std) parameters, so posterior
        widths reach the prior's scale in a few hundred steps.
      pixels_per_step: pixels drawn (with replacement) per patch and step.
      stratified: draw them stratified instead: one pixel from each of ``pixels_per_step``
        equal cells of the patch (square ``f x f`` cells when they tile it, runs of the
        row-major order otherwise), an unbiased estimate of the patch's MSE of lower
        variance than independent draws on images, whose neighbouring pixels are alike.
      beta_every: steps between beta updates.
      beta_factor: largest multiplicative beta change per update.
      beta_gain: proportional gain of the beta update (on the relative KL error).
      mix_lr: Adam learning rate of the shared mixing matrices of a linear-reparameterised
        architecture (0: fixed, as when coding).
    """

    lr: float = 2e-3
    rho_lr_mult: float = 10.0
    pixels_per_step: int = 1024
    stratified: bool = False
    beta_every: int = 5
    beta_factor: float = 1.1
    beta_gain: float = 0.5
    mix_lr: float = 0.0


class Problem(NamedTuple):
    """What the patches are fitted against (arrays; leading axis = patches where noted).

    Attributes:
      targets: ``(P, n, C)`` centred pixel values (``x - 0.5``).
      prior_mean, prior_std: ``(D,)`` the factorised Gaussian prior, or ``(U, D)`` one per
        unit (a hierarchical prior: each unit's level's).
      block: ``(D,)`` int32 coding block of each weight, or ``(U, D)`` one per unit.
      kl_target: ``(B,)`` target KL (bits) of each block (of each beta row).
      row: ``(P, D)`` int32, the beta row of each patch's weight: weight ``d`` of patch
        ``p`` counts towards block ``(row[p, d], block[d])`` and is weighted by that
        block's beta (``FitState.log_beta`` is ``(rows, B)``). ``None``: row ``p`` for
        every weight of patch ``p`` (each patch's blocks on their own). Rows that take
        each weight from a different patch let a block's KL go where it buys most
        (RECOMBINER's permutation across patches, :func:`jrec_inr.prior.patch_order`);
        one row for all patches shares a beta among them (prior learning). ``(U, D)``
        with ``parents``.
      parents: ``(P, 3)`` int32 units whose latents patch ``p``'s weights sum
        (:attr:`jrec_inr.hierarchy.Units.parents`); ``None``: no hierarchy, unit ``p`` is
        patch ``p``.
      unit_lr: ``(U,)`` learning-rate multiplier of each unit's posterior mean
        (:meth:`jrec_inr.hierarchy.Units.lr_scale`); ``None``: 1.
    """

    targets: jax.Array
    prior_mean: jax.Array
    prior_std: jax.Array
    block: jax.Array
    kl_target: jax.Array
    row: jax.Array | None = None
    parents: jax.Array | None = None
    unit_lr: jax.Array | None = None


class FitState(NamedTuple):
    """Posterior parameters and optimiser state of ``P`` patches.

    Attributes:
      mean, rho: ``(P, D)`` posterior means and softplus-inverse stds.
      frozen: ``(P, D)`` bool, weights fixed to their coded value.
      log_beta: ``(R, B)`` per-block log beta of each beta row (``R = P`` unless
        ``Problem.row`` says otherwise).
      opt_state: Adam state of ``(mean, rho)``.
      step: int32 step counter.
      mix: ``(M,)`` the shared mixing matrices (empty without linear reparameterisation).
      mix_opt: Adam state of ``mix``.
    """

    mean: jax.Array
    rho: jax.Array
    frozen: jax.Array
    log_beta: jax.Array
    opt_state: object
    step: jax.Array
    mix: jax.Array
    mix_opt: object


def inverse_softplus(y):
    """``rho`` with ``softplus(rho) == y`` (``y > 0``)."""
    y = jnp.asarray(y)
    return y + jnp.log(-jnp.expm1(-y))


def _optimizer(cfg: FitConfig):
    return optax.chain(optax.scale_by_adam(), _scale_pair(-cfg.lr, -cfg.lr * cfg.rho_lr_mult))


def _scale_pair(a: float, b: float):
    """Scale the updates of ``(mean, rho)`` by ``(a, b)``."""

    def update(updates, state, params=None):
        del params
        return (updates[0] * a, updates[1] * b), state

    return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def init_state(mean, rho, log_beta, cfg: FitConfig, frozen=None, mix=None) -> FitState:
    """A fresh state (Adam moments at zero) for posteriors ``(mean, rho)``, ``(P, D)``,
    and the flat shared ``mix`` (default: none, for architectures without ``linear``)."""
    mean = jnp.asarray(mean, jnp.float32)
    rho = jnp.asarray(rho, jnp.float32)
    frozen = jnp.zeros(mean.shape, bool) if frozen is None else jnp.asarray(frozen, bool)
    mix = jnp.zeros((0,), jnp.float32) if mix is None else jnp.asarray(mix, jnp.float32)
    return FitState(mean, rho, frozen, jnp.asarray(log_beta, jnp.float32),
                    _optimizer(cfg).init((mean, rho)), jnp.zeros((), jnp.int32), mix,
                    optax.adam(cfg.mix_lr).init(mix))


def rows_of(problem: Problem, num_patches: int, num_weights: int):
    """``(P, D)`` beta row of every weight (``Problem.row``, or row ``p`` for patch ``p``)."""
    if problem.row is not None:
        return problem.row
    return jnp.broadcast_to(jnp.arange(num_patches, dtype=jnp.int32)[:, None], (num_patches, num_weights))


def weight_betas(log_beta, problem: Problem, num_patches: int, num_weights: int):
    """``(P, D)`` beta of every weight: its block's in its beta row."""
    block = jnp.broadcast_to(problem.block, (num_patches, num_weights))
    return jnp.exp(log_beta)[rows_of(problem, num_patches, num_weights), block]


def block_kls(kl, problem: Problem, num_rows: int):
    """``(R, B)`` KL of each row's blocks from the ``(P, D)`` per-weight KL."""
    p, d = kl.shape
    nb = problem.kl_target.shape[0]
    seg = rows_of(problem, p, d) * nb + jnp.broadcast_to(problem.block, (p, d))
    kl_b = jax.ops.segment_sum(kl.reshape(-1), seg.reshape(-1), num_segments=num_rows * nb)
    return kl_b.reshape(num_rows, nb)


def pixel_sampler(patch, num: int, stratified: bool):
    """``draw(key) -> (m,)`` int32 point indices (row-major) of a patch (an int: a square
    ``patch x patch`` image patch; a tuple: its sides), ``m = min(num, points)``:
    independent uniform draws, or one uniform draw per cell of ``m`` equal cells
    (``stratified``; needs ``m`` to divide the point count, else independent). Cells are
    cubes of side ``f`` when they tile the patch (``f x f`` squares on an image), runs
    of the row-major order otherwise (e.g. stretches of audio samples)."""
    shape = (patch, patch) if isinstance(patch, int) else tuple(patch)
    d = len(shape)
    n = math.prod(shape)
    m = min(num, n)
    if not stratified or n % m:
        return lambda key: jax.random.randint(key, (m,), 0, n)
    k = n // m
    f = round(k ** (1.0 / d))
    strides = [math.prod(shape[i + 1:]) for i in range(d)]
    if d > 1 and f**d == k and all(s % f == 0 for s in shape):  # cubic cells of side f
        cell = jnp.stack(jnp.unravel_index(jnp.arange(m, dtype=jnp.int32), [s // f for s in shape]))
        base = sum(cell[i] * f * strides[i] for i in range(d))

        def draw(key):
            off = jnp.unravel_index(jax.random.randint(key, (m,), 0, k), (f,) * d)
            return base + sum(off[i] * strides[i] for i in range(d))
    else:  # runs of k consecutive points
        base = jnp.arange(m, dtype=jnp.int32) * k

        def draw(key):
            return base + jax.random.randint(key, (m,), 0, k)
    return draw


def _weight_kl(mean, rho, frozen, prior_mean, prior_std):
    """Per-weight KL in bits (0 for frozen weights)."""
    std = jnp.where(frozen, 1.0, jax.nn.softplus(rho))
    return jnp.where(frozen, 0.0, kl_bits(mean, std, prior_mean, prior_std))


def _patch_mse(arch: Arch, layout: Layout, cfg: FitConfig):
    """``patch_mse(mean, rho, target, key, mix)``: the stochastic MSE estimate of one patch
    (``pixels_per_step`` points, one local-reparameterisation draw)."""
    model = BayesianSiren(arch)
    coords = patch_coords(arch.patch)
    pixel_draw = pixel_sampler(arch.patch, cfg.pixels_per_step, cfg.stratified)

    def patch_mse(mean, rho, target, key, mix):
        k_pix, k_noise = jax.random.split(key)
        idx = pixel_draw(k_pix)
        out = model.apply(layout.variables(mean, rho, mix), coords[idx], k_noise)
        return jnp.mean(jnp.square(out - target[idx]))

    return patch_mse


def losses(arch: Arch, layout: Layout, cfg: FitConfig):
    """``patch_loss(mean, rho, frozen, beta, target, key, problem, mix) -> (loss, (mse, kl))``.

    ``beta`` is the ``(D,)`` beta of each weight (:func:`weight_betas`), ``kl`` the
    ``(D,)`` KL of each weight in bits (0 for frozen ones).
    """
    patch_mse = _patch_mse(arch, layout, cfg)
    n = arch.patch_size

    def patch_loss(mean, rho, frozen, beta, target, key, problem, mix):
        mse = patch_mse(mean, rho, target, key, mix)
        kl = _weight_kl(mean, rho, frozen, problem.prior_mean, problem.prior_std)
        return mse + jnp.sum(jax.lax.stop_gradient(beta) * kl) / n, (mse, kl)

    return patch_loss


def _hierarchical_loss(patch_mse, n: int):
    """The loss of all units of a hierarchical prior: ``loss(mean, rho, frozen, beta, targets,
    keys, problem, mix) -> (loss, (mse (P,), kl (U, D)))``, the sum of every patch's loss."""

    def loss(mean, rho, frozen, beta, targets, keys, problem, mix):
        std = jnp.where(frozen, 0.0, jax.nn.softplus(rho))
        par = problem.parents
        eff_mean = jnp.sum(mean[par], axis=1)  # (P, D): sum over the levels
        eff_std = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(std[par]), axis=1), 1e-30))
        mse = jax.vmap(patch_mse, (0, 0, 0, 0, None))(eff_mean, inverse_softplus(eff_std), targets, keys, mix)
        kl = _weight_kl(mean, rho, frozen, problem.prior_mean, problem.prior_std)
        return jnp.sum(mse) + jnp.sum(jax.lax.stop_gradient(beta) * kl) / n, (mse, kl)

    return loss


def make_step(arch: Arch, layout: Layout, cfg: FitConfig):
    """One optimisation step of all patches: ``step(state, problem, key) -> (state, (mse, kl_b))``."""
    patch_loss = losses(arch, layout, cfg)
    learn_mix = cfg.mix_lr > 0 and layout.mix_size > 0
    argnums = (0, 1, 7) if learn_mix else (0, 1)
    grad = jax.vmap(jax.value_and_grad(patch_loss, argnums=argnums, has_aux=True),
                    (0, 0, 0, 0, 0, 0, None, None))
    hier_grad = jax.value_and_grad(_hierarchical_loss(_patch_mse(arch, layout, cfg), arch.patch_size),
                                   argnums=argnums,
                                   has_aux=True)
    opt = _optimizer(cfg)
    mix_opt = optax.adam(cfg.mix_lr)
    log_factor = math.log(cfg.beta_factor)

    def step(state: FitState, problem: Problem, key):
        if state.mix.shape != (layout.mix_size,):  # static shapes: checked when tracing
            raise ValueError(f"the state's mixing weights have shape {state.mix.shape}; the "
                             f"architecture needs ({layout.mix_size},) (init_state(..., mix=model.mix))")
        p, d = state.mean.shape
        keys = jax.random.split(key, problem.targets.shape[0])
        beta = weight_betas(state.log_beta, problem, p, d)
        if problem.parents is None:  # each patch on its own: vmap of its loss
            (_, (mse, kl)), g = grad(state.mean, state.rho, state.frozen, beta,
                                     problem.targets, keys, problem, state.mix)
            mix_grad = jnp.sum(g[2], axis=0) if learn_mix else None
        else:  # units shared by patches: the gradient of the sum
            (_, (mse, kl)), g = hier_grad(state.mean, state.rho, state.frozen, beta,
                                          problem.targets, keys, problem, state.mix)
            mix_grad = g[2] if learn_mix else None
        kl_b = block_kls(kl, problem, state.log_beta.shape[0])
        mix, mix_state = state.mix, state.mix_opt
        if learn_mix:  # the shared matrices: the sum of the patches' gradients
            mix_updates, mix_state = mix_opt.update(mix_grad, mix_state, mix)
            mix = optax.apply_updates(mix, mix_updates)
        updates, opt_state = opt.update(g[:2], state.opt_state, (state.mean, state.rho))
        if problem.unit_lr is not None:  # each unit's learning-rate multiplier (of the means)
            updates = (updates[0] * problem.unit_lr[:, None], updates[1])
        mean, rho = optax.apply_updates((state.mean, state.rho), updates)
        mean = jnp.where(state.frozen, state.mean, mean)
        rho = jnp.where(state.frozen, FROZEN_RHO, rho)
        adjust = (state.step + 1) % cfg.beta_every == 0
        rel = (kl_b - problem.kl_target) / jnp.maximum(problem.kl_target, 1.0)
        delta = jnp.clip(cfg.beta_gain * rel, -log_factor, log_factor)
        log_beta = state.log_beta + jnp.where(adjust, delta, 0.0)
        new = FitState(mean, rho, state.frozen, log_beta, opt_state, state.step + 1, mix, mix_state)
        return new, (mse, kl_b)

    return step


@functools.lru_cache(maxsize=32)
def fit_loop(arch: Arch, layout: Layout, cfg: FitConfig):
    """Jitted ``run(state, problem, key, num_steps) -> (state, mse, kl_b)``.

    Runs ``num_steps`` steps of :func:`make_step` in a ``lax.fori_loop``; ``mse`` is the
    last step's per-patch estimate, ``kl_b`` the last step's ``(R, B)`` block KLs (zeros
    after 0 steps). Step ``i`` uses ``fold_in(key, state.step + i)``.

    The step count is an argument, not a constant of the program: one compiled program
    per architecture, settings and shapes serves every step count (the encoder's fitting
    chunks and its fine-tuning between blocks, EM's E-steps), and the function is cached
    per ``(arch, layout, cfg)``.
    """
    step = make_step(arch, layout, cfg)

    @jax.jit
    def run(state: FitState, problem: Problem, key, num_steps):
        aux = jax.eval_shape(lambda s: step(s, problem, key)[1], state)
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), aux)

        def body(_, carry):
            s, _ = carry
            return step(s, problem, jax.random.fold_in(key, s.step))

        state, (mse, kl_b) = jax.lax.fori_loop(0, num_steps, body, (state, zeros))
        return state, mse, kl_b

    return run


def fit(arch: Arch, layout: Layout, cfg: FitConfig, num_steps: int):
    """``run(state, problem, key) -> (state, mse, kl_b)``: :func:`fit_loop`'s program with
    ``num_steps`` steps."""
    if not (isinstance(num_steps, int) and num_steps >= 0):
        raise ValueError(f"num_steps must be a non-negative int, got {num_steps!r}")
    run = fit_loop(arch, layout, cfg)
    return lambda state, problem, key: run(state, problem, key, num_steps)  # (positional: one cache entry)
