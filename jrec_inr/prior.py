"""Learning the shared prior by EM, grouping weights into coding blocks, model files.

COMBINER (Guo et al., NeurIPS 2023, section 3.1): the prior ``N(m, s^2)`` over the
INR weights is learned from training items by (variational) EM. E-step: fit the
posteriors ``N(mu_i, sigma_i^2)`` of all training patches in parallel (vmap) with the
beta-controlled loss of :mod:`jrec_inr.fit`; M-step, in closed form::

    m = mean_i mu_i,        s^2 = mean_i (sigma_i^2 + (mu_i - m)^2).

After EM the weights are grouped into coding blocks (section 3.2): a fixed seeded
permutation, filled greedily so each block holds about ``kappa`` bits of the
training-set average KL. The prior, the grouping, the architecture and the initial
per-block beta form a :class:`Model`, saved as an ``.npz`` file; its fingerprint goes
into every ``.jrec`` header so a decoder with another model refuses the file.
"""


import functools
import hashlib
import io
import json
import math
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jrec_inr import data, hierarchy
from jrec_inr.fit import FitConfig, Problem, fit_loop, init_state
from jrec_inr.model import Arch, BayesianSiren, Layout, kl_bits, patch_coords

__all__ = ["Model", "Upper", "Level", "m_step", "group_blocks", "train_prior", "load_model", "save_model",
           "bundled_models", "training_patches", "training_signals", "TrainConfig", "ModelError", "init_mix",
           "patch_order"]

MODEL_FORMAT = 1


class ModelError(ValueError):
    """A model file that cannot be used (missing, corrupt, wrong format)."""


class Upper(NamedTuple):
    """The group and signal levels of a hierarchical prior (RECOMBINER, He et al. ICLR 2024,
    section 3.3; :mod:`jrec_inr.hierarchy`). The patch level is the :class:`Model`'s own
    ``prior_mean`` / ``prior_std`` / ``block`` / ``log_beta``.

    Attributes:
      group: patches per group along each axis of the grid of patches.
      prior_mean, prior_std: ``(2, D)`` float32 priors of the group level (row 0) and the
        signal level (row 1).
      block: ``(2, D)`` int32 coding block of each weight within its level.
      log_beta: ``(Bg + Bs,)`` float32 initial log beta of the group level's blocks, then
        the signal level's.
    """

    group: tuple
    prior_mean: np.ndarray
    prior_std: np.ndarray
    block: np.ndarray
    log_beta: np.ndarray

    @property
    def num_blocks(self) -> tuple[int, int]:
        """Blocks of the group level and of the signal level."""
        return int(self.block[0].max()) + 1, int(self.block[1].max()) + 1


class Level(NamedTuple):
    """One level of a model's prior, as the codec codes it (:meth:`Model.levels`).

    Attributes:
      level: :data:`~jrec_inr.hierarchy.PATCH`, ``GROUP`` or ``SIGNAL``.
      prior_mean, prior_std: ``(D,)`` its prior.
      block: ``(D,)`` int32 block of each weight within the level.
      log_beta: ``(B_l,)`` initial log beta of its blocks.
      first_block: the id of its block 0 among all the model's blocks (patch blocks first,
        then group, then signal blocks): a block's key and beta column.
    """

    level: int
    prior_mean: np.ndarray
    prior_std: np.ndarray
    block: np.ndarray
    log_beta: np.ndarray
    first_block: int

    @property
    def num_blocks(self) -> int:
        return int(self.log_beta.shape[0])


