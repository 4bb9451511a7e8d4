"""Audio: PCM of any sample rate and channel count, ``(T, C)``; rate in kbps.

The protocol of COIN++ and RECOMBINER (He et al., ICLR 2024, appendix C): the waveform
in [-1, 1] is mapped to [0, 1] and the distortion is ``PSNR = 20 log10(1 / RMSE)`` on that
scale (6.02 dB above a peak-1 PSNR on [-1, 1]); LibriSpeech at 16 kHz, first 3 s, patches
of 800 samples. The decoder writes 16-bit PCM (FLAC or WAV) and the sample rate travels in
the file. A model with one output channel codes a multi-channel file channel after
channel (each channel padded to whole patches, channels laid end to end).

Baselines at a matched rate: MP3 (LAME, through ``lameenc``; decoded by libsndfile) and
Opus (``libopus`` in the ffmpeg of ``imageio-ffmpeg``). Their decoders' delays are
removed by aligning on the best lag (within 0.2 s) before measuring.
"""

from __future__ import annotations

import math
import os
import struct
import subprocess
import tempfile

import numpy as np

from jrec_inr import data
from jrec_inr.data import SignalError
from jrec_inr.modalities import Modality, Signal, best_at_most, psnr_unit, register, require

__all__ = ["Audio", "AUDIO", "mp3_codec", "opus_codec", "MP3_BITRATES"]

MAX_SAMPLES = 1 << 27  # per channel: refuse absurd lengths before allocating
_PARAMS = struct.Struct("<I")  # sample rate
#: LAME's constant bit rates (kbps) at 16 kHz and below (MPEG-2 / 2.5 layer III).
MP3_BITRATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)


