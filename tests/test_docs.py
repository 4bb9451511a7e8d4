"""The API reference builds from the docstrings without warnings; the local links of README.md
and docs/*.md resolve; their benchmark tables are the committed results."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent


def test_api_reference_builds(tmp_path):
    """``bash dev.sh docs`` = pdoc over jrec and jrec_inr: every public module gets a page."""
    modules = ["jrec", "jrec.examples", "jrec_inr"]  # as in `bash dev.sh docs`
    cmd = [sys.executable, "-m", "pdoc", "-d", "google", "-o", str(tmp_path), *modules]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    warnings = [ln for ln in (r.stdout + r.stderr).splitlines() if "Warn" in ln]
    assert not warnings, warnings
    pages = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    import jrec
    import jrec_inr  # noqa: F401

    for mod in jrec.__all__:
        if isinstance(getattr(jrec, mod), type(jrec)):
            assert f"jrec/{mod}.html" in pages, mod
    for mod in ("nn", "examples/vae_digits"):
        assert f"jrec/{mod}.html" in pages, mod
    for mod in ("codec", "prior", "model", "fit", "data", "metrics", "cli", "hierarchy"):
        assert f"jrec_inr/{mod}.html" in pages, mod
    html = (tmp_path / "jrec" / "gprs.html").read_text()
    assert "Flamich" in html  # docstrings (with their paper references) made it into the pages


def test_readme_and_docs_links_resolve():
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "notebooks" / "README.md"]:
        text = md.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (md.parent / target).exists(), f"{md.name}: broken link {target}"


def test_readme_tables_are_the_committed_results():
    """The benchmark blocks of README.md and docs/*.md are what ``benchmarks/readme_table.py``
    renders from the JSON in ``benchmarks/results/`` (no table edited by hand or left behind
    its results); each tag is in exactly one file, its image paths relative to that file."""
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import readme_table
    finally:
        sys.path.pop(0)
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = {md: md.read_text() for md in files}
    for tag, name, render in readme_table.TABLES:
        table = render(json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text()))
        hits = [md for md, text in texts.items() for _ in range(text.count(f"<!-- {tag} -->"))]
        assert len(hits) == 1, f"<!-- {tag} --> must be in exactly one of README.md, docs/*.md: {hits}"
        md = hits[0]
        block = re.search(rf"<!-- {tag} -->\n(.*?)\n<!-- /{tag} -->", texts[md], re.S)
        assert block, f"{md.name} has no <!-- /{tag} --> after <!-- {tag} -->"
        want = readme_table.relocate(table, str(md))  # image paths relative to md's folder
        assert block.group(1) == want, f"{md.name}: {tag} is not {name}.json's table: readme_table.py --write"
