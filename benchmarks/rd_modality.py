"""Rate-distortion of the INR codec on audio (LibriSpeech), protein structures or video (JSON + PNG).

    python benchmarks/rd_modality.py audio   [--rates 5 10 20] [--files ...] [--steps N] ...
    python benchmarks/rd_modality.py protein [--rates 12 35 60] [--files ...] [--steps N] ...
    python benchmarks/rd_modality.py video   [--rates 0.1 0.25 0.6] [--files ...] [--steps N] ...

RECOMBINER's protocols (He et al., ICLR 2024, appendix C; ``../shared/DESIGN.md``):

* audio: the first 3 s (48,000 samples at 16 kHz) of each clip, PSNR = 20 log10(1 / RMSE)
  of the waveform mapped from [-1, 1] to [0, 1], kbps from the real ``.jrec`` size;
  baselines MP3 (LAME) and Opus at the matched rate, on the same 3 s.
* protein: the C-alpha atoms of the first 96 residues of the first protein chain, RMSD in
  angstrom without superposition, bits per residue from the real file size (and without
  the residue table, which the baselines and RECOMBINER do not carry); baselines:
  fixed-step quantisation + xz / zstd at the coordinates' rate.
* video: the first 24 frames, centre crop 240 x 240 (the largest centred square for clips
  of fewer than 240 rows: Carphone is 176 x 144), resized to 128 x 128; PSNR from one MSE
  over the clip on 8 bits, bits per frame pixel from the real file size; baselines H.264
  and H.265 (medium and veryslow presets) at the matched bpp on the same frames.

Every file is coded with the bundled model of each rate, which never saw it: the default
files are the held-out sets named in ``jrec_inr/models/README.md`` (:data:`HELD_OUT`).
Each ``.jrec`` is written, read back and decoded, and the decoder's output must equal the
encoder's reconstruction. Resumable (rows of the same model and encoder settings are
kept); ``--time-budget`` stops starting new files. Writes
``benchmarks/results/rd_<modality>.json`` and ``.png`` with the published curves.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

from jrec_inr import cli, rd

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")

#: Files no bundled model saw (the models README names the training files).
HELD_OUT = {
    "audio": [f"librispeech/{n}.flac" for n in (  # (ordered so that any first few span the speakers)
        "367-130732-0001", "533-1066-0001", "2033-164914-0000", "2609-156975-0000", "3080-5032-0000",
        "367-130732-0004", "533-1066-0002", "2033-164914-0001", "2609-156975-0001", "3080-5032-0001",
        "367-130732-0007", "533-1066-0003")],
    "protein": [f"protein/{n}.pdb" for n in (
        "1AQT_A", "1aki", "1FB0_A", "1dix", "1JL3_A", "3o5r", "1UNQ_A", "2H3L_A", "2PPN_A", "2ZXJ_A",
        "3GQS_A", "3JVL_A")],
    # test.avi is the UCF-101 clip (v_ApplyEyeMakeup_g01_c01) of RECOMBINER's protocol
    "video": [f"video/{n}" for n in ("test.avi", "test_video_structuralize.mp4", "carphone_pristine.mp4")],
}
DEFAULT_RATES = {"audio": [5.0, 10.0, 20.0], "protein": [12.0, 35.0, 60.0], "video": [0.1, 0.25, 0.6]}
PROTOCOL = {"audio": {"duration": 3.0}, "protein": {"residues": 96},
            "video": {"frames": 24, "crop": "240 (or the frame's shorter side if smaller)", "size": 128}}


def video_protocol(path) -> dict:
    """RECOMBINER's video window of ``path``: 24 frames, a centred square crop of side 240
    (or the frame's shorter side), resized to 128 x 128."""
    from jrec_inr.modalities import video

    frame, _ = video.read_clip(path, frames=1)
    return {"frames": 24, "crop": int(min(240, *frame.shape[1:3])), "size": 128}


def read_options(modality):
    return video_protocol if modality == "video" else PROTOCOL[modality]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modality", choices=sorted(HELD_OUT))
    ap.add_argument("--rates", type=float, nargs="+", help="target rates (default: the bundled models')")
    ap.add_argument("--files", nargs="+", help="files (default: the held-out set)")
    ap.add_argument("--limit", type=int, help="only the first N files")
    cli._add_coding_options(ap)
    ap.add_argument("--time-budget", type=float, default=None)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--out", help="JSON path (default benchmarks/results/rd_<modality>.json)")
    ap.add_argument("--model", help="code with this model file instead of the bundled ones (an ablation; "
                    "one rate: the model's own unless --rates gives it; use with --out)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    a = ap.parse_args()
    out = a.out or os.path.join(HERE, "results", f"rd_{a.modality}.json")
    if a.plot_only:
        import json

        with open(out) as f:
            rd.plot(out.replace(".json", ".png"), json.load(f))
        return
    files = a.files or [os.path.join(DATA, f) for f in HELD_OUT[a.modality]]
    files = files[: a.limit] if a.limit else files
    models = None
    if a.model:
        from jrec_inr.prior import load_model

        model = load_model(a.model)
        if model.modality != a.modality:
            raise SystemExit(f"error: {a.model} codes {model.modality}, not {a.modality}")
        rates = a.rates or [model.nominal_rate]
        if len(rates) != 1:
            raise SystemExit("error: --model codes at one rate")
        models = {rates[0]: model}
    else:
        rates = a.rates or DEFAULT_RATES[a.modality]
    cfg = cli._codec_config(a, a.modality)  # (the modality's encoder defaults unless given)
    command = (f"python benchmarks/rd_modality.py {a.modality} --rates {' '.join(f'{r:g}' for r in rates)} "
               f"--steps {cfg.fit_steps} --finetune-steps {cfg.finetune_steps}"
               + (f" --limit {a.limit}" if a.limit else "") + (f" --model {a.model}" if a.model else ""))
    extra = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                         "jax": jax.__version__, "backend": jax.default_backend()},
             "protocol": PROTOCOL[a.modality]}
    t0 = time.perf_counter()
    res = rd.evaluate_files(files, rates, a.modality, cfg=cfg, models=models,
                            read_options=read_options(a.modality), out=out,
                            plot_path=out.replace(".json", ".png"), baselines=not a.no_baselines,
                            time_budget=a.time_budget, command=command, extra=extra)
    r = res["results"]
    unit = res["unit"]
    rk = unit.replace("/", "_per_")
    for i, t in enumerate(r["target_rate"]):
        line = (f"{t:g} {unit}: {r['num_files'][i]} files, {r[rk][i]:.3f} {unit}, {res['metric']} "
                f"{r[res['metric']][i]:.4f}, encode {r['encoding_time'][i]:.0f} s, decode "
                f"{r['decoding_time'][i]:.2f} s")
        for c, b in res.get("baselines", {}).items():
            line += f"; {c} {b[rk][i]:.2f} {unit} -> {b[res['metric']][i]:.4f}"
        print(line)
    print(f"{time.perf_counter() - t0:.0f} s; {out}")


if __name__ == "__main__":
    main()
