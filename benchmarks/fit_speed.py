"""Speed of one fitting step of the INR codec: jrec_inr.fastmath against JAX's own ops.

For each bundled model's architecture, one step of ``jrec_inr.fit`` over 96 patches
(a full-resolution Kodak image) and 1,024 pixels per patch is timed with

* ``fast``: the fitting's :func:`jrec_inr.fastmath.sin` and :func:`~jrec_inr.fastmath.normal`
  (what the encoder and ``train-prior`` run), and
* ``jax``: ``jnp.sin`` and ``jax.random.normal`` (threefry bits and an inverse error
  function) in their place,

compiled once each, then timed alternately (``--reps`` rounds of ``--steps`` steps in one
``lax.scan``; the fastest round is kept), so the ratio is measured in one run on one
machine. Writes ``benchmarks/results/fit_speed.json`` and ``.png``.

    python benchmarks/fit_speed.py [--reps 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

from jrec_inr import codec, fastmath
from jrec_inr.fit import FitConfig, Problem, fit_loop, init_state
from jrec_inr.prior import layout_of

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from samplers import RESULTS, machine  # noqa: E402

PATCHES = 96
VARIANTS = {"fast": (fastmath.sin, fastmath.normal), "jax": (jnp.sin, jax.random.normal)}


def compiled_step(model, variant: str, steps: int):
    """A compiled ``steps``-step fit of ``model``'s architecture with ``variant``'s ops, and its
    arguments."""
    real = fastmath.sin, fastmath.normal
    fastmath.sin, fastmath.normal = VARIANTS[variant]  # read by the model when tracing
    try:
        arch, layout, cfg = model.arch, layout_of(model.arch), FitConfig()
        targets = jax.random.uniform(jax.random.key(0), (PATCHES, arch.patch**2, arch.channels)) - 0.5
        problem = Problem(targets, jnp.asarray(model.prior_mean), jnp.asarray(model.prior_std),
                          jnp.asarray(model.block), jnp.full((model.num_blocks,), float(model.kappa)))
        mean = jnp.broadcast_to(jnp.asarray(model.prior_mean), (PATCHES, layout.size))
        rho = jnp.broadcast_to(jnp.log(jnp.expm1(0.5 * jnp.asarray(model.prior_std))), mean.shape)
        state = init_state(mean, rho, jnp.zeros((PATCHES, model.num_blocks)), cfg, mix=model.mix)
        run = fit_loop.__wrapped__(arch, layout, cfg)  # (not the cached one: traced with these ops)
        args = (state, problem, jax.random.key(1), steps)
        compiled = run.lower(*args).compile()
    finally:
        fastmath.sin, fastmath.normal = real
    return compiled, args


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    rows = []
    for bpp in (0.1, 0.3, 0.6):
        model = codec.select_model(bpp)
        runs = {v: compiled_step(model, v, a.steps) for v in VARIANTS}
        times = {v: [] for v in VARIANTS}
        for _ in range(a.reps):
            for v, (compiled, args) in runs.items():
                t = time.perf_counter()
                jax.block_until_ready(compiled(*args))
                times[v].append((time.perf_counter() - t) / a.steps)
        row = {"model": model.name, "hidden": model.arch.hidden, "depth": model.arch.depth,
               "weights": int(layout_of(model.arch).size), "patches": PATCHES,
               "pixels_per_step": FitConfig().pixels_per_step,
               **{f"{v}_seconds_per_step": min(t) for v, t in times.items()}}
        row["speedup"] = row["jax_seconds_per_step"] / row["fast_seconds_per_step"]
        rows.append(row)
        print(f"{model.name}: fast {row['fast_seconds_per_step'] * 1e3:.1f} ms/step, jax "
              f"{row['jax_seconds_per_step'] * 1e3:.1f} ms/step, x{row['speedup']:.2f}")
    out = {"name": "fit_speed", "machine": machine(), "reps": a.reps, "steps": a.steps, "rows": rows,
           "command": f"python benchmarks/fit_speed.py --reps {a.reps} --steps {a.steps}"}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "fit_speed.json"), "w") as f:
        json.dump(out, f, indent=1)
    plot(out, os.path.join(RESULTS, "fit_speed.png"))


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["rows"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = range(len(rows))
    for i, (v, label) in enumerate([("jax", "jnp.sin + jax.random.normal"), ("fast", "jrec_inr.fastmath")]):
        ax.bar([j + 0.4 * i - 0.2 for j in x], [r[f"{v}_seconds_per_step"] * 1e3 for r in rows], 0.4,
               label=label)
    ax.set_xticks(list(x), [f"{r['model']}\n(hidden {r['hidden']})" for r in rows])
    ax.set_ylabel("ms per fitting step (96 patches)")
    m = out["machine"]
    ax.set_title(f"{m['cpu']}, {m['cores']} cores", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
