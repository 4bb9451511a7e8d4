"""The import graph of jrec follows its layers (docs/architecture.md): a module imports only
modules of lower layers, the samplers never import one another, no module reaches into
another's private names, and jrec modules are imported at the top of a file, not inside
functions. Read from the source with ``ast``; nothing is imported."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jrec"

#: layer of each module: a module may import modules of strictly lower layers only
LAYERS = {
    # types, key draws and distributions: import nothing from jrec
    "core": 0, "spec": 0, "prng": 0, "bounds": 0, "dists": 0,
    "ratio": 1,  # density ratios
    "divergences": 2, "poisson": 2,  # level-set tables; the Poisson process and its search
    "bb": 3,  # branch and bound on intervals
    # the samplers: one module per algorithm, none importing another
    "pfr": 4, "gprs": 4, "grs": 4, "astar": 4, "orc": 4, "dither": 4,
    "registry": 5,  # the samplers' declarations
    "batch": 6, "coding": 6,  # lane refill; index codes
    "api": 7, "shard": 7,  # the checked API; shard_map
    "bitstream": 8,  # the .jrec container
    "nn": 9,  # the Flax bottleneck
    "__init__": 10,
    "demo": 11, "examples": 11,  # applications
}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        name = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        yield name, path, ast.parse(path.read_text())


def _jrec_imports(tree):
    """``(node, imported module, imported names, at module level)`` of every jrec import."""
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jrec":
            parts = node.module.split(".")
            names = [a.name for a in node.names]
            if len(parts) == 1:  # from jrec import a, b: each a module
                for n in names:
                    yield node, n, [], id(node) in top
            else:
                yield node, parts[1], names, id(node) in top
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jrec":
                    mod = a.name.split(".")[1] if "." in a.name else "__init__"
                    yield node, mod, [], id(node) in top


MODULES = list(_modules())
IDS = [str(p.relative_to(ROOT)) for _, p, _ in MODULES]


def test_every_module_has_a_layer():
    assert {name for name, _, _ in _modules()} == set(LAYERS)


@pytest.mark.parametrize("name,path,tree", MODULES, ids=IDS)
def test_imports_follow_the_layers(name, path, tree):
    bad = []
    for node, mod, names, top_level in _jrec_imports(tree):
        where = f"{path.name}:{node.lineno}"
        if mod == name and name in ("__init__", "examples"):
            continue
        if not top_level:
            bad.append(f"{where}: imports jrec.{mod} inside a function")
        if LAYERS[mod] >= LAYERS[name]:
            bad.append(f"{where}: {name} (layer {LAYERS[name]}) imports {mod} (layer {LAYERS[mod]})")
        bad += [f"{where}: imports the private name {mod}.{n}" for n in names if n.startswith("_")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name,path,tree", MODULES, ids=IDS)
def test_no_private_names_of_other_modules(name, path, tree):
    modules = {mod for _, mod, names, _ in _jrec_imports(tree) if not names}
    bad = [f"{path.name}:{n.lineno}: {n.value.id}.{n.attr}" for n in ast.walk(tree)
           if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules
           and n.attr.startswith("_") and not n.attr.startswith("__")]
    assert not bad, "\n".join(bad)
