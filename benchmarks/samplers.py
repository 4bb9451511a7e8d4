"""Sampler benchmark: throughput, steps and codelength against theory.

Three families of 1-D Gaussian targets against P = N(0, 1), ``--batch`` problems each:

* **fixed KL** (the throughput table): Q = N(m, s^2) with m ~ U(-0.3, 0.3) and s set
  so that KL(N(0, s^2) || N(0, 1)) equals the level (D_inf is then KL plus at most
  ~0.8 bits);
* **Gaussian channel** (the GPRS paper's Figure 2): for mutual information I bits,
  s^2 = 2^(-2I), m = y (1 - s^2), y ~ N(0, 1 / (1 - s^2)), so E[KL] = I while
  D_inf = I ln 2 + y^2 (1 - s^2) / 2, whose exponential is heavy-tailed (infinite
  mean): the global samplers' mean steps are dominated by rare problems;
* **fixed D_inf** (global samplers' runtime against theory): Q = N(0, s^2) with
  s = 2^(-D), so D_inf = D bits for every problem and E[steps] = exp(D_inf) for
  global GPRS and GRS (PFR: about exp(D_inf) + 1).

Each configuration is compiled once and timed on a second call. ``vmap``: plain
``jax.vmap(encode)`` (a while_loop runs as long as its slowest lane); ``refill``:
:func:`jrec.batch.refill` with 256 lanes (same indices). Reported: encodes/s, mean /
median / quartile / max steps, the global-sampler theory E[exp(D_inf)], mean log2 of
the index, mean bits of the default index code beside KL + log2(KL + 1) + 1, and the
GPRS paper's figures (Gaussian channel: split-on-sample GPRS, dyadic GPRS, AS*; global
GPRS and global A* = PFR at I = 3.47 and 6.0 bits). Writes ``benchmarks/results/samplers.json`` and ``.png``.

    python benchmarks/samplers.py [--batch 10000] [--quick] [--methods a,b] [--families kl,channel]
                                  [--name samplers]   (families: kl, channel, dinf)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import distrax
import jax
import jax.numpy as jnp
import numpy as np

import jrec
from jrec.bounds import kl_plus_log_bits
from jrec.coding import index_bits

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# GPRS paper (Flamich 2023), data/figure2/gprs_and_a_star.csv: split-on-sample GPRS
# mean steps and mean codelength (bits) against I (bits).
PAPER_SAC = {0.95: (2.06, 7.68), 3.5: (4.66, 9.87), 6.9: (9.09, 13.58), 12.0: (16.13, 19.29)}
# ... and AS* (A* coding, split on sample) mean steps from the same file (DESIGN.md section 6).
PAPER_ASTAR = {0.95: (4.16, None), 3.5: (7.08, None), 6.9: (11.42, None), 12.0: (18.53, None)}
# ... and dyadic GPRS (the paper's best branch and bound: fewer steps, shorter codes than
# split on sample).
PAPER_DYADIC = {0.95: (1.79, 4.65), 3.5: (3.74, 8.08), 6.9: (6.82, 12.17), 12.0: (11.80, 17.95)}
# Global GPRS and global A* coding (= PFR) on the same channel (DESIGN.md section 6).
PAPER_GLOBAL_GPRS = {3.47: (14.7, 7.08), 6.0: (40.1, 9.44)}
PAPER_GLOBAL_ASTAR = {3.47: (30.7, None), 6.0: (243.8, None)}
PAPER = {"gprs_bb": PAPER_SAC, "gprs_bb_dyadic": PAPER_DYADIC, "astar_bb": PAPER_ASTAR,
         "gprs": PAPER_GLOBAL_GPRS, "pfr": PAPER_GLOBAL_ASTAR}
BRANCH_AND_BOUND = ("gprs_bb", "gprs_bb_dyadic", "grc_bb", "astar_bb", "astar_bb_dyadic")

# Largest level (bits) per sampler: global samplers need exp(D_inf) steps per problem.
MAX_BITS = {
    "kl": {"pfr": 8.0, "gprs": 8.0, "grs": 8.0, "gprs_parallel": 8.0, "orc": 10.0, "astar_dl": 10.0,
           **{m: 12.0 for m in BRANCH_AND_BOUND}},
    "channel": {"pfr": 6.0, "gprs": 6.0, "grs": 6.0, "gprs_parallel": 0.0, "orc": 0.0, "astar_dl": 0.0,
                **{m: 12.0 for m in BRANCH_AND_BOUND}},
    "dinf": {"pfr": 9.0, "gprs": 9.0, "grs": 9.0, "gprs_parallel": 9.0},
}
LEVELS = {"kl": [0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0],
          "channel": [0.95, 2.0, 3.5, 5.2, 6.9, 8.6, 10.3, 12.0],
          "dinf": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]}
# the global samplers on the channel: where the paper reports them (3.47, 6.0 bits)
CHANNEL_GLOBAL_LEVELS = [0.95, 2.0, 3.47, 5.2, 6.0]
LANES = 256


def _scale_for_kl(bits):
    """s with KL(N(0, s^2) || N(0, 1)) = bits (bisection in float64)."""
    target = bits * np.log(2)
    lo, hi = 1e-12, 1.0
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        kl = -np.log(mid) + (mid * mid - 1) / 2
        lo, hi = (mid, hi) if kl > target else (lo, mid)
    return np.sqrt(lo * hi)


def targets(family, key, n, bits):
    if family == "kl":
        m = jax.random.uniform(key, (n,), minval=-0.3, maxval=0.3)
        return m, jnp.full((n,), _scale_for_kl(bits), jnp.float32)
    if family == "dinf":
        return jnp.zeros((n,), jnp.float32), jnp.full((n,), 2.0 ** -bits, jnp.float32)
    s2 = 2.0 ** (-2 * bits)
    y = jax.random.normal(key, (n,)) * np.sqrt(1.0 / (1 - s2))
    return y * (1 - s2), jnp.full((n,), np.sqrt(s2), jnp.float32)


def machine():
    import multiprocessing

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": multiprocessing.cpu_count(), "jax": jax.__version__,
            "backend": jax.default_backend(), "python": platform.python_version()}


def _timed(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0, first


def bench_one(family, method, bits, batch, modes, seed=0):
    s = jrec.get(method)
    loc, scale = targets(family, jax.random.PRNGKey(seed), batch, bits)
    p = distrax.Normal(0.0, 1.0)
    # fixed-budget samplers: kappa = KL + 2 bits
    opts = {"kappa": int(np.ceil(bits)) + 2} if method in ("orc", "astar_dl") else {}
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), batch)
    row = {"family": family, "method": method, "level_bits": bits, "batch": batch}
    code = None
    if "vmap" in modes:
        fn = jax.jit(jax.vmap(lambda k, m, sd: s.encode(k, distrax.Normal(m, sd), p, **opts)))
        code, wall, first = _timed(fn, keys, loc, scale)
        row.update(vmap_encodes_per_s=batch / wall, vmap_wall_s=wall, vmap_first_call_s=first)
    if "refill" in modes:
        fn = jax.jit(lambda k, m, sd: jrec.batch.encode(method, k, distrax.Normal(m, sd), p, lanes=LANES,
                                                         **opts))
        rcode, wall, first = _timed(fn, keys, loc, scale)
        row.update(refill_encodes_per_s=batch / wall, refill_wall_s=wall, refill_first_call_s=first)
        if code is not None:
            row["refill_identical_to_vmap"] = bool(np.array_equal(np.asarray(code.index),
                                                                  np.asarray(rcode.index)))
        code = rcode
    q = distrax.Normal(loc, scale)
    kl = np.asarray(jax.vmap(jrec.divergences.kl, (0, None))(q, p)) / np.log(2)
    dinf = np.asarray(jax.vmap(jrec.divergences.dinf, (0, None))(q, p))
    steps = np.asarray(code.num_steps, np.float64)
    idx = np.asarray(code.index, np.float64)
    idx_main = idx[:, 1] if idx.ndim == 2 else idx
    gamma = np.asarray(index_bits(method, code.index, kappa=opts.get("kappa", 16)), np.float64)
    zeta = gamma  # Zeta code with the container's budget for this KL (positive indices only)
    if s.index_kind == "positive":
        budget = jrec.coding.zeta_budget(float(kl.mean()))
        zeta = np.asarray(index_bits(method, code.index, code="zeta", budget=budget), np.float64)
    row.update({
        "ok_fraction": float(np.mean(code.ok)),
        "kl_bits_mean": float(kl.mean()), "dinf_bits_mean": float(dinf.mean() / np.log(2)),
        "steps_mean": float(steps.mean()), "steps_median": float(np.median(steps)),
        "steps_q1": float(np.percentile(steps, 25)), "steps_q3": float(np.percentile(steps, 75)),
        "steps_max": float(steps.max()),
        "theory_steps_global": float(np.mean(np.exp(dinf))),
        "log2_index_mean": float(np.mean(np.log2(np.maximum(idx_main + (method == "orc"), 1)))),
        "gamma_bits_mean": float(gamma.mean()),
        "zeta_bits_mean": float(zeta.mean()),
        "kl_plus_log_bits": float(np.mean(kl_plus_log_bits(kl))),
    })
    paper = PAPER.get(method, {})
    if family == "channel" and bits in paper:
        row["paper_steps"], row["paper_bits"] = paper[bits]
    return row


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.4))
    for method in dict.fromkeys(r["method"] for r in rows if r["family"] != "dinf"):
        for family, style in (("kl", "o-"), ("channel", "s:")):
            rs = [r for r in rows if r["method"] == method and r["family"] == family]
            if not rs:
                continue
            x = [r["kl_bits_mean"] for r in rs]
            lab = f"{method} ({family})"
            axes[0].plot(x, [r["steps_mean"] for r in rs], style, label=lab)
            axes[1].plot(x, [r["gamma_bits_mean"] for r in rs], style, label=lab)
            if family == "kl":
                axes[2].plot(x, [r.get("refill_encodes_per_s", np.nan) for r in rs], style, label=lab)
    g = [r for r in rows if r["method"] == "gprs" and r["family"] == "kl"]
    axes[0].plot([r["kl_bits_mean"] for r in g], [r["theory_steps_global"] for r in g], "k--",
                 label="E[exp(D_inf)] (global theory, fixed KL)")
    axes[0].plot(list(PAPER_SAC), [v[0] for v in PAPER_SAC.values()], "k*", ms=10,
                 label="paper: split-on-sample GPRS (channel)")
    axes[0].set(xlabel="KL (bits, batch mean)", ylabel="mean steps", yscale="log", title="steps vs KL")
    kl = np.linspace(0.3, 12, 50)
    axes[1].plot(kl, kl_plus_log_bits(kl), "k--", label="KL + log2(KL+1) + 1")
    axes[1].plot(list(PAPER_SAC), [v[1] for v in PAPER_SAC.values()], "k*", ms=10,
                 label="paper: split-on-sample GPRS (channel)")
    axes[1].set(xlabel="KL (bits, batch mean)", ylabel="mean index bits (Elias gamma)",
                title="codelength vs KL")
    axes[2].axhline(1e5, color="k", ls="--", lw=0.8, label="target 1e5/s")
    axes[2].set(xlabel="KL (bits)", ylabel="encodes / s (lane refill)", yscale="log",
                title="throughput, fixed-KL family")
    d = [r for r in rows if r["family"] == "dinf"]
    for method in dict.fromkeys(r["method"] for r in d):
        rs = [r for r in d if r["method"] == method]
        axes[3].plot([r["dinf_bits_mean"] for r in rs], [r["steps_mean"] for r in rs], "o-", label=method)
    if d:
        x = sorted({r["dinf_bits_mean"] for r in d})
        axes[3].plot(x, [2.0 ** v for v in x], "k--", label="exp(D_inf) (GPRS, GRS theory)")
    axes[3].set(xlabel="D_inf (bits)", ylabel="mean steps", yscale="log",
                title="global samplers, Q = N(0, 2^-2D)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description="jrec sampler benchmark")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--methods",
                    default="pfr,gprs,grs,gprs_parallel,gprs_bb,gprs_bb_dyadic,grc_bb,astar_bb,"
                            "astar_bb_dyadic,orc,astar_dl")
    ap.add_argument("--quick", action="store_true", help="batch 1000, few levels")
    ap.add_argument("--name", default=None, help="results file name (default samplers / samplers_quick)")
    ap.add_argument("--families", default="kl,channel,dinf")
    a = ap.parse_args(argv)
    batch = 1000 if a.quick else a.batch
    rows = []
    for family in a.families.split(","):
        for method in a.methods.split(","):
            levels = CHANNEL_GLOBAL_LEVELS if (family == "channel" and method in ("pfr", "gprs", "grs")) \
                else LEVELS[family]
            for bits in levels[::3] if a.quick else levels:
                if bits > MAX_BITS[family].get(method, 0.0):
                    continue
                modes = ("vmap", "refill") if family == "kl" else ("refill",)
                if family == "dinf":
                    bits = float(bits)
                r = bench_one(family, method, bits, batch, modes)
                rows.append(r)
                print(f"{family:<8}{method:<14} {bits:5.2f}b KL={r['kl_bits_mean']:6.2f} "
                      f"vmap/s={r.get('vmap_encodes_per_s', float('nan')):9.0f} "
                      f"refill/s={r['refill_encodes_per_s']:9.0f} steps mean={r['steps_mean']:8.2f} "
                      f"med={r['steps_median']:6.1f} max={r['steps_max']:7.0f} "
                      f"(theory {r['theory_steps_global']:8.1f}) log2N={r['log2_index_mean']:6.2f} "
                      f"gamma={r['gamma_bits_mean']:6.2f} KL+log+1={r['kl_plus_log_bits']:6.2f} "
                      f"ok={r['ok_fraction']:.4f}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    cmd = "python benchmarks/samplers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = {"command": cmd.strip(), "machine": machine(), "setting": __doc__, "rows": rows}
    name = a.name or ("samplers_quick" if a.quick else "samplers")
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        json.dump(out, f, indent=1)
    plot(rows, os.path.join(RESULTS, name + ".png"))
    print("wrote", os.path.join(RESULTS, name + ".json"))


if __name__ == "__main__":
    main()
