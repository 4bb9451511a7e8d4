"""Image-quality metrics, classical codec baselines and rate-distortion plots.

* :func:`psnr` -- peak signal-to-noise ratio in dB.
* :func:`ssim` / :func:`ms_ssim` -- single-scale SSIM and MS-SSIM (Wang, Simoncelli &
  Bovik, 2003) in numpy, matching ``pytorch_msssim`` / CompressAI conventions (11x11
  Gaussian window with ``sigma = 1.5``, valid convolution, ``K1 = 0.01``, ``K2 = 0.03``,
  5 scales, per-channel values averaged over the channels).
* :func:`pillow_codec` / :func:`match_bpp` -- JPEG, WebP and JPEG 2000 through Pillow,
  with a quality search that hits a target bit rate (bits per pixel) from below.
* :func:`rd_plot` -- a PSNR-vs-bpp plot of our results against classical baselines and
  published rate-distortion curves (``published_rd.json``).

The core dependencies are numpy and Pillow; matplotlib is imported inside
:func:`rd_plot` only.
"""

from __future__ import annotations

import io
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

__all__ = ["psnr", "ssim", "ms_ssim", "pillow_codec", "match_bpp", "rd_plot",
           "CODECS", "MS_SSIM_WEIGHTS", "MS_SSIM_MIN_SIDE"]

#: Codecs understood by :func:`pillow_codec` and :func:`match_bpp`.
CODECS = ("jpeg", "webp", "jpeg2000")

#: MS-SSIM scale weights (Wang, Simoncelli & Bovik, 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03
_DATA_RANGE = 255.0

#: Smallest image side for which :func:`ms_ssim` is defined: ``11 * 2**4``.
MS_SSIM_MIN_SIDE = _WIN_SIZE * 2 ** (len(MS_SSIM_WEIGHTS) - 1)

# Quality ranges searched by match_bpp; "lowest quality" is the first element.
_JPEG_Q = (1, 95)
_WEBP_Q = (0, 100)
_J2K_RATIO = (2000.0, 1.05)  # compression ratio: lowest quality (largest ratio) first
_MAX_EVALS = 12


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio over all pixels and channels.

    Args:
        a: Image, e.g. ``(H, W, 3)`` uint8 (any numeric dtype is accepted).
        b: Image of the same shape as ``a``.
        peak: Peak signal value (255 for 8-bit images, 1 for images in ``[0, 1]``).

    Returns:
        ``10 log10(peak^2 / MSE)`` in dB; ``inf`` if the images are identical.

    Raises:
        ValueError: If the shapes differ.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shape mismatch {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * math.log10(peak * peak / mse))


