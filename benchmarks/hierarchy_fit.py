"""How a hierarchical prior's shared latents must be optimised: free fits of 6 s of speech.

RECOMBINER's hierarchical prior (:mod:`jrec_inr.hierarchy`) sums a patch's own latent, its
group's and the signal's. Fitted naively with Adam, the shared latents ruin the fit: Adam
moves every parameter by about the learning rate whatever its gradient, so a latent shared
by ``n`` patches moves all of them each step along their summed, mostly conflicting,
gradients, and its noise is added to every patch under it. This script fits two 3-s windows
of a training utterance (120 patches of 800 samples, groups of 4; the 10 kbps audio
architecture) without KL pressure (beta ~ 0, as EM's first E-step) for ``--steps`` steps:

* ``patches alone``: no hierarchy (the upper latents fixed at 0, noiseless);
* ``shared, plain``: every unit at the learning rate, the upper latents starting with the
  patches' posterior std;
* ``shared, mean lr 1/n``: each unit's mean at the learning rate over the number of
  patches under it (:meth:`~jrec_inr.hierarchy.Units.lr_scale`);
* ``shared, mean lr 1/n, small std``: and the upper latents starting almost noiseless
  (:data:`~jrec_inr.hierarchy.UPPER_RHO_INIT`): what ``train-prior`` and the encoder do.

Writes ``benchmarks/results/hierarchy_fit.json``.

    python benchmarks/hierarchy_fit.py [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import soundfile as sf

from jrec_inr import hierarchy, prior
from jrec_inr.fit import FitConfig, Problem, fit_loop, init_state
from jrec_inr.modalities import Signal, audio
from jrec_inr.model import Arch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from samplers import RESULTS, machine  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP = os.path.join(HERE, "..", "..", "shared", "data", "librispeech", "2412-153948-0000.flac")
ARCH = Arch(hidden=32, depth=3, num_freqs=8, patch=(800,), channels=1, linear=True)
VARIANTS = {  # (upper latents fixed at 0, lr scaled, upper rho at the start)
    "patches alone": (True, False, ARCH.rho_init),
    "shared, plain": (False, False, ARCH.rho_init),
    "shared, mean lr 1/n": (False, True, ARCH.rho_init),
    "shared, mean lr 1/n, small std": (False, True, hierarchy.UPPER_RHO_INIT),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)
    x = sf.read(CLIP, dtype="float32", always_2d=True)[0][:96000]
    grid = audio.AUDIO.normalise(Signal(x, {"sample_rate": 16000}))[0]
    patches, units = prior.training_signals([grid], (48000,), ARCH.patch_shape, (4,), 2, seed=0)
    layout = prior.layout_of(ARCH)
    m0, _ = prior.init_posterior(ARCH, jax.random.key(1))
    n, d = units.num_units, layout.size
    cfg = FitConfig(beta_factor=1.15, mix_lr=2e-3)  # (train-prior's optimiser settings)
    run = fit_loop(ARCH, layout, cfg)
    is_patch = jnp.asarray(units.level == hierarchy.PATCH)[:, None]
    rows = []
    for name, (fixed, scaled, upper_rho) in VARIANTS.items():
        mean = jnp.where(is_patch, m0, 0.0) * jnp.ones((n, d))
        rho = jnp.where(is_patch, ARCH.rho_init, -200.0 if fixed else upper_rho) * jnp.ones((n, d))
        frozen = jnp.broadcast_to(~is_patch, (n, d)) if fixed else None
        row = jnp.broadcast_to(jnp.asarray(units.signal)[:, None], (n, d))
        problem = Problem(jnp.asarray(patches) - audio.AUDIO.offset, mean, jnp.ones((n, d)),
                          jnp.zeros((n, d), jnp.int32), jnp.asarray([1e30]), row, jnp.asarray(units.parents),
                          jnp.asarray(units.lr_scale()) if scaled else None)
        state = init_state(mean, rho, jnp.full((2, 1), math.log(1e-9)), cfg, frozen=frozen,
                           mix=prior.init_mix(ARCH))
        state, mse, _ = run(state, problem, jax.random.key(0), args.steps)
        psnr = -10 * math.log10(float(jnp.mean(mse)))
        rows.append({"variant": name, "psnr": round(psnr, 2)})
        print(f"{name:32s} {psnr:.2f} dB after {args.steps} steps")
    out = {"machine": machine(), "clip": os.path.basename(CLIP), "steps": args.steps,
           "patches": units.num_patches, "group": 4, "arch": ARCH._asdict(), "rows": rows}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "hierarchy_fit.json"), "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