class Audio(Modality):
    """PCM audio files (FLAC, WAV, OGG, ... anything libsndfile reads)."""

    name = "audio"
    id = 1
    rank = 1
    unit = "kbps"
    metric = "psnr"
    extensions = ("flac", "wav", "ogg", "aiff", "aif", "au", "w64", "rf64")

    def read(self, path, *, start: float = 0.0, duration: float | None = None, **options) -> Signal:
        """Read ``duration`` seconds (default: to the end) from ``start`` seconds on.

        Raises:
          SignalError: missing, unreadable or truncated file, an unsupported format,
            zero samples, or a window outside the file.
        """
        sf = require("soundfile", "audio")
        path = os.fspath(path)
        if not os.path.exists(path):
            raise SignalError(f"{path}: no such file")
        try:
            with sf.SoundFile(path) as f:
                sr, frames = f.samplerate, f.frames
                if sr <= 0:
                    raise SignalError(f"{path}: sample rate {sr}")
                first = int(round(start * sr))
                count = frames - first if duration is None else int(round(duration * sr))
                if start < 0 or (duration is not None and duration <= 0):
                    raise SignalError(f"{path}: start must be >= 0 and duration > 0 seconds")
                if first >= frames or count <= 0:
                    raise SignalError(f"{path}: the file has {frames} samples ({frames / sr:.2f} s); "
                                      f"nothing from {start:g} s on")
                if first + count > frames:
                    raise SignalError(f"{path}: {duration:g} s from {start:g} s asked for, the file "
                                      f"has {frames / sr:.2f} s")
                if count > MAX_SAMPLES:
                    raise SignalError(f"{path}: {count} samples per channel is more than {MAX_SAMPLES}")
                f.seek(first)
                v = f.read(count, dtype="float32", always_2d=True)
                subtype = f.subtype
        except SignalError:
            raise
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise SignalError(f"{path}: not a readable audio file ({e})") from e
        if v.shape[0] != count:
            raise SignalError(f"{path}: truncated audio: {v.shape[0]} of {count} samples could be read")
        if v.shape[0] == 0 or v.shape[1] == 0:
            raise SignalError(f"{path}: zero-length audio")
        if not np.all(np.isfinite(v)):
            raise SignalError(f"{path}: the samples hold NaN or infinite values")
        return Signal(np.clip(v, -1.0, 1.0), {"sample_rate": int(sr), "subtype": subtype})

    def write(self, path, signal: Signal, **options) -> None:
        """Write 16-bit PCM: FLAC for ``.flac``, WAV for ``.wav``."""
        import io

        sf = require("soundfile", "audio")
        fmt = {"flac": "FLAC", "wav": "WAV"}.get(os.fspath(path).lower().rsplit(".", 1)[-1])
        if fmt is None:
            raise SignalError(f"{path}: the decoder writes .flac or .wav files")
        buf = io.BytesIO()
        sf.write(buf, _pcm16(signal.values), int(signal.info["sample_rate"]), format=fmt, subtype="PCM_16")
        data.atomic_write(path, buf.getvalue())

    def normalise(self, signal: Signal) -> tuple[np.ndarray, bytes]:
        v = self.check_values(signal.values, "audio")
        sr = int(signal.info.get("sample_rate", 0))
        if not 0 < sr < 1 << 31:
            raise SignalError(f"audio needs a positive sample rate, got {sr}")
        if v.dtype == np.int16:
            v = v.astype(np.float32) / 32768.0
        x = ((np.clip(np.asarray(v, np.float32), -1.0, 1.0) + 1.0) * 0.5).astype(np.float32)
        return x, _PARAMS.pack(sr)

    def restore(self, x: np.ndarray, params: bytes) -> Signal:
        if len(params) != _PARAMS.size:
            raise SignalError("audio parameters of the wrong size in the file")
        (sr,) = _PARAMS.unpack(params)
        if sr == 0:
            raise SignalError("sample rate 0 in the file")
        return Signal(_pcm16(np.asarray(x, np.float32) * 2.0 - 1.0), {"sample_rate": int(sr)})

    def _patch_len(self, arch) -> int:
        return int(arch.patch_shape[0])

    def grid_dims(self, dims: tuple, channels: int, arch) -> tuple:
        if arch.channels == channels:
            return tuple(dims)
        if arch.channels != 1:
            raise SignalError(f"{channels}-channel audio; the model codes {arch.channels} channels")
        length = -(-int(dims[0]) // self._patch_len(arch)) * self._patch_len(arch)
        return (channels * length,)

    def to_grid(self, x: np.ndarray, arch) -> np.ndarray:
        c = x.shape[-1]
        if arch.channels == c:
            return x
        if arch.channels != 1:
            raise SignalError(f"this audio has {c} channels; the model codes {arch.channels}")
        (n,) = self.grid_dims(x.shape[:1], c, arch)
        length = n // c
        padded = np.pad(x, ((0, length - x.shape[0]), (0, 0)), mode="edge")
        return padded.T.reshape(n, 1)

    def from_grid(self, g: np.ndarray, dims: tuple, channels: int, arch) -> np.ndarray:
        if arch.channels == channels:
            return g
        length = g.shape[0] // channels
        return g.reshape(channels, length).T[: int(dims[0])]

    def rate(self, num_bytes: int, signal: Signal) -> float:
        seconds = signal.values.shape[0] / float(signal.info["sample_rate"])
        return 8.0 * num_bytes / seconds / 1000.0

    def bits_per_point(self, rate: float, info: dict | None = None) -> float:
        sr = (info or {}).get("sample_rate", 16000)
        return 1000.0 * float(rate) / float(sr)

    def metrics(self, ref: Signal, recon: Signal) -> dict:
        a, b = _float(ref.values), _float(recon.values)
        if a.shape != b.shape:
            raise SignalError(f"shapes differ: {a.shape} vs {b.shape}")
        rmse = float(np.sqrt(np.mean(np.square(a.astype(np.float64) - b))))
        return {"psnr": psnr_unit(0.5 * (a + 1.0), 0.5 * (b + 1.0)), "rmse": rmse}

    def baselines(self, ref: Signal, rate: float) -> list[dict]:
        out = [match_rate(ref, "mp3", rate)]
        try:
            out.append(match_rate(ref, "opus", rate))
        except FileNotFoundError:  # no ffmpeg: MP3 only
            pass
        return out

    def describe(self, signal: Signal) -> str:
        t, c = signal.values.shape
        sr = signal.info.get("sample_rate", 0)
        return f"{t / sr:.2f} s of {c}-channel audio at {sr} Hz"


def _float(v) -> np.ndarray:
    v = np.asarray(v)
    return v.astype(np.float64) / 32768.0 if v.dtype == np.int16 else v.astype(np.float64)


def _pcm16(v) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype == np.int16:
        return v
    return np.clip(np.rint(np.asarray(v, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _align(ref: np.ndarray, dec: np.ndarray, max_lag: int) -> np.ndarray:
    """``dec`` shifted by the lag in ``[-max_lag, max_lag]`` of least MSE, cut to ``ref``'s length."""
    t = ref.shape[0]
    pad = np.zeros((max_lag, dec.shape[1]), dec.dtype)
    d = np.concatenate([pad, dec, pad, np.zeros((max(0, t - dec.shape[0]), dec.shape[1]), dec.dtype)])
    best, best_err = None, math.inf
    for lag in range(-max_lag, max_lag + 1):
        seg = d[max_lag + lag: max_lag + lag + t]
        err = float(np.mean(np.square(seg - ref)))
        if err < best_err:
            best, best_err = seg, err
    return best


def mp3_codec(ref: Signal, kbps: int) -> tuple[bytes, np.ndarray]:
    """LAME CBR at ``kbps`` (quality 2), decoded by libsndfile: ``(bytes, float (T, C))``."""
    lameenc = require("lameenc", "baselines")
    sf = require("soundfile", "audio")
    pcm = _pcm16(ref.values)
    enc = lameenc.Encoder()
    enc.set_bit_rate(int(kbps))
    enc.set_in_sample_rate(int(ref.info["sample_rate"]))
    enc.set_channels(pcm.shape[1])
    enc.set_quality(2)
    blob = bytes(enc.encode(pcm.tobytes()) + enc.flush())
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "x.mp3")
        with open(f, "wb") as fh:
            fh.write(blob)
        dec, _ = sf.read(f, dtype="float64", always_2d=True)
    return blob, dec


def opus_codec(ref: Signal, kbps: float) -> tuple[bytes, np.ndarray]:
    """Opus (libopus, Ogg, VBR at ``kbps``) through imageio-ffmpeg's ffmpeg: ``(bytes, float (T, C))``."""
    imageio_ffmpeg = require("imageio_ffmpeg", "baselines")
    sf = require("soundfile", "audio")
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    sr = int(ref.info["sample_rate"])
    with tempfile.TemporaryDirectory() as tmp:
        src, ogg, out = (os.path.join(tmp, n) for n in ("in.wav", "x.opus", "out.wav"))
        sf.write(src, _pcm16(ref.values), sr, subtype="PCM_16")
        run = lambda *a: subprocess.run([ff, "-hide_banner", "-loglevel", "error", "-y", *a],  # noqa: E731
                                        check=True, capture_output=True)
        run("-i", src, "-c:a", "libopus", "-b:a", f"{kbps:g}k", "-application", "audio", ogg)
        run("-i", ogg, "-ar", str(sr), "-ac", str(ref.values.shape[1]), out)
        with open(ogg, "rb") as fh:
            blob = fh.read()
        dec, _ = sf.read(out, dtype="float64", always_2d=True)
    return blob, dec


def baseline_point(ref: Signal, codec: str, setting: float) -> dict:
    """One baseline coding of ``ref``: rate from the real size, PSNR after alignment."""
    blob, dec = (mp3_codec if codec == "mp3" else opus_codec)(ref, setting)
    a = _float(ref.values)
    dec = _align(a, dec, max_lag=int(0.2 * ref.info["sample_rate"]) if codec == "mp3" else 64)
    m = AUDIO.metrics(ref, Signal(dec, ref.info))
    return {"codec": codec, "kbps": AUDIO.rate(len(blob), ref), "setting": setting, "bytes": len(blob), **m}


def match_rate(ref: Signal, codec: str, target_kbps: float) -> dict:
    """The best setting of ``codec`` whose real rate is at most ``target_kbps`` (MP3: LAME's
    bit rates; Opus: bisection on its target bit rate, 6-256 kbps, 10 encodings); the
    lowest setting with ``above_target=True`` if even that one is above."""
    if codec == "mp3":
        settings = [b for b in MP3_BITRATES]
        points = []
        for b in settings:
            p = baseline_point(ref, "mp3", b)
            points.append(p)
            if p["kbps"] > target_kbps:
                break
        ok = [p for p in points if p["kbps"] <= target_kbps]
        best = ok[-1] if ok else points[0]
    elif codec == "opus":
        best, points = best_at_most(lambda b: baseline_point(ref, "opus", b), lambda p: p["kbps"],
                                    target_kbps, 6.0, 256.0, iters=9, log_scale=True, digits=2)
    else:
        raise ValueError(f"unknown audio codec {codec!r} (mp3, opus)")
    return {**best, "target_kbps": float(target_kbps), "above_target": best["kbps"] > target_kbps,
            "evaluations": len(points)}


AUDIO = register(Audio())
