"""Rate-distortion of the COMBINER codec on full-resolution Kodak images (JSON + PNG).

    python benchmarks/rd_kodak.py [--images 1 2 3 4 5 6] [--bpp 0.1 0.3 0.6]
                                  [--steps N] [--finetune-steps N] [--finetune-lr X]
                                  [--seed S] [--sample]
                                  [--time-budget 5400]
                                  [--fold-models other-fold/bpp0.3.npz ...]

Codes each image with the bundled model of each bit rate (trained on DIV2K and
kodim13-24 only, so kodim01-12 are held out). ``--fold-models`` adds models of the same
rates trained on other folds (e.g. DIV2K and kodim01-12, for kodim13-24): each image is
coded with a model that did not see it, and an image every model saw is refused.
writes the ``.jrec`` file, reads it back, decodes it and checks the decoder's output
equals the encoder's reconstruction. Reports bpp from the file size, PSNR, MS-SSIM and
encode / decode wall time on this machine, beside JPEG, WebP and JPEG 2000 (Pillow) at
the same bpp on the same images and the published curves of
``../shared/reference/published_rd.json``. Resumable: finished (image, bpp) pairs in the
JSON are kept; ``--time-budget`` stops starting new images after that many seconds.
Writes ``benchmarks/results/rd_kodak.json`` and ``rd_kodak.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax

from jrec_inr import cli, codec, data
from jrec_inr.prior import ModelError, load_model

HERE = os.path.dirname(os.path.abspath(__file__))
KODAK = os.path.join(HERE, "..", "..", "shared", "data", "kodak")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.1, 0.3, 0.6])
    cli._add_coding_options(ap)  # the encoder's options, as jrec-inr compress / eval take them
    ap.add_argument("--time-budget", type=float, default=None)
    ap.add_argument("--fold-models", nargs="*", default=[],
                    help="models of the same rates trained on other folds (.npz)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "rd_kodak.json"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    a = ap.parse_args()
    if a.plot_only:
        from jrec_inr import metrics

        with open(a.out) as f:
            res = json.load(f)
        metrics.rd_plot(a.out.replace(".json", ".png"), res["per_image"], res["baselines_per_image"],
                        cli._published(), title="Kodak")
        return
    names = [f"kodim{i:02d}.png" for i in a.images]
    folds = [load_model(p) for p in a.fold_models]
    models = {}
    for bpp in a.bpp:
        bundled = codec.select_model(bpp)
        models[bpp] = [bundled] + [m for m in folds if m.bpp == bundled.bpp]
    paths = [os.path.join(KODAK, n) for n in names]
    cfg = cli._codec_config(a)
    command = "python benchmarks/rd_kodak.py " + " ".join(  # with the encoder's settings resolved
        [f"--images {' '.join(map(str, a.images))}", f"--bpp {' '.join(map(str, a.bpp))}",
         f"--steps {cfg.fit_steps}", f"--finetune-steps {cfg.finetune_steps}",
         f"--finetune-lr {cfg.finetune_lr:g}"]
        + ([f"--seed {cfg.seed}"] if cfg.seed else []) + ([] if cfg.greedy else ["--sample"])
        + ([f"--fold-models {' '.join(a.fold_models)}"] if a.fold_models else []))
    # in every write of the JSON, so that a run cut short keeps it
    extra = {"machine": {"cpu": platform.processor() or platform.machine(),
                         "cores": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend()}}
    t0 = time.perf_counter()
    try:  # evaluate refuses an image every model of its rate saw, before coding anything
        res = cli.evaluate(paths, a.bpp, cfg=cfg, out=a.out, plot=a.out.replace(".json", ".png"),
                           baselines=True, time_budget=a.time_budget, models=models, progress=False,
                           extra=extra, command=command)
    except ModelError as e:
        raise SystemExit(f"error: {e}") from None
    res["wall_seconds_this_run"] = round(time.perf_counter() - t0, 1)
    data.atomic_write(a.out, json.dumps(res, indent=1).encode())
    print(json.dumps(res["results"], indent=1))


if __name__ == "__main__":
    main()
