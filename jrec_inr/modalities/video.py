"""Video: 8-bit RGB clips, ``(T, H, W, 3)``; rate in bits per frame pixel; PSNR over the clip.

A clip is a signal of rank 3 (frames, rows, columns) with 3 channels, coded by the same
codec as every other modality with 3-D patches (RECOMBINER: 24 x 16 x 16). Reading goes
through the ffmpeg of ``imageio-ffmpeg`` (MP4, AVI, MKV, WebM, ... anything it decodes),
with a frame window, a centred crop and a resize (Pillow's antialiased bicubic), so that
a window of a long clip can be coded. The decoder writes a lossless FFV1 ``.mkv`` (reads
back bit for bit) or, for viewing, an H.264 ``.mp4`` (lossy: 4:2:0 at CRF 12). The frame
rate travels in the ``.jrec`` file.

The comparison protocol of RECOMBINER (He et al., ICLR 2024, appendix C; UCF-101):
the first 24 frames, a centre crop of 240 x 240 resized to 128 x 128, patches of
24 x 16 x 16 (64 per clip), PSNR from one MSE over the whole clip after clipping and
rounding to 8 bits, bits per frame pixel (``8 * bytes / (T * H * W)``) from the real file.

Baselines at a matched rate: H.264 (libx264) and H.265 (libx265) through the same ffmpeg,
at the ``medium`` and ``veryslow`` presets, 4:2:0 (what a user gets from those encoders by
default), rate matched by bisection on the CRF; the size counted is the raw elementary
stream (no container, no SEI messages, which decoders do not need), the PSNR is measured
on the decoded RGB frames exactly as the codec's.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from jrec_inr import data
from jrec_inr.data import SignalError
from jrec_inr.modalities import Modality, Signal, best_at_most, register, require

__all__ = ["Video", "VIDEO", "read_clip", "ffmpeg", "h26x_codec", "match_rate", "PROTOCOL"]

MAX_VALUES = 1 << 30  # T * H * W * 3: refuse absurd windows before allocating
_PARAMS = struct.Struct("<II")  # frame rate as a fraction num / den
#: RECOMBINER's UCF-101 protocol: first 24 frames, centre crop 240 x 240, resized to 128 x 128.
PROTOCOL = {"frames": 24, "crop": (240, 240), "size": (128, 128)}
#: Source pixel formats refused: grey (one channel) and formats with alpha.
_GREY = ("gray", "ya8", "ya16", "y400", "monow", "monob")
_ALPHA = ("rgba", "bgra", "argb", "abgr", "yuva", "gbrap", "pal8", "ya")


def ffmpeg() -> str:
    """Path of imageio-ffmpeg's ffmpeg (``SignalError`` naming the extra if it is missing)."""
    return require("imageio_ffmpeg", "video").get_ffmpeg_exe()


def _pair(v, what: str) -> tuple[int, int] | None:
    """``"HxW"``, an int (a square) or a pair -> ``(H, W)`` of positive ints."""
    if v is None:
        return None
    if isinstance(v, str):
        parts = v.lower().replace("*", "x").split("x")
        try:
            hw = tuple(int(p) for p in parts)
        except ValueError:
            raise SignalError(f"{what} {v!r}: give HxW (e.g. 240x240) or one side") from None
    elif isinstance(v, (int, np.integer)):
        hw = (int(v),)
    else:
        hw = tuple(int(p) for p in v)
    if len(hw) == 1:
        hw = hw * 2
    if len(hw) != 2 or min(hw) <= 0:
        raise SignalError(f"{what} {v!r}: two positive sides HxW")
    return hw


