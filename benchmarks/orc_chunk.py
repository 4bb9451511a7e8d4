"""Time of the INR codec's block coding against ORC's chunk size (candidates per loop
iteration) and the candidate generator (:mod:`jrec.prng`'s fused Threefry or ``jax.random``).

The encoder codes each block of weights with :func:`jrec.orc.encode` (``2^16`` candidates,
greedy) for all copies of the block at once (vmap): the long files' encode time is
mostly this. The chunk size does not change the indices (checked here); it trades loop
overhead against memory (``copies x chunk x width`` candidate values at a time); nor does the
generator (both draw the same bits; checked here too). For ``--copies`` copies of a
``--width``-weight block every (chunk size, generator) pair is compiled once, then timed
alternately (``--reps`` rounds, the fastest kept), so the ratios come from one run on one
machine. Writes ``benchmarks/results/orc_chunk.json`` and ``.png``;
:data:`jrec_inr.codec.ORC_CHUNK` is the codec's choice.

    python benchmarks/orc_chunk.py [--copies 184] [--width 88] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import distrax
import jax
import jax.numpy as jnp
import numpy as np

import jrec
from jrec import prng
from jrec_inr import codec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from samplers import RESULTS, machine  # noqa: E402

CHUNKS = (256, 512, 1024, 2048, 4096)
GENERATORS = ("fused", "jax.random")


def block_coder(chunk: int, width: int, kappa: int):
    @jax.jit
    def code(keys, mean, std):
        prop = distrax.Normal(jnp.zeros(width), jnp.ones(width))

        def one(k, m, s):
            code = jrec.orc.encode(k, distrax.Normal(m, s), prop, kappa=kappa, greedy=True, chunk_size=chunk)
            return code.index

        return jax.vmap(one)(keys, mean, std)

    return code


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=184, help="copies of the block (patches of a 9-s clip)")
    ap.add_argument("--width", type=int, default=88, help="weights in the block")
    ap.add_argument("--kappa", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    import time

    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(args.copies))
    rng = np.random.default_rng(0)
    mean = jnp.asarray(rng.normal(0, 0.3, (args.copies, args.width)), jnp.float32)
    std = jnp.asarray(rng.uniform(0.2, 0.6, (args.copies, args.width)), jnp.float32)
    coders, ref = {}, None
    for gen in GENERATORS:
        with prng.enabled(gen == "fused"):  # decided when each coder is traced (its first call)
            for c in CHUNKS:
                f = coders[c, gen] = block_coder(c, args.width, args.kappa)
                idx = np.asarray(f(keys, mean, std))
                ref = idx if ref is None else ref
                if not np.array_equal(idx, ref):
                    raise SystemExit(f"chunk {c} with the {gen} generator changed the indices")
    best = {k: float("inf") for k in coders}
    for _ in range(args.reps):
        for k, f in coders.items():
            t = time.perf_counter()
            f(keys, mean + 1e-3, std).block_until_ready()
            best[k] = min(best[k], time.perf_counter() - t)
    base = best[codec.ORC_CHUNK, "jax.random"]
    rows = [{"chunk": c, "generator": g, "seconds": round(best[c, g], 3),
             "vs_jax_random_at_codec_chunk": round(best[c, g] / base, 3)} for g in GENERATORS for c in CHUNKS]
    for r in rows:
        print(f"chunk {r['chunk']:5d} {r['generator']:>10}: {r['seconds']:.2f} s per block "
              f"({r['vs_jax_random_at_codec_chunk']:.2f}x jax.random at chunk {codec.ORC_CHUNK})")
    out = {"machine": machine(), "copies": args.copies, "width": args.width, "kappa": args.kappa,
           "reps": args.reps, "codec_chunk": codec.ORC_CHUNK, "rows": rows}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "orc_chunk.json"), "w") as f:
        json.dump(out, f, indent=2)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for g in GENERATORS:
        sel = [r for r in rows if r["generator"] == g]
        ax.plot([r["chunk"] for r in sel], [r["seconds"] for r in sel], "o-", label=f"{g} candidates")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("ORC chunk (candidates per iteration)")
    ax.set_ylabel("seconds per block")
    ax.set_title(f"{args.copies} copies x {args.width} weights, 2^{args.kappa} candidates", fontsize=9)
    ax.axvline(codec.ORC_CHUNK, color="C3", ls=":", label="codec's choice")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "orc_chunk.png"), dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
