"""Tests for jrec_inr.metrics: PSNR, (MS-)SSIM, Pillow codec baselines and RD plots."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image
from scipy.signal import convolve2d

from jrec_inr import metrics

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")  # beside the project
KODAK_23 = os.path.join(SHARED, "data", "kodak", "kodim23.png")
PUBLISHED = os.path.join(SHARED, "reference", "published_rd.json")


def _rand_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _smooth_image(h, w, seed=0):
    """A natural-ish image: smooth gradients plus mild texture, so codecs behave sensibly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([128 + 100 * np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def kodak_crop():
    if not os.path.exists(KODAK_23):
        pytest.skip(f"{KODAK_23} not available")
    with Image.open(KODAK_23) as im:
        return np.asarray(im.convert("RGB").crop((256, 128, 512, 384)), dtype=np.uint8)


# ----------------------------------------------------------------------------- psnr


def test_psnr_known_values():
    a = np.full((8, 9, 3), 100, np.uint8)
    assert metrics.psnr(a, a + 1) == pytest.approx(48.1308036, abs=1e-6)
    assert metrics.psnr(a + 1, a) == pytest.approx(48.1308036, abs=1e-6)  # no uint8 wrap-around
    b = a.copy()
    b[..., 0] += 3  # MSE = 9 / 3 = 3
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3.0))
    assert metrics.psnr(a, a) == float("inf")
    f = np.zeros((4, 4, 3))
    assert metrics.psnr(f, f + 0.1, peak=1.0) == pytest.approx(20.0)


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


# ----------------------------------------------------------------------------- (MS-)SSIM

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _gauss2d():
    c = np.arange(11) - 5.0
    g = np.exp(-(c**2) / (2 * 1.5**2))
    g /= g.sum()
    return np.outer(g, g)


def _ref_ssim_cs_channel(x, y):
    """Straightforward non-separable 2-D reference (one channel, float64)."""
    w = _gauss2d()

    def f(z):
        return convolve2d(z, w, mode="valid")

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    cs = (2 * cxy + C2) / (vx + vy + C2)
    s = (2 * mx * my + C1) / (mx**2 + my**2 + C1) * cs
    return s.mean(), cs.mean()


def _ref_ms_ssim(a, b):
    """Reference MS-SSIM for images whose sides stay even through 4 halvings."""
    wts = np.array(metrics.MS_SSIM_WEIGHTS)
    vals = []
    for c in range(a.shape[-1]):
        x, y = a[..., c].astype(float), b[..., c].astype(float)
        terms = []
        for i in range(5):
            s, cs = _ref_ssim_cs_channel(x, y)
            terms.append(max(cs, 0.0) if i < 4 else max(s, 0.0))
            if i == 4:
                break
            h, w = x.shape
            x = x.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            y = y.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        vals.append(np.prod(np.array(terms) ** wts))
    return float(np.mean(vals))


def test_ssim_matches_nonseparable_reference():
    a = _smooth_image(40, 33, seed=1)
    b = np.clip(a.astype(int) + np.random.default_rng(2).integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    ref = np.mean([_ref_ssim_cs_channel(a[..., c].astype(float), b[..., c].astype(float))[0]
                   for c in range(3)])
    assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-10)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    r1, r2 = _rand_image(24, 30, 3), _rand_image(24, 30, 4)
    ref = np.mean([_ref_ssim_cs_channel(r1[..., c].astype(float), r2[..., c].astype(float))[0]
                   for c in range(3)])
    assert metrics.ssim(r1, r2) == pytest.approx(ref, abs=1e-10)
    with pytest.raises(ValueError):
        metrics.ssim(a, a[:-1])