def read_clip(path, *, first_frame: int = 0, frames: int | None = None, crop=None, size=None):
    """Decode frames ``[first_frame, first_frame + frames)`` of a clip as uint8 ``(T, H, W, 3)``,
    centre-cropped to ``crop`` and resized to ``size`` (both ``(H, W)``, ``"HxW"`` or a side).

    Returns ``(frames, meta)`` with ffmpeg's description of the source (``fps``,
    ``pix_fmt``, ``codec``, ``source_size``).

    Raises:
      SignalError: a missing, unreadable or truncated file, grey or alpha frames, fewer
        frames than asked for, a crop larger than the frame, zero frames.
    """
    iio = require("imageio_ffmpeg", "video")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SignalError(f"{path}: no such file")
    if first_frame < 0 or (frames is not None and frames <= 0):
        raise SignalError(f"{path}: the first frame must be >= 0 and the frame count > 0")
    crop, size = _pair(crop, "crop"), _pair(size, "resize")
    try:
        gen = iio.read_frames(path, pix_fmt="rgb24")
        meta = next(gen)
    except (RuntimeError, OSError, StopIteration) as e:
        why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise SignalError(f"{path}: not a readable video ({why})") from e
    try:
        w, h = (int(v) for v in meta["size"])
        fmt = str(meta.get("pix_fmt", "")).split("(")[0].strip().lower()
        if fmt.startswith(_GREY):
            raise SignalError(f"{path}: grey frames ({fmt}); the codec takes RGB clips -- convert it first")
        if fmt.startswith(_ALPHA):
            raise SignalError(f"{path}: frames with alpha or a palette ({fmt}); the codec takes RGB clips")
        if w <= 0 or h <= 0:
            raise SignalError(f"{path}: zero-size frames ({w}x{h})")
        if crop is not None and (crop[0] > h or crop[1] > w):
            raise SignalError(f"{path}: crop {crop[0]}x{crop[1]} is larger than the {h}x{w} frames")
        out_h, out_w = size or crop or (h, w)
        if frames is not None and frames * out_h * out_w * 3 > MAX_VALUES:
            raise SignalError(f"{path}: {frames} frames of {out_h}x{out_w} is more than {MAX_VALUES} values")
        kept, index = [], 0
        for raw in gen:
            if index >= first_frame:
                if len(raw) != h * w * 3:
                    raise SignalError(f"{path}: frame {index} is truncated ({len(raw)} of {h * w * 3} bytes)")
                frame = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
                kept.append(_crop_resize(frame, crop, size))
                if len(kept) * out_h * out_w * 3 > MAX_VALUES:
                    raise SignalError(f"{path}: more than {MAX_VALUES} values; ask for fewer frames")
                if frames is not None and len(kept) == frames:
                    break
            index += 1
    except RuntimeError as e:  # ffmpeg failed part-way (a truncated or corrupt stream)
        raise SignalError(f"{path}: the video could not be decoded ({str(e).strip()[-200:]})") from e
    finally:
        gen.close()
    if not kept:
        raise SignalError(f"{path}: no frames from frame {first_frame} on (the clip has {index})")
    if frames is not None and len(kept) < frames:
        raise SignalError(f"{path}: {frames} frames from frame {first_frame} asked for, the clip has "
                          f"{first_frame + len(kept)}")
    return np.stack(kept), meta


def _crop_resize(frame: np.ndarray, crop, size) -> np.ndarray:
    if crop is not None:
        h, w = frame.shape[:2]
        top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
        frame = frame[top: top + crop[0], left: left + crop[1]]
    if size is not None and tuple(frame.shape[:2]) != tuple(size):
        from PIL import Image

        im = Image.fromarray(np.ascontiguousarray(frame), "RGB").resize((size[1], size[0]), Image.BICUBIC)
        frame = np.asarray(im, np.uint8)
    return frame


def _fps_fraction(fps) -> tuple[int, int]:
    """The frame rate as a fraction; ffmpeg prints NTSC rates rounded (29.97), which are
    snapped to their exact ``N * 1000 / 1001`` (30000 / 1001)."""
    if not fps or not math.isfinite(float(fps)) or float(fps) <= 0:
        return 25, 1
    fps = float(fps)
    ntsc = round(fps * 1.001)
    f = Fraction(fps).limit_denominator(1001)
    if abs(fps * 1.001 - ntsc) < 0.006 and abs(fps - ntsc) > 0.006:
        f = Fraction(ntsc * 1000, 1001)
    return f.numerator, f.denominator


def _run(*args, stdin: bytes | None = None) -> bytes:
    try:
        r = subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args], input=stdin,
                           capture_output=True, check=True)
    except subprocess.CalledProcessError as e:
        raise SignalError(f"ffmpeg failed: {e.stderr.decode(errors='replace').strip()[-300:]}") from e
    return r.stdout


def _raw_input(t_h_w, fps: str) -> list[str]:
    _, h, w = t_h_w
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", fps, "-i", "-"]


