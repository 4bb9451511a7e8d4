"""Images in and out: loading with clear errors, patches, atomic PNG writes.

Pixel values are float32 in ``[0, 1]`` in memory (``(H, W, 3)``); the codec's patches
are ``(P, patch * patch, 3)`` arrays in row-major patch order, the image edge-padded to
a multiple of the patch size (the padding is cropped after decoding).
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources

import numpy as np

__all__ = ["ImageError", "load_image", "save_png", "to_patches", "from_patches", "demo_image",
           "to_uint8", "atomic_write"]

MAX_PIXELS = 1 << 26  # 64 Mpx: refuse absurd images before allocating


class ImageError(ValueError):
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


def grid(shape, patch: int) -> tuple[int, int]:
    """Patch rows and columns covering an ``(H, W)`` image."""
    h, w = shape[:2]
    return -(-h // patch), -(-w // patch)


def to_patches(img, patch: int) -> np.ndarray:
    """``(H, W, C)`` -> ``(rows * cols, patch * patch, C)``, edge-padded to whole patches."""
    img = np.asarray(img)
    rows, cols = grid(img.shape, patch)
    pad = ((0, rows * patch - img.shape[0]), (0, cols * patch - img.shape[1]), (0, 0))
    x = np.pad(img, pad, mode="edge")
    c = x.shape[-1]
    x = x.reshape(rows, patch, cols, patch, c).transpose(0, 2, 1, 3, 4)
    return x.reshape(rows * cols, patch * patch, c)


def from_patches(patches, shape, patch: int) -> np.ndarray:
    """Inverse of :func:`to_patches`: reassemble and crop to ``shape = (H, W)``."""
    h, w = shape[:2]
    rows, cols = grid(shape, patch)
    p = np.asarray(patches)
    c = p.shape[-1]
    x = p.reshape(rows, cols, patch, patch, c).transpose(0, 2, 1, 3, 4)
    return x.reshape(rows * patch, cols * patch, c)[:h, :w]
