"""RECOMBINER's hierarchical patch prior: units, the summed posterior, EM per level, coding."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrec
from jrec_inr import cli, codec, data, hierarchy, prior
from jrec_inr.fit import FitConfig, Problem, init_state, inverse_softplus, make_step
from jrec_inr.modalities import Signal, audio
from jrec_inr.model import Arch

pytestmark = pytest.mark.xdist_group("hierarchy")

ARCH = Arch(hidden=8, depth=2, num_freqs=4, patch=(100,), channels=1, linear=True)
QUICK = codec.CodecConfig(fit_steps=40, finetune_steps=1, chunk=40)


def _wave(n, seed):
    t = np.arange(n) / 8000
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (150 + 30 * seed) * t) + 0.02 * rng.normal(size=n)
    return np.clip(x, -1, 1).astype(np.float32)[:, None]


@pytest.fixture(scope="module")
def hier_model():
    grids = [audio.AUDIO.normalise(Signal(_wave(2400, s), {"sample_rate": 8000}))[0] for s in range(3)]
    patches, units = prior.training_signals(grids, (800,), ARCH.patch_shape, (3,), 4, seed=0)
    cfg = prior.TrainConfig(bpp=audio.AUDIO.bits_per_point(12.0), kappa=8, num_patches=patches.shape[0],
                            em_iters=2, first_steps=30, steps=20)
    return prior.train_prior(patches, ARCH, cfg, name="hier-tiny", modality="audio", rate=12.0,
                             units=units, group=(3,), progress=False, log=lambda *_: None)


def test_units_of_a_grid_of_patches():
    u = hierarchy.units((7,), (3,))
    assert u.num_patches == 7 and u.num_units == 7 + 3 + 1
    np.testing.assert_array_equal(u.parents[:, 0], np.arange(7))
    np.testing.assert_array_equal(u.parents[:, 1], 7 + np.array([0, 0, 0, 1, 1, 1, 2]))  # last one partial
    assert np.all(u.parents[:, 2] == 10) and u.level.tolist() == [0] * 7 + [1] * 3 + [2]
    # 2-D: groups of 2x2 patches on a 3x5 grid (row-major patches, as data.to_patches cuts them)
    gid, ng = hierarchy.group_of((3, 5), (2, 2))
    assert ng == 6
    np.testing.assert_array_equal(gid.reshape(3, 5), [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]])
    # shared latents learn at 1 / (patches under them): 1 for a patch, 1/3 (1/1 for the partial
    # group), 1/7 for the signal
    np.testing.assert_allclose(u.lr_scale(), [1] * 7 + [1 / 3, 1 / 3, 1, 1 / 7], rtol=1e-6)
    s = hierarchy.stack([hierarchy.units((4,), (2,))] * 2)
    assert s.num_units == 14 and s.signal.tolist() == [0] * 7 + [1] * 7
    np.testing.assert_array_equal(s.parents[4:], [[7, 11, 13], [8, 11, 13], [9, 12, 13], [10, 12, 13]])
    with pytest.raises(ValueError, match="group"):
        hierarchy.group_of((4,), (2, 2))


def test_training_signals_are_whole_windows():
    grids = [np.arange(1000, dtype=np.float32)[:, None], np.arange(450, dtype=np.float32)[:, None]]
    patches, units = prior.training_signals(grids, (200,), (100,), (2,), 6, seed=1)
    assert patches.shape == (12, 100, 1) and units.num_units == 6 * (2 + 1 + 1)
    starts = patches[::2, 0, 0]  # each window's first sample: a multiple of 200 within its file
    assert np.all(starts % 200 == 0)
    with pytest.raises(ValueError, match="only 7 windows"):
        prior.training_signals(grids, (200,), (100,), (2,), 8, seed=1)
    with pytest.raises(ValueError, match="whole patches"):
        prior.training_signals(grids, (250,), (100,), (2,), 2, seed=1)


def test_the_patch_posterior_is_the_sum_of_its_units():
    """With the group and signal units fixed at 0, the hierarchical loss is the patches' own;
    the signal unit's gradient is the sum of the patches' gradients."""
    layout = prior.layout_of(ARCH)
    cfg = FitConfig()
    units = hierarchy.units((4,), (2,))
    targets = jnp.asarray(data.to_patches(_wave(400, 1) * 0.5, ARCH.patch_shape))
    m0, _ = prior.init_posterior(ARCH, jax.random.key(0))
    d = layout.size
    rng = np.random.default_rng(0)
    mean_p = jnp.asarray(m0 + 0.01 * rng.normal(size=(4, d)), jnp.float32)
    rho_p = jnp.full((4, d), -4.0)
    ps = jnp.full((d,), 0.1)
    flat = Problem(targets, m0, ps, jnp.zeros(d, jnp.int32), jnp.asarray([1e9]))
    step = make_step(ARCH, layout, cfg)
    flat_state = init_state(mean_p, rho_p, jnp.zeros((4, 1)), cfg, mix=prior.init_mix(ARCH))
    _, (mse_flat, _) = step(flat_state, flat, jax.random.key(5))
    mean_u = jnp.concatenate([mean_p, jnp.zeros((3, d))])
    rho_u = jnp.concatenate([rho_p, jnp.full((3, d), -4.0)])
    frozen = jnp.concatenate([jnp.zeros((4, d), bool), jnp.ones((3, d), bool)])
    zeros = jnp.zeros((7, d), jnp.int32)
    hier = Problem(targets, jnp.broadcast_to(m0, (7, d)), jnp.broadcast_to(ps, (7, d)), zeros,
                   jnp.asarray([1e9]), zeros, jnp.asarray(units.parents))
    hier_state = init_state(mean_u, rho_u, jnp.zeros((1, 1)), cfg, frozen=frozen, mix=prior.init_mix(ARCH))
    _, (mse_hier, _) = step(hier_state, hier, jax.random.key(5))
    np.testing.assert_allclose(np.asarray(mse_hier), np.asarray(mse_flat), rtol=1e-5)
    # gradients: the signal unit's is the sum over all patches, a group's over its two patches
    from jrec_inr.fit import _hierarchical_loss, _patch_mse, losses
    beta = jnp.zeros((7, d))
    keys = jax.random.split(jax.random.key(9), 4)
    mix = jnp.asarray(prior.init_mix(ARCH))
    g_h = jax.grad(lambda m: _hierarchical_loss(_patch_mse(ARCH, layout, cfg), 100)(
        m, rho_u, jnp.zeros((7, d), bool), beta, targets, keys, hier, mix)[0])(mean_u)
    patch_loss = losses(ARCH, layout, cfg)
    sp = jax.nn.softplus
    rho_eff = inverse_softplus(jnp.sqrt(jnp.square(sp(rho_p)) + 2 * jnp.square(sp(-4.0))))
    no = jnp.zeros(d, bool)
    g_p = jax.vmap(jax.grad(lambda m, r, t, k: patch_loss(m, r, no, jnp.zeros(d), t, k, flat, mix)[0]))(
        mean_p, rho_eff, targets, keys)
    np.testing.assert_allclose(np.asarray(g_h[:4]), np.asarray(g_p), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(g_h[6]), np.asarray(g_p.sum(0)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g_h[4]), np.asarray(g_p[:2].sum(0)), rtol=1e-4, atol=1e-6)


def test_em_learns_one_prior_per_level_and_the_file_keeps_it(hier_model, tmp_path):
    m = hier_model
    assert m.upper is not None and m.upper.group == (3,)
    assert [L.level for L in m.levels()] == [hierarchy.SIGNAL, hierarchy.GROUP, hierarchy.PATCH]
    bg, bs = m.upper.num_blocks
    assert m.total_blocks == m.num_blocks + bg + bs
    firsts = {L.level: L.first_block for L in m.levels()}
    assert firsts == {hierarchy.PATCH: 0, hierarchy.GROUP: m.num_blocks, hierarchy.SIGNAL: m.num_blocks + bg}
    assert not np.allclose(m.upper.prior_std[0], m.prior_std)  # each level's own M-step
    assert set(m.recipe["avg_kl_bits_per_unit"]) == {"patch", "group", "signal"}
    path = tmp_path / "h.npz"
    prior.save_model(path, m)
    back = prior.load_model(path)
    assert back.digest() == m.digest() and back.upper.group == (3,)
    np.testing.assert_array_equal(back.upper.block, m.upper.block)
    flat = m._replace(upper=None)
    assert flat.digest() != m.digest() and "group" not in flat.fingerprint_parts()
    z = dict(np.load(path))
    z["up_block"] = z["up_block"][:, :-1]
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(prior.ModelError, match="hierarchical"):
        prior.load_model(tmp_path / "bad.npz")


def test_hierarchical_coding_round_trip(hier_model):
    x = _wave(1100, 7)  # 11 patches: groups of 3, the last one partial
    sig = Signal(x, {"sample_rate": 8000})
    res = codec.compress(sig, hier_model, QUICK, progress=False)
    st = res.stats
    assert st["units"] == {"patch": 11, "group": 4, "signal": 1}
    bg, bs = hier_model.upper.num_blocks
    n_index = bs + 4 * bg + 11 * hier_model.num_blocks
    assert st["blocks"] == hier_model.total_blocks and st["weights_max_abs_diff_encoder_decoder"] == 0.0
    assert jrec.bitstream.read_header(res.data).shapes == ((n_index,),)
    assert st["rate"] == pytest.approx(8 * len(res.data) / (1100 / 8000) / 1000)
    assert 8 * len(res.data) >= n_index * hier_model.kappa  # every unit's blocks are in the file
    out = codec.decompress(res.data, hier_model)
    np.testing.assert_array_equal(out.values, res.signal.values)  # bit for bit
    # the decoder's patch weights are the sums of its units'
    grid, units_w = codec._decode_grid(hier_model, 0, jrec.from_bytes(
        res.data, key=jax.random.key(0), proposal=None, model=hier_model.fingerprint_parts(), method="orc",
        kappa=hier_model.kappa).index, (1100,))
    assert units_w.shape == (16, hier_model.num_weights)
    # a model without the hierarchy (or another group shape) refuses the file
    regrouped = hier_model._replace(upper=hier_model.upper._replace(group=(2,)))
    for other in (hier_model._replace(upper=None), regrouped):
        with pytest.raises(jrec.ModelMismatchError):
            codec.decompress(res.data, other)


def test_hierarchical_levels_carry_the_shared_part():
    """On signals whose patches share most of their content, the group and signal levels
    carry bits per unit, and a coded signal's PSNR is finite and its index count right."""
    grids = [audio.AUDIO.normalise(Signal(np.tile(_wave(100, 3), (24, 1)) + 0.01 * _wave(2400, s),
                                          {"sample_rate": 8000}))[0] for s in range(3)]
    patches, units = prior.training_signals(grids, (1200,), ARCH.patch_shape, (4,), 6, seed=0)
    cfg = prior.TrainConfig(bpp=audio.AUDIO.bits_per_point(6.0), kappa=8, num_patches=patches.shape[0],
                            em_iters=2, first_steps=60, steps=40)
    m = prior.train_prior(patches, ARCH, cfg, name="shared", modality="audio", rate=6.0, units=units,
                          group=(4,), progress=False, log=lambda *_: None)
    kl = m.recipe["avg_kl_bits_per_unit"]
    # a unit of the signal level is worth more bits than one patch's own latent
    assert kl["signal"] > kl["patch"]
    assert math.isfinite(m.recipe["avg_kl_bits_per_patch"])


