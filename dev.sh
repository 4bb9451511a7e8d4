#!/usr/bin/env bash
# jrec developer entry point: creates (or reuses) a virtual environment, installs what
# the chosen command needs, and runs it.
#   bash dev.sh demo [--bpp 0.3]            main job: compress the bundled demo image with the
#                                           INR codec (demo.jrec), decode it back (demo-decoded.png)
#   bash dev.sh latents [--n 2000 --bits 3] code Gaussian latents with every sampler (.jrec files)
#   bash dev.sh test [pytest args]          lint (ruff) + the whole test suite
#   bash dev.sh bench [args]                benchmarks/samplers.py (JSON + PNG in benchmarks/results)
#   bash dev.sh docs                        API reference from the docstrings (pdoc) -> docs/api/
set -euo pipefail
cd "$(dirname "$0")"
VENV="${JREC_VENV:-.venv}"
PY="${PYTHON:-python3}"

ensure() {  # ensure <extras>: venv with the project installed editable with those extras
  local extras="$1"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local stamp="$VENV/.jrec-installed-$extras-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  demo)  ensure test
         "$VENV/bin/jrec-inr" compress "$("$VENV/bin/python" -c 'import jrec_inr.data as d; print(d.demo_image())')" \
           demo.jrec --recon demo-recon.png "$@"
         exec "$VENV/bin/jrec-inr" decompress demo.jrec demo-decoded.png ;;
  latents) ensure test; exec "$VENV/bin/python" -m jrec.demo "$@" ;;
  test)  ensure test
         "$VENV/bin/ruff" check jrec jrec_inr tests benchmarks
         # a fresh XLA compilation cache per run, shared by the xdist workers and the tests'
         # subprocesses: identical programs compiled by several tests are compiled once. Every
         # program is cached, the small ones of eager dispatch too (a tenth less CPU time on the
         # eager-heavy test files than caching only programs that took 0.3 s to compile)
         cache="$(mktemp -d)"; trap 'rm -rf "$cache"' EXIT
         JAX_COMPILATION_CACHE_DIR="$cache" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
           "$VENV/bin/python" -m pytest -q -n 2 --dist loadgroup --durations=15 "$@" ;;
  bench) ensure bench; exec "$VENV/bin/python" benchmarks/samplers.py "$@" ;;
  docs)  ensure test; exec "$VENV/bin/python" -m pdoc -d google -o docs/api jrec jrec.examples jrec_inr "$@" ;;
  *) echo "usage: bash dev.sh {demo|latents|test|bench|docs} [args]" >&2; exit 2 ;;
esac