def _gauss_1d(size: int = _WIN_SIZE, sigma: float = _WIN_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian window (as ``pytorch_msssim._fspecial_gauss_1d``)."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the last two axes of ``x`` with ``win`` (x) ``win``."""
    n = win.shape[0]
    x = sliding_window_view(x, n, axis=-1) @ win  # (..., H, W - n + 1)
    x = sliding_window_view(x, n, axis=-2) @ win  # (..., H - n + 1, W - n + 1)
    return x


def _to_chw(x: np.ndarray, name: str) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` image -> float64 ``(C, H, W)``."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"{name}: expected an (H, W) or (H, W, C) image, got shape {x.shape}")
    return np.moveaxis(x.astype(np.float64), -1, 0)


def _ssim_cs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel SSIM and contrast-structure means of ``(C, H, W)`` float images."""
    win = _gauss_1d()
    c1 = (_K1 * _DATA_RANGE) ** 2
    c2 = (_K2 * _DATA_RANGE) ** 2
    stats = _filter_valid(np.stack([x, y, x * x, y * y, x * y]), win)
    mu1, mu2, ex2, ey2, exy = stats
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = ex2 - mu1_sq
    sigma2_sq = ey2 - mu2_sq
    sigma12 = exy - mu12
    cs_map = (2.0 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = (2.0 * mu12 + c1) / (mu1_sq + mu2_sq + c1) * cs_map
    return ssim_map.mean(axis=(-2, -1)), cs_map.mean(axis=(-2, -1))


def _check_pair(a: np.ndarray, b: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _to_chw(a, name), _to_chw(b, name)
    if x.shape != y.shape:
        raise ValueError(f"{name}: shape mismatch {np.shape(a)} vs {np.shape(b)}")
    return x, y


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Single-scale SSIM of two 8-bit images, averaged over the channels.

    11x11 Gaussian window (``sigma = 1.5``), valid convolution, ``K1 = 0.01``,
    ``K2 = 0.03``, data range 255 (``pytorch_msssim.ssim`` conventions).

    Args:
        a: ``(H, W)`` or ``(H, W, C)`` image with values in ``[0, 255]``.
        b: Image of the same shape.

    Returns:
        Mean SSIM (1.0 for identical images).

    Raises:
        ValueError: If the shapes differ or a side is smaller than 11 pixels.
    """
    x, y = _check_pair(a, b, "ssim")
    if min(x.shape[-2:]) < _WIN_SIZE:
        raise ValueError(f"ssim: image sides must be >= {_WIN_SIZE}, got {x.shape[-2:]}")
    s, _ = _ssim_cs(x, y)
    return float(s.mean())


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling with stride 2 of the last two axes.

    Same as ``F.avg_pool2d(x, 2, padding=[s % 2 for s in x.shape[-2:]])`` in
    ``pytorch_msssim``: an odd side is zero-padded by one on both ends (padding counted
    in the average) and the last padded row/column is dropped.
    """
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)])
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    x = x[..., :h, :w]
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik, 2003) of two 8-bit images.

    Follows ``pytorch_msssim.ms_ssim`` (as used by CompressAI): at each of the 5 scales
    the per-channel SSIM terms are computed with an 11x11 Gaussian window; the
    contrast-structure term is used at the first 4 scales and the full SSIM at the last
    (both clipped at 0), combined with the weights :data:`MS_SSIM_WEIGHTS`, with 2x2
    average pooling between scales; the per-channel results are averaged.

    Args:
        a: ``(H, W, 3)`` (or ``(H, W)`` / ``(H, W, C)``) image with values in ``[0, 255]``.
        b: Image of the same shape.

    Returns:
        MS-SSIM in ``[0, 1]`` (1.0 for identical images), or ``None`` if the smaller side
        is below :data:`MS_SSIM_MIN_SIDE` (176) pixels, where MS-SSIM is undefined.

    Raises:
        ValueError: If the shapes differ.
    """
    x, y = _check_pair(a, b, "ms_ssim")
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    weights = np.asarray(MS_SSIM_WEIGHTS)
    levels = len(weights)
    terms = []
    for i in range(levels):
        s, cs = _ssim_cs(x, y)
        if i < levels - 1:
            terms.append(np.maximum(cs, 0.0))
            x, y = _avg_pool2(x), _avg_pool2(y)
        else:
            terms.append(np.maximum(s, 0.0))
    per_channel = np.prod(np.stack(terms) ** weights[:, None], axis=0)
    return float(per_channel.mean())


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    return image


def pillow_codec(image_uint8: np.ndarray, codec: str, quality: float) -> tuple[bytes, np.ndarray]:
    """Encode an RGB image in memory with Pillow and decode it back.

    * ``"jpeg"``: ``quality`` in 1..95, 4:2:0 chroma subsampling, ``optimize=True``
      (JFIF file, headers included).
    * ``"webp"``: lossy, ``quality`` in 0..100, ``method=6`` (RIFF file).
    * ``"jpeg2000"``: OpenJPEG, irreversible (9/7) wavelet, one quality layer with
      ``quality_mode="rates"``; ``quality`` is the compression ratio (> 1) relative to the
      raw 24-bit image, so roughly ``bpp = 24 / quality``. Written as a raw J2K
      codestream (``no_jp2=True``, no JP2 box wrapper).

    Args:
        image_uint8: ``(H, W, 3)`` uint8 RGB image.
        codec: One of :data:`CODECS`.
        quality: Quality setting (compression ratio for JPEG 2000), see above.

    Returns:
        ``(data, decoded)``: the encoded bytes and the decoded ``(H, W, 3)`` uint8 image.

    Raises:
        ValueError: On an unknown codec, an out-of-range quality or a bad image.
    """
    image = _as_rgb_uint8(image_uint8)
    pil = Image.fromarray(image)
    buf = io.BytesIO()
    if codec == "jpeg":
        q = int(quality)
        if not _JPEG_Q[0] <= q <= _JPEG_Q[1]:
            raise ValueError(f"jpeg quality must be in {_JPEG_Q}, got {quality}")
        pil.save(buf, format="JPEG", quality=q, optimize=True)
    elif codec == "webp":
        q = int(quality)
        if not _WEBP_Q[0] <= q <= _WEBP_Q[1]:
            raise ValueError(f"webp quality must be in {_WEBP_Q}, got {quality}")
        pil.save(buf, format="WEBP", quality=q, method=6, lossless=False)
    elif codec == "jpeg2000":
        ratio = float(quality)
        if not ratio > 1.0:
            raise ValueError(f"jpeg2000 compression ratio must be > 1, got {quality}")
        pil.save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[ratio],
                 irreversible=True, no_jp2=True)
    else:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as dec:
        decoded = np.asarray(dec.convert("RGB"), dtype=np.uint8)
    if decoded.shape != image.shape:
        raise RuntimeError(f"{codec}: decoded shape {decoded.shape} != {image.shape}")
    return data, decoded


def _bpp(data: bytes, image: np.ndarray) -> float:
    return 8.0 * len(data) / (image.shape[0] * image.shape[1])


def match_bpp(image_uint8: np.ndarray, codec: str, target_bpp: float) -> dict[str, Any]:
    """Highest-quality setting of a Pillow codec whose bit rate is at most ``target_bpp``.

    Bisection over the integer quality range (JPEG 1..95, WebP 0..100) or over the log
    compression ratio (JPEG 2000, ratios 1.05..2000), at most 12 encodings. The bit rate
    is ``8 * len(bytes) / (H * W)`` from the real encoded size. Of all evaluated settings
    within the target, the highest-quality one is returned. If even the lowest quality
    exceeds the target, the lowest-quality result is returned with
    ``above_target=True``.

    Args:
        image_uint8: ``(H, W, 3)`` uint8 RGB image.
        codec: One of :data:`CODECS`.
        target_bpp: Target bit rate in bits per pixel.

    Returns:
        Dict with keys ``codec``, ``bpp``, ``psnr``, ``ms_ssim`` (``None`` for images
        smaller than 176 pixels), ``quality`` (quality setting or JPEG 2000 ratio),
        ``bytes`` (encoded size), ``target_bpp``, ``above_target`` and ``evaluations``.

    Raises:
        ValueError: On an unknown codec or a bad image.
    """
    image = _as_rgb_uint8(image_uint8)
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {CODECS}")
    cache: dict[float, tuple[bytes, np.ndarray]] = {}

    def run(q: float) -> tuple[bool, bytes, np.ndarray]:
        if q not in cache:
            cache[q] = pillow_codec(image, codec, q)
        data, dec = cache[q]
        return _bpp(data, image) <= target_bpp, data, dec

    # ``rank`` orders settings by quality (larger = better); ``from_rank`` maps back.
    if codec == "jpeg2000":
        def rank(q: float) -> float:
            return -math.log(q)

        def from_rank(r: float) -> float:
            return math.exp(-r)

        lo, hi = rank(_J2K_RATIO[0]), rank(_J2K_RATIO[1])
        integer = False
    else:
        def rank(q: float) -> float:
            return q

        def from_rank(r: float) -> float:
            return int(r)

        lo, hi = (_JPEG_Q if codec == "jpeg" else _WEBP_Q)
        integer = True

    best_q = from_rank(lo)
    ok, _, _ = run(best_q)
    above = not ok
    if ok:
        ok_hi, _, _ = run(from_rank(hi))
        if ok_hi:
            best_q = from_rank(hi)
        else:
            # Invariant: lo within target, hi above it.
            while len(cache) < _MAX_EVALS and (hi - lo > 1 if integer else True):
                mid = (lo + hi) // 2 if integer else 0.5 * (lo + hi)
                ok_mid, _, _ = run(from_rank(mid))
                if ok_mid:
                    lo = mid
                else:
                    hi = mid
            feasible = [q for q in cache if _bpp(cache[q][0], image) <= target_bpp]
            best_q = max(feasible, key=rank)
    data, decoded = cache[best_q]
    return {
        "codec": codec,
        "bpp": _bpp(data, image),
        "psnr": psnr(image, decoded),
        "ms_ssim": ms_ssim(image, decoded),
        "quality": best_q,
        "bytes": len(data),
        "target_bpp": float(target_bpp),
        "above_target": above,
        "evaluations": len(cache),
    }


def _group_means(points: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(bpp, psnr) arrays sorted by bpp: means per ``target_bpp`` group if all points carry it."""
    if not points:
        return np.zeros(0), np.zeros(0)
    if all("target_bpp" in p for p in points):
        groups: dict[float, list[Mapping[str, Any]]] = defaultdict(list)
        for p in points:
            groups[float(p["target_bpp"])].append(p)
        bpp = np.array([np.mean([float(p["bpp"]) for p in g]) for g in groups.values()])
        ps = np.array([np.mean([float(p["psnr"]) for p in g]) for g in groups.values()])
    else:
        bpp = np.array([float(p["bpp"]) for p in points])
        ps = np.array([float(p["psnr"]) for p in points])
    order = np.argsort(bpp)
    return bpp[order], ps[order]


_CODEC_LABELS = {"jpeg": "JPEG (Pillow)", "webp": "WebP (Pillow)", "jpeg2000": "JPEG 2000 (Pillow/OpenJPEG)"}


def rd_plot(path: str | os.PathLike, ours: Sequence[Mapping[str, Any]],
            baselines: Sequence[Mapping[str, Any]], published: Mapping[str, Mapping[str, Any]],
            title: str = "") -> None:
    """Write a PSNR-vs-bpp rate-distortion plot as a PNG (atomically).

    Args:
        path: Output PNG path; written to a temporary file in the same directory and
            moved into place with :func:`os.replace`.
        ours: Dicts with keys ``bpp`` and ``psnr`` (several images per bit rate allowed);
            averaged per ``target_bpp`` if every dict carries that key. Thick line.
        baselines: Dicts from :func:`match_bpp`; averaged per codec and ``target_bpp``.
            Dashed lines.
        published: ``{name: {"source": ..., "bpp": [...], "psnr": [...]}}``, e.g. the
            ``"kodak"`` entry of ``published_rd.json``. Thin lines.
        title: Plot title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 6.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    from matplotlib import colormaps

    pub_colors = colormaps["tab20"]
    base_colors = colormaps["Dark2"]
    curves: list[tuple[np.ndarray, np.ndarray]] = []
    for k, (name, entry) in enumerate(published.items()):
        bpp = np.asarray(entry.get("bpp", []), dtype=float)
        ps = np.asarray(entry.get("psnr", []), dtype=float)
        n = min(bpp.size, ps.size)
        if n == 0:
            continue
        bpp, ps = bpp[:n], ps[:n]
        order = np.argsort(bpp)
        ax.plot(bpp[order], ps[order], lw=1.0, marker=".", ms=3, alpha=0.85, label=name,
                color=pub_colors(k % 20))
        curves.append((bpp, ps))

    base_bpp: list[np.ndarray] = []
    by_codec: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in baselines:
        by_codec[str(r.get("codec", "baseline"))].append(r)
    for k, (codec, rows) in enumerate(by_codec.items()):
        bpp, ps = _group_means(rows)
        ax.plot(bpp, ps, ls="--", lw=1.8, marker="s", ms=4, color=base_colors(k % 8),
                label=_CODEC_LABELS.get(codec, codec))
        curves.append((bpp, ps))
        base_bpp.append(bpp)

    o_bpp, o_ps = _group_means(ours)
    if o_bpp.size:
        ax.plot(o_bpp, o_ps, color="black", lw=3.0, marker="o", ms=7, label="jrec COMBINER (ours)",
                zorder=10)
        curves.append((o_bpp, o_ps))

    ref = o_bpp if o_bpp.size else np.concatenate(base_bpp or [np.zeros(0)])
    xmax = max(0.8, 1.1 * float(ref.max())) if ref.size else 0.8
    ax.set_xlim(0.0, xmax)
    visible = np.concatenate([c[1][(c[0] <= xmax) & np.isfinite(c[1])] for c in curves] or [np.zeros(0)])
    if visible.size:
        ax.set_ylim(float(visible.min()) - 1.0, float(visible.max()) + 1.0)

    ax.set_xlabel("bits per pixel (bpp)")
    ax.set_ylabel("PSNR (dB)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()

    from jrec_inr.data import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())
