"""Kinds of signal the INR codec codes: one small interface, one module per modality.

A *modality* describes a signal on a grid of rank ``d`` with ``C`` channels and everything
around it that is not the codec itself: reading a file to a :class:`Signal` and writing one
back, the normalisation to the unit scale the INR fits (and the parameters that must travel
in the ``.jrec`` file to undo it), the distortion metrics, the rate unit, and classical
baseline codecs at a matched rate. The codec (:mod:`jrec_inr.codec`) is one code path for
every modality: patches, priors, EM, blocks, beta control and ORC coding do not know which
kind of signal they code.

=========  ====  ==========================  ===============  ==========================
modality   id    grid                        rate unit        distortion
=========  ====  ==========================  ===============  ==========================
image      0     ``(H, W, 3)``               bits per pixel   PSNR on 8 bits, MS-SSIM
audio      1     ``(T, C)`` samples          kbps             PSNR of the [0, 1] waveform
protein    2     ``(N, 3)`` C-alpha (A)      bits per residue RMSD in angstrom
video      3     ``(T, H, W, 3)``            bits per pixel   PSNR over the clip, 8 bits
=========  ====  ==========================  ===============  ==========================

Use :func:`get` (by name or id) or :func:`for_path` (by file type).
"""


import math
import os
from typing import Any, NamedTuple

import numpy as np

from jrec_inr.data import SignalError

__all__ = ["Signal", "Modality", "SignalError", "get", "for_path", "names", "require", "psnr_unit",
           "best_at_most"]


class Signal(NamedTuple):
    """A signal in its natural units.

    Attributes:
      values: ``(*dims, C)`` array: an image's float pixels in [0, 1] (uint8 after
        decoding), an audio file's samples in [-1, 1] (int16 PCM after decoding), a
        backbone's C-alpha coordinates in angstrom.
      info: what the modality needs besides the values to write the signal out (a sample
        rate; residue names, numbers and the chain id), as a dict.
    """

    values: np.ndarray
    info: dict


class Modality:
    """The interface of a kind of signal (subclass per modality; instances are stateless).

    Attributes:
      name: the modality's name (``"image"``, ``"audio"``, ``"protein"``, ``"video"``).
      id: its number in ``.jrec`` files.
      rank: number of grid axes (2 for images, 1 for audio and backbones, 3 for video).
      unit: the rate unit (``"bpp"``, ``"kbps"``, ``"bits/residue"``).
      metric: the name of the primary distortion metric (first key of :meth:`metrics`).
      higher_is_better: whether the primary metric improves upwards (PSNR) or not (RMSD).
      extensions: file suffixes :func:`for_path` maps to this modality.
      offset: the INR outputs ``x - offset`` of the unit-scale signal ``x``.
      clip: the decoder clips unit-scale values to this range (``None``: no clipping).
      codec_defaults: the modality's encoder defaults (``CodecConfig`` fields).
    """

    name = ""
    id = -1
    rank = 0
    unit = ""
    metric = ""
    higher_is_better = True
    extensions: tuple[str, ...] = ()
    offset = 0.5
    clip: tuple[float, float] | None = (0.0, 1.0)
    #: Encoder settings of this modality that differ from ``CodecConfig``'s defaults
    #: (:func:`jrec_inr.codec.default_config`).
    codec_defaults: dict = {}

    # -- files -------------------------------------------------------------------------
    def read(self, path, **options) -> Signal:  # pragma: no cover - interface
        """Read a file (``SignalError`` with the reason if it cannot be coded)."""
        raise NotImplementedError

    def write(self, path, signal: Signal, **options) -> None:  # pragma: no cover - interface
        """Write a (decoded) signal to ``path`` atomically."""
        raise NotImplementedError

    # -- normalisation -----------------------------------------------------------------
    def normalise(self, signal: Signal) -> tuple[np.ndarray, bytes]:  # pragma: no cover
        """``(x, params)``: the float32 unit-scale grid ``(*dims, C)`` the INR fits and the
        bytes that :meth:`restore` needs besides the dims (stored in the file)."""
        raise NotImplementedError

    def restore(self, x: np.ndarray, params: bytes) -> Signal:  # pragma: no cover
        """The decoded signal from the unit-scale grid and :meth:`normalise`'s params,
        quantised as the output file holds it (so a written file reads back identically)."""
        raise NotImplementedError

    def to_grid(self, x: np.ndarray, arch) -> np.ndarray:
        """The grid a model of architecture ``arch`` codes (default: ``x`` itself, whose
        channel count must be the model's)."""
        if x.shape[-1] != arch.channels:
            raise SignalError(f"this {self.name} has {x.shape[-1]} channel(s); the model codes "
                              f"{arch.channels}")
        return x

    def from_grid(self, g: np.ndarray, dims: tuple, channels: int, arch) -> np.ndarray:
        """Inverse of :meth:`to_grid` for a signal of grid ``dims`` and ``channels``."""
        return g

    def grid_dims(self, dims: tuple, channels: int, arch) -> tuple:
        """The dims of :meth:`to_grid`'s grid for a signal of ``dims`` and ``channels``."""
        if channels != arch.channels:
            raise SignalError(f"a {channels}-channel {self.name}; the model codes {arch.channels}")
        return tuple(dims)

    def training_grids(self, signal: Signal, arch) -> list[np.ndarray]:
        """Unit-scale grids to draw a prior's training patches from (default: the whole
        signal, normalised as the encoder does)."""
        return [self.to_grid(self.normalise(signal)[0], arch)]

    # -- rate and distortion -----------------------------------------------------------
    def rate(self, num_bytes: int, signal: Signal) -> float:  # pragma: no cover - interface
        """The rate of ``num_bytes`` for ``signal`` in :attr:`unit`."""
        raise NotImplementedError

    def bits_per_point(self, rate: float, info: dict | None = None) -> float:
        """Bits per grid point (per patch point, all channels) of a rate in :attr:`unit`
        (what a prior's training budget is set in)."""
        return float(rate)

    def metrics(self, ref: Signal, recon: Signal) -> dict[str, Any]:  # pragma: no cover
        """Distortion of ``recon`` against ``ref``; the first key is :attr:`metric`."""
        raise NotImplementedError

    def baselines(self, ref: Signal, rate: float) -> list[dict]:
        """Classical codecs on ``ref`` at the rate ``rate`` (rows with ``codec``, the rate
        under :attr:`unit`'s key, the metrics)."""
        return []

    def describe(self, signal: Signal) -> str:
        """A one-line description for the CLI."""
        return f"{self.name} {tuple(signal.values.shape)}"

    # -- checks shared by the modalities -----------------------------------------------
    def check_values(self, values, what: str = "signal") -> np.ndarray:
        """``values`` as an array of rank ``rank + 1`` with no empty axis and finite entries."""
        v = np.asarray(values)
        if v.ndim != self.rank + 1:
            raise SignalError(f"a {self.name} {what} is a (*dims, channels) array of rank "
                              f"{self.rank + 1}; got shape {v.shape}")
        if 0 in v.shape:
            raise SignalError(f"empty {self.name} {what} (shape {v.shape})")
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise SignalError(f"the {self.name} {what} has NaN or infinite values")
        return v


