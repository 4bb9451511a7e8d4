"""The COMBINER / RECOMBINER codec for signals of any kind: fit, code weights block by block
with ORC, progressive fine-tuning.

Guo, Flamich, He, Chen & Hernandez-Lobato, "Compression with Bayesian implicit neural
representations", NeurIPS 2023 (COMBINER), section 3. One code path for every modality
(:mod:`jrec_inr.modalities`: images, audio, protein backbones, video): the modality turns a
signal into a unit-scale grid ``(*dims, C)`` and back; everything below works on grids.

1. The grid is cut into patches (``Arch.patch_shape``, edge-padded); every patch gets an
   INR whose posterior is initialised at the model's prior and fitted with the
   beta-controlled loss (:mod:`jrec_inr.fit`), one beta per coding block, so each
   block carries about ``kappa`` bits of KL.
2. Blocks are coded in order with :mod:`jrec.orc` (``2^kappa`` candidates from the
   prior, a ``kappa``-bit index each; copy ``j`` of block ``b`` uses the key
   ``fold_in(fold_in(key(seed), b), j)``); the ``P`` copies of block ``b`` at once
   (vmap). Copy ``j`` holds block ``b``'s weights of patch ``j``, or, for a model with
   ``cross_patch`` (RECOMBINER, He et al. ICLR 2024), each weight ``d`` from patch
   ``patch_order[j, d]``: the copy's beta then moves its ``kappa`` bits to the patches
   where they lower the distortion most, so busy patches get more bits than flat ones.
   After each block the coded weights are frozen to their coded values and the
   still-uncoded posterior is fine-tuned (progressive coding).
3. The ``.jrec`` file (the :mod:`jrec.bitstream` container, sampler ``orc``) holds the
   ``(patches, blocks)`` indices in fixed width, the model fingerprint (prior, grouping,
   architecture) and the key fingerprint; metadata (``INR2``, the same layout for every
   modality): modality id, rank, channel count, each dimension, seed, the modality's
   parameters (an audio file's sample rate; a clip's frame rate; a protein's centre, scale, chain and
   residues) and the model name. Files of the image-only codec (``INR1``) still decode.
   Decoding: key + indices -> weights -> one forward pass -> the modality's file.

The reconstruction the encoder reports is computed by the decoder's own function from
the indices, so ``decompress(compress(x))`` reproduces it bit for bit.
"""


import math
import struct
import time
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np

import jrec
from jrec_inr import data, hierarchy, modalities
from jrec_inr.fit import FitConfig, Problem, fit_loop, init_state
from jrec_inr.model import FROZEN_RHO, BayesianSiren, patch_coords
from jrec_inr.prior import Level, Model, ModelError, bundled_models, layout_of, load_model

__all__ = ["CodecConfig", "Result", "compress", "decompress", "select_model", "read_meta",
           "encoder_settings", "default_config", "CodecError", "MODALITY_IMAGE", "ENCODER_VERSION"]

MODALITY_IMAGE = 0
_META_V1 = struct.Struct("<4sBIII")  # INR1 (images only): tag, modality, height, width, seed; model name
_TAG_V1 = b"INR1"
_HEAD = struct.Struct("<4sBBH")  # INR2: tag, modality id, rank, channels; then the dims (u32 each),
_TAIL = struct.Struct("<II")  # seed, length of the modality's parameters; parameters; model name
_TAG = b"INR2"
MAX_POINTS = 1 << 28  # grid points x channels: refuse implausible headers before allocating


class CodecError(ValueError):
    """A request the codec cannot serve (unsupported bit rate, wrong modality, ...)."""


class CodecConfig(NamedTuple):
    """Encoder settings (the decoder needs none of them).

    Attributes:
      fit_steps: optimisation steps before coding.
      finetune_steps: steps of fine-tuning the uncoded weights after each coded block.
      finetune_lr: learning-rate multiplier of those steps (of ``fit.lr`` and the std's
        rate). After a block is coded the other weights need a small correction, not a
        refit: at 0.3 bpp 0.3x the fitting rate gave +0.08 dB over 1x
        (``jrec_inr/models/README.md``).
      seed: seed of the shared key (stored in the file).
      init_std_ratio: the posterior starts at the prior mean with this fraction of its std.
      fit: optimiser settings.
      chunk: steps per jitted call (progress bar granularity).
      block_kl: target KL of each coding block in bits (default ``None``: the model's
        ``kappa``). Each block is still coded with ``2^kappa`` candidates and ``kappa``
        bits; a target below ``kappa`` puts less information in each block but lets
        ORC's candidates cover the posterior better (smaller coding error). At 0.3 bpp
        15 bits lost 0.09 dB and 17 bits changed nothing (``jrec_inr/models/README.md``).
      greedy: code each block with its candidate of largest density ratio
        (``jrec.orc.encode(..., greedy=True)``; default) instead of ORC's sample of the
        posterior. The index costs the same ``kappa`` bits whichever candidate is sent,
        so the encoder is free to send the one nearest the posterior's optimum (the
        random-codebook encoder of rate-distortion theory); the decoder and the file
        format are the same. +0.10 dB at 0.3 bpp (``jrec_inr/models/README.md``).
    """

    fit_steps: int = 3000
    finetune_steps: int = 12
    finetune_lr: float = 0.3
    seed: int = 0
    init_std_ratio: float = 0.5
    fit: FitConfig = FitConfig(stratified=True)
    chunk: int = 50
    block_kl: float | None = None
    greedy: bool = True


