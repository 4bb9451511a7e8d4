"""Shared (target, proposal) pairs with scipy reference distributions, and a shared batched encoder.

With ``JREC_COMPILE_REPORT=1`` in the environment the run ends with tables of XLA compile
time per file and per test (tracing, lowering and backend compilation, from
``jax.monitoring``) and the number of programs compiled, beside the durations: the data
for keeping the suite's time down (``JREC_COMPILE_REPORT=path.json`` also writes every
test's figures to that file). Only this process's compiles are seen, not those of tests
that run a subprocess (test_shard, the notebooks). Programs read from the persistent
compilation cache are counted too: their backend time is the read, and ``cache_saved``
the compile time they saved.
"""

import collections
import functools
import gc
import os

import distrax
import jax
import numpy as np
import pytest
from scipy import stats

import jrec
from jrec import dists

jax.config.update("jax_platforms", "cpu")

# Tracing and lowering create many short-lived Python objects, and the cyclic garbage
# collector's scans of the long-lived ones (the imported modules) took ~15% of tracing
# time: freeze what is loaded now, and collect the young generation less often.
gc.freeze()
gc.set_threshold(50_000, 50, 100)


def _normal(mq, sq, mp=0.0, sp=1.0):
    return (distrax.Normal(mq, sq), distrax.Normal(mp, sp), stats.norm(mq, sq))


# name -> (target, proposal, scipy frozen target). KL from ~0.1 to ~10 bits.
PAIRS = {
    "normal_0.1bit": _normal(0.3, 0.8),
    "normal_2bit": _normal(1.0, 0.25),
    "normal_5.5bit": _normal(2.0, 0.1),
    "normal_shifted_scaled_prop": _normal(3.5, 0.2, 3.0, 2.0),
    "normal_10bit": _normal(1.03, 0.001),
    "triangular_uniform": (dists.Triangular(0.2, 0.45, 0.7), distrax.Uniform(0.0, 1.0),
                           stats.triang(0.5, loc=0.2, scale=0.5)),
    "laplace_laplace": (distrax.Laplace(0.5, 0.3), distrax.Laplace(0.0, 1.0), stats.laplace(0.5, 0.3)),
    "uniform_uniform": (distrax.Uniform(0.2, 0.5), distrax.Uniform(0.0, 1.0), stats.uniform(0.2, 0.3)),
    "beta_uniform": (distrax.Beta(2.0, 5.0), distrax.Uniform(0.0, 1.0), stats.beta(2.0, 5.0)),
}

# The global samplers need exp(D_inf) ~ 1700 steps per sample on the 10-bit pair
# and a vmapped batch runs as long as its slowest lane (GPRS's step count is
# heavy-tailed), so that pair gets fewer draws for them (see DRAWS).
HIGH_KL = "normal_10bit"


@pytest.fixture(params=list(PAIRS))
def pair(request):
    return request.param, PAIRS[request.param]


STD_NORMAL = distrax.Normal(0.0, 1.0)

# The options of the samplers that need one, in every test that codes a batch of 64
# Normal targets against N(0, 1) (invariances, refill runner, checked wrapper, bitstream):
# the same options and batch give the same compiled programs.
OPTIONS = {"orc": {"kappa": 12}, "astar_dl": {"kappa": 9}}


@functools.cache
def encoder(method, **opts):
    """``method``'s pure encoder with the N(0, 1) proposal, jitted and vmapped over a batch
    of keys and targets (a batched distrax distribution, the API contract).

    Shared by the tests that need a plain batched encoder (batch and chunk-size
    invariance, the refill runner against plain vmap, A* and index-code figures):
    compiling dominates the suite's time, and one jitted function per (sampler, options)
    is compiled once per batch shape in a worker, and is the same program for the
    persistent compilation cache across workers.
    """
    s = jrec.get(method)
    return jax.jit(jax.vmap(lambda k, t: s.encode(k, t, STD_NORMAL, **opts)))


def keys(n, seed=0):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def ks_pvalue(samples, frozen):
    return stats.kstest(np.asarray(samples, np.float64), frozen.cdf).pvalue


