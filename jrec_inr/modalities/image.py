"""Images: 8-bit RGB, ``(H, W, 3)``; rate in bits per pixel; PSNR on 8 bits and MS-SSIM.

Baselines: JPEG, WebP and JPEG 2000 through Pillow at a matched bit rate
(:func:`jrec_inr.metrics.match_bpp`).
"""

from __future__ import annotations

import numpy as np

from jrec_inr import data
from jrec_inr.modalities import Modality, Signal, register

__all__ = ["Image", "IMAGE"]


class Image(Modality):
    """8-bit RGB images (PNG, JPEG, ... anything Pillow reads as RGB)."""

    name = "image"
    id = 0
    rank = 2
    unit = "bpp"
    metric = "psnr"
    extensions = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff", "webp")

    def read(self, path, **options) -> Signal:
        return Signal(data.load_image(path), {})

    def write(self, path, signal: Signal, **options) -> None:
        v = signal.values
        data.save_png(path, v if v.dtype == np.uint8 else data.to_uint8(v))

    def normalise(self, signal: Signal) -> tuple[np.ndarray, bytes]:
        v = np.asarray(signal.values)
        if v.ndim != 3 or v.shape[-1] != 3 or 0 in v.shape:
            raise data.ImageError(f"expected an (H, W, 3) image, got {v.shape}")
        v = self.check_values(v, "image")
        if v.dtype == np.uint8:
            v = v.astype(np.float32) / 255.0
        return np.asarray(v, np.float32), b""

    def restore(self, x: np.ndarray, params: bytes) -> Signal:
        return Signal(data.to_uint8(x), {})

    def rate(self, num_bytes: int, signal: Signal) -> float:
        h, w = signal.values.shape[:2]
        return 8.0 * num_bytes / (h * w)

    def metrics(self, ref: Signal, recon: Signal) -> dict:
        from jrec_inr import metrics

        a = ref.values if ref.values.dtype == np.uint8 else data.to_uint8(ref.values)
        return {"psnr": metrics.psnr(a, recon.values), "ms_ssim": metrics.ms_ssim(a, recon.values)}

    def baselines(self, ref: Signal, rate: float) -> list[dict]:
        from jrec_inr import metrics

        a = ref.values if ref.values.dtype == np.uint8 else data.to_uint8(ref.values)
        return [metrics.match_bpp(a, c, rate) for c in ("jpeg", "webp", "jpeg2000")]

    def describe(self, signal: Signal) -> str:
        h, w = signal.values.shape[:2]
        return f"{w}x{h} image"


IMAGE = register(Image())