#: Version of the encoder's fitting code: a new version codes the same image with the same
#: settings differently (the decoder and the file format are unchanged). 1: JAX's
#: ``jnp.sin`` and threefry normals in the fit; 2: :mod:`jrec_inr.fastmath` (2.0-2.3x faster steps);
#: 3: ``CodecConfig.greedy`` and ``FitConfig.stratified`` (options, both on by default in
#: ``CodecConfig``; versions 1-2 sent ORC's sample and drew pixels independently); 4:
#: ``CodecConfig.finetune_lr`` (0.3 by default; versions 1-3 fine-tuned at the fitting's rate).
ENCODER_VERSION = 4


def encoder_settings(cfg: CodecConfig) -> dict:
    """What decides an encoder's output besides the model and the image (recorded in RD rows)."""
    return {"version": ENCODER_VERSION, "fit_steps": cfg.fit_steps, "finetune_steps": cfg.finetune_steps,
            "seed": cfg.seed, "init_std_ratio": cfg.init_std_ratio, "fit": _coding_fit(cfg)._asdict(),
            "greedy": bool(cfg.greedy), "finetune_lr": cfg.finetune_lr,
            **({} if cfg.block_kl is None else {"block_kl": cfg.block_kl})}


def default_config(modality: str = "image") -> CodecConfig:
    """:class:`CodecConfig`'s defaults with the modality's own (``Modality.codec_defaults``;
    proteins fit longer)."""
    return CodecConfig()._replace(**modalities.get(modality).codec_defaults)


def _coding_fit(cfg: CodecConfig) -> FitConfig:
    """The optimiser settings :func:`compress` uses: the model's mixing matrices stay fixed."""
    return cfg.fit._replace(mix_lr=0.0)


def _finetune_fit(cfg: CodecConfig) -> FitConfig:
    """The optimiser settings of the fine-tuning steps between coded blocks."""
    fit_cfg = _coding_fit(cfg)
    return fit_cfg._replace(lr=fit_cfg.lr * cfg.finetune_lr)


class Result(NamedTuple):
    """What :func:`compress` returns.

    Attributes:
      data: the ``.jrec`` bytes.
      signal: the reconstruction, exactly what the decoder outputs (a
        :class:`~jrec_inr.modalities.Signal`: uint8 ``(H, W, 3)`` pixels, int16 ``(T, C)``
        samples, float32 ``(N, 3)`` coordinates in angstrom, with the modality's info).
      stats: dict: rate (from ``len(data)``) and its unit, the modality's metrics, KL,
        seconds, ... (images also ``bpp`` and ``psnr``).
    """

    data: bytes
    signal: modalities.Signal
    stats: dict

    @property
    def image(self) -> np.ndarray:
        """The reconstruction's values (for images: the uint8 ``(H, W, 3)`` pixels)."""
        return self.signal.values


_BUNDLED: dict = {}


def _bundled() -> dict:
    """The bundled models, loaded once per process."""
    if not _BUNDLED:
        _BUNDLED.update({name: load_model(path) for name, path in bundled_models().items()})
    return _BUNDLED


