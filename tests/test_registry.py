"""The sampler declarations (jrec.spec): one per sampler, beside its code, and consistent
with it; the container ids are part of the file format."""

import inspect

import pytest

import jrec
from jrec import bitstream, registry

#: The ``.jrec`` header's sampler ids: append-only (a file written today must decode forever).
CONTAINER_IDS = {"pfr": 0, "gprs": 1, "gprs_parallel": 2, "gprs_bb": 3, "orc": 4, "dither": 5, "grs": 6,
                 "astar_bb": 7, "astar_bb_dyadic": 8, "astar_dl": 9, "gprs_bb_dyadic": 10, "grc_bb": 11}


def test_container_ids_never_change():
    got = {name: jrec.get(name).container_id for name in jrec.samplers()}
    assert {k: got[k] for k in CONTAINER_IDS} == CONTAINER_IDS
    assert bitstream.SAMPLER_IDS[:12] == tuple(sorted(CONTAINER_IDS, key=CONTAINER_IDS.get))
    assert registry.by_container_id(31) is None


def test_every_declaration_is_registered_once():
    declared = [s for m in registry.MODULES for s in m.SAMPLERS]
    assert [s.name for s in declared] == list(jrec.samplers())
    for s in declared:
        assert jrec.get(s.name) is s


def _defaults(fn):
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY}


#: keyword-only parameters that are not options of the registered sampler
_NOT_OPTIONS = {"gprs_parallel": {"axis_name"}, "grc_bb": {"split"}}


@pytest.mark.parametrize("name", jrec.samplers())
def test_declared_options_are_the_functions_defaults(name):
    """An option's default is declared once: ``encode``'s and ``kernel``'s keyword
    defaults equal the declaration (a required option, like dither's step, has none)."""
    s = jrec.get(name)
    for fn in (s.encode, s.kernel):
        got = {k: v for k, v in _defaults(fn).items() if k not in _NOT_OPTIONS.get(name, set())}
        want = {k: (inspect.Parameter.empty if v is None else v) for k, v in s.options.items()}
        assert got == want, (name, fn.__name__)


def test_bad_declarations_are_refused():
    s = jrec.get("pfr")
    with pytest.raises(ValueError, match="index_kind"):
        jrec.spec.Sampler(**{**s.__dict__, "index_kind": "weird"})
    with pytest.raises(ValueError, match="container_id"):
        jrec.spec.Sampler(**{**s.__dict__, "container_id": 32})
    with pytest.raises(RuntimeError, match="duplicate"):
        registry._collect([registry.pfr, registry.pfr])
