"""Foldcomp on the protein RD benchmark's held-out structures (a reference point, JSON).

    python benchmarks/foldcomp_protein.py     # -> benchmarks/results/foldcomp_protein.json

Foldcomp (Kim et al., Bioinformatics 2023; ``pip install foldcomp``, in the ``bench``
extra) codes a whole structure: backbone torsions and side chains, every heavy atom. The
protocol of ``rd_modality.py protein`` is kept where it applies: the first 96 residues of
the first protein chain (all their atoms go to Foldcomp, as a PDB file written by
biotite), bits per residue from the real ``.fcz`` size, RMSD of the decoded C-alpha
atoms against the original ones in angstrom, without superposition. The INR codec codes
C-alpha atoms only, so this point codes about 8 times more atoms than it.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import rd_modality  # noqa: E402

RESIDUES = 96


def foldcomp_point(path: str, residues: int = RESIDUES) -> dict:
    """Foldcomp on the first ``residues`` residues of the first protein chain of ``path``."""
    import biotite.structure as struc
    import foldcomp
    from biotite.structure.io import pdb

    atoms = pdb.PDBFile.read(path).get_structure(model=1)
    aa = atoms[struc.filter_amino_acids(atoms)]
    aa = aa[aa.chain_id == aa[aa.atom_name == "CA"].chain_id[0]]
    keys = list(zip(aa.res_id.tolist(), aa.ins_code.tolist(), strict=True))
    first = set(list(dict.fromkeys(keys))[:residues])
    sub = aa[np.array([k in first for k in keys])]
    out = pdb.PDBFile()
    out.set_structure(sub)
    buf = io.StringIO()
    out.write(buf)
    fcz = foldcomp.compress(os.path.basename(path), buf.getvalue())
    _, back = foldcomp.decompress(fcz)
    dec = pdb.PDBFile.read(io.StringIO(back)).get_structure(model=1)
    ca0, ca1 = sub[sub.atom_name == "CA"].coord, dec[dec.atom_name == "CA"].coord
    if ca0.shape != ca1.shape or ca0.shape[0] != residues:
        raise RuntimeError(f"{path}: {ca0.shape[0]} C-alpha atoms in, {ca1.shape[0]} out")
    rmsd = float(np.sqrt(np.mean(np.sum((ca0.astype(np.float64) - ca1) ** 2, -1))))
    return {"file": os.path.basename(path), "codec": "foldcomp", "bytes": len(fcz),
            "bits_per_residue": 8.0 * len(fcz) / residues, "rmsd": rmsd, "atoms": int(sub.array_length()),
            "atoms_per_residue": sub.array_length() / residues}


def _isolated(path: str) -> dict:
    """:func:`foldcomp_point` in a child process: Foldcomp 1.0.0 crashes (SIGSEGV) on some
    files (1dix), which is recorded as a failure instead of ending the run."""
    r = subprocess.run([sys.executable, __file__, "--one", path], capture_output=True, text=True)
    if r.returncode != 0:
        why = f"exit status {r.returncode}" + (f": {r.stderr.strip()[-200:]}" if r.stderr.strip() else "")
        return {"file": os.path.basename(path), "codec": "foldcomp", "failed": True, "error": why}
    return json.loads(r.stdout)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(foldcomp_point(sys.argv[2])))
        return
    import foldcomp  # noqa: F401  (a clear ImportError before the children run)

    rows = [_isolated(os.path.join(rd_modality.DATA, f)) for f in rd_modality.HELD_OUT["protein"]]
    ok = [r for r in rows if not r.get("failed")]
    res = {"codec": "foldcomp", "version": _version(),
           "protocol": {"residues": RESIDUES, "atoms": "all heavy atoms of those residues"},
           "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "failed": [r["file"] for r in rows if r.get("failed")],
           "mean": {k: float(np.mean([r[k] for r in ok])) for k in ("bits_per_residue", "rmsd",
                                                                    "atoms_per_residue")},
           "median_rmsd": float(np.median([r["rmsd"] for r in ok])),
           "per_file": rows}
    out = os.path.join(HERE, "results", "foldcomp_protein.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    m = res["mean"]
    print(f"foldcomp on {len(ok)} of {len(rows)} structures (failed: {res['failed']}): "
          f"{m['bits_per_residue']:.1f} bits per residue, C-alpha RMSD {m['rmsd']:.4f} A (median "
          f"{res['median_rmsd']:.4f}), {m['atoms_per_residue']:.1f} atoms per residue; {out}")


def _version() -> str:
    from importlib.metadata import version

    return version("foldcomp")


if __name__ == "__main__":
    main()