def select_model(rate: float, modality: str = "image") -> Model:
    """The bundled model of ``modality`` for a requested rate in the modality's unit (bpp,
    kbps, bits per residue): the nearest within a factor 1.5 (of two at the same rate, the
    one with a hierarchical prior)."""
    mod = modalities.get(modality)
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise CodecError(f"the rate must be a positive number of {mod.unit}, got {rate!r}")
    models = [m for m in _bundled().values() if m.modality == mod.name]
    if not models:
        raise CodecError(f"no bundled {mod.name} models in jrec_inr/models (train one with "
                         f"`jrec-inr train-prior --modality {mod.name} ...`)")
    # the nearest rate; at equal rates a hierarchical prior (RECOMBINER) before a flat one,
    # which stays bundled for the files coded with it
    best = min(models, key=lambda m: (round(abs(math.log(rate / m.nominal_rate)), 9), m.upper is None))
    if abs(math.log(rate / best.nominal_rate)) > math.log(1.5):
        have = ", ".join(f"{m.nominal_rate:g}" for m in sorted(models, key=lambda m: m.nominal_rate))
        raise CodecError(f"unsupported rate {rate:g} {mod.unit} for {mod.name}: the bundled models code "
                         f"at {have} {mod.unit} (train another with `jrec-inr train-prior`)")
    return best


def _level(model: Model, lvl: int) -> Level:
    """``model``'s level ``lvl`` (:data:`~jrec_inr.hierarchy.PATCH`, ``GROUP``, ``SIGNAL``)."""
    return next(L for L in model.levels() if L.level == lvl)


def _tables(level: Level, width: int | None = None):
    """Per-block weight positions ``(B, width)`` of a level, padded with ``D`` (a dummy
    slot), and their mask.

    ``width`` defaults to the widest block (rounded up to a multiple of 8); a narrower
    table keeps the first ``width`` members of each block (used only for blocks that fit).
    A block's candidates are drawn as one vector, whose leading entries do not depend on
    its length (partitionable threefry), and padded slots have target == proposal, so a
    block coded at its own width decodes identically at any larger width.
    """
    block = np.asarray(level.block)
    nb, num_weights = level.num_blocks, block.shape[0]
    d = int(width or _widths(level).max())
    pos = np.full((nb, d), num_weights, np.int32)
    for b in range(nb):
        members = np.flatnonzero(block == b)[:d]
        pos[b, : members.size] = members
    return jnp.asarray(pos), jnp.asarray(pos < num_weights)