def test_ms_ssim_matches_reference():
    a = _smooth_image(176, 192, seed=5)
    b = np.clip(a.astype(int) + np.random.default_rng(6).integers(-25, 26, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ms_ssim(a, b) == pytest.approx(_ref_ms_ssim(a, b), abs=1e-10)


def test_ms_ssim_properties():
    a = _smooth_image(180, 190, seed=7)
    rng = np.random.default_rng(8)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    noisy = [np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8) for s in (3.0, 15.0, 40.0)]
    vals = [metrics.ms_ssim(a, n) for n in noisy]
    assert 1.0 > vals[0] > vals[1] > vals[2] > 0.0
    assert metrics.ms_ssim(noisy[1], a) == pytest.approx(vals[1], abs=1e-12)  # symmetric
    assert metrics.ms_ssim(a[:175], a[:175]) is None  # smaller side < 176
    assert metrics.ms_ssim(a[:, :175], noisy[0][:, :175]) is None
    with pytest.raises(ValueError):
        metrics.ms_ssim(a, a[:, :-1])


def test_avg_pool_odd_side_matches_pytorch_convention():
    # F.avg_pool2d(x, 2, padding=1) on an odd side: zero pad both ends, count_include_pad.
    x = np.arange(15, dtype=float).reshape(1, 3, 5)
    p = metrics._avg_pool2(x)
    xp = np.pad(x[0], 1)
    expect = np.array([[xp[2 * i:2 * i + 2, 2 * j:2 * j + 2].mean() for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(p[0], expect)


# ----------------------------------------------------------------------------- codecs


@pytest.mark.parametrize("codec,quality", [("jpeg", 75), ("webp", 80), ("jpeg2000", 20.0)])
def test_pillow_codec_round_trip(codec, quality):
    img = _smooth_image(48, 64, seed=9)
    data, dec = metrics.pillow_codec(img, codec, quality)
    assert isinstance(data, bytes) and len(data) > 0
    assert dec.shape == img.shape and dec.dtype == np.uint8
    assert metrics.psnr(img, dec) > 25.0


def test_pillow_codec_bad_arguments():
    img = _smooth_image(16, 16)
    with pytest.raises(ValueError):
        metrics.pillow_codec(img, "bpg", 30)
    with pytest.raises(ValueError):
        metrics.pillow_codec(img, "jpeg", 0)
    with pytest.raises(ValueError):
        metrics.pillow_codec(img, "webp", 101)
    with pytest.raises(ValueError):
        metrics.pillow_codec(img, "jpeg2000", 1.0)
    with pytest.raises(ValueError):
        metrics.pillow_codec(img.astype(np.float32), "jpeg", 50)


@pytest.mark.parametrize("codec", metrics.CODECS)
def test_match_bpp_below_target_and_monotone(kodak_crop, codec):
    assert kodak_crop.shape == (256, 256, 3)
    results = [metrics.match_bpp(kodak_crop, codec, t) for t in (0.25, 0.5, 1.0)]
    for r, t in zip(results, (0.25, 0.5, 1.0), strict=True):
        assert set(r) >= {"codec", "bpp", "psnr", "ms_ssim", "quality", "bytes"}
        assert r["codec"] == codec and not r["above_target"]
        assert r["bpp"] <= t
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (256 * 256))
        assert r["bpp"] > 0.5 * t  # the search actually gets close to the target
        assert r["evaluations"] <= 12
        assert 0.0 < r["ms_ssim"] < 1.0
        data, dec = metrics.pillow_codec(kodak_crop, codec, r["quality"])  # reproducible
        assert len(data) == r["bytes"] and metrics.psnr(kodak_crop, dec) == pytest.approx(r["psnr"])
    psnrs = [r["psnr"] for r in results]
    assert psnrs == sorted(psnrs)


def test_match_bpp_above_target():
    img = _smooth_image(64, 64, seed=3)
    r = metrics.match_bpp(img, "jpeg", 0.001)
    assert r["above_target"] is True and r["quality"] == 1 and r["bpp"] > 0.001
    assert r["ms_ssim"] is None  # 64 px < 176


# ----------------------------------------------------------------------------- plot


def test_rd_plot_writes_png(tmp_path):
    if os.path.exists(PUBLISHED):
        with open(PUBLISHED) as f:
            published = json.load(f)["kodak"]
    else:
        published = {"JPEG": {"source": "synthetic", "bpp": [0.2, 0.5, 1.0], "psnr": [24.0, 28.0, 32.0]}}
    ours = [{"bpp": b + d, "psnr": p + d, "target_bpp": b}
            for b, p in [(0.1, 25.0), (0.3, 29.0), (0.6, 32.0)] for d in (-0.01, 0.01)]
    baselines = [{"codec": c, "bpp": b, "psnr": p, "target_bpp": b}
                 for c, off in [("jpeg", -3.0), ("webp", 0.0)] for b, p in [(0.1, 24.0), (0.3, 28.0)]
                 for p in [p + off]]
    out = tmp_path / "rd.png"
    metrics.rd_plot(out, ours, baselines, published, title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert os.listdir(tmp_path) == ["rd.png"]  # no temp file left behind
    metrics.rd_plot(str(out), [{"bpp": 0.2, "psnr": 27.0}], [], published)  # overwrite, no groups
    assert out.stat().st_size > 1000
