"""jrec_inr beyond images: rank-generic building blocks, audio and protein round trips through
real files, the INR2 metadata, the old image files, and every bad input of the issue."""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import jrec
from jrec_inr import cli, codec, data, modalities, prior, rd
from jrec_inr.fit import pixel_sampler
from jrec_inr.modalities import Signal, SignalError, audio, protein
from jrec_inr.model import Arch, grid_features, patch_coords

HERE = os.path.dirname(__file__)
GOLDEN = os.path.join(HERE, "data", "golden_image_v1")
pytestmark = pytest.mark.xdist_group("modalities")

AUDIO_ARCH = Arch(hidden=8, depth=2, num_freqs=4, patch=(200,), channels=1, linear=True)
PROT_ARCH = Arch(hidden=8, depth=2, num_freqs=4, patch=(32,), channels=3, linear=True)
QUICK = codec.CodecConfig(fit_steps=40, finetune_steps=1, chunk=40)
_quiet = dict(progress=False, log=lambda *_: None)


# -- rank-generic building blocks -------------------------------------------------------------


@pytest.mark.parametrize("shape,patch",
                         [((1000, 2), (300,)), ((23, 41, 3), 16), ((5, 33, 17, 3), (2, 16, 8))])
def test_patches_round_trip_any_rank(shape, patch):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    p = data.to_patches(x, patch)
    sides = data.patch_shape(patch, x.ndim - 1)
    assert p.shape == (math.prod(data.grid(shape, patch)), math.prod(sides), shape[-1])
    np.testing.assert_array_equal(data.from_patches(p, shape, patch), x)


