"""Codelength benchmark: real bits per sample of every sampler and index code against KL.

Problems: the fixed-KL family of ``benchmarks/samplers.py`` -- Q = N(m, s^2) with
m ~ U(-0.3, 0.3) and s set so that KL(N(0, s^2) || N(0, 1)) is the level, P = N(0, 1) --
at levels 0.1 to 16 bits. Each batch is encoded with the lane-refill runner, written as
a real ``.jrec`` file per index code (``jrec.to_bytes``), and the payload bits (the file
minus its header and CRC) divided by the batch size is the mean codelength. The Zeta
code's budget is ``jrec.coding.zeta_budget(level)`` = max(level, 1/2) bits (both sides
know the level), for every sampler. Beside it:
KL + log2(KL + 1) + 1 and the Li & El Gamal bound KL + log2(KL + 1) + 4 (at the
batch's mean KL), mean log2 N, and the estimator's bits (``jrec.coding.index_bits``).
ORC runs with kappa = ceil(KL) + 2 (its code is kappa bits; it is approximate).
Writes ``benchmarks/results/codelength.json`` and ``.png``.

    python benchmarks/codelength.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import distrax
import jax
import numpy as np

import jrec
from jrec.bounds import kl_plus_log_bits, li_el_gamal_bits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from samplers import RESULTS, machine, targets  # noqa: E402

LEVELS = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]
CODES = {"pfr": ("gamma", "delta", "zeta"), "gprs": ("gamma", "delta", "zeta"),
         "gprs_parallel": ("gamma", "zeta"), "gprs_bb": ("gamma", "delta", "zeta"), "orc": ("fixed",)}
MAX_LEVEL = {"pfr": 16.0, "gprs": 16.0, "gprs_parallel": 12.0, "gprs_bb": 16.0, "orc": 12.0}


def batch_size(method: str, level: float, quick: bool) -> int:
    if quick:
        return 200
    if method == "gprs_bb":
        return 4000
    return 4000 if level <= 8 else (1000 if level <= 12 else 400)


def run(method: str, level: float, n: int, seed: int = 0) -> list[dict]:
    loc, scale = targets("kl", jax.random.PRNGKey(seed), n, level)
    p = distrax.Normal(0.0, 1.0)
    opts = {"kappa": int(np.ceil(level)) + 2} if method == "orc" else {}
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), n)
    t0 = time.perf_counter()
    code = jax.jit(lambda k, m, s: jrec.batch.encode(method, k, distrax.Normal(m, s), p, **opts))(
        keys, loc, scale)
    wall = time.perf_counter() - t0
    ok = np.asarray(code.ok)
    q = distrax.Normal(loc, scale)
    kl = np.asarray(jax.vmap(jrec.divergences.kl, (0, None))(q, p))[ok] / np.log(2)
    idx = np.asarray(code.index)[ok]
    main = idx[:, 1] if idx.ndim == 2 else idx + (method == "orc")
    rows = []
    for c in CODES[method]:
        budget = jrec.coding.zeta_budget(level) if c == "zeta" else None
        data = jrec.to_bytes(idx, method=method, key=keys[ok], proposal=p, code=c, budget=budget, **opts)
        header = jrec.bitstream.read_header(data).header_size
        payload_bits = 8 * (len(data) - header - 4)
        est = np.asarray(jrec.coding.index_bits(method, idx, code=c, budget=budget, **opts), np.float64)
        rows.append({
            "method": method, "code": c, "level_bits": level, "n": int(ok.sum()),
            "ok_fraction": float(ok.mean()), "kl_bits_mean": float(kl.mean()),
            "bits_mean": payload_bits / max(int(ok.sum()), 1),
            "bits_se": float(est.std(ddof=1) / np.sqrt(len(est))) if len(est) > 1 else 0.0,
            "file_bits_mean": 8 * len(data) / max(int(ok.sum()), 1),
            "estimated_bits_mean": float(est.mean()),
            "log2_index_mean": float(np.mean(np.log2(np.maximum(main, 1)))),
            "kl_plus_log_bits": float(kl_plus_log_bits(kl.mean())),
            "li_el_gamal_bits": float(li_el_gamal_bits(kl.mean())),
            "encode_wall_s": wall, **({"kappa": opts["kappa"]} if opts else {}),
        })
        r = rows[-1]
        print(f"{method:14s} {c:6s} KL {r['kl_bits_mean']:6.2f}  bits {r['bits_mean']:7.3f} "
              f"(+-{r['bits_se']:.3f})  bound {r['kl_plus_log_bits']:6.2f}  E log2 N "
              f"{r['log2_index_mean']:6.2f}  ok {r['ok_fraction']:.4f}  {wall:.1f}s", flush=True)
    return rows


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(13, 5))
    kls = np.linspace(0.1, 16, 200)
    for a, excess in zip(ax, (False, True), strict=True):
        off = kls if excess else 0
        a.plot(kls, kl_plus_log_bits(kls) - off, "k-", label="KL + log2(KL+1) + 1")
        a.plot(kls, li_el_gamal_bits(kls) - off, "k--", label="Li & El Gamal: KL + log2(KL+1) + 4")
        if not excess:
            a.plot(kls, kls, "k:", label="KL")
        for (m, c) in sorted({(r["method"], r["code"]) for r in rows}):
            rr = sorted((r for r in rows if r["method"] == m and r["code"] == c),
                        key=lambda r: r["kl_bits_mean"])
            x = np.array([r["kl_bits_mean"] for r in rr])
            y = np.array([r["bits_mean"] for r in rr])
            a.plot(x, y - (x if excess else 0), "o-" if c == "zeta" else ".-", ms=4, label=f"{m} / {c}")
        a.set_xlabel("KL [bits]")
        a.set_ylabel("mean bits - KL" if excess else "mean real bits per sample")
        a.grid(alpha=0.3)
    ax[1].set_ylim(-1, 10)
    ax[0].legend(fontsize=7, ncol=2)
    fig.suptitle("real codelength of .jrec payloads, fixed-KL Gaussian family, P = N(0, 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 problems per point, levels <= 6")
    ap.add_argument("--out", default=os.path.join(RESULTS, "codelength"))
    a = ap.parse_args(argv)
    rows = []
    t0 = time.perf_counter()
    for level in LEVELS:
        if a.quick and level > 6:
            continue
        for method in CODES:
            if level <= MAX_LEVEL[method]:
                rows += run(method, level, batch_size(method, level, a.quick))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    out = {"machine": machine(), "wall_s": time.perf_counter() - t0, "rows": rows}
    with open(a.out + ".json", "w") as f:
        json.dump(out, f, indent=1)
    plot(rows, a.out + ".png")
    print(f"wrote {a.out}.json / .png in {out['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
