"""A VAE with a REC bottleneck: ELBO-estimated vs real coded bits per dimension.

    python benchmarks/vae_digits.py [--latents 4 8 16] [--steps 4000] [--methods gprs_bb orc]

The model, training and lossless coding live in :mod:`jrec.examples.vae_digits` (see its
docstring); this script runs them for several latent sizes and methods and writes
``benchmarks/results/vae_digits.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import jax

from jrec.examples.vae_digits import run

HERE = os.path.dirname(os.path.abspath(__file__))


def plot(rows, methods, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(methods):
        rs = [r for r in rows if r["method"] == m]
        ax.plot([r["latents"] for r in rs], [r["coded_bpd"] for r in rs], "o-", label=f"coded ({m})")
        if i == 0:  # the method only changes coding: every method codes the same trained VAEs
            ax.plot([r["latents"] for r in rs], [r["elbo_bpd"] for r in rs], "kx--",
                    label="-ELBO (estimated)")
    ax.set_xlabel("latent dimensions")
    ax.set_ylabel("bits per dimension (test)")
    ax.set_title("VAE on scikit-learn digits: estimated vs coded")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latents", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--methods", nargs="+", default=["gprs_bb", "orc"])
    ap.add_argument("--out", default=os.path.join(HERE, "results", "vae_digits.json"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    a = ap.parse_args()
    if a.plot_only:
        with open(a.out) as f:
            rows = json.load(f)["rows"]
        methods = [m for m in a.methods if any(r["method"] == m for r in rows)]
        plot(rows, methods, a.out.replace(".json", ".png"))
        return
    rows = run(a.latents, a.steps, a.methods)
    out = {"command": f"python benchmarks/vae_digits.py --latents {' '.join(map(str, a.latents))} "
                      f"--steps {a.steps} --methods {' '.join(a.methods)}",
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "jax": jax.__version__},
           "data": "scikit-learn digits, 1500 train / 297 test, 64 dims, 17 levels", "rows": rows}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    plot(rows, a.methods, a.out.replace(".json", ".png"))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
