"""Video through the modality-generic codec: real files in and out (ffmpeg of imageio-ffmpeg),
the frame / crop / resize window, the rate from the real file, the metric against an
independent computation, H.264 / H.265 at a matched rate, and every bad input of the issue."""

from __future__ import annotations

import math
import os
import subprocess

import numpy as np
import pytest

from jrec_inr import cli, codec, modalities, prior
from jrec_inr.modalities import Signal, SignalError, video
from jrec_inr.model import Arch

pytestmark = pytest.mark.xdist_group("video")

ARCH = Arch(hidden=8, depth=2, num_freqs=2, patch=(4, 8, 8), channels=3, linear=True)
QUICK = codec.CodecConfig(fit_steps=40, finetune_steps=1, chunk=40)
_quiet = dict(progress=False, log=lambda *_: None)


def _clip(t=8, h=16, w=24, seed=0, noise=0.02):
    """A moving colour gradient with a little noise: uint8 (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    base = np.stack([0.5 + 0.4 * np.sin((xx + 2 * tt) / 5.0), 0.5 + 0.4 * np.cos((yy - tt) / 4.0),
                     0.5 + 0.3 * np.sin((xx + yy) / 7.0)], -1)
    return np.clip(np.rint(255 * (base + rng.normal(scale=noise, size=base.shape))), 0, 255).astype(np.uint8)


def _ffmpeg_write(path, frames, pix_fmt_out, codec_args, pix_fmt_in="rgb24", fps="25"):
    """Write raw frames with ffmpeg directly (an independent path from the modality's writer)."""
    t, h, w = frames.shape[:3]
    subprocess.run([video.ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
                    "-pix_fmt", pix_fmt_in, "-s", f"{w}x{h}", "-framerate", fps, "-i", "-", *codec_args,
                    "-pix_fmt", pix_fmt_out, str(path)], input=frames.tobytes(), check=True)


@pytest.fixture(scope="module")
def model():
    grids = [g for s in range(3)
             for g in video.VIDEO.training_grids(Signal(_clip(8, 16, 24, seed=s), {"fps": 25}), ARCH)]
    patches = prior.training_patches(None, ARCH.patch_shape, 12, 0, grids=grids)
    cfg = prior.TrainConfig(bpp=0.5, kappa=8, num_patches=12, em_iters=1, first_steps=30, steps=20)
    return prior.train_prior(patches, ARCH, cfg, name="video-tiny", modality="video", rate=0.5, **_quiet)


def test_video_round_trip_through_files(model, tmp_path):
    src = tmp_path / "in.mkv"
    frames = _clip(8, 16, 24, seed=5)
    _ffmpeg_write(src, frames, "gbrp", ["-c:v", "ffv1"], fps="30000/1001")
    mod = modalities.for_path(src)
    assert mod.name == "video"
    sig = mod.read(src)
    np.testing.assert_array_equal(sig.values, frames)  # FFV1 in, the same frames out
    assert sig.info["fps_fraction"] == (30000, 1001)
    res = codec.compress(sig, model, QUICK, progress=False)
    assert res.stats["rate"] == pytest.approx(8 * len(res.data) / (8 * 16 * 24))  # per frame pixel
    assert res.stats["unit"] == "bpp" and res.signal.values.dtype == np.uint8
    out = codec.decompress(res.data, model)
    np.testing.assert_array_equal(out.values, res.signal.values)  # the decoder's output, bit for bit
    assert out.info["fps_fraction"] == (30000, 1001) and out.info["modality"] == "video"
    # the metric against an independent computation: one MSE over the whole clip on 8 bits
    mse = np.mean((frames.astype(np.float64) - out.values.astype(np.float64)) ** 2)
    assert res.stats["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / mse))
    assert res.stats["psnr"] > 15
    # the lossless file the decoder writes reads back to the same frames, at the same rate
    mod.write(tmp_path / "out.mkv", out)
    back = mod.read(tmp_path / "out.mkv")
    np.testing.assert_array_equal(back.values, out.values)
    assert back.info["fps_fraction"] == (30000, 1001)
    # the viewing copy is an H.264 MP4 of the same clip (lossy)
    mod.write(tmp_path / "view.mp4", out)
    view = mod.read(tmp_path / "view.mp4")
    assert view.values.shape == out.values.shape and mod.metrics(out, view)["psnr"] > 25


def test_frame_window_crop_and_resize(tmp_path):
    src = tmp_path / "long.mkv"
    frames = _clip(12, 20, 30, seed=1)
    _ffmpeg_write(src, frames, "gbrp", ["-c:v", "ffv1"])
    v = video.VIDEO.read(src, first_frame=3, frames=5, crop="10x12").values
    np.testing.assert_array_equal(v, frames[3:8, 5:15, 9:21])  # centred crop
    v = video.VIDEO.read(src, frames=2, crop=20, size="8x8").values
    assert v.shape == (2, 8, 8, 3)
    with pytest.raises(SignalError, match="larger than the 20x30 frames"):
        video.VIDEO.read(src, crop="24x24")
    with pytest.raises(SignalError, match="13 frames from frame 0 asked for, the clip has 12"):
        video.VIDEO.read(src, frames=13)
    with pytest.raises(SignalError, match="no frames from frame 12"):
        video.VIDEO.read(src, first_frame=12)
    with pytest.raises(SignalError, match="HxW"):
        video.VIDEO.read(src, crop="big")


def test_training_windows_and_crops():
    sig = Signal(_clip(12, 20, 30), {"fps": 25})
    grids = video.VIDEO.training_grids(sig, ARCH)
    # windows of 4 frames every 2 frames, frames cropped (centred) to whole 8 x 8 patches
    assert len(grids) == 5 and all(g.shape == (4, 16, 24, 3) for g in grids)
    x = video.VIDEO.normalise(sig)[0]
    np.testing.assert_array_equal(grids[1], x[2:6, 2:18, 3:27])


def _bad_clips(tmp_path):
    good = tmp_path / "good.mp4"
    _ffmpeg_write(good, _clip(24, 32, 32), "yuv420p", ["-c:v", "libx264", "-g", "4"])
    trunc = tmp_path / "trunc.mp4"
    blob = good.read_bytes()
    trunc.write_bytes(blob[: len(blob) // 3])
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"RIFF not a video at all" * 20)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    grey = tmp_path / "grey.mkv"
    _ffmpeg_write(grey, _clip(4, 16, 16)[..., 0].copy(), "gray", ["-c:v", "ffv1"], pix_fmt_in="gray")
    alpha = tmp_path / "alpha.mkv"
    rgba = np.concatenate([_clip(4, 16, 16), np.full((4, 16, 16, 1), 200, np.uint8)], -1)
    _ffmpeg_write(alpha, rgba, "rgba", ["-c:v", "ffv1"], pix_fmt_in="rgba")
    return {"truncated": trunc, "junk": junk, "zero-size": empty, "grey": grey, "alpha": alpha,
            "missing": tmp_path / "none.mp4"}


def test_bad_clips_are_refused(tmp_path):
    for what, path in _bad_clips(tmp_path).items():
        kwargs = {"frames": 24} if what == "truncated" else {}
        with pytest.raises(SignalError) as e:
            video.VIDEO.read(path, **kwargs)
        msg = str(e.value)
        assert {"grey": "grey", "alpha": "alpha", "missing": "no such file"}.get(what, "") in msg, (what, msg)
    with pytest.raises(SignalError, match="RGB clip"):
        video.VIDEO.normalise(Signal(np.zeros((4, 8, 8, 1), np.uint8), {"fps": 25}))
    with pytest.raises(SignalError, match="empty"):
        video.VIDEO.normalise(Signal(np.zeros((0, 8, 8, 3), np.uint8), {"fps": 25}))


def test_cli_round_trip_and_bad_clips_write_nothing(model, tmp_path, capsys):
    mpath = tmp_path / "video.npz"
    prior.save_model(mpath, model)
    src = tmp_path / "x.mkv"
    _ffmpeg_write(src, _clip(10, 20, 20, seed=2), "gbrp", ["-c:v", "ffv1"])
    out = tmp_path / "x.jrec"
    args = [str(src), str(out), "--model", str(mpath), "--frames", "8", "--crop", "16", "--steps", "20",
            "--finetune-steps", "0", "--quiet"]
    assert cli.main(["compress", *args, "--recon", str(tmp_path / "r.mkv")]) == 0
    assert cli.main(["decompress", str(out), str(tmp_path / "d.mkv"), "--model", str(mpath)]) == 0
    d, r = video.VIDEO.read(tmp_path / "d.mkv"), video.VIDEO.read(tmp_path / "r.mkv")
    assert d.values.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(d.values, r.values)
    assert cli.main(["decompress", str(out), str(tmp_path / "d.png"), "--model", str(mpath)]) == 2
    for path in _bad_clips(tmp_path).values():
        before = set(os.listdir(tmp_path))
        assert cli.main(["compress", str(path), str(tmp_path / "bad.jrec"), "--model", str(mpath),
                         "--frames", "24"]) == 2
        assert set(os.listdir(tmp_path)) == before
    assert cli.main(["compress", str(src), str(tmp_path / "bad.jrec"), "--model", str(mpath),
                     "--crop", "64"]) == 2
    assert "bad.jrec" not in os.listdir(tmp_path) and not os.path.exists(tmp_path / "d.png")
    err = capsys.readouterr().err
    assert "write it to a .mkv or .mp4 file" in err and "larger than the 20x20 frames" in err


def test_h264_and_h265_baselines_are_real_codecs_at_a_matched_rate():
    ref = Signal(_clip(8, 48, 48, seed=3, noise=0.003), {"fps": 25, "fps_fraction": (25, 1)})
    for c in ("h264", "h265"):
        low = video.match_rate(ref, c, "medium", 0.3)
        high = video.match_rate(ref, c, "medium", 2.0)
        for row in (low, high):
            assert row["bpp"] == pytest.approx(8 * row["bytes"] / (8 * 48 * 48))  # from the real stream
            assert row["bpp"] <= row["target_bpp"] and not row["above_target"]
        assert high["psnr"] > low["psnr"] + 1 and high["crf"] < low["crf"]
        # the reported PSNR is the decoded stream's, measured independently
        blob, dec = video.h26x_codec(ref, c, "medium", low["crf"])
        mse = np.mean((ref.values.astype(np.float64) - dec) ** 2)
        assert len(blob) == low["bytes"] and low["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / mse))