class Video(Modality):
    """RGB video clips (anything the ffmpeg of ``imageio-ffmpeg`` decodes)."""

    name = "video"
    id = 3
    rank = 3
    unit = "bpp"
    metric = "psnr"
    extensions = ("mp4", "avi", "mkv", "webm", "mov", "m4v", "mpg", "mpeg", "ogv", "y4m")

    def read(self, path, *, first_frame: int = 0, frames: int | None = None, crop=None, size=None,
             **options) -> Signal:
        """Read a window of a clip (:func:`read_clip`) as uint8 ``(T, H, W, 3)``."""
        v, meta = read_clip(path, first_frame=first_frame, frames=frames, crop=crop, size=size)
        num, den = _fps_fraction(meta.get("fps"))
        return Signal(v, {"fps": num / den, "fps_fraction": (num, den), "source": meta.get("codec", "")})

    def write(self, path, signal: Signal, **options) -> None:
        """Write ``.mkv`` (FFV1, lossless RGB: reads back bit for bit) or ``.mp4`` (H.264
        4:2:0 at CRF 12, for viewing; not lossless), atomically."""
        v = self.check_values(signal.values, "clip")
        v = v if v.dtype == np.uint8 else data.to_uint8(v)
        if v.shape[-1] != 3:
            raise SignalError(f"an RGB clip has 3 channels, got {v.shape[-1]}")
        kind = os.fspath(path).lower().rsplit(".", 1)[-1]
        num, den = signal.info.get("fps_fraction") or _fps_fraction(signal.info.get("fps"))
        if kind == "mkv":
            codec = ["-c:v", "ffv1", "-level", "3", "-pix_fmt", "gbrp", "-f", "matroska"]
        elif kind == "mp4":
            t, h, w = v.shape[:3]
            if h % 2 or w % 2:  # 4:2:0 needs even sides
                v = np.pad(v, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            codec = ["-c:v", "libx264", "-crf", "12", "-preset", "medium", "-pix_fmt", "yuv420p",
                     "-movflags", "+faststart", "-f", "mp4"]
        else:
            raise SignalError(f"{path}: the decoder writes .mkv (FFV1, lossless) or .mp4 (H.264, "
                              "for viewing)")
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(os.fspath(path)))) as tmp:
            out = os.path.join(tmp, "clip." + kind)
            _run(*_raw_input(v.shape[:3], f"{num}/{den}"), *codec, out,
                 stdin=np.ascontiguousarray(v).tobytes())
            with open(out, "rb") as f:
                blob = f.read()
        data.atomic_write(path, blob)

    def normalise(self, signal: Signal) -> tuple[np.ndarray, bytes]:
        v = self.check_values(signal.values, "clip")
        if v.shape[-1] != 3:
            raise SignalError(f"expected an RGB clip (T, H, W, 3), got {v.shape} (grey or alpha clips: "
                              "convert them first)")
        if v.dtype == np.uint8:
            v = v.astype(np.float32) / 255.0
        num, den = signal.info.get("fps_fraction") or _fps_fraction(signal.info.get("fps"))
        return np.clip(np.asarray(v, np.float32), 0.0, 1.0), _PARAMS.pack(int(num), int(den))

    def restore(self, x: np.ndarray, params: bytes) -> Signal:
        if len(params) != _PARAMS.size:
            raise SignalError("video parameters of the wrong size in the file")
        num, den = _PARAMS.unpack(params)
        if num == 0 or den == 0:
            raise SignalError("frame rate 0 in the file")
        return Signal(data.to_uint8(x), {"fps": num / den, "fps_fraction": (num, den)})

    def training_grids(self, signal: Signal, arch) -> list[np.ndarray]:
        """Windows of the patch's frame count every half window, each frame cropped (centred)
        to whole patches, so that a clip read larger than the coded size (e.g. 128 x 171)
        gives patches from every position of its frames."""
        x = self.to_grid(self.normalise(signal)[0], arch)
        lt, ph, pw = arch.patch_shape
        t, h, w = x.shape[:3]
        hh, ww = h // ph * ph, w // pw * pw
        if t < lt or hh == 0 or ww == 0:
            return []
        top, left = (h - hh) // 2, (w - ww) // 2
        step = max(1, lt // 2)
        return [x[s: s + lt, top: top + hh, left: left + ww] for s in range(0, t - lt + 1, step)]

    def rate(self, num_bytes: int, signal: Signal) -> float:
        t, h, w = signal.values.shape[:3]
        return 8.0 * num_bytes / (t * h * w)

    def metrics(self, ref: Signal, recon: Signal) -> dict:
        a, b = _u8(ref.values), _u8(recon.values)
        if a.shape != b.shape:
            raise SignalError(f"shapes differ: {a.shape} vs {b.shape}")
        d = a.astype(np.float64) - b.astype(np.float64)
        mse = float(np.mean(d * d))
        frame_mse = np.mean(d * d, axis=(1, 2, 3))
        with np.errstate(divide="ignore"):
            frame_psnr = 10 * np.log10(255.0 ** 2 / frame_mse)
        return {"psnr": float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse),
                "psnr_frame_mean": float(np.mean(frame_psnr))}

    def baselines(self, ref: Signal, rate: float) -> list[dict]:
        return [match_rate(ref, c, p, rate) for c in ("h264", "h265") for p in ("medium", "veryslow")]

    def describe(self, signal: Signal) -> str:
        t, h, w = signal.values.shape[:3]
        return f"{t} frames of {w}x{h} at {signal.info.get('fps', 0):.2f} fps"


