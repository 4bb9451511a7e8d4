"""Multi-device runs (shard_map) give the single-device results, for 1, 2 and 8 devices.

The checks run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8
(the device count is fixed when JAX starts).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

SCRIPT = textwrap.dedent(r'''
    import json
    import distrax, jax, jax.numpy as jnp, numpy as np
    import jrec, jrec.shard as sh
    assert jax.device_count() == 8
    n = 203  # not a multiple of 2, 4 or 8: padding is exercised
    rng = np.random.default_rng(0)
    loc = jnp.asarray(rng.normal(size=n) * 0.8, jnp.float32)
    scale = jnp.asarray(np.exp(rng.uniform(np.log(0.02), np.log(0.9), size=n)), jnp.float32)
    p = distrax.Normal(0.0, 1.0)
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    OPTS = {"dither": {"step": 0.3}, "gprs_parallel": {"num_shards": 8}}

    def target(m, a, b):
        return distrax.Uniform(a, a + 0.3) if m == "dither" else distrax.Normal(a, b)

    def prop(m):
        return None if m == "dither" else p

    def ulps(a, b):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        return int(np.max(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))))

    def mesh(d, name):
        return jax.make_mesh((d,), (name,), devices=jax.devices()[:d],
                             axis_types=(jax.sharding.AxisType.Auto,))

    def sharded(m, mm):
        return lambda k, a, b: sh.encode(m, k, jax.vmap(lambda x, y: target(m, x, y))(a, b), prop(m),
                                         mesh=mm, **OPTS.get(m, {}))

    def parallel(mm):  # each problem's 8 shards over the devices of mesh mm
        return lambda k, a, b: sh.encode_gprs_parallel(k, distrax.Normal(a, b), p, mesh=mm, num_shards=8)

    def same(c, ref, x=None):
        return {"same_index": all(np.array_equal(np.asarray(getattr(c, f)), np.asarray(getattr(ref, f)))
                                  for f in ("index", "num_steps", "ok")),
                "sample_ulps": ulps(c.sample, ref.sample),
                "decode_ulps": 0 if x is None else ulps(x, ref.sample), "all_ok": bool(np.all(c.ok))}

    # a sampler per kind of loop on 8 devices (gprs, grs and orc run pfr's candidate search;
    # gprs_bb stands for the branch-and-bound paths, dither for the loop-free samplers),
    # 1 and 2 devices for the cheapest one, and parallel GPRS's shards of one problem on 2
    # and 8 devices. Compiles dominate the cost of this test, so the programs that run on
    # the same devices are one jitted program each: the single-device references, the
    # 8-device encoders and the 8-device bulk decoders.
    ON_8 = ["pfr", "gprs_parallel", "gprs_bb", "dither"]
    refs = jax.jit(lambda k, a, b: {m: jax.vmap(lambda kk, x, y: jrec.get(m).encode(
        kk, target(m, x, y), prop(m), **OPTS.get(m, {})))(k, a, b) for m in ON_8})(keys, loc, scale)
    m8, s8 = mesh(8, "batch"), mesh(8, "shards")

    def on_8(k, a, b):
        codes = {m: sharded(m, m8)(k, a, b) for m in ON_8}
        codes["parallel_devices/8"] = parallel(s8)(k, a, b)
        return codes

    codes = jax.jit(on_8)(keys, loc, scale)
    xs = jax.jit(lambda k, idx: {m: sh.decode(m, k, idx[m], prop(m), mesh=m8, **OPTS.get(m, {}))
                                for m in ON_8})(keys, {m: codes[m].index for m in ON_8})
    out = {f"{m}/8": same(codes[m], refs[m], xs[m]) for m in ON_8}
    out["parallel_devices/8"] = same(codes["parallel_devices/8"], refs["gprs_parallel"])
    for d in (1, 2):
        out[f"pfr/{d}"] = same(jax.jit(sharded("pfr", mesh(d, "batch")))(keys, loc, scale), refs["pfr"])
    c = jax.jit(parallel(mesh(2, "shards")))(keys, loc, scale)
    out["parallel_devices/2"] = same(c, refs["gprs_parallel"])
    try:
        sh.encode_gprs_parallel(keys[0], distrax.Normal(0.5, 0.2), p, mesh=mesh(8, "shards"), num_shards=12)
        out["bad_shards"] = "no error"
    except ValueError as e:
        out["bad_shards"] = str(e)
    print("RESULT" + json.dumps(out))
''')


@pytest.mark.slow
def test_sharded_equals_single_device():
    """Batches on 8 devices (pfr: 1/2/8), parallel GPRS shards on 2/8 devices: as on one device."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads([x for x in r.stdout.splitlines() if x.startswith("RESULT")][-1][len("RESULT"):])
    assert "multiple of the 8 devices" in res.pop("bad_shards")
    assert {k.split("/")[1] for k in res if k.startswith("parallel_devices")} == {"2", "8"}
    for name, r in res.items():
        assert r["same_index"] and r["all_ok"], (name, r)
        # identical programs per problem: bit-identical samples, except gprs_bb's decode, whose
        # transcendental functions XLA compiles differently for different batch shapes (<= a few ulp)
        tol = 4 if name.startswith("gprs_bb") else 0
        assert r["sample_ulps"] <= tol and r["decode_ulps"] <= tol, (name, r)


def test_bulk_decode_of_a_million_indices():
    """10^6 indices decode in one vmapped call; spot checks against single decodes."""
    import distrax

    import jrec

    n = 1_000_000
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    idx = jnp.asarray(np.random.default_rng(0).integers(1, 5000, n), jnp.int32)
    p = distrax.Normal(0.0, 1.0)
    x = jrec.decode(keys, idx, p, method="gprs")
    assert x.shape == (n,) and bool(jnp.all(jnp.isfinite(x)))
    for i in (0, 12345, n - 1):
        assert float(x[i]) == float(jrec.gprs.decode(keys[i], idx[i], p))
    assert abs(float(jnp.mean(x))) < 0.01 and abs(float(jnp.std(x)) - 1) < 0.01  # candidates ~ P