class Model(NamedTuple):
    """Everything encoder and decoder share besides the key.

    Attributes:
      name: short id stored in ``.jrec`` files (e.g. ``"bpp0.3"``).
      arch: the INR architecture.
      kappa: bits per coding block (ORC with ``2^kappa`` candidates).
      bpp: the bit rate the model was trained for (bits per pixel).
      prior_mean, prior_std: ``(D,)`` float32 prior.
      block: ``(D,)`` int32 block of each weight; blocks are coded in order 0, 1, ...
      log_beta: ``(B,)`` float32 initial per-block log beta for fitting new images.
      recipe: dict, the training command and settings (provenance).
      mix: ``(M,)`` float32 the shared mixing matrices of a linear-reparameterised
        architecture (RECOMBINER), learned with the prior; empty otherwise.
      cross_patch: blocks across patches (RECOMBINER): the ``j``-th block ``b`` of an
        image takes each of its weights ``d`` from patch ``patch_order(...)[j, d]``
        instead of all from patch ``j``, so a block's ``kappa`` bits go to the patches
        that need them (:func:`patch_order`).
      modality: the kind of signal it codes (:mod:`jrec_inr.modalities`).
      rate: the rate it was trained for in the modality's unit (kbps for audio, bits per
        residue for proteins, bits per frame pixel for video); ``None`` for images, whose
        unit is ``bpp``. (``bpp`` is always the training budget in bits per grid point.)
      upper: the group and signal levels of a hierarchical prior (:class:`Upper`);
        ``None``: every patch's latent on its own (COMBINER).
    """

    name: str
    arch: Arch
    kappa: int
    bpp: float
    prior_mean: np.ndarray
    prior_std: np.ndarray
    block: np.ndarray
    log_beta: np.ndarray
    recipe: dict
    mix: np.ndarray = np.zeros(0, np.float32)
    cross_patch: bool = False
    modality: str = "image"
    rate: float | None = None
    upper: Upper | None = None

    @property
    def nominal_rate(self) -> float:
        """The rate the model was trained for, in its modality's unit."""
        return self.bpp if self.rate is None else self.rate

    @property
    def num_blocks(self) -> int:
        return int(self.log_beta.shape[0])

    @property
    def num_weights(self) -> int:
        return int(self.prior_mean.shape[0])

    @property
    def total_blocks(self) -> int:
        """Blocks of all levels."""
        return self.num_blocks + (0 if self.upper is None else sum(self.upper.num_blocks))

    def levels(self) -> list[Level]:
        """The levels in coding order: signal, group, patch (the patch level alone without
        a hierarchy)."""
        patch = Level(hierarchy.PATCH, self.prior_mean, self.prior_std, self.block, self.log_beta, 0)
        if self.upper is None:
            return [patch]
        u, (bg, _) = self.upper, self.upper.num_blocks
        group = Level(hierarchy.GROUP, u.prior_mean[0], u.prior_std[0], u.block[0], u.log_beta[:bg],
                      self.num_blocks)
        signal = Level(hierarchy.SIGNAL, u.prior_mean[1], u.prior_std[1], u.block[1], u.log_beta[bg:],
                       self.num_blocks + bg)
        return [signal, group, patch]

    def units(self, patch_grid) -> hierarchy.Units | None:
        """The latent units of a signal of ``patch_grid`` patches (``None`` without a hierarchy)."""
        return None if self.upper is None else hierarchy.units(tuple(patch_grid), self.upper.group)

    def fingerprint_parts(self) -> dict:
        """What identifies the model for the ``.jrec`` model fingerprint."""
        parts = {"format": MODEL_FORMAT, "name": self.name, "arch": self.arch.to_json(),
                 "kappa": self.kappa, "prior_mean": np.asarray(self.prior_mean, np.float32),
                 "prior_std": np.asarray(self.prior_std, np.float32),
                 "block": np.asarray(self.block, np.int32)}
        if np.size(self.mix):
            parts["mix"] = np.asarray(self.mix, np.float32)
        if self.cross_patch:  # left out otherwise: older models keep their fingerprints
            parts["cross_patch"] = 1
        if self.modality != "image":
            parts["modality"] = self.modality
        if self.upper is not None:
            u = self.upper
            parts.update(group=np.asarray(u.group, np.int32), up_mean=np.asarray(u.prior_mean, np.float32),
                         up_std=np.asarray(u.prior_std, np.float32), up_block=np.asarray(u.block, np.int32))
        return parts

    def patch_order(self, num_patches: int) -> np.ndarray | None:
        """:func:`patch_order` for an image of ``num_patches`` patches (``None`` unless
        ``cross_patch``: block ``j`` of an image is patch ``j``'s)."""
        return patch_order(num_patches, self.num_weights) if self.cross_patch else None

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for k, v in sorted(self.fingerprint_parts().items()):
            h.update(k.encode())
            h.update(v.tobytes() if isinstance(v, np.ndarray) else str(v).encode())
        return h.hexdigest()


