"""The COMBINER image codec: fit, code weights block by block with ORC, progressive fine-tuning.

Guo, Flamich, He, Chen & Hernandez-Lobato, "Compression with Bayesian implicit neural
representations", NeurIPS 2023 (COMBINER), section 3:

1. The image is cut into ``patch x patch`` patches (edge-padded); every patch gets an
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
   architecture) and the key fingerprint; metadata: modality, image shape, seed and
   model name. Decoding: key + indices -> weights -> one forward pass -> PNG.

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
from jrec_inr import data
from jrec_inr.fit import FitConfig, Problem, fit_loop, init_state
from jrec_inr.model import FROZEN_RHO, BayesianSiren, patch_coords
from jrec_inr.prior import Model, ModelError, bundled_models, layout_of, load_model

__all__ = ["CodecConfig", "Result", "compress", "decompress", "select_model", "read_meta",
           "encoder_settings", "CodecError", "MODALITY_IMAGE", "ENCODER_VERSION"]

MODALITY_IMAGE = 0
_META = struct.Struct("<4sBIII")  # tag, modality, height, width, seed; then the model name
_TAG = b"INR1"


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
      image: the reconstruction (uint8 ``(H, W, 3)``), exactly what the decoder outputs.
      stats: dict: bpp (from ``len(data)``), psnr, kl_bits, seconds, ...
    """

    data: bytes
    image: np.ndarray
    stats: dict


def select_model(bpp: float) -> Model:
    """The bundled model for a requested bit rate (nearest within a factor 1.5)."""
    if not (isinstance(bpp, (int, float)) and math.isfinite(bpp) and bpp > 0):
        raise CodecError(f"--bpp must be a positive number, got {bpp!r}")
    models = {name: load_model(path) for name, path in bundled_models().items()}
    if not models:
        raise CodecError("no bundled models found in jrec_inr/models")
    best = min(models.values(), key=lambda m: abs(math.log(bpp / m.bpp)))
    if abs(math.log(bpp / best.bpp)) > math.log(1.5):
        have = ", ".join(f"{m.bpp:g}" for m in sorted(models.values(), key=lambda m: m.bpp))
        raise CodecError(f"unsupported bit rate {bpp:g} bpp: the bundled models code at {have} bpp "
                         "(train another with `jrec-inr train-prior --bpp ...`)")
    return best


def _tables(model: Model, width: int | None = None):
    """Per-block weight positions ``(B, width)`` padded with ``D`` (a dummy slot) and their mask.

    ``width`` defaults to the widest block (rounded up to a multiple of 8); a narrower
    table keeps the first ``width`` members of each block (used only for blocks that fit).
    A block's candidates are drawn as one vector, whose leading entries do not depend on
    its length (partitionable threefry), and padded slots have target == proposal, so a
    block coded at its own width decodes identically at any larger width.
    """
    block = np.asarray(model.block)
    nb = model.num_blocks
    d = int(width or _widths(model).max())
    pos = np.full((nb, d), model.num_weights, np.int32)
    for b in range(nb):
        members = np.flatnonzero(block == b)[:d]
        pos[b, : members.size] = members
    return jnp.asarray(pos), jnp.asarray(pos < model.num_weights)


