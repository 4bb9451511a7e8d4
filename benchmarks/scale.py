"""Scale benchmark: throughput against batch size, lane refill vs vmap, memory, devices.

Problems: 1-D Gaussian latents Q = N(m, s^2), P = N(0, 1), with KL(Q || P) drawn
uniformly from 0.05 to 8 bits per problem (s from the KL of N(0, s^2), m ~ U(-0.3, 0.3)).

* **throughput** (encodes/s) against the batch size 10 ... 10^6 for pfr, gprs, gprs_bb
  and orc (kappa = 10), plain ``jax.vmap`` vs the lane-refill runner (256 lanes), each
  timed on a compiled executable (compile time reported apart); plain vmap is skipped
  once a size would take too long (its cost is batch x the slowest problem).
  Memory: XLA's buffer sizes of the compiled program (arguments + outputs + temporaries).
* **steps** against D_inf (global samplers; theory exp(D_inf)) and against KL (gprs_bb),
  from the 10^5 refill batch, binned.
* **devices**: ``jrec.shard.encode`` of 10^5 gprs problems on 1, 2, 4, 8 forced host
  devices (a subprocess with ``--xla_force_host_platform_device_count=8``): wall time
  and whether indices equal the single-device ones.
* **NumPy reference**: a pure-NumPy PFR loop (one problem at a time) on 2,000 problems,
  as a sanity row: its mean steps against jrec's, and its speed.

Writes ``benchmarks/results/scale.json`` and ``.png``.

    python benchmarks/scale.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import distrax
import jax
import jax.numpy as jnp
import numpy as np

import jrec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from samplers import RESULTS, machine  # noqa: E402

METHODS = {"pfr": {}, "gprs": {}, "gprs_bb": {}, "orc": {"kappa": 10}}
SIZES = [10, 100, 1_000, 10_000, 100_000, 1_000_000]
MAX_SIZE = {"pfr": 1_000_000, "gprs": 1_000_000, "gprs_bb": 1_000_000, "orc": 100_000}
VMAP_BUDGET_S = 60.0  # skip plain vmap at the next size once one run took longer than this
LANES = 256


def scale_for_kl_nats(kl):
    """Vectorised: s with -log s + (s^2 - 1) / 2 = kl (bisection in float64)."""
    lo, hi = np.full_like(kl, 1e-12), np.ones_like(kl)
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        f = -np.log(mid) + (mid * mid - 1) / 2
        lo, hi = np.where(f > kl, mid, lo), np.where(f > kl, hi, mid)
    return np.sqrt(lo * hi)


def problems(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    kl_bits = rng.uniform(0.05, 8.0, n)
    s = scale_for_kl_nats(kl_bits * np.log(2))
    m = rng.uniform(-0.3, 0.3, n)
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return keys, jnp.asarray(m, jnp.float32), jnp.asarray(s, jnp.float32)


def binned(steps, kl_bits, dinf, bins: int = 25) -> dict:
    """Mean steps in equal-width bins of D_inf (nats) and of KL (bits), with counts."""
    out = {}
    for name, x in (("dinf", dinf), ("kl_bits", kl_bits)):
        edges = np.linspace(x.min(), x.max(), bins + 1)
        which = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
        keep = [b for b in range(bins) if np.any(which == b)]
        out[name] = {"x": [float(x[which == b].mean()) for b in keep],
                     "steps_mean": [float(steps[which == b].mean()) for b in keep],
                     "count": [int(np.sum(which == b)) for b in keep]}
    return out


def _compile(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    comp = time.perf_counter() - t0
    try:
        ma = compiled.memory_analysis()
        mem = (ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes) / 2**20
    except Exception:  # memory analysis is backend dependent
        mem = float("nan")
    return compiled, comp, mem


def _timed(compiled, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - t0


def throughput(quick: bool):
    p = distrax.Normal(0.0, 1.0)
    rows, per_problem = [], {}
    for method, opts in METHODS.items():
        s = jrec.get(method)
        vmap_ok = True
        for n in SIZES:
            if n > MAX_SIZE[method] or (quick and n > 10_000):
                continue
            keys, m, sd = problems(n)
            row = {"method": method, "batch": n, **opts}
            if vmap_ok:
                fn = jax.vmap(lambda k, a, b, s=s, opts=opts: s.encode(k, distrax.Normal(a, b), p, **opts))
                c, comp, mem = _compile(fn, keys, m, sd)
                code, wall = _timed(c, keys, m, sd)
                row.update(vmap_encodes_per_s=n / wall, vmap_wall_s=wall, vmap_compile_s=comp,
                           vmap_mem_mb=mem)
                vmap_ok = wall < VMAP_BUDGET_S / 10  # the next size is 10x larger
                vcode = code
            else:
                vcode = None

            def rfn(k, a, b, method=method, opts=opts):
                return jrec.batch.encode(method, k, distrax.Normal(a, b), p, lanes=LANES, **opts)

            c, comp, mem = _compile(rfn, keys, m, sd)
            code, wall = _timed(c, keys, m, sd)
            row.update(refill_encodes_per_s=n / wall, refill_wall_s=wall, refill_compile_s=comp,
                       refill_mem_mb=mem, ok_fraction=float(np.mean(code.ok)),
                       steps_mean=float(np.mean(code.num_steps)), steps_max=int(np.max(code.num_steps)))
            if vcode is not None:
                row["refill_speedup"] = row["refill_encodes_per_s"] / row["vmap_encodes_per_s"]
                row["identical"] = bool(np.array_equal(np.asarray(vcode.index), np.asarray(code.index)))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if n == (10_000 if quick else 100_000):
                q = distrax.Normal(m, sd)
                kl = np.asarray(jax.vmap(jrec.divergences.kl, (0, None))(q, p)) / np.log(2)
                dinf = np.asarray(jax.vmap(jrec.divergences.dinf, (0, None))(q, p))
                per_problem[method] = binned(np.asarray(code.num_steps, np.float64), kl, dinf)
    return rows, per_problem


DEVICE_SCRIPT = r"""
import json, time, sys
sys.path.insert(0, {here!r})
import distrax, jax, numpy as np
import jrec, jrec.shard
from scale import problems
n = {n}
keys, m, sd = problems(n)
p = distrax.Normal(0.0, 1.0)
out, ref = [], None
for d in (1, 2, 4, 8):
    mesh = jax.make_mesh((d,), ("batch",), devices=jax.devices()[:d],
                         axis_types=(jax.sharding.AxisType.Auto,))
    f = jax.jit(lambda k, a, b: jrec.shard.encode("gprs", k, distrax.Normal(a, b), p, mesh=mesh))
    t0 = time.perf_counter(); c = f.lower(keys, m, sd).compile(); comp = time.perf_counter() - t0
    t0 = time.perf_counter(); code = jax.block_until_ready(c(keys, m, sd)); wall = time.perf_counter() - t0
    idx = np.asarray(code.index)
    ref = idx if ref is None else ref
    out.append(dict(devices=d, wall_s=wall, compile_s=comp, encodes_per_s=n / wall,
                    identical_to_1_device=bool(np.array_equal(idx, ref))))
    print(json.dumps(out[-1]), flush=True)