def save_model(path, model: Model) -> None:
    """Write a model as ``.npz`` (atomically)."""
    meta = {"format": MODEL_FORMAT, "name": model.name, "arch": model.arch._asdict(),
            "kappa": model.kappa, "bpp": model.bpp, "recipe": model.recipe}
    if model.cross_patch:
        meta["cross_patch"] = True
    if model.modality != "image":
        meta["modality"] = model.modality
    if model.rate is not None:
        meta["rate"] = model.rate
    upper = {}
    if model.upper is not None:
        meta["group"] = list(model.upper.group)
        upper = {"up_mean": np.asarray(model.upper.prior_mean, np.float32),
                 "up_std": np.asarray(model.upper.prior_std, np.float32),
                 "up_block": np.asarray(model.upper.block, np.int32),
                 "up_log_beta": np.asarray(model.upper.log_beta, np.float32)}
    buf = io.BytesIO()
    np.savez_compressed(buf, **upper, prior_mean=np.asarray(model.prior_mean, np.float32),
                        prior_std=np.asarray(model.prior_std, np.float32),
                        block=np.asarray(model.block, np.int32),
                        log_beta=np.asarray(model.log_beta, np.float32),
                        mix=np.asarray(model.mix, np.float32),
                        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8))
    data.atomic_write(path, buf.getvalue())