def test_cli_hierarchy_options_go_together(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, _wave(4000, 1)[:, 0], 8000, subtype="PCM_16")
    base = ["train-prior", "--modality", "audio", "--rate", "8", "--files", str(wav), "--patch", "100",
            "--out", str(tmp_path / "m.npz")]
    with pytest.raises(SystemExit, match="--group, --window and --num-signals"):
        cli.main(base + ["--group", "4"])
    with pytest.raises(SystemExit, match="--group"):
        cli.main(base + ["--group", "4x4", "--window", "800", "--num-signals", "2"])
    assert not (tmp_path / "m.npz").exists()
    code = cli.main(base + ["--hidden", "8", "--depth", "2", "--num-freqs", "2", "--group", "2",
                            "--window", "800", "--num-signals", "3", "--em-iters", "1", "--first-steps", "10",
                            "--steps", "10", "--quiet", "--kappa", "8"])
    assert code == 0
    m = prior.load_model(tmp_path / "m.npz")
    assert m.upper.group == (2,) and m.recipe["num_training_signals"] == 3


def test_a_hierarchical_model_is_chosen_before_a_flat_one_of_the_same_rate(hier_model, monkeypatch):
    flat = hier_model._replace(name="flat-12", upper=None)
    other = hier_model._replace(name="hier-24", rate=24.0)
    monkeypatch.setattr(codec, "_BUNDLED", {"flat-12": flat, "hier-tiny": hier_model, "hier-24": other})
    assert codec.select_model(12.0, "audio").name == "hier-tiny"
    assert codec.select_model(13.0, "audio").name == "hier-tiny"
    assert codec.select_model(22.0, "audio").name == "hier-24"  # the nearest rate first
    monkeypatch.setattr(codec, "_BUNDLED", {"flat-12": flat, "hier-24": other})
    assert codec.select_model(12.5, "audio").name == "flat-12"


def test_cli_codes_with_a_hierarchical_model(hier_model, tmp_path, capsys):
    import soundfile as sf

    wav, mpath = tmp_path / "in.wav", tmp_path / "h.npz"
    sf.write(wav, _wave(900, 4)[:, 0], 8000, subtype="PCM_16")
    prior.save_model(mpath, hier_model)
    assert cli.main(["compress", str(wav), str(tmp_path / "x.jrec"), "--model", str(mpath), "--steps", "20",
                     "--finetune-steps", "1", "--quiet"]) == 0
    bg, bs = hier_model.upper.num_blocks
    out = capsys.readouterr().out
    assert f"1 x {bs} signal + 3 x {bg} group + 9 x {hier_model.num_blocks} patch blocks" in out
    args = ["decompress", str(tmp_path / "x.jrec"), str(tmp_path / "out.wav"), "--model", str(mpath)]
    assert cli.main(args) == 0
    assert sf.read(tmp_path / "out.wav")[0].shape == (900,)
