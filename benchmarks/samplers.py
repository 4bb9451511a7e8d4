"""Sampler benchmark: throughput, steps and codelength against the Gaussian-channel theory.

Setting (the GPRS paper's Figure 2 channel): prior/proposal P = N(0, 1); for mutual
information I bits the posterior is Q = N(m, s^2) with s^2 = 2^(-2I) and
m = y (1 - s^2), y ~ N(0, 1 / (1 - s^2)); E[KL(Q || P)] = I. For each I a vmapped
batch of ``--batch`` posteriors is encoded once to compile and once timed.

Reported per sampler and I: encodes/s (wall clock, compiled, the whole vmapped
batch -- a vmapped while_loop runs as long as its slowest lane), mean / median /
quartile steps, the theory mean (global samplers: E[sup r] = E[exp(D_inf)] over the
batch), mean log2 of the index and mean Elias-gamma bits beside KL + log2(KL + 1) + 1,
and the GPRS paper's split-on-sample figures. Writes
``benchmarks/results/samplers.json`` and ``samplers.png``.

    python benchmarks/samplers.py [--batch 10000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

# Largest I (bits) per sampler: global samplers need exp(D_inf) steps and the vmapped
# batch waits for its slowest lane, so their heavy tails make larger I impractical here.
MAX_BITS = {"pfr": 6.9, "gprs": 5.2, "gprs_parallel": 5.2, "gprs_bb": 12.0, "orc": 8.6}
LEVELS = [0.5, 0.95, 2.0, 3.5, 5.2, 6.9, 8.6, 10.3, 12.0]


def channel(key, n, bits):
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


def bench_one(method, bits, batch, seed=0):
    s = jrec.get(method)
    loc, scale = channel(jax.random.PRNGKey(seed), batch, bits)
    p = distrax.Normal(0.0, 1.0)
    opts = {"kappa": int(np.ceil(bits)) + 2} if method == "orc" else {}
    fn = jax.jit(jax.vmap(lambda k, m, sd: s.encode(k, distrax.Normal(m, sd), p, **opts)))
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), batch)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys, loc, scale))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    code = jax.block_until_ready(fn(keys, loc, scale))
    wall = time.perf_counter() - t0
    q = distrax.Normal(loc, scale)
    kl = np.asarray(jax.vmap(jrec.divergences.kl, (0, None))(q, p)) / np.log(2)
    dinf = np.asarray(jax.vmap(jrec.divergences.dinf, (0, None))(q, p))
    steps = np.asarray(code.num_steps, np.float64)
    idx = np.asarray(code.index, np.float64)
    idx_main = idx[:, 1] if idx.ndim == 2 else idx
    gamma = np.asarray(index_bits(method, code.index, kappa=opts.get("kappa", 16)), np.float64)
    row = {
        "method": method, "I_bits": bits, "batch": batch, "ok_fraction": float(np.mean(code.ok)),
        "encodes_per_s": batch / wall, "wall_s": wall, "compile_plus_run_s": compile_s,
        "kl_bits_mean": float(kl.mean()),
        "steps_mean": float(steps.mean()), "steps_median": float(np.median(steps)),
        "steps_q1": float(np.percentile(steps, 25)), "steps_q3": float(np.percentile(steps, 75)),
        "steps_max": float(steps.max()),
        "theory_steps_global": float(np.mean(np.exp(dinf))),
        "log2_index_mean": float(np.mean(np.log2(np.maximum(idx_main + (method == "orc"), 1)))),
        "gamma_bits_mean": float(gamma.mean()),
        "kl_plus_log_bits": float(np.mean(kl_plus_log_bits(kl))),
    }
    if method == "gprs_bb" and bits in PAPER_SAC:
        row["paper_sac_steps"], row["paper_sac_bits"] = PAPER_SAC[bits]
    return row


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        x = [r["kl_bits_mean"] for r in rs]
        axes[0].plot(x, [r["steps_mean"] for r in rs], "o-", label=method)
        axes[1].plot(x, [r["gamma_bits_mean"] for r in rs], "o-", label=method)
    g = [r for r in rows if r["method"] == "gprs"]
    axes[0].plot([r["kl_bits_mean"] for r in g], [r["theory_steps_global"] for r in g], "k--",
                 label="E[exp(D_inf)] (global theory)")
    axes[0].plot(list(PAPER_SAC), [v[0] for v in PAPER_SAC.values()], "k*", ms=10,
                 label="paper: split-on-sample GPRS")
    axes[0].set(xlabel="KL (bits, batch mean)", ylabel="mean steps", yscale="log",
                title="steps vs KL (Gaussian channel)")
    kl = np.linspace(0.3, 12, 50)
    axes[1].plot(kl, kl_plus_log_bits(kl), "k--", label="KL + log2(KL+1) + 1")
    axes[1].plot(list(PAPER_SAC), [v[1] for v in PAPER_SAC.values()], "k*", ms=10,
                 label="paper: split-on-sample GPRS")
    axes[1].set(xlabel="KL (bits, batch mean)", ylabel="mean index bits (Elias gamma)",
                title="codelength vs KL")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description="jrec sampler benchmark")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--methods", default="pfr,gprs,gprs_parallel,gprs_bb,orc")
    ap.add_argument("--quick", action="store_true", help="batch 1000, three levels")
    a = ap.parse_args(argv)
    levels = [0.95, 3.5, 6.9] if a.quick else LEVELS
    batch = 1000 if a.quick else a.batch
    rows = []
    for method in a.methods.split(","):
        for bits in levels:
            if bits > MAX_BITS[method]:
                continue
            r = bench_one(method, bits, batch)
            rows.append(r)
            print(f"{method:<14} I={bits:5.2f}  KL={r['kl_bits_mean']:6.2f}  "
                  f"enc/s={r['encodes_per_s']:9.0f}  "
                  f"steps mean={r['steps_mean']:8.2f} med={r['steps_median']:6.1f} "
                  f"(global theory {r['theory_steps_global']:9.1f})  log2N={r['log2_index_mean']:6.2f}  "
                  f"gamma bits={r['gamma_bits_mean']:6.2f}  KL+log+1={r['kl_plus_log_bits']:6.2f}  "
                  f"ok={r['ok_fraction']:.4f}", flush=True)
    os.makedirs(RESULTS, exist_ok=True)
    out = {"machine": machine(), "setting": __doc__.split("\n\n")[1], "rows": rows}
    name = "samplers_quick" if a.quick else "samplers"
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        json.dump(out, f, indent=1)
    plot(rows, os.path.join(RESULTS, name + ".png"))
    print("wrote", os.path.join(RESULTS, name + ".json"))


if __name__ == "__main__":
    main()