def _widths(level: Level) -> np.ndarray:
    """Each block's coding width: its size rounded up to a multiple of 8 (at least 8)."""
    sizes = np.bincount(np.asarray(level.block), minlength=level.num_blocks)
    return np.maximum(8, -(-sizes // 8) * 8)


def _pad(v, fill):
    """Append one dummy slot (index ``D``) to the last axis."""
    return jnp.concatenate([v, jnp.full(v.shape[:-1] + (1,), fill, v.dtype)], axis=-1)


def _block_proposal(level: Level, pos, b):
    pm = _pad(jnp.asarray(level.prior_mean), 0.0)[pos[b]]
    ps = _pad(jnp.asarray(level.prior_std), 1.0)[pos[b]]
    return distrax.Normal(pm, ps)


def _sources(model: Model, num_copies: int, offset: int = 0) -> np.ndarray:
    """``(n, D + 1)`` int32: the unit that row ``j``'s copy of each block takes weight ``d``
    from, for a level of ``n`` units stored from ``offset`` on (:meth:`Model.patch_order`
    over the level's units; unit ``j`` itself without ``cross_patch``). The last column,
    the dummy slot, is always row ``j``'s own."""
    order = model.patch_order(num_copies)
    rows = np.arange(num_copies, dtype=np.int32)[:, None]
    if order is None:
        order = np.broadcast_to(rows, (num_copies, model.num_weights))
    return np.concatenate([order, rows], axis=1) + np.int32(offset)


def _block_keys(key, b, num_patches):
    kb = jax.random.fold_in(key, b)
    return jax.vmap(lambda p: jax.random.fold_in(kb, p))(jnp.arange(num_patches))


#: Candidates ORC examines per loop iteration when coding a block (the indices do not depend
#: on it): larger chunks than ``jrec.orc``'s 256 cut the loop's overhead in the vmapped block
#: coder (``benchmarks/orc_chunk.py``, 184 copies of 88 weights on a 2-core CPU: 0.67x the
#: time at 1,024 and 2,048, 0.75x at 4,096).
ORC_CHUNK = 1024

_COMPILED: dict = {}


def _per_model(build, model: Model, *args):
    """``build(model, *args)``, cached per (builder, model fingerprint, args): a process
    coding or decoding many images compiles each jitted function once."""
    k = (build.__name__, model.digest(), *args)
    if k not in _COMPILED:
        _COMPILED[k] = build(model, *args)
    return _COMPILED[k]


def _block_coder(model: Model, width: int, greedy: bool, lvl: int = hierarchy.PATCH):
    """:func:`_make_block_coder` for the blocks of coding width ``width`` of ``model``'s level
    ``lvl`` (cached): ORC's work grows with the candidate length, so each block is coded at
    its own width."""
    return _per_model(_make_block_coder, model, int(width), bool(greedy), int(lvl))


def _make_block_coder(model: Model, width: int, greedy: bool, lvl: int):
    """Jitted ``code(state, b, key, sources) -> (state, index (n,))``: ORC of the ``n``
    copies of the level's block ``b`` (copy ``j`` holds the weights ``sources`` =
    :func:`_sources` assigns to row ``j``; an argument, not a constant baked into the
    program), then freeze it. Copy ``j`` of the model's block ``k`` (all levels counted,
    :attr:`Level.first_block`) is coded with the key ``fold_in(fold_in(key, k), j)``."""
    level = _level(model, lvl)
    pos, mask = _tables(level, width)

    @jax.jit
    def code(state, b, key, sources):
        num_copies = sources.shape[0]
        src = sources[:, pos[b]]  # (n, width) unit of each member
        proposal = _block_proposal(level, pos, b)
        mean = _pad(state.mean, 0.0)[src, pos[b]]
        std = _pad(jax.nn.softplus(state.rho), 1.0)[src, pos[b]]
        valid = mask[b]
        mean = jnp.where(valid, mean, proposal.loc)  # dummy slots: target == proposal
        std = jnp.where(valid, std, proposal.scale)
        keys = _block_keys(key, level.first_block + b, num_copies)
        def orc(k, m, s):
            return jrec.orc.encode(k, distrax.Normal(m, s), proposal, kappa=model.kappa, greedy=greedy,
                                   chunk_size=ORC_CHUNK)

        codes = jax.vmap(orc)(keys, mean, std)
        samples = _decode_block(level, pos, b, keys, codes.index)
        cols = jnp.where(valid, pos[b], model.num_weights)  # dummy writes go to the pad slot
        new_mean = _pad(state.mean, 0.0).at[src, cols].set(samples)[:, :-1]
        new_rho = _pad(state.rho, 0.0).at[src, cols].set(FROZEN_RHO)[:, :-1]
        frozen = _pad(state.frozen, False).at[src, cols].set(True)[:, :-1]
        return state._replace(mean=new_mean, rho=new_rho, frozen=frozen), codes.index

    return code


def _decode_block(level: Level, pos, b, keys, index):
    proposal = _block_proposal(level, pos, b)
    return jax.vmap(lambda k, i: jrec.orc.decode(k, i, proposal))(keys, index)


def _make_weights_fn(model: Model):
    """Jitted decoder ``(seed, indices, sources, parents) -> ((U, D) unit weights, (P, D)
    patch weights)``: ``indices`` and ``sources`` hold one array per level in coding order
    (:meth:`Model.levels`), ``parents`` the :attr:`~jrec_inr.hierarchy.Units.parents`
    (``None`` without a hierarchy: the units are the patches)."""

    def weights(seed, indices, sources, parents):
        levels = {L.level: _weights_from_indices(model, L, seed, index, src)
                  for L, index, src in zip(model.levels(), indices, sources, strict=True)}
        if parents is None:
            return levels[hierarchy.PATCH], levels[hierarchy.PATCH]
        units = jnp.concatenate([levels[hierarchy.PATCH], levels[hierarchy.GROUP], levels[hierarchy.SIGNAL]])
        return units, jnp.sum(units[parents], axis=1)

    return jax.jit(weights)


def _weights_from_indices(model: Model, level: Level, seed, index, sources):
    """``(n, D)`` weights of a level's ``n`` units from their ``(n, B_l)`` indices."""
    pos, mask = _tables(level)
    key = jax.random.key(seed)
    num_copies = index.shape[0]

    def one(b):
        return _decode_block(level, pos, b, _block_keys(key, level.first_block + b, num_copies), index[:, b])

    samples = jax.lax.map(one, jnp.arange(level.num_blocks))  # (B, n, d)
    w = jnp.zeros((num_copies, model.num_weights + 1), jnp.float32)
    cols = jnp.where(mask, pos, model.num_weights)  # (B, d); dummy writes go to the pad slot
    src = sources[:, cols]  # (n, B, d)
    return w.at[src, cols[None]].set(jnp.transpose(samples, (1, 0, 2)))[:, :-1]


def _level_sizes(model: Model, units: hierarchy.Units | None, num_patches: int) -> dict:
    """``{level: (units, offset in the state)}`` of a signal's levels."""
    if units is None:
        return {hierarchy.PATCH: (num_patches, 0)}
    n = {lvl: units.of_level(lvl).size for lvl in (hierarchy.PATCH, hierarchy.GROUP, hierarchy.SIGNAL)}
    return {lvl: (n[lvl], int(units.of_level(lvl)[0])) for lvl in n}


def _split_index(model: Model, index: np.ndarray, units: hierarchy.Units | None) -> list:
    """The file's index array as one ``(n_l, B_l)`` array per level in coding order: the
    ``(P, B)`` array itself without a hierarchy; with one, the flat concatenation of the
    levels' row-major arrays (signal, groups, patches)."""
    if units is None:
        return [index]
    sizes = _level_sizes(model, units, units.num_patches)
    out, at = [], 0
    for L in model.levels():
        n = sizes[L.level][0]
        out.append(index[at: at + n * L.num_blocks].reshape(n, L.num_blocks))
        at += n * L.num_blocks
    return out


def _index_size(model: Model, units: hierarchy.Units | None, num_patches: int) -> tuple:
    """The shape of a signal's index array in the file."""
    if units is None:
        return (num_patches, model.num_blocks)
    sizes = _level_sizes(model, units, num_patches)
    return (sum(sizes[L.level][0] * L.num_blocks for L in model.levels()),)


def _make_render_fn(model: Model):
    """Jitted ``(P, D) weights -> (P, n, C)`` patches on the unit scale (the INR's output
    plus the modality's offset, clipped to its range)."""
    layout = layout_of(model.arch)
    net = BayesianSiren(model.arch)
    coords = patch_coords(model.arch.patch)
    rho = jnp.zeros(layout.size, jnp.float32)
    mix = jnp.asarray(model.mix, jnp.float32)
    mod = modalities.get(model.modality)

    @jax.jit
    def render(weights):
        out = jax.vmap(lambda w: net.apply(layout.variables(w, rho, mix), coords))(weights) + mod.offset
        return out if mod.clip is None else jnp.clip(out, *mod.clip)

    return render


def _decode_grid(model: Model, seed: int, index, grid_dims) -> tuple[np.ndarray, np.ndarray]:
    """The decoder: ``(unit-scale grid (*grid_dims, C), (U, D) unit weights)`` from the seed
    and the file's block indices (the units are the patches without a hierarchy)."""
    index = np.asarray(index)
    units = model.units(data.grid(tuple(grid_dims), model.arch.patch_shape))
    num_patches = math.prod(data.grid(tuple(grid_dims), model.arch.patch_shape))
    sizes = _level_sizes(model, units, num_patches)
    indices = tuple(jnp.asarray(i) for i in _split_index(model, index, units))
    sources = tuple(jnp.asarray(_sources(model, sizes[L.level][0])) for L in model.levels())
    parents = None if units is None else jnp.asarray(units.parents)
    unit_w, weights = _per_model(_make_weights_fn, model)(jnp.uint32(seed), indices, sources, parents)
    patches = np.asarray(_per_model(_make_render_fn, model)(weights))
    return data.from_patches(patches, tuple(grid_dims), model.arch.patch_shape), np.asarray(unit_w)


def _meta(mod, dims, channels: int, seed: int, params: bytes, name: str) -> bytes:
    return (_HEAD.pack(_TAG, mod.id, len(dims), channels) + struct.pack(f"<{len(dims)}I", *dims)
            + _TAIL.pack(seed, len(params)) + params + name.encode())


def read_meta(blob: bytes) -> dict:
    """Parse the codec metadata of a ``.jrec`` file's bytes (no key/model check yet).

    Returns a dict: ``modality`` (name), ``shape`` (the signal's grid dims), ``channels``,
    ``seed``, ``model`` (name), ``kappa``, ``params`` (the modality's bytes).
    """
    header = jrec.bitstream.read_header(blob)
    meta = header.meta
    if header.method != "orc" or len(meta) < 4 or meta[:4] not in (_TAG, _TAG_V1):
        raise CodecError("not a jrec_inr file (a .jrec container without INR metadata)")
    kappa = header.options.get("kappa")
    if meta[:4] == _TAG_V1:  # the image-only codec's files
        if len(meta) < _META_V1.size:
            raise jrec.HeaderError("truncated INR metadata")
        _, modality, h, w, seed = _META_V1.unpack(meta[: _META_V1.size])
        if modality != MODALITY_IMAGE:
            raise jrec.HeaderError(f"modality {modality} in an INR1 header (those hold images only)")
        if h == 0 or w == 0 or h * w > data.MAX_PIXELS:
            raise jrec.HeaderError(f"implausible image shape {h}x{w} in the file")
        return {"modality": "image", "shape": (h, w), "channels": 3, "seed": seed, "params": b"",
                "model": meta[_META_V1.size:].decode("utf-8", "replace"), "kappa": kappa}
    if len(meta) < _HEAD.size:
        raise jrec.HeaderError("truncated INR metadata")
    _, mid, rank, channels = _HEAD.unpack(meta[: _HEAD.size])
    try:
        mod = modalities.get(mid)
    except modalities.SignalError:
        raise CodecError(f"the file codes modality {mid}, which this build does not know "
                         f"(it decodes {modalities.names()})") from None
    if rank != mod.rank:
        raise jrec.HeaderError(f"a rank-{rank} {mod.name} in the file (a {mod.name} has rank {mod.rank})")
    pos = _HEAD.size + 4 * rank
    if len(meta) < pos + _TAIL.size:
        raise jrec.HeaderError("truncated INR metadata")
    dims = struct.unpack(f"<{rank}I", meta[_HEAD.size: pos])
    seed, plen = _TAIL.unpack(meta[pos: pos + _TAIL.size])
    pos += _TAIL.size
    if len(meta) < pos + plen:
        raise jrec.HeaderError("truncated INR metadata (modality parameters)")
    if channels == 0 or 0 in dims or math.prod(dims) * channels > MAX_POINTS:
        raise jrec.HeaderError(f"implausible {mod.name} shape {dims} x {channels} channels in the file")
    return {"modality": mod.name, "shape": tuple(dims), "channels": channels, "seed": seed,
            "params": meta[pos: pos + plen], "model": meta[pos + plen:].decode("utf-8", "replace"),
            "kappa": kappa}


def compress(signal, model: Model, cfg: CodecConfig | None = None, *, progress: bool = True,
             log=None) -> Result:
    """Compress a signal with ``model`` (whose modality it must be).

    Args:
      signal: a :class:`~jrec_inr.modalities.Signal` (from the modality's ``read``), or
        for images an ``(H, W, 3)`` float array in ``[0, 1]``.
      model: the prior (:func:`select_model`, :func:`~jrec_inr.prior.load_model`).
      cfg: encoder settings.

    Returns a :class:`Result`; ``Result.signal`` is the decoder's output for ``Result.data``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    cfg = default_config(model.modality) if cfg is None else cfg
    mod = modalities.get(model.modality)
    if not isinstance(signal, modalities.Signal):
        signal = modalities.Signal(np.asarray(signal), {})
    x, params = mod.normalise(signal)
    dims, channels = x.shape[:-1], x.shape[-1]
    grid = mod.to_grid(x, model.arch)
    if cfg.block_kl is not None and not (math.isfinite(cfg.block_kl) and 0 < cfg.block_kl <= 2 * model.kappa):
        raise CodecError(f"block_kl must be in (0, {2 * model.kappa}] bits (kappa = {model.kappa}), "
                         f"got {cfg.block_kl!r}")
    lr = cfg.finetune_lr
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise CodecError(f"finetune_lr must be a positive number, got {lr!r}")
    arch = model.arch
    layout = layout_of(arch)
    patches = data.to_patches(grid, arch.patch_shape)
    num_patches = patches.shape[0]
    units = model.units(data.grid(grid.shape, arch.patch_shape))
    sizes = _level_sizes(model, units, num_patches)
    levels = model.levels()
    nb = model.total_blocks
    kl_target = jnp.full((nb,), float(model.kappa if cfg.block_kl is None else cfg.block_kl), jnp.float32)
    targets = jnp.asarray(patches) - mod.offset
    std0 = jnp.asarray(model.prior_std) * cfg.init_std_ratio
    if units is None:
        order = model.patch_order(num_patches)  # blocks across patches: the beta row of each weight
        row = None if order is None else jnp.asarray(np.argsort(order, axis=0).astype(np.int32))
        problem = Problem(targets, jnp.asarray(model.prior_mean), jnp.asarray(model.prior_std),
                          jnp.asarray(model.block), kl_target, row)
        mean = jnp.broadcast_to(jnp.asarray(model.prior_mean), (num_patches, layout.size))
        rho = jnp.broadcast_to(jnp.log(jnp.expm1(std0)), (num_patches, layout.size))
        log_beta = jnp.broadcast_to(jnp.asarray(model.log_beta), (num_patches, nb))
    else:
        problem, mean, rho, log_beta = _hierarchical_start(model, units, targets, kl_target, cfg)
    fit_cfg = _coding_fit(cfg)
    state = init_state(mean, rho, log_beta, fit_cfg, mix=model.mix)
    key = jax.random.key(cfg.seed)
    noise_key = jax.random.fold_in(jax.random.key(cfg.seed), 0x5EED)

    # (fit_loop is cached, and one program of each serves any number of steps)
    fitting, finetuning = fit_loop(arch, layout, fit_cfg), fit_loop(arch, layout, _finetune_fit(cfg))

    bar = tqdm(total=cfg.fit_steps, desc="fit", unit="step", disable=not progress)
    left, mse, kl_b = cfg.fit_steps, jnp.zeros(num_patches), None
    while left > 0:
        n = min(cfg.chunk, left)
        state, mse, kl_b = fitting(state, problem, noise_key, n)
        left -= n
        bar.update(n)
        bar.set_postfix(psnr=f"{-10 * math.log10(float(jnp.mean(mse))):.2f}",
                        kl=f"{float(jnp.mean(kl_b)):.1f}")
    bar.close()
    fit_kl = None if kl_b is None else _used_block_kls(np.asarray(kl_b), model, sizes)
    t_fit = time.perf_counter() - t0
    indices = {L.level: [] for L in levels}
    bar = tqdm(total=nb, desc="code blocks", unit="block", disable=not progress)
    done = 0
    for L in levels:
        widths = _widths(L)
        # one model digest per width, not one per block
        coders = {w: _block_coder(model, w, cfg.greedy, L.level) for w in set(widths.tolist())}
        n_units, offset = sizes[L.level]
        sources = jnp.asarray(_sources(model, n_units, offset))
        for b in range(L.num_blocks):
            state, idx = coders[int(widths[b])](state, jnp.int32(b), key, sources)
            indices[L.level].append(idx)
            done += 1
            if cfg.finetune_steps and done < nb:
                state, _, _ = finetuning(state, problem, noise_key, cfg.finetune_steps)
            bar.update(1)
    bar.close()
    per_level = [np.stack([np.asarray(i) for i in indices[L.level]], axis=1).astype(np.int32) for L in levels]
    index = per_level[0] if units is None else np.concatenate([a.ravel() for a in per_level])
    blob = jrec.to_bytes(index, method="orc", key=key, proposal=None,
                         model=model.fingerprint_parts(),
                         meta=_meta(mod, dims, channels, cfg.seed, params, model.name), kappa=model.kappa)
    recon_grid, decoded = _decode_grid(model, cfg.seed, index, grid.shape[:-1])  # the decoder's output
    recon = mod.restore(mod.from_grid(recon_grid, dims, channels, arch), params)
    seconds = time.perf_counter() - t0
    coded = np.asarray(state.mean)
    rate = mod.rate(len(blob), signal)
    quality = mod.metrics(signal, recon)
    stats = {
        "modality": mod.name,
        "rate": rate,
        "unit": mod.unit,
        **quality,
        "bytes": len(blob),
        "params_bytes": len(params),
        "points": int(math.prod(dims)),
        "patches": int(num_patches),
        "blocks": int(nb),
        **({} if units is None else {
            "units": {hierarchy.LEVELS[k]: int(v[0]) for k, v in sizes.items()},
            "blocks_per_level": {hierarchy.LEVELS[L.level]: L.num_blocks for L in levels}}),
        "kappa": int(model.kappa),
        "model": model.name,
        "fit_kl_bits_per_block": None if fit_kl is None else float(fit_kl.mean()),
        "fit_kl_bits_per_block_max": None if fit_kl is None else float(fit_kl.max()),
        "fit_psnr_estimate": -10 * math.log10(float(jnp.mean(mse))) if cfg.fit_steps else None,
        "weights_max_abs_diff_encoder_decoder": float(np.max(np.abs(coded - decoded))),
        "fit_seconds": t_fit,
        "encode_seconds": seconds,
    }
    if mod.name == "image":
        stats.update(bpp=rate, pixels=stats["points"])
    if log is not None:
        log(stats)
    return Result(blob, recon, stats)


def _hierarchical_start(model: Model, units: hierarchy.Units, targets, kl_target, cfg: CodecConfig):
    """The fitting problem and first posterior of a hierarchical model's units: each unit at
    its level's prior (std ``init_std_ratio`` of it), one beta column per block of every
    level, each level's blocks across its own units."""
    by_level = {L.level: L for L in model.levels()}
    num_weights = model.num_weights
    pm, ps, blk, row = [], [], [], []
    for lvl in (hierarchy.PATCH, hierarchy.GROUP, hierarchy.SIGNAL):  # the units' order
        L, n = by_level[lvl], units.of_level(lvl).size
        pm.append(np.broadcast_to(L.prior_mean, (n, num_weights)))
        ps.append(np.broadcast_to(L.prior_std, (n, num_weights)))
        blk.append(np.broadcast_to(L.block + L.first_block, (n, num_weights)))
        order = model.patch_order(n)
        row.append(np.argsort(order, axis=0).astype(np.int32) if order is not None
                   else np.broadcast_to(np.arange(n, dtype=np.int32)[:, None], (n, num_weights)))
    prior_mean, prior_std = jnp.asarray(np.concatenate(pm)), jnp.asarray(np.concatenate(ps))
    problem = Problem(targets, prior_mean, prior_std, jnp.asarray(np.concatenate(blk)), kl_target,
                      jnp.asarray(np.concatenate(row)), jnp.asarray(units.parents),
                      jnp.asarray(units.lr_scale()))
    rho = jnp.log(jnp.expm1(prior_std * cfg.init_std_ratio))
    lb = np.concatenate([by_level[lvl].log_beta for lvl in (hierarchy.PATCH, hierarchy.GROUP,
                                                                hierarchy.SIGNAL)])
    log_beta = jnp.broadcast_to(jnp.asarray(lb), (units.num_patches, lb.shape[0]))
    return problem, prior_mean, rho, log_beta


def _used_block_kls(kl_b: np.ndarray, model: Model, sizes: dict) -> np.ndarray:
    """The fitted KL of every coded block copy from the ``(R, B)`` beta table (a level of
    ``n`` units uses the table's first ``n`` rows of its block columns)."""
    if model.upper is None:
        return kl_b
    return np.concatenate([kl_b[: sizes[L.level][0], L.first_block: L.first_block + L.num_blocks].ravel()
                           for L in model.levels()])


def decompress(blob: bytes, model: Model | None = None) -> modalities.Signal:
    """Decode ``.jrec`` bytes to the signal (any modality).

    Args:
      blob: the file's bytes.
      model: the model to decode with; default: the bundled model named in the file.

    Returns:
      A :class:`~jrec_inr.modalities.Signal` ``(values, info)`` (unpacks as
      ``values, info = decompress(...)``): uint8 ``(H, W, 3)`` pixels, int16 ``(T, C)``
      samples or float32 ``(N, 3)`` coordinates; ``info`` holds the file's metadata
      (modality, shape, seed, model, ...), the modality's info (sample rate, residues)
      and ``decode_seconds``. Write it with the modality's ``write``.

    Raises:
      jrec.BitstreamError: corrupt / truncated data, or a model whose fingerprint differs
        from the encoder's or that codes another modality (``ModelMismatchError``).
      CodecError / ModelError: not an INR file, or its model is not available.
    """
    t0 = time.perf_counter()
    blob = bytes(blob)
    info = read_meta(blob)
    if model is None:
        models = bundled_models()
        if info["model"] not in models:
            raise ModelError(f"the file needs model {info['model']!r}, which is not bundled "
                             f"(have {sorted(models)}); pass it with --model")
        model = _BUNDLED.get(info["model"]) or load_model(models[info["model"]])  # (only that one)
    if model.modality != info["modality"]:
        raise jrec.ModelMismatchError(f"the file codes {info['modality']}; model {model.name!r} codes "
                                      f"{model.modality}")
    key = jax.random.key(info["seed"])
    try:
        f = jrec.from_bytes(blob, key=key, proposal=None, model=model.fingerprint_parts(), method="orc",
                            kappa=model.kappa)
    except jrec.ModelMismatchError as e:
        raise jrec.ModelMismatchError(
            f"{e}: the file was coded with model {info['model']!r} and a different prior / "
            f"architecture than the given model {model.name!r}") from None
    index = np.asarray(f.index)
    mod = modalities.get(info["modality"])
    shape, channels = info["shape"], info["channels"]
    try:
        gdims = mod.grid_dims(shape, channels, model.arch)
    except modalities.SignalError as e:
        raise jrec.ModelMismatchError(f"model {model.name!r} cannot decode this file: {e}") from None
    pgrid = data.grid(gdims, model.arch.patch_shape)
    need = _index_size(model, model.units(pgrid), math.prod(pgrid))
    if index.shape != need:
        raise jrec.ModelMismatchError(f"the file holds {index.shape} indices; model {model.name!r} "
                                      f"needs {need} for a {shape} {mod.name}")
    grid, _ = _decode_grid(model, info["seed"], index, gdims)
    try:
        out = mod.restore(mod.from_grid(grid, shape, channels, model.arch), info.pop("params"))
    except modalities.SignalError as e:
        raise jrec.HeaderError(f"invalid {mod.name} parameters in the file: {e}") from None
    info.update(out.info)
    info["decode_seconds"] = time.perf_counter() - t0
    return modalities.Signal(out.values, info)