def load_model(path) -> Model:
    """Read a model file written by :func:`save_model` (checked)."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            arrays = {k: z[k] for k in ("prior_mean", "prior_std", "block", "log_beta")}
            mix = z["mix"] if "mix" in z.files else np.zeros(0, np.float32)
            up = {k: z[k] for k in ("up_mean", "up_std", "up_block", "up_log_beta") if k in z.files}
    except FileNotFoundError as e:
        raise ModelError(f"{path}: no such model file") from e
    except Exception as e:  # zip / json / key errors: not a model file
        raise ModelError(f"{path}: not a jrec_inr model file ({e})") from e
    if meta.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path}: model format {meta.get('format')} is not {MODEL_FORMAT}")
    try:
        arch = Arch.from_dict(meta["arch"]).check()
    except (TypeError, ValueError) as e:
        raise ModelError(f"{path}: unusable architecture settings {meta['arch']} ({e})") from e
    layout = layout_of(arch)
    d = layout.size
    m, s, b, lb = (arrays[k] for k in ("prior_mean", "prior_std", "block", "log_beta"))
    if m.shape != (d,) or s.shape != (d,) or b.shape != (d,) or lb.ndim != 1:
        raise ModelError(f"{path}: array shapes do not match the architecture ({d} weights)")
    if mix.shape != (layout.mix_size,):
        raise ModelError(f"{path}: {mix.size} mixing weights, the architecture has {layout.mix_size}")
    if not (np.all(np.isfinite(m)) and np.all(s > 0) and b.min() >= 0 and b.max() < lb.shape[0]
            and np.all(np.isfinite(mix))):
        raise ModelError(f"{path}: invalid prior, mixing matrices or block table")
    upper = None
    if "group" in meta:
        try:
            group = tuple(int(v) for v in meta["group"])
            um, us, ub, ulb = (up[k] for k in ("up_mean", "up_std", "up_block", "up_log_beta"))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{path}: incomplete hierarchical prior ({e})") from None
        if (len(group) != arch.rank or min(group) < 1 or um.shape != (2, d) or us.shape != (2, d)
                or ub.shape != (2, d) or ulb.ndim != 1):
            raise ModelError(f"{path}: hierarchical prior arrays do not match the architecture")
        if not (np.all(np.isfinite(um)) and np.all(us > 0) and ub.min() >= 0
                and int(ub[0].max()) + int(ub[1].max()) + 2 == ulb.shape[0] and np.all(np.isfinite(ulb))):
            raise ModelError(f"{path}: invalid hierarchical prior or block tables")
        upper = Upper(group, um.astype(np.float32), us.astype(np.float32), ub.astype(np.int32),
                      ulb.astype(np.float32))
    return Model(meta["name"], arch, int(meta["kappa"]), float(meta["bpp"]), m.astype(np.float32),
                 s.astype(np.float32), b.astype(np.int32), lb.astype(np.float32), meta["recipe"],
                 mix.astype(np.float32), bool(meta.get("cross_patch", False)),
                 str(meta.get("modality", "image")),
                 None if meta.get("rate") is None else float(meta["rate"]), upper)


def bundled_models() -> dict[str, str]:
    """``{name: path}`` of the models shipped in ``jrec_inr/models``."""
    from importlib import resources

    root = resources.files("jrec_inr") / "models"
    out = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".npz"):
            out[entry.name[:-4]] = str(entry)
    return out


def init_posterior(arch: Arch, key):
    """Flat ``(mean, rho)`` of a freshly initialised SIREN (the Flax initialisers)."""
    params = BayesianSiren(arch).init(key, patch_coords(arch.patch)[:1])["params"]
    return layout_of(arch).split(params)


@functools.lru_cache(maxsize=32)
def init_mix(arch: Arch) -> np.ndarray:
    """The flat ``"mix"`` collection at initialisation (identities; empty unless ``arch.linear``)."""
    variables = jax.jit(BayesianSiren(arch).init)(jax.random.key(0), patch_coords(arch.patch)[:1])
    return np.asarray(ravel_pytree(variables.get("mix", {}))[0], np.float32)


@functools.lru_cache(maxsize=32)
def layout_of(arch: Arch) -> Layout:
    """The flat layout of ``arch``'s variables (from the shapes of an initialisation, which
    ``jax.eval_shape`` gives without compiling or running it)."""
    shapes = jax.eval_shape(BayesianSiren(arch).init, jax.random.key(0), patch_coords(arch.patch)[:1])
    return Layout.of(shapes["params"], shapes.get("mix", {}))


def m_step(mean, std, floor: float = 1e-6):
    """Closed-form prior update from posteriors ``(P, D)``: ``(m, s)``, each ``(D,)``."""
    mean = jnp.asarray(mean)
    m = jnp.mean(mean, axis=0)
    var = jnp.mean(jnp.square(std) + jnp.square(mean - m), axis=0)
    return m, jnp.sqrt(jnp.maximum(var, floor * floor))


def group_blocks(avg_kl, num_blocks: int, seed: int = 0, size_weight: float = 0.1) -> np.ndarray:
    """Group weights into ``num_blocks`` blocks of about equal average KL.

    The weights are walked in a fixed seeded permutation and cut into contiguous runs at
    equal steps of a cumulative measure: ``1 - size_weight`` of it the weight's share of
    the total average KL, ``size_weight`` its share of the weight count (so blocks of
    near-zero-KL weights stay small). Block ``b`` is the run whose midpoints fall in
    ``[b, b + 1) / num_blocks``. Returns the ``(D,)`` int32 block of each weight; every
    block is non-empty (runs that would be empty are dropped, so fewer blocks can result
    only when a single weight holds more than one block's share).
    """
    avg_kl = np.maximum(np.asarray(avg_kl, np.float64), 0.0)
    d = avg_kl.shape[0]
    if not 1 <= num_blocks <= d:
        raise ValueError(f"num_blocks must be in [1, {d}], got {num_blocks}")
    order = np.random.default_rng(seed).permutation(d)
    total = avg_kl.sum()
    share = avg_kl[order] / total if total > 0 else np.full(d, 1.0 / d)
    u = (1.0 - size_weight) * share + size_weight / d
    mid = np.cumsum(u) - u / 2
    raw = np.minimum((mid * num_blocks).astype(np.int64), num_blocks - 1)
    _, dense = np.unique(raw, return_inverse=True)  # drop empty runs, keep order
    block = np.empty(d, np.int32)
    block[order] = dense.astype(np.int32)
    return block


def _mix64(x):
    """SplitMix64's finaliser on uint64 arrays (a fixed, platform-independent hash)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@functools.lru_cache(maxsize=8)
def patch_order(num_patches: int, num_weights: int, seed: int = 0) -> np.ndarray:
    """Blocks across patches (RECOMBINER, He et al. ICLR 2024): ``(P, D)`` int32 ``order``
    with ``order[:, d]`` a permutation of the patches, one per weight ``d``.

    The ``j``-th copy of block ``b`` holds weight ``d`` (for each ``d`` of block ``b``)
    of patch ``order[j, d]``. Each block still has the same weights, hence about ``kappa``
    bits of training-set KL, but from many patches, and its beta lets the KL go where it
    lowers the distortion most: busy patches get more bits than flat ones, where one
    block per patch gives every patch the same rate. The permutations come from a fixed
    integer hash of ``(seed, d, p)``, so encoder and decoder agree on every platform;
    nothing is sent.
    """
    p = np.arange(num_patches, dtype=np.uint64)[:, None]
    d = np.arange(num_weights, dtype=np.uint64)[None, :]
    h = _mix64((np.uint64(seed) << np.uint64(48)) ^ (d << np.uint64(24)) ^ p ^ np.uint64(0x9E3779B97F4A7C15))
    order = np.argsort(h, axis=0, kind="stable").astype(np.int32)
    order.setflags(write=False)
    return order


class TrainConfig(NamedTuple):
    """Prior training settings (recorded in the model's recipe).

    Attributes:
      bpp: target bits per pixel.
      kappa: bits per coding block.
      num_patches: training patches (drawn once from the pool, seeded).
      em_iters: EM iterations after the first E-step.
      first_steps: optimisation steps of the first E-step.
      steps: optimisation steps of each later E-step (warm-started).
      seed: seed of the patch draw, initialisation, noise and grouping.
      beta_init: initial beta (adapted every ``fit.beta_every`` steps by ``fit.beta_factor``).
      cross_patch: the model codes blocks across patches (``Model.cross_patch``), so an
        image's bits go unevenly to its patches. It does not change training.
      shared_beta: learn the prior with one beta for all training patches, adapted so
        that their *mean* KL is the budget (as RECOMBINER does), instead of one beta
        per patch and exactly the budget per patch (COMBINER). Measured worse for
        coding across patches (``jrec_inr/models/README.md``), so off by default.
      fit: the optimiser settings (``fit.mix_lr``: learning rate of the shared mixing
        matrices of a linear-reparameterised architecture).
    """

    bpp: float = 0.3
    kappa: int = 16
    num_patches: int = 96
    em_iters: int = 5
    first_steps: int = 400
    steps: int = 200
    seed: int = 0
    beta_init: float = 3e-3
    fit: FitConfig = FitConfig(beta_factor=1.15, mix_lr=2e-3)
    cross_patch: bool = True
    shared_beta: bool = False


def training_patches(paths, patch, num: int, seed: int, *, grids=None) -> np.ndarray:
    """``num`` distinct non-overlapping patches drawn from images (``paths``) or from unit-scale
    grids ``(*dims, C)`` of any modality (``grids``): ``(num, prod(patch), C)``."""
    if grids is None:
        grids = [data.load_image(p) for p in paths]
    pool = np.concatenate([data.to_patches(g, patch) for g in grids])
    if pool.shape[0] < num:
        raise ValueError(f"only {pool.shape[0]} patches in the training data, asked for {num}")
    pick = np.random.default_rng(seed).choice(pool.shape[0], num, replace=False)
    return pool[np.sort(pick)]


def training_signals(grids, window, patch, group, num: int, seed: int) -> tuple[np.ndarray, hierarchy.Units]:
    """Training signals for a hierarchical prior: ``num`` windows of ``window`` grid points
    (one side per axis, whole patches) cut without overlap from unit-scale grids ``(*dims, C)``
    and drawn at random (seeded). Returns their patches stacked ``(num * P_w, prod(patch), C)``
    and their units (:func:`jrec_inr.hierarchy.stack`)."""
    window, patch = tuple(int(v) for v in window), tuple(int(v) for v in patch)
    if len(window) != len(patch) or any(w % p for w, p in zip(window, patch, strict=True)):
        raise ValueError(f"a training window of {window} points is not whole patches of {patch}")
    pool = []
    for g in grids:
        counts = [n // w for n, w in zip(g.shape[:-1], window, strict=True)]
        for corner in np.ndindex(*counts):
            pool.append(g[tuple(slice(c * w, (c + 1) * w) for c, w in zip(corner, window, strict=True))])
    if len(pool) < num:
        raise ValueError(f"only {len(pool)} windows of {window} points in the training data, asked for {num}")
    pick = np.sort(np.random.default_rng(seed).choice(len(pool), num, replace=False))
    pgrid = data.grid(window, patch)
    patches = np.concatenate([data.to_patches(pool[i], patch) for i in pick])
    return patches, hierarchy.stack([hierarchy.units(pgrid, group)] * num)


def train_prior(patches, arch: Arch, cfg: TrainConfig, *, name: str, checkpoint=None,
                progress: bool = True, recipe: dict | None = None, log=print,
                modality: str = "image", rate: float | None = None,
                units: hierarchy.Units | None = None, group: tuple | None = None) -> Model:
    """EM on training patches ``(T, prod(patch), C)`` on the unit scale; returns the :class:`Model`.

    With ``units`` (and ``group``), a hierarchical prior (RECOMBINER section 3.3): the
    patches are whole training signals, stacked (:func:`jrec_inr.hierarchy.stack`), every
    signal's units are fitted together with one beta per signal (its KL over all levels
    is the budget of its patches: the bits go to whichever level buys most), and each
    level's prior is its own M-step over the units of that level. Each level gets its own
    coding blocks.

    Args:
      patches: training patches.
      arch: architecture.
      cfg: :class:`TrainConfig`.
      name: the model's id.
      checkpoint: optional ``.npz`` path written after every EM iteration and resumed from
        if it exists (same settings required).
      progress: show a progress bar.
      recipe: provenance stored in the model (command line, data).
      modality: the kind of signal (:mod:`jrec_inr.modalities`); ``cfg.bpp`` is then the
        budget in bits per grid point, ``rate`` the nominal rate in the modality's unit.
      units, group: the training signals' units and the group shape (hierarchical prior).
    """
    from tqdm.auto import tqdm

    layout = layout_of(arch)
    t = patches.shape[0]
    from jrec_inr import modalities

    budget = cfg.bpp * arch.patch_size  # bits per patch
    targets = jnp.asarray(patches, jnp.float32) - modalities.get(modality).offset
    key = jax.random.key(cfg.seed)
    m0, _ = init_posterior(arch, jax.random.fold_in(key, 1))
    hier = units is not None
    if hier and (group is None or units.num_patches != t):
        raise ValueError(f"a hierarchical prior needs the group shape and units of the {t} patches")
    n_units = units.num_units if hier else t
    is_patch = (units.level == hierarchy.PATCH)[:, None] if hier else True
    # patches start at the initialisation, the upper levels at 0 (they add nothing yet)
    mean = jnp.where(is_patch, m0, 0.0) * jnp.ones((n_units, layout.size), jnp.float32)
    rho = jnp.where(is_patch, arch.rho_init, hierarchy.UPPER_RHO_INIT) * jnp.ones((n_units, layout.size),
                                                                                  jnp.float32)
    wide = jnp.maximum(jnp.abs(m0), 1e-2)  # a wide first prior around the initialisation
    prior_m = jnp.where(is_patch, m0, 0.0) if hier else m0
    prior_s = jnp.where(is_patch, wide, 1e-2) if hier else wide
    if hier:  # one beta per training signal, for all its units
        rows = int(units.signal.max()) + 1
        row = jnp.broadcast_to(jnp.asarray(units.signal)[:, None], (n_units, layout.size))
    else:  # one beta for all patches, or one per patch
        rows = 1 if cfg.shared_beta else t
        row = jnp.zeros((t, layout.size), jnp.int32) if cfg.shared_beta else None
    log_beta = jnp.full((rows, 1), math.log(cfg.beta_init), jnp.float32)
    mix = jnp.asarray(init_mix(arch))
    start = 0
    settings = json.dumps({"arch": arch._asdict(), "cfg": _cfg_dict(cfg), "t": t,
                           **({"group": list(group), "units": n_units} if hier else {})}, sort_keys=True)
    if checkpoint is not None and os.path.exists(checkpoint):
        with np.load(checkpoint) as z:
            if bytes(z["settings"]).decode() != settings:
                raise ValueError(f"{checkpoint}: checkpoint of different settings; delete it to restart")
            mean, rho, prior_m, prior_s, log_beta, mix = (
                jnp.asarray(z[k]) for k in ("mean", "rho", "prior_m", "prior_s", "log_beta", "mix"))
            start = int(z["iteration"])
        log(f"resuming from {checkpoint} at EM iteration {start}")
    block1 = jnp.zeros(layout.size, jnp.int32)
    run = fit_loop(arch, layout, cfg.fit)  # (one compiled program whatever the chunk length)
    total = cfg.first_steps + cfg.em_iters * cfg.steps
    done = 0 if start == 0 else cfg.first_steps + (start - 1) * cfg.steps
    bar = tqdm(total=total, initial=done, desc=f"EM {name}", disable=not progress, unit="step")
    chunk = 50
    for it in range(start, cfg.em_iters + 1):
        steps = cfg.first_steps if it == 0 else cfg.steps
        # E-step 0 fits the patches freely (beta ~ 0): its M-step gives a data-driven first
        # prior; later E-steps trade distortion against KL with beta control.
        target_kl = 1e30 if it == 0 else budget * t / rows
        if it == 0:
            log_beta = jnp.full((rows, 1), math.log(1e-9), jnp.float32)
        elif it == 1:
            log_beta = jnp.full((rows, 1), math.log(cfg.beta_init), jnp.float32)
        problem = Problem(targets, prior_m, prior_s, block1, jnp.asarray([target_kl], jnp.float32), row,
                          *((jnp.asarray(units.parents), jnp.asarray(units.lr_scale())) if hier else ()))
        state = init_state(mean, rho, log_beta, cfg.fit, mix=mix)
        k_it = jax.random.fold_in(key, 100 + it)
        left = steps
        while left > 0:
            n = min(chunk, left)
            state, mse, kl_b = run(state, problem, k_it, n)
            left -= n
            bar.update(n)
            bar.set_postfix(psnr=f"{_psnr(mse):.2f}", bpp=f"{float(kl_b.sum()) / t / budget * cfg.bpp:.3f}")
        mean, rho, log_beta, mix = state.mean, state.rho, state.log_beta, state.mix
        prior_m, prior_s = (_level_m_step(mean, jax.nn.softplus(rho), units) if hier
                            else m_step(mean, jax.nn.softplus(rho)))
        log(f"EM iteration {it}: train PSNR {_psnr(mse):.2f} dB, KL {float(kl_b.sum()) / t:.1f} bits/patch "
            f"(target {budget:.1f}), beta {float(jnp.exp(log_beta).mean()):.2e}")
        if checkpoint is not None:
            buf = io.BytesIO()
            np.savez(buf, mean=np.asarray(mean), rho=np.asarray(rho), prior_m=np.asarray(prior_m),
                     prior_s=np.asarray(prior_s), log_beta=np.asarray(log_beta), mix=np.asarray(mix),
                     iteration=it + 1,
                     settings=np.frombuffer(settings.encode(), np.uint8))
            data.atomic_write(checkpoint, buf.getvalue())
    bar.close()
    std = jax.nn.softplus(rho)
    kl = np.asarray(kl_bits(mean, std, prior_m, prior_s))
    # initial per-block beta for new signals: the training beta (median over patches / signals)
    lb0 = float(jnp.median(log_beta))
    rec = dict(recipe or {})
    rec.update({"train": _cfg_dict(cfg), "num_training_patches": int(t),
                "created": time.strftime("%Y-%m-%d")})
    upper = None
    if hier:  # each level's blocks from its own average KL per unit
        levels = {}
        for lvl in (hierarchy.PATCH, hierarchy.GROUP, hierarchy.SIGNAL):
            sel = units.of_level(lvl)
            avg = kl[sel].mean(axis=0)
            blk = group_blocks(avg, max(1, round(float(avg.sum()) / cfg.kappa)), seed=cfg.seed + lvl)
            levels[lvl] = (np.asarray(prior_m[sel[0]], np.float32), np.asarray(prior_s[sel[0]], np.float32),
                           blk, float(avg.sum()))
        block = levels[hierarchy.PATCH][2]
        pm, ps = levels[hierarchy.PATCH][:2]
        ub = np.stack([levels[hierarchy.GROUP][2], levels[hierarchy.SIGNAL][2]])
        upper = Upper(tuple(int(g) for g in group),
                      np.stack([levels[hierarchy.GROUP][0], levels[hierarchy.SIGNAL][0]]),
                      np.stack([levels[hierarchy.GROUP][1], levels[hierarchy.SIGNAL][1]]), ub,
                      np.full(int(ub[0].max()) + int(ub[1].max()) + 2, lb0, np.float32))
        per_signal = units.num_patches / rows
        rec.update({"group": list(upper.group), "num_training_signals": rows,
                    "avg_kl_bits_per_unit": {hierarchy.LEVELS[k]: v[3] for k, v in levels.items()},
                    "avg_kl_bits_per_patch": sum(v[3] * float(np.sum(units.level == k)) / rows
                                                 for k, v in levels.items()) / per_signal,
                    "num_blocks": {hierarchy.LEVELS[k]: int(v[2].max()) + 1 for k, v in levels.items()}})
    else:
        avg_kl = kl.mean(axis=0)
        block = group_blocks(avg_kl, max(1, round(budget / cfg.kappa)), seed=cfg.seed)
        pm, ps = np.asarray(prior_m, np.float32), np.asarray(prior_s, np.float32)
        rec.update({"avg_kl_bits_per_patch": float(avg_kl.sum()), "num_blocks": int(block.max()) + 1})
    lb = np.full(int(block.max()) + 1, lb0, np.float32)
    return Model(name, arch, cfg.kappa, cfg.bpp, pm, ps, block, lb, rec, np.asarray(mix, np.float32),
                 cfg.cross_patch, modality, rate, upper)


def _level_m_step(mean, std, units: hierarchy.Units):
    """:func:`m_step` of each level over its units: ``(U, D)`` prior of every unit."""
    level = jnp.asarray(units.level)
    prior_m, prior_s = jnp.zeros_like(mean), jnp.ones_like(mean)
    for lvl in (hierarchy.PATCH, hierarchy.GROUP, hierarchy.SIGNAL):
        sel = units.of_level(lvl)
        m, s = m_step(mean[sel], std[sel])
        prior_m = jnp.where((level == lvl)[:, None], m, prior_m)
        prior_s = jnp.where((level == lvl)[:, None], s, prior_s)
    return prior_m, prior_s


def _psnr(mse) -> float:
    return float(-10.0 * jnp.log10(jnp.mean(mse)))


def _cfg_dict(cfg: TrainConfig) -> dict:
    d = cfg._asdict()
    d["fit"] = cfg.fit._asdict()
    return d
