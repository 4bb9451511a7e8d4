"""Signals in and out: images (loading with clear errors, atomic PNG writes), rank-generic patches.

Pixel values are float32 in ``[0, 1]`` in memory (``(H, W, 3)``). A signal of any kind is
a grid ``(*dims, C)`` (:mod:`jrec_inr.modalities`); the codec's patches are
``(P, prod(patch), C)`` arrays in row-major patch order, the grid edge-padded to a
multiple of the patch shape (the padding is cropped after decoding).
"""

from __future__ import annotations

import math
import os
import tempfile
from importlib import resources

import numpy as np

__all__ = ["SignalError", "ImageError", "load_image", "save_png", "to_patches", "from_patches", "demo_image",
           "to_uint8", "atomic_write", "grid", "patch_shape"]

MAX_PIXELS = 1 << 26  # 64 Mpx: refuse absurd images before allocating


class SignalError(ValueError):
    """An input signal the codec cannot take (unreadable, empty, wrong format, NaN, ...)."""


class ImageError(SignalError):
    """An input image the codec cannot take (unreadable, wrong channel count, empty, ...)."""


def demo_image() -> str:
    """Path of the bundled demo input: a 256x256 crop of Kodak's kodim23 (parrots)."""
    return str(resources.files("jrec_inr") / "assets" / "kodim23_crop256.png")


def load_image(path) -> np.ndarray:
    """Read an 8-bit RGB image as float32 ``(H, W, 3)`` in ``[0, 1]``.

    Raises:
      ImageError: missing or unreadable file, not 3 channels (grey, RGBA, palette images
        with transparency, CMYK, ...), more than 8 bits per channel, or zero size.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(os.fspath(path)) as im:
            mode, size = im.mode, im.size
            if size[0] * size[1] > MAX_PIXELS:
                raise ImageError(f"{path}: {size[0]}x{size[1]} is larger than {MAX_PIXELS} pixels")
            if mode == "P" and "transparency" not in im.info:
                im = im.convert("RGB")
                mode = "RGB"
            if mode != "RGB":
                bands = len(im.getbands())
                raise ImageError(f"{path}: the codec takes 8-bit RGB images (3 channels); this one is "
                                 f"mode {mode!r} with {bands} channel(s) -- convert it first")
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such file") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from e
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"{path}: zero-size image {a.shape}")
    return a.astype(np.float32) / 255.0


def to_uint8(img) -> np.ndarray:
    """``[0, 1]`` floats to uint8 (round to nearest, clipped)."""
    return np.asarray(np.clip(np.rint(np.asarray(img, np.float32) * 255.0), 0, 255), np.uint8)


def atomic_write(path, data: bytes) -> None:
    """Write bytes to ``path`` through a temporary file in the same folder and a rename."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".jrec-inr-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_png(path, img_uint8) -> None:
    """Write an ``(H, W, 3)`` uint8 array as PNG (atomically)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img_uint8, np.uint8), "RGB").save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def patch_shape(patch, rank: int | None = None) -> tuple[int, ...]:
    """A patch's sides as a tuple: an int is a square image patch ``(patch, patch)``."""
    shape = (patch, patch) if isinstance(patch, (int, np.integer)) else tuple(int(v) for v in patch)
    if rank is not None and len(shape) != rank:
        raise ValueError(f"a rank-{len(shape)} patch {shape} for a rank-{rank} signal")
    return shape


def grid(shape, patch) -> tuple[int, ...]:
    """Patches along each axis covering a signal of grid shape ``shape`` (``(H, W)`` for an
    image; extra trailing entries such as the channel count are ignored)."""
    sides = patch_shape(patch)
    return tuple(-(-int(n) // s) for n, s in zip(shape[: len(sides)], sides, strict=True))


def to_patches(x, patch) -> np.ndarray:
    """``(*dims, C)`` -> ``(num_patches, prod(patch), C)``, edge-padded to whole patches.

    Patches are in row-major order of the patch grid, points row-major within a patch
    (for an image: ``(rows * cols, patch * patch, C)``).
    """
    x = np.asarray(x)
    sides = patch_shape(patch, x.ndim - 1)
    counts = grid(x.shape, sides)
    d = len(sides)
    pad = [(0, n * s - dim) for n, s, dim in zip(counts, sides, x.shape[:d], strict=True)] + [(0, 0)]
    x = np.pad(x, pad, mode="edge")
    c = x.shape[-1]
    x = x.reshape(*[v for n, s in zip(counts, sides, strict=True) for v in (n, s)], c)
    x = x.transpose(*range(0, 2 * d, 2), *range(1, 2 * d, 2), 2 * d)
    return x.reshape(math.prod(counts), math.prod(sides), c)


def from_patches(patches, shape, patch) -> np.ndarray:
    """Inverse of :func:`to_patches`: reassemble and crop to ``shape`` (the grid's dims)."""
    sides = patch_shape(patch)
    d = len(sides)
    counts = grid(shape, sides)
    p = np.asarray(patches)
    c = p.shape[-1]
    x = p.reshape(*counts, *sides, c)
    x = x.transpose(*[v for i in range(d) for v in (i, d + i)], 2 * d)
    x = x.reshape(*[n * s for n, s in zip(counts, sides, strict=True)], c)
    return x[tuple(slice(0, int(n)) for n in shape[:d])]