def _u8(v) -> np.ndarray:
    v = np.asarray(v)
    return v if v.dtype == np.uint8 else data.to_uint8(v)


#: ffmpeg encoder, raw stream format, and the options that leave out what a decoder does not
#: need (x264's SEI with its settings string, ~600 bytes; x265's info SEI).
_ENCODERS = {"h264": ("libx264", "h264", ["-bsf:v", "filter_units=remove_types=6"]),
             "h265": ("libx265", "hevc", ["-x265-params", "log-level=error:info=0"])}


def h26x_codec(ref: Signal, codec: str, preset: str, crf: float) -> tuple[bytes, np.ndarray]:
    """``ref`` through libx264 / libx265 (4:2:0, ``preset``, ``crf``; both take fractional CRFs) and back:
    ``(elementary stream, decoded uint8 (T, H, W, 3))``."""
    if codec not in _ENCODERS:
        raise ValueError(f"unknown video codec {codec!r} (h264, h265)")
    lib, fmt, extra = _ENCODERS[codec]
    v = _u8(ref.values)
    t, h, w = v.shape[:3]
    ph, pw = h % 2, w % 2
    if ph or pw:
        v = np.pad(v, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    num, den = ref.info.get("fps_fraction") or _fps_fraction(ref.info.get("fps"))
    blob = _run(*_raw_input(v.shape[:3], f"{num}/{den}"), "-c:v", lib, "-preset", preset, "-crf", f"{crf:g}",
                "-pix_fmt", "yuv420p", *extra, "-f", fmt, "-", stdin=np.ascontiguousarray(v).tobytes())
    raw = _run("-f", fmt, "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-", stdin=blob)
    dec = np.frombuffer(raw, np.uint8)
    if dec.size != v.size:
        raise SignalError(f"{codec} decoded {dec.size} values, expected {v.size}")
    return blob, dec.reshape(v.shape)[:, :h, :w]


def baseline_point(ref: Signal, codec: str, preset: str, crf: float) -> dict:
    blob, dec = h26x_codec(ref, codec, preset, crf)
    m = VIDEO.metrics(ref, Signal(dec, ref.info))
    return {"codec": f"{codec}-{preset}", "bpp": VIDEO.rate(len(blob), ref), "crf": crf,
            "bytes": len(blob), **m}


def match_rate(ref: Signal, codec: str, preset: str, target_bpp: float, *, iters: int = 9) -> dict:
    """The coding of ``ref`` by ``codec`` at ``preset`` of the highest real rate at most
    ``target_bpp``: bisection on the (fractional) CRF in [0, 51], ``iters`` encodings after
    CRF 51; CRF 51 with ``above_target=True`` if even that one is above."""
    best, points = best_at_most(lambda crf: baseline_point(ref, codec, preset, crf), lambda p: p["bpp"],
                                target_bpp, 51.0, 0.0, iters=iters, digits=3)
    return {**best, "target_bpp": float(target_bpp), "above_target": best["bpp"] > target_bpp,
            "evaluations": len(points), "ffmpeg": _ffmpeg_version()}


@functools.cache
def _ffmpeg_version() -> str:
    try:
        first = subprocess.run([ffmpeg(), "-version"], capture_output=True, text=True).stdout.splitlines()[0]
        return first.split(" Copyright")[0]
    except (OSError, IndexError):
        return "unknown"


VIDEO = register(Video())