def _widths(model: Model) -> np.ndarray:
    """Each block's coding width: its size rounded up to a multiple of 8 (at least 8)."""
    sizes = np.bincount(np.asarray(model.block), minlength=model.num_blocks)
    return np.maximum(8, -(-sizes // 8) * 8)


def _pad(v, fill):
    """Append one dummy slot (index ``D``) to the last axis."""
    return jnp.concatenate([v, jnp.full(v.shape[:-1] + (1,), fill, v.dtype)], axis=-1)


def _block_proposal(model: Model, pos, b):
    pm = _pad(jnp.asarray(model.prior_mean), 0.0)[pos[b]]
    ps = _pad(jnp.asarray(model.prior_std), 1.0)[pos[b]]
    return distrax.Normal(pm, ps)


def _sources(model: Model, num_patches: int) -> np.ndarray:
    """``(P, D + 1)`` int32: the patch that row ``j``'s copy of each block takes weight ``d``
    from (:meth:`Model.patch_order`; patch ``j`` itself without ``cross_patch``). The last
    column, the dummy slot, is always row ``j``'s own."""
    order = model.patch_order(num_patches)
    rows = np.arange(num_patches, dtype=np.int32)[:, None]
    if order is None:
        order = np.broadcast_to(rows, (num_patches, model.num_weights))
    return np.concatenate([order, rows], axis=1)


def _block_keys(key, b, num_patches):
    kb = jax.random.fold_in(key, b)
    return jax.vmap(lambda p: jax.random.fold_in(kb, p))(jnp.arange(num_patches))


_COMPILED: dict = {}


def _per_model(build, model: Model, *args):
    """``build(model, *args)``, cached per (builder, model fingerprint, args): a process
    coding or decoding many images compiles each jitted function once."""
    k = (build.__name__, model.digest(), *args)
    if k not in _COMPILED:
        _COMPILED[k] = build(model, *args)
    return _COMPILED[k]


def _block_coder(model: Model, width: int, greedy: bool):
    """:func:`_make_block_coder` for ``model``'s blocks of coding width ``width`` (cached):
    ORC's work grows with the candidate length, so each block is coded at its own width."""
    return _per_model(_make_block_coder, model, int(width), bool(greedy))


def _make_block_coder(model: Model, width: int, greedy: bool):
    """Jitted ``code(state, b, key, sources) -> (state, index (P,))``: ORC of the ``P``
    copies of block ``b`` (copy ``j`` holds the weights ``sources`` = :func:`_sources`
    assigns to row ``j``; an argument, not a constant baked into the program), then
    freeze it."""
    pos, mask = _tables(model, width)

    @jax.jit
    def code(state, b, key, sources):
        num_patches = state.mean.shape[0]
        src = sources[:, pos[b]]  # (P, width) patch of each member
        proposal = _block_proposal(model, pos, b)
        mean = _pad(state.mean, 0.0)[src, pos[b]]
        std = _pad(jax.nn.softplus(state.rho), 1.0)[src, pos[b]]
        valid = mask[b]
        mean = jnp.where(valid, mean, proposal.loc)  # dummy slots: target == proposal
        std = jnp.where(valid, std, proposal.scale)
        keys = _block_keys(key, b, num_patches)
        codes = jax.vmap(lambda k, m, s: jrec.orc.encode(k, distrax.Normal(m, s), proposal,
                                                         kappa=model.kappa, greedy=greedy))(keys, mean, std)
        samples = _decode_block(model, pos, b, keys, codes.index)
        cols = jnp.where(valid, pos[b], model.num_weights)  # dummy writes go to the pad slot
        new_mean = _pad(state.mean, 0.0).at[src, cols].set(samples)[:, :-1]
        new_rho = _pad(state.rho, 0.0).at[src, cols].set(FROZEN_RHO)[:, :-1]
        frozen = _pad(state.frozen, False).at[src, cols].set(True)[:, :-1]
        return state._replace(mean=new_mean, rho=new_rho, frozen=frozen), codes.index

    return code


def _decode_block(model: Model, pos, b, keys, index):
    proposal = _block_proposal(model, pos, b)
    return jax.vmap(lambda k, i: jrec.orc.decode(k, i, proposal))(keys, index)


def _make_weights_fn(model: Model):
    """Jitted decoder ``(seed, (P, B) indices, sources) -> (P, D)`` weights."""
    return jax.jit(lambda seed, index, sources: _weights_from_indices(model, seed, index, sources))


def _weights_from_indices(model: Model, seed, index, sources):
    pos, mask = _tables(model)
    key = jax.random.key(seed)
    num_patches = index.shape[0]

    def one(b):
        return _decode_block(model, pos, b, _block_keys(key, b, num_patches), index[:, b])

    samples = jax.lax.map(one, jnp.arange(model.num_blocks))  # (B, P, d)
    w = jnp.zeros((num_patches, model.num_weights + 1), jnp.float32)
    cols = jnp.where(mask, pos, model.num_weights)  # (B, d); dummy writes go to the pad slot
    src = sources[:, cols]  # (P, B, d)
    return w.at[src, cols[None]].set(jnp.transpose(samples, (1, 0, 2)))[:, :-1]


def _make_render_fn(model: Model):
    """Jitted ``(P, D) weights -> (P, n, C)`` patches in [0, 1]."""
    layout = layout_of(model.arch)
    net = BayesianSiren(model.arch)
    coords = patch_coords(model.arch.patch)
    rho = jnp.zeros(layout.size, jnp.float32)
    mix = jnp.asarray(model.mix, jnp.float32)

    @jax.jit
    def render(weights):
        out = jax.vmap(lambda w: net.apply(layout.variables(w, rho, mix), coords))(weights)
        return jnp.clip(out + 0.5, 0.0, 1.0)

    return render


def _decode_image(model: Model, seed: int, index, shape) -> tuple[np.ndarray, np.ndarray]:
    """The decoder: ``(uint8 image, (P, D) weights)`` from the seed and the block indices."""
    index = jnp.asarray(index)
    sources = jnp.asarray(_sources(model, index.shape[0]))
    weights = _per_model(_make_weights_fn, model)(jnp.uint32(seed), index, sources)
    patches = np.asarray(_per_model(_make_render_fn, model)(weights))
    return data.to_uint8(data.from_patches(patches, shape, model.arch.patch)), np.asarray(weights)


def _meta(shape, seed: int, name: str) -> bytes:
    return _META.pack(_TAG, MODALITY_IMAGE, shape[0], shape[1], seed) + name.encode()


def read_meta(blob: bytes) -> dict:
    """Parse the codec metadata of a ``.jrec`` file's bytes (no key/model check yet)."""
    header = jrec.bitstream.read_header(blob)
    meta = header.meta
    if header.method != "orc" or len(meta) < _META.size or meta[:4] != _TAG:
        raise CodecError("not a jrec_inr file (a .jrec container without INR metadata)")
    _, modality, h, w, seed = _META.unpack(meta[: _META.size])
    if modality != MODALITY_IMAGE:
        raise CodecError(f"modality {modality} is not an image; this build decodes images only")
    if h == 0 or w == 0 or h * w > data.MAX_PIXELS:
        raise jrec.HeaderError(f"implausible image shape {h}x{w} in the file")
    return {"modality": "image", "shape": (h, w), "seed": seed,
            "model": meta[_META.size:].decode("utf-8", "replace"), "kappa": header.options.get("kappa")}


def compress(image, model: Model, cfg: CodecConfig | None = None, *, progress: bool = True,
             log=None) -> Result:
    """Compress an ``(H, W, 3)`` float image in ``[0, 1]`` with ``model``.

    Returns a :class:`Result`; ``Result.image`` is the decoder's output for ``Result.data``.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    cfg = CodecConfig() if cfg is None else cfg
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != model.arch.channels or 0 in image.shape:
        raise data.ImageError(f"expected an (H, W, {model.arch.channels}) image, got {image.shape}")
    if cfg.block_kl is not None and not (math.isfinite(cfg.block_kl) and 0 < cfg.block_kl <= 2 * model.kappa):
        raise CodecError(f"block_kl must be in (0, {2 * model.kappa}] bits (kappa = {model.kappa}), "
                         f"got {cfg.block_kl!r}")
    lr = cfg.finetune_lr
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise CodecError(f"finetune_lr must be a positive number, got {lr!r}")
    arch = model.arch
    layout = layout_of(arch)
    patches = data.to_patches(image, arch.patch)
    num_patches = patches.shape[0]
    nb = model.num_blocks
    order = model.patch_order(num_patches)  # blocks across patches: the beta row of each weight
    row = None if order is None else jnp.asarray(np.argsort(order, axis=0).astype(np.int32))
    problem = Problem(jnp.asarray(patches) - 0.5, jnp.asarray(model.prior_mean),
                      jnp.asarray(model.prior_std), jnp.asarray(model.block),
                      jnp.full((nb,), float(model.kappa if cfg.block_kl is None else cfg.block_kl),
                               jnp.float32), row)
    mean = jnp.broadcast_to(jnp.asarray(model.prior_mean), (num_patches, layout.size))
    std0 = jnp.asarray(model.prior_std) * cfg.init_std_ratio
    rho = jnp.broadcast_to(jnp.log(jnp.expm1(std0)), (num_patches, layout.size))
    log_beta = jnp.broadcast_to(jnp.asarray(model.log_beta), (num_patches, nb))
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
    fit_kl = None if kl_b is None else np.asarray(kl_b)
    t_fit = time.perf_counter() - t0
    widths = _widths(model)
    # one model digest per width, not one per block
    coders = {w: _block_coder(model, w, cfg.greedy) for w in set(widths.tolist())}
    sources = jnp.asarray(_sources(model, num_patches))
    indices = []
    bar = tqdm(total=nb, desc="code blocks", unit="block", disable=not progress)
    for b in range(nb):
        state, idx = coders[int(widths[b])](state, jnp.int32(b), key, sources)
        indices.append(idx)
        if cfg.finetune_steps and b + 1 < nb:
            state, _, _ = finetuning(state, problem, noise_key, cfg.finetune_steps)
        bar.update(1)
    bar.close()
    index = np.stack([np.asarray(i) for i in indices], axis=1).astype(np.int32)  # (P, B)
    shape = image.shape[:2]
    blob = jrec.to_bytes(index, method="orc", key=key, proposal=None,
                         model=model.fingerprint_parts(), meta=_meta(shape, cfg.seed, model.name),
                         kappa=model.kappa)
    recon, decoded = _decode_image(model, cfg.seed, index, shape)  # what the decoder will output
    seconds = time.perf_counter() - t0
    coded = np.asarray(state.mean)
    stats = {
        "bpp": 8 * len(blob) / (shape[0] * shape[1]),
        "bytes": len(blob),
        "psnr": _psnr_uint8(data.to_uint8(image), recon),
        "pixels": int(shape[0] * shape[1]),
        "patches": int(num_patches),
        "blocks": int(nb),
        "kappa": int(model.kappa),
        "model": model.name,
        "fit_kl_bits_per_block": None if fit_kl is None else float(fit_kl.mean()),
        "fit_kl_bits_per_block_max": None if fit_kl is None else float(fit_kl.max()),
        "fit_psnr_estimate": -10 * math.log10(float(jnp.mean(mse))) if cfg.fit_steps else None,
        "weights_max_abs_diff_encoder_decoder": float(np.max(np.abs(coded - decoded))),
        "fit_seconds": t_fit,
        "encode_seconds": seconds,
    }
    if log is not None:
        log(stats)
    return Result(blob, recon, stats)


def decompress(blob: bytes, model: Model | None = None) -> tuple[np.ndarray, dict]:
    """Decode ``.jrec`` bytes to a uint8 ``(H, W, 3)`` image.

    Args:
      blob: the file's bytes.
      model: the model to decode with; default: the bundled model named in the file.

    Raises:
      jrec.BitstreamError: corrupt / truncated data, or a model whose fingerprint differs
        from the encoder's (``ModelMismatchError``).
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
        model = load_model(models[info["model"]])
    key = jax.random.key(info["seed"])
    try:
        f = jrec.from_bytes(blob, key=key, proposal=None, model=model.fingerprint_parts(), method="orc",
                            kappa=model.kappa)
    except jrec.ModelMismatchError as e:
        raise jrec.ModelMismatchError(
            f"{e}: the file was coded with model {info['model']!r} and a different prior / "
            f"architecture than the given model {model.name!r}") from None
    index = np.asarray(f.index)
    shape = info["shape"]
    rows, cols = data.grid(shape, model.arch.patch)
    if index.shape != (rows * cols, model.num_blocks):
        raise jrec.ModelMismatchError(f"the file holds {index.shape} indices; model {model.name!r} "
                                      f"needs {(rows * cols, model.num_blocks)} for a {shape} image")
    img, _ = _decode_image(model, info["seed"], index, shape)
    info["decode_seconds"] = time.perf_counter() - t0
    return img, info


def _psnr_uint8(a, b) -> float:
    mse = float(np.mean(np.square(a.astype(np.float64) - b.astype(np.float64))))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
