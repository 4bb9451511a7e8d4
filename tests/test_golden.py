"""Golden files of every sampler and index code: the indices ``jrec.encode`` selects, the
``.jrec`` bytes that carry them and the samples the decoder rebuilds, for fixed keys and
targets. Written once (``python tests/test_golden.py``) and compared on every run, so that
a change of the library's shape that changes behaviour fails here: the indices and bytes
must be identical, the decoded samples within 4 ulp (a decoder is another compiled
program; see "Contracts and limits" in the docs)."""

import json
import pathlib

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jrec

PATH = pathlib.Path(__file__).parent / "data" / "golden_samplers.json"
N = 48
P = distrax.Normal(0.0, 1.0)
T = distrax.Normal(jnp.linspace(-1.2, 1.4, N, dtype=jnp.float32),
                  jnp.linspace(0.2, 0.9, N, dtype=jnp.float32))
BLOCK_P = distrax.Normal(jnp.zeros(5), jnp.ones(5))
BLOCK_T = distrax.Normal(jnp.linspace(-0.5, 0.5, 5) + jnp.linspace(0, 1, N)[:, None], jnp.full((N, 5), 0.4))
DITHER_T = distrax.Uniform(jnp.linspace(-3, 3, N), jnp.linspace(-3, 3, N) + 0.5)

#: (method, code, options): every sampler with its default code and every other code it takes
CASES = [(m, None, {}) for m in jrec.samplers() if m not in ("orc", "astar_dl", "dither", "gprs_parallel")]
CASES += [(m, c, {}) for m in ("pfr", "gprs", "grs", "gprs_bb", "astar_bb", "grc_bb")
          for c in ("gamma", "delta", "zeta") if c != jrec.get(m).default_code]
CASES += [("gprs_parallel", None, {"num_shards": 4}), ("gprs_parallel", "zeta", {"num_shards": 3}),
          ("orc", None, {"kappa": 10}), ("orc", None, {"kappa": 10, "greedy": True}),
          ("astar_dl", None, {"kappa": 9}), ("dither", None, {"step": 0.5}),
          ("dither", "delta", {"step": 0.5})]


def _name(method, code, opts):
    return "/".join([method, code or "default", *(f"{k}={v}" for k, v in sorted(opts.items()))])


def _keys():
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(2026), i))(jnp.arange(N))


def _problem(method):
    if method == "dither":
        return DITHER_T, None
    if method == "orc":
        return BLOCK_T, BLOCK_P
    return T, P


def _record(method, code, opts):
    target, proposal = _problem(method)
    keys = _keys()
    c = jrec.encode(keys, target, proposal, method=method, **opts)
    budget = 3.0 if code == "zeta" else None
    data = jrec.to_bytes(c, method=method, key=keys, proposal=proposal, code=code, budget=budget, **opts)
    f = jrec.from_bytes(data, key=keys, proposal=proposal, **opts)
    np.testing.assert_array_equal(f.index, np.asarray(c.index))
    x = np.asarray(f.samples(keys, proposal), np.float32)
    return {"index": np.asarray(c.index).tolist(), "jrec": data.hex(),
            "sample": x.view(np.uint32).ravel().tolist(), "sample_shape": list(x.shape)}


def _golden():
    if not PATH.exists():
        pytest.fail(f"{PATH} is missing: write it with python tests/test_golden.py")
    return json.loads(PATH.read_text())


def write():
    """(Re)write the golden file: only when behaviour is meant to change (a format break)."""
    out = {"written_by": f"jrec {jrec.__version__}, jax {jax.__version__}",
           "cases": {_name(*case): _record(*case) for case in CASES}}
    PATH.write_text(json.dumps(out, sort_keys=True, separators=(",", ":")).replace('},"', '},\n"') + "\n")


def test_every_sampler_and_code_has_a_golden_case():
    names = {name.split("/")[0] for name in _golden()["cases"]}
    assert names == set(jrec.samplers())
    assert set(_golden()["cases"]) == {_name(*case) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[_name(*c) for c in CASES])
def test_indices_bytes_and_samples_equal_the_golden_file(case):
    want = _golden()["cases"][_name(*case)]
    got = _record(*case)
    assert got["index"] == want["index"]
    assert got["jrec"] == want["jrec"]
    assert got["sample_shape"] == want["sample_shape"]
    a = np.asarray(got["sample"], np.uint32).view(np.float32)
    b = np.asarray(want["sample"], np.uint32).view(np.float32)
    ulp = np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))
    assert ulp.max() <= 4, f"decoded samples differ by {ulp.max()} ulp"


if __name__ == "__main__":
    write()