print("RESULT" + json.dumps(out))
"""


def devices(quick: bool):
    n = 10_000 if quick else 100_000
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT.format(here=here, n=n)], capture_output=True,
                       text=True, env=env)
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    rows = json.loads([x for x in r.stdout.splitlines() if x.startswith("RESULT")][-1][6:])
    for row in rows:
        row["batch"] = n
        row["overhead_vs_1_device"] = rows[0]["encodes_per_s"] / row["encodes_per_s"]
    return rows


def numpy_pfr(n: int = 2000):
    """Pure-NumPy PFR, one problem at a time: the sanity row."""
    keys, m, sd = problems(n, seed=7)
    m, sd = np.asarray(m, np.float64), np.asarray(sd, np.float64)
    rng = np.random.default_rng(7)
    steps = np.empty(n)
    t0 = time.perf_counter()
    for i in range(n):
        mu, s = m[i], sd[i]
        log_sup = -np.log(s) + mu * mu / (2 * (1 - s * s))  # sup of log N(x; mu, s) / N(x; 0, 1)
        t, best, k = 0.0, np.inf, 0
        while True:
            k += 1
            t += rng.exponential()
            if np.log(t) - log_sup >= best:
                break
            x = rng.normal()
            lr = -np.log(s) - (x - mu) ** 2 / (2 * s * s) + x * x / 2
            best = min(best, np.log(t) - lr)
        steps[i] = k - 1
    wall = time.perf_counter() - t0
    p = distrax.Normal(0.0, 1.0)
    code = jax.jit(lambda k, a, b: jrec.batch.encode("pfr", k, distrax.Normal(a, b), p))(
        keys, jnp.asarray(m, jnp.float32), jnp.asarray(sd, jnp.float32))
    return {"method": "pfr (NumPy loop)", "batch": n, "encodes_per_s": n / wall,
            "steps_mean": float(steps.mean()), "jrec_steps_mean": float(np.mean(code.num_steps)),
            "steps_se": float(steps.std(ddof=1) / np.sqrt(n))}


def plot(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(17, 5))
    for method in METHODS:
        rr = [r for r in data["throughput"] if r["method"] == method]
        ax[0].loglog([r["batch"] for r in rr], [r["refill_encodes_per_s"] for r in rr], "o-",
                     label=f"{method} refill")
        rv = [r for r in rr if "vmap_encodes_per_s" in r]
        ax[0].loglog([r["batch"] for r in rv], [r["vmap_encodes_per_s"] for r in rv], "x--",
                     label=f"{method} vmap")
    ax[0].set_xlabel("batch size")
    ax[0].set_ylabel("encodes / s")
    ax[0].legend(fontsize=7)
    ax[0].grid(alpha=0.3, which="both")
    for method in ("pfr", "gprs"):
        pp = data["per_problem"].get(method)
        if pp:
            ax[1].semilogy(pp["dinf"]["x"], pp["dinf"]["steps_mean"], "o", ms=4,
                           label=f"{method}: mean steps")
    xx = np.linspace(0, 6.5, 50)
    ax[1].semilogy(xx, np.exp(xx), "k-", label="exp(D_inf) (GPRS theory)")
    ax[1].set_xlabel("D_inf [nats]")
    ax[1].set_ylabel("steps")
    ax[1].legend(fontsize=7)
    ax[1].grid(alpha=0.3)
    pp = data["per_problem"].get("gprs_bb")
    if pp:
        ax[2].plot(pp["kl_bits"]["x"], pp["kl_bits"]["steps_mean"], "o", label="gprs_bb: mean depth")
    ax[2].set_title("branch and bound: E[depth] = O(D_KL) (no closed form)", fontsize=9)
    ax[2].set_xlabel("KL [bits]")
    ax[2].set_ylabel("steps (tree depth)")
    ax[2].legend(fontsize=7)
    ax[2].grid(alpha=0.3)
    fig.suptitle("jrec scale benchmark: KL ~ U(0.05, 8) bits, P = N(0, 1)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=os.path.join(RESULTS, "scale"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows, per_problem = throughput(a.quick)
    data = {"machine": machine(), "throughput": rows, "per_problem": per_problem}
    data["devices"] = devices(a.quick)
    print(json.dumps(data["devices"]), flush=True)
    data["numpy_reference"] = numpy_pfr(300 if a.quick else 2000)
    print(json.dumps(data["numpy_reference"]), flush=True)
    data["wall_s"] = time.perf_counter() - t0
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(data, f)
    plot(data, a.out + ".png")
    print(f"wrote {a.out}.json / .png in {data['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