def pytest_collection_modifyitems(config, items):
    """Run the long tests (marked ``slow``) first: pytest-xdist hands out tests in this
    order, so the two workers then finish on short tests and neither waits for the other
    on a minute-long test at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # (stable)


def pytest_configure(config):
    """Refuse to run when ``--dist loadgroup`` would not keep an ``xdist_group`` on one worker.

    pytest-xdist (up to 3.8 at least) tags a grouped test on its workers by setting
    ``item._nodeid``, which pytest 9.2's ``Node.nodeid`` no longer reads: test_inr's group
    was spread over both workers and its module fixtures (a trained prior, a compressed
    file) built on each. pyproject.toml keeps pytest below 9.2; this check turns a mismatch
    into an error instead of a silently slower suite.
    """
    if config.getoption("dist", default=None) == "loadgroup" and pytest.version_tuple[:2] >= (9, 2):
        import xdist

        if tuple(int(p) for p in xdist.__version__.split(".")[:2]) <= (3, 8):
            raise pytest.UsageError(
                f"pytest {pytest.__version__} ignores how pytest-xdist {xdist.__version__}'s --dist "
                "loadgroup keeps xdist_group tests on one worker: install pytest < 9.2 "
                "(bash dev.sh test does, from pyproject.toml)")


# -- opt-in compile-time report (JREC_COMPILE_REPORT=1) -----------------------------------

_COMPILE_EVENTS = {"/jax/core/compile/backend_compile_duration": "backend",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
                   "/jax/core/compile/jaxpr_trace_duration": "trace",
                   "/jax/compilation_cache/compile_time_saved_sec": "cache_saved"}
_compile_seconds = collections.Counter()  # since the last test phase of this process
_REPORT = os.environ.get("JREC_COMPILE_REPORT", "")
_REPORT_JSON = _REPORT if _REPORT.endswith(".json") else None  # also every test's figures in a file


def _on_duration(event, duration, **_):
    if event in _COMPILE_EVENTS:
        _compile_seconds[_COMPILE_EVENTS[event]] += duration
        if event == "/jax/core/compile/backend_compile_duration":
            _compile_seconds["programs"] += 1


if _REPORT:
    jax.monitoring.register_event_duration_secs_listener(_on_duration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the compile seconds spent since the previous phase (setup, call, teardown) of
    this worker to the phase's report (``user_properties`` travel back from xdist workers)."""
    outcome = yield
    if _REPORT:
        outcome.get_result().user_properties.append(("compile_seconds", dict(_compile_seconds)))
        _compile_seconds.clear()


def _compiling(c):
    return c["backend"] + c["lower"] + c["trace"]


def pytest_terminal_summary(terminalreporter):
    if not _REPORT:
        return
    per_test = collections.defaultdict(collections.Counter)
    for reports in terminalreporter.stats.values():
        for r in reports:
            props = dict(getattr(r, "user_properties", ()))
            if "compile_seconds" in props and hasattr(r, "duration"):
                c = per_test[r.nodeid]
                c.update(props["compile_seconds"])
                c["duration"] += r.duration
    total = sum(per_test.values(), collections.Counter())
    tr = terminalreporter
    tr.write_sep("=", "XLA compile time (JREC_COMPILE_REPORT)")
    tr.write_line(f"tests {len(per_test)}: duration {total['duration']:.0f} s, compile "
                  f"{_compiling(total):.0f} s of {total['programs']:.0f} programs (backend "
                  f"{total['backend']:.0f}, lowering {total['lower']:.0f}, tracing "
                  f"{total['trace']:.0f}); persistent cache saved {total['cache_saved']:.0f} s")
    if _REPORT_JSON:
        import json

        with open(_REPORT_JSON, "w") as f:
            json.dump(dict(per_test), f, indent=0, sort_keys=True)
    per_file = collections.defaultdict(collections.Counter)
    for nodeid, c in per_test.items():
        per_file[nodeid.split("::")[0]].update(c)
    for title, table, n in (("file", per_file, None), ("test", per_test, 40)):
        tr.write_line(f"-- by {title}:")
        for name, c in sorted(table.items(), key=lambda kv: -kv[1]["duration"])[:n]:
            tr.write_line(f"{c['duration']:7.1f} s  compile {_compiling(c):6.1f} s  "
                          f"{c['programs']:5.0f} programs  {name}")