def test_image_patches_keep_their_layout():
    # the rank-generic code cuts images exactly as the image-only codec did (row-major patches,
    # row-major pixels, edge padding): old files depend on it
    x = np.random.default_rng(1).random((70, 130, 3)).astype(np.float32)
    rows, cols = -(-70 // 64), -(-130 // 64)
    padded = np.pad(x, ((0, rows * 64 - 70), (0, cols * 64 - 130), (0, 0)), mode="edge")
    old = padded.reshape(rows, 64, cols, 64, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, 4096, 3)
    np.testing.assert_array_equal(data.to_patches(x, 64), old)


@pytest.mark.parametrize("patch,num", [((800,), 200), ((24, 16, 16), 768), (64, 1024), ((96,), 96)])
def test_stratified_sampler_draws_one_point_per_cell(patch, num):
    draw = jax.jit(pixel_sampler(patch, num, True))
    shape = data.patch_shape(patch)
    n = math.prod(shape)
    for seed in range(3):
        idx = np.asarray(draw(jax.random.key(seed)))
        assert idx.shape == (num,) and idx.min() >= 0 and idx.max() < n
        assert len(set(idx.tolist())) == num  # cells are disjoint
    if len(shape) == 1:  # runs of n / num consecutive samples
        assert np.array_equal(idx // (n // num), np.arange(num))


def test_coordinates_and_grids_of_any_rank():
    c = np.asarray(patch_coords((4,)))
    np.testing.assert_allclose(c[:, 0], [-0.75, -0.25, 0.25, 0.75])
    assert patch_coords((2, 3, 5)).shape == (30, 3)
    np.testing.assert_array_equal(patch_coords(8), patch_coords((8, 8)))
    rng = np.random.default_rng(2)
    for d in (1, 2, 3):
        g = rng.normal(size=(3,) * d + (2,)).astype(np.float32)
        nodes = np.stack(np.meshgrid(*[np.linspace(-1, 1, 3)] * d, indexing="ij"), -1).reshape(-1, d)
        np.testing.assert_allclose(grid_features(g, nodes.astype(np.float32)), g.reshape(-1, 2), atol=1e-6)
        # halfway between two nodes along the first axis: their mean
        mid = np.zeros((1, d), np.float32)
        mid[0, 0] = -0.5
        idx0, idx1 = (0,) + (1,) * (d - 1), (1,) * d
        np.testing.assert_allclose(grid_features(g, mid)[0], 0.5 * (g[idx0] + g[idx1]), atol=1e-6)
    assert Arch(patch=(800,), num_freqs=8, channels=1).check().num_inputs == 17
    with pytest.raises(ValueError, match="patch"):
        Arch(patch=[800]).check()


# -- old image files -------------------------------------------------------------------------


def test_image_files_of_the_image_only_codec_still_decode_bit_for_bit():
    with open(GOLDEN + ".jrec", "rb") as f:
        blob = f.read()
    assert blob.find(b"INR1") >= 0
    img, info = codec.decompress(blob)  # the bundled bpp0.3 model named in the file
    assert info["modality"] == "image" and info["shape"] == (64, 128) and info["model"] == "bpp0.3"
    np.testing.assert_array_equal(img, np.asarray(Image.open(GOLDEN + ".png")))


# -- fixtures ----------------------------------------------------------------------------------


def _tiny_model(mod_name, arch, grids, rate, name):
    mod = modalities.get(mod_name)
    patches = prior.training_patches(None, arch.patch_shape, 12, 0, grids=grids)
    cfg = prior.TrainConfig(bpp=mod.bits_per_point(rate), kappa=8, num_patches=12, em_iters=1,
                            first_steps=30, steps=20)
    return prior.train_prior(patches, arch, cfg, name=name, modality=mod_name, rate=rate, **_quiet)


def _speech_like(seconds=0.3, sr=8000, channels=1, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    chans = [0.3 * np.sin(2 * np.pi * (180 + 40 * c) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
             + 0.02 * rng.normal(size=t.size) for c in range(channels)]
    return np.clip(np.stack(chans, -1), -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def audio_model():
    grids = [audio.AUDIO.normalise(Signal(_speech_like(0.4, seed=s), {"sample_rate": 8000}))[0]
             for s in range(3)]
    return _tiny_model("audio", AUDIO_ARCH, grids, 24.0, "audio-tiny")


def _helix(n, seed=0):
    """A C-alpha trace shaped like an alpha helix (1.5 A rise, 2.3 A radius, 3.6 residues a turn)."""
    i = np.arange(n)
    rng = np.random.default_rng(seed)
    xyz = np.stack([2.3 * np.cos(2 * np.pi * i / 3.6), 2.3 * np.sin(2 * np.pi * i / 3.6), 1.5 * i], -1)
    return (xyz + rng.normal(scale=0.3, size=xyz.shape) + [10.0, -4.0, 7.0]).astype(np.float32)


def _write_pdb(path, xyz, names=None, ids=None, ins=None, chain="A", extra_lines=()):
    n = xyz.shape[0]
    names = names or ["ALA"] * n
    ids = list(range(1, n + 1)) if ids is None else ids
    ins = ins or [""] * n
    lines = []
    for k in range(n):
        x, y, z = xyz[k]
        lines.append(f"ATOM  {k + 1:5d}  CA  {names[k]:>3s} {chain}{ids[k]:4d}{ins[k] or ' ':1s}   "
                     f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C  ")
    with open(path, "w") as f:
        f.write("\n".join(list(extra_lines) + lines + ["END", ""]))


@pytest.fixture(scope="module")
def protein_model():
    grids = [g for s in range(3)
             for g in protein.PROTEIN.training_grids(Signal(_helix(64, s), {}), PROT_ARCH)]
    return _tiny_model("protein", PROT_ARCH, grids, 40.0, "protein-tiny")


# -- audio ---------------------------------------------------------------------------------------


def test_audio_round_trip_through_files(audio_model, tmp_path):
    wav = tmp_path / "in.wav"
    sf.write(wav, _speech_like(0.3, seed=7), 8000, subtype="PCM_16")
    mod = modalities.for_path(wav)
    assert mod.name == "audio"
    sig = mod.read(wav)
    assert sig.values.shape == (2400, 1) and sig.info["sample_rate"] == 8000
    res = codec.compress(sig, audio_model, QUICK, progress=False)
    # rate from the real file size
    assert res.stats["rate"] == pytest.approx(8 * len(res.data) / 0.3 / 1000)
    assert res.stats["unit"] == "kbps" and res.signal.values.dtype == np.int16
    out = codec.decompress(res.data, audio_model)
    np.testing.assert_array_equal(out.values, res.signal.values)  # the decoder's output, bit for bit
    assert out.info["sample_rate"] == 8000 and out.info["modality"] == "audio"
    # the metric against an independent computation on the [0, 1] scale
    ref01 = (sf.read(wav, dtype="float64")[0] + 1) / 2
    dec01 = (out.values[:, 0].astype(np.float64) / 32768 + 1) / 2
    assert res.stats["psnr"] == pytest.approx(20 * math.log10(1 / math.sqrt(np.mean((ref01 - dec01) ** 2))))
    for suffix in ("flac", "wav"):  # what the decoder writes reads back to the same samples
        mod.write(tmp_path / f"out.{suffix}", out)
        back, sr = sf.read(tmp_path / f"out.{suffix}", dtype="int16", always_2d=True)
        assert sr == 8000
        np.testing.assert_array_equal(back, out.values)


def test_stereo_audio_with_a_mono_model_codes_channel_after_channel(audio_model):
    x = _speech_like(0.25, channels=2, seed=3)
    sig = Signal(x, {"sample_rate": 8000})
    res = codec.compress(sig, audio_model, QUICK, progress=False)
    assert res.stats["patches"] == 2 * math.ceil(2000 / 200)
    out = codec.decompress(res.data, audio_model)
    assert out.values.shape == (2000, 2)
    np.testing.assert_array_equal(out.values, res.signal.values)
    # each channel is reconstructed, not swapped or interleaved
    err = [np.mean((out.values[:, c] / 32768 - x[:, c]) ** 2) for c in range(2)]
    swapped = [np.mean((out.values[:, 1 - c] / 32768 - x[:, c]) ** 2) for c in range(2)]
    assert max(err) < min(swapped)


def test_audio_window_options(tmp_path):
    wav = tmp_path / "long.wav"
    x = _speech_like(1.0, seed=4)
    sf.write(wav, x, 8000, subtype="PCM_16")
    sig = audio.AUDIO.read(wav, start=0.25, duration=0.5)
    ref = sf.read(wav, dtype="float32", always_2d=True)[0][2000:6000]
    np.testing.assert_array_equal(sig.values, ref)
    with pytest.raises(SignalError, match="asked for"):
        audio.AUDIO.read(wav, start=0.8, duration=0.5)


@pytest.mark.parametrize("log_scale", [False, True])
def test_matched_rate_search_returns_the_best_point_at_most_the_target(log_scale):
    calls = []

    def encode(setting):  # a codec whose real rate steps with its setting (not monotone-smooth)
        calls.append(setting)
        return {"setting": setting, "rate": math.floor(setting) + 0.5}

    best, points = modalities.best_at_most(encode, lambda p: p["rate"], 37.2, 1.0, 100.0, iters=12,
                                           log_scale=log_scale)
    assert best["rate"] == 36.5 and len(points) == 13 and calls[0] == 1.0
    assert best is max((p for p in points if p["rate"] <= 37.2), key=lambda p: p["rate"])
    best, points = modalities.best_at_most(encode, lambda p: p["rate"], 0.9, 1.0, 100.0, iters=12)
    assert best["rate"] == 1.5 and len(points) == 1  # even the cheapest is above: one encoding
    # a setting whose rate falls as it grows (a CRF, a quantisation step), midpoints rounded
    best, points = modalities.best_at_most(lambda c: {"crf": c}, lambda p: 100 - p["crf"], 50, 80.0, 10.0,
                                           iters=3, digits=1)
    assert [p["crf"] for p in points] == [80.0, 45.0, 62.5, 53.8] and best["crf"] == 53.8


def test_audio_baselines_measure_real_codecs():
    sig = Signal(_speech_like(1.0, sr=16000, seed=5), {"sample_rate": 16000})
    mp3 = audio.match_rate(sig, "mp3", 33.0)
    assert mp3["kbps"] <= 33.0 and mp3["psnr"] > 30 and not mp3["above_target"]
    nxt = audio.MP3_BITRATES[audio.MP3_BITRATES.index(mp3["setting"]) + 1]
    assert audio.baseline_point(sig, "mp3", nxt)["kbps"] > 33.0  # the best bit rate within the target
    opus = audio.match_rate(sig, "opus", 16.0)
    assert opus["kbps"] <= 16.0 and opus["psnr"] > 25


# -- protein -------------------------------------------------------------------------------------


def test_protein_round_trip_through_pdb_files(protein_model, tmp_path):
    xyz = _helix(40, seed=9)
    names = ["MET", "ALA", "GLY"] + ["LEU"] * 34 + ["HYP", "SER", "ALA"]  # one non-standard residue
    ids = list(range(5, 25)) + [25, 25] + list(range(30, 48))  # an insertion code and a gap
    ins = [""] * 21 + ["A"] + [""] * 18
    path = tmp_path / "helix.pdb"
    _write_pdb(path, xyz, names, ids, ins, chain="B")
    sig = modalities.for_path(path).read(path)
    assert sig.info["chain"] == "B" and sig.values.shape == (40, 3)
    res = codec.compress(sig, protein_model, QUICK, progress=False)
    assert res.stats["rate"] == pytest.approx(8 * len(res.data) / 40)
    out = codec.decompress(res.data, protein_model)
    np.testing.assert_array_equal(out.values, res.signal.values)
    assert out.info["res_names"] == names and list(out.info["res_ids"]) == ids
    assert out.info["ins_codes"] == ins and out.info["chain"] == "B"
    # RMSD without superposition, independently
    ref = np.round(xyz.astype(np.float64), 3)  # what the PDB file holds
    rmsd = math.sqrt(np.mean(np.sum((out.values.astype(np.float64) - ref) ** 2, axis=1)))
    assert res.stats["rmsd"] == pytest.approx(rmsd, rel=1e-5)
    out_path = tmp_path / "out.pdb"
    protein.PROTEIN.write(out_path, out)
    back = protein.PROTEIN.read(out_path)  # a valid PDB file that reads back exactly
    np.testing.assert_array_equal(back.values, out.values)
    assert back.info["res_names"] == names and list(back.info["res_ids"]) == ids


def test_residue_table_packs_names_numbers_and_insertions():
    names = ["ALA", "XYZ", "GLY", "TRP"]
    packed = protein.pack_residues("C", names, [-3, -2, 7, 7], ["", "", "", "B"])
    chain, n2, ids, ins, end = protein.unpack_residues(packed, 4)
    assert (chain, n2, ids.tolist(), ins, end) == ("C", names, [-3, -2, 7, 7], ["", "", "", "B"], len(packed))
    plain = protein.pack_residues("A", ["ALA"] * 96, range(1, 97), [""] * 96)
    assert len(plain) <= 2 + 60 + 1 + 1  # chain, 5 bits a residue, flags, first number


def test_protein_chain_and_residue_options(tmp_path):
    path = tmp_path / "two.pdb"
    a, b = _helix(10), _helix(12, seed=1)
    _write_pdb(path, a, chain="A")
    with open(path) as f:
        text = f.read().replace("END\n", "")
    _write_pdb(tmp_path / "b.pdb", b, chain="B")
    with open(tmp_path / "b.pdb") as f:
        text += f.read()
    with open(path, "w") as f:
        f.write(text)
    assert protein.PROTEIN.read(path).info["chain"] == "A"
    sig = protein.PROTEIN.read(path, chain="B", residues=5)
    np.testing.assert_allclose(sig.values, np.round(b[:5], 3), atol=1e-3)
    with pytest.raises(SignalError, match="no protein chain 'Z'.*A, B"):
        protein.PROTEIN.read(path, chain="Z")
    with pytest.raises(SignalError, match="12 residues, 50 asked"):
        protein.PROTEIN.read(path, chain="B", residues=50)


def test_protein_baseline_is_a_real_quantiser():
    sig = Signal(_helix(96), {})
    p = protein.quantised_baseline(sig, 0.1, "xz")
    assert p["rmsd"] <= 0.1 * math.sqrt(3 / 12) * 1.2  # uniform quantisation error of step 0.1
    m = protein.match_rate(sig, "xz", 30.0)
    assert m["bits/residue"] <= 30.0 and not m["above_target"]
    finer = protein.match_rate(sig, "xz", 45.0)
    assert finer["rmsd"] < m["rmsd"]


# -- files, models and bad input -------------------------------------------------------------------


def test_model_files_keep_modality_rate_and_patch_shape(protein_model, tmp_path):
    path = tmp_path / "p.npz"
    prior.save_model(path, protein_model)
    back = prior.load_model(path)
    assert back.modality == "protein" and back.rate == 40.0 and back.arch.patch == (32,)
    assert back.digest() == protein_model.digest()


def test_a_file_of_another_modality_or_model_is_refused(audio_model, protein_model):
    res = codec.compress(Signal(_helix(40), {}), protein_model, QUICK, progress=False)
    with pytest.raises(jrec.ModelMismatchError, match="codes protein.*codes audio"):
        codec.decompress(res.data, audio_model)
    image_model = codec.select_model(0.3)
    with pytest.raises(jrec.ModelMismatchError):
        codec.decompress(res.data, image_model)
    meta = codec.read_meta(res.data)
    assert meta["modality"] == "protein" and meta["shape"] == (40,) and meta["channels"] == 3
    for cut in (1, 9, len(res.data) // 2):  # truncated anywhere: an error, never a wrong structure
        with pytest.raises((jrec.JrecError, codec.CodecError)):
            codec.decompress(res.data[:-cut], protein_model)


def test_unserved_rates_and_modalities_are_clear_errors():
    with pytest.raises(codec.CodecError, match="unsupported rate 1000 kbps"):
        codec.select_model(1000.0, "audio")
    with pytest.raises(SignalError, match="unknown modality"):
        modalities.get("smell")
    with pytest.raises(SignalError, match="suffix"):
        modalities.for_path("x.xyz")


def _bad_audio_files(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 8000)
    good = tmp_path / "good.flac"
    sf.write(good, _speech_like(0.5), 8000, subtype="PCM_16")
    trunc = tmp_path / "trunc.flac"
    with open(good, "rb") as f:
        blob = f.read()
    with open(trunc, "wb") as f:
        f.write(blob[: len(blob) // 2])
    junk = tmp_path / "junk.flac"
    with open(junk, "wb") as f:
        f.write(b"this is not audio at all" * 10)
    return {"empty": empty, "truncated": trunc, "junk": junk, "missing": tmp_path / "none.flac"}


def test_bad_audio_is_refused(tmp_path):
    for what, path in _bad_audio_files(tmp_path).items():
        with pytest.raises(SignalError):
            audio.AUDIO.read(path)
        assert what


def _bad_structures(tmp_path):
    no_ca = tmp_path / "noca.pdb"
    with open(no_ca, "w") as f:
        f.write("ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N  \nEND\n")
    water = tmp_path / "water.pdb"
    with open(water, "w") as f:
        f.write("HETATM    1  O   HOH W   1      11.104   6.134  -6.504  1.00  0.00           O  \nEND\n")
    nan = tmp_path / "nan.pdb"
    _write_pdb(nan, _helix(5))
    with open(nan) as f:
        lines = f.read().splitlines()
    lines[2] = lines[2][:30] + f"{'nan':>8s}" + lines[2][38:]
    with open(nan, "w") as f:
        f.write("\n".join(lines) + "\n")
    junk = tmp_path / "junk.cif"
    with open(junk, "w") as f:
        f.write("data_x\n_garbage 1\n")
    return {"no C-alpha": no_ca, "no protein chain": water, "NaN": nan, "unreadable": junk}


def test_bad_structures_are_refused(tmp_path):
    for what, path in _bad_structures(tmp_path).items():
        with pytest.raises(SignalError, match="C-alpha|NaN|not a readable|no atoms|protein chain"):
            protein.PROTEIN.read(path)
        assert what


def test_cli_round_trip_and_errors_write_nothing(audio_model, tmp_path, capsys):
    mpath = tmp_path / "audio.npz"
    prior.save_model(mpath, audio_model)
    wav = tmp_path / "x.wav"
    sf.write(wav, _speech_like(0.2, seed=11), 8000, subtype="PCM_16")
    out = tmp_path / "x.jrec"
    args = [str(wav), str(out), "--model", str(mpath), "--steps", "20", "--finetune-steps", "0", "--quiet"]
    assert cli.main(["compress", *args, "--recon", str(tmp_path / "r.flac")]) == 0
    assert cli.main(["decompress", str(out), str(tmp_path / "d.wav"), "--model", str(mpath)]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "d.wav", dtype="int16")[0],
                                  sf.read(tmp_path / "r.flac", dtype="int16")[0])
    # wrong kind of output file, bad inputs, an unserved rate: exit 2, one line, nothing written
    before = set(os.listdir(tmp_path))
    assert cli.main(["decompress", str(out), str(tmp_path / "d.png"), "--model", str(mpath)]) == 2
    for path in _bad_audio_files(tmp_path).values():
        before = set(os.listdir(tmp_path))
        assert cli.main(["compress", str(path), str(tmp_path / "bad.jrec"), "--model", str(mpath)]) == 2
        assert "bad.jrec" not in os.listdir(tmp_path) and set(os.listdir(tmp_path)) == before
    for path in _bad_structures(tmp_path).values():
        assert cli.main(["compress", str(path), str(tmp_path / "bad.jrec"), "--rate", "35"]) == 2
    assert cli.main(["compress", str(wav), str(tmp_path / "bad.jrec"), "--rate", "1000"]) == 2
    assert "bad.jrec" not in os.listdir(tmp_path) and not os.path.exists(tmp_path / "d.png")
    err = capsys.readouterr().err
    assert "write it to a .flac or .wav file" in err and "unsupported rate 1000 kbps" in err


def test_rd_harness_checks_the_decoder_and_writes_json(protein_model, tmp_path):
    paths = []
    for s in range(2):
        p = tmp_path / f"s{s}.pdb"
        _write_pdb(p, _helix(40, seed=20 + s))
        paths.append(str(p))
    out = tmp_path / "rd.json"
    res = rd.evaluate_files(paths, [40.0], "protein", cfg=QUICK, models={40.0: protein_model},
                            out=str(out), plot_path=str(tmp_path / "rd.png"), log=lambda *_: None)
    assert res["results"]["num_files"] == [2] and res["unit"] == "bits/residue"
    rows = json.loads(out.read_text())["per_file"]
    assert {r["file"] for r in rows} == {"s0.pdb", "s1.pdb"}
    for r in rows:
        assert r["rate_without_residue_table"] < r["rate"]
        assert r["rmsd"] > 0
    assert {b["codec"] for b in res["baselines_per_file"]} == {"quantise+xz", "quantise+zstd"}
    assert os.path.getsize(tmp_path / "rd.png") > 1000


def test_bundled_audio_protein_and_video_models_never_saw_the_files_they_report():
    import sys

    sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
    try:
        import rd_modality
    finally:
        sys.path.pop(0)
    models = [prior.load_model(p) for p in prior.bundled_models().values()]
    for kind, rates in {"audio": (5, 10, 20), "protein": (12, 35, 60), "video": (0.1, 0.25, 0.6)}.items():
        ms = sorted((m for m in models if m.modality == kind), key=lambda m: m.nominal_rate)
        assert [m.nominal_rate for m in ms] == pytest.approx(rates), kind
        held_out = {os.path.basename(f) for f in rd_modality.HELD_OUT[kind]}
        for m in ms:
            assert m.recipe["command"].startswith("jrec-inr train-prior") and m.recipe["files"]
            assert not set(m.recipe["files"]) & held_out, (m.name, set(m.recipe["files"]) & held_out)
            assert codec.select_model(m.nominal_rate, kind).name == m.name


def test_encoder_defaults_per_modality():
    assert codec.default_config("image") == codec.CodecConfig()
    assert codec.default_config("audio") == codec.CodecConfig()
    p = codec.default_config("protein")
    assert (p.fit_steps, p.finetune_steps) == (10000, 30)
    assert p._replace(fit_steps=3000, finetune_steps=12) == codec.CodecConfig()