_REGISTRY: dict[str, Modality] = {}


def register(m: Modality) -> Modality:
    _REGISTRY[m.name] = m
    return m


def names() -> list[str]:
    """The modalities' names, by id."""
    _load()
    return [m.name for m in sorted(_REGISTRY.values(), key=lambda m: m.id)]


def get(name_or_id) -> Modality:
    """A modality by name (``"audio"``) or file id (``1``)."""
    _load()
    for m in _REGISTRY.values():
        if name_or_id in (m.name, m.id):
            return m
    raise SignalError(f"unknown modality {name_or_id!r}; this build codes {names()}")


def for_path(path) -> Modality:
    """The modality of a file, from its suffix (``.png`` -> image, ``.flac`` -> audio,
    ``.pdb`` -> protein, ...)."""
    _load()
    suffix = os.path.basename(os.fspath(path)).lower().rsplit(".", 1)[-1] if "." in os.fspath(path) else ""
    for m in _REGISTRY.values():
        if suffix in m.extensions:
            return m
    known = ", ".join(f"{m.name}: {' '.join(m.extensions)}" for m in _REGISTRY.values())
    raise SignalError(f"{path}: cannot tell the modality from the suffix {suffix!r} ({known}); "
                      "pass --modality")


def _load() -> None:
    if len(_REGISTRY) < 4:  # (a module imported on its own registers only itself)
        from jrec_inr.modalities import audio, image, protein, video  # noqa: F401  (they register)


def require(module: str, extra: str):
    """Import an optional dependency, or raise ``SignalError`` saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SignalError(f"{module} is not installed: pip install 'jrec[{extra}]' ({e})") from None


def psnr_unit(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """``20 log10(peak / RMSE)`` in dB (inf for identical arrays)."""
    mse = float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def best_at_most(encode, rate, target: float, cheap: float, rich: float, *, iters: int,
                 log_scale: bool = False, digits: int | None = None) -> tuple[dict, list[dict]]:
    """A baseline codec at matched rate: the coding of highest real rate at most ``target``.

    ``encode(setting) -> point`` codes the signal at a setting (a bit rate, a quality, a
    quantisation step), ``rate(point)`` is the point's real rate. ``cheap`` is the setting
    of lowest rate, coded first; ``rich`` the other end of the range, presumed above the
    target (not coded). If the cheap setting is at most the target, ``iters`` bisection
    steps follow between the two (on the log of the setting with ``log_scale``; each
    midpoint rounded to ``digits`` decimals if given): a midpoint at most the target
    becomes the new cheap end, one above it the new rich end.

    Returns ``(best, points)``: the point of highest rate at most the target (the cheap
    setting's if none is; callers flag ``best`` above the target) and every point coded.
    """
    to = (math.log if log_scale else float)
    back = (math.exp if log_scale else float)
    points = [encode(cheap)]
    if rate(points[0]) <= target:
        lo, hi = to(cheap), to(rich)
        for _ in range(iters):
            mid = back(0.5 * (lo + hi))
            if digits is not None:
                mid = round(mid, digits)
            p = encode(mid)
            points.append(p)
            if rate(p) <= target:
                lo = to(mid)
            else:
                hi = to(mid)
    ok = [p for p in points if rate(p) <= target]
    return (max(ok, key=rate) if ok else points[0]), points
